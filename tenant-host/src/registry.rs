//! The database registry: every database of one host process, on disk.
//!
//! Owns: the directory layout of hosted databases (docs/design/registry.md),
//! creating, updating and deleting them, their owners, names and lock flags,
//! reopening them all after a restart, and the databases that failed to open
//! (kept on disk untouched and listed as broken). Layout under the root:
//! `<root>/<64-hex database identity>/` holds `storage/` (commit log and
//! snapshots, `storage::DbStorage::dir`), `modules/<64-hex BLAKE3>.wasm`
//! (module files by content hash), `database.json` (owner, names, locked
//! flag, [`DatabaseState`], and `module`, the hash of the module serving)
//! and `logs/` (the module log). An update writes the new module file, then
//! migrates (the migration transaction records the module's hash in the
//! host's `st_module` table), then switches `module`; on open the recorded
//! hash wins, so a crash anywhere in between loads the module the schema
//! belongs to. Only a directory that provably never became ready (or whose
//! deletion was under way) is removed on open; anything that cannot be read
//! or recovered is listed broken and left as it is. Directories whose names
//! are not database identities are left alone.
//! Does not own: running calls (`hosting`), migrations (`orrery_module::update`),
//! HTTP (`orrery_edge`), or accounts and placement (control-plane).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use durable::fs::{create_dir_all_durable, write_atomic};
use serde::{Deserialize, Serialize};
use spacetimedb_lib::Identity;
use storage::{Database, DbOptions, DbStorage, RecoveryReport};

use crate::hosting::{recorded_module, DatabaseSpec, Host, HostedDatabase, PublishError};
use orrery_module::update::{UpdateMode, UpdateReport};
use orrery_module::{module_hash, CallOptions};

const META_FILE: &str = "database.json";
/// The module file of directories written before modules were stored by
/// hash; moved to `modules/` on open.
const LEGACY_MODULE_FILE: &str = "module.wasm";
const MODULES_DIR: &str = "modules";
const STORAGE_DIR: &str = "storage";
const LOG_DIR: &str = "logs";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("database `{0}` not found")]
    NotFound(String),
    #[error("`{0}` is not a valid database name")]
    InvalidName(String),
    #[error("Cannot rename to {0} because it already is in use.")]
    NameTaken(String),
    #[error("the caller does not own database {0}")]
    NotOwner(Identity),
    #[error("Database is locked and cannot be deleted or cleared. Unlock it first.")]
    Locked,
    #[error("a database with identity {0} already exists")]
    AlreadyExists(Identity),
    /// The database exists on this host but did not open; its files are kept.
    #[error(
        "database {identity} is unavailable: {}; its data is kept on the host for an operator to repair",
        reason.describe()
    )]
    Broken {
        identity: Identity,
        reason: BrokenReason,
    },
    /// The module is not one the control plane signed, or its signed copy
    /// does not match (see [`ModuleVerifier`]).
    #[error("module refused: {0}")]
    Unverified(String),
    #[error(transparent)]
    Publish(Box<PublishError>),
    #[error("database storage: {0}")]
    Storage(String),
    #[error("registry i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<PublishError> for RegistryError {
    fn from(e: PublishError) -> RegistryError {
        RegistryError::Publish(Box::new(e))
    }
}

/// The `state` of `database.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseState {
    /// Being created: never acknowledged to anyone; removed on open.
    Creating,
    /// Created and serving.
    Ready,
    /// Its owner deleted it; the removal finishes on open if a crash cut it.
    Deleting,
}

/// What `database.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    owner: String,
    names: Vec<String>,
    locked: bool,
    state: DatabaseState,
    /// Hash of the module the database was created with.
    initial_program: String,
    /// Hex BLAKE3 of the module serving (`modules/<module>.wasm`). Absent in
    /// directories written before modules were stored by hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    /// The durability mode the control plane chose (`local`,
    /// `object-store`); absent: the host's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    durability: Option<String>,
    /// Days of point-in-time history the control plane chose to keep (0:
    /// everything); absent: the host's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retention_days: Option<u32>,
}

/// Why a database of this host did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenReason {
    /// `database.json` is missing, unreadable or does not parse.
    Metadata,
    /// The module file is missing, unreadable, or not the bytes its hash names.
    Module,
    /// The storage did not recover.
    Storage,
    /// The module does not load against the stored database.
    Load,
    /// Opening it panicked (a broken invariant in its data or in the host).
    Panic,
    /// No signed manifest vouches for its module, or the signed copy is
    /// tampered (see [`ModuleVerifier`]).
    Unverified,
}

impl BrokenReason {
    /// The `reason` label of the metric.
    pub fn label(self) -> &'static str {
        match self {
            BrokenReason::Metadata => "metadata",
            BrokenReason::Module => "module",
            BrokenReason::Storage => "storage",
            BrokenReason::Load => "load",
            BrokenReason::Panic => "panic",
            BrokenReason::Unverified => "unverified_module",
        }
    }

    /// What callers are told (details stay in the host's log).
    pub fn describe(self) -> &'static str {
        match self {
            BrokenReason::Metadata => "its metadata cannot be read",
            BrokenReason::Module => "its module file cannot be read",
            BrokenReason::Storage => "its storage did not recover",
            BrokenReason::Load => "its module does not load against its stored data",
            BrokenReason::Panic => "opening it failed unexpectedly",
            BrokenReason::Unverified => "its module is not one the control plane signed",
        }
    }
}

/// A database whose directory is on this host but which did not open. Its
/// files are left as they were; the next start tries again.
#[derive(Debug)]
pub struct BrokenDatabase {
    identity: Identity,
    owner: Option<Identity>,
    names: Vec<String>,
    dir: PathBuf,
    reason: BrokenReason,
    detail: String,
}

impl BrokenDatabase {
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// `None` when `database.json` could not be read.
    pub fn owner(&self) -> Option<Identity> {
        self.owner
    }

    /// Empty when `database.json` could not be read.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn reason(&self) -> BrokenReason {
        self.reason
    }

    /// The error, for operators (the host's log has it too).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    fn error(&self) -> RegistryError {
        RegistryError::Broken {
            identity: self.identity,
            reason: self.reason,
        }
    }
}

/// One hosted database of the registry.
pub struct Entry {
    identity: Identity,
    owner: Identity,
    dir: PathBuf,
    database: HostedDatabase,
    meta: Mutex<Meta>,
    /// BLAKE3 of the current module.
    module_hash: Mutex<[u8; 32]>,
    /// Serialises updates of this database.
    publishing: Mutex<()>,
    /// How long opening (recovering) it took when the registry opened.
    recovery: Option<Duration>,
    /// What that recovery found (snapshot used, records replayed).
    recovery_report: Option<RecoveryReport>,
}

