//! One-shot throughput and latency runner for the tenant host, on the real
//! `bank` test module (`tests/modules/bank`).
//!
//! Owns: nothing the crate uses; it is a program. It measures transfers per
//! second on one durable database (group-commit log, fsync) with uniform and
//! Zipf (α = 1.5) account choice, both by direct `HostedModule::call_reducer`
//! calls on one thread and through the production path
//! (`HostedDatabase::submit_reducer` on a `Host`'s worker pool, pipelined);
//! the latency of direct calls; compile, artifact-load and instantiate times;
//! and transfers per second over 8 databases on a 2-worker `Host`.
//! Does not own: the storage runner (`storage/examples/bench.rs`) or the
//! goals, which BENCHMARKS.md at the repository root records with results.
//!
//! Run: `cargo run --release -p tenant-host --example bench -- --json
//! [--accounts N] [--transfers N] [--wasm PATH]`. Progress goes to stderr,
//! the result to stdout (one JSON object with `--json`, a table otherwise).
//! Without `--wasm` the module is built the way the tests build it.

#[path = "../../tests/support/modules.rs"]
mod modules;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use orrery_module::{
    module_hash, CallOptions, CallerContext, HostedModule, ReducerOutcome, ReducerRef, Runtime,
    RuntimeConfig,
};
use serde_json::{json, Value};
use spacetimedb_lib::{ConnectionId, Identity};
use storage::{Database, DbOptions, DbStorage, TxOffset};
use tenant_host::hosting::{DatabaseSpec, Host, HostConfig, HostedDatabase};

const OWNER: Identity = Identity::from_byte_array([0x0e; 32]);
/// Zipf exponent of the skewed account choice.
const ZIPF_ALPHA: f64 = 1.5;
/// Calls the pipelined runs keep submitted but not yet answered.
const WINDOW: usize = 4_096;
const PARALLEL_DBS: usize = 8;
const HOST_WORKERS: usize = 2;
const COMPILES: usize = 3;
const ARTIFACT_LOADS: usize = 20;
const INSTANTIATES: usize = 500;

struct Config {
    json: bool,
    accounts: u64,
    transfers: usize,
    wasm: Option<PathBuf>,
    /// Worker threads of the `Host` (hosted and parallel runs).
    workers: usize,
    /// Run only these parts (`startup`, `hosted`, `parallel`, `direct`); all if empty.
    only: Vec<String>,
    /// `--no-snapshots`: databases take no background snapshots (to measure
    /// what the default snapshot policy costs the runs).
    no_snapshots: bool,
}

impl Config {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

impl Config {
    fn from_args() -> Config {
        let mut config = Config {
            json: false,
            accounts: 100_000,
            transfers: 200_000,
            wasm: None,
            only: Vec::new(),
            workers: HOST_WORKERS,
            no_snapshots: false,
        };
        let mut args = std::env::args().skip(1);
        let number = |value: Option<String>| -> u64 {
            value
                .and_then(|n| n.replace('_', "").parse().ok())
                .unwrap_or_else(|| usage())
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => config.json = true,
                "--no-snapshots" => config.no_snapshots = true,
                "--accounts" => config.accounts = number(args.next()).max(2),
                "--transfers" => config.transfers = number(args.next()).max(100) as usize,
                "--wasm" => config.wasm = Some(args.next().unwrap_or_else(|| usage()).into()),
                "--workers" => config.workers = number(args.next()).max(1) as usize,
                "--only" => config.only.extend(
                    args.next()
                        .unwrap_or_else(|| usage())
                        .split(',')
                        .map(str::to_owned),
                ),
                _ => usage(),
            }
        }
        config
    }
}

fn usage() -> ! {
    say(
        Stream::Err,
        "usage: bench [--json] [--accounts N] [--transfers N] [--wasm PATH] [--workers N] [--no-snapshots] [--only startup,hosted,parallel,direct]",
    );
    std::process::exit(2)
}

