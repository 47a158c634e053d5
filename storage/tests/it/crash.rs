// Protects durability under real process death: a writer in a child process
// commits a deterministic workload and reports each offset it saw durable; the
// parent kills it with SIGKILL at a random moment, reopens the database and
// checks that (1) every offset reported durable is present, (2) the state
// equals a BTreeMap model of the workload at the recovered offset (so no
// partial transaction is visible), then lets the next child continue from there.
//
// Even rounds use a segment store that keeps unsynced bytes in user space, so a
// SIGKILL loses them the way a power cut loses the page cache; odd rounds use
// the plain file store (torn writes at syscall granularity). The canary runs the
// same rounds with the commit log's fsync skipped and must be caught.
//
// ORRERY_CRASH_KILLS sets the number of kill points (default 60).

// The child reports to the parent on stdout; the test prints its seed.
#![allow(clippy::disallowed_macros)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::clock::SystemClock;
use storage::commitlog::FileSegmentStore;
use storage::snapshot::DirBlobStore;
use storage::{
    ColId, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, TableDef, TxOffset,
    UniqueConstraintDef,
};

const CHILD_DIR: &str = "ORRERY_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "ORRERY_CRASH_CHILD_SEED";
const CHILD_LOSE_UNSYNCED: &str = "ORRERY_CRASH_CHILD_LOSE_UNSYNCED";
const CHILD_CANARY: &str = "ORRERY_CRASH_CHILD_CANARY";
const KEYS: u64 = 64;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

enum KvOp {
    Upsert { k: u64, v: u64 },
    Delete { k: u64 },
}

/// The transaction at `offset` (offset 0 creates the table). The first op
/// writes a fresh value that no later op of the transaction removes, so no
/// transaction is empty and offsets follow transactions one to one.
fn workload_tx(seed: u64, offset: u64) -> Vec<KvOp> {
    let mut r = splitmix(seed ^ offset.wrapping_mul(0x1000_0000_01b3));
    let n = 1 + (r % 4);
    let mut ops = Vec::new();
    let mut first = None;
    for j in 0..n {
        r = splitmix(r);
        let k = r % KEYS;
        // Deleting the key the first op wrote could cancel the whole
        // transaction (insert then delete of a new key): never do that.
        if j == 0 || !r.is_multiple_of(3) || Some(k) == first {
            first.get_or_insert(k);
            ops.push(KvOp::Upsert {
                k,
                v: offset * 16 + j,
            });
        } else {
            ops.push(KvOp::Delete { k });
        }
    }
    ops
}

