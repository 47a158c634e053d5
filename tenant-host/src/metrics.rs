//! Prometheus metrics of a host process: `GET /metrics` in the text
//! exposition format 0.0.4, labelled by database identity (hex).
//!
//! Owns: [`Exposition`] (a small hand-written renderer: `# HELP`/`# TYPE`
//! lines, label escaping, counters, gauges and cumulative histograms),
//! [`render`] (walks the registry at scrape time) and [`CONTENT_TYPE`].
//! Does not own: the counters themselves — reducer calls live with each
//! database (`hosting::stats::CallStats`), client fan-out in
//! `clients::ClientStats`, commit-log syncs in storage
//! (`storage::commitlog::CommitLog::sync_stats`), snapshots in storage
//! (`storage::Database::snapshot_stats`), recovery time and report on the
//! registry entry, databases that did not open in the registry.
//!
//! Invariants: every sample of a metric family follows its `# TYPE` line
//! with no other family in between; histogram buckets are cumulative and
//! end with `le="+Inf"` equal to `_count`.

use std::fmt::Write;
use std::time::Duration;

use crate::hosting::stats::Outcome;
use crate::registry::Registry;

/// The Content-Type of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a metric family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A histogram's state: upper bounds in seconds, per-bucket (not
/// cumulative) counts with one extra slot for values above the last bound,
/// and the sum of every observation.
#[derive(Debug, Clone, Copy)]
pub struct HistogramValue<'a> {
    pub bounds: &'a [f64],
    pub buckets: &'a [u64],
    pub sum: Duration,
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", value.into());
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], value: HistogramValue<'_>) {
        let mut cumulative = 0u64;
        for (i, count) in value.buckets.iter().enumerate() {
            cumulative += count;
            let le = match value.bounds.get(i) {
                Some(bound) => Value::F64(*bound).to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", Value::F64(value.sum.as_secs_f64()));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value: integers print exactly, floats in Prometheus spelling.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    U64(u64),
    F64(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U64(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::U64(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::F64(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) if v.is_nan() => f.write_str("NaN"),
            Value::F64(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::F64(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::F64(v) => write!(f, "{v}"),
        }
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Everything `/metrics` reports about one database, read once per scrape.
struct DbSample {
    database: String,
    calls: Vec<(Outcome, crate::hosting::stats::HistogramSnapshot)>,
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
    render_broken(&mut x, registry);
    x.finish()
}

/// The databases that did not open: how many, and one series each with
/// its reason (`metadata`, `module`, `storage`, `load`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_escapes_and_cumulative_buckets() {
        let mut x = Exposition::new();
        x.family("t_total", Kind::Counter, "A counter.\nSecond line \\ here.");
        x.sample("t_total", &[("db", "a\"b\\c\nd"), ("k", "v")], 3u64);
        x.family("g", Kind::Gauge, "A gauge.");
        x.sample("g", &[], 0.25);
        x.family("h_seconds", Kind::Histogram, "A histogram.");
        x.histogram(
            "h_seconds",
            &[("db", "x")],
            HistogramValue {
                bounds: &[0.001, 0.5, 1.0],
                buckets: &[2, 0, 3, 1],
                sum: Duration::from_millis(1500),
            },
        );
        let text = x.finish();
        let want = "\
# HELP t_total A counter.\\nSecond line \\\\ here.
# TYPE t_total counter
t_total{db=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3
# HELP g A gauge.
# TYPE g gauge
g 0.25
# HELP h_seconds A histogram.
# TYPE h_seconds histogram
h_seconds_bucket{db=\"x\",le=\"0.001\"} 2
h_seconds_bucket{db=\"x\",le=\"0.5\"} 2
h_seconds_bucket{db=\"x\",le=\"1\"} 5
h_seconds_bucket{db=\"x\",le=\"+Inf\"} 6
h_seconds_sum{db=\"x\"} 1.5
h_seconds_count{db=\"x\"} 6
";
        assert_eq!(text, want);
    }

    #[test]
    fn special_floats() {
        assert_eq!(Value::F64(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Value::F64(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::F64(0.0001).to_string(), "0.0001");
        assert_eq!(Value::U64(7).to_string(), "7");
    }
}
