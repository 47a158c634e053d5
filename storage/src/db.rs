//! A database: state behind one write lock, its commit log and its snapshots.
//!
//! Owns: opening (newest valid snapshot, then replay of the log after it), the
//! commit path (append under the write lock, so log order is commit order),
//! the sticky refusal of writes after a log failure or a panic, and taking
//! snapshots (copy under the lock, encode and write outside it, then drop
//! the log segments no kept snapshot needs).
//! Does not own: the byte formats (`storage::record`, `storage::commitlog`,
//! `storage::snapshot`), what a transaction may do (`storage::tx`), or when
//! snapshots are taken in the background (`storage::snapshotter`).
//!
//! Invariant: `State::next_offset` equals the commit log's next offset, and a
//! snapshot is published only for an offset that is already durable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use parking_lot::{RwLock, RwLockReadGuard};

use orrery_api::TxOffset;

use crate::clock::{Clock, SystemClock};
use crate::commitlog::{self, CommitLog, CommitLogOptions, FileSegmentStore, SegmentStore};
use crate::error::{CommitError, OpenError, TakeSnapshotError};
use crate::record;
use crate::snapshot::{BlobStore, DirBlobStore, SnapshotPart, SnapshotRepo, SnapshotWritten};
use crate::snapshotter::{
    SnapshotBook, SnapshotEvent, SnapshotListener, SnapshotPolicy, SnapshotStats, Snapshotter,
};
use crate::state::State;
use crate::tx::MutTx;
use crate::value::Row;

/// Tunables of one database. Defaults come from `orrery_api::limits`.
#[derive(Clone, Debug)]
pub struct DbOptions {
    pub segment_bytes_max: u64,
    pub snapshot_retain: usize,
    /// When to take the next snapshot in the background (applied once the
    /// database has a [`Snapshotter`], see [`Database::set_snapshotter`]).
    pub snapshot_policy: SnapshotPolicy,
    /// Sequence values reserved per commit-log entry (gaps after a restart are at most this).
    pub sequence_reserve_step: i128,
    /// Test-only: the commit log skips its fsync but still reports durability.
    /// A deliberate bug that the crash test must catch; never set it otherwise.
    pub skip_fsync_canary: bool,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            segment_bytes_max: orrery_api::limits::COMMITLOG_SEGMENT_BYTES_DEFAULT,
            snapshot_retain: orrery_api::limits::SNAPSHOT_RETAIN_DEFAULT,
            snapshot_policy: SnapshotPolicy::default(),
            sequence_reserve_step: 4096,
            skip_fsync_canary: false,
        }
    }
}

/// Where a database keeps its bytes.
#[derive(Clone)]
pub struct DbStorage {
    pub segments: Arc<dyn SegmentStore>,
    pub snapshots: Option<Arc<dyn BlobStore>>,
    pub clock: Arc<dyn Clock>,
}

impl DbStorage {
    /// The local layout: `dir/log/` for segments and `dir/snapshots/` for snapshots.
    pub fn dir(dir: &Path) -> std::io::Result<DbStorage> {
        let snapshots = DirBlobStore::open(dir.join("snapshots"))?;
        // Temp files of a put that a crash interrupted are garbage.
        snapshots.remove_temp_files()?;
        Ok(DbStorage {
            segments: Arc::new(FileSegmentStore::open(dir.join("log"))?),
            snapshots: Some(Arc::new(snapshots)),
            clock: Arc::new(SystemClock),
        })
    }
}

/// What opening a database found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryReport {
    /// The snapshot recovery started from.
    pub snapshot_offset: Option<TxOffset>,
    /// Newer snapshots that were unusable, newest first, with the reason.
    pub snapshots_skipped: Vec<(TxOffset, String)>,
    pub rows_from_snapshot: u64,
    pub records_replayed: u64,
    /// Offset of the last transaction in the recovered state.
    pub last_offset: Option<TxOffset>,
}

/// A database handle; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Database {
    inner: Arc<DbInner>,
}

