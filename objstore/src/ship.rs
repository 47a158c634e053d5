//! Shipping a database's log and snapshots to the object store, as the
//! holder of one generation.
//!
//! Owns: [`Holder`] (taking a database by starting the next generation in
//! `head`; uploading log pieces under that generation; copying snapshots,
//! parts deduplicated by hash; moving `head` by conditional put), the
//! [`LocalCopy`] seam over the host's local log and snapshots, and
//! [`follow`], the loop that keeps the store within one interval of the
//! local log, retrying with backoff and stopping for good when fenced.
//! Does not own: the keys ([`crate::layout`]), `head`'s format
//! ([`crate::head`]), reading a database back ([`crate::recover`]), or when a
//! snapshot is taken (the engine's policy).
//!
//! A log piece is a segment image (`durable::commitlog::DurableFrames`) of
//! the records durable since the last piece, stored at
//! `db/<id>/gen-<g>/log/<first>.seg`; pieces of one holder never overlap and
//! are uploaded in order, each only after the one before it landed.
//! Crash cases are in docs/design/object-storage.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::commitlog::{DurableFrames, LogPosition};
use durable::snapshot::{manifest_key, object_key, BlobStore, Manifest, ObjectHash};
use object_store::path::Path as ObjectPath;
use object_store::PutPayload;
use orrery_api::TxOffset;

use crate::head::{Head, HeadError, HeadSnapshot, HeadVersion};
use crate::layout::{SegmentRef, SnapshotRef};
use crate::recover::{store_error, DatabaseStore, RecoverError};

/// Why shipping failed.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Another holder moved `head`: this one lost the database and must stop.
    #[error("fenced: {0}")]
    Fenced(String),
    #[error(transparent)]
    Store(#[from] RecoverError),
    #[error("local copy: {0}")]
    Local(String),
}

impl From<HeadError> for ShipError {
    fn from(e: HeadError) -> ShipError {
        match e {
            HeadError::Fenced { .. } => ShipError::Fenced(e.to_string()),
            other => ShipError::Store(RecoverError::Head(other)),
        }
    }
}

/// The least time between two records of log progress in `head`.
pub const HEAD_RECORD_INTERVAL: Duration = Duration::from_secs(1);

/// What copying one snapshot did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotShipped {
    pub offset: u64,
    pub objects_uploaded: usize,
    pub objects_reused: usize,
    pub bytes_uploaded: u64,
}

/// The holder of one generation of a database.
#[derive(Debug)]
pub struct Holder {
    store: DatabaseStore,
    generation: u64,
    start_offset: u64,
    head: tokio::sync::Mutex<(Head, HeadVersion)>,
    /// When progress was last recorded in `head`, and the offset recorded.
    recorded: Mutex<(Option<std::time::Instant>, Option<u64>)>,
}

impl DatabaseStore {
    /// Takes the database: appends the next generation, starting at
    /// `start_offset`, to `head` by conditional put. Of holders racing for
    /// one database at most one succeeds; the others are fenced.
    pub async fn take(&self, start_offset: u64) -> Result<Holder, ShipError> {
        let generation = match self.heads.read(&self.db).await? {
            Some((head, _)) => head.current().map_or(1, |g| g.generation + 1),
            None => 1,
        };
        let (head, version) = self
            .heads
            .begin_generation(&self.db, generation, start_offset)
            .await?;
        Ok(Holder {
            store: self.clone(),
            generation,
            start_offset,
            head: tokio::sync::Mutex::new((head, version)),
            recorded: Mutex::new((None, None)),
        })
    }
}

impl Holder {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The offset this generation's history starts at.
    pub fn start_offset(&self) -> u64 {
        self.start_offset
    }

    pub fn store(&self) -> &DatabaseStore {
        &self.store
    }

    /// Uploads one of the database's other files ([`LocalCopy::files`]).
    pub async fn put_file(&self, name: &str, bytes: Vec<u8>) -> Result<(), ShipError> {
        self.put(&self.store.db.file_path(name), bytes).await
    }

