//! The import and export surface of SpacetimeDB 2.10.1 modules, as data, and
//! the checks a module must pass before it is instantiated.
//!
//! Owns: the catalogue of every host function a module may import (namespace
//! `spacetime_10.<minor>`, name, wasm signature), the ABI version a module
//! needs, and the required export signatures (module-abi §1, §3, §4).
//! Does not own: what the host functions do (`orrery_module::host`).
//!
//! Invariant: a module that imports anything not in [`IMPORTS`], or with a
//! signature other than the catalogue's, is refused before instantiation.

use wasmtime::{ExternType, FuncType, Module, ValType};

use crate::LoadError;

/// The ABI major version we implement, and the newest minor.
pub(crate) const ABI_MAJOR: u32 = 10;
pub(crate) const ABI_MINOR_MAX: u32 = 5;

#[derive(Clone, Copy)]
enum T {
    I32,
    I64,
}

/// One host function: namespace minor version, name, parameters, results.
pub(crate) struct Import {
    pub(crate) minor: u32,
    pub(crate) name: &'static str,
    params: &'static [T],
    results: &'static [T],
}

const fn import(
    minor: u32,
    name: &'static str,
    params: &'static [T],
    results: &'static [T],
) -> Import {
    Import {
        minor,
        name,
        params,
        results,
    }
}

use T::{I32, I64};

const I32X9: &[T] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32];

/// Every import a 2.10.1 module (or an older one on ABI 10) can reference.
pub(crate) const IMPORTS: &[Import] = &[
    import(0, "table_id_from_name", &[I32, I32, I32], &[I32]),
    import(0, "index_id_from_name", &[I32, I32, I32], &[I32]),
    import(0, "datastore_table_row_count", &[I32, I32], &[I32]),
    import(0, "datastore_table_scan_bsatn", &[I32, I32], &[I32]),
    import(0, "datastore_index_scan_range_bsatn", I32X9, &[I32]),
    import(0, "datastore_btree_scan_bsatn", I32X9, &[I32]),
    import(
        0,
        "datastore_delete_by_index_scan_range_bsatn",
        I32X9,
        &[I32],
    ),
    import(0, "datastore_delete_by_btree_scan_bsatn", I32X9, &[I32]),
    import(
        0,
        "datastore_delete_all_by_eq_bsatn",
        &[I32, I32, I32, I32],
        &[I32],
    ),
    import(0, "row_iter_bsatn_advance", &[I32, I32, I32], &[I32]),
    import(0, "row_iter_bsatn_close", &[I32], &[I32]),
    import(0, "datastore_insert_bsatn", &[I32, I32, I32], &[I32]),
    import(0, "datastore_update_bsatn", &[I32, I32, I32, I32], &[I32]),
    import(
        0,
        "volatile_nonatomic_schedule_immediate",
        &[I32, I32, I32, I32],
        &[],
    ),
    import(0, "bytes_sink_write", &[I32, I32, I32], &[I32]),
    import(0, "bytes_source_read", &[I32, I32, I32], &[I32]),
    import(
        0,
        "console_log",
        &[I32, I32, I32, I32, I32, I32, I32, I32],
        &[],
    ),
    import(0, "console_timer_start", &[I32, I32], &[I32]),
    import(0, "console_timer_end", &[I32], &[I32]),
    import(0, "identity", &[I32], &[]),
    import(1, "bytes_source_remaining_length", &[I32, I32], &[I32]),
    import(2, "get_jwt", &[I32, I32], &[I32]),
    import(3, "procedure_sleep_until", &[I64], &[I64]),
    import(3, "procedure_start_mut_tx", &[I32], &[I32]),
    import(3, "procedure_commit_mut_tx", &[], &[I32]),
    import(3, "procedure_abort_mut_tx", &[], &[I32]),
    import(
        3,
        "procedure_http_request",
        &[I32, I32, I32, I32, I32],
        &[I32],
    ),
    import(
        4,
        "datastore_index_scan_point_bsatn",
        &[I32, I32, I32, I32],
        &[I32],
    ),
    import(
        4,
        "datastore_delete_by_index_scan_point_bsatn",
        &[I32, I32, I32, I32],
        &[I32],
    ),
    import(5, "datastore_clear", &[I32, I32], &[I32]),
];

impl Import {
    #[cfg(test)]
    pub(crate) fn namespace(&self) -> String {
        format!("spacetime_{ABI_MAJOR}.{}", self.minor)
    }