impl Entry {
    pub fn identity(&self) -> Identity {
        self.identity
    }

    pub fn owner(&self) -> Identity {
        self.owner
    }

    pub fn database(&self) -> &HostedDatabase {
        &self.database
    }

    /// How long recovery took when the process opened this database; `None`
    /// for databases created since.
    pub fn recovery_time(&self) -> Option<Duration> {
        self.recovery
    }

    /// What recovery found when the process opened this database; `None`
    /// for databases created since.
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.recovery_report.as_ref()
    }

    pub fn names(&self) -> Vec<String> {
        lock(&self.meta).names.clone()
    }

    pub fn locked(&self) -> bool {
        lock(&self.meta).locked
    }

    /// The durability mode the control plane chose for this database
    /// (`None`: the host's default; an unknown name counts as none).
    pub fn durability(&self) -> Option<orrery_api::Durability> {
        lock(&self.meta).durability.as_deref()?.parse().ok()
    }

    /// Days of history the control plane chose to keep (`None`: the
    /// host's default; 0: everything).
    pub fn retention_days(&self) -> Option<u32> {
        lock(&self.meta).retention_days
    }

    /// BLAKE3 of the module serving now.
    pub fn module_hash(&self) -> [u8; 32] {
        *lock(&self.module_hash)
    }

    /// Hex of the hash of the module the database was created with.
    pub fn initial_program(&self) -> String {
        lock(&self.meta).initial_program.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn save_meta(&self, meta: &Meta) -> std::io::Result<()> {
        write_meta(&self.dir, meta)
    }
}

/// `{name_or_identity}` as written by a client (client-protocol §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOrIdentity {
    Identity(Identity),
    Name(String),
}

/// Parses a path segment: 64 hex digits (optional `0x`) are an identity,
/// anything else must be a valid database name.
pub fn parse_name_or_identity(s: &str) -> Result<NameOrIdentity, RegistryError> {
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(identity) = Identity::from_hex(hex) {
            return Ok(NameOrIdentity::Identity(identity));
        }
    }
    if is_valid_name(s) {
        Ok(NameOrIdentity::Name(s.to_owned()))
    } else {
        Err(RegistryError::InvalidName(s.to_owned()))
    }
}

/// The database name grammar: `a-z0-9` and single inner hyphens; never 64 hex digits.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 256 {
        return false;
    }
    if bytes.len() == 64 && bytes.iter().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !word(bytes[0]) {
        return false;
    }
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'-' {
            if !bytes.get(i + 1).is_some_and(|&n| word(n)) {
                return false;
            }
        } else if !word(b) {
            return false;
        }
    }
    true
}

/// The file under the registry root naming the names whose first publish
/// failed (`{"<name>": {"identity": "<hex>", "owner": "<hex>"}}`).
pub const DANGLING_FILE: &str = "dangling-names.json";

/// A name registered by a failed first publish.
#[derive(Clone, Copy, Debug)]
struct Dangling {
    identity: Identity,
    owner: Identity,
}

#[derive(Serialize, Deserialize)]
struct DanglingFile {
    identity: String,
    owner: String,
}

/// What [`Registry::name_target`] finds a name registered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameTarget {
    /// A database (serving or broken).
    Database(Identity),
    /// An identity whose first publish failed: no database yet.
    NoDatabase { identity: Identity, owner: Identity },
}

struct Inner {
    databases: HashMap<Identity, Arc<Entry>>,
    /// Databases that did not open; their names stay taken.
    broken: HashMap<Identity, Arc<BrokenDatabase>>,
    names: HashMap<String, Identity>,
    /// Names whose first publish failed: registered to an identity with no
    /// database, owned by the publisher (also in `names`, so they stay
    /// taken). The next publish under the name creates that identity.
    dangling: HashMap<String, Dangling>,
    /// Names and identities of creations under way.
    reserved_names: Vec<String>,
    reserved_ids: Vec<Identity>,
}

/// Every database of this host process.
pub struct Registry {
    root: PathBuf,
    host: Arc<Host>,
    /// Storage options of every database opened or created here.
    db_options: DbOptions,
    inner: Mutex<Inner>,
    /// Becomes true when the process starts shutting down; long-running
    /// requests (log followers) end then.
    closing: tokio::sync::watch::Sender<bool>,
    /// Where module bytes are checked before they run; `None` runs what
    /// publishers send (a host without a control plane).
    verifier: Option<Arc<dyn ModuleVerifier>>,
    /// Modules the verifier refused since the process started.
    refused_modules: std::sync::atomic::AtomicU64,
    /// Where databases are copied to and restored from; `None` keeps them
    /// on this host only.
    replica: Option<Arc<dyn Replica>>,
}

/// The control plane's signature on a module, as a host checks it.
///
/// With a verifier the registry runs a module (at publish and at every
/// open) only after it answers with bytes equal to the module's: the
/// implementation fetches the signed manifest of the module's SHA-256,
/// checks it with the control plane's public key, and checks the stored
/// bytes against it. Called from blocking contexts only.
pub trait ModuleVerifier: Send + Sync + 'static {
    /// The signed bytes of the module whose SHA-256 is `sha256`, or why
    /// there are none (unsigned, tampered, unreachable).
    fn verified(&self, sha256: [u8; 32]) -> Result<Vec<u8>, String>;
}

/// A copy of the host's databases kept elsewhere (the object store), so that
/// losing the host's directory loses nothing the copy holds.
///
/// The registry asks it for databases missing here at open, hands it every
/// database that opens or is created, and tells it of deletions. Called
/// from blocking contexts only.
pub trait Replica: Send + Sync + 'static {
    /// The databases the copy holds that this host serves.
    fn databases(&self) -> Result<Vec<Identity>, String>;
    /// Writes the directory `dir` (absent) of database `identity` from the
    /// copy: its `database.json`, module files and storage. `dir` appears
    /// whole or not at all.
    fn restore(&self, identity: Identity, dir: &Path) -> Result<(), String>;
    /// `entry` opened (or was created) and serves: copy it from now on.
    fn follow(&self, entry: &Arc<Entry>);
    /// Database `identity` is being deleted: stop copying it, and do not
    /// offer it again from [`Replica::databases`].
    fn forget(&self, identity: Identity);
    /// How copying database `identity` goes (`None` if it is not copied).
    fn status(&self, identity: Identity) -> Option<ReplicaStatus>;
}