fn kv_def() -> TableDef {
    TableDef {
        name: "kv".into(),
        columns: ProductType::from([
            ("k", AlgebraicType::U64),
            ("v", AlgebraicType::U64),
            ("w", AlgebraicType::String),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            IndexDef {
                name: "kv_k_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(0)],
            },
            IndexDef {
                name: "kv_v_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(1)],
            },
        ],
        unique_constraints: vec![UniqueConstraintDef {
            name: "kv_k_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![],
        public: true,
        is_event: false,
    }
}

fn row(k: u64, v: u64) -> Vec<AlgebraicValue> {
    vec![
        AlgebraicValue::U64(k),
        AlgebraicValue::U64(v),
        AlgebraicValue::String(format!("value-{v}").into()),
    ]
}

fn model_at(seed: u64, last: Option<TxOffset>) -> BTreeMap<u64, u64> {
    let mut model = BTreeMap::new();
    let Some(last) = last else { return model };
    for offset in 1..=last.0 {
        for op in workload_tx(seed, offset) {
            match op {
                KvOp::Upsert { k, v } => {
                    model.insert(k, v);
                }
                KvOp::Delete { k } => {
                    model.remove(&k);
                }
            }
        }
    }
    model
}

fn storage_at(dir: &Path, lose_unsynced: bool) -> DbStorage {
    DbStorage {
        segments: Arc::new(
            FileSegmentStore::open(dir.join("log"))
                .unwrap()
                .lose_unsynced_on_crash(lose_unsynced),
        ),
        snapshots: Some(Arc::new(DirBlobStore::open(dir.join("snapshots")).unwrap())),
        clock: Arc::new(SystemClock),
    }
}

fn options(canary: bool) -> DbOptions {
    // Small segments so rotation happens under the knife too.
    DbOptions {
        segment_bytes_max: 16 * 1024,
        skip_fsync_canary: canary,
        snapshot_retain: 2,
        ..DbOptions::default()
    }
}

/// The child: recover, then write until killed, reporting durable offsets.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let lose_unsynced = std::env::var(CHILD_LOSE_UNSYNCED).is_ok();
    let canary = std::env::var(CHILD_CANARY).is_ok();
    let (db, _report) =
        Database::open(storage_at(Path::new(&dir), lose_unsynced), options(canary)).unwrap();
    let (kv, pk) = {
        let read = db.read().unwrap();
        (
            read.table_id_from_name("kv"),
            read.index_id_from_name("kv_k_idx_btree"),
        )
    };
    let (kv, pk) = match (kv, pk) {
        (Some(kv), Some(pk)) => (kv, pk),
        _ => {
            let mut tx = db.begin().unwrap();
            let kv = tx.create_table(kv_def()).unwrap();
            let delta = tx.commit().unwrap();
            assert_eq!(delta.offset, Some(TxOffset(0)));
            (
                kv,
                db.read()
                    .unwrap()
                    .index_id_from_name("kv_k_idx_btree")
                    .unwrap(),
            )
        }
    };
    let mut next = db.read().unwrap().last_offset().map_or(0, |o| o.0 + 1);
    println!("ready {next}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reported = None;
    while Instant::now() < deadline {
        let mut tx = db.begin().unwrap();
        for op in workload_tx(seed, next) {
            match op {
                KvOp::Upsert { k, v } => {
                    tx.delete_by_point(pk, &AlgebraicValue::U64(k)).unwrap();
                    tx.insert_row(kv, row(k, v)).unwrap();
                }
                KvOp::Delete { k } => {
                    tx.delete_by_point(pk, &AlgebraicValue::U64(k)).unwrap();
                }
            }
        }
        let offset = tx.commit().unwrap().offset.unwrap();
        assert_eq!(offset.0, next);
        next += 1;
        if next.is_multiple_of(4) {
            db.wait_durable(offset).unwrap();
        }
        let durable = db.durable_offset();
        if durable != reported {
            if let Some(d) = durable {
                println!("durable {}", d.0);
            }
            reported = durable;
        }
        if next.is_multiple_of(300) {
            db.take_snapshot().unwrap();
        }
    }
}

/// How a run of crash rounds went wrong.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the messages are read through Debug in failure reports"
)]
enum Failure {
    /// Durability or atomicity was broken: what the test exists to catch.
    Violation(String),
    /// The harness itself failed (the child never started, reopening failed).
    Harness(String),
}

/// Runs `kills` kill-and-recover rounds; returns the last recovered offset or
/// the first failure.
fn crash_rounds(kills: u64, canary: bool, seed: u64) -> Result<u64, Failure> {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = seed;
    let mut last_recovered = None;
    for round in 0..kills {
        let lose_unsynced = round % 2 == 0;
        let mut command = Command::new(&exe);
        command
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("child.stderr")).unwrap(),
            ));
        if lose_unsynced {
            command.env(CHILD_LOSE_UNSYNCED, "1");
        }
        if canary {
            command.env(CHILD_CANARY, "1");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let durable_seen = Arc::new(AtomicI64::new(-1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = {
            let durable_seen = durable_seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // libtest prints "test crash::crash_child ... " before the first line.
                    if let Some(at) = line.find("durable ") {
                        let offset: i64 = line[at + 8..].trim().parse().unwrap();
                        durable_seen.fetch_max(offset, Ordering::SeqCst);
                        let _ = ready_tx.send(offset);
                    }
                }
            })
        };
        // Kill only after the child made new progress durable, so every round
        // tests something however slow the machine is; then at a random moment.
        let before = last_recovered.map_or(-1, |o: TxOffset| o.0 as i64);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let Ok(offset) =
                ready_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    std::fs::read_to_string(dir.path().join("child.stderr")).unwrap_or_default();
                return Err(Failure::Harness(format!(
                    "round {round}: child made no progress; its stderr:\n{stderr}"
                )));
            };
            if offset > before {
                break;
            }
        }
        rng = splitmix(rng);
        // sleep-ok: the behaviour under test, a random kill point (seeded,
        // replayable with ORRERY_CRASH_SEED) somewhere in the child's writes.
        std::thread::sleep(Duration::from_micros(rng % 20_000));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acknowledged = durable_seen.load(Ordering::SeqCst);

        let (db, _report) = Database::open(storage_at(dir.path(), false), options(false))
            // A database that cannot be reopened after a crash has lost its data.
            .map_err(|e| Failure::Violation(format!("round {round}: reopen failed: {e}")))?;
        let read = db.read().unwrap();
        let last = read.last_offset();
        if acknowledged >= 0 && last.is_none_or(|l| (l.0 as i64) < acknowledged) {
            return Err(Failure::Violation(format!("round {round}: offset {acknowledged} was reported durable but recovery ended at {last:?}")));
        }
        let expected = model_at(seed, last);
        let mut got = BTreeMap::new();
        if let Some(kv) = read.table_id_from_name("kv") {
            for row in read.scan(kv).unwrap() {
                let (AlgebraicValue::U64(k), AlgebraicValue::U64(v), AlgebraicValue::String(w)) =
                    (&row[0], &row[1], &row[2])
                else {
                    return Err(Failure::Violation(format!(
                        "round {round}: malformed row {row:?}"
                    )));
                };
                if **w != *format!("value-{v}") {
                    return Err(Failure::Violation(format!(
                        "round {round}: row {k} has mismatched payload {w}"
                    )));
                }
                got.insert(*k, *v);
            }
        } else if last.is_some() {
            return Err(Failure::Violation(format!(
                "round {round}: table missing at offset {last:?}"
            )));
        }
        if got != expected {
            return Err(Failure::Violation(format!(
                "round {round}: state at offset {last:?} differs from the model"
            )));
        }
        if last < last_recovered {
            return Err(Failure::Violation(format!("round {round}: recovered offset went backwards from {last_recovered:?} to {last:?}")));
        }
        last_recovered = last;
    }
    Ok(last_recovered.map_or(0, |o| o.0))
}

fn seed() -> u64 {
    std::env::var("ORRERY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn sigkill_loses_nothing_durable() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let kills = std::env::var("ORRERY_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed = seed();
    match crash_rounds(kills, false, seed) {
        Ok(last) => {
            eprintln!("seed {seed}: {kills} kill points, recovered through offset {last}");
            assert!(
                last > kills,
                "the writer made too little progress ({last} transactions) to test anything"
            );
        }
        Err(failure) => panic!("seed {seed}: {failure:?}"),
    }
}

#[test]
fn canary_skipped_fsync_is_caught() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let seed = seed();
    let result = crash_rounds(10, true, seed);
    eprintln!("seed {seed}: canary run ended with {result:?}");
    assert!(
        matches!(result, Err(Failure::Violation(_))),
        "seed {seed}: the crash test did not notice that fsync was skipped ({result:?}); the harness is blind"
    );
}