    pub(crate) fn func_type(&self, engine: &wasmtime::Engine) -> FuncType {
        FuncType::new(
            engine,
            self.params.iter().map(val_type),
            self.results.iter().map(val_type),
        )
    }
}

fn val_type(t: &T) -> ValType {
    match t {
        T::I32 => ValType::I32,
        T::I64 => ValType::I64,
    }
}

/// Required and optional exports with their signatures (module-abi §1 step 2, §4).
const REQUIRED_EXPORTS: &[(&str, &[T], &[T])] = &[
    ("__describe_module__", &[I32], &[]),
    (
        "__call_reducer__",
        &[I32, I64, I64, I64, I64, I64, I64, I64, I32, I32],
        &[I32],
    ),
];

const OPTIONAL_EXPORTS: &[(&str, &[T], &[T])] = &[
    ("__setup__", &[I32], &[I32]),
    (
        "__call_procedure__",
        &[I32, I64, I64, I64, I64, I64, I64, I64, I32, I32],
        &[I32],
    ),
    (
        "__call_view__",
        &[I32, I64, I64, I64, I64, I32, I32],
        &[I32],
    ),
    ("__call_view_anon__", &[I32, I32, I32], &[I32]),
    (
        "__call_http_handler__",
        &[I32, I64, I32, I32, I32, I32],
        &[I32],
    ),
];

/// The ABI version a module needs: `10.<max minor it imports>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiVersion {
    pub major: u32,
    pub minor: u32,
}

/// Checks every import and export of `module`; returns the ABI version it needs.
pub(crate) fn check(module: &Module) -> Result<AbiVersion, LoadError> {
    let engine = module.engine();
    let mut minor_needed = 0;
    for import in module.imports() {
        let namespace = import.module();
        let Some(version) = namespace.strip_prefix("spacetime_") else {
            return Err(LoadError::UnknownImport {
                namespace: namespace.to_owned(),
                name: import.name().to_owned(),
            });
        };
        let (major, minor) = parse_version(version).ok_or_else(|| LoadError::UnknownImport {
            namespace: namespace.to_owned(),
            name: import.name().to_owned(),
        })?;
        if major != ABI_MAJOR || minor > ABI_MINOR_MAX {
            return Err(LoadError::UnsupportedAbi { major, minor });
        }
        let Some(known) = IMPORTS
            .iter()
            .find(|known| known.name == import.name() && known.minor == minor)
        else {
            return Err(LoadError::UnknownImport {
                namespace: namespace.to_owned(),
                name: import.name().to_owned(),
            });
        };
        let ExternType::Func(actual) = import.ty() else {
            return Err(LoadError::BadImport {
                name: import.name().to_owned(),
                reason: "is not a function".into(),
            });
        };
        if !FuncType::eq(&actual, &known.func_type(engine)) {
            return Err(LoadError::BadImport {
                name: import.name().to_owned(),
                reason: format!(
                    "has signature {actual:?}, expected {:?}",
                    known.func_type(engine)
                ),
            });
        }
        minor_needed = minor_needed.max(minor);
    }

    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        _ => {
            return Err(LoadError::BadExport {
                name: "memory".into(),
                reason: "a memory export named `memory` is required".into(),
            })
        }
    }
    for (name, params, results) in REQUIRED_EXPORTS {
        check_export(module, name, params, results, true)?;
    }
    for (name, params, results) in OPTIONAL_EXPORTS {
        check_export(module, name, params, results, false)?;
    }
    for export in module.exports() {
        if export.name().starts_with("__preinit__") {
            check_export(module, export.name(), &[], &[], true)?;
        }
    }
    Ok(AbiVersion {
        major: ABI_MAJOR,
        minor: minor_needed,
    })
}

fn check_export(
    module: &Module,
    name: &str,
    params: &[T],
    results: &[T],
    required: bool,
) -> Result<(), LoadError> {
    let bad = |reason: String| LoadError::BadExport {
        name: name.to_owned(),
        reason,
    };
    match module.get_export(name) {
        None if required => Err(bad("is missing".into())),
        None => Ok(()),
        Some(ExternType::Func(actual)) => {
            let expected = FuncType::new(
                module.engine(),
                params.iter().map(val_type),
                results.iter().map(val_type),
            );
            if FuncType::eq(&actual, &expected) {
                Ok(())
            } else {
                Err(bad(format!(
                    "has signature {actual:?}, expected {expected:?}"
                )))
            }
        }
        Some(_) => Err(bad("is not a function".into())),
    }
}

/// Parses `"<major>.<minor>"`.
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}
