//! The database registry: every database of one host process, on disk.
//!
//! Owns: the directory layout of hosted databases, creating, updating and
//! deleting them, their owners, names and lock flags, and reopening them all
//! after a restart. Layout under the root:
//! `<root>/<64-hex database identity>/` holds `storage/` (commit log and
//! snapshots, `storage::DbStorage::dir`), `module.wasm` (the current module,
//! written atomically), `database.json` (owner, names, locked flag, state
//! `creating|ready`) and `logs/` (the module log). A directory whose
//! creation did not finish is removed on open; directories whose names are
//! not database identities are left alone.
//! Does not own: running calls (`hosting`), migrations (`migrate`), HTTP
//! (`api`), or accounts and placement (control-plane).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spacetimedb_lib::Identity;
use storage::{Database, DbOptions, DbStorage, RecoveryReport};

use crate::hosting::{DatabaseSpec, Host, HostedDatabase, PublishError};
use orrery_module::update::{UpdateMode, UpdateReport};
use orrery_module::CallOptions;

const META_FILE: &str = "database.json";
const MODULE_FILE: &str = "module.wasm";
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
    NotOwner(String),
    #[error("Database is locked and cannot be deleted or cleared. Unlock it first.")]
    Locked,
    #[error("a database with identity {0} already exists")]
    AlreadyExists(String),
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

/// What `database.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    owner: String,
    names: Vec<String>,
    locked: bool,
    state: String,
    /// Hash of the module the database was created with.
    initial_program: String,
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
        write_json(&self.dir, meta)
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

struct Inner {
    databases: HashMap<Identity, Arc<Entry>>,
    names: HashMap<String, Identity>,
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
}

