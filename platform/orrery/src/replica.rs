//! The host's databases copied to the object store
//! ([`tenant_host::registry::Replica`] over `orrery_objstore`).
//!
//! Every database that opens or is created on this host is followed: the
//! host takes the next generation in its `head`, starting where the store's
//! history ends, and ships its log (within [`ShipOptions::interval`]), its
//! snapshots and its registry files (`database.json`, module files) there.
//! A host whose cache directory lacks a database the store holds restores it
//! from the store before opening (`orrery_objstore::DatabaseStore::hydrate`).
//! Deleting a database removes its `database.json` from the store, so it is
//! not restored again; its log and snapshots stay.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::commitlog::{DurableFrames, LogPosition};
use durable::snapshot::BlobStore;
use orrery_api::{Durability, TxOffset};
use orrery_edge::backups::{Backup, Backups, ForeignDatabase, InPlace, RestorePoint};
use orrery_objstore::layout::DatabaseKey;
use orrery_objstore::object_store::path::Path as ObjectPath;
use orrery_objstore::object_store::ObjectStore;
use orrery_objstore::{DatabaseStore, Heads, LocalCopy, LocalReadError, ShipOptions, ShipStatus};
use spacetimedb_lib::Identity;
use tenant_host::registry::{replicated_files, storage_dir, Entry, Replica, ReplicaStatus};

/// The longest a transaction of an `object-store` mode database waits to
/// reach the object store before the wait fails with the reason (the call
/// that waited reports it; the transaction ships once the store is back).
const DURABLE_WAIT_MAX: Duration = Duration::from_secs(30);

/// Objects younger than this are never collected (writes in flight).
const RETENTION_GRACE: Duration = Duration::from_secs(3600);

/// How long shutdown waits for each database's last shipping pass.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// The registry file every restorable database has in the store.
const META_FILE: &str = "database.json";

struct Follower {
    stop: tokio::sync::watch::Sender<bool>,
    status: Arc<ShipStatus>,
    task: tokio::task::JoinHandle<()>,
}

/// Copies databases to one object store and restores them from it.
pub(crate) struct ObjectStoreReplica {
    store: Arc<dyn ObjectStore>,
    heads: Heads,
    runtime: tokio::runtime::Handle,
    options: ShipOptions,
    /// Only databases with one of these names are restored (the ones the
    /// control plane placed on this host); `None` restores every one.
    placed: Option<HashSet<String>>,
    /// When a transaction of a database here counts as durable.
    durability: Durability,
    followers: Mutex<HashMap<Identity, Follower>>,
    /// Databases with an in-place restore running.
    restoring: Mutex<HashSet<Identity>>,
}

