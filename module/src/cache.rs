//! Compiled modules, kept so each distinct module is compiled once per host.
//!
//! Owns: the content hash of a module ([`module_hash`]), the in-memory cache
//! of compiled modules (moka, bounded by code size), the on-disk store of
//! precompiled artifacts and its trust rule, and the counters that say which
//! path a compile took ([`CacheStats`]).
//! Does not own: the engine configuration (`runtime`), checking imports and
//! exports, or instantiation.
//!
//! Trust rule: precompiled code is native code, so an artifact is loaded only
//! if this host wrote it. Each artifact directory has a secret key,
//! `host.key` (32 random bytes, mode 0600, created on first use). An artifact
//! file is `MAGIC ‖ MAC ‖ serialized module`, where MAC is the BLAKE3 keyed
//! hash, under that key, of the engine fingerprint, the module hash and the
//! serialized bytes. The file name carries the module hash and the engine
//! fingerprint (wasmtime's precompile-compatibility hash, its version and our
//! own engine settings), so other engine settings never even look at it. A
//! file whose MAC does not verify (tampered, truncated, written under another
//! key, renamed from another module or engine) is rejected, counted, and
//! replaced by a fresh compile. The file is read into memory once and the MAC
//! is checked on those bytes, which are the ones deserialised: a later change
//! on disk cannot reach the loaded code.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{Engine, Module};

use super::LoadError;

/// First bytes of every artifact file (format version 1).
const MAGIC: &[u8; 8] = b"ORRCWAS1";
/// Bytes before the serialized module: magic and MAC.
const HEADER_LEN: usize = MAGIC.len() + 32;
/// Name of the key file inside the artifact directory.
pub(super) const KEY_FILE: &str = "host.key";
/// Domain separation of the engine fingerprint.
const FINGERPRINT_CONTEXT: &str = "orrery tenant-host artifact fingerprint v1";

/// The content hash of a module: BLAKE3 of its wasm bytes.
pub fn module_hash(wasm: &[u8]) -> [u8; 32] {
    *blake3::hash(wasm).as_bytes()
}

/// How many compiles took which path, since the runtime was created. Shared by
/// every clone of a [`super::Runtime`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cranelift compilations from wasm bytes (cache misses and
    /// [`super::Runtime::compile_uncached`]).
    pub compiles: u64,
    /// Compiles answered by the in-memory cache.
    pub memory_hits: u64,
    /// Compiles answered by a verified artifact on disk.
    pub artifact_hits: u64,
    /// Artifact files found but refused (bad MAC, truncated, wrong format, or
    /// refused by wasmtime); each is replaced by a fresh compile.
    pub artifact_rejects: u64,
    /// Artifact files written.
    pub artifact_writes: u64,
}

#[derive(Default)]
struct Counters {
    compiles: AtomicU64,
    memory_hits: AtomicU64,
    artifact_hits: AtomicU64,
    artifact_rejects: AtomicU64,
    artifact_writes: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Why the artifact directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("artifact directory {}: {reason}", dir.display())]
pub struct ArtifactDirError {
    pub dir: PathBuf,
    pub reason: String,
}

/// The in-memory cache and, if configured, the artifact store of one engine.
pub(super) struct CompileCache {
    memory: moka::sync::Cache<[u8; 32], Module>,
    artifacts: Option<ArtifactStore>,
    counters: Counters,
}