enum Stream {
    Out,
    Err,
}

/// All output: results to stdout, progress and usage to stderr. Written with
/// `writeln!` because the workspace lints reject the print macros.
fn say(stream: Stream, line: &str) {
    let result = match stream {
        Stream::Out => writeln!(std::io::stdout().lock(), "{line}"),
        Stream::Err => writeln!(std::io::stderr().lock(), "{line}"),
    };
    result.expect("write to stdout or stderr");
}

/// Ordered results: printed as a table in this order, or as one JSON object.
#[derive(Default)]
struct Report(Vec<(&'static str, Value)>);

impl Report {
    fn put(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        say(Stream::Err, &format!("  {key} = {value}"));
        self.0.push((key, value));
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn per_s(count: usize, elapsed: Duration) -> f64 {
    round(count as f64 / elapsed.as_secs_f64(), 0)
}

/// The median of `samples` (sorted in place).
fn median(samples: &mut [f64]) -> f64 {
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

#[derive(Clone, Copy, Debug)]
enum Choice {
    Uniform,
    Zipf,
}

/// Draws account ids in `1..=accounts`.
struct Picker {
    accounts: u64,
    /// Cumulative Zipf weights by rank; empty for uniform choice.
    cdf: Vec<f64>,
    /// Rank `r` (0-based) is account `1 + r * stride % accounts`, so the hot
    /// accounts are spread over the id space rather than packed at its start.
    stride: u64,
    state: u64,
}

impl Picker {
    fn new(choice: Choice, accounts: u64, seed: u64) -> Picker {
        let cdf = match choice {
            Choice::Uniform => Vec::new(),
            Choice::Zipf => {
                let mut total = 0.0;
                let mut cdf: Vec<f64> = (1..=accounts)
                    .map(|rank| {
                        total += (rank as f64).powf(-ZIPF_ALPHA);
                        total
                    })
                    .collect();
                cdf.iter_mut().for_each(|c| *c /= total);
                cdf
            }
        };
        let mut stride = 1_000_003 % accounts;
        while gcd(stride, accounts) != 1 {
            stride += 1;
        }
        Picker {
            accounts,
            cdf,
            stride,
            state: seed,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(1);
        let random = mix(self.state);
        if self.cdf.is_empty() {
            return 1 + random % self.accounts;
        }
        let u = (random >> 11) as f64 / (1u64 << 53) as f64;
        let rank = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64;
        1 + rank * self.stride % self.accounts
    }

    /// `count` transfers as BSATN arguments of `transfer(from, to, amount)`,
    /// never from an account to itself (that would commit no change).
    fn transfers(&mut self, count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let from = self.next();
                let mut to = self.next();
                while to == from {
                    to = self.next();
                }
                transfer_args(from, to, 1)
            })
            .collect()
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// BSATN of the product `(u64, u64, i64)`: three little-endian words.
fn transfer_args(from: u64, to: u64, amount: i64) -> Vec<u8> {
    let mut args = Vec::with_capacity(24);
    args.extend_from_slice(&from.to_le_bytes());
    args.extend_from_slice(&to.to_le_bytes());
    args.extend_from_slice(&amount.to_le_bytes());
    args
}

fn caller(timestamp_micros: i64) -> CallerContext {
    CallerContext {
        sender: OWNER,
        connection_id: ConnectionId::ZERO,
        timestamp_micros,
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Set once from `--no-snapshots` before any database opens.
static NO_SNAPSHOTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn durable_db(dir: &Path) -> Database {
    let mut options = DbOptions::default();
    if NO_SNAPSHOTS.load(std::sync::atomic::Ordering::Relaxed) {
        options.snapshot_policy = storage::SnapshotPolicy::NEVER;
    }
    let (db, _) =
        Database::open(DbStorage::dir(dir).expect("storage dir"), options).expect("open database");
    db
}

fn wasm_bytes(config: &Config) -> Vec<u8> {
    match &config.wasm {
        Some(path) => {
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        }
        None => {
            say(Stream::Err, "building the bank module (wasm32, release)…");
            modules::module_bytes("bank")
        }
    }
}

fn expect_committed(outcome: &ReducerOutcome, what: &str) -> Option<TxOffset> {
    match outcome {
        ReducerOutcome::Committed { delta } => delta.offset,
        other => panic!("{what} did not commit: {other:?}"),
    }
}

/// Compile from bytes, load from a precompiled artifact, instantiate.
fn startup(wasm: &[u8], report: &mut Report) {
    say(Stream::Err, "compile, artifact load, instantiate…");
    let runtime = Runtime::new().expect("runtime");
    let mut compiles: Vec<f64> = (0..COMPILES)
        .map(|_| {
            let start = Instant::now();
            runtime.compile_uncached(wasm).expect("compile");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    report.put("module_compile_ms", round(median(&mut compiles), 1));

    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::with_config(RuntimeConfig {
        artifact_dir: Some(dir.path().join("artifacts")),
        ..RuntimeConfig::default()
    })
    .expect("runtime with artifacts");
    runtime
        .compile(wasm)
        .expect("compile and write the artifact");
    let hash = module_hash(wasm);
    let mut loads: Vec<f64> = (0..ARTIFACT_LOADS)
        .map(|_| {
            let start = Instant::now();
            runtime.load_artifact(&hash).expect("the artifact loads");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    report.put("module_load_from_artifact_ms", round(median(&mut loads), 2));

    let module = runtime
        .host(wasm, CallOptions::default())
        .expect("host the module");
    let mut instantiates: Vec<f64> = (0..INSTANTIATES)
        .map(|_| {
            let start = Instant::now();
            let instance = module.instantiate().expect("instantiate");
            let elapsed = start.elapsed();
            drop(instance);
            elapsed.as_secs_f64() * 1e6
        })
        .collect();
    report.put("instantiate_us", round(median(&mut instantiates), 1));
}

/// Direct calls: `HostedModule::call_reducer` in a loop on this thread, each
/// timed; then waits until the last commit is durable. Returns calls per
/// second and the per-call latencies in µs.
fn direct_run(
    module: &HostedModule,
    db: &Database,
    transfer: usize,
    calls: &[Vec<u8>],
) -> (f64, Vec<f64>) {
    let mut latencies = Vec::with_capacity(calls.len());
    let mut last = None;
    let base = now_micros();
    let start = Instant::now();
    for (i, args) in calls.iter().enumerate() {
        let t0 = Instant::now();
        let result =
            module.call_reducer(db, ReducerRef::Id(transfer), caller(base + i as i64), args);
        latencies.push(t0.elapsed().as_secs_f64() * 1e6);
        last = expect_committed(&result.outcome, "a transfer").or(last);
    }
    db.wait_durable(last.expect("transfers commit"))
        .expect("durable");
    (per_s(calls.len(), start.elapsed()), latencies)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn direct(wasm: &[u8], config: &Config, report: &mut Report) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = durable_db(dir.path());
    let runtime = Runtime::new().expect("runtime");
    let module = runtime
        .host(wasm, CallOptions::default())
        .expect("host the module");
    expect_committed(
        &module.create_database(&db, OWNER, now_micros()).outcome,
        "create_database",
    );
    say(
        Stream::Err,
        &format!("direct: seeding {} accounts…", config.accounts),
    );
    let seed = module.call_reducer(
        &db,
        "seed",
        caller(now_micros()),
        &config.accounts.to_le_bytes(),
    );
    expect_committed(&seed.outcome, "seed");
    let transfer = module
        .reducer_id(ReducerRef::Name("transfer"))
        .expect("bank has `transfer`");

    let mut all_latencies = Vec::new();
    for (choice, key) in [
        (Choice::Uniform, "direct_transfer_calls_per_s_uniform"),
        (Choice::Zipf, "direct_transfer_calls_per_s_zipf"),
    ] {
        let calls = Picker::new(choice, config.accounts, 7).transfers(config.transfers);
        say(
            Stream::Err,
            &format!("direct: {} {choice:?} transfers…", calls.len()),
        );
        let (rate, latencies) = direct_run(&module, &db, transfer, &calls);
        report.put(key, rate);
        all_latencies.extend(latencies);
    }
    all_latencies.sort_by(f64::total_cmp);
    report.put(
        "reducer_call_p50_us",
        round(percentile(&all_latencies, 0.50), 1),
    );
    report.put(
        "reducer_call_p99_us",
        round(percentile(&all_latencies, 0.99), 1),
    );
    report.put(
        "reducer_call_p999_us",
        round(percentile(&all_latencies, 0.999), 1),
    );
}

/// Answers of a pipelined run, filled in by the reply callbacks on the
/// workers: a count, the highest offset per database, and a condvar the
/// submitter sleeps on. Replies only signal at low water or at the end, so
/// the client side costs no context switch per call.
struct Answers {
    done: AtomicUsize,
    /// Highest committed offset + 1 per database; 0 = none yet.
    last: Vec<AtomicU64>,
    failed: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Answers {
    fn answered(&self, db: usize, offset: Option<TxOffset>, total: usize) {
        match offset {
            Some(offset) => {
                self.last[db].fetch_max(offset.get() + 1, Ordering::Relaxed);
            }
            None => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let done = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if done.is_multiple_of(WINDOW / 4) || done == total {
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_all();
        }
    }

    /// Sleeps until at least `target` calls are answered.
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

/// Submits `calls` round-robin over `dbs` through `submit_reducer`, keeping at
/// most [`WINDOW`] unanswered (refilling from half empty); then waits until
/// every database's last commit is durable. Returns calls per second.
fn hosted_run(dbs: &[HostedDatabase], calls: Vec<Vec<u8>>) -> f64 {
    let total = calls.len();
    let answers = Arc::new(Answers {
        done: AtomicUsize::new(0),
        last: (0..dbs.len()).map(|_| AtomicU64::new(0)).collect(),
        failed: AtomicUsize::new(0),
        lock: Mutex::new(()),
        wake: Condvar::new(),
    });
    let base = now_micros();
    let start = Instant::now();
    for (i, args) in calls.into_iter().enumerate() {
        if i >= answers.done.load(Ordering::Acquire) + WINDOW {
            answers.wait_for(i - WINDOW / 2);
        }
        let db = i % dbs.len();
        let answers = answers.clone();
        dbs[db]
            .submit_reducer(
                "transfer".to_owned(),
                caller(base + i as i64),
                args,
                move |result| {
                    let offset = match &result.outcome {
                        ReducerOutcome::Committed { delta } => delta.offset,
                        _ => None,
                    };
                    answers.answered(db, offset, total);
                },
            )
            .expect("submit");
    }
    answers.wait_for(total);
    assert_eq!(
        answers.failed.load(Ordering::Relaxed),
        0,
        "every transfer commits a change"
    );
    for (db, last) in dbs.iter().zip(&answers.last) {
        let last = last.load(Ordering::Relaxed);
        assert!(last > 0, "transfers commit");
        db.storage()
            .wait_durable(TxOffset(last - 1))
            .expect("durable");
    }
    per_s(total, start.elapsed())
}

/// `count` databases of the bank module on `host`, each seeded, each with
/// its own durable storage under `dir`.
fn hosted_databases(
    host: &Host,
    wasm: &[u8],
    dir: &Path,
    count: usize,
    accounts: u64,
) -> Vec<HostedDatabase> {
    (0..count)
        .map(|i| {
            let storage = durable_db(&dir.join(format!("db{i}")));
            let db = host
                .create_database(
                    DatabaseSpec::new(format!("bank-{i}"), OWNER, CallOptions::default()),
                    storage,
                    wasm,
                )
                .unwrap_or_else(|e| panic!("create database {i}: {e}"));
            let seed = db
                .call_reducer(
                    "seed",
                    caller(now_micros()),
                    accounts.to_le_bytes().to_vec(),
                )
                .expect("submit seed");
            expect_committed(&seed.outcome, "seed");
            db
        })
        .collect()
}

fn hosted(wasm: &[u8], config: &Config, report: &mut Report) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::new(
        Runtime::new().expect("runtime"),
        HostConfig {
            workers: config.workers,
            ..HostConfig::default()
        },
    );
    if config.runs("hosted") {
        hosted_one(&host, wasm, &dir.path().join("one"), config, report);
    }
    if config.runs("parallel") {
        hosted_parallel(&host, wasm, &dir.path().join("parallel"), config, report);
    }
}

/// The production path on one database: `transfer_calls_per_s`.
fn hosted_one(host: &Host, wasm: &[u8], dir: &Path, config: &Config, report: &mut Report) {
    say(
        Stream::Err,
        &format!("hosted: seeding {} accounts…", config.accounts),
    );
    let dbs = hosted_databases(host, wasm, dir, 1, config.accounts);
    let mut rates = Vec::new();
    for (choice, key) in [
        (Choice::Uniform, "transfer_calls_per_s_uniform"),
        (Choice::Zipf, "transfer_calls_per_s_zipf"),
    ] {
        let calls = Picker::new(choice, config.accounts, 11).transfers(config.transfers);
        say(
            Stream::Err,
            &format!("hosted: {} {choice:?} transfers…", calls.len()),
        );
        let rate = hosted_run(&dbs, calls);
        report.put(key, rate);
        rates.push(rate);
    }
    // The headline: the production path, the lower of the two account choices.
    report.put(
        "transfer_calls_per_s",
        rates.iter().copied().fold(f64::INFINITY, f64::min),
    );
}

/// [`PARALLEL_DBS`] databases on the host's workers (`--workers`, default [`HOST_WORKERS`]).
fn hosted_parallel(host: &Host, wasm: &[u8], dir: &Path, config: &Config, report: &mut Report) {
    say(
        Stream::Err,
        &format!(
            "parallel: {PARALLEL_DBS} databases of {} accounts on {} workers…",
            config.accounts, config.workers
        ),
    );
    let dbs = hosted_databases(host, wasm, dir, PARALLEL_DBS, config.accounts);
    let calls = Picker::new(Choice::Uniform, config.accounts, 13).transfers(config.transfers);
    report.put("parallel_dbs_calls_per_s", hosted_run(&dbs, calls));
}

fn main() {
    let config = Config::from_args();
    NO_SNAPSHOTS.store(config.no_snapshots, std::sync::atomic::Ordering::Relaxed);
    let wasm = wasm_bytes(&config);
    let mut report = Report::default();
    report.put(
        "cores",
        std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
    );
    report.put("accounts", config.accounts);
    report.put("transfers_per_run", config.transfers as u64);
    report.put("zipf_alpha", ZIPF_ALPHA);
    report.put("pipeline_window", WINDOW as u64);
    report.put("parallel_dbs", PARALLEL_DBS as u64);
    report.put("host_workers", config.workers as u64);
    report.put(
        "snapshots",
        if config.no_snapshots { "off" } else { "policy" },
    );
    report.put("wasm_bytes", wasm.len() as u64);

    if config.runs("startup") {
        startup(&wasm, &mut report);
    }
    if config.runs("hosted") || config.runs("parallel") {
        hosted(&wasm, &config, &mut report);
    }
    if config.runs("direct") {
        direct(&wasm, &config, &mut report);
    }

    if config.json {
        let object: serde_json::Map<String, Value> = report
            .0
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        say(Stream::Out, &json!(object).to_string());
    } else {
        let width = report.0.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &report.0 {
            say(Stream::Out, &format!("{key:<width$}  {value}"));
        }
    }
}
