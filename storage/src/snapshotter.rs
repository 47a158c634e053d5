//! Snapshots on a policy: when a database asks for one, and the background
//! threads that take it.
//!
//! Owns: [`SnapshotPolicy`] (every N committed transactions or M bytes of
//! commit-log payload since the last snapshot), [`Snapshotter`] (a few
//! threads shared by many databases, fed by a bounded queue of requests),
//! one database's snapshot bookkeeping (`SnapshotBook`: the counters the
//! commit path bumps, the request flag, [`SnapshotStats`]) and the
//! [`SnapshotListener`] that hears how each background snapshot went.
//! Does not own: taking a snapshot (`Database::take_snapshot` in `db`), the
//! byte formats (`record`, `durable::snapshot`), or snapshots at shutdown
//! (the process calls `Database::snapshot_if_behind`).
//!
//! Invariants: the commit path never waits here: it bumps two counters and,
//! when the policy is due, `try_send`s one request; a database is queued or
//! being snapshotted in the background at most once at a time (its `queued`
//! flag), and `Database::take_snapshot` serialises every snapshot of one
//! database, so two never run at once; a failed snapshot is counted and
//! reported, never fatal, and the next one is asked for after another
//! policy interval.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use orrery_api::limits::{
    SNAPSHOT_EVERY_LOG_BYTES_DEFAULT, SNAPSHOT_EVERY_TXS_DEFAULT, SNAPSHOT_QUEUE_DATABASES_MAX,
};
use orrery_api::TxOffset;
use parking_lot::RwLock;

use crate::db::{Database, DbInner};
use crate::error::TakeSnapshotError;
use crate::snapshot::SnapshotWritten;

/// When a database takes its next snapshot in the background: once either
/// count since the last snapshot reaches its threshold. Zero turns a
/// threshold off; [`SnapshotPolicy::NEVER`] turns both off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Committed transactions (commit-log records).
    pub every_txs: u64,
    /// Bytes of commit-log record payloads.
    pub every_log_bytes: u64,
}

impl SnapshotPolicy {
    /// No background snapshots (explicit `take_snapshot` calls still work).
    pub const NEVER: SnapshotPolicy = SnapshotPolicy {
        every_txs: 0,
        every_log_bytes: 0,
    };

    /// Whether `txs` records of `log_bytes` bytes since the last snapshot
    /// call for the next one.
    pub fn due(&self, txs: u64, log_bytes: u64) -> bool {
        (self.every_txs > 0 && txs >= self.every_txs)
            || (self.every_log_bytes > 0 && log_bytes >= self.every_log_bytes)
    }
}

impl Default for SnapshotPolicy {
    fn default() -> SnapshotPolicy {
        SnapshotPolicy {
            every_txs: SNAPSHOT_EVERY_TXS_DEFAULT,
            every_log_bytes: SNAPSHOT_EVERY_LOG_BYTES_DEFAULT,
        }
    }
}

/// What one database's snapshots have done since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// The newest snapshot known good: the one recovery started from, or
    /// the last one taken since.
    pub newest_offset: Option<TxOffset>,
    /// Snapshots written since open (background and explicit).
    pub taken: u64,
    /// Snapshots that failed since open.
    pub failed: u64,
    /// Why the last failure failed (kept after later successes).
    pub last_error: Option<String>,
    /// How long the last snapshot took, from the copy to the segment removal.
    pub last_duration: Option<Duration>,
    /// Commit-log segments removed because no kept snapshot needed them.
    pub segments_removed: u64,
    /// A background snapshot is queued or running.
    pub pending: bool,
    /// Records committed since the copy of the newest attempt (replayed
    /// records count after an open).
    pub txs_since: u64,
    /// Payload bytes of those records.
    pub log_bytes_since: u64,
}

/// How one background snapshot went, for a [`SnapshotListener`].
#[derive(Debug)]
pub struct SnapshotEvent<'a> {
    /// `Ok(None)` if nothing was ever committed.
    pub result: &'a Result<Option<SnapshotWritten>, TakeSnapshotError>,
    pub took: Duration,
    /// The database's counters right after it.
    pub stats: &'a SnapshotStats,
}

/// Hears every background snapshot of one database (to log it); runs on a
/// snapshot thread, so it must be quick and must not take a snapshot.
pub type SnapshotListener = Arc<dyn Fn(&SnapshotEvent<'_>) + Send + Sync>;

/// Threads that take snapshots in the background for every database that
/// was given this snapshotter ([`Database::set_snapshotter`]). Requests wait
/// in a bounded queue; the threads stop once every handle (the owner's and
/// each database's) is gone.
pub struct Snapshotter {
    requests: SyncSender<Weak<DbInner>>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter").finish_non_exhaustive()
    }
}

impl Snapshotter {
    /// Starts `threads` (at least one) snapshot threads.
    pub fn start(threads: usize) -> std::io::Result<Arc<Snapshotter>> {
        let (requests, queue) = mpsc::sync_channel(SNAPSHOT_QUEUE_DATABASES_MAX);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("snapshot-{i}"))
                .spawn(move || serve(&queue))?;
        }
        Ok(Arc::new(Snapshotter { requests }))
    }

    /// Queues `db` without waiting; false if the queue is full or stopped.
    fn request(&self, db: Weak<DbInner>) -> bool {
        self.requests.try_send(db).is_ok()
    }
}

