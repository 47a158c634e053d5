//! Garbage collection against a model: random histories of several holders
//! (each shipping log pieces and snapshots taken at known times, a deposed
//! holder writing on after its successor began) are collected with a random
//! retention window; afterwards every point the window promises restores
//! exactly, and what remains is exactly what the model says is needed.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use durable::clock::ManualClock;
use durable::commitlog::{CommitLog, CommitLogOptions, LogPosition, MemorySegmentStore};
use durable::snapshot::{BlobStore, Manifest, MemoryBlobStore, SnapshotPartRef, SnapshotRepo};
use futures_util::TryStreamExt;
use orrery_api::TxOffset;
use orrery_objstore::layout::{replay_plan, DatabaseKey, SnapshotRef};
use orrery_objstore::object_store::memory::InMemory;
use orrery_objstore::object_store::ObjectStore;
use orrery_objstore::{DatabaseStore, Heads, RestorePoint, Retention};
use proptest::prelude::*;

const SECOND: i64 = 1_000_000;

fn payload(tag: &str, i: u64) -> Vec<u8> {
    format!("{tag}:{i}").into_bytes()
}

/// One holder's part of the history.
#[derive(Clone, Debug)]
struct Epoch {
    /// Records it adds to the history.
    records: u64,
    /// Records per piece it ships.
    piece: u64,
    /// Offsets (relative to its start) after which it snapshots.
    snapshots: Vec<u64>,
    /// Records it writes after its successor began (deposed), shipped as
    /// late pieces and one late snapshot.
    late: u64,
}

fn epochs() -> impl Strategy<Value = Vec<Epoch>> {
    prop::collection::vec(
        (
            1u64..30,
            1u64..8,
            prop::collection::vec(0u64..30, 0..3),
            0u64..6,
        )
            .prop_map(|(records, piece, snapshots, late)| Epoch {
                records,
                piece,
                snapshots: snapshots
                    .into_iter()
                    .filter(|s| *s < records)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                late,
            }),
        1..5,
    )
}

/// Ships records `from..to` of `log` as pieces of `piece` records.
async fn ship(holder: &orrery_objstore::Holder, log: &CommitLog, from: u64, to: u64, piece: u64) {
    let mut position = LogPosition::at(TxOffset(from));
    while position.next().0 < to {
        // Pieces of about `piece` records (frames are tens of bytes each).
        let frames = log
            .read_durable(position, (piece as usize) * 24)
            .unwrap()
            .expect("records");
        let frames = if frames.last.0 >= to {
            // Never past `to`: read again, record by record.
            log.read_durable(position, 1).unwrap().unwrap()
        } else {
            frames
        };
        holder.put_log(&frames).await.unwrap();
        position = frames.resume;
    }
}

/// A snapshot at `offset` written at `time`: one part shared by all
/// snapshots, one of its own.
async fn snapshot(holder: &orrery_objstore::Holder, offset: u64, time: i64) {
    let local: Arc<MemoryBlobStore> = Arc::new(MemoryBlobStore::new());
    let repo = SnapshotRepo::new(local.clone(), Arc::new(ManualClock::new(time)));
    let own = format!("state at {offset}");
    repo.write(
        TxOffset(offset),
        &[
            SnapshotPartRef {
                name: "meta",
                bytes: b"the same in every snapshot",
                row_count: 0,
            },
            SnapshotPartRef {
                name: "table",
                bytes: own.as_bytes(),
                row_count: offset,
            },
        ],
    )
    .unwrap();
    let local: Arc<dyn BlobStore> = local;
    holder.put_snapshot(local, offset).await.unwrap();
}

fn log_with(tag: &str, start: u64, count: u64) -> CommitLog {
    let log = CommitLog::open(
        Arc::new(MemorySegmentStore::new()),
        CommitLogOptions {
            start_offset: TxOffset(start),
            ..CommitLogOptions::default()
        },
    )
    .unwrap();
    for i in start..start + count {
        log.append(payload(tag, i)).unwrap();
    }
    log.flush().unwrap();
    log
}