    /// Uploads one log piece under this generation.
    pub async fn put_log(&self, piece: &DurableFrames) -> Result<(), ShipError> {
        let key = self.store.db.segment_path(SegmentRef {
            generation: self.generation,
            first_offset: piece.first.0,
        });
        self.put(&key, piece.segment_image()).await
    }

    /// Copies the local snapshot at `offset` (from the engine's snapshot
    /// store) under this generation: parts the store lacks first, verified
    /// against their hash before upload, then the manifest.
    pub async fn put_snapshot(
        &self,
        local: Arc<dyn BlobStore>,
        offset: u64,
    ) -> Result<SnapshotShipped, ShipError> {
        let manifest_bytes = read_local(&local, manifest_key(TxOffset(offset)))
            .await?
            .ok_or_else(|| ShipError::Local(format!("no local snapshot at {offset}")))?;
        let manifest = Manifest::decode(&manifest_bytes)
            .map_err(|e| ShipError::Local(format!("local snapshot {offset}: {e}")))?;
        let mut hashes: Vec<ObjectHash> = manifest.parts.iter().map(|p| p.hash).collect();
        hashes.sort();
        hashes.dedup();
        let mut shipped = SnapshotShipped {
            offset,
            ..SnapshotShipped::default()
        };
        for hash in hashes {
            let key = self.store.db.object_path(&hash.to_hex());
            match self.store.store.head(&key).await {
                Ok(_) => {
                    shipped.objects_reused += 1;
                    continue;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(&key, e).into()),
            }
            let bytes = read_local(&local, object_key(&hash))
                .await?
                .ok_or_else(|| ShipError::Local(format!("local part {hash} is missing")))?;
            if ObjectHash::of(&bytes) != hash {
                return Err(ShipError::Local(format!(
                    "local part {hash} does not match its hash"
                )));
            }
            shipped.bytes_uploaded += bytes.len() as u64;
            shipped.objects_uploaded += 1;
            self.put(&key, bytes).await?;
        }
        let key = self.store.db.snapshot_path(SnapshotRef {
            generation: self.generation,
            offset,
        });
        self.put(&key, manifest_bytes).await?;
        Ok(shipped)
    }

    /// Records progress in `head` (conditional put on the version this
    /// holder last wrote): fenced if anyone else moved it.
    pub async fn record(
        &self,
        shipped_through: Option<u64>,
        snapshot: Option<u64>,
    ) -> Result<(), ShipError> {
        let mut guard = self.head.lock().await;
        let (head, version) = &mut *guard;
        let mut next = head.clone();
        if shipped_through.is_some() {
            next.shipped_through = shipped_through;
        }
        if let Some(offset) = snapshot {
            next.latest_snapshot = Some(HeadSnapshot {
                generation: self.generation,
                offset,
            });
        }
        let new_version = self
            .store
            .heads
            .replace(&self.store.db, &next, version)
            .await?;
        *head = next;
        *version = new_version;
        *self.recorded.lock().unwrap_or_else(|p| p.into_inner()) =
            (Some(std::time::Instant::now()), head.shipped_through);
        Ok(())
    }

    /// Whether `head` lags `shipped_through` and was last moved more than
    /// [`HEAD_RECORD_INTERVAL`] ago (or never): `head` is moved at most that
    /// often for log progress, so a busy database pays one conditional put
    /// per interval rather than one per piece.
    fn record_due(&self, shipped_through: Option<u64>) -> bool {
        let (at, recorded) = *self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        shipped_through > recorded && at.is_none_or(|at| at.elapsed() >= HEAD_RECORD_INTERVAL)
    }

    async fn put(&self, key: &ObjectPath, bytes: Vec<u8>) -> Result<(), ShipError> {
        self.store
            .store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(|e| ShipError::Store(store_error(key, e)))?;
        Ok(())
    }
}

async fn read_local(local: &Arc<dyn BlobStore>, key: String) -> Result<Option<Vec<u8>>, ShipError> {
    let local = local.clone();
    tokio::task::spawn_blocking(move || local.get(&key))
        .await
        .map_err(|e| ShipError::Local(e.to_string()))?
        .map_err(|e| ShipError::Local(e.to_string()))
}

