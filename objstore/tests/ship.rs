//! Shipping a database's log and snapshots, losing the local copy, and
//! reading it back from the store alone, on every store kind (memory, a
//! folder, the real S3 server): every record shipped comes back in order,
//! a damaged snapshot falls back to an older one, a damaged log piece is an
//! error rather than a shorter history, and a deposed holder is fenced and
//! its late records never come back.

#[macro_use]
#[path = "common/stores.rs"]
mod stores;

use std::sync::Arc;
use std::time::Duration;

use durable::clock::SystemClock;
use durable::commitlog::{
    CommitLog, CommitLogOptions, DurableFrames, FileSegmentStore, LogPosition,
};
use durable::snapshot::{BlobStore, DirBlobStore, SnapshotPartRef, SnapshotRepo};
use orrery_api::TxOffset;
use orrery_objstore::layout::DatabaseKey;
use orrery_objstore::object_store::{ObjectStore, PutPayload};
use orrery_objstore::{
    follow, DatabaseStore, Heads, LocalCopy, LocalReadError, ObjectStoreUrl, RecoverError,
    RestorePoint, ShipOptions, ShipStatus,
};
use stores::{Fixture, Kind};

for_each_store!(
    ship_lose_the_copy_and_recover,
    a_damaged_snapshot_falls_back_to_an_older_one,
    a_damaged_log_piece_is_an_error_not_a_shorter_history,
    a_deposed_holder_is_fenced_and_its_late_records_never_return,
);

/// A host's local copy: a commit log in `dir/log` and snapshots in
/// `dir/snapshots`, the engine's `DbStorage::dir` layout.
struct Local {
    _dir: tempfile::TempDir,
    log: CommitLog,
    snapshots: Arc<DirBlobStore>,
    repo: SnapshotRepo,
}

impl Local {
    fn new() -> Arc<Local> {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().to_path_buf();
        Local::open(dir, path, 0)
    }

    fn open(dir: tempfile::TempDir, path: std::path::PathBuf, start: u64) -> Arc<Local> {
        let segments = Arc::new(FileSegmentStore::open(path.join("log")).expect("log folder"));
        let log = CommitLog::open(
            segments,
            CommitLogOptions {
                // Small segments, so pieces cross segment boundaries.
                segment_bytes_max: 2048,
                start_offset: TxOffset(start),
                ..CommitLogOptions::default()
            },
        )
        .expect("open log");
        let snapshots = Arc::new(DirBlobStore::open(path.join("snapshots")).expect("snapshots"));
        let repo = SnapshotRepo::new(snapshots.clone(), Arc::new(SystemClock));
        Arc::new(Local {
            _dir: dir,
            log,
            snapshots,
            repo,
        })
    }

    /// Appends records `payload(i)` for `range` and waits until they are durable.
    fn append(&self, range: std::ops::Range<u64>, tag: &str) {
        for i in range {
            let offset = self.log.append(payload(tag, i)).expect("append");
            assert_eq!(offset, TxOffset(i));
        }
        self.log.flush().expect("flush");
    }

    /// A snapshot at `offset` with two parts, one the same in every snapshot
    /// (so it is shipped once).
    fn snapshot(&self, offset: u64) {
        let varying = format!("state as of {offset}").into_bytes();
        let parts = [
            SnapshotPartRef {
                name: "meta",
                bytes: b"unchanging part",
                row_count: 1,
            },
            SnapshotPartRef {
                name: "table-1",
                bytes: &varying,
                row_count: offset,
            },
        ];
        self.repo.write(TxOffset(offset), &parts).expect("snapshot");
    }
}

impl LocalCopy for Local {
    fn read_durable(
        &self,
        from: LogPosition,
        max_bytes: usize,
    ) -> Result<Option<DurableFrames>, LocalReadError> {
        Ok(self.log.read_durable(from, max_bytes)?)
    }

    fn newest_snapshot(&self) -> Option<u64> {
        self.repo.list().ok()?.first().map(|o| o.0)
    }

    fn snapshot_store(&self) -> Option<Arc<dyn BlobStore>> {
        Some(self.snapshots.clone())
    }
}