/// Every record of a hydrated copy from `from`.
fn records_in(dir: &std::path::Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    let segments = Arc::new(durable::commitlog::FileSegmentStore::open(dir.join("log")).unwrap());
    let log = CommitLog::open(
        segments,
        CommitLogOptions {
            start_offset: TxOffset(from),
            ..CommitLogOptions::default()
        },
    )
    .unwrap();
    let mut out = Vec::new();
    log.replay(TxOffset(from), |o, p| {
        out.push((o.0, p.to_vec()));
        Ok::<_, ()>(())
    })
    .unwrap();
    out
}

async fn scenario(epochs: Vec<Epoch>, window_s: i64) -> Result<(), TestCaseError> {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = DatabaseStore::new(
        raw.clone(),
        Heads::new(raw.clone(), None),
        DatabaseKey::new("gc").unwrap(),
    );
    let official = log_with("h", 0, epochs.iter().map(|e| e.records).sum());
    // Snapshots of the history with their times; the clock ticks a second
    // per snapshot.
    let mut history_snapshots: Vec<(u64, i64)> = Vec::new();
    let mut time = 1_000 * SECOND;
    let mut start = 0u64;
    let mut previous: Option<(orrery_objstore::Holder, u64)> = None;
    for (index, epoch) in epochs.iter().enumerate() {
        let holder = store.take(start).await.unwrap();
        // The holder before writes on, deposed: late pieces and a snapshot
        // past this generation's start, none of which is history.
        if let Some((deposed, late)) = previous.take() {
            if late > 0 {
                let forked = log_with(&format!("fork{index}"), start, late);
                ship(&deposed, &forked, start, start + late, 2).await;
                time += SECOND;
                snapshot(&deposed, start + late - 1, time).await;
            }
        }
        let end = start + epoch.records;
        ship(&holder, &official, start, end, epoch.piece).await;
        for relative in &epoch.snapshots {
            time += SECOND;
            snapshot(&holder, start + relative, time).await;
            history_snapshots.push((start + relative, time));
        }
        previous = Some((holder, epoch.late));
        start = end;
    }
    let end = start;
    let now = time + SECOND;
    let retention = Retention {
        window: Duration::from_secs(window_s as u64),
        grace: Duration::ZERO,
    };
    let collected = store.collect_garbage(retention, now).await.unwrap();

    // The model's floor: the newest history snapshot taken before the window.
    let mut by_offset = history_snapshots.clone();
    by_offset.sort();
    let floor = by_offset
        .iter()
        .rev()
        .find(|(_, t)| *t <= now - window_s * SECOND)
        .map(|(o, _)| *o);
    prop_assert_eq!(collected.floor.map(|f| f.offset), floor);

    // Every promised point restores exactly.
    let lowest = floor.unwrap_or(0);
    let mut points: BTreeSet<u64> = [lowest, (lowest + end - 1) / 2, end - 1].into();
    points.retain(|p| *p < end);
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let report = store
            .hydrate_to(dir.path(), RestorePoint::Offset(point))
            .await
            .map_err(|e| TestCaseError::fail(format!("point {point}: {e}")))?;
        let from = report.snapshot.map_or(0, |s| s.offset + 1);
        let want: Vec<_> = (from..=point).map(|i| (i, payload("h", i))).collect();
        prop_assert_eq!(records_in(dir.path(), from), want, "point {}", point);
    }

    // What remains is exactly what the model needs.
    let remote = store.inspect().await.unwrap();
    let keys: HashSet<String> = raw
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let db = store.key();
    let kept_snapshots: Vec<SnapshotRef> = remote.history_snapshots();
    let mut kept_offsets: Vec<u64> = kept_snapshots.iter().map(|s| s.offset).collect();
    kept_offsets.sort();
    kept_offsets.dedup();
    let mut want_offsets: Vec<u64> = history_snapshots
        .iter()
        .map(|(o, _)| *o)
        .filter(|o| floor.is_none_or(|f| *o >= f))
        .collect();
    want_offsets.sort();
    want_offsets.dedup();
    prop_assert_eq!(kept_offsets, want_offsets, "history snapshots kept");
    prop_assert_eq!(
        remote.snapshots.len(),
        kept_snapshots.len(),
        "no snapshot outside the history remains"
    );
    let plan: HashSet<_> = replay_plan(
        &remote.generations(),
        &remote.segments,
        lowest + u64::from(floor.is_some()),
    )
    .into_iter()
    .map(|p| p.segment)
    .collect();
    prop_assert_eq!(
        remote.segments.iter().copied().collect::<HashSet<_>>(),
        plan,
        "only the pieces the window replays remain"
    );
    let mut parts = HashSet::new();
    for snapshot in &kept_snapshots {
        let bytes = raw
            .get(&db.snapshot_path(*snapshot))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for part in Manifest::decode(&bytes).unwrap().parts {
            parts.insert(db.object_path(&part.hash.to_hex()).to_string());
        }
    }
    let objects_prefix = format!("{}/", db.objects_prefix());
    let remaining_parts: HashSet<String> = keys
        .iter()
        .filter(|k| k.starts_with(&objects_prefix))
        .cloned()
        .collect();
    prop_assert_eq!(remaining_parts, parts, "only referenced parts remain");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn collection_keeps_exactly_what_the_window_needs(epochs in epochs(), window_s in 0i64..12) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(scenario(epochs, window_s))?;
    }
}