/// The host's local copy of a database, as shipping reads it.
pub trait LocalCopy: Send + Sync + 'static {
    /// Durable records from `from` on (`CommitLog::read_durable`).
    fn read_durable(
        &self,
        from: LogPosition,
        max_bytes: usize,
    ) -> Result<Option<DurableFrames>, LocalReadError>;
    /// The newest local snapshot's offset.
    fn newest_snapshot(&self) -> Option<u64>;
    /// The engine's snapshot store.
    fn snapshot_store(&self) -> Option<Arc<dyn BlobStore>>;
    /// Other files of the database to keep a copy of (name, local path),
    /// shipped before the log in every pass when their size or modification
    /// time changed. A file that has gone is left in the store.
    fn files(&self) -> Vec<(String, std::path::PathBuf)> {
        Vec::new()
    }
}

/// Why the local log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocalReadError {
    /// The records wanted were already removed locally (covered by a snapshot).
    #[error("the local log no longer holds offset {from}")]
    NotRetained { from: u64 },
    #[error("{0}")]
    Other(String),
}

impl From<durable::commitlog::ReplayError<std::convert::Infallible>> for LocalReadError {
    fn from(e: durable::commitlog::ReplayError<std::convert::Infallible>) -> LocalReadError {
        match e {
            durable::commitlog::ReplayError::NotRetained { from, .. } => {
                LocalReadError::NotRetained { from: from.0 }
            }
            other => LocalReadError::Other(other.to_string()),
        }
    }
}

/// Shipping's tuning.
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// How often the open log's new records are shipped (the most a host
    /// loss can lose in `local` durability mode).
    pub interval: Duration,
    /// A log piece holds about this many bytes of records at most.
    pub piece_bytes_max: usize,
    /// The longest wait between retries after a failure.
    pub backoff_max: Duration,
    /// The point-in-time history kept; `None` keeps everything.
    pub retention: Option<crate::gc::Retention>,
    /// How often the holder collects garbage (with `retention`).
    pub gc_every: Duration,
}

impl Default for ShipOptions {
    fn default() -> ShipOptions {
        ShipOptions {
            interval: Duration::from_millis(orrery_api::limits::SHIP_INTERVAL_MS_DEFAULT),
            piece_bytes_max: orrery_api::limits::SHIP_PIECE_BYTES_MAX,
            backoff_max: Duration::from_secs(5),
            retention: None,
            gc_every: Duration::from_secs(600),
        }
    }
}

/// What a shipping loop has done; shared with whoever reports it (metrics, health).
#[derive(Debug, Default)]
pub struct ShipStatus {
    /// The last offset shipped plus one (0: nothing yet).
    shipped_end: AtomicU64,
    /// The newest snapshot shipped plus one (0: none).
    snapshot_end: AtomicU64,
    pub pieces: AtomicU64,
    pub bytes: AtomicU64,
    pub snapshots: AtomicU64,
    pub failures: AtomicU64,
    /// Failures since the last success (0 when healthy).
    pub failing_for: AtomicU64,
    fenced: AtomicBool,
    stopped: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Wakes the loop before its interval (a commit that wants shipping now).
    pub wake: tokio::sync::Notify,
    /// Told every time the loop makes progress or fails.
    progress: tokio::sync::Notify,
    /// `shipped_end` again, for threads that block on it ([`ShipStatus::wait_shipped`]).
    held: Mutex<u64>,
    held_grew: std::sync::Condvar,
}

impl ShipStatus {
    /// The last offset shipped.
    pub fn shipped_through(&self) -> Option<u64> {
        self.shipped_end.load(Ordering::Acquire).checked_sub(1)
    }

    /// The newest snapshot shipped.
    pub fn snapshot_shipped(&self) -> Option<u64> {
        self.snapshot_end.load(Ordering::Acquire).checked_sub(1)
    }

