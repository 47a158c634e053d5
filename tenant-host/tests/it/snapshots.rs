//! Snapshots of hosted databases: the host takes them on the storage's
//! policy while reducers commit, so a restart of the registry replays at
//! most about one policy interval and old log segments are gone; a snapshot
//! of every database at shutdown leaves nothing to replay; and the metrics
//! show the newest snapshot's offset per database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_module::{CallerContext, ReducerOutcome, Runtime};
use spacetimedb_lib::{ConnectionId, Identity};
use storage::{DbOptions, SnapshotPolicy, TxOffset};
use tenant_host::hosting::{Host, HostConfig, HostedDatabase};
use tenant_host::registry::Registry;

use crate::harness::OWNER;
use crate::modules::module_bytes;

const INTERVAL: u64 = 20;

fn options() -> DbOptions {
    DbOptions {
        segment_bytes_max: 4096,
        snapshot_policy: SnapshotPolicy {
            every_txs: INTERVAL,
            every_log_bytes: 0,
        },
        ..DbOptions::default()
    }
}

fn open(dir: &std::path::Path) -> Registry {
    let host = Arc::new(Host::new(
        Runtime::new().unwrap(),
        HostConfig {
            workers: 2,
            ..HostConfig::default()
        },
    ));
    Registry::open_with(dir, host, options()).unwrap()
}

fn caller() -> CallerContext {
    CallerContext {
        sender: OWNER,
        connection_id: ConnectionId::ZERO,
        timestamp_micros: 1_767_225_600_000_000,
    }
}

/// Calls `reducer` with BSATN `args`; returns the commit's offset.
fn commit(db: &HostedDatabase, reducer: &str, args: Vec<u8>) -> TxOffset {
    match db.call_reducer(reducer, caller(), args).unwrap().outcome {
        ReducerOutcome::Committed { delta } => delta.offset.expect("a change"),
        other => panic!("{reducer} did not commit: {other:?}"),
    }
}

fn transfer(db: &HostedDatabase, i: u64) -> TxOffset {
    let mut args = Vec::new();
    args.extend_from_slice(&(1 + i % 4).to_le_bytes());
    args.extend_from_slice(&(1 + (i + 1) % 4).to_le_bytes());
    args.extend_from_slice(&1i64.to_le_bytes());
    commit(db, "transfer", args)
}

fn metric_line(registry: &Registry, name: &str, id: &Identity) -> Option<String> {
    let prefix = format!("{name}{{database=\"{}\"}} ", id.to_hex());
    tenant_host::metrics::render(registry)
        .lines()
        .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
}

#[test]
fn restarts_replay_at_most_one_interval_and_nothing_after_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let owner = OWNER;
    let registry = open(dir.path());
    let entry = registry
        .create(owner, Some("bank".into()), None, &module_bytes("bank"))
        .unwrap();
    let id = entry.identity();
    let db = entry.database().clone();
    commit(&db, "seed", 4u64.to_le_bytes().to_vec());
    // Rounds of a bit more than one interval, each waited on: the snapshot
    // thread may only get to run once a round's calls are done.
    let mut last = TxOffset(0);
    let mut stats = storage::SnapshotStats::default();
    for round in 1..=10u64 {
        for i in 0..INTERVAL + 5 {
            last = transfer(&db, round * 100 + i);
        }
        db.storage().wait_durable(last).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        stats = loop {
            let stats = db.storage().snapshot_stats();
            if !stats.pending
                && stats.taken >= round
                && stats
                    .newest_offset
                    .is_some_and(|n| n.0 + INTERVAL >= last.0)
            {
                break stats;
            }
            assert!(Instant::now() < deadline, "no recent snapshot: {stats:?}");
            std::thread::yield_now();
        };
    }
    assert!(stats.taken >= 10, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    let first_segment = db.storage().commit_log().unwrap().segments()[0].first;
    assert!(first_segment.0 > 0, "old segments were dropped: {stats:?}");
    assert_eq!(
        metric_line(&registry, "orrery_snapshot_offset", &id),
        Some(stats.newest_offset.unwrap().0.to_string())
    );
    assert_eq!(
        metric_line(&registry, "orrery_snapshots_total", &id),
        Some(stats.taken.to_string())
    );
    drop((db, entry, registry));

    // A restart without a shutdown snapshot: at most one interval to replay.
    let registry = open(dir.path());
    let entry = registry.get(&id).expect("the database is back");
    let report = entry.recovery_report().expect("recovered at open").clone();
    assert_eq!(report.snapshot_offset, stats.newest_offset, "{report:?}");
    assert!(report.records_replayed <= INTERVAL, "{report:?}");
    assert_eq!(report.last_offset, Some(last));
    assert_eq!(
        metric_line(&registry, "orrery_recovery_records_replayed", &id),
        Some(report.records_replayed.to_string())
    );
    let last = transfer(entry.database(), 1);
    registry.flush_all().unwrap();
    registry.snapshot_all().unwrap();
    drop((entry, registry));

    let registry = open(dir.path());
    let entry = registry.get(&id).expect("the database is back");
    let report = entry.recovery_report().unwrap();
    assert_eq!(report.snapshot_offset, Some(last), "{report:?}");
    assert_eq!(report.records_replayed, 0, "{report:?}");
}