// The canary: a history with garbage of every kind loses it all.
#[tokio::test]
async fn every_kind_of_garbage_is_collected() {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = DatabaseStore::new(
        raw.clone(),
        Heads::new(raw.clone(), None),
        DatabaseKey::new("gc").unwrap(),
    );
    let official = log_with("h", 0, 40);
    let first = store.take(0).await.unwrap();
    ship(&first, &official, 0, 20, 5).await;
    snapshot(&first, 9, 10 * SECOND).await;
    let second = store.take(20).await.unwrap();
    let forked = log_with("fork", 20, 4);
    ship(&first, &forked, 20, 24, 2).await;
    snapshot(&first, 22, 11 * SECOND).await;
    ship(&second, &official, 20, 40, 5).await;
    snapshot(&second, 30, 12 * SECOND).await;
    let before = store.inspect().await.unwrap();
    let generations = before.generations();
    let kept = replay_plan(&generations, &before.segments, 31);
    let late = before
        .segments
        .iter()
        .filter(|s| s.generation == first.generation() && s.first_offset >= 20)
        .count();
    assert!(
        late > 0,
        "the deposed holder's late pieces are there to collect"
    );
    let collected = store
        .collect_garbage(
            Retention {
                window: Duration::from_secs(5),
                grace: Duration::ZERO,
            },
            20 * SECOND,
        )
        .await
        .unwrap();
    assert_eq!(collected.floor.map(|f| f.offset), Some(30));
    // The older snapshot and the deposed holder's; every piece but those
    // replaying from 31 (the late ones among them); both snapshots' own parts.
    assert_eq!(collected.manifests_deleted, 2, "{collected:?}");
    assert_eq!(
        collected.pieces_deleted,
        before.segments.len() - kept.len(),
        "{collected:?}"
    );
    assert_eq!(collected.parts_deleted, 2, "{collected:?}");
    let after = store.inspect().await.unwrap();
    assert_eq!(after.segments.len(), kept.len());
    assert!(after
        .segments
        .iter()
        .all(|s| s.generation == second.generation()));
    let dir = tempfile::tempdir().unwrap();
    let report = store
        .hydrate_to(dir.path(), RestorePoint::Offset(39))
        .await
        .unwrap();
    assert_eq!(report.snapshot.map(|s| s.offset), Some(30));
    // Before the floor nothing restores any more.
    let dir = tempfile::tempdir().unwrap();
    assert!(store
        .hydrate_to(dir.path(), RestorePoint::Offset(25))
        .await
        .is_err());
}
