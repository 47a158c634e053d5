// Protects the snapshot policy: once enough transactions commit, a snapshot
// is taken in the background and the log segments no kept snapshot needs are
// deleted, so a restart replays at most about one policy interval; taking it
// never holds up commits and never runs twice at once for one database; a
// failing snapshot store never fails a commit and is retried; and a snapshot
// at shutdown leaves nothing to replay.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::clock::ManualClock;
use storage::commitlog::{MemorySegmentStore, SegmentStore};
use storage::snapshot::{BlobStore, MemoryBlobStore, SnapshotRepo};
use storage::{
    ColId, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, RecoveryReport,
    SnapshotPolicy, SnapshotStats, Snapshotter, TableDef, TxOffset, UniqueConstraintDef,
};

/// Generous: the machine is shared, but a hang must still fail the test.
const PATIENCE: Duration = Duration::from_secs(60);

fn kv_def() -> TableDef {
    TableDef {
        name: "kv".into(),
        columns: ProductType::from([("k", AlgebraicType::U64), ("v", AlgebraicType::U64)]),
        primary_key: Some(ColId(0)),
        indexes: vec![IndexDef {
            name: "kv_k_idx_btree".into(),
            algorithm: IndexAlgorithm::BTree,
            columns: vec![ColId(0)],
        }],
        unique_constraints: vec![UniqueConstraintDef {
            name: "kv_k_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![],
        public: true,
        is_event: false,
    }
}

/// Commit-log segments and snapshot blobs that outlive one open database.
struct Stores {
    segments: MemorySegmentStore,
    blobs: Arc<dyn BlobStore>,
}

impl Stores {
    fn new(blobs: Arc<dyn BlobStore>) -> Stores {
        Stores {
            segments: MemorySegmentStore::new(),
            blobs,
        }
    }

    fn open(&self, policy: SnapshotPolicy) -> (Database, RecoveryReport) {
        let storage = DbStorage {
            segments: Arc::new(self.segments.clone()),
            snapshots: Some(self.blobs.clone()),
            clock: Arc::new(ManualClock::new(1_700_000_000_000_000)),
        };
        let options = DbOptions {
            segment_bytes_max: 2048,
            snapshot_retain: 2,
            snapshot_policy: policy,
            ..DbOptions::default()
        };
        Database::open(storage, options).expect("the database opens")
    }

    fn snapshots(&self) -> Vec<TxOffset> {
        SnapshotRepo::new(self.blobs.clone(), Arc::new(ManualClock::new(0)))
            .list()
            .expect("list snapshots")
    }
}

fn every(txs: u64) -> SnapshotPolicy {
    SnapshotPolicy {
        every_txs: txs,
        every_log_bytes: 0,
    }
}

/// Commits `count` transactions, each setting `k = offset % 16` to the
/// offset (the first one also creates the table); returns the last offset.
fn commit(db: &Database, count: u64) -> TxOffset {
    let mut last = None;
    for _ in 0..count {
        let mut tx = db.begin().expect("begin");
        let table = match tx.table_id_from_name("kv") {
            Some(table) => table,
            None => tx.create_table(kv_def()).expect("create kv"),
        };
        let index = tx.index_id_from_name("kv_k_idx_btree").expect("kv index");
        let offset = tx.last_offset().map_or(0, |o| o.0 + 1);
        let key = AlgebraicValue::U64(offset % 16);
        tx.delete_by_point(index, &key).expect("delete");
        tx.insert_row(table, vec![key, AlgebraicValue::U64(offset)])
            .expect("insert");
        last = tx.commit().expect("commit").offset;
    }
    let last = last.expect("something committed");
    db.wait_durable(last).expect("durable");
    last
}

/// Waits until `done` holds for the database's snapshot stats.
fn wait_for(db: &Database, what: &str, done: impl Fn(&SnapshotStats) -> bool) -> SnapshotStats {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = db.snapshot_stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}: {stats:?}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn snapshots_follow_the_policy_and_old_segments_go() {
    let stores = Stores::new(Arc::new(MemoryBlobStore::new()));
    let (db, _) = stores.open(every(50));
    let snapshotter = Snapshotter::start(1).expect("snapshot thread");
    db.set_snapshotter(Some(snapshotter), None);
    // Rounds of a bit more than one interval, each waited on: the snapshot
    // thread may only run once the round's commits are done.
    let mut last = TxOffset(0);
    let mut stats = SnapshotStats::default();
    for round in 1..=10 {
        last = commit(&db, 60);
        stats = wait_for(
            &db,
            "the round's snapshot, within one interval of the end",
            |s| {
                !s.pending
                    && s.taken >= round
                    && s.newest_offset.is_some_and(|n| n.0 + 50 >= last.0)
            },
        );
    }
    assert!(stats.taken >= 10, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(stats.segments_removed > 0, "{stats:?}");

    let kept = stores.snapshots();
    assert!(
        !kept.is_empty() && kept.len() <= 2,
        "retention keeps 2: {kept:?}"
    );
    let oldest = *kept.last().unwrap();
    let segments = db.commit_log().unwrap().segments();
    assert!(
        segments[0].first.0 > 0 && segments[0].first <= oldest.next(),
        "the log starts after offset 0 and no later than the oldest kept snapshot needs: \
         first segment {:?}, oldest snapshot {oldest:?}",
        segments[0].first
    );
    let on_disk = stores.segments.list().unwrap();
    assert_eq!(
        on_disk.first(),
        Some(&segments[0].first),
        "removed from the store too"
    );
    drop(db);

    let (db, report) = stores.open(every(50));
    assert_eq!(report.snapshot_offset, stats.newest_offset, "{report:?}");
    assert!(report.records_replayed <= 50, "{report:?}");
    assert_eq!(report.last_offset, Some(last));
    assert_eq!(db.read().unwrap().last_offset(), Some(last));
}

#[test]
fn a_long_replay_asks_for_a_snapshot_at_once() {
    let stores = Stores::new(Arc::new(MemoryBlobStore::new()));
    let (db, _) = stores.open(every(1_000_000));
    let last = commit(&db, 120);
    drop(db);
    let (db, report) = stores.open(every(100));
    assert_eq!(report.records_replayed, 120, "{report:?}");
    assert_eq!(db.snapshot_stats().txs_since, report.records_replayed);
    db.set_snapshotter(Some(Snapshotter::start(1).unwrap()), None);
    let stats = wait_for(&db, "the snapshot after replay", |s| s.taken == 1);
    assert_eq!(stats.newest_offset, Some(last));
}

#[test]
fn snapshot_if_behind_leaves_nothing_to_replay() {
    let stores = Stores::new(Arc::new(MemoryBlobStore::new()));
    let (db, _) = stores.open(SnapshotPolicy::NEVER);
    assert_eq!(db.snapshot_if_behind().unwrap(), None, "nothing committed");
    let last = commit(&db, 30);
    assert_eq!(db.snapshot_if_behind().unwrap(), Some(last));
    assert_eq!(db.snapshot_if_behind().unwrap(), Some(last));
    assert_eq!(
        db.snapshot_stats().taken,
        1,
        "the second call wrote nothing"
    );
    drop(db);
    let (db, report) = stores.open(SnapshotPolicy::NEVER);
    assert_eq!(report.snapshot_offset, Some(last));
    assert_eq!(report.records_replayed, 0);
    let last = commit(&db, 1);
    assert_eq!(db.snapshot_if_behind().unwrap(), Some(last));
    assert_eq!(db.snapshot_stats().taken, 1);
}

/// Snapshot blobs whose puts fail while `failing` is set.
struct Failing {
    inner: MemoryBlobStore,
    failing: AtomicBool,
}

impl BlobStore for Failing {
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!("injected: put {key} refused")));
        }
        self.inner.put(key, bytes)
    }
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn exists(&self, key: &str) -> io::Result<bool> {
        self.inner.exists(key)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> io::Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn a_failing_snapshot_store_fails_no_commit_and_is_retried() {
    let blobs = Arc::new(Failing {
        inner: MemoryBlobStore::new(),
        failing: AtomicBool::new(true),
    });
    let stores = Stores::new(blobs.clone());
    let (db, _) = stores.open(every(20));
    db.set_snapshotter(Some(Snapshotter::start(1).unwrap()), None);
    commit(&db, 50);
    let stats = wait_for(&db, "a failed snapshot", |s| s.failed >= 1);
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("injected"),
        "{stats:?}"
    );
    assert_eq!(stats.newest_offset, None);
    // Commits go on while snapshots fail; the next interval retries.
    commit(&db, 50);
    blobs.failing.store(false, Ordering::SeqCst);
    let last = commit(&db, 25);
    let stats = wait_for(&db, "a snapshot after the store recovered", |s| {
        s.taken >= 1
    });
    assert!(stats.newest_offset.is_some(), "{stats:?}");
    drop(db);
    let (db, report) = stores.open(every(20));
    assert_eq!(report.last_offset, Some(last));
    assert!(report.snapshot_offset.is_some(), "{report:?}");
    assert_eq!(db.read().unwrap().last_offset(), Some(last));
}

