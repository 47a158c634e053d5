//! Benchmark of shipping to and reading back from an object store (issue 15),
//! printing JSON. Run against the S3 server of the tests:
//!
//! ```text
//! cargo build --release -p orrery-objstore --example ship_bench
//! ./scripts/s3 run ./target/release/examples/ship_bench --json
//! ```
//!
//! Without `ORRERY_TEST_S3_ENDPOINT` it measures a folder store (`file://`).
//!
//! - `lag`: a commit log takes `--rate` transactions per second of
//!   `--payload` bytes for `--seconds`, while the shipping loop runs with the
//!   default interval; for every transaction, the time from durable to
//!   shipped. Goal: p99 ≤ 1 s.
//! - `object_store_mode`: 1, 16 and 256 writers each commit and wait until
//!   the store holds their transaction, for `--seconds`. Goal: ≥ 20,000
//!   durable transactions per second, p99 ≤ 50 ms.
//! - `local_mode_cost`: 64 writers commit and wait for the local fsync as
//!   fast as they can, without and with shipping running. Goal: no more
//!   than 10% fewer durable transactions per second with it.
//! - `read_back`: a database of `--mib` MiB (as a snapshot, and as log
//!   only) shipped, then read back into an empty folder with
//!   `DatabaseStore::hydrate`. Goal: ≤ 3 s for 100 MiB. Then restored to
//!   the point three quarters in with `DatabaseStore::hydrate_to` (an
//!   offset with the snapshot, a time with the log only). Goal: ≤ 5 s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable::clock::SystemClock;
use durable::commitlog::{
    CommitLog, CommitLogOptions, DurableFrames, FileSegmentStore, LogPosition,
};
use durable::snapshot::{BlobStore, DirBlobStore, SnapshotPartRef, SnapshotRepo};
use orrery_api::TxOffset;
use orrery_objstore::layout::DatabaseKey;
use orrery_objstore::{
    follow, DatabaseStore, Heads, LocalCopy, LocalReadError, ObjectStoreUrl, S3Settings,
    ShipOptions, ShipStatus,
};

struct Local {
    log: CommitLog,
    snapshots: Arc<DirBlobStore>,
    repo: SnapshotRepo,
}

impl Local {
    fn open(dir: &std::path::Path) -> Arc<Local> {
        let segments = Arc::new(FileSegmentStore::open(dir.join("log")).unwrap());
        let log = CommitLog::open(segments, CommitLogOptions::default()).unwrap();
        let snapshots = Arc::new(DirBlobStore::open(dir.join("snapshots")).unwrap());
        let repo = SnapshotRepo::new(snapshots.clone(), Arc::new(SystemClock));
        Arc::new(Local {
            log,
            snapshots,
            repo,
        })
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

struct Args {
    json: bool,
    rate: u64,
    seconds: u64,
    payload: usize,
    mib: usize,
}

fn args() -> Args {
    let mut out = Args {
        json: false,
        rate: 5_000,
        seconds: 10,
        payload: 200,
        mib: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--json" => out.json = true,
            "--rate" => out.rate = number(),
            "--seconds" => out.seconds = number(),
            "--payload" => out.payload = number() as usize,
            "--mib" => out.mib = number() as usize,
            other => panic!("unknown argument {other}"),
        }
    }
    out
}

fn store() -> (String, DatabaseStoreFactory) {
    match std::env::var("ORRERY_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let bucket = std::env::var("ORRERY_TEST_S3_BUCKET").unwrap_or_else(|_| "test".into());
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let url = ObjectStoreUrl::parse(&format!("s3://{bucket}/bench-{nanos}")).unwrap();
            let settings = S3Settings {
                endpoint: Some(endpoint),
                ..S3Settings::from_env()
            };
            let raw = url.open_with(&settings).unwrap();
            (
                format!("s3 {url}"),
                Box::new(move |name: &str| {
                    DatabaseStore::new(
                        raw.clone(),
                        Heads::new(raw.clone(), None),
                        DatabaseKey::new(name).unwrap(),
                    )
                }),
            )
        }
        _ => {
            let dir = tempfile::tempdir().unwrap().keep();
            let url = ObjectStoreUrl::File { dir: dir.clone() };
            let raw = url.open().unwrap();
            (
                format!("file {}", dir.display()),
                Box::new(move |name: &str| {
                    DatabaseStore::new(
                        raw.clone(),
                        Heads::new(raw.clone(), Some(dir.clone())),
                        DatabaseKey::new(name).unwrap(),
                    )
                }),
            )
        }
    }
}