impl ObjectStoreReplica {
    /// The replica over the store `url` names (`file://`, `s3://`, `memory://`).
    pub(crate) fn open(
        url: &orrery_objstore::ObjectStoreUrl,
        runtime: tokio::runtime::Handle,
        placed: Option<HashSet<String>>,
        durability: Durability,
        retention_days: u64,
    ) -> anyhow::Result<ObjectStoreReplica> {
        use anyhow::Context;
        let store = url
            .open()
            .with_context(|| format!("open the object store {url}"))?;
        Ok(ObjectStoreReplica::new(
            store.clone(),
            Heads::over(url, store),
            runtime,
            ShipOptions {
                retention: retention(retention_days),
                ..ShipOptions::default()
            },
            placed,
            durability,
        ))
    }

    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        heads: Heads,
        runtime: tokio::runtime::Handle,
        options: ShipOptions,
        placed: Option<HashSet<String>>,
        durability: Durability,
    ) -> ObjectStoreReplica {
        ObjectStoreReplica {
            store,
            heads,
            runtime,
            options,
            placed,
            durability,
            followers: Mutex::new(HashMap::new()),
            restoring: Mutex::new(HashSet::new()),
        }
    }

    fn database(&self, identity: Identity) -> DatabaseStore {
        let key = DatabaseKey::new(identity.to_hex().as_str())
            .expect("64 hex digits are a valid database key");
        DatabaseStore::new(self.store.clone(), self.heads.clone(), key)
    }

    /// Stops every follower after a last pass (call after the registry's
    /// final flush and snapshots), waiting up to [`SHUTDOWN_WAIT`] each.
    pub(crate) async fn shutdown(&self) {
        let followers: Vec<(Identity, Follower)> = lock(&self.followers).drain().collect();
        for (identity, follower) in followers {
            let _ = follower.stop.send(true);
            if tokio::time::timeout(SHUTDOWN_WAIT, follower.task)
                .await
                .is_err()
            {
                tracing::warn!(
                    database = %identity.to_hex(),
                    error = ?follower.status.last_error(),
                    "the last shipping pass did not finish before shutdown"
                );
            }
        }
    }

    async fn list_databases(&self) -> Result<Vec<Identity>, String> {
        let listed = self
            .store
            .list_with_delimiter(Some(&ObjectPath::from("db")))
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for prefix in listed.common_prefixes {
            let Some(hex) = prefix.filename() else {
                continue;
            };
            let Ok(identity) = Identity::from_hex(hex) else {
                continue;
            };
            let Some(meta) = self
                .database(identity)
                .file(META_FILE)
                .await
                .map_err(|e| e.to_string())?
            else {
                continue; // deleted, or never finished its first ship
            };
            if let Some(placed) = &self.placed {
                let names = meta_names(&meta);
                if !names.iter().any(|n| placed.contains(n)) {
                    continue;
                }
            }
            out.push(identity);
        }
        Ok(out)
    }

    async fn restore_into(&self, identity: Identity, dir: &Path) -> Result<(), String> {
        let hydrated = self
            .write_directory(
                self.database(identity),
                orrery_objstore::RestorePoint::Latest,
                identity,
                dir,
                None,
            )
            .await?;
        tracing::info!(
            database = %identity.to_hex(),
            snapshot = ?hydrated.snapshot.map(|s| s.offset),
            snapshots_skipped = hydrated.skipped.len(),
            records = hydrated.records,
            log_bytes = hydrated.bytes,
            "database read back from the object store"
        );
        Ok(())
    }

    /// Writes the directory `dir` of database `identity` from `source`'s
    /// copy in the store as of `point`: storage, module files and
    /// `database.json` (last; under the name `rename` when given). Staged
    /// beside `dir` under a dot name the registry and the bare-storage scan
    /// both skip, then renamed into place, so `dir` appears whole or not
    /// at all.
    async fn write_directory(
        &self,
        database: DatabaseStore,
        point: orrery_objstore::RestorePoint,
        identity: Identity,
        dir: &Path,
        copy: Option<NewCopy<'_>>,
    ) -> Result<orrery_objstore::Hydrated, String> {
        let staging = dir.with_file_name(format!(".restoring-{}", identity.to_hex()));
        if staging.exists() {
            tokio::fs::remove_dir_all(&staging)
                .await
                .map_err(|e| format!("{}: {e}", staging.display()))?;
        }
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|e| format!("{}: {e}", staging.display()))?;
        let hydrated = database
            .hydrate_to(&storage_dir(&staging), point)
            .await
            .map_err(|e| e.to_string())?;
        let mut names = database.files().await.map_err(|e| e.to_string())?;
        if !names.iter().any(|n| n == META_FILE) {
            return Err(format!("the store holds no {META_FILE} for it"));
        }
        // `database.json` last: it names module files that must be there.
        names.sort_by_key(|n| n == META_FILE);
        for name in names {
            let Some(bytes) = database.file(&name).await.map_err(|e| e.to_string())? else {
                continue;
            };
            let bytes = match &copy {
                Some(copy) if name == META_FILE => copied_meta(&bytes, copy)?,
                _ => bytes,
            };
            let path = safe_join(&staging, &name)?;
            let write = move || {
                if let Some(parent) = path.parent() {
                    durable::fs::create_dir_all_durable(parent)?;
                }
                durable::fs::write_atomic(&path, &bytes)
            };
            tokio::task::spawn_blocking(write)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{name}: {e}"))?;
        }
        tokio::fs::rename(&staging, dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(parent) = dir.parent() {
            durable::fs::sync_dir(parent).map_err(|e| e.to_string())?;
        }
        Ok(hydrated)
    }
}