impl CompileCache {
    /// `fingerprint_extra` is every engine setting of ours that is not
    /// already in wasmtime's compatibility hash.
    pub(super) fn new(
        engine: &Engine,
        memory_bytes: u64,
        artifact_dir: Option<&Path>,
        fingerprint_extra: &[u8],
    ) -> Result<CompileCache, ArtifactDirError> {
        let memory = moka::sync::Cache::builder()
            // Weight in KiB of code image, so a u32 weight covers 4 TiB.
            .weigher(|_hash: &[u8; 32], module: &Module| {
                let range = module.image_range();
                let bytes = (range.end as usize).saturating_sub(range.start as usize);
                u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1)
            })
            .max_capacity((memory_bytes / 1024).max(1))
            .build();
        let artifacts = artifact_dir
            .map(|dir| ArtifactStore::open(dir, fingerprint(engine, fingerprint_extra)))
            .transpose()?;
        Ok(CompileCache {
            memory,
            artifacts,
            counters: Counters::default(),
        })
    }

    pub(super) fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            compiles: c.compiles.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            artifact_hits: c.artifact_hits.load(Ordering::Relaxed),
            artifact_rejects: c.artifact_rejects.load(Ordering::Relaxed),
            artifact_writes: c.artifact_writes.load(Ordering::Relaxed),
        }
    }

    /// The compiled module of `wasm`: from memory, else from a verified
    /// artifact, else compiled (and then written as an artifact). Concurrent
    /// calls for the same bytes compile once.
    pub(super) fn get_or_compile(&self, engine: &Engine, wasm: &[u8]) -> Result<Module, LoadError> {
        let hash = module_hash(wasm);
        let entry = self
            .memory
            .entry(hash)
            .or_try_insert_with(|| -> Result<Module, String> {
                if let Some(module) = self.load_artifact(engine, &hash) {
                    return Ok(module);
                }
                let module = self.compile_uncached(engine, wasm)?;
                if let Some(store) = &self.artifacts {
                    match store.write(&hash, &module) {
                        Ok(()) => bump(&self.counters.artifact_writes),
                        Err(e) => tracing::warn!(
                            module = %hex::encode(hash),
                            error = %e,
                            "could not write the precompiled artifact"
                        ),
                    }
                }
                Ok(module)
            })
            .map_err(|e| LoadError::Compile(String::clone(&e)))?;
        if !entry.is_fresh() {
            bump(&self.counters.memory_hits);
        }
        Ok(entry.into_value())
    }

    /// Compiles `wasm` with Cranelift, touching no cache.
    pub(super) fn compile_uncached(&self, engine: &Engine, wasm: &[u8]) -> Result<Module, String> {
        bump(&self.counters.compiles);
        Module::new(engine, wasm).map_err(|e| format!("{e:#}"))
    }

    /// The module of the artifact for `hash`, if there is one this host wrote
    /// for this engine. A file that is there but fails verification is
    /// counted as a reject, logged, and yields `None`.
    pub(super) fn load_artifact(&self, engine: &Engine, hash: &[u8; 32]) -> Option<Module> {
        let store = self.artifacts.as_ref()?;
        match store.read(engine, hash) {
            Ok(Some(module)) => {
                bump(&self.counters.artifact_hits);
                Some(module)
            }
            Ok(None) => None,
            Err(reason) => {
                bump(&self.counters.artifact_rejects);
                tracing::warn!(
                    module = %hex::encode(hash),
                    path = %store.path(hash).display(),
                    %reason,
                    "rejected a precompiled artifact; compiling from wasm instead"
                );
                None
            }
        }
    }

    /// Where the artifact of `hash` lives, if artifacts are kept.
    pub(super) fn artifact_path(&self, hash: &[u8; 32]) -> Option<PathBuf> {
        self.artifacts.as_ref().map(|store| store.path(hash))
    }
}

/// Precompiled artifacts in one directory, under this host's key.
struct ArtifactStore {
    dir: PathBuf,
    key: [u8; 32],
    /// What must match for an artifact to be loadable by this engine.
    fingerprint: [u8; 32],
}

impl ArtifactStore {
    fn open(dir: &Path, fingerprint: [u8; 32]) -> Result<ArtifactStore, ArtifactDirError> {
        let error = |reason: String| ArtifactDirError {
            dir: dir.to_path_buf(),
            reason,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| error(format!("cannot create it: {e}")))?;
        let key = load_or_create_key(dir).map_err(error)?;
        Ok(ArtifactStore {
            dir: dir.to_path_buf(),
            key,
            fingerprint,
        })
    }