    /// Whether another holder took the database (shipping has stopped).
    pub fn fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Whether the loop has ended (fenced or told to stop).
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The newest failure's message, kept until the next success.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `done` holds for this status (checked after every change).
    pub async fn wait_for(&self, mut done: impl FnMut(&ShipStatus) -> bool) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await;
        }
    }

    /// Blocks the calling thread until offset `offset` is shipped, waking
    /// the loop first so that it ships now (group commit: every waiter
    /// that arrives during an upload is served by the next one). Fails after
    /// `deadline`, or at once if the loop stopped, with the reason.
    pub fn wait_shipped(&self, offset: u64, deadline: Duration) -> Result<(), String> {
        let until = std::time::Instant::now() + deadline;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held <= offset {
            if self.stopped() || self.fenced() {
                return Err(format!(
                    "shipping has stopped: {}",
                    self.last_error()
                        .unwrap_or_else(|| "the database was closed".into())
                ));
            }
            self.wake.notify_one();
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "not shipped within {deadline:?}: {}",
                    self.last_error()
                        .unwrap_or_else(|| "the object store is slow".into())
                ));
            }
            held = self
                .held_grew
                .wait_timeout(held, left.min(Duration::from_millis(200)))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Ok(())
    }

    fn set_shipped_end(&self, end: u64) {
        self.shipped_end.store(end, Ordering::Release);
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = end;
        self.held_grew.notify_all();
    }

    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn changed(&self) {
        self.progress.notify_waiters();
    }
}

/// Keeps the store within one interval of `local` until `stop` turns true or
/// the holder is fenced: ships the records durable since `from` as log
/// pieces, then any newer local snapshot, then records progress in `head`.
/// A failure is counted, kept in `status` and retried with backoff (up to
/// `options.backoff_max`); nothing is skipped. Fencing ends the loop at once.
/// When the local log already dropped records not yet shipped (a long
/// outage), the newest local snapshot is shipped and shipping goes on after it.
pub async fn follow(
    holder: Arc<Holder>,
    local: Arc<dyn LocalCopy>,
    from: u64,
    options: ShipOptions,
    status: Arc<ShipStatus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut position = LogPosition::at(TxOffset(from));
    let mut files = FilesShipped::default();
    status.set_shipped_end(from);
    let mut backoff = Duration::from_millis(50);
    let mut collected_at: Option<std::time::Instant> = None;
    loop {
        let stopping = *stop.borrow();
        match ship_once(
            &holder,
            &local,
            &mut position,
            &mut files,
            &options,
            &status,
        )
        .await
        {
            Ok(()) => {
                backoff = Duration::from_millis(50);
                status.failing_for.store(0, Ordering::Release);
                status.set_error(None);
                status.changed();
                if let Some(retention) = options.retention {
                    if collected_at.is_none_or(|at| at.elapsed() >= options.gc_every) {
                        collected_at = Some(std::time::Instant::now());
                        collect(&holder, retention).await;
                    }
                }
            }
            Err(ShipError::Fenced(reason)) => {
                tracing::error!(
                    database = holder.store.db.as_str(),
                    generation = holder.generation,
                    %reason,
                    "shipping stopped: another holder took the database"
                );
                status.fenced.store(true, Ordering::Release);
                status.set_error(Some(reason));
                break;
            }
            Err(e) => {
                status.failures.fetch_add(1, Ordering::Relaxed);
                let streak = status.failing_for.fetch_add(1, Ordering::AcqRel) + 1;
                tracing::warn!(
                    database = holder.store.db.as_str(),
                    failures_in_a_row = streak,
                    error = %e,
                    "shipping to the object store failed; retrying"
                );
                status.set_error(Some(e.to_string()));
                status.changed();
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(options.backoff_max);
                continue;
            }
        }
        if stopping {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            _ = status.wake.notified() => {}
            changed = stop.changed() => {
                // A dropped sender stops the loop too (after a last pass).
                if changed.is_err() {
                    let _ = ship_once(&holder, &local, &mut position, &mut files, &options, &status).await;
                    break;
                }
            }
        }
    }
    status.stopped.store(true, Ordering::Release);
    status.changed();
    status.held_grew.notify_all();
}