/// Garbage collection keeping `days` of point-in-time history; zero days
/// keeps every point forever.
fn retention(days: u64) -> Option<orrery_objstore::Retention> {
    (days > 0).then(|| orrery_objstore::Retention {
        window: Duration::from_secs(days.saturating_mul(86_400)),
        grace: RETENTION_GRACE,
    })
}

/// `name` (a relative `/`-separated path from the store) under `dir`;
/// refuses anything that would leave it.
fn safe_join(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let mut path = dir.to_path_buf();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
            return Err(format!("refusing the file name {name:?} from the store"));
        }
        path.push(part);
    }
    Ok(path)
}

fn meta_names(bytes: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(default)]
        names: Vec<String>,
    }
    serde_json::from_slice::<Names>(bytes)
        .map(|m| m.names)
        .unwrap_or_default()
}

impl Replica for ObjectStoreReplica {
    fn databases(&self) -> Result<Vec<Identity>, String> {
        self.runtime.block_on(self.list_databases())
    }

    fn restore(&self, identity: Identity, dir: &Path) -> Result<(), String> {
        self.runtime.block_on(self.restore_into(identity, dir))
    }

    fn follow(&self, entry: &Arc<Entry>) {
        let identity = entry.identity();
        let copy = Arc::new(HostedCopy {
            storage: entry.database().storage().clone(),
            dir: entry.dir().to_path_buf(),
        });
        let status = Arc::new(ShipStatus::default());
        let storage = entry.database().storage();
        match entry.durability().unwrap_or(self.durability) {
            // A transaction is durable once the object store holds it.
            Durability::ObjectStore => storage.set_durable_elsewhere(Some(Arc::new(Shipped {
                status: status.clone(),
            }))),
            Durability::Local => storage.set_durable_elsewhere(None),
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut options = self.options.clone();
        if let Some(days) = entry.retention_days() {
            // The control plane chose this database's window.
            options.retention = retention(days.into());
        }
        let task = self.runtime.spawn(follow_database(
            self.database(identity),
            copy,
            options,
            status.clone(),
            stopped,
        ));
        let previous = lock(&self.followers).insert(identity, Follower { stop, status, task });
        if let Some(previous) = previous {
            let _ = previous.stop.send(true);
        }
    }

    fn status(&self, identity: Identity) -> Option<ReplicaStatus> {
        use std::sync::atomic::Ordering::Relaxed;
        let followers = lock(&self.followers);
        let status = &followers.get(&identity)?.status;
        Some(ReplicaStatus {
            shipped_through: status.shipped_through(),
            failures_total: status.failures.load(Relaxed),
            failing_for: status.failing_for.load(Relaxed),
            fenced: status.fenced(),
        })
    }

    fn forget(&self, identity: Identity) {
        if let Some(follower) = lock(&self.followers).remove(&identity) {
            let _ = follower.stop.send(true);
            follower.task.abort();
        }
        let database = self.database(identity);
        if let Err(e) = self.runtime.block_on(database.remove_file(META_FILE)) {
            tracing::error!(
                database = %identity.to_hex(),
                error = %e,
                "cannot mark a deleted database in the object store; a host with an empty cache would restore it"
            );
        }
    }
}

/// Takes the database (next generation, from where the store's history
/// ends) and ships it until stopped; retries the start with backoff while
/// the store is unreachable.
async fn follow_database(
    database: DatabaseStore,
    copy: Arc<HostedCopy>,
    options: ShipOptions,
    status: Arc<ShipStatus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let name = database.key().as_str().to_owned();
    let mut backoff = Duration::from_millis(100);
    let (holder, start) = loop {
        match take(&database, &copy).await {
            Ok(taken) => break taken,
            Err(e) => {
                tracing::warn!(database = %name, error = %e, "cannot start shipping to the object store; retrying");
                status
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if *stop.borrow() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(options.backoff_max);
            }
        }
    };
    tracing::debug!(database = %name, generation = holder.generation(), start, "shipping to the object store");
    orrery_objstore::follow(Arc::new(holder), copy, start, options, status, stop).await;
}

async fn take(
    database: &DatabaseStore,
    copy: &Arc<HostedCopy>,
) -> Result<(orrery_objstore::Holder, u64), String> {
    let remote = database.inspect().await.map_err(|e| e.to_string())?;
    let end = database.log_end(&remote).await.map_err(|e| e.to_string())?;
    let local_next = {
        let storage = copy.storage.clone();
        tokio::task::spawn_blocking(move || {
            storage.flush().map_err(|e| e.to_string())?;
            let state = storage.read().map_err(|e| e.to_string())?;
            Ok::<_, String>(state.last_offset().map_or(0, |o| o.0 + 1))
        })
        .await
        .map_err(|e| e.to_string())??
    };
    if local_next < end {
        return Err(format!(
            "the local copy ends at offset {local_next} but the object store's history reaches {end}: \
             this cache is stale; move it aside to restore from the store"
        ));
    }
    let holder = database.take(end).await.map_err(|e| e.to_string())?;
    Ok((holder, end))
}

/// How long `POST …/backups` waits for its snapshot to reach the store.
const BACKUP_WAIT_MAX: Duration = Duration::from_secs(60);

impl ObjectStoreReplica {
    /// The backups of `identity` in the store: the snapshots of its
    /// history, newest first, each read for its time and size.
    async fn list_backups(&self, identity: Identity) -> Result<Vec<Backup>, String> {
        let database = self.database(identity);
        let remote = database.inspect().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for snapshot in remote.history_snapshots() {
            let key = database.key().snapshot_path(snapshot);
            let Some(bytes) = database.object(&key).await.map_err(|e| e.to_string())? else {
                continue; // removed meanwhile
            };
            let Ok(manifest) = durable::snapshot::Manifest::decode(&bytes) else {
                continue; // damaged: not a backup anyone can restore
            };
            out.push(Backup {
                id: backup_id(snapshot),
                offset: snapshot.offset,
                taken_at_micros: manifest.created_at_micros,
                bytes: bytes.len() as u64 + manifest.parts.iter().map(|p| p.len).sum::<u64>(),
            });
        }
        Ok(out)
    }
}

/// A backup's id: the generation that took the snapshot and its offset.
fn backup_id(snapshot: orrery_objstore::layout::SnapshotRef) -> String {
    format!("{}-{}", snapshot.generation, snapshot.offset)
}

impl ObjectStoreReplica {
    /// Writes the directory of a new database `identity` named `name` into
    /// `dir`: `source`'s history at `point` from the store, its module
    /// files, and its `database.json` with the new name.
    async fn restore_copy(
        &self,
        source: Identity,
        point: &RestorePoint,
        identity: Identity,
        name: &str,
        dir: &Path,
    ) -> Result<u64, String> {
        let copy = NewCopy { name, owner: None };
        let hydrated = self
            .write_directory(
                self.database(source),
                store_point(point)?,
                identity,
                dir,
                Some(copy),
            )
            .await?;
        Ok(hydrated.next_offset.saturating_sub(1))
    }

