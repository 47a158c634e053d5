//! Signed modules: what the control plane does with a module before any
//! host may run it.
//!
//! Owns: [`ModuleSigning`] (validate the wasm with the module runtime
//! through a [`ModuleValidator`], store it content-addressed with
//! `orrery_objstore::ModuleStore`, and sign its manifest with the control
//! plane's ed25519 key) and [`ControlPlane::sign_module`], which does that
//! for an account's database after checking the credential may deploy it.
//! Does not own: the manifest format (`orrery_api::manifest`), checking
//! signatures (hosts, `orrery_objstore::ModuleStore::load_verified`), or
//! running modules.

use std::sync::Arc;

use orrery_api::limits::MODULE_BYTES_MAX;
use orrery_api::manifest::{Manifest, SigningKey, VerifyingKey};
use orrery_objstore::ModuleStore;

use crate::{ControlPlane, Error, Principal, Scope};

/// Checks that a module is one hosts can run: it compiles, describes
/// itself, and its description validates. The `orrery` binary answers with
/// the module runtime; the control-plane crate never links it.
pub trait ModuleValidator: Send + Sync + 'static {
    /// `Ok` for a runnable module, the reason otherwise. Blocking (it may
    /// compile); called on a blocking thread.
    fn validate(&self, wasm: &[u8]) -> Result<(), String>;
}

/// A module stored and signed: its hash names it in the object store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedModule {
    /// 64 lowercase hex digits of the wasm's SHA-256.
    pub module_sha256: String,
    /// The version the manifest names.
    pub version: u64,
}

/// Validation, storage and signing of modules.
pub struct ModuleSigning {
    store: ModuleStore,
    key: SigningKey,
    validator: Arc<dyn ModuleValidator>,
}

impl ModuleSigning {
    pub fn new(
        store: ModuleStore,
        key: SigningKey,
        validator: Arc<dyn ModuleValidator>,
    ) -> ModuleSigning {
        ModuleSigning {
            store,
            key,
            validator,
        }
    }

    /// The key hosts verify manifests with.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Validates `wasm`, stores it at `modules/<sha256>.wasm` and its signed
    /// manifest beside it. Refuses a module over the size limit or one the
    /// validator rejects, storing nothing.
    pub async fn sign(
        &self,
        database: &str,
        version: u64,
        published_by: &str,
        published_at_ms: i64,
        wasm: Vec<u8>,
    ) -> Result<SignedModule, Error> {
        if wasm.len() > MODULE_BYTES_MAX {
            return Err(Error::invalid(format!(
                "the module is {} bytes; the limit is {MODULE_BYTES_MAX}",
                wasm.len()
            )));
        }
        let validator = self.validator.clone();
        let (wasm, valid) = tokio::task::spawn_blocking(move || {
            let valid = validator.validate(&wasm);
            (wasm, valid)
        })
        .await
        .map_err(|e| Error::Internal(format!("module validation failed: {e}")))?;
        valid.map_err(|reason| Error::invalid(format!("the module is not valid: {reason}")))?;
        let manifest = Manifest::for_module(
            database,
            &wasm,
            version,
            published_by,
            u64::try_from(published_at_ms).unwrap_or(0),
        )
        .map_err(|e| Error::invalid(format!("cannot sign the module: {e}")))?;
        let signed = self.key.sign(&manifest);
        let hash = self
            .store
            .publish(&wasm, &signed)
            .await
            .map_err(|e| Error::Internal(format!("cannot store the module: {e}")))?;
        Ok(SignedModule {
            module_sha256: hash.to_string(),
            version,
        })
    }
}

impl ControlPlane {
    /// Validates, stores and signs `wasm` as the next module version of the
    /// account's database `name`, for a credential that may deploy it. The
    /// version is recorded later, by [`ControlPlane::record_publish`], once
    /// a host runs the module.
    pub async fn sign_module(
        &self,
        principal: &Principal,
        name: &str,
        wasm: Vec<u8>,
    ) -> Result<SignedModule, Error> {
        let signing = self.signing()?;
        let database = self.authorize(principal, name, Scope::Deploy).await?;
        let latest = self.latest_module_version(&database.id).await?;
        signing
            .sign(
                name,
                latest + 1,
                &principal.identity.to_hex(),
                self.clock.now_ms(),
                wasm,
            )
            .await
    }

    /// Validates, stores and signs a module published without an account
    /// (open publishing for local development, `orrery start --dev`): the
    /// host already applied its rules; `publisher` is the minted identity.
    pub async fn sign_module_unowned(
        &self,
        database: &str,
        publisher: &str,
        wasm: Vec<u8>,
    ) -> Result<SignedModule, Error> {
        self.signing()?
            .sign(database, 0, publisher, self.clock.now_ms(), wasm)
            .await
    }

    /// The key hosts verify module manifests with, when signing is set up.
    pub fn module_verifying_key(&self) -> Option<VerifyingKey> {
        self.modules.as_ref().map(|m| m.verifying_key())
    }

    async fn latest_module_version(&self, database: &crate::DatabaseId) -> Result<u64, Error> {
        use crate::error::StoreContext;
        let latest: i64 = sqlx::query_scalar::<sqlx::Any, i64>(
            "SELECT COALESCE(MAX(version), 0) FROM module_versions WHERE database_id = $1",
        )
        .bind(database.as_str())
        .fetch_one(self.store.pool())
        .await
        .context("read the latest module version")?;
        Ok(u64::try_from(latest).unwrap_or(0))
    }

    fn signing(&self) -> Result<&ModuleSigning, Error> {
        self.modules
            .as_ref()
            .map(|m| m.as_ref())
            .ok_or_else(|| Error::Internal("module signing is not configured".into()))
    }
}
