//! Fairness runner for the tenant host's worker pool: the call latency of a
//! quick "neighbour" database alone, and while two other databases run slow
//! calls back to back on a 2-worker `Host` (issue 12's goal: the neighbour's
//! p99 within 1.2× of its p99 alone).
//!
//! Owns: nothing the crate uses; it is a program. Each hog database spins to
//! its deadline (`hostile::spin`, `--slow-ms`) with a second call always
//! queued behind the running one. The neighbour (`hostile::ok`, one row
//! insert, in memory) calls one at a time, closed loop. Three pool policies
//! are measured: `legacy` (64 jobs per turn, no time slice, no worker kept
//! for quick lanes: the pool before issue 12), `slices` (time slices only)
//! and `default` (`PoolPolicy::default()`). The loaded phase starts once
//! each hog has finished one slow call (the pool cannot know a database is
//! slow before its first slow call); a neighbour call still waiting when the
//! phase ends counts with the time it has waited so far.
//! Does not own: the goals, which BENCHMARKS.md records with results.
//!
//! Run: `cargo run --release -p tenant-host --example fairness -- --json
//! [--slow-ms 5000] [--seconds 20] [--policies legacy,slices,default]`.
//! Progress goes to stderr, the result to stdout.

#[path = "../../tests/support/modules.rs"]
mod modules;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use orrery_module::{CallOptions, CallerContext, Runtime};
use serde_json::{json, Value};
use spacetimedb_lib::{ConnectionId, Identity};
use storage::{Database, DbOptions};
use tenant_host::hosting::pool::PoolPolicy;
use tenant_host::hosting::{DatabaseSpec, Host, HostConfig, HostedDatabase};

const OWNER: Identity = Identity::from_byte_array([0x0e; 32]);
const WORKERS: usize = 2;
const HOGS: usize = 2;
/// Slow calls each hog keeps submitted (one running, the rest waiting).
const HOG_DEPTH: usize = 2;

struct Config {
    json: bool,
    slow: Duration,
    measure: Duration,
    policies: Vec<String>,
}

fn config() -> Config {
    let mut config = Config {
        json: false,
        slow: Duration::from_secs(5),
        measure: Duration::from_secs(20),
        policies: vec!["legacy".into(), "slices".into(), "default".into()],
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
            "--slow-ms" => config.slow = Duration::from_millis(number(args.next()).max(1)),
            "--seconds" => config.measure = Duration::from_secs(number(args.next()).max(1)),
            "--policies" => {
                config.policies = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            _ => usage(),
        }
    }
    config
}

fn usage() -> ! {
    say_err(
        "usage: fairness [--json] [--slow-ms N] [--seconds N] [--policies legacy,slices,default]",
    );
    std::process::exit(2)
}

/// Results go to stdout, progress to stderr, with `writeln!` because the
/// workspace lints reject the print macros.
fn say_out(line: &str) {
    writeln!(std::io::stdout().lock(), "{line}").expect("write to stdout");
}

fn say_err(line: &str) {
    writeln!(std::io::stderr().lock(), "{line}").expect("write to stderr");
}

fn policy(name: &str) -> PoolPolicy {
    match name {
        "legacy" => PoolPolicy {
            turn_jobs_max: 64,
            turn_time_max: Duration::MAX,
            slow_job_min: Duration::MAX,
            workers_reserved_for_quick: 0,
        },
        "slices" => PoolPolicy {
            workers_reserved_for_quick: 0,
            ..PoolPolicy::default()
        },
        "default" => PoolPolicy::default(),
        _ => usage(),
    }
}

fn caller() -> CallerContext {
    CallerContext {
        sender: OWNER,
        connection_id: ConnectionId::ZERO,
        timestamp_micros: 0,
    }
}

fn database(host: &Host, name: &str, options: CallOptions, wasm: &[u8]) -> HostedDatabase {
    host.create_database(
        DatabaseSpec::new(name, OWNER, options),
        Database::in_memory(DbOptions::default()),
        wasm,
    )
    .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// Milliseconds at percentile `p` (0..=100) of sorted `samples`.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    let at = rank.clamp(1, samples.len()) - 1;
    (samples[at].as_secs_f64() * 1e6).round() / 1e3
}

