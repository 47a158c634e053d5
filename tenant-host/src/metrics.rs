//! Prometheus metrics of a host process: `GET /metrics` in the text
//! exposition format 0.0.4, labelled by database identity (hex).
//!
//! Owns: [`render`] (walks the registry at scrape time into an
//! [`Exposition`], the text renderer of `orrery_api::prometheus`).
//! Does not own: the counters themselves — reducer calls live with each
//! database (`hosting::stats::CallStats`), client fan-out in
//! `clients::ClientStats`, commit-log syncs in storage
//! (`storage::commitlog::CommitLog::sync_stats`), snapshots in storage
//! (`storage::Database::snapshot_stats`), recovery time and report on the
//! registry entry, databases that did not open in the registry.
//!
//! Invariants: every sample of a metric family follows its `# TYPE` line
//! with no other family in between.

use std::time::Duration;

use crate::hosting::stats::{FnOutcome, Outcome};
use crate::registry::Registry;

pub use orrery_api::prometheus::{Exposition, HistogramValue, Kind, Value, CONTENT_TYPE};

/// Everything `/metrics` reports about one database, read once per scrape.
struct DbSample {
    database: String,
    calls: Vec<(Outcome, crate::hosting::stats::HistogramSnapshot)>,
    procedures: Vec<(FnOutcome, crate::hosting::stats::HistogramSnapshot)>,
    http_handlers: Vec<(FnOutcome, crate::hosting::stats::HistogramSnapshot)>,
    fuel_used: u64,
    view_evaluations: u64,
    connections: usize,
    subscriptions: usize,
    queries: usize,
    delta_rows_sent: u64,
    messages_sent: u64,
    bytes_sent: u64,
    slow_clients_dropped: u64,
    syncs: Option<storage::commitlog::SyncStatsSnapshot>,
    snapshots: storage::SnapshotStats,
    recovery: Option<Duration>,
    records_replayed: Option<u64>,
    /// The last durable offset and how copying to the replica goes.
    durable: Option<u64>,
    replica: Option<crate::registry::ReplicaStatus>,
}

fn sample_all(registry: &Registry) -> Vec<DbSample> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut entries = registry.all();
    entries.sort_by_key(|e| e.identity());
    entries
        .iter()
        .map(|entry| {
            let db = entry.database();
            let stats = db.call_stats();
            let clients = db.clients();
            DbSample {
                database: entry.identity().to_hex().to_string(),
                calls: Outcome::ALL
                    .iter()
                    .map(|&o| (o, stats.durations(o)))
                    .collect(),
                procedures: FnOutcome::ALL
                    .iter()
                    .map(|&o| (o, stats.procedure_durations(o)))
                    .collect(),
                http_handlers: FnOutcome::ALL
                    .iter()
                    .map(|&o| (o, stats.http_handler_durations(o)))
                    .collect(),
                fuel_used: stats.fuel_used(),
                view_evaluations: stats.view_evaluations(),
                connections: clients.connections(),
                subscriptions: clients.subscriptions(),
                queries: clients.distinct_queries(),
                delta_rows_sent: clients.stats.delta_rows_sent.load(Relaxed),
                messages_sent: clients.stats.messages_queued.load(Relaxed),
                bytes_sent: clients.stats.bytes_queued.load(Relaxed),
                slow_clients_dropped: clients.stats.slow_clients_dropped.load(Relaxed),
                syncs: db.storage().commit_log().map(|log| log.sync_stats()),
                snapshots: db.storage().snapshot_stats(),
                recovery: entry.recovery_time(),
                records_replayed: entry.recovery_report().map(|r| r.records_replayed),
                durable: db.storage().durable_offset().map(|o| o.0),
                replica: registry.replica_status(&entry.identity()),
            }
        })
        .collect()
}

/// One per-database series: name, kind, help text and how to read it.
type PerDatabase = (&'static str, Kind, &'static str, fn(&DbSample) -> u64);

