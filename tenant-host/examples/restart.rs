//! Restart-time runner: how long a hosted `bank` database takes to open
//! after a long history of `transfer` transactions, with and without the
//! snapshot policy.
//!
//! Owns: nothing the crate uses; it is a program. For each history length
//! and each policy (`never`: no background snapshots, so a restart replays
//! all history; `policy`: the default `SnapshotPolicy`), it creates a
//! durable database on a `Host`, seeds the accounts, commits the transfers
//! through the production path (`HostedDatabase::submit_reducer`,
//! pipelined), then drops everything without a shutdown snapshot (as after a
//! crash) and times the restart: `Database::open` (snapshot load + log
//! replay) and `Host::open_database` (module load and checks; the compiled
//! artifact is kept on disk, as `orrery start` keeps it). With the
//! policy it also times a restart after a clean stop
//! (`Database::snapshot_if_behind` first). Does not own: the goals, which
//! BENCHMARKS.md records with results.
//!
//! Run: `cargo run --release -p tenant-host --example restart -- --json
//! [--histories 1000000,2000000] [--accounts N] [--policies never,policy]
//! [--restarts N] [--wasm PATH]`. Progress goes to stderr, one JSON object
//! (or a table without `--json`) to stdout.

#[path = "../../tests/support/modules.rs"]
mod modules;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use orrery_module::{CallOptions, CallerContext, ReducerOutcome, Runtime, RuntimeConfig};
use serde_json::{json, Value};
use spacetimedb_lib::{ConnectionId, Identity};
use storage::{Database, DbOptions, DbStorage, SnapshotPolicy, TxOffset};
use tenant_host::hosting::{DatabaseSpec, Host, HostConfig, HostedDatabase};

const OWNER: Identity = Identity::from_byte_array([0x0e; 32]);
/// Calls kept submitted but not yet answered.
const WINDOW: usize = 4_096;
const WORKERS: usize = 2;

struct Config {
    json: bool,
    histories: Vec<u64>,
    accounts: u64,
    policies: Vec<String>,
    restarts: usize,
    wasm: Option<PathBuf>,
}

fn usage() -> ! {
    say(
        true,
        "usage: restart [--json] [--histories N,N] [--accounts N] [--policies never,policy] [--restarts N] [--wasm PATH]",
    );
    std::process::exit(2)
}

fn number(value: &str) -> u64 {
    value.replace('_', "").parse().unwrap_or_else(|_| usage())
}

impl Config {
    fn from_args() -> Config {
        let mut config = Config {
            json: false,
            histories: vec![1_000_000, 2_000_000],
            accounts: 100_000,
            policies: vec!["never".into(), "policy".into()],
            restarts: 3,
            wasm: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| usage());
            match arg.as_str() {
                "--json" => config.json = true,
                "--histories" => config.histories = value().split(',').map(number).collect(),
                "--accounts" => config.accounts = number(&value()).max(2),
                "--policies" => config.policies = value().split(',').map(str::to_owned).collect(),
                "--restarts" => config.restarts = number(&value()).max(1) as usize,
                "--wasm" => config.wasm = Some(value().into()),
                _ => usage(),
            }
        }
        config
    }
}