pub(crate) struct DbInner {
    /// In its own `Arc` so a write transaction can own its guard.
    state: Arc<RwLock<State>>,
    log: Option<CommitLog>,
    snapshots: Option<SnapshotRepo>,
    pub(crate) options: DbOptions,
    poisoned: AtomicBool,
    log_failed: Mutex<Option<String>>,
    snapshot_running: Mutex<()>,
    /// The policy's counters, the background snapshotter and the stats.
    book: SnapshotBook,
    me: Weak<DbInner>,
    observer: RwLock<Option<Arc<dyn CommitObserver>>>,
    pre_commit: RwLock<Option<Arc<dyn PreCommit>>>,
    elsewhere: RwLock<Option<Arc<dyn DurableElsewhere>>>,
    /// Stamps each commit-log record with its commit time.
    pub(crate) clock: Arc<dyn Clock>,
}

/// Sees every committed transaction, in commit order, with the state right
/// after it: [`CommitObserver::committed`] runs inside the commit, while the
/// write lock is still held, so no other transaction can commit (or read) in
/// between. It must be quick and must not begin a transaction or read the
/// database through [`Database::read`] (both would wait forever); a panic in it
/// poisons the database.
pub trait CommitObserver: Send + Sync {
    /// `delta.offset` is `None` when the transaction changed nothing; rows
    /// written to event tables are in `delta` but no longer in `state`.
    fn committed(&self, delta: &crate::tx::TxDelta, state: &State);
}

/// Last work inside a write transaction before it commits: runs in
/// [`MutTx::commit`] of every transaction that wrote something, holding the
/// write lock, and may read and write through the transaction (the host
/// re-materialises views here, so their changes commit atomically with the
/// writes that caused them). It gets the transaction by value and must hand
/// it back; an `Err` message rolls the transaction back and its commit fails
/// with [`CommitError::Refused`]. Writes it makes do not call it again. Like
/// [`CommitObserver`] it must not begin another transaction or read through
/// [`Database::read`].
pub trait PreCommit: Send + Sync {
    fn before_commit(&self, tx: MutTx) -> (MutTx, Result<(), String>);
}

/// A second place a transaction must reach before it counts as durable (the
/// object store, for a database in the `object-store` durability mode).
/// [`Database::wait_durable`] and [`Database::durable_offset`] consult it
/// after the local log; [`Database::flush`] does not (it is about this host).
pub trait DurableElsewhere: Send + Sync {
    /// The highest offset held there.
    fn held_through(&self) -> Option<TxOffset>;
    /// Blocks until `offset` is held there, or says why it is not (yet).
    fn wait_held(&self, offset: TxOffset) -> Result<(), String>;
}

/// A read-only view of the committed state; writers wait while it is held.
pub struct ReadTx<'db>(RwLockReadGuard<'db, State>);

impl std::ops::Deref for ReadTx<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl Database {
    /// A database without durability: commits get offsets but nothing is written.
    pub fn in_memory(options: DbOptions) -> Database {
        Database::from_parts(
            State::empty(),
            None,
            None,
            options,
            &RecoveryReport::default(),
            0,
            Arc::new(SystemClock),
        )
    }