    /// `<module hash>-<first half of the engine fingerprint>.cwasm`.
    fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(hash),
            hex::encode(&self.fingerprint[..16])
        ))
    }

    fn mac(&self, hash: &[u8; 32], serialized: &[u8]) -> blake3::Hash {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(&self.fingerprint);
        mac.update(hash);
        mac.update(&(serialized.len() as u64).to_le_bytes());
        mac.update(serialized);
        mac.finalize()
    }

    /// `Ok(None)`: no artifact. `Err`: an artifact this host must not load.
    fn read(&self, engine: &Engine, hash: &[u8; 32]) -> Result<Option<Module>, String> {
        let bytes = match fs::read(self.path(hash)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not an artifact file (short, or wrong magic)".into());
        }
        let stored: [u8; 32] = bytes[MAGIC.len()..HEADER_LEN]
            .try_into()
            .expect("the header holds 32 MAC bytes");
        let serialized = &bytes[HEADER_LEN..];
        // `blake3::Hash` compares in constant time.
        if self.mac(hash, serialized) != blake3::Hash::from_bytes(stored) {
            return Err("MAC does not verify under this host's key".into());
        }
        // SAFETY: the MAC verifies under this directory's secret key over this
        // engine's fingerprint, this module's hash and exactly these bytes, so
        // the bytes are what `Module::serialize` produced in `write` for this
        // module on an engine with the same configuration. `deserialize`
        // copies them into its own mapping, so the file changing later cannot
        // affect the module.
        let module = unsafe { Module::deserialize(engine, serialized) }
            .map_err(|e| format!("wasmtime refused it: {e:#}"))?;
        Ok(Some(module))
    }

    /// Writes the artifact of `module` atomically and durably, readable by
    /// this host's user only (`durable::fs::write_atomic_with`).
    fn write(&self, hash: &[u8; 32], module: &Module) -> Result<(), String> {
        let serialized = module
            .serialize()
            .map_err(|e| format!("cannot serialize: {e:#}"))?;
        let path = self.path(hash);
        let mac = self.mac(hash, &serialized);
        durable::fs::write_atomic_with(&path, Some(durable::fs::MODE_OWNER_ONLY), |file| {
            file.write_all(MAGIC)?;
            file.write_all(mac.as_bytes())?;
            file.write_all(&serialized)
        })
        .map_err(|e| format!("cannot write an artifact: {e}"))
    }
}

/// A temporary name next to `path`, unique within this host.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().expect("has a file name").to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Reads `dir/host.key`, creating it (32 random bytes, mode 0600) if absent.
/// Refuses a key file of the wrong length or one others may read.
pub(super) fn load_or_create_key(dir: &Path) -> Result<[u8; 32], String> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        create_key(&path)?;
    }
    let mut file =
        fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mode = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:o}; the key must be readable by its owner only (0600)",
            path.display(),
            mode & 0o777
        ));
    }
    let mut key = Vec::with_capacity(33);
    Read::by_ref(&mut file)
        .take(33)
        .read_to_end(&mut key)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    key.try_into()
        .map_err(|key: Vec<u8>| format!("{} holds {} bytes, not 32", path.display(), key.len()))
}

/// Writes a fresh key to a temporary file and links it into place, so that
/// of two hosts starting at once exactly one key wins and nobody reads a
/// half-written key.
fn create_key(path: &Path) -> Result<(), String> {
    let mut key = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(|e| format!("cannot read random bytes for the key: {e}"))?;
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&key)?;
        file.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = fs::remove_file(&tmp);
    written.map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// What an artifact must have been compiled under to be loadable here:
/// wasmtime's precompile-compatibility hash (its version, target, compiler
/// flags, tunables and wasm features), this crate's version and our own
/// engine settings.
fn fingerprint(engine: &Engine, extra: &[u8]) -> [u8; 32] {
    use std::hash::Hash;
    let mut hasher = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(&(extra.len() as u64).to_le_bytes());
    hasher.update(extra);
    engine
        .precompile_compatibility_hash()
        .hash(&mut Blake3Writer(&mut hasher));
    *hasher.finalize().as_bytes()
}

/// Feeds a `std::hash::Hash` into BLAKE3 (stable, unlike `DefaultHasher`).
struct Blake3Writer<'a>(&'a mut blake3::Hasher);

impl std::hash::Hasher for Blake3Writer<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_key(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_key(dir.path()).unwrap(), first);
        assert_ne!(first, [0; 32]);
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_key(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create_key(dir.path()).unwrap_err();
        assert!(error.contains("0600"), "{error}");
    }

    #[test]
    fn key_file_of_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(&[7; 31])
            .unwrap();
        let error = load_or_create_key(dir.path()).unwrap_err();
        assert!(error.contains("31 bytes"), "{error}");
    }
}