/// Snapshot blobs whose puts wait while the gate is closed, counting how
/// many wait at once.
#[derive(Default)]
struct Gated {
    inner: MemoryBlobStore,
    closed: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
}

impl Gated {
    fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }
}

impl BlobStore for Gated {
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let now = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_waiting.fetch_max(now, Ordering::SeqCst);
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
        drop(closed);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.inner.put(key, bytes)
    }
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn exists(&self, key: &str) -> io::Result<bool> {
        self.inner.exists(key)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> io::Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn a_slow_snapshot_holds_up_no_commit_and_never_runs_twice() {
    let blobs = Arc::new(Gated::default());
    blobs.set_closed(true);
    let stores = Stores::new(blobs.clone());
    let (db, _) = stores.open(every(10));
    // Two threads, so only the database's own guard keeps snapshots apart.
    db.set_snapshotter(Some(Snapshotter::start(2).unwrap()), None);
    commit(&db, 10);
    let deadline = Instant::now() + PATIENCE;
    while blobs.waiting.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the snapshot never started writing"
        );
        std::thread::yield_now();
    }
    // The snapshot is stuck in its write: commits go on, many intervals' worth.
    let last = commit(&db, 200);
    assert_eq!(db.snapshot_stats().taken, 0, "still writing");
    assert_eq!(blobs.most_waiting.load(Ordering::SeqCst), 1);
    blobs.set_closed(false);
    let stats = wait_for(&db, "a snapshot near the end", |s| {
        s.newest_offset.is_some_and(|n| n.0 + 10 >= last.0)
    });
    assert_eq!(blobs.most_waiting.load(Ordering::SeqCst), 1, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
}