    /// [`Self::restore_copy`] from a database in another object store.
    async fn import_copy(
        &self,
        from: &ForeignDatabase,
        point: &RestorePoint,
        identity: Identity,
        copy: NewCopy<'_>,
        dir: &Path,
    ) -> Result<u64, String> {
        let url = orrery_objstore::ObjectStoreUrl::parse(&from.store)
            .map_err(|e| format!("`{}` is not an object store URL: {e}", from.store))?;
        let store = url
            .open()
            .map_err(|e| format!("cannot open the object store {}: {e}", from.store))?;
        let key = DatabaseKey::new(from.database.to_hex().as_str())
            .expect("64 hex digits are a valid database key");
        let database = DatabaseStore::new(store.clone(), Heads::over(&url, store), key);
        let hydrated = self
            .write_directory(database, store_point(point)?, identity, dir, Some(copy))
            .await?;
        Ok(hydrated.next_offset.saturating_sub(1))
    }

    /// Restores `entry` in place to `point`: waits until the store holds
    /// every durable transaction (so the state about to be replaced is
    /// restorable), reads the state at `point` into a scratch directory,
    /// and has the host replace the module's rows with it in one
    /// transaction, which it waits to be durable.
    fn restore_entry_in_place(
        &self,
        entry: &Entry,
        point: &RestorePoint,
    ) -> Result<InPlace, String> {
        let identity = entry.identity();
        let storage = entry.database().storage();
        let durable = storage.flush().map_err(|e| e.to_string())?;
        let status = lock(&self.followers)
            .get(&identity)
            .map(|f| f.status.clone())
            .ok_or("the database is not copied to the object store")?;
        if let Some(durable) = durable {
            status.wake.notify_one();
            let wait = status.wait_for(|s| s.shipped_through() >= Some(durable.0) || s.stopped());
            let _ = self
                .runtime
                .block_on(tokio::time::timeout(RESTORE_SHIP_WAIT, wait));
            if status.shipped_through() < Some(durable.0) {
                return Err(format!(
                    "transactions up to offset {} have not reached the object store yet, so the \
                     state a restore would replace could not be restored again ({}); nothing was changed",
                    durable.0,
                    status.last_error().unwrap_or_else(|| "it is slow".into())
                ));
            }
        }
        // One in-place restore of a database at a time: they share its
        // scratch folder (a crash's leftover is removed by the next).
        if !lock(&self.restoring).insert(identity) {
            return Err(
                "a restore of this database is already running; try again when it is done".into(),
            );
        }
        struct Done<'a>(&'a Mutex<HashSet<Identity>>, Identity);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                lock(self.0).remove(&self.1);
            }
        }
        let _done = Done(&self.restoring, identity);
        let scratch = entry
            .dir()
            .with_file_name(format!(".restoring-{}-in-place", identity.to_hex()));
        let result = self.in_place_from(entry, point, &scratch);
        if scratch.exists() {
            if let Err(e) = std::fs::remove_dir_all(&scratch) {
                tracing::warn!(dir = %scratch.display(), error = %e, "cannot remove a restore's scratch copy");
            }
        }
        result
    }

    fn in_place_from(
        &self,
        entry: &Entry,
        point: &RestorePoint,
        scratch: &Path,
    ) -> Result<InPlace, String> {
        if scratch.exists() {
            std::fs::remove_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        }
        let hydrated = self
            .runtime
            .block_on(
                self.database(entry.identity())
                    .hydrate_to(&storage_dir(scratch), store_point(point)?),
            )
            .map_err(|e| e.to_string())?;
        let restored_offset = hydrated
            .next_offset
            .checked_sub(1)
            .ok_or("the database had no transaction at that point")?;
        let files = storage::DbStorage::dir(&storage_dir(scratch)).map_err(|e| e.to_string())?;
        let (target, _) = storage::Database::open(files, storage::DbOptions::default())
            .map_err(|e| format!("the state at offset {restored_offset} does not open: {e}"))?;
        let reason = format!("database restored in place to offset {restored_offset}; reconnect");
        let done = entry.database().restore_in_place(target, reason)?;
        if let Some(offset) = done.offset {
            entry
                .database()
                .storage()
                .wait_durable(offset)
                .map_err(|e| {
                    format!(
                        "the restore's transaction at offset {} is not durable: {e}",
                        offset.0
                    )
                })?;
        }
        Ok(InPlace {
            restored_offset,
            replaced_through: done.replaced_through.map(|o| o.0),
            offset: done.offset.map(|o| o.0),
            rows_deleted: done.replaced.deleted,
            rows_inserted: done.replaced.inserted,
        })
    }
}