/// How copying one database to a [`Replica`] goes, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The last offset the copy holds.
    pub shipped_through: Option<u64>,
    /// Failed attempts since the process started.
    pub failures_total: u64,
    /// Failed attempts since the last success (0 when healthy).
    pub failing_for: u64,
    /// Another host took the database over; this one stopped copying it.
    pub fenced: bool,
}

/// The files of a database directory a [`Replica`] copies besides the
/// storage: `database.json` and each module file, as (name relative to the
/// directory, path).
pub fn replicated_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join(MODULES_DIR)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_module = name
                .strip_suffix(".wasm")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_module {
                files.push((format!("{MODULES_DIR}/{name}"), entry.path()));
            }
        }
    }
    files.sort();
    // Last, so a copy never names a module file it does not hold yet.
    files.push((META_FILE.to_owned(), dir.join(META_FILE)));
    files
}

/// Where a database directory keeps its storage (`storage::DbStorage::dir`).
pub fn storage_dir(dir: &Path) -> PathBuf {
    dir.join(STORAGE_DIR)
}

/// What opening one database directory came to.
enum Opened {
    Serving(Arc<Entry>),
    Broken(Arc<BrokenDatabase>),
    /// An unfinished creation or deletion, removed.
    Removed,
}

/// Why one directory did not open, before it becomes a [`BrokenDatabase`].
struct Failure {
    reason: BrokenReason,
    detail: String,
}

fn failure(reason: BrokenReason, detail: impl std::fmt::Display) -> Failure {
    Failure {
        reason,
        detail: detail.to_string(),
    }
}

impl Registry {
    /// Opens the registry at `root` (created if missing) and reopens every
    /// ready database with its module. Unfinished creations and deletions
    /// are removed; a database that cannot be read or recovered is listed
    /// broken ([`Registry::broken`]), logged, and left on disk as it is,
    /// while every other database serves. Fails only when `root` itself
    /// cannot be created or listed.
    pub fn open(root: &Path, host: Arc<Host>) -> Result<Registry, RegistryError> {
        Registry::open_with(root, host, DbOptions::default())
    }

    /// [`Registry::open`] with the storage options (snapshot policy, segment
    /// size) of every database it opens or creates.
    pub fn open_with(
        root: &Path,
        host: Arc<Host>,
        db_options: DbOptions,
    ) -> Result<Registry, RegistryError> {
        Registry::open_verified(root, host, db_options, None)
    }

    /// [`Registry::open_with`] where every module runs only after
    /// `verifier` vouches for it: at publish (refused with
    /// [`RegistryError::Unverified`]) and at open (listed broken with
    /// [`BrokenReason::Unverified`]).
    pub fn open_verified(
        root: &Path,
        host: Arc<Host>,
        db_options: DbOptions,
        verifier: Option<Arc<dyn ModuleVerifier>>,
    ) -> Result<Registry, RegistryError> {
        Registry::open_replicated(root, host, db_options, verifier, None)
    }

    /// [`Registry::open_verified`] with a [`Replica`]: databases the replica
    /// holds that `root` lacks are restored from it first, and every
    /// database that opens or is created is handed to it.
    pub fn open_replicated(
        root: &Path,
        host: Arc<Host>,
        db_options: DbOptions,
        verifier: Option<Arc<dyn ModuleVerifier>>,
        replica: Option<Arc<dyn Replica>>,
    ) -> Result<Registry, RegistryError> {
        create_dir_all_durable(root)?;
        if let Some(replica) = &replica {
            restore_missing(root, replica.as_ref())?;
        }
        let registry = Registry {
            root: root.to_path_buf(),
            host,
            db_options,
            verifier,
            replica,
            refused_modules: std::sync::atomic::AtomicU64::new(0),
            inner: Mutex::new(Inner {
                databases: HashMap::new(),
                broken: HashMap::new(),
                names: HashMap::new(),
                dangling: HashMap::new(),
                reserved_names: Vec::new(),
                reserved_ids: Vec::new(),
            }),
            closing: tokio::sync::watch::Sender::new(false),
        };
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(root)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
        dirs.sort();
        for dir in dirs {
            let Some(hex) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if hex.len() != 64 {
                continue;
            }
            let Ok(identity) = Identity::from_hex(&hex) else {
                continue;
            };
            let (id, names) = match registry.open_dir(identity, dir) {
                Opened::Removed => continue,
                Opened::Serving(entry) => {
                    if let Some(replica) = &registry.replica {
                        replica.follow(&entry);
                    }
                    let names = entry.names();
                    lock(&registry.inner).databases.insert(identity, entry);
                    (identity, names)
                }
                Opened::Broken(broken) => {
                    let names = broken.names.clone();
                    lock(&registry.inner).broken.insert(identity, broken);
                    (identity, names)
                }
            };
            let mut inner = lock(&registry.inner);
            for name in names {
                match inner.names.get(&name) {
                    Some(other) if *other != id => tracing::error!(
                        database = %hex,
                        name = %name,
                        holder = %other.to_hex(),
                        "two databases claim one name; the first keeps it"
                    ),
                    _ => {
                        inner.names.insert(name, id);
                    }
                }
            }
        }
        registry.load_dangling()?;
        Ok(registry)
    }