fn payload(tag: &str, i: u64) -> Vec<u8> {
    format!("{tag} record {i} {}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn database(fx: &Fixture, name: &str) -> DatabaseStore {
    DatabaseStore::new(
        fx.raw.clone(),
        Heads::over(&fx.url, fx.raw.clone()),
        DatabaseKey::new(name).expect("key"),
    )
}

fn fast() -> ShipOptions {
    ShipOptions {
        interval: Duration::from_millis(10),
        piece_bytes_max: 700,
        backoff_max: Duration::from_millis(100),
        ..ShipOptions::default()
    }
}

/// Runs the shipping loop until `done`, then stops it and returns its status.
async fn ship_until(
    store: &DatabaseStore,
    local: Arc<Local>,
    start: u64,
    done: impl FnMut(&ShipStatus) -> bool,
) -> Arc<ShipStatus> {
    let holder = Arc::new(store.take(start).await.expect("take the database"));
    let status = Arc::new(ShipStatus::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(follow(
        holder,
        local,
        start,
        fast(),
        status.clone(),
        stopped,
    ));
    tokio::time::timeout(Duration::from_secs(60), status.wait_for(done))
        .await
        .unwrap_or_else(|_| panic!("shipping did not finish: {:?}", status.last_error()));
    stop.send(true).expect("loop running");
    task.await.expect("loop ends");
    status
}

/// Every record of a local copy's log, in order, with its offset.
fn records_of(path: &std::path::Path, start: u64) -> Vec<(u64, Vec<u8>)> {
    let segments = Arc::new(FileSegmentStore::open(path.join("log")).expect("log folder"));
    let log = CommitLog::open(
        segments,
        CommitLogOptions {
            start_offset: TxOffset(start),
            ..CommitLogOptions::default()
        },
    )
    .expect("open the hydrated log");
    let mut out = Vec::new();
    log.replay(TxOffset(start), |offset, bytes| {
        out.push((offset.0, bytes.to_vec()));
        Ok::<_, ()>(())
    })
    .expect("replay");
    out
}

fn expected(tag: &str, range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, payload(tag, i))).collect()
}

async fn ship_lose_the_copy_and_recover(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "ship_recover") else {
        return;
    };
    let store = database(&fx, "ship_recover");
    let local = Local::new();
    local.append(0..120, "a");
    local.snapshot(80);
    local.append(120..300, "a");
    let status = ship_until(&store, local.clone(), 0, |s| {
        s.shipped_through() == Some(299) && s.snapshot_shipped() == Some(80)
    })
    .await;
    assert!(status.pieces.load(std::sync::atomic::Ordering::Relaxed) > 3);
    assert_eq!(status.last_error(), None);
    // The host's disk is gone: a new one reads the database from the store.
    drop(local);
    let cache = tempfile::tempdir().expect("cache");
    let report = store.hydrate(cache.path()).await.expect("hydrate");
    assert_eq!(report.snapshot.map(|s| s.offset), Some(80));
    assert!(report.skipped.is_empty());
    assert_eq!(report.next_offset, 300);
    assert_eq!(report.records, 219);
    assert_eq!(records_of(cache.path(), 81), expected("a", 81..300));
    let repo = SnapshotRepo::new(
        Arc::new(DirBlobStore::open(cache.path().join("snapshots")).expect("snapshots")),
        Arc::new(SystemClock),
    );
    let snapshot = repo
        .read(TxOffset(80))
        .expect("the snapshot verifies locally");
    assert_eq!(snapshot.parts[1].bytes, b"state as of 80");
    let remote = store.inspect().await.expect("inspect");
    assert_eq!(store.log_end(&remote).await.expect("end"), 300);
    // Restore points: right after a transaction, or exactly a snapshot.
    let cache = tempfile::tempdir().expect("cache");
    let report = store
        .hydrate_to(cache.path(), RestorePoint::Offset(150))
        .await
        .expect("to 150");
    assert_eq!(report.snapshot.map(|s| s.offset), Some(80));
    assert_eq!(report.next_offset, 151);
    assert_eq!(records_of(cache.path(), 81), expected("a", 81..151));
    let cache = tempfile::tempdir().expect("cache");
    let report = store
        .hydrate_to(cache.path(), RestorePoint::Offset(40))
        .await
        .expect("to 40, before any snapshot");
    assert_eq!(report.snapshot, None);
    assert_eq!(records_of(cache.path(), 0), expected("a", 0..41));
    let cache = tempfile::tempdir().expect("cache");
    let snapshot = remote.history_snapshots()[0];
    let report = store
        .hydrate_to(cache.path(), RestorePoint::Snapshot(snapshot))
        .await
        .expect("to the snapshot");
    assert_eq!((report.snapshot, report.records), (Some(snapshot), 0));
    for beyond in [RestorePoint::Offset(300), RestorePoint::Offset(10_000)] {
        let cache = tempfile::tempdir().expect("cache");
        let refused = store.hydrate_to(cache.path(), beyond).await;
        assert!(
            matches!(refused, Err(RecoverError::NoSuchPoint(_))),
            "{refused:?}"
        );
    }
}