/// How long an in-place restore waits for the log to reach the store first.
const RESTORE_SHIP_WAIT: Duration = Duration::from_secs(60);

/// A restore point of the API as the object store reads it.
fn store_point(point: &RestorePoint) -> Result<orrery_objstore::RestorePoint, String> {
    Ok(match point {
        RestorePoint::Latest => orrery_objstore::RestorePoint::Latest,
        RestorePoint::Offset(offset) => orrery_objstore::RestorePoint::Offset(*offset),
        RestorePoint::Time(micros) => orrery_objstore::RestorePoint::Time {
            micros: *micros,
            commit_micros: storage::record_commit_micros,
        },
        RestorePoint::Backup(id) => {
            let parsed = id.split_once('-').and_then(|(generation, offset)| {
                Some(orrery_objstore::layout::SnapshotRef {
                    generation: generation.parse().ok()?,
                    offset: offset.parse().ok()?,
                })
            });
            orrery_objstore::RestorePoint::Snapshot(
                parsed.ok_or_else(|| {
                    format!("`{id}` is not a backup id (see `orrery backup list`)")
                })?,
            )
        }
    })
}

/// The module serving a database of another object store (`store`, the
/// database's identity `database` in hex), as its `database.json` names it:
/// this platform signs it before a host may run a copy.
pub(crate) async fn foreign_module(store: &str, database: &str) -> Result<Vec<u8>, String> {
    let url = orrery_objstore::ObjectStoreUrl::parse(store)
        .map_err(|e| format!("`{store}` is not an object store URL: {e}"))?;
    let opened = url
        .open()
        .map_err(|e| format!("cannot open the object store {store}: {e}"))?;
    let key = DatabaseKey::new(database)
        .ok_or_else(|| format!("`{database}` is not a database identity"))?;
    let source = DatabaseStore::new(opened.clone(), Heads::over(&url, opened), key);
    let meta = source
        .file(META_FILE)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{store} holds no database {database}"))?;
    let module = serde_json::from_slice::<serde_json::Value>(&meta)
        .ok()
        .and_then(|meta| meta["module"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("the {META_FILE} of {database} in {store} names no module"))?;
    if module.len() != 64 || !module.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "the {META_FILE} of {database} names the module {module:?}"
        ));
    }
    source
        .file(&format!("modules/{module}.wasm"))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{store} lacks the module {module} of {database}"))
}

