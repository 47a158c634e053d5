//! Signed modules in the `orrery` processes: the control plane's validator
//! (the module runtime), the host's verifier (the object store and the
//! control plane's public key), and the signing key file.
//!
//! Owns: [`RuntimeValidator`], [`ObjectStoreVerifier`] and
//! [`load_or_create_key`]. Does not own: the manifest format
//! (`orrery_api::manifest`), storing and signing (`control_plane`), or when
//! a module is checked (`tenant_host::registry`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use orrery_api::manifest::{SigningKey, VerifyingKey};
use orrery_objstore::{ModuleHash, ModuleStore};
use tenant_host::hosting::Host;

/// Validates modules as a host would load them: compile, check imports and
/// exports, describe, and validate the description.
pub(crate) enum RuntimeValidator {
    /// The runtime of the host in the same process (`orrery start`), whose
    /// cache then holds the compiled module the host loads next.
    Shared(Arc<Host>),
    /// A runtime of its own (`orrery control-plane`).
    Own(orrery_module::Runtime),
}

impl control_plane::ModuleValidator for RuntimeValidator {
    fn validate(&self, wasm: &[u8]) -> Result<(), String> {
        let runtime = match self {
            RuntimeValidator::Shared(host) => host.runtime(),
            RuntimeValidator::Own(runtime) => runtime,
        };
        let loaded = runtime.load(wasm).map_err(|e| e.to_string())?;
        orrery_moduledef::ModuleDef::from_bsatn(&loaded.description)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A host's check of module signatures: the signed manifest and the bytes
/// from the object store, verified with the control plane's public key.
pub(crate) struct ObjectStoreVerifier {
    pub(crate) store: ModuleStore,
    pub(crate) key: VerifyingKey,
    /// The async runtime the object store runs on; the registry calls from
    /// blocking threads.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl tenant_host::registry::ModuleVerifier for ObjectStoreVerifier {
    fn verified(&self, sha256: [u8; 32]) -> Result<Vec<u8>, String> {
        self.runtime
            .block_on(self.store.load_verified(&ModuleHash(sha256), &self.key))
            .map(|module| module.wasm)
            .map_err(|e| e.to_string())
    }
}

/// The control plane's module-signing key at `path`, made (0600) on first use.
pub(crate) fn load_or_create_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        return SigningKey::load(path)
            .with_context(|| format!("load the module signing key {}", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let key = SigningKey::generate().context("generate a module signing key")?;
    key.save(path)
        .with_context(|| format!("save the module signing key {}", path.display()))?;
    tracing::info!(path = %path.display(), key = %key.verifying_key(), "created a module signing key");
    Ok(key)
}