    /// Opens (recovers) a database: the newest snapshot that verifies and
    /// decodes, then every commit-log record after it.
    pub fn open(
        storage: DbStorage,
        options: DbOptions,
    ) -> Result<(Database, RecoveryReport), OpenError> {
        let mut report = RecoveryReport::default();
        let repo = storage
            .snapshots
            .map(|store| SnapshotRepo::new(store, storage.clock.clone()));
        let mut state = State::empty();
        if let Some(repo) = &repo {
            for offset in repo.list()? {
                match repo
                    .read(offset)
                    .map_err(|e| e.to_string())
                    .and_then(|snapshot| state_from_snapshot(&snapshot))
                {
                    Ok((restored, rows)) => {
                        state = restored;
                        state.next_offset = offset.next();
                        report.snapshot_offset = Some(offset);
                        report.rows_from_snapshot = rows;
                        break;
                    }
                    Err(reason) => report.snapshots_skipped.push((offset, reason)),
                }
            }
        }
        let log_options = CommitLogOptions {
            segment_bytes_max: options.segment_bytes_max,
            start_offset: state.next_offset,
            skip_fsync_canary: options.skip_fsync_canary,
            ..CommitLogOptions::default()
        };
        let log = CommitLog::open(storage.segments, log_options)?;
        let needed = state.next_offset;
        let mut replayed_bytes = 0u64;
        let replayed = log.replay(needed, |offset, payload| {
            if offset != state.next_offset {
                return Err(OpenError::Gap {
                    needed: state.next_offset.0,
                    log_start: offset.0,
                });
            }
            state.tx_counter += 1;
            let tx_no = state.tx_counter;
            record::apply_tx(&mut state, payload, tx_no).map_err(|reason| OpenError::Record {
                offset: offset.0,
                reason,
            })?;
            state.next_offset = offset.next();
            report.records_replayed += 1;
            replayed_bytes += payload.len() as u64;
            Ok(())
        });
        match replayed {
            Ok(()) => {}
            Err(commitlog::ReplayError::Callback { error, .. }) => return Err(error),
            Err(commitlog::ReplayError::NotRetained { first_retained, .. }) => {
                return Err(OpenError::Gap {
                    needed: needed.0,
                    log_start: first_retained.0,
                })
            }
            Err(other) => {
                return Err(OpenError::Record {
                    offset: needed.0,
                    reason: other.to_string(),
                })
            }
        }
        let log_next = log.open_report().next_offset;
        if log_next != state.next_offset {
            return Err(OpenError::Gap {
                needed: state.next_offset.0,
                log_start: log_next.0,
            });
        }
        report.last_offset = state.last_offset();
        let db = Database::from_parts(
            state,
            Some(log),
            repo,
            options,
            &report,
            replayed_bytes,
            storage.clock,
        );
        Ok((db, report))
    }

    fn from_parts(
        state: State,
        log: Option<CommitLog>,
        snapshots: Option<SnapshotRepo>,
        options: DbOptions,
        recovered: &RecoveryReport,
        replayed_bytes: u64,
        clock: Arc<dyn Clock>,
    ) -> Database {
        // Without a snapshot store there is nothing to snapshot into.
        let policy = match snapshots {
            Some(_) => options.snapshot_policy,
            None => SnapshotPolicy::NEVER,
        };
        let book = SnapshotBook::new(
            policy,
            recovered.snapshot_offset,
            recovered.records_replayed,
            replayed_bytes,
        );
        Database {
            inner: Arc::new_cyclic(|me| DbInner {
                state: Arc::new(RwLock::new(state)),
                log,
                snapshots,
                options,
                poisoned: AtomicBool::new(false),
                log_failed: Mutex::new(None),
                snapshot_running: Mutex::new(()),
                book,
                me: me.clone(),
                observer: RwLock::new(None),
                pre_commit: RwLock::new(None),
                elsewhere: RwLock::new(None),
                clock,
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<DbInner>) -> Database {
        Database { inner }
    }

    /// The database's snapshot store, if it keeps snapshots.
    pub fn snapshot_repo(&self) -> Option<&SnapshotRepo> {
        self.inner.snapshots.as_ref()
    }

    /// Hands the database to `snapshotter` (or with `None` takes it back):
    /// from now on, once [`DbOptions::snapshot_policy`] is due, a commit asks
    /// for a snapshot that one of the snapshotter's threads takes with
    /// [`Database::take_snapshot`], off the commit path. `listener` hears
    /// each outcome. If the policy is already due (a long replay at open),
    /// the first snapshot is asked for now. Taking it back waits for a
    /// background snapshot in progress, so none touches the storage after
    /// this returns (call it before the database is closed and reopened).
    pub fn set_snapshotter(
        &self,
        snapshotter: Option<Arc<Snapshotter>>,
        listener: Option<SnapshotListener>,
    ) {
        let detach = snapshotter.is_none();
        self.inner.book.set_background(snapshotter, listener);
        if detach {
            // A job queued before this finds no snapshotter and does nothing.
            drop(self.lock_snapshots());
        } else {
            self.inner.book.request_if_due(&self.inner.me);
        }
    }

    /// What this database's snapshots did since it was opened.
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.inner.book.stats()
    }

    /// A snapshot thread's job: take one (unless the snapshotter was taken
    /// back meanwhile), let the listener know, and ask again if the policy
    /// came due meanwhile.
    pub(crate) fn background_snapshot(&self) {
        let started = Instant::now();
        let result = self.snapshot(Mode::Background);
        let took = started.elapsed();
        let listener = self.inner.book.background_done();
        let Some(result) = result else { return };
        let result = result.map(|taken| taken.and_then(|(_, written)| written));
        if let Some(listener) = listener {
            let stats = self.snapshot_stats();
            listener(&SnapshotEvent {
                result: &result,
                took,
                stats: &stats,
            });
        }
        self.inner.book.request_if_due(&self.inner.me);
    }

    /// Installs (or with `None` removes) the observer of every later commit.
    pub fn set_commit_observer(&self, observer: Option<Arc<dyn CommitObserver>>) {
        *self.inner.observer.write() = observer;
    }

    /// Installs (or with `None` removes) the hook run before every later
    /// commit of a transaction that wrote something (see [`PreCommit`]).
    pub fn set_pre_commit(&self, hook: Option<Arc<dyn PreCommit>>) {
        *self.inner.pre_commit.write() = hook;
    }

    /// Starts the one write transaction; waits while another runs.
    pub fn begin(&self) -> Result<MutTx, CommitError> {
        self.inner.check_writable()?;
        let state = self.inner.state.write_arc();
        // A panic in the previous transaction poisons while it held the lock.
        self.inner.check_writable()?;
        Ok(MutTx::new(state, self.inner.clone()))
    }

    /// A consistent read of the committed state. Inside a write transaction,
    /// read through the [`MutTx`] instead (it derefs to [`State`]): calling this
    /// on a thread that holds a `MutTx` of the same database would wait forever.
    pub fn read(&self) -> Result<ReadTx<'_>, CommitError> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(CommitError::Poisoned);
        }
        Ok(ReadTx(self.inner.state.read()))
    }