/// What a restored copy changes in its source's `database.json`.
struct NewCopy<'a> {
    name: &'a str,
    /// A new owner (a copy from another deployment); `None` keeps it.
    owner: Option<Identity>,
}

/// A source database's `database.json` for its restored copy: the new name
/// only, unlocked, ready, and the new owner if there is one.
fn copied_meta(bytes: &[u8], copy: &NewCopy<'_>) -> Result<Vec<u8>, String> {
    let mut meta: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{META_FILE}: {e}"))?;
    meta["names"] = serde_json::json!([copy.name]);
    meta["locked"] = serde_json::json!(false);
    if let Some(owner) = copy.owner {
        meta["owner"] = serde_json::json!(owner.to_hex().to_string());
    }
    serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())
}

impl Backups for ObjectStoreReplica {
    fn restore(
        &self,
        entry: &Entry,
        point: &RestorePoint,
        identity: Identity,
        name: &str,
        dir: &Path,
    ) -> Result<u64, String> {
        self.runtime
            .block_on(self.restore_copy(entry.identity(), point, identity, name, dir))
    }

    fn restore_in_place(&self, entry: &Entry, point: &RestorePoint) -> Result<InPlace, String> {
        self.restore_entry_in_place(entry, point)
    }

    fn import(
        &self,
        from: &ForeignDatabase,
        point: &RestorePoint,
        identity: Identity,
        name: &str,
        owner: Identity,
        dir: &Path,
    ) -> Result<u64, String> {
        let copy = NewCopy {
            name,
            owner: Some(owner),
        };
        self.runtime
            .block_on(self.import_copy(from, point, identity, copy, dir))
    }

