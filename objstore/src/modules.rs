//! Module artifacts in the object store, content-addressed by SHA-256:
//! `modules/<sha256>.wasm` and its signed manifest `modules/<sha256>.manifest`.
//!
//! Puts overwrite (the same bytes at the same key, so repeating one is
//! harmless, and a put repairs an object damaged in place). Gets return bytes
//! as stored and check nothing; [`ModuleStore::load_verified`] is what a host
//! uses: it checks the manifest's signature, that it is the manifest of the
//! module asked for, and the module's hash, and says which failed.
//!
//! One manifest per module hash: a later publish of the same bytes replaces
//! the manifest (platform.md's layout), so the caller compares the returned
//! manifest's database and version with what it expects.

use std::fmt;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use orrery_api::limits::MODULE_BYTES_MAX;
use orrery_api::manifest::{self, Manifest, ManifestError, SignedManifest, VerifyingKey};

use crate::url::{ObjectStoreUrl, OpenError};

/// The SHA-256 of a module's bytes: its name in the object store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ModuleHash(pub [u8; 32]);

impl ModuleHash {
    /// The hash of `wasm`.
    pub fn of(wasm: &[u8]) -> Self {
        Self(manifest::sha256(wasm))
    }

    /// Parses 64 lowercase hex digits.
    pub fn parse(hex: &str) -> Option<Self> {
        manifest::from_hex::<32>(hex).map(Self)
    }

    /// `modules/<sha256>.wasm`.
    pub fn wasm_path(&self) -> ObjectPath {
        ObjectPath::from(format!("modules/{self}.wasm"))
    }

    /// `modules/<sha256>.manifest`.
    pub fn manifest_path(&self) -> ObjectPath {
        ObjectPath::from(format!("modules/{self}.manifest"))
    }
}

/// 64 lowercase hex digits.
impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&manifest::to_hex(&self.0))
    }
}

/// A module whose manifest verified and whose bytes match it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedModule {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The module's bytes.
    pub wasm: Vec<u8>,
}

/// Why a module could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleStoreError {
    /// No object at `path` (never stored, or deleted).
    #[error("module object {path} not found")]
    NotFound { path: String },
    /// The manifest at `path` is malformed, signed by another key, or its
    /// signature does not verify (tampered).
    #[error("refusing module manifest {path}: {source}")]
    BadManifest {
        path: String,
        #[source]
        source: ManifestError,
    },
    /// The manifest verified but vouches for another module than the one
    /// it is stored under (a valid manifest copied over another).
    #[error("refusing module manifest {path}: it is signed for module {found}, not {expected}")]
    ManifestForAnotherModule {
        path: String,
        expected: ModuleHash,
        found: ModuleHash,
    },
    /// The module's bytes at `path` do not hash to its manifest's hash (tampered).
    #[error("refusing module {path}: {source}")]
    BadModule {
        path: String,
        #[source]
        source: ManifestError,
    },
    /// A put was asked to store a manifest with a module it does not vouch for.
    #[error("manifest is for module {manifest}, not for the module given ({module})")]
    MismatchedPut {
        manifest: ModuleHash,
        module: ModuleHash,
    },
    /// The object store failed.
    #[error("object store failed on {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
}

impl ModuleStoreError {
    /// Whether the objects exist but were refused (tampered, foreign or
    /// malformed), as opposed to missing or unreachable.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::BadManifest { .. }
                | Self::ManifestForAnotherModule { .. }
                | Self::BadModule { .. }
        )
    }
}

/// Module artifacts and manifests in one object store.
#[derive(Clone, Debug)]
pub struct ModuleStore {
    store: Arc<dyn ObjectStore>,
}

impl ModuleStore {
    /// Module objects in `store` (keys start at its root: `modules/…`).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Opens the store named by `url` (S3 settings from the environment).
    pub fn open(url: &ObjectStoreUrl) -> Result<Self, OpenError> {
        url.open().map(Self::new)
    }

    /// The underlying store (for other prefixes of the same bucket).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores a module's bytes at `modules/<sha256>.wasm`; returns the hash.
    pub async fn put_module(&self, wasm: &[u8]) -> Result<ModuleHash, ModuleStoreError> {
        let hash = ModuleHash::of(wasm);
        self.put(&hash.wasm_path(), wasm.to_vec()).await?;
        Ok(hash)
    }

    /// Stores a signed manifest at `modules/<sha256>.manifest`, replacing any
    /// earlier manifest of the same module.
    pub async fn put_manifest(&self, signed: &SignedManifest) -> Result<(), ModuleStoreError> {
        let hash = ModuleHash(signed.manifest().module_sha256());
        self.put(&hash.manifest_path(), signed.as_bytes().to_vec())
            .await
    }