impl Registry {
    /// Opens the registry at `root` (created if missing) and reopens every
    /// ready database with its saved module; unfinished creations are removed.
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
        std::fs::create_dir_all(root)?;
        let registry = Registry {
            root: root.to_path_buf(),
            host,
            db_options,
            inner: Mutex::new(Inner {
                databases: HashMap::new(),
                names: HashMap::new(),
                reserved_names: Vec::new(),
                reserved_ids: Vec::new(),
            }),
            closing: tokio::sync::watch::Sender::new(false),
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
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
            let meta: Option<Meta> = std::fs::read(dir.join(META_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let wasm = std::fs::read(dir.join(MODULE_FILE)).ok();
            let (meta, wasm) = match (meta, wasm) {
                (Some(meta), Some(wasm)) if meta.state == "ready" => (meta, wasm),
                _ => {
                    tracing::warn!(database = %hex, "removing a database whose creation did not finish");
                    std::fs::remove_dir_all(&dir)?;
                    continue;
                }
            };
            let started = Instant::now();
            let owner = Identity::from_hex(&meta.owner)
                .map_err(|_| RegistryError::Storage(format!("bad owner in {hex}/{META_FILE}")))?;
            let storage = DbStorage::dir(&dir.join(STORAGE_DIR))?;
            let (db, report) = Database::open(storage, registry.db_options.clone())
                .map_err(|e| RegistryError::Storage(format!("recover database {hex}: {e}")))?;
            let spec = spec(identity, owner, &dir);
            let database = registry.host.open_database(spec, db, &wasm)?;
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
            let entry = Arc::new(Entry {
                recovery: Some(recovery),
                recovery_report: Some(report),
                identity,
                owner,
                dir,
                database,
                module_hash: Mutex::new(*blake3::hash(&wasm).as_bytes()),
                meta: Mutex::new(meta),
                publishing: Mutex::new(()),
            });
            let mut inner = lock(&registry.inner);
            for name in entry.names() {
                inner.names.insert(name, identity);
            }
            inner.databases.insert(identity, entry);
        }
        Ok(registry)
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
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
    /// name or identity.
    pub fn resolve(&self, name_or_identity: &str) -> Result<Option<Arc<Entry>>, RegistryError> {
        match parse_name_or_identity(name_or_identity)? {
            NameOrIdentity::Identity(id) => Ok(self.get(&id)),
            NameOrIdentity::Name(name) => Ok(self.lookup_name(&name).and_then(|id| self.get(&id))),
        }
    }

    /// Identities of the databases `owner` owns, sorted.
    pub fn owned_by(&self, owner: &Identity) -> Vec<Identity> {
        let mut ids: Vec<Identity> = lock(&self.inner)
            .databases
            .values()
            .filter(|e| e.owner == *owner)
            .map(|e| e.identity)
            .collect();
        ids.sort();
        ids
    }

    /// Every database.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        lock(&self.inner).databases.values().cloned().collect()
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
        if let Some(name) = &name {
            if !is_valid_name(name) {
                return Err(RegistryError::InvalidName(name.clone()));
            }
        }
        let identity = identity.unwrap_or_else(fresh_identity);
        {
            let mut inner = lock(&self.inner);
            if inner.databases.contains_key(&identity) || inner.reserved_ids.contains(&identity) {
                return Err(RegistryError::AlreadyExists(identity.to_hex().to_string()));
            }
            if let Some(name) = &name {
                if inner.names.contains_key(name) || inner.reserved_names.contains(name) {
                    return Err(RegistryError::NameTaken(name.clone()));
                }
                inner.reserved_names.push(name.clone());
            }
            inner.reserved_ids.push(identity);
        }
        let result = self.create_reserved(owner, name.clone(), identity, wasm);
        let mut inner = lock(&self.inner);
        inner.reserved_ids.retain(|i| *i != identity);
        if let Some(name) = &name {
            inner.reserved_names.retain(|n| n != name);
        }
        let entry = result?;
        for name in entry.names() {
            inner.names.insert(name, identity);
        }
        inner.databases.insert(identity, entry.clone());
        Ok(entry)
    }

    fn create_reserved(
        &self,
        owner: Identity,
        name: Option<String>,
        identity: Identity,
        wasm: &[u8],
    ) -> Result<Arc<Entry>, RegistryError> {
        let dir = self.root.join(identity.to_hex().as_str());
        if dir.exists() {
            // Not in the registry yet on disk: never overwrite what is there.
            return Err(RegistryError::AlreadyExists(identity.to_hex().to_string()));
        }
        let made = (|| {
            std::fs::create_dir_all(&dir)?;
            let hash = *blake3::hash(wasm).as_bytes();
            let mut meta = Meta {
                owner: owner.to_hex().to_string(),
                names: name.into_iter().collect(),
                locked: false,
                state: "creating".into(),
                initial_program: hex(&hash),
            };
            write_json(&dir, &meta)?;
            write_atomic(&dir.join(MODULE_FILE), wasm)?;
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
            meta.state = "ready".into();
            write_json(&dir, &meta)?;
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
            let _ = std::fs::remove_dir_all(&dir);
        }
        made
    }

    /// Republishes `wasm` to database `id` (owner only): migrates
    /// automatically, or wipes the data first when `clear` (refused while
    /// locked).
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
        let _publishing = lock(&entry.publishing);
        let mode = if clear {
            UpdateMode::ClearData {
                owner: entry.owner,
                timestamp_micros: now_micros(),
            }
        } else {
            UpdateMode::Migrate
        };
        let report =
            self.host
                .update_database(&entry.database, wasm, options(entry.identity), mode)?;
        // The migration must be durable before the new module is the one a
        // restart loads (a crash between the two loads the old module
        // against the migrated schema; the window is one rename).
        entry
            .database
            .storage()
            .flush()
            .map_err(|e| RegistryError::Storage(e.to_string()))?;
        write_atomic(&entry.dir.join(MODULE_FILE), wasm)?;
        *lock(&entry.module_hash) = *blake3::hash(wasm).as_bytes();
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
        let Some(entry) = self.get(id) else {
            return Ok(());
        };
        if entry.owner != *caller {
            return Err(RegistryError::NotOwner(id.to_hex().to_string()));
        }
        if entry.locked() {
            return Err(RegistryError::Locked);
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
        // Unfinished creations are removed on open, so mark first.
        {
            let mut meta = lock(&entry.meta);
            meta.state = "creating".into();
            let _ = entry.save_meta(&meta);
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
        let entry = self
            .get(id)
            .ok_or_else(|| RegistryError::NotFound(id.to_hex().to_string()))?;
        if entry.owner != *caller {
            return Err(RegistryError::NotOwner(id.to_hex().to_string()));
        }
        Ok(entry)
    }
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
    Identity::from_claims(LOCAL_ISSUER, &uuid_v4())
}

/// A random UUIDv4 in its text form.
pub fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `N` bytes from the system's secure random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn write_json(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    write_atomic(&dir.join(META_FILE), &bytes)
}

/// Writes `path` atomically: a temp file, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_grammar() {
        for good in ["a", "chat", "chat-2", "a-b-c", "0x", "9lives"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "Chat",
            "a_b",
            "a.b",
            "a b",
            &"ab".repeat(32),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn names_or_identities() {
        let hex = "c2".repeat(32);
        let id = Identity::from_hex(&hex).unwrap();
        assert_eq!(
            parse_name_or_identity(&hex).unwrap(),
            NameOrIdentity::Identity(id)
        );
        assert_eq!(
            parse_name_or_identity(&format!("0x{hex}")).unwrap(),
            NameOrIdentity::Identity(id)
        );
        assert_eq!(
            parse_name_or_identity("chat").unwrap(),
            NameOrIdentity::Name("chat".into())
        );
        assert!(matches!(
            parse_name_or_identity("Chat"),
            Err(RegistryError::InvalidName(_))
        ));
    }
}