/// Progress to stderr, results to stdout (the print macros are linted out).
fn say(err: bool, line: &str) {
    let result = if err {
        writeln!(std::io::stderr().lock(), "{line}")
    } else {
        writeln!(std::io::stdout().lock(), "{line}")
    };
    result.expect("write to stdout or stderr");
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// splitmix64: deterministic pseudo-random numbers without a dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// BSATN of `transfer(from, to, 1)` between two distinct uniform accounts.
fn transfer_args(i: u64, accounts: u64) -> Vec<u8> {
    let from = 1 + mix(2 * i) % accounts;
    let mut to = 1 + mix(2 * i + 1) % accounts;
    if to == from {
        to = 1 + from % accounts;
    }
    let mut args = Vec::with_capacity(24);
    args.extend_from_slice(&from.to_le_bytes());
    args.extend_from_slice(&to.to_le_bytes());
    args.extend_from_slice(&1i64.to_le_bytes());
    args
}

fn caller() -> CallerContext {
    CallerContext {
        sender: OWNER,
        connection_id: ConnectionId::ZERO,
        timestamp_micros: 1_767_225_600_000_000,
    }
}

fn options(policy: &str) -> DbOptions {
    DbOptions {
        snapshot_policy: match policy {
            "never" => SnapshotPolicy::NEVER,
            "policy" => SnapshotPolicy::default(),
            _ => usage(),
        },
        ..DbOptions::default()
    }
}

/// A host whose runtime keeps compiled modules in `artifacts`, as
/// `orrery start` does under its data directory: a restart loads the
/// artifact instead of compiling the module again.
fn host(artifacts: &Path) -> Host {
    let runtime = Runtime::with_config(RuntimeConfig {
        artifact_dir: Some(artifacts.to_owned()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    Host::new(
        runtime,
        HostConfig {
            workers: WORKERS,
            ..HostConfig::default()
        },
    )
}

fn spec() -> DatabaseSpec {
    DatabaseSpec::new("bank", OWNER, CallOptions::default())
}

/// Answers of the pipelined fill: a count, the highest offset, failures.
#[derive(Default)]
struct Answers {
    done: AtomicUsize,
    last: AtomicU64,
    failed: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Answers {
    fn answered(&self, offset: Option<TxOffset>) {
        match offset {
            Some(offset) => {
                self.last.fetch_max(offset.0 + 1, Ordering::Relaxed);
            }
            None => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let done = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if done.is_multiple_of(WINDOW / 4) {
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_all();
        }
    }

    fn wait_for(&self, target: usize) {
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.done.load(Ordering::Acquire) < target {
            guard = self
                .wake
                .wait_timeout(guard, Duration::from_millis(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Commits `count` transfers on `db`, pipelined; returns calls per second.
fn fill(db: &HostedDatabase, count: u64, accounts: u64) -> f64 {
    let answers = Arc::new(Answers::default());
    let start = Instant::now();
    for i in 0..count {
        let i = i as usize;
        if i >= answers.done.load(Ordering::Acquire) + WINDOW {
            answers.wait_for(i - WINDOW / 2);
        }
        let answers = answers.clone();
        db.submit_reducer(
            "transfer".to_owned(),
            caller(),
            transfer_args(i as u64, accounts),
            move |result| {
                let offset = match &result.outcome {
                    ReducerOutcome::Committed { delta } => delta.offset,
                    _ => None,
                };
                answers.answered(offset);
            },
        )
        .expect("submit");
        if (i + 1).is_multiple_of(250_000) {
            say(true, &format!("    {} transfers submitted", i + 1));
        }
    }
    answers.wait_for(count as usize);
    assert_eq!(
        answers.failed.load(Ordering::Relaxed),
        0,
        "every transfer commits"
    );
    let last = answers.last.load(Ordering::Relaxed);
    db.storage()
        .wait_durable(TxOffset(last - 1))
        .expect("durable");
    round(count as f64 / start.elapsed().as_secs_f64(), 0)
}

/// Bytes and count of the files directly in `dir`.
fn files(dir: &Path) -> (u64, usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .fold((0, 0), |(bytes, n), m| (bytes + m.len(), n + 1))
}

/// One restart: storage recovery, then hosting the module on it.
struct Restart {
    storage_open_s: f64,
    module_open_s: f64,
    records_replayed: u64,
    snapshot_offset: Option<u64>,
    last_offset: Option<u64>,
}

fn restart(dir: &Path, policy: &str, wasm: &[u8], host: &Host) -> (Restart, HostedDatabase) {
    let started = Instant::now();
    let (db, report) = Database::open(DbStorage::dir(dir).expect("storage dir"), options(policy))
        .expect("the database reopens");
    let storage_open_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let hosted = host
        .open_database(spec(), db, wasm)
        .expect("the module hosts the reopened database");
    let module_open_s = started.elapsed().as_secs_f64();
    let restart = Restart {
        storage_open_s,
        module_open_s,
        records_replayed: report.records_replayed,
        snapshot_offset: report.snapshot_offset.map(|o| o.0),
        last_offset: report.last_offset.map(|o| o.0),
    };
    (restart, hosted)
}

/// `config.restarts` restarts; the medians and the counts of the last.
fn restarts(dir: &Path, policy: &str, wasm: &[u8], config: &Config) -> Value {
    let mut storage = Vec::new();
    let mut module = Vec::new();
    let mut total = Vec::new();
    let mut last = None;
    for _ in 0..config.restarts {
        let host = host(&dir.with_file_name("artifacts"));
        let (r, hosted) = restart(dir, policy, wasm, &host);
        drop(hosted);
        drop(host);
        storage.push(r.storage_open_s);
        module.push(r.module_open_s);
        total.push(r.storage_open_s + r.module_open_s);
        last = Some(r);
    }
    let last = last.expect("at least one restart");
    json!({
        "restart_s": round(median(total), 3),
        "storage_open_s": round(median(storage), 3),
        "module_open_s": round(median(module), 3),
        "records_replayed": last.records_replayed,
        "snapshot_offset": last.snapshot_offset,
        "last_offset": last.last_offset,
    })
}

fn run(history: u64, policy: &str, wasm: &[u8], config: &Config) -> Value {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("storage");
    say(
        true,
        &format!("{policy}, {history} transfers: creating and seeding…"),
    );
    let (fill_rate, stats) = {
        let host = host(&tmp.path().join("artifacts"));
        let (storage, _) =
            Database::open(DbStorage::dir(&dir).expect("storage dir"), options(policy))
                .expect("open");
        let db = host
            .create_database(spec(), storage, wasm)
            .expect("create the bank database");
        let seed = db
            .call_reducer("seed", caller(), config.accounts.to_le_bytes().to_vec())
            .expect("submit seed");
        assert!(
            matches!(seed.outcome, ReducerOutcome::Committed { .. }),
            "seed commits"
        );
        say(true, &format!("  {history} transfers…"));
        let rate = fill(&db, history, config.accounts);
        // Dropping the hosted database waits for a snapshot in progress.
        let stats = db.storage().snapshot_stats();
        (rate, stats)
    };
    let (log_bytes, log_segments) = files(&dir.join("log"));
    say(true, "  restarts (no shutdown snapshot, as after a crash)…");
    let crash = restarts(&dir, policy, wasm, config);
    let mut result = json!({
        "history_transfers": history,
        "policy": policy,
        "snapshot_every_txs": options(policy).snapshot_policy.every_txs,
        "snapshot_every_log_bytes": options(policy).snapshot_policy.every_log_bytes,
        "fill_calls_per_s": fill_rate,
        "snapshots_taken_during_fill": stats.taken,
        "snapshot_failures_during_fill": stats.failed,
        "log_bytes_on_disk": log_bytes,
        "log_segments_on_disk": log_segments,
        "after_crash": crash,
    });
    if policy == "policy" {
        say(true, "  restarts after a clean stop…");
        {
            let (db, _) =
                Database::open(DbStorage::dir(&dir).expect("storage dir"), options(policy))
                    .expect("open");
            db.snapshot_if_behind().expect("shutdown snapshot");
        }
        result["after_clean_stop"] = restarts(&dir, policy, wasm, config);
    }
    say(true, &format!("  {result}"));
    result
}

fn main() {
    let config = Config::from_args();
    let wasm = match &config.wasm {
        Some(path) => {
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        }
        None => {
            say(true, "building the bank module (wasm32, release)…");
            modules::module_bytes("bank")
        }
    };
    let mut runs = Vec::new();
    for &history in &config.histories {
        for policy in &config.policies {
            runs.push(run(history, policy, &wasm, &config));
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let report = json!({
        "accounts": config.accounts,
        "cores": cores,
        "host_workers": WORKERS,
        "runs": runs,
    });
    if config.json {
        say(false, &report.to_string());
    } else {
        for run in report["runs"].as_array().into_iter().flatten() {
            say(false, &serde_json::to_string_pretty(run).expect("json"));
        }
    }
}