    /// Highest offset known durable (everything below it is durable too):
    /// in the local log and, if set, [`DurableElsewhere`] too. For an
    /// in-memory database every commit counts as durable.
    pub fn durable_offset(&self) -> Option<TxOffset> {
        let local = match &self.inner.log {
            Some(log) => log.durable_offset(),
            None => self.inner.state.read().last_offset(),
        };
        match &*self.inner.elsewhere.read() {
            Some(elsewhere) => local.min(elsewhere.held_through()),
            None => local,
        }
    }

    /// Blocks until `offset` is durable (locally, then where
    /// [`DurableElsewhere`] says), or fails if the log failed first;
    /// [`commitlog::DurabilityError::NotYetElsewhere`] when the second place
    /// did not take it in time (it may still).
    pub fn wait_durable(&self, offset: TxOffset) -> Result<(), commitlog::DurabilityError> {
        if let Some(log) = &self.inner.log {
            log.wait_durable(offset)?;
        }
        let elsewhere = self.inner.elsewhere.read().clone();
        match elsewhere {
            Some(elsewhere) => elsewhere
                .wait_held(offset)
                .map_err(|reason| commitlog::DurabilityError::NotYetElsewhere { offset, reason }),
            None => Ok(()),
        }
    }

    /// Makes [`Database::wait_durable`] also wait for `elsewhere` (or, with
    /// `None`, only for the local log).
    pub fn set_durable_elsewhere(&self, elsewhere: Option<Arc<dyn DurableElsewhere>>) {
        *self.inner.elsewhere.write() = elsewhere;
    }

    /// Waits until everything committed so far is durable.
    pub fn flush(&self) -> Result<Option<TxOffset>, commitlog::DurabilityError> {
        match &self.inner.log {
            Some(log) => log.flush(),
            None => Ok(self.durable_offset()),
        }
    }