/// Takes `database` from offset 0 and ships `local` with the default
/// options until the returned sender says stop.
async fn start_following(
    database: &DatabaseStore,
    local: &Arc<Local>,
) -> (
    Arc<ShipStatus>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let holder = Arc::new(database.take(0).await.unwrap());
    let status = Arc::new(ShipStatus::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let local: Arc<dyn LocalCopy> = local.clone();
    let task = tokio::spawn(follow(
        holder,
        local,
        0,
        ShipOptions::default(),
        status.clone(),
        stopped,
    ));
    (status, stop, task)
}

type DatabaseStoreFactory = Box<dyn Fn(&str) -> DatabaseStore>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn lag(database: DatabaseStore, args: &Args) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path());
    let (status, stop, task) = start_following(&database, &local).await;
    // Durable times, by offset; the watcher stamps shipped times.
    let durable_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let shipped_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let watcher = {
        let (status, shipped_at) = (status.clone(), shipped_at.clone());
        tokio::spawn(async move {
            loop {
                let mut seen = 0u64;
                status
                    .wait_for(|s| {
                        seen = s.shipped_through().map_or(0, |o| o + 1);
                        seen > shipped_at.lock().unwrap().len() as u64 || s.stopped()
                    })
                    .await;
                let now = Instant::now();
                let mut stamps = shipped_at.lock().unwrap();
                while (stamps.len() as u64) < seen {
                    stamps.push(now);
                }
                if status.stopped() {
                    return;
                }
            }
        })
    };
    let payload = vec![7u8; args.payload];
    let total = args.rate * args.seconds;
    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate / 100).max(1);
    let mut written = 0u64;
    let committer = {
        let local = local.clone();
        let durable_at = durable_at.clone();
        std::thread::spawn(move || {
            while written < total {
                let due = started + tick * (written / per_tick) as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                for _ in 0..per_tick.min(total - written) {
                    local.log.append(payload.clone()).unwrap();
                    written += 1;
                }
                local.log.flush().unwrap();
                let now = Instant::now();
                let mut stamps = durable_at.lock().unwrap();
                while (stamps.len() as u64) < written {
                    stamps.push(now);
                }
            }
        })
    };
    committer.join().unwrap();
    let elapsed = started.elapsed();
    tokio::time::timeout(
        Duration::from_secs(120),
        status.wait_for(|s| s.shipped_through() == Some(total - 1)),
    )
    .await
    .expect("shipping caught up");
    stop.send(true).unwrap();
    task.await.unwrap();
    watcher.await.unwrap();
    let durable = durable_at.lock().unwrap();
    let shipped = shipped_at.lock().unwrap();
    let mut lags: Vec<f64> = durable
        .iter()
        .zip(shipped.iter())
        .map(|(d, s)| s.saturating_duration_since(*d).as_secs_f64() * 1000.0)
        .collect();
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    serde_json::json!({
        "transactions": total,
        "payload_bytes": args.payload,
        "offered_tx_per_s": args.rate,
        "achieved_tx_per_s": (total as f64 / elapsed.as_secs_f64()).round(),
        "pieces": status.pieces.load(std::sync::atomic::Ordering::Relaxed),
        "failures": status.failures.load(std::sync::atomic::Ordering::Relaxed),
        "lag_ms_p50": percentile(&lags, 0.50),
        "lag_ms_p99": percentile(&lags, 0.99),
        "lag_ms_max": percentile(&lags, 1.0),
    })
}