    /// Stores a module and its manifest, the module first so that a manifest
    /// is never visible before the bytes it vouches for.
    pub async fn publish(
        &self,
        wasm: &[u8],
        signed: &SignedManifest,
    ) -> Result<ModuleHash, ModuleStoreError> {
        let module = ModuleHash::of(wasm);
        let vouched = ModuleHash(signed.manifest().module_sha256());
        if module != vouched {
            return Err(ModuleStoreError::MismatchedPut {
                manifest: vouched,
                module,
            });
        }
        self.put_module(wasm).await?;
        self.put_manifest(signed).await?;
        Ok(module)
    }

    /// The stored bytes of a module, unchecked.
    pub async fn get_module(&self, hash: &ModuleHash) -> Result<Vec<u8>, ModuleStoreError> {
        self.get(&hash.wasm_path()).await
    }

    /// The stored bytes of a module's manifest, unchecked.
    pub async fn get_manifest(&self, hash: &ModuleHash) -> Result<Vec<u8>, ModuleStoreError> {
        self.get(&hash.manifest_path()).await
    }

    /// Fetches the manifest and the module stored under `hash` and returns
    /// them only if the manifest verifies under `key`, vouches for `hash`,
    /// and the module's bytes hash to it.
    pub async fn load_verified(
        &self,
        hash: &ModuleHash,
        key: &VerifyingKey,
    ) -> Result<VerifiedModule, ModuleStoreError> {
        let manifest_path = hash.manifest_path();
        let bytes = self
            .get_at_most(&manifest_path, manifest::SIGNED_MANIFEST_BYTES_MAX)
            .await?
            .map_err(|size| ModuleStoreError::BadManifest {
                path: manifest_path.to_string(),
                source: ManifestError::Malformed {
                    reason: format!("{size} bytes, larger than any manifest"),
                },
            })?;
        let manifest =
            manifest::verify(&bytes, key).map_err(|source| ModuleStoreError::BadManifest {
                path: manifest_path.to_string(),
                source,
            })?;
        let found = ModuleHash(manifest.module_sha256());
        if found != *hash {
            return Err(ModuleStoreError::ManifestForAnotherModule {
                path: manifest_path.to_string(),
                expected: *hash,
                found,
            });
        }
        let wasm_path = hash.wasm_path();
        let wasm = self
            .get_at_most(&wasm_path, MODULE_BYTES_MAX)
            .await?
            .map_err(|size| ModuleStoreError::BadModule {
                path: wasm_path.to_string(),
                source: ManifestError::HashMismatch {
                    expected: hash.to_string(),
                    actual: format!("(not read: {size} bytes, over the module size limit)"),
                },
            })?;
        manifest::verify_module(&manifest, &wasm).map_err(|source| {
            ModuleStoreError::BadModule {
                path: wasm_path.to_string(),
                source,
            }
        })?;
        Ok(VerifiedModule { manifest, wasm })
    }

    async fn put(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<(), ModuleStoreError> {
        let options = PutOptions {
            mode: PutMode::Overwrite,
            ..PutOptions::default()
        };
        self.store
            .put_opts(path, PutPayload::from(bytes), options)
            .await
            .map_err(|source| store_error(path, source))?;
        Ok(())
    }

    /// The object's bytes, or `Ok(Err(size))` without reading them when it
    /// holds more than `max` bytes.
    async fn get_at_most(
        &self,
        path: &ObjectPath,
        max: usize,
    ) -> Result<Result<Vec<u8>, u64>, ModuleStoreError> {
        let result = self
            .store
            .get(path)
            .await
            .map_err(|source| store_error(path, source))?;
        let size = result.meta.size;
        if usize::try_from(size).map_or(true, |size| size > max) {
            return Ok(Err(size));
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|source| store_error(path, source))?;
        Ok(Ok(bytes.to_vec()))
    }

    async fn get(&self, path: &ObjectPath) -> Result<Vec<u8>, ModuleStoreError> {
        let result = self
            .store
            .get(path)
            .await
            .map_err(|source| store_error(path, source))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|source| store_error(path, source))?;
        Ok(bytes.to_vec())
    }
}

fn store_error(path: &ObjectPath, source: object_store::Error) -> ModuleStoreError {
    match source {
        object_store::Error::NotFound { .. } => ModuleStoreError::NotFound {
            path: path.to_string(),
        },
        source => ModuleStoreError::Store {
            path: path.to_string(),
            source,
        },
    }
}
