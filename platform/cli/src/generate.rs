//! `orrery generate`: client bindings for a module, read from its `.wasm`
//! (hosted by the module runtime, which asks the module to describe itself)
//! or from a running database's schema route.
//!
//! Owns: [`Module`], the one input of every language's emitter (the
//! validated `ModuleDef` plus what validation drops and bindings need: the
//! declared names of types and the raw return types of views), reading it
//! from either source, and writing the files. Does not own: any language's
//! output (`generate::typescript`).

pub(crate) mod typescript;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use orrery_moduledef::ModuleDef;
use spacetimedb_lib::db::raw_def::v10::{RawModuleDefV10, RawModuleDefV10Section};
use spacetimedb_lib::de::serde::DeserializeWrapper;
use spacetimedb_lib::RawModuleDef;
use spacetimedb_sats::AlgebraicType;

/// A module as bindings see it.
pub(crate) struct Module {
    pub(crate) def: ModuleDef,
    /// The declared name of each named typespace entry, by ref index:
    /// its scope (outermost first) and its name.
    pub(crate) type_names: HashMap<u32, (Vec<String>, String)>,
    /// Each view's return type as declared (refs kept), by source name.
    pub(crate) view_returns: HashMap<String, AlgebraicType>,
}

impl Module {
    /// Validates a module description the way publishing does.
    pub(crate) fn from_raw(raw: RawModuleDef) -> anyhow::Result<Module> {
        let mut type_names = HashMap::new();
        let mut view_returns = HashMap::new();
        match &raw {
            RawModuleDef::V10(v10) => {
                for section in &v10.sections {
                    match section {
                        RawModuleDefV10Section::Types(types) => {
                            for ty in types {
                                let scope = ty.source_name.scope.iter().map(|s| s.to_string());
                                type_names.insert(
                                    ty.ty.0,
                                    (scope.collect(), ty.source_name.source_name.to_string()),
                                );
                            }
                        }
                        RawModuleDefV10Section::Views(views) => {
                            for view in views {
                                view_returns
                                    .insert(view.source_name.to_string(), view.return_type.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
            RawModuleDef::V9(v9) => {
                for ty in &v9.types {
                    let scope = ty.name.scope.iter().map(|s| s.to_string());
                    type_names.insert(ty.ty.0, (scope.collect(), ty.name.name.to_string()));
                }
            }
            _ => {}
        }
        let def = ModuleDef::from_raw(raw).map_err(|e| anyhow!("not a valid module: {e}"))?;
        Ok(Module {
            def,
            type_names,
            view_returns,
        })
    }
}

/// The description a compiled module gives of itself.
pub(crate) fn describe_wasm(path: &Path) -> anyhow::Result<RawModuleDef> {
    let wasm = std::fs::read(path)
        .with_context(|| format!("cannot read the module {}", path.display()))?;
    let runtime = orrery_module::Runtime::new()
        .map_err(|e| anyhow!("cannot start the module runtime: {e}"))?;
    let hosted = runtime
        .host(&wasm, Default::default())
        .map_err(|e| anyhow!("{} is not a usable module: {e}", path.display()))?;
    spacetimedb_lib::bsatn::from_slice(hosted.raw_description())
        .map_err(|e| anyhow!("the module's description does not decode: {e}"))
}

/// A module definition from a server's `schema?version=10` reply.
pub(crate) fn from_schema_json(schema: serde_json::Value) -> anyhow::Result<RawModuleDef> {
    let raw: DeserializeWrapper<RawModuleDefV10> =
        serde_json::from_value(schema).context("the server's schema does not decode")?;
    Ok(RawModuleDef::V10(raw.0))
}

/// Writes generated files into `dir` (created if missing), each through a
/// temporary file and a rename, so an interrupted run never leaves half a
/// file behind; returns the paths written.
pub(crate) fn write_files(dir: &Path, files: &[(String, String)]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        durable::fs::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