/// `object-store` mode: `writers` threads each commit a transaction and
/// wait until the store holds it (local fsync, then the upload of a piece
/// holding it), for `seconds`; group commit comes from every waiter that
/// arrives during an upload being served by the next one.
async fn object_store_mode(
    database: DatabaseStore,
    writers: usize,
    seconds: u64,
    payload: usize,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path());
    let (status, stop, task) = start_following(&database, &local).await;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (local, status) = (local.clone(), status.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while Instant::now() < end {
                    let begun = Instant::now();
                    let offset = local.log.append(vec![3u8; payload]).unwrap();
                    local.log.wait_durable(offset).unwrap();
                    status
                        .wait_shipped(offset.0, Duration::from_secs(30))
                        .unwrap();
                    latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    task.await.unwrap();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    serde_json::json!({
        "writers": writers,
        "payload_bytes": payload,
        "durable_tx_per_s": (latencies.len() as f64 / elapsed).round(),
        "commit_ms_p50": percentile(&latencies, 0.50),
        "commit_ms_p99": percentile(&latencies, 0.99),
        "pieces": status.pieces.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// `local` mode's cost: writers commit and wait for the local fsync as fast
/// as they can for `seconds`, with and without the shipping loop running.
async fn local_mode_cost(
    database: DatabaseStore,
    writers: usize,
    seconds: u64,
    payload: usize,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for shipping in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::open(dir.path());
        let following = match shipping {
            true => Some(start_following(&database, &local).await),
            false => None,
        };
        let started = Instant::now();
        let end = started + Duration::from_secs(seconds);
        let threads: Vec<_> = (0..writers)
            .map(|_| {
                let local = local.clone();
                std::thread::spawn(move || {
                    let mut done = 0u64;
                    while Instant::now() < end {
                        let offset = local.log.append(vec![5u8; payload]).unwrap();
                        local.log.wait_durable(offset).unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let rate = (total as f64 / started.elapsed().as_secs_f64()).round();
        if let Some((_, stop, task)) = following {
            stop.send(true).unwrap();
            task.await.unwrap();
        }
        let key = if shipping {
            "durable_tx_per_s_shipping"
        } else {
            "durable_tx_per_s_alone"
        };
        out.insert(key.into(), serde_json::json!(rate));
    }
    out.insert("writers".into(), serde_json::json!(writers));
    serde_json::Value::Object(out)
}

/// Ships `mib` MiB (as one snapshot of 1 MiB tables plus a 1,000-record log
/// tail, or as log records of 4 KiB only), then reads it back.
async fn read_back(database: DatabaseStore, mib: usize, as_snapshot: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path());
    let record = 4096usize;
    let mut seed = 1u64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let records = if as_snapshot {
        1_000
    } else {
        mib * 1024 * 1024 / record
    };
    // Each record starts with its "commit time": its index, so the point
    // in time of record `n` is `n`.
    for n in 0..records {
        let mut bytes = noise(record);
        bytes[..8].copy_from_slice(&(n as i64).to_le_bytes());
        local.log.append(bytes).unwrap();
    }
    local.log.flush().unwrap();
    if as_snapshot {
        let tables: Vec<(String, Vec<u8>)> = (0..mib)
            .map(|i| (format!("table-{i:010}"), noise(1024 * 1024)))
            .collect();
        let parts: Vec<SnapshotPartRef<'_>> = tables
            .iter()
            .map(|(name, bytes)| SnapshotPartRef {
                name,
                bytes,
                row_count: 1,
            })
            .collect();
        local.repo.write(TxOffset(499), &parts).unwrap();
    }
    let shipping = Instant::now();
    let (status, stop, task) = start_following(&database, &local).await;
    let last = records as u64 - 1;
    status
        .wait_for(|s| {
            s.shipped_through() == Some(last) && (!as_snapshot || s.snapshot_shipped().is_some())
        })
        .await;
    let ship_seconds = shipping.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    task.await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let report = database.hydrate(cache.path()).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    // A restore to the point three quarters in. With the snapshot, to that
    // offset: the snapshot, then the log up to it. Log only, to that time
    // (the records carry it): the log up to the last record committed by
    // then. (The snapshot is written after the log, so no time in the log
    // may use it.)
    let point = records as i64 * 3 / 4;
    let restored = tempfile::tempdir().unwrap();
    let to = if as_snapshot {
        orrery_objstore::RestorePoint::Offset(point as u64)
    } else {
        orrery_objstore::RestorePoint::Time {
            micros: point,
            commit_micros: index_as_time,
        }
    };
    let started = Instant::now();
    let at = database.hydrate_to(restored.path(), to).await.unwrap();
    let restore_seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        at.next_offset,
        point as u64 + 1,
        "restored to exactly that point"
    );
    serde_json::json!({
        "layout": if as_snapshot { "snapshot + 1,000-record log" } else { "log only" },
        "mib": mib,
        "ship_seconds": ship_seconds,
        "read_back_seconds": seconds,
        "records_replayed": report.records,
        "log_pieces": report.log_pieces,
        "mib_per_s": (mib as f64 / seconds * 10.0).round() / 10.0,
        "restore_to": if as_snapshot { "offset" } else { "time" },
        "restore_seconds": restore_seconds,
        "restore_records_replayed": at.records,
    })
}

/// The bench's records carry their index as their commit time.
fn index_as_time(record: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(record.get(..8)?.try_into().ok()?))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let (kind, database) = store();
    let local_cost = local_mode_cost(database("cost"), 64, args.seconds, args.payload).await;
    let lag = lag(database("lag"), &args).await;
    let mut modes = Vec::new();
    for writers in [1, 16, 256] {
        let name = format!("durable{writers}");
        modes.push(object_store_mode(database(&name), writers, args.seconds, args.payload).await);
    }
    let snapshot = read_back(database("snapshot"), args.mib, true).await;
    let log = read_back(database("log"), args.mib, false).await;
    let out = serde_json::json!({
        "store": kind,
        "local_mode_cost": local_cost,
        "lag": lag,
        "object_store_mode": modes,
        "read_back": [snapshot, log],
    });
    let text = if args.json {
        out.to_string()
    } else {
        serde_json::to_string_pretty(&out).unwrap()
    };
    print_result(&text);
}

#[allow(
    clippy::disallowed_macros,
    reason = "a benchmark CLI: the JSON result is its stdout"
)]
fn print_result(json: &str) {
    println!("{json}");
}