    /// The commit log, for shipping sealed segments and for tests.
    pub fn commit_log(&self) -> Option<&CommitLog> {
        self.inner.log.as_ref()
    }

    /// Takes a snapshot of the committed state: copies row handles under the
    /// read lock (writers wait only for that copy), waits until the snapshot's
    /// offset is durable, then encodes and writes outside any lock, keeps the
    /// newest `snapshot_retain` snapshots and drops log segments that no kept
    /// snapshot needs. Snapshots of one database are taken one at a time (a
    /// second call waits for the first). Returns `None` if nothing was ever
    /// committed. The outcome is counted in [`Database::snapshot_stats`].
    pub fn take_snapshot(&self) -> Result<Option<SnapshotWritten>, TakeSnapshotError> {
        self.snapshot(Mode::Always)
            .unwrap_or(Ok(None))
            .map(|taken| taken.and_then(|(_, written)| written))
    }

    /// Takes a snapshot unless the newest one already holds the last
    /// committed transaction (for a clean shutdown: the next open then
    /// replays nothing). Returns the newest snapshot's offset afterwards.
    pub fn snapshot_if_behind(&self) -> Result<Option<TxOffset>, TakeSnapshotError> {
        self.snapshot(Mode::IfBehind)
            .unwrap_or(Ok(None))
            .map(|taken| taken.map(|(offset, _)| offset))
    }

    fn lock_snapshots(&self) -> std::sync::MutexGuard<'_, ()> {
        // Guards no data: a panic in another snapshot leaves nothing to repair.
        self.inner
            .snapshot_running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// One snapshot at a time per database: `None` if a background job
    /// found its snapshotter taken back; otherwise `Ok(None)` if nothing was
    /// ever committed (or there is no snapshot store), else the snapshot's
    /// offset and what was written (`None` when skipped because current).
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &self,
        mode: Mode,
    ) -> Option<Result<Option<(TxOffset, Option<SnapshotWritten>)>, TakeSnapshotError>> {
        let Some(repo) = &self.inner.snapshots else {
            return Some(Ok(None));
        };
        let _one_at_a_time = self.lock_snapshots();
        if mode == Mode::Background && !self.inner.book.has_background() {
            return None;
        }
        let started = Instant::now();
        let mut removed = 0;
        let result = self.snapshot_locked(repo, mode == Mode::IfBehind, &mut removed);
        match &result {
            Ok(Some((_, Some(_)))) => self.inner.book.taken(started.elapsed(), removed),
            // Nothing committed, or skipped because current: nothing to count.
            Ok(_) => {}
            Err(error) => self.inner.book.failed(error, started.elapsed(), removed),
        }
        Some(result)
    }

    fn snapshot_locked(
        &self,
        repo: &SnapshotRepo,
        skip_if_current: bool,
        removed: &mut usize,
    ) -> Result<Option<(TxOffset, Option<SnapshotWritten>)>, TakeSnapshotError> {
        let (offset, meta, tables) = {
            let state = self.inner.state.read();
            let Some(offset) = state.last_offset() else {
                return Ok(None);
            };
            if skip_if_current && self.inner.book.newest() == Some(offset) {
                return Ok(Some((offset, None)));
            }
            let tables: Vec<_> = state
                .tables
                .values()
                .map(|table| {
                    let reserved: Vec<i128> =
                        table.sequences.iter().map(|s| s.reserved_upto).collect();
                    let rows: Vec<Row> = table.rows().map(|(_, row)| row.clone()).collect();
                    (table.schema.clone(), reserved, rows)
                })
                .collect();
            // Every record so far is in this copy; the policy counts anew.
            self.inner.book.copied();
            (offset, record::encode_meta(&state), tables)
        };
        if let Some(log) = &self.inner.log {
            log.wait_durable(offset)
                .map_err(|e| TakeSnapshotError::NotDurable {
                    offset: offset.0,
                    reason: e.to_string(),
                })?;
        }
        let mut parts = Vec::with_capacity(tables.len() + 1);
        parts.push(SnapshotPart {
            name: "meta".into(),
            bytes: meta,
            row_count: 0,
        });
        for (schema, reserved, mut rows) in tables {
            let row_count = rows.len() as u64;
            let bytes = record::encode_table_part(&schema, &reserved, &mut rows);
            parts.push(SnapshotPart {
                name: format!("table-{:010}", schema.table_id.0),
                bytes,
                row_count,
            });
        }
        let refs: Vec<_> = parts.iter().map(SnapshotPart::as_part_ref).collect();
        let written = repo.write(offset, &refs)?;
        self.inner.book.published(offset);
        let kept = repo.retain(self.inner.options.snapshot_retain)?;
        // Replay from the oldest kept snapshot that verified needs every
        // record after it; nothing older is needed by any kept snapshot.
        if let (Some(log), Some(oldest)) = (&self.inner.log, kept.kept.last()) {
            *removed = log
                .remove_segments_below(oldest.next())
                .map_err(|e| TakeSnapshotError::Log(e.to_string()))?
                .len();
        }
        Ok(Some((offset, Some(written))))
    }
}