/// Closed-loop neighbour calls for `measure`; a call still waiting at the
/// end counts with the time it has waited (it is then awaited, unrecorded).
fn neighbour_latencies(neighbour: &HostedDatabase, measure: Duration) -> Vec<Duration> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < measure {
        let (done, answered) = mpsc::sync_channel(1);
        let submitted = Instant::now();
        neighbour
            .submit_reducer("ok".into(), caller(), Vec::new(), move |result| {
                let _ = done.send(result.outcome.is_committed());
            })
            .expect("submitting a neighbour call");
        let left = measure.saturating_sub(start.elapsed());
        match answered.recv_timeout(left) {
            Ok(committed) => {
                assert!(committed, "the neighbour's call did not commit");
                samples.push(submitted.elapsed());
            }
            Err(_) => {
                samples.push(submitted.elapsed());
                let _ = answered.recv();
                break;
            }
        }
    }
    samples.sort();
    samples
}

fn summary(samples: &[Duration]) -> Value {
    json!({
        "calls": samples.len(),
        "p50_ms": percentile(samples, 50.0),
        "p99_ms": percentile(samples, 99.0),
        "max_ms": percentile(samples, 100.0),
    })
}

fn run(name: &str, config: &Config, wasm: &[u8]) -> Value {
    say_err(&format!("policy {name}"));
    let host = Host::new(
        Runtime::new().expect("runtime"),
        HostConfig {
            workers: WORKERS,
            pool: policy(name),
            ..HostConfig::default()
        },
    );
    let neighbour = database(&host, "neighbour", CallOptions::default(), wasm);
    // Warm the neighbour's instance, then measure it alone.
    let _ = neighbour_latencies(&neighbour, Duration::from_millis(500));
    let alone = neighbour_latencies(&neighbour, config.measure.min(Duration::from_secs(10)));
    say_err(&format!("  alone: {}", summary(&alone)));

    let slow_options = CallOptions {
        fuel_per_call: u64::MAX / 4,
        deadline_per_call: config.slow,
        ..CallOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let finished: Arc<Vec<AtomicUsize>> =
        Arc::new((0..HOGS).map(|_| AtomicUsize::new(0)).collect());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let hogs: Vec<Arc<HostedDatabase>> = (0..HOGS)
        .map(|i| {
            Arc::new(database(
                &host,
                &format!("hog-{i}"),
                slow_options.clone(),
                wasm,
            ))
        })
        .collect();
    fn spin(
        hog: Arc<HostedDatabase>,
        i: usize,
        stop: Arc<AtomicBool>,
        finished: Arc<Vec<AtomicUsize>>,
        in_flight: Arc<AtomicUsize>,
    ) {
        in_flight.fetch_add(1, Ordering::SeqCst);
        let again = hog.clone();
        hog.submit_reducer("spin".into(), caller(), Vec::new(), move |_| {
            finished[i].fetch_add(1, Ordering::SeqCst);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            if !stop.load(Ordering::SeqCst) {
                spin(again, i, stop, finished, in_flight);
            }
        })
        .expect("submitting a slow call");
    }
    for (i, hog) in hogs.iter().enumerate() {
        for _ in 0..HOG_DEPTH {
            spin(
                hog.clone(),
                i,
                stop.clone(),
                finished.clone(),
                in_flight.clone(),
            );
        }
    }
    // The pool learns a database is slow from its first slow call.
    let warm = Instant::now();
    while finished.iter().any(|f| f.load(Ordering::SeqCst) == 0) && warm.elapsed() < config.slow * 4
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let loaded = neighbour_latencies(&neighbour, config.measure);
    say_err(&format!("  loaded: {}", summary(&loaded)));
    stop.store(true, Ordering::SeqCst);
    let slow_calls: usize = finished.iter().map(|f| f.load(Ordering::SeqCst)).sum();
    while in_flight.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let p99_alone = percentile(&alone, 99.0);
    let p99_loaded = percentile(&loaded, 99.0);
    json!({
        "policy": name,
        "alone": summary(&alone),
        "loaded": summary(&loaded),
        "slow_calls_finished": slow_calls,
        "p99_loaded_over_alone": (p99_loaded / p99_alone * 100.0).round() / 100.0,
    })
}

fn main() {
    let config = config();
    let wasm = modules::module_bytes("hostile");
    let results: Vec<Value> = config
        .policies
        .iter()
        .map(|name| run(name, &config, &wasm))
        .collect();
    let report = json!({
        "workers": WORKERS,
        "hogs": HOGS,
        "slow_call_ms": config.slow.as_millis() as u64,
        "measure_s": config.measure.as_secs(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "results": results,
    });
    if config.json {
        say_out(&report.to_string());
    } else {
        say_out(&serde_json::to_string_pretty(&report).expect("JSON"));
    }
}