/// The size and modification time of each file as last shipped.
type FilesShipped = std::collections::HashMap<String, (u64, std::time::SystemTime)>;

async fn ship_files(
    holder: &Holder,
    local: &Arc<dyn LocalCopy>,
    shipped: &mut FilesShipped,
) -> Result<(), ShipError> {
    for (name, path) in local.files() {
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue; // gone meanwhile (a module file replaced by an update)
        };
        let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
        if shipped.get(&name) == Some(&stamp) {
            continue;
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ShipError::Local(format!("{}: {e}", path.display()))),
        };
        holder.put_file(&name, bytes).await?;
        shipped.insert(name, stamp);
    }
    Ok(())
}

async fn ship_once(
    holder: &Holder,
    local: &Arc<dyn LocalCopy>,
    position: &mut LogPosition,
    files: &mut FilesShipped,
    options: &ShipOptions,
    status: &ShipStatus,
) -> Result<(), ShipError> {
    // Files first: a module file is written before the transaction that
    // starts using it, so it reaches the store before that record does.
    ship_files(holder, local, files).await?;
    loop {
        let read = {
            let (local, at, max) = (local.clone(), *position, options.piece_bytes_max);
            tokio::task::spawn_blocking(move || local.read_durable(at, max))
                .await
                .map_err(|e| ShipError::Local(e.to_string()))?
        };
        let piece = match read {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(LocalReadError::NotRetained { from }) => {
                // Only a snapshot still covers these records.
                let Some(snapshot) = local.newest_snapshot().filter(|&s| s >= from) else {
                    return Err(ShipError::Local(format!(
                        "the local log dropped offset {from} and no snapshot covers it"
                    )));
                };
                ship_snapshot(holder, local, snapshot, status).await?;
                *position = LogPosition::at(TxOffset(snapshot + 1));
                status.set_shipped_end(snapshot + 1);
                continue;
            }
            Err(LocalReadError::Other(e)) => return Err(ShipError::Local(e)),
        };
        holder.put_log(&piece).await?;
        *position = piece.resume;
        status.pieces.fetch_add(1, Ordering::Relaxed);
        status
            .bytes
            .fetch_add(piece.frames.len() as u64, Ordering::Relaxed);
        status.set_shipped_end(piece.last.0 + 1);
        status.changed();
    }
    let newest = local.newest_snapshot();
    let snapshot_due =
        newest.is_some_and(|s| status.snapshot_shipped().is_none_or(|done| s > done));
    if snapshot_due {
        if let Some(offset) = newest {
            ship_snapshot(holder, local, offset, status).await?;
        }
    } else if holder.record_due(status.shipped_through()) {
        holder.record(status.shipped_through(), None).await?;
    }
    Ok(())
}

/// One garbage collection as the holder; failures are logged (the next
/// one tries again; nothing is lost by not collecting).
async fn collect(holder: &Holder, retention: crate::gc::Retention) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    match holder.store.collect_garbage(retention, now).await {
        Ok(collected) => tracing::debug!(
            database = holder.store.db.as_str(),
            floor = ?collected.floor.map(|f| f.offset),
            manifests = collected.manifests_deleted,
            pieces = collected.pieces_deleted,
            parts = collected.parts_deleted,
            "garbage collected"
        ),
        Err(e) => tracing::warn!(
            database = holder.store.db.as_str(),
            error = %e,
            "garbage collection failed; the next one tries again"
        ),
    }
}

async fn ship_snapshot(
    holder: &Holder,
    local: &Arc<dyn LocalCopy>,
    offset: u64,
    status: &ShipStatus,
) -> Result<(), ShipError> {
    let store = local
        .snapshot_store()
        .ok_or_else(|| ShipError::Local("the database keeps no snapshots".into()))?;
    holder.put_snapshot(store, offset).await?;
    holder
        .record(status.shipped_through(), Some(offset))
        .await?;
    status.snapshots.fetch_add(1, Ordering::Relaxed);
    status.snapshot_end.store(offset + 1, Ordering::Release);
    Ok(())
}