async fn a_damaged_snapshot_falls_back_to_an_older_one(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "ship_fallback") else {
        return;
    };
    let store = database(&fx, "ship_fallback");
    let local = Local::new();
    local.append(0..100, "b");
    local.snapshot(50);
    let status = ship_until(&store, local.clone(), 0, |s| {
        s.shipped_through() == Some(99) && s.snapshot_shipped() == Some(50)
    })
    .await;
    assert_eq!(
        status.snapshots.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The second holder (same copy) ships a newer snapshot and more records.
    local.append(100..160, "b");
    local.snapshot(140);
    ship_until(&store, local.clone(), 100, |s| {
        s.shipped_through() == Some(159) && s.snapshot_shipped() == Some(140)
    })
    .await;
    // Damage the newer snapshot's own part (the shared one stays intact).
    let hash = durable::snapshot::ObjectHash::of(b"state as of 140").to_hex();
    let part = store.key().object_path(&hash);
    fx.raw
        .put(&part, PutPayload::from(b"state as of 666".to_vec()))
        .await
        .expect("damage");
    let cache = tempfile::tempdir().expect("cache");
    let report = store.hydrate(cache.path()).await.expect("hydrate");
    assert_eq!(report.snapshot.map(|s| s.offset), Some(50));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert_eq!(report.skipped[0].0.offset, 140);
    assert!(report.skipped[0].1.contains(&hash), "{:?}", report.skipped);
    assert_eq!(records_of(cache.path(), 51), expected("b", 51..160));
    // A truncated manifest is skipped the same way.
    let inspect = store.inspect().await.expect("inspect");
    let older = inspect.history_snapshots()[1];
    let manifest = store.key().snapshot_path(older);
    let bytes = fx.raw.get(&manifest).await.unwrap().bytes().await.unwrap();
    fx.raw
        .put(
            &manifest,
            PutPayload::from(bytes[..bytes.len() / 2].to_vec()),
        )
        .await
        .unwrap();
    let cache = tempfile::tempdir().expect("cache");
    let report = store.hydrate(cache.path()).await.expect("hydrate");
    assert_eq!(report.snapshot, None, "both snapshots are damaged");
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(records_of(cache.path(), 0), expected("b", 0..160));
}

async fn a_damaged_log_piece_is_an_error_not_a_shorter_history(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "ship_damaged") else {
        return;
    };
    let store = database(&fx, "ship_damaged");
    let local = Local::new();
    local.append(0..200, "c");
    ship_until(&store, local.clone(), 0, |s| {
        s.shipped_through() == Some(199)
    })
    .await;
    let remote = store.inspect().await.expect("inspect");
    assert!(remote.segments.len() > 3);
    // Flip one byte in the middle of a piece in the middle of the log.
    let victim = remote.segments[remote.segments.len() / 2];
    let key = store.key().segment_path(victim);
    let mut bytes = fx
        .raw
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fx.raw.put(&key, PutPayload::from(bytes)).await.unwrap();
    let cache = tempfile::tempdir().expect("cache");
    match store.hydrate(cache.path()).await {
        Err(RecoverError::DamagedLog { key: named, .. }) => assert_eq!(named, key.to_string()),
        other => panic!("expected a damaged-log error, got {other:?}"),
    }
    // A missing piece is a gap, also an error.
    fx.raw.delete(&key).await.unwrap();
    let cache = tempfile::tempdir().expect("cache");
    match store.hydrate(cache.path()).await {
        Err(RecoverError::Gap { needed, .. }) => assert_eq!(needed, victim.first_offset),
        other => panic!("expected a gap, got {other:?}"),
    }
}