/// The text of one scrape of every database of `registry`.
pub fn render(registry: &Registry) -> String {
    let dbs = sample_all(registry);
    let mut x = Exposition::new();
    x.family(
        "orrery_databases",
        Kind::Gauge,
        "Databases hosted by this process.",
    );
    x.sample("orrery_databases", &[], dbs.len());
    let cache = registry.host().runtime().cache_stats();
    for (name, help, value) in [
        (
            "orrery_module_compiles_total",
            "Modules compiled from wasm (neither cached in memory nor on disk).",
            cache.compiles,
        ),
        (
            "orrery_module_artifact_hits_total",
            "Modules loaded from a verified compiled artifact on disk.",
            cache.artifact_hits,
        ),
        (
            "orrery_module_artifact_rejects_total",
            "Compiled artifacts on disk refused (tampered, truncated or foreign) and compiled again.",
            cache.artifact_rejects,
        ),
    ] {
        x.family(name, Kind::Counter, help);
        x.sample(name, &[], value);
    }

    x.family(
        "orrery_reducer_calls_total",
        Kind::Counter,
        "Reducer calls (client and scheduled) by outcome.",
    );
    for d in &dbs {
        for (outcome, h) in &d.calls {
            let labels = [
                ("database", d.database.as_str()),
                ("outcome", outcome.label()),
            ];
            x.sample("orrery_reducer_calls_total", &labels, h.count);
        }
    }
    x.family(
        "orrery_reducer_duration_seconds",
        Kind::Histogram,
        "Wall-clock time of reducer calls by outcome.",
    );
    for d in &dbs {
        for (outcome, h) in d.calls.iter().filter(|(_, h)| h.count > 0) {
            let labels = [
                ("database", d.database.as_str()),
                ("outcome", outcome.label()),
            ];
            x.histogram(
                "orrery_reducer_duration_seconds",
                &labels,
                HistogramValue {
                    bounds: h.bounds,
                    buckets: &h.buckets,
                    sum: h.sum,
                },
            );
        }
    }

    for (name, what, of) in [
        (
            "orrery_procedure",
            "Procedure calls",
            (|d: &DbSample| &d.procedures) as fn(&DbSample) -> &Vec<_>,
        ),
        (
            "orrery_http_handler",
            "HTTP handler calls",
            |d: &DbSample| &d.http_handlers,
        ),
    ] {
        let total = format!("{name}_calls_total");
        x.family(&total, Kind::Counter, &format!("{what} by outcome."));
        for d in &dbs {
            for (outcome, h) in of(d) {
                let labels = [
                    ("database", d.database.as_str()),
                    ("outcome", outcome.label()),
                ];
                x.sample(&total, &labels, h.count);
            }
        }
        let seconds = format!("{name}_duration_seconds");
        x.family(
            &seconds,
            Kind::Histogram,
            &format!("Wall-clock time of {} by outcome.", what.to_lowercase()),
        );
        for d in &dbs {
            for (outcome, h) in of(d).iter().filter(|(_, h)| h.count > 0) {
                let labels = [
                    ("database", d.database.as_str()),
                    ("outcome", outcome.label()),
                ];
                x.histogram(
                    &seconds,
                    &labels,
                    HistogramValue {
                        bounds: h.bounds,
                        buckets: &h.buckets,
                        sum: h.sum,
                    },
                );
            }
        }
    }

    let per_db: [PerDatabase; 13] = [
        (
            "orrery_fuel_used_total",
            Kind::Counter,
            "Wasm fuel used by reducer calls.",
            |d| d.fuel_used,
        ),
        (
            "orrery_view_evaluations_total",
            Kind::Counter,
            "Views evaluated (materialisations made or refreshed).",
            |d| d.view_evaluations,
        ),
        (
            "orrery_connections",
            Kind::Gauge,
            "Connected WebSocket clients.",
            |d| d.connections as u64,
        ),
        (
            "orrery_subscriptions",
            Kind::Gauge,
            "Subscribed query sets over all connections.",
            |d| d.subscriptions as u64,
        ),
        (
            "orrery_subscription_queries",
            Kind::Gauge,
            "Distinct subscription queries evaluated per transaction.",
            |d| d.queries as u64,
        ),
        (
            "orrery_delta_rows_sent_total",
            Kind::Counter,
            "Rows of subscription updates sent to clients.",
            |d| d.delta_rows_sent,
        ),
        (
            "orrery_messages_sent_total",
            Kind::Counter,
            "Server messages queued to clients.",
            |d| d.messages_sent,
        ),
        (
            "orrery_bytes_sent_total",
            Kind::Counter,
            "Bytes of server messages queued to clients.",
            |d| d.bytes_sent,
        ),
        (
            "orrery_slow_clients_dropped_total",
            Kind::Counter,
            "Clients disconnected for falling too far behind.",
            |d| d.slow_clients_dropped,
        ),
        (
            "orrery_commitlog_fsyncs_total",
            Kind::Counter,
            "Commit-log fsyncs by the group-commit writer.",
            |d| d.syncs.as_ref().map_or(0, |s| s.count),
        ),
        (
            "orrery_snapshots_total",
            Kind::Counter,
            "Snapshots written since the process started (policy and shutdown).",
            |d| d.snapshots.taken,
        ),
        (
            "orrery_snapshot_failures_total",
            Kind::Counter,
            "Snapshots that failed since the process started (retried after another interval).",
            |d| d.snapshots.failed,
        ),
        (
            "orrery_commitlog_records_since_snapshot",
            Kind::Gauge,
            "Commit-log records since the newest snapshot attempt: about what a restart would replay.",
            |d| d.snapshots.txs_since,
        ),
    ];
    for (name, kind, help, get) in per_db {
        x.family(name, kind, help);
        for d in &dbs {
            x.sample(name, &[("database", d.database.as_str())], get(d));
        }
    }

    x.family(
        "orrery_commitlog_fsync_seconds",
        Kind::Histogram,
        "Duration of commit-log fsyncs.",
    );
    for d in &dbs {
        if let Some(s) = &d.syncs {
            x.histogram(
                "orrery_commitlog_fsync_seconds",
                &[("database", d.database.as_str())],
                HistogramValue {
                    bounds: storage::commitlog::SYNC_BUCKETS,
                    buckets: &s.buckets,
                    sum: s.sum,
                },
            );
        }
    }
    x.family(
        "orrery_snapshot_offset",
        Kind::Gauge,
        "Transaction offset of the newest snapshot (absent before the first).",
    );
    for d in &dbs {
        if let Some(offset) = d.snapshots.newest_offset {
            x.sample(
                "orrery_snapshot_offset",
                &[("database", d.database.as_str())],
                offset.0,
            );
        }
    }
    x.family(
        "orrery_recovery_records_replayed",
        Kind::Gauge,
        "Commit-log records replayed to recover the database when the process started.",
    );
    for d in &dbs {
        if let Some(replayed) = d.records_replayed {
            x.sample(
                "orrery_recovery_records_replayed",
                &[("database", d.database.as_str())],
                replayed,
            );
        }
    }
    x.family(
        "orrery_recovery_seconds",
        Kind::Gauge,
        "Time taken to recover the database when the process started.",
    );
    for d in &dbs {
        if let Some(r) = d.recovery {
            x.sample(
                "orrery_recovery_seconds",
                &[("database", d.database.as_str())],
                r.as_secs_f64(),
            );
        }
    }
    render_replica(&mut x, &dbs);
    render_broken(&mut x, registry);
    x.family(
        "orrery_modules_refused_total",
        Kind::Counter,
        "Modules this host refused to run because no valid control-plane signature vouches for them.",
    );
    x.sample(
        "orrery_modules_refused_total",
        &[],
        registry.refused_modules(),
    );
    x.finish()
}