    fn list(&self, entry: &Entry) -> Result<Vec<Backup>, String> {
        self.runtime.block_on(self.list_backups(entry.identity()))
    }

    fn create(&self, entry: &Entry) -> Result<Backup, String> {
        let storage = entry.database().storage();
        let offset = match storage.take_snapshot().map_err(|e| e.to_string())? {
            Some(written) => written.offset.0,
            None => return Err("the database has no transaction to back up yet".into()),
        };
        let status = lock(&self.followers)
            .get(&entry.identity())
            .map(|f| f.status.clone())
            .ok_or("the database is not copied to the object store")?;
        status.wake.notify_one();
        let shipped = self.runtime.block_on(tokio::time::timeout(
            BACKUP_WAIT_MAX,
            status.wait_for(|s| s.snapshot_shipped() >= Some(offset) || s.stopped()),
        ));
        if shipped.is_err() || status.snapshot_shipped() < Some(offset) {
            return Err(format!(
                "the snapshot at offset {offset} did not reach the object store: {}",
                status.last_error().unwrap_or_else(|| "it is slow".into())
            ));
        }
        self.runtime
            .block_on(self.list_backups(entry.identity()))?
            .into_iter()
            .find(|b| b.offset == offset)
            .ok_or_else(|| format!("the snapshot at offset {offset} is not listed"))
    }
}

/// The object store as the second place an `object-store` mode database's
/// transactions must reach before they count as durable.
struct Shipped {
    status: Arc<ShipStatus>,
}

impl storage::DurableElsewhere for Shipped {
    fn held_through(&self) -> Option<TxOffset> {
        self.status.shipped_through().map(TxOffset)
    }

    fn wait_held(&self, offset: TxOffset) -> Result<(), String> {
        self.status.wait_shipped(offset.0, DURABLE_WAIT_MAX)
    }
}

/// A hosted database as shipping reads it.
struct HostedCopy {
    storage: storage::Database,
    dir: PathBuf,
}

impl LocalCopy for HostedCopy {
    fn read_durable(
        &self,
        from: LogPosition,
        max_bytes: usize,
    ) -> Result<Option<DurableFrames>, LocalReadError> {
        let log = self
            .storage
            .commit_log()
            .ok_or_else(|| LocalReadError::Other("the database keeps no log".into()))?;
        Ok(log.read_durable(from, max_bytes)?)
    }

    fn newest_snapshot(&self) -> Option<u64> {
        let repo = self.storage.snapshot_repo()?;
        repo.list().ok()?.first().map(|o| o.0)
    }

    fn snapshot_store(&self) -> Option<Arc<dyn BlobStore>> {
        Some(self.storage.snapshot_repo()?.store().clone())
    }

    fn files(&self) -> Vec<(String, PathBuf)> {
        replicated_files(&self.dir)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_in_days_becomes_a_window_and_zero_keeps_everything() {
        let week = retention(7).expect("seven days collect");
        assert_eq!(week.window, Duration::from_secs(7 * 86_400));
        assert_eq!(week.grace, RETENTION_GRACE);
        assert!(retention(0).is_none(), "zero days keeps every point");
        let huge = retention(u64::MAX).expect("saturates, never wraps");
        assert!(huge.window >= Duration::from_secs(u64::MAX / 2));
    }
}