async fn a_deposed_holder_is_fenced_and_its_late_records_never_return(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "ship_fenced") else {
        return;
    };
    let store = database(&fx, "ship_fenced");
    // The first host ships records 0..50 and keeps running.
    let old = Local::new();
    old.append(0..50, "old");
    let old_holder = Arc::new(store.take(0).await.expect("take"));
    let old_status = Arc::new(ShipStatus::default());
    let (old_stop, old_stopped) = tokio::sync::watch::channel(false);
    let old_task = tokio::spawn(follow(
        old_holder.clone(),
        old.clone(),
        0,
        fast(),
        old_status.clone(),
        old_stopped,
    ));
    old_status
        .wait_for(|s| s.shipped_through() == Some(49))
        .await;
    // A second host takes the database from what the store holds.
    let cache = tempfile::tempdir().expect("cache");
    let path = cache.path().to_path_buf();
    let report = store.hydrate(&path).await.expect("hydrate");
    assert_eq!(report.next_offset, 50);
    let new = Local::open(cache, path, 50);
    let new_status = ship_until(&store, new.clone(), 50, |s| s.shipped_through() == Some(49)).await;
    assert!(!new_status.fenced());
    new.append(50..70, "new");
    // The deposed host writes on: its pieces land under its generation, but
    // its `head` update is fenced and its loop stops.
    old.append(50..90, "old");
    tokio::time::timeout(
        Duration::from_secs(60),
        old_status.wait_for(|s| s.stopped()),
    )
    .await
    .expect("the deposed holder stops");
    assert!(old_status.fenced());
    assert!(old_status.last_error().is_some_and(|e| e.contains("moved")));
    drop(old_stop);
    old_task.await.expect("loop ends");
    let remote = store.inspect().await.expect("inspect");
    assert!(
        remote
            .segments
            .iter()
            .any(|s| s.generation == old_holder.generation() && s.first_offset >= 50),
        "the canary: late pieces of the deposed holder are in the store"
    );
    ship_until(&store, new.clone(), 50, |s| s.shipped_through() == Some(69)).await;
    let cache = tempfile::tempdir().expect("cache");
    let report = store.hydrate(cache.path()).await.expect("hydrate");
    assert_eq!(report.next_offset, 70);
    let mut want = expected("old", 0..50);
    want.extend(expected("new", 50..70));
    assert_eq!(records_of(cache.path(), 0), want);
}

/// A TCP relay in front of the S3 server that the test can cut: while cut,
/// it drops every connection (open ones too), as a server that went away.
struct CutProxy {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: String) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut_in, open_in) = (cut.clone(), open.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut_in.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open_in.lock().unwrap().push(relay.abort_handle());
            }
        });
        CutProxy {
            addr,
            cut,
            open,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for relay in self.open.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

// The S3 server goes away while the database keeps committing (`local`
// mode): shipping fails visibly (failures counted, the error kept), drops
// nothing, and catches up once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_rides_out_an_s3_outage_and_catches_up() {
    let Some(settings) = stores::s3_settings("ship_outage") else {
        return;
    };
    let endpoint = settings.endpoint.clone().expect("an S3 endpoint");
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = CutProxy::start(upstream).await;
    let url = ObjectStoreUrl::parse(&format!(
        "s3://{}/{}",
        stores::s3_bucket(),
        stores::unique_prefix("ship_outage")
    ))
    .unwrap();
    let through_proxy = url
        .open_with(&orrery_objstore::S3Settings {
            endpoint: Some(format!("http://{}", proxy.addr)),
            ..settings.clone()
        })
        .unwrap();
    let direct = url.open_with(&settings).unwrap();
    let key = DatabaseKey::new("ship_outage").unwrap();
    let store = DatabaseStore::new(
        through_proxy.clone(),
        Heads::new(through_proxy, None),
        key.clone(),
    );
    let local = Local::new();
    local.append(0..50, "d");
    let holder = Arc::new(store.take(0).await.expect("take"));
    let status = Arc::new(ShipStatus::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(follow(
        holder,
        local.clone(),
        0,
        fast(),
        status.clone(),
        stopped,
    ));
    let wait = |done: fn(&ShipStatus) -> bool| {
        let status = status.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(90), status.wait_for(done))
                .await
                .unwrap_or_else(|_| panic!("no progress: {:?}", status.last_error()));
        }
    };
    wait(|s| s.shipped_through() == Some(49)).await;
    proxy.cut();
    local.append(50..150, "d");
    wait(|s| s.failing_for.load(std::sync::atomic::Ordering::Relaxed) >= 2).await;
    assert!(status.last_error().is_some());
    assert!(
        status.shipped_through().is_some_and(|s| s < 149),
        "the canary: nothing new reached the store while it was away"
    );
    // A writer that needs its transaction in the store (`object-store`
    // mode) is told it is not there while the store is away...
    let refused = tokio::task::spawn_blocking({
        let status = status.clone();
        move || status.wait_shipped(149, Duration::from_millis(300))
    })
    .await
    .unwrap();
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("not shipped within")),
        "{refused:?}"
    );
    // ...and served once it is back.
    let waiter = tokio::task::spawn_blocking({
        let status = status.clone();
        move || status.wait_shipped(149, Duration::from_secs(60))
    });
    proxy.restore();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    wait(|s| {
        s.shipped_through() == Some(149)
            && s.failing_for.load(std::sync::atomic::Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(status.last_error(), None);
    stop.send(true).unwrap();
    task.await.unwrap();
    let reader = DatabaseStore::new(direct.clone(), Heads::new(direct, None), key);
    let cache = tempfile::tempdir().unwrap();
    let report = reader.hydrate(cache.path()).await.expect("hydrate");
    assert_eq!(report.next_offset, 150);
    assert_eq!(records_of(cache.path(), 0), expected("d", 0..150));
}