/// One snapshot thread: takes requests until every sender is gone.
fn serve(queue: &Mutex<Receiver<Weak<DbInner>>>) {
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(db) = next else { return };
        // A database dropped while queued needs no snapshot.
        if let Some(inner) = db.upgrade() {
            Database::from_inner(inner).background_snapshot();
        }
    }
}

/// The background part of a database.
#[derive(Clone)]
struct Background {
    snapshotter: Arc<Snapshotter>,
    listener: Option<SnapshotListener>,
}

/// One database's snapshot bookkeeping, inside its `DbInner`.
pub(crate) struct SnapshotBook {
    policy: SnapshotPolicy,
    /// Records appended since the copy of the newest snapshot attempt;
    /// written under the database's write lock, reset under its read lock.
    txs_since: AtomicU64,
    log_bytes_since: AtomicU64,
    /// True while a background request is queued or running.
    queued: AtomicBool,
    background: RwLock<Option<Background>>,
    stats: Mutex<SnapshotStats>,
}

impl SnapshotBook {
    pub(crate) fn new(
        policy: SnapshotPolicy,
        newest: Option<TxOffset>,
        replayed_txs: u64,
        replayed_bytes: u64,
    ) -> SnapshotBook {
        SnapshotBook {
            policy,
            txs_since: AtomicU64::new(replayed_txs),
            log_bytes_since: AtomicU64::new(replayed_bytes),
            queued: AtomicBool::new(false),
            background: RwLock::new(None),
            stats: Mutex::new(SnapshotStats {
                newest_offset: newest,
                ..SnapshotStats::default()
            }),
        }
    }

    /// The commit path, holding the write lock: one record of `bytes` was
    /// appended. Never waits.
    pub(crate) fn appended(&self, bytes: u64, me: &Weak<DbInner>) {
        let txs = self.txs_since.fetch_add(1, Ordering::Relaxed) + 1;
        let log_bytes = self.log_bytes_since.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.policy.due(txs, log_bytes) {
            self.request(me);
        }
    }

    /// Asks the snapshotter for a snapshot if the policy is due now.
    pub(crate) fn request_if_due(&self, me: &Weak<DbInner>) {
        let txs = self.txs_since.load(Ordering::Relaxed);
        let log_bytes = self.log_bytes_since.load(Ordering::Relaxed);
        if self.policy.due(txs, log_bytes) {
            self.request(me);
        }
    }

    fn request(&self, me: &Weak<DbInner>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let sent = match &*self.background.read() {
            Some(background) => background.snapshotter.request(me.clone()),
            None => false,
        };
        if !sent {
            // No snapshotter, or its queue is full: a later commit asks again.
            self.queued.store(false, Ordering::Release);
        }
    }

    pub(crate) fn set_background(
        &self,
        snapshotter: Option<Arc<Snapshotter>>,
        listener: Option<SnapshotListener>,
    ) {
        *self.background.write() = snapshotter.map(|snapshotter| Background {
            snapshotter,
            listener,
        });
    }

    pub(crate) fn has_background(&self) -> bool {
        self.background.read().is_some()
    }

    /// The background request is done (whatever its outcome).
    pub(crate) fn background_done(&self) -> Option<SnapshotListener> {
        self.queued.store(false, Ordering::Release);
        self.background.read().as_ref()?.listener.clone()
    }

    /// A snapshot copied the state; called under the read lock, so no
    /// record is appended meanwhile.
    pub(crate) fn copied(&self) {
        self.txs_since.store(0, Ordering::Relaxed);
        self.log_bytes_since.store(0, Ordering::Relaxed);
    }

    pub(crate) fn newest(&self) -> Option<TxOffset> {
        self.lock_stats().newest_offset
    }

    /// A snapshot at `offset` is published (before retention ran).
    pub(crate) fn published(&self, offset: TxOffset) {
        let mut stats = self.lock_stats();
        stats.newest_offset = stats.newest_offset.max(Some(offset));
    }

    /// A snapshot attempt succeeded.
    pub(crate) fn taken(&self, took: Duration, segments_removed: usize) {
        let mut stats = self.lock_stats();
        stats.taken += 1;
        stats.last_duration = Some(took);
        stats.segments_removed += segments_removed as u64;
    }

    /// A snapshot attempt failed.
    pub(crate) fn failed(
        &self,
        error: &TakeSnapshotError,
        took: Duration,
        segments_removed: usize,
    ) {
        let mut stats = self.lock_stats();
        stats.failed += 1;
        stats.last_error = Some(error.to_string());
        stats.last_duration = Some(took);
        stats.segments_removed += segments_removed as u64;
    }

    pub(crate) fn stats(&self) -> SnapshotStats {
        let mut stats = self.lock_stats().clone();
        stats.txs_since = self.txs_since.load(Ordering::Relaxed);
        stats.log_bytes_since = self.log_bytes_since.load(Ordering::Relaxed);
        stats.pending = self.queued.load(Ordering::Acquire);
        stats
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, SnapshotStats> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_due_at_either_threshold_and_zero_turns_one_off() {
        let policy = SnapshotPolicy {
            every_txs: 10,
            every_log_bytes: 1000,
        };
        assert!(!policy.due(9, 999));
        assert!(policy.due(10, 0));
        assert!(policy.due(0, 1000));
        let by_size = SnapshotPolicy {
            every_txs: 0,
            ..policy
        };
        assert!(!by_size.due(u64::MAX, 999));
        assert!(by_size.due(1, 1000));
        assert!(!SnapshotPolicy::NEVER.due(u64::MAX, u64::MAX));
    }
}