    /// Reads [`DANGLING_FILE`]: names still taken by a failed first publish
    /// and not since given to a database. An unreadable file is logged and
    /// the names are free again (nothing but a name is lost).
    fn load_dangling(&self) -> Result<(), RegistryError> {
        let path = self.root.join(DANGLING_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let saved: HashMap<String, DanglingFile> = match serde_json::from_slice(&bytes) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the names of failed first publishes; they are free again");
                return Ok(());
            }
        };
        let mut inner = lock(&self.inner);
        for (name, saved) in saved {
            let (Ok(identity), Ok(owner)) = (
                Identity::from_hex(&saved.identity),
                Identity::from_hex(&saved.owner),
            ) else {
                continue;
            };
            if !is_valid_name(&name)
                || inner.names.contains_key(&name)
                || inner.databases.contains_key(&identity)
                || inner.broken.contains_key(&identity)
            {
                continue;
            }
            inner.names.insert(name.clone(), identity);
            inner.dangling.insert(name, Dangling { identity, owner });
        }
        Ok(())
    }

    /// Writes [`DANGLING_FILE`] from `inner` (under its lock, so writes
    /// follow the changes in order).
    fn save_dangling(&self, inner: &Inner) -> Result<(), RegistryError> {
        let saved: HashMap<&String, DanglingFile> = inner
            .dangling
            .iter()
            .map(|(name, d)| {
                (
                    name,
                    DanglingFile {
                        identity: d.identity.to_hex().to_string(),
                        owner: d.owner.to_hex().to_string(),
                    },
                )
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&saved)
            .map_err(|e| RegistryError::Io(std::io::Error::other(e)))?;
        write_atomic(&self.root.join(DANGLING_FILE), &bytes)?;
        Ok(())
    }

    /// Frees the names a failed first publish of `caller` left on
    /// `identity` (the owner deleting a database that never came to be).
    pub fn forget_dangling(
        &self,
        identity: &Identity,
        caller: &Identity,
    ) -> Result<(), RegistryError> {
        let mut inner = lock(&self.inner);
        let names: Vec<String> = inner
            .dangling
            .iter()
            .filter(|(_, d)| d.identity == *identity && d.owner == *caller)
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        for name in &names {
            inner.dangling.remove(name);
            inner.names.remove(name);
        }
        self.save_dangling(&inner)
    }

    /// What a name is registered to: a database, or (after a failed first
    /// publish) an identity with no database yet, with its owner.
    pub fn name_target(&self, name: &str) -> Option<NameTarget> {
        let inner = lock(&self.inner);
        let identity = *inner.names.get(name)?;
        Some(match inner.dangling.get(name) {
            Some(d) => NameTarget::NoDatabase {
                identity,
                owner: d.owner,
            },
            None => NameTarget::Database(identity),
        })
    }

    /// Opens the database in `dir`, never deleting anything that might
    /// have been ready.
    fn open_dir(&self, identity: Identity, dir: PathBuf) -> Opened {
        let hex = identity.to_hex().to_string();
        let meta = match read_meta(&dir) {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                // No `database.json` and nothing but temporary files: a
                // creation that crashed before its first write.
                tracing::warn!(database = %hex, "removing a database whose creation did not finish");
                return self.remove_unfinished(identity, &dir);
            }
            Err(e) => return self.listed_broken(identity, None, Vec::new(), dir, e),
        };
        match meta.state {
            DatabaseState::Ready => {}
            DatabaseState::Creating => {
                tracing::warn!(database = %hex, "removing a database whose creation did not finish");
                return self.remove_unfinished(identity, &dir);
            }
            DatabaseState::Deleting => {
                tracing::warn!(database = %hex, "finishing the deletion of a database");
                return self.remove_unfinished(identity, &dir);
            }
        }
        let owner = match Identity::from_hex(&meta.owner) {
            Ok(owner) => owner,
            Err(_) => {
                let e = failure(
                    BrokenReason::Metadata,
                    format!("{META_FILE}: owner {:?} is not an identity", meta.owner),
                );
                return self.listed_broken(identity, None, meta.names, dir, e);
            }
        };
        // A panic while recovering (a broken invariant in this database's
        // data) is this database's failure, not the process's.
        let recovered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.recover(identity, owner, &dir, meta.clone())
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(failure(BrokenReason::Panic, message))
        });
        match recovered {
            Ok(entry) => Opened::Serving(entry),
            Err(e) => self.listed_broken(identity, Some(owner), meta.names, dir, e),
        }
    }

    /// Recovers the storage, picks the module the schema belongs to, hosts
    /// it, then settles the directory (module pointer, unreferenced module
    /// files, temporary files).
    fn recover(
        &self,
        identity: Identity,
        owner: Identity,
        dir: &Path,
        mut meta: Meta,
    ) -> Result<Arc<Entry>, Failure> {
        let hex = identity.to_hex().to_string();
        let started = Instant::now();
        let pointer = match &meta.module {
            Some(text) => Some(parse_hash(text).ok_or_else(|| {
                failure(
                    BrokenReason::Metadata,
                    format!("{META_FILE}: module {text:?} is not a hash"),
                )
            })?),
            None => None,
        };
        let storage = DbStorage::dir(&dir.join(STORAGE_DIR))
            .map_err(|e| failure(BrokenReason::Storage, e))?;
        let (db, report) = Database::open(storage, self.db_options.clone())
            .map_err(|e| failure(BrokenReason::Storage, e))?;
        let recorded = recorded_module(&db).map_err(|e| failure(BrokenReason::Storage, e))?;
        // The schema names its module; the pointer lags it by at most one
        // update (a crash between the migration's commit and the switch).
        let (hash, wasm) = match (recorded, pointer) {
            (Some(recorded), Some(pointer)) if recorded != pointer => {
                tracing::warn!(
                    database = %hex,
                    module = %hex_of(&recorded),
                    pointer = %hex_of(&pointer),
                    "an update was cut after its migration committed; finishing it"
                );
                (recorded, read_module(dir, &recorded)?)
            }
            (Some(hash), _) | (None, Some(hash)) => (hash, read_module(dir, &hash)?),
            (None, None) => {
                let path = dir.join(LEGACY_MODULE_FILE);
                let wasm = std::fs::read(&path).map_err(|e| {
                    failure(BrokenReason::Module, format!("{}: {e}", path.display()))
                })?;
                (module_hash(&wasm), wasm)
            }
        };
        let wasm = self
            .verify(&wasm)
            .map_err(|e| failure(BrokenReason::Unverified, e))?;
        let database = self
            .host
            .open_database(spec(identity, owner, dir), db, &wasm)
            .map_err(|e| failure(BrokenReason::Load, e))?;
        let recovery = started.elapsed();
        tracing::info!(
            database = %hex,
            names = ?meta.names,
            last_offset = ?report.last_offset.map(|o| o.0),
            snapshot_offset = ?report.snapshot_offset.map(|o| o.0),
            records_replayed = report.records_replayed,
            recovery_ms = recovery.as_millis() as u64,
            "database recovered"
        );
        if pointer != Some(hash) {
            // Moves a legacy `module.wasm` under `modules/`, or finishes the
            // pointer switch a crash cut. On failure the next open does it.
            let settled = store_module(dir, &hash, &wasm).and_then(|()| {
                meta.module = Some(hex_of(&hash));
                write_meta(dir, &meta)
            });
            if let Err(e) = settled {
                tracing::warn!(database = %hex, error = %e, "cannot update the module pointer");
                meta.module = pointer.map(|p| hex_of(&p));
            }
        }
        if meta.module.as_deref() == Some(hex_of(&hash).as_str()) {
            remove_unreferenced_modules(dir, &hash);
        }
        for sub in [dir.to_path_buf(), dir.join(MODULES_DIR)] {
            match durable::fs::remove_temp_files(&sub) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(database = %hex, error = %e, "cannot remove temporary files")
                }
            }
        }
        Ok(Arc::new(Entry {
            recovery: Some(recovery),
            recovery_report: Some(report),
            identity,
            owner,
            dir: dir.to_path_buf(),
            database,
            module_hash: Mutex::new(hash),
            meta: Mutex::new(meta),
            publishing: Mutex::new(()),
        }))
    }

    /// Removes the directory of a database that provably never became ready
    /// (or whose owner deleted it). If that fails, the directory stays and
    /// the next open tries again.
    fn remove_unfinished(&self, identity: Identity, dir: &Path) -> Opened {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::error!(database = %identity.to_hex(), error = %e, "cannot remove an unfinished database");
        }
        Opened::Removed
    }

    fn listed_broken(
        &self,
        identity: Identity,
        owner: Option<Identity>,
        names: Vec<String>,
        dir: PathBuf,
        e: Failure,
    ) -> Opened {
        tracing::error!(
            database = %identity.to_hex(),
            dir = %dir.display(),
            reason = e.reason.label(),
            error = %e.detail,
            "database did not open; it is listed broken and its files are left as they are"
        );
        Opened::Broken(Arc::new(BrokenDatabase {
            identity,
            owner,
            names,
            dir,
            reason: e.reason,
            detail: e.detail,
        }))
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Opens a database directory written under the root by someone else
    /// (a restore) and serves it: its names must be free.
    pub fn adopt(&self, identity: Identity) -> Result<Arc<Entry>, RegistryError> {
        let dir = self.root.join(identity.to_hex().as_str());
        let entry = match self.open_dir(identity, dir) {
            Opened::Serving(entry) => entry,
            Opened::Broken(broken) => return Err(broken.error()),
            Opened::Removed => return Err(RegistryError::NotFound(identity.to_hex().to_string())),
        };
        let mut inner = lock(&self.inner);
        if let Some(taken) = entry
            .names()
            .into_iter()
            .find(|n| inner.names.contains_key(n))
        {
            return Err(RegistryError::NameTaken(taken));
        }
        for name in entry.names() {
            inner.names.insert(name, identity);
        }
        inner.databases.insert(identity, entry.clone());
        if let Some(replica) = &self.replica {
            replica.follow(&entry);
        }
        Ok(entry)
    }

    /// The folder holding every database directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How copying database `id` to the replica goes; `None` without a
    /// replica or before it follows the database.
    pub fn replica_status(&self, id: &Identity) -> Option<ReplicaStatus> {
        self.replica.as_ref()?.status(*id)
    }

    /// Modules the verifier refused since the process started (at publish
    /// or at open).
    pub fn refused_modules(&self) -> u64 {
        self.refused_modules
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `wasm` as the verifier vouches for it (the bytes to run), or why not.
    /// Without a verifier, `wasm` itself.
    fn verify(&self, wasm: &[u8]) -> Result<Vec<u8>, RegistryError> {
        let Some(verifier) = &self.verifier else {
            return Ok(wasm.to_vec());
        };
        let sha256 = orrery_api::manifest::sha256(wasm);
        let refused = |why: String| {
            self.refused_modules
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                module_sha256 = %hex::encode(sha256),
                reason = %why,
                "refusing a module that is not signed by the control plane"
            );
            RegistryError::Unverified(why)
        };
        match verifier.verified(sha256) {
            Ok(signed) if signed == wasm => Ok(signed),
            Ok(_) => Err(refused(format!(
                "the signed copy of module {} differs from the bytes here",
                hex::encode(sha256)
            ))),
            Err(why) => Err(refused(why)),
        }
    }

    /// Tells long-running requests that the process is shutting down.
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Registry::begin_shutdown`] was called.
    pub async fn shutting_down(&self) {
        let mut closing = self.closing.subscribe();
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// The database with this identity.
    pub fn get(&self, identity: &Identity) -> Option<Arc<Entry>> {
        lock(&self.inner).databases.get(identity).cloned()
    }

    /// The database a name is registered to.
    pub fn lookup_name(&self, name: &str) -> Option<Identity> {
        lock(&self.inner).names.get(name).copied()
    }

    /// Resolves `{name_or_identity}`: `Ok(None)` for a valid but unknown
    /// name or identity, [`RegistryError::Broken`] for a database that did
    /// not open.
    pub fn resolve(&self, name_or_identity: &str) -> Result<Option<Arc<Entry>>, RegistryError> {
        let id = match parse_name_or_identity(name_or_identity)? {
            NameOrIdentity::Identity(id) => id,
            NameOrIdentity::Name(name) => match self.lookup_name(&name) {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        let inner = lock(&self.inner);
        if let Some(broken) = inner.broken.get(&id) {
            return Err(broken.error());
        }
        Ok(inner.databases.get(&id).cloned())
    }

    /// Identities of the databases `owner` owns (broken ones included), sorted.
    pub fn owned_by(&self, owner: &Identity) -> Vec<Identity> {
        let inner = lock(&self.inner);
        let serving = inner
            .databases
            .values()
            .filter(|e| e.owner == *owner)
            .map(|e| e.identity);
        let broken = inner
            .broken
            .values()
            .filter(|b| b.owner == Some(*owner))
            .map(|b| b.identity);
        let mut ids: Vec<Identity> = serving.chain(broken).collect();
        ids.sort();
        ids
    }

    /// Every database that serves.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        lock(&self.inner).databases.values().cloned().collect()
    }

    /// Every database that did not open, sorted by identity.
    pub fn broken(&self) -> Vec<Arc<BrokenDatabase>> {
        let mut broken: Vec<_> = lock(&self.inner).broken.values().cloned().collect();
        broken.sort_by_key(|b| b.identity);
        broken
    }

    /// The error every request for `id` gets if it did not open.
    fn check_not_broken(&self, id: &Identity) -> Result<(), RegistryError> {
        match lock(&self.inner).broken.get(id) {
            Some(broken) => Err(broken.error()),
            None => Ok(()),
        }
    }

    /// First publish: a database owned by `owner` with identity `identity`
    /// (fresh when `None`) and optionally the name `name`. Nothing is left
    /// behind on failure.
    pub fn create(
        &self,
        owner: Identity,
        name: Option<String>,
        identity: Option<Identity>,
        wasm: &[u8],
    ) -> Result<Arc<Entry>, RegistryError> {
        self.create_with(owner, name, identity, wasm, Default::default())
    }

    /// [`Registry::create`] with the settings the control plane chose for
    /// the database (kept in its `database.json`).
    pub fn create_with(
        &self,
        owner: Identity,
        name: Option<String>,
        identity: Option<Identity>,
        wasm: &[u8],
        settings: orrery_api::DatabaseSettings,
    ) -> Result<Arc<Entry>, RegistryError> {
        if let Some(name) = &name {
            if !is_valid_name(name) {
                return Err(RegistryError::InvalidName(name.clone()));
            }
        }
        let mut name = name;
        let identity = {
            let mut inner = lock(&self.inner);
            // Creating by the identity a failed first publish left under a
            // name: that name, if the publisher's; taken otherwise.
            if let (true, Some(wanted)) = (name.is_none(), identity) {
                let held = inner.dangling.iter().find(|(_, d)| d.identity == wanted);
                if let Some((held, d)) = held {
                    if d.owner != owner {
                        return Err(RegistryError::AlreadyExists(wanted));
                    }
                    name = Some(held.clone());
                }
            }
            // A name left by this owner's failed first publish keeps its
            // identity; anyone else finds the name taken.
            let dangling = name.as_ref().and_then(|n| inner.dangling.get(n));
            let identity = match (dangling, identity) {
                (Some(d), None) if d.owner == owner => d.identity,
                (Some(d), Some(wanted)) if d.owner == owner && d.identity == wanted => wanted,
                (Some(_), _) => {
                    return Err(RegistryError::NameTaken(name.unwrap_or_default()));
                }
                (None, identity) => identity.unwrap_or_else(fresh_identity),
            };
            if let Some(broken) = inner.broken.get(&identity) {
                return Err(broken.error());
            }
            if inner.databases.contains_key(&identity) || inner.reserved_ids.contains(&identity) {
                return Err(RegistryError::AlreadyExists(identity));
            }
            if let Some(name) = &name {
                let ours = inner.dangling.contains_key(name);
                if (!ours && inner.names.contains_key(name)) || inner.reserved_names.contains(name)
                {
                    return Err(RegistryError::NameTaken(name.clone()));
                }
                inner.reserved_names.push(name.clone());
            }
            inner.reserved_ids.push(identity);
            identity
        };
        let result = self
            .verify(wasm)
            .and_then(|wasm| self.create_reserved(owner, name.clone(), identity, &wasm, settings));
        let mut inner = lock(&self.inner);
        inner.reserved_ids.retain(|i| *i != identity);
        if let Some(name) = &name {
            inner.reserved_names.retain(|n| n != name);
        }
        let entry = match result {
            Ok(entry) => entry,
            Err(e) => {
                // As the reference: the name stays registered to the
                // identity, which has no database; lookups of the name
                // resolve, and the database routes answer "No such
                // database." until a publish succeeds.
                if let Some(name) = name {
                    if !inner.dangling.contains_key(&name) {
                        inner.names.insert(name.clone(), identity);
                        inner.dangling.insert(name, Dangling { identity, owner });
                        if let Err(save) = self.save_dangling(&inner) {
                            tracing::warn!(error = %save, "cannot record the name of a failed first publish");
                        }
                    }
                }
                return Err(e);
            }
        };
        let was_dangling = entry
            .names()
            .iter()
            .any(|n| inner.dangling.remove(n).is_some());
        for name in entry.names() {
            inner.names.insert(name, identity);
        }
        inner.databases.insert(identity, entry.clone());
        if let Some(replica) = &self.replica {
            replica.follow(&entry);
        }
        if was_dangling {
            if let Err(e) = self.save_dangling(&inner) {
                // The name already sits in the database's own metadata,
                // which open reads first: a stale entry there is ignored.
                tracing::warn!(error = %e, "cannot update the names of failed first publishes");
            }
        }
        Ok(entry)
    }

    fn create_reserved(
        &self,
        owner: Identity,
        name: Option<String>,
        identity: Identity,
        wasm: &[u8],
        settings: orrery_api::DatabaseSettings,
    ) -> Result<Arc<Entry>, RegistryError> {
        let dir = self.root.join(identity.to_hex().as_str());
        if dir.exists() {
            // Not in the registry yet on disk: never overwrite what is there.
            return Err(RegistryError::AlreadyExists(identity));
        }
        let made = (|| {
            create_dir_all_durable(&dir)?;
            let hash = module_hash(wasm);
            let mut meta = Meta {
                owner: owner.to_hex().to_string(),
                names: name.into_iter().collect(),
                locked: false,
                state: DatabaseState::Creating,
                initial_program: hex::encode(hash),
                module: Some(hex::encode(hash)),
                durability: settings.durability.map(|mode| mode.as_str().to_owned()),
                retention_days: settings.retention_days,
            };
            // First, so that a crash from here on leaves a directory open
            // can tell never became ready.
            write_meta(&dir, &meta)?;
            store_module(&dir, &hash, wasm)?;
            let storage = DbStorage::dir(&dir.join(STORAGE_DIR))?;
            let (db, _) = Database::open(storage, self.db_options.clone())
                .map_err(|e| RegistryError::Storage(e.to_string()))?;
            let database =
                self.host
                    .create_database(spec(identity, owner, &dir), db.clone(), wasm)?;
            if let Some(offset) = db.read().ok().and_then(|s| s.last_offset()) {
                db.wait_durable(offset)
                    .map_err(|e| RegistryError::Storage(e.to_string()))?;
            }
            meta.state = DatabaseState::Ready;
            write_meta(&dir, &meta)?;
            Ok::<_, RegistryError>(Arc::new(Entry {
                identity,
                owner,
                dir: dir.clone(),
                database,
                meta: Mutex::new(meta),
                module_hash: Mutex::new(hash),
                publishing: Mutex::new(()),
                recovery: None,
                recovery_report: None,
            }))
        })();
        if made.is_err() {
            // This creation never became ready (this call is the only one
            // that could have made it so), so nothing of value is removed.
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(database = %identity.to_hex(), error = %e, "cannot remove a failed creation; the next open removes it");
            }
        }
        made
    }

    /// Republishes `wasm` to database `id` (owner only): migrates
    /// automatically, or wipes the data first when `clear` (refused while
    /// locked).
    ///
    /// One durable step: the new module file is written first, the
    /// migration transaction records its hash (`hosting::MODULE_TABLE`), and
    /// `database.json` points at it only once that transaction is durable.
    /// A crash or failure anywhere leaves either the old module with the old
    /// schema or (recovered on open from the record) the new with the new.
    pub fn update(
        &self,
        id: &Identity,
        caller: &Identity,
        wasm: &[u8],
        clear: bool,
    ) -> Result<UpdateReport, RegistryError> {
        let entry = self.owned(id, caller)?;
        if clear && entry.locked() {
            return Err(RegistryError::Locked);
        }
        // Checked before anything changes: a refused module leaves the
        // previous one serving.
        let wasm = &self.verify(wasm)?;
        let _publishing = lock(&entry.publishing);
        let old = entry.module_hash();
        let new = module_hash(wasm);
        store_module(&entry.dir, &new, wasm)?;
        let mode = if clear {
            UpdateMode::ClearData {
                owner: entry.owner,
                timestamp_micros: self.host.clock().now_micros(),
            }
        } else {
            UpdateMode::Migrate
        };
        let report =
            match self
                .host
                .update_database(&entry.database, wasm, options(entry.identity), mode)
            {
                Ok(report) => report,
                Err(e) => {
                    // The new file may go only if no transaction names it; a
                    // failure after the commit leaves it for the next open.
                    let storage = entry.database.storage();
                    if new != old && !matches!(recorded_module(storage), Ok(Some(r)) if r == new) {
                        remove_module(&entry.dir, &new);
                    }
                    return Err(e.into());
                }
            };
        // The migration must be durable before the pointer names the new
        // module; until then a restart finds the old module recorded.
        entry
            .database
            .storage()
            .flush()
            .map_err(|e| RegistryError::Storage(e.to_string()))?;
        *lock(&entry.module_hash) = new;
        {
            let mut meta = lock(&entry.meta);
            let mut next = meta.clone();
            next.module = Some(hex::encode(new));
            // If this fails the new module still serves, and open follows
            // the record the migration committed.
            entry.save_meta(&next)?;
            *meta = next;
        }
        remove_unreferenced_modules(&entry.dir, &new);
        if clear {
            // The data the clients hold is gone: they reconnect and
            // resubscribe (client-protocol §5.9).
            entry
                .database
                .clients()
                .close_all(crate::clients::CLOSE_GOING_AWAY, "module exited");
        }
        Ok(report)
    }

    /// Deletes database `id` (owner only, not while locked). Unknown → Ok.
    pub fn delete(&self, id: &Identity, caller: &Identity) -> Result<(), RegistryError> {
        self.check_not_broken(id)?;
        let Some(entry) = self.get(id) else {
            return Ok(());
        };
        if entry.owner != *caller {
            return Err(RegistryError::NotOwner(*id));
        }
        if entry.locked() {
            return Err(RegistryError::Locked);
        }
        // Marked first, so that open finishes a removal a crash cut; if
        // marking fails nothing changed.
        {
            let mut meta = lock(&entry.meta);
            let mut next = meta.clone();
            next.state = DatabaseState::Deleting;
            entry.save_meta(&next)?;
            *meta = next;
        }
        {
            let mut inner = lock(&self.inner);
            inner.databases.remove(id);
            inner.names.retain(|_, v| v != id);
        }
        entry
            .database
            .clients()
            .close_all(crate::clients::CLOSE_GOING_AWAY, "module exited");
        if let Some(replica) = &self.replica {
            replica.forget(*id);
        }
        std::fs::remove_dir_all(&entry.dir)?;
        Ok(())
    }

    /// Registers one more name for database `id` (owner only).
    pub fn register(
        &self,
        id: &Identity,
        caller: &Identity,
        name: &str,
    ) -> Result<(), RegistryError> {
        if !is_valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_owned()));
        }
        let entry = self.owned(id, caller)?;
        let mut inner = lock(&self.inner);
        match inner.names.get(name) {
            Some(other) if other == id => return Ok(()),
            Some(_) => return Err(RegistryError::NameTaken(name.to_owned())),
            None => {}
        }
        if inner.reserved_names.iter().any(|n| n == name) {
            return Err(RegistryError::NameTaken(name.to_owned()));
        }
        let mut meta = lock(&entry.meta);
        let mut next = meta.clone();
        next.names.push(name.to_owned());
        entry.save_meta(&next)?;
        *meta = next;
        inner.names.insert(name.to_owned(), *id);
        Ok(())
    }

    /// Replaces every name of database `id` (owner only).
    pub fn replace_names(
        &self,
        id: &Identity,
        caller: &Identity,
        names: Vec<String>,
    ) -> Result<(), RegistryError> {
        if let Some(bad) = names.iter().find(|n| !is_valid_name(n)) {
            return Err(RegistryError::InvalidName(bad.clone()));
        }
        let entry = self.owned(id, caller)?;
        let mut inner = lock(&self.inner);
        for name in &names {
            let taken = inner.names.get(name).is_some_and(|other| other != id)
                || inner.reserved_names.contains(name);
            if taken {
                return Err(RegistryError::NameTaken(name.clone()));
            }
        }
        let mut meta = lock(&entry.meta);
        let mut next = meta.clone();
        next.names = Vec::new();
        for name in names {
            if !next.names.contains(&name) {
                next.names.push(name);
            }
        }
        entry.save_meta(&next)?;
        inner.names.retain(|_, v| v != id);
        for name in &next.names {
            inner.names.insert(name.clone(), *id);
        }
        *meta = next;
        Ok(())
    }

    /// Keeps `days` of point-in-time history for database `id` (the
    /// control plane's setting; 0: everything) in its `database.json`, and
    /// has the replica follow it again under that window.
    pub fn set_retention_days(&self, id: &Identity, days: u32) -> Result<(), RegistryError> {
        let entry = self
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(id.to_hex().to_string()))?;
        {
            let mut meta = lock(&entry.meta);
            let mut next = meta.clone();
            next.retention_days = Some(days);
            entry.save_meta(&next)?;
            *meta = next;
        }
        if let Some(replica) = &self.replica {
            replica.follow(&entry);
        }
        Ok(())
    }

    /// Sets the lock flag (owner only; idempotent).
    pub fn set_locked(
        &self,
        id: &Identity,
        caller: &Identity,
        locked: bool,
    ) -> Result<(), RegistryError> {
        let entry = self.owned(id, caller)?;
        let mut meta = lock(&entry.meta);
        if meta.locked != locked {
            let mut next = meta.clone();
            next.locked = locked;
            entry.save_meta(&next)?;
            *meta = next;
        }
        Ok(())
    }

    pub fn lock(&self, id: &Identity, caller: &Identity) -> Result<(), RegistryError> {
        self.set_locked(id, caller, true)
    }

    pub fn unlock(&self, id: &Identity, caller: &Identity) -> Result<(), RegistryError> {
        self.set_locked(id, caller, false)
    }

    /// Makes every committed transaction of every database durable.
    pub fn flush_all(&self) -> Result<(), RegistryError> {
        let mut first_error = None;
        for entry in self.all() {
            if let Err(e) = entry.database.storage().flush() {
                tracing::warn!(database = %entry.identity.to_hex(), error = %e, "flush failed");
                first_error.get_or_insert(RegistryError::Storage(e.to_string()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Snapshots every database whose newest snapshot is behind its last
    /// commit (at clean shutdown, after [`Registry::flush_all`], so the next
    /// open replays nothing). A failure is logged and the others go on; the
    /// first is returned.
    pub fn snapshot_all(&self) -> Result<(), RegistryError> {
        let mut first_error = None;
        for entry in self.all() {
            let database = entry.identity.to_hex();
            match entry.database.storage().snapshot_if_behind() {
                Ok(offset) => {
                    tracing::debug!(database = %database, offset = ?offset.map(|o| o.0), "snapshot at shutdown")
                }
                Err(e) => {
                    tracing::warn!(database = %database, error = %e, "snapshot at shutdown failed");
                    first_error.get_or_insert(RegistryError::Storage(e.to_string()));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn owned(&self, id: &Identity, caller: &Identity) -> Result<Arc<Entry>, RegistryError> {
        self.check_not_broken(id)?;
        let entry = self
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(id.to_hex().to_string()))?;
        if entry.owner != *caller {
            return Err(RegistryError::NotOwner(*id));
        }
        Ok(entry)
    }
}

/// Restores from `replica` every database it holds that `root` has no
/// directory for. One that fails is logged and left to the next open: its
/// copy is untouched, and nothing is served in its place.
fn restore_missing(root: &Path, replica: &dyn Replica) -> Result<(), RegistryError> {
    let held = replica.databases().map_err(|e| {
        RegistryError::Storage(format!("cannot list the databases of the replica: {e}"))
    })?;
    for identity in held {
        let dir = root.join(identity.to_hex().as_str());
        if dir.exists() {
            continue;
        }
        let started = Instant::now();
        match replica.restore(identity, &dir) {
            Ok(()) => tracing::info!(
                database = %identity.to_hex(),
                restore_ms = started.elapsed().as_millis() as u64,
                "database restored from the replica"
            ),
            Err(e) => tracing::error!(
                database = %identity.to_hex(),
                error = %e,
                "cannot restore a database from the replica; it stays there for the next start"
            ),
        }
    }
    Ok(())
}

/// Call options of database `identity`: defaults plus its identity.
pub fn options(identity: Identity) -> CallOptions {
    CallOptions {
        database_identity: identity,
        ..CallOptions::default()
    }
}

fn spec(identity: Identity, owner: Identity, dir: &Path) -> DatabaseSpec {
    let mut spec = DatabaseSpec::new(identity.to_hex().to_string(), owner, options(identity));
    spec.log_dir = Some(dir.join(LOG_DIR));
    spec
}

/// The issuer of the identities this host mints (for clients, at the edge,
/// and for new databases here).
pub const LOCAL_ISSUER: &str = "localhost";

/// A database identity derived like a minted client identity.
fn fresh_identity() -> Identity {
    Identity::from_claims(LOCAL_ISSUER, &orrery_api::ids::uuid_v4())
}

/// Hex of a module hash, as in file names and `database.json`.
fn hex_of(hash: &[u8; 32]) -> String {
    hex::encode(hash)
}

/// A module hash from its 64 hex digits.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

fn module_path(dir: &Path, hash: &[u8; 32]) -> PathBuf {
    dir.join(MODULES_DIR).join(format!("{}.wasm", hex_of(hash)))
}

/// Writes `modules/<hash>.wasm` durably unless it holds those bytes already.
fn store_module(dir: &Path, hash: &[u8; 32], wasm: &[u8]) -> std::io::Result<()> {
    let path = module_path(dir, hash);
    if std::fs::read(&path).is_ok_and(|there| module_hash(&there) == *hash) {
        return Ok(());
    }
    create_dir_all_durable(&dir.join(MODULES_DIR))?;
    write_atomic(&path, wasm)
}

/// The bytes of module `hash`: `modules/<hash>.wasm`, or a legacy
/// `module.wasm` with that hash; checked against the hash.
fn read_module(dir: &Path, hash: &[u8; 32]) -> Result<Vec<u8>, Failure> {
    let path = module_path(dir, hash);
    let (path, wasm) = match std::fs::read(&path) {
        Ok(wasm) => (path, wasm),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let legacy = dir.join(LEGACY_MODULE_FILE);
            match std::fs::read(&legacy) {
                Ok(wasm) => (legacy, wasm),
                Err(_) => {
                    return Err(failure(
                        BrokenReason::Module,
                        format!("{}: {e}", path.display()),
                    ))
                }
            }
        }
        Err(e) => {
            return Err(failure(
                BrokenReason::Module,
                format!("{}: {e}", path.display()),
            ))
        }
    };
    if module_hash(&wasm) != *hash {
        return Err(failure(
            BrokenReason::Module,
            format!(
                "{}: the bytes are not module {}",
                path.display(),
                hex_of(hash)
            ),
        ));
    }
    Ok(wasm)
}

/// Removes module `hash`'s file; best effort (a leftover is removed on open).
fn remove_module(dir: &Path, hash: &[u8; 32]) {
    let path = module_path(dir, hash);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a module file"),
    }
}

/// Removes every module file but `keep`'s, and a legacy `module.wasm`: once
/// `database.json` and the schema both name `keep`, nothing reads them.
fn remove_unreferenced_modules(dir: &Path, keep: &[u8; 32]) {
    let keep_name = format!("{}.wasm", hex_of(keep));
    let mut doomed = vec![dir.join(LEGACY_MODULE_FILE)];
    if let Ok(entries) = std::fs::read_dir(dir.join(MODULES_DIR)) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".wasm") && name != keep_name {
                doomed.push(entry.path());
            }
        }
    }
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a module file nothing points to")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a module file")
            }
        }
    }
}

/// `database.json` of `dir`: `Ok(None)` when it does not exist and the
/// directory holds nothing else but temporary files (a creation that
/// crashed before writing it); an error for anything uncertain.
fn read_meta(dir: &Path) -> Result<Option<Meta>, Failure> {
    let path = dir.join(META_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| failure(BrokenReason::Metadata, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let listed = std::fs::read_dir(dir)
                .and_then(|entries| {
                    entries
                        .map(|e| e.map(|e| e.file_name()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| failure(BrokenReason::Metadata, format!("{}: {e}", dir.display())))?;
            if listed.iter().all(|name| durable::fs::is_temp_file(name)) {
                Ok(None)
            } else {
                Err(failure(
                    BrokenReason::Metadata,
                    format!(
                        "{} is missing but the directory is not empty",
                        path.display()
                    ),
                ))
            }
        }
        Err(e) => Err(failure(
            BrokenReason::Metadata,
            format!("{}: {e}", path.display()),
        )),
    }
}

fn write_meta(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    write_atomic(&dir.join(META_FILE), &bytes)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