/// Copying databases to the object store: the offset each copy holds, how
/// far it lags the local log, and its failures (a copy failing for a while,
/// or fenced, needs an operator).
fn render_replica(x: &mut Exposition, dbs: &[DbSample]) {
    let copied: Vec<(&DbSample, &crate::registry::ReplicaStatus)> = dbs
        .iter()
        .filter_map(|d| d.replica.as_ref().map(|r| (d, r)))
        .collect();
    type Read = fn(&DbSample, &crate::registry::ReplicaStatus) -> Option<u64>;
    let per_database: [(&str, Kind, &str, Read); 5] = [
        (
            "orrery_replica_shipped_offset",
            Kind::Gauge,
            "The last transaction offset the object store holds of the database.",
            |_, r| r.shipped_through,
        ),
        (
            "orrery_replica_lag_transactions",
            Kind::Gauge,
            "Durable transactions of the database the object store does not hold yet.",
            |d, r| {
                let durable = d.durable?;
                Some(match r.shipped_through {
                    Some(shipped) => durable.saturating_sub(shipped),
                    None => durable + 1,
                })
            },
        ),
        (
            "orrery_replica_failures_total",
            Kind::Counter,
            "Failed attempts to copy the database to the object store (each is retried).",
            |_, r| Some(r.failures_total),
        ),
        (
            "orrery_replica_failing",
            Kind::Gauge,
            "Failed attempts since the last success; 0 while copying works.",
            |_, r| Some(r.failing_for),
        ),
        (
            "orrery_replica_fenced",
            Kind::Gauge,
            "1 when another host took the database over and this one stopped copying it.",
            |_, r| Some(u64::from(r.fenced)),
        ),
    ];
    for (name, kind, help, read) in per_database {
        x.family(name, kind, help);
        for (d, r) in &copied {
            if let Some(value) = read(d, r) {
                x.sample(name, &[("database", d.database.as_str())], value);
            }
        }
    }
}

/// The databases that did not open: how many, and one series each with
/// its reason (`metadata`, `module`, `storage`, `load`, `panic`,
/// `unverified_module`).
fn render_broken(x: &mut Exposition, registry: &Registry) {
    let broken = registry.broken();
    x.family(
        "orrery_databases_broken",
        Kind::Gauge,
        "Databases on this host that did not open; their files are kept as they were.",
    );
    x.sample("orrery_databases_broken", &[], broken.len());
    x.family(
        "orrery_database_broken",
        Kind::Gauge,
        "1 for each database that did not open, labelled with why.",
    );
    for b in &broken {
        let database = b.identity().to_hex().to_string();
        x.sample(
            "orrery_database_broken",
            &[
                ("database", database.as_str()),
                ("reason", b.reason().label()),
            ],
            1u64,
        );
    }
}