impl DbInner {
    fn check_writable(&self) -> Result<(), CommitError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(CommitError::Poisoned);
        }
        if let Some(reason) = self
            .log_failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Err(CommitError::LogFailed(reason.clone()));
        }
        if let Some(log) = &self.log {
            if let Some(failure) = log.failure() {
                return Err(CommitError::LogFailed(failure.to_string()));
            }
        }
        Ok(())
    }

    /// Appends a transaction's record while the caller holds the write lock.
    pub(crate) fn append(
        &self,
        state: &mut State,
        payload: Vec<u8>,
    ) -> Result<TxOffset, CommitError> {
        let bytes = payload.len() as u64;
        let offset = match &self.log {
            None => state.next_offset,
            Some(log) => match log.append(payload) {
                Ok(offset) => offset,
                Err(error) => {
                    let reason = error.to_string();
                    *self.log_failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(reason.clone());
                    return Err(CommitError::LogFailed(reason));
                }
            },
        };
        assert_eq!(
            offset, state.next_offset,
            "commit-log offsets follow the state's"
        );
        state.next_offset = offset.next();
        self.book.appended(bytes, &self.me);
        Ok(offset)
    }

    pub(crate) fn observer(&self) -> Option<Arc<dyn CommitObserver>> {
        self.observer.read().clone()
    }

    pub(crate) fn pre_commit(&self) -> Option<Arc<dyn PreCommit>> {
        self.pre_commit.read().clone()
    }

    pub(crate) fn has_log(&self) -> bool {
        self.log.is_some()
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }
}

/// Who asked for a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An explicit `take_snapshot`: always write.
    Always,
    /// Shutdown: skip if the newest snapshot is at the last offset.
    IfBehind,
    /// A snapshot thread: skip if the snapshotter was taken back.
    Background,
}

/// Rebuilds the state from a snapshot's parts; returns it and its row count.
fn state_from_snapshot(snapshot: &crate::snapshot::Snapshot) -> Result<(State, u64), String> {
    let mut state = State::empty();
    let mut rows = 0;
    let mut meta = None;
    for part in &snapshot.parts {
        if part.name == "meta" {
            meta = Some(record::decode_meta(&part.bytes)?);
            continue;
        }
        let table = record::decode_table_part(&part.bytes)
            .map_err(|e| format!("part `{}`: {e}", part.name))?;
        if table.len() as u64 != part.row_count {
            return Err(format!(
                "part `{}` holds {} rows, manifest says {}",
                part.name,
                table.len(),
                part.row_count
            ));
        }
        rows += part.row_count;
        if state.tables.contains_key(&table.schema.table_id)
            || state.table_names.contains_key(&table.schema.name)
        {
            return Err(format!("table `{}` appears twice", table.schema.name));
        }
        state.add_table(table);
    }
    let (next_table_id, next_index_id) = meta.ok_or("snapshot has no meta part")?;
    state.next_table_id = state.next_table_id.max(next_table_id);
    state.next_index_id = state.next_index_id.max(next_index_id);
    Ok((state, rows))
}
