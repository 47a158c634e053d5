//! `loadgen`: a load generator of the client API over real WebSockets on
//! loopback. Starts `orrery start` itself (or uses `--url`), publishes the
//! `bank` test module, seeds accounts and runs pipelined `transfer` calls
//! (uniform and zipf account choice), then the fan-out test on the `chat`
//! module (one writer, many subscribers to `SELECT * FROM message`), and
//! prints one JSON object. See BENCHMARKS.md, "Client API load (loadgen)".

/// A progress line on stderr (stdout holds only the JSON result).
macro_rules! progress {
    ($($arg:tt)*) => {
        $crate::progress_line(format_args!($($arg)*))
    };
}

mod server;
mod stats;
mod ws;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use crate::stats::{ms, percentile, Zipf};
use crate::ws::Pick;

#[derive(Parser, Debug)]
#[command(about = "Client API load generator (WebSockets on loopback); prints JSON")]
struct Args {
    /// Base URL of a running server (http://HOST:PORT); default: start
    /// `orrery start` as a child on a temporary data directory.
    #[arg(long)]
    url: Option<String>,
    /// The `orrery` binary to start (default: next to this executable).
    #[arg(long)]
    orrery: Option<PathBuf>,
    /// Transfer clients (one WebSocket each).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Calls each transfer client keeps in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Seconds of each transfer run (uniform, then zipf).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start of each run that are not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Accounts seeded in the bank.
    #[arg(long, default_value_t = 100_000)]
    accounts: u64,
    /// Accounts per `seed` call.
    #[arg(long, default_value_t = 10_000)]
    seed_batch: u64,
    /// Exponent of the zipf account choice.
    #[arg(long, default_value_t = 1.5)]
    zipf_alpha: f64,
    /// Fan-out subscribers (one WebSocket each); 0 skips the fan-out test.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Writer calls (commits) per second in the fan-out test.
    #[arg(long, default_value_t = 250.0)]
    fanout_rate: f64,
    /// Calls the fan-out writer keeps in flight at most.
    #[arg(long, default_value_t = 32)]
    fanout_window: usize,
    /// Seconds of the fan-out run.
    #[arg(long, default_value_t = 10.0)]
    fanout_duration: f64,
    /// Worker threads of the client's async runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Skip the transfer runs (fan-out only).
    #[arg(long)]
    skip_transfer: bool,
    /// Accepted for symmetry with the other benches; output is always JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let child = match &args.url {
        Some(_) => None,
        None => {
            let binary = server::orrery_binary(args.orrery.as_deref())?;
            let orrery = server::start_orrery(&binary)?;
            progress!("started {} on {}", binary.display(), orrery.addr);
            Some(orrery)
        }
    };
    let base = match (&args.url, &child) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(orrery)) => format!("http://{}", orrery.addr),
        (None, None) => unreachable!("a child is started when no --url is given"),
    };
    let addr = base
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let suffix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let token = server::mint_token(&base).context("mint an identity")?;

    let mut out = serde_json::Map::new();
    if !args.skip_transfer {
        let db = format!("loadgen-bank-{suffix}");
        server::publish(&base, &token, &db, &server::module_bytes("bank")?)?;
        let seeded = Instant::now();
        let mut n = 0;
        while n < args.accounts {
            n = (n + args.seed_batch).min(args.accounts);
            server::call(&base, &token, &db, "seed", json!([n]))?;
        }
        progress!(
            "seeded {} accounts in {:.1} s",
            args.accounts,
            seeded.elapsed().as_secs_f64()
        );
        let zipf = Zipf::new(args.accounts, args.zipf_alpha);
        let mut all_latencies = Vec::new();
        for (label, pick) in [
            ("uniform", Pick::Uniform(args.accounts)),
            ("zipf", Pick::Zipf(&zipf)),
        ] {
            let run = runtime.block_on(transfer_run(&args, &addr, &db, pick))?;
            progress!(
                "transfer {label}: {:.0} calls/s, p50 {} ms, p99 {} ms, {} errors{}",
                run.tps,
                ms(run.p50),
                ms(run.p99),
                run.errors,
                run.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
            out.insert(format!("transfer_tps_{label}"), json!(run.tps.round()));
            out.insert(format!("call_latency_p50_ms_{label}"), json!(ms(run.p50)));
            out.insert(format!("call_latency_p99_ms_{label}"), json!(ms(run.p99)));
            out.insert(format!("transfer_errors_{label}"), json!(run.errors));
            all_latencies.extend(run.latencies);
        }
        all_latencies.sort_unstable();
        out.insert(
            "call_latency_p50_ms".into(),
            json!(ms(percentile(&all_latencies, 50.0))),
        );
        out.insert(
            "call_latency_p99_ms".into(),
            json!(ms(percentile(&all_latencies, 99.0))),
        );
    }
    if args.subscribers > 0 {
        let db = format!("loadgen-chat-{suffix}");
        server::publish(&base, &token, &db, &server::module_bytes("chat")?)?;
        let fanout = runtime.block_on(fanout_run(&args, &addr, &db))?;
        for (key, value) in fanout {
            out.insert(key, value);
        }
    }
    out.insert(
        "params".into(),
        json!({
            "server": if args.url.is_some() { "external" } else { "child orrery start" },
            "protocol": "v2.bsatn.spacetimedb, compression=None",
            "clients": args.clients,
            "window": args.window,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "accounts": args.accounts,
            "zipf_alpha": args.zipf_alpha,
            "subscribers": args.subscribers,
            "fanout_rate_calls_per_s": args.fanout_rate,
            "fanout_window": args.fanout_window,
            "fanout_duration_s": args.fanout_duration,
            "client_threads": args.threads,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    );
    print_result(&serde_json::to_string_pretty(&out)?);
    drop(runtime);
    drop(child);
    Ok(())
}

#[allow(
    clippy::disallowed_macros,
    reason = "a benchmark CLI: progress goes to stderr, not to a log"
)]
fn progress_line(line: std::fmt::Arguments<'_>) {
    eprintln!("{line}");
}

#[allow(
    clippy::disallowed_macros,
    reason = "a benchmark CLI: the JSON result is its stdout"
)]
fn print_result(json: &str) {
    println!("{json}");
}

struct TransferRun {
    tps: f64,
    p50: u32,
    p99: u32,
    errors: u64,
    first_error: Option<String>,
    latencies: Vec<u32>,
}

async fn transfer_run(
    args: &Args,
    addr: &str,
    db: &str,
    pick: Pick<'_>,
) -> anyhow::Result<TransferRun> {
    let mut sockets = Vec::new();
    for _ in 0..args.clients {
        sockets.push(ws::connect(addr, db).await?);
    }
    let begin = Instant::now();
    let start = begin + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration);
    // All clients run on this task's thread set; scoped futures, joined.
    let clients = sockets.into_iter().enumerate().map(|(i, socket)| {
        ws::transfer_client(socket, 0x5eed + i as u64, pick, args.window, start, end)
    });
    let results = futures_util::future::join_all(clients).await;
    let mut latencies = Vec::new();
    let (mut completed, mut errors, mut first_error) = (0, 0, None);
    for result in results {
        let stats = result?;
        completed += stats.completed;
        errors += stats.errors;
        first_error = first_error.or(stats.first_error);
        latencies.extend(stats.latencies_us);
    }
    latencies.sort_unstable();
    Ok(TransferRun {
        tps: completed as f64 / args.duration,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        errors,
        first_error,
        latencies,
    })
}

async fn fanout_run(
    args: &Args,
    addr: &str,
    db: &str,
) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let connecting = Instant::now();
    let mut sockets = Vec::with_capacity(args.subscribers);
    // Connect and subscribe in groups so the accept queue is not flooded.
    let mut remaining = args.subscribers;
    while remaining > 0 {
        let group = remaining.min(50);
        remaining -= group;
        let batch = (0..group).map(|_| async {
            let mut socket = ws::connect(addr, db).await?;
            ws::subscribe(&mut socket, "SELECT * FROM message").await?;
            anyhow::Ok(socket)
        });
        for socket in futures_util::future::join_all(batch).await {
            sockets.push(socket?);
        }
    }
    progress!(
        "{} subscribers connected and subscribed in {:.1} s",
        sockets.len(),
        connecting.elapsed().as_secs_f64()
    );
    let writer_socket = ws::connect(addr, db).await?;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.fanout_duration);
    let stop = end + Duration::from_secs(3);
    let subscribers: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(ws::subscriber(socket, start, end, stop)))
        .collect();
    let (calls, failed) =
        ws::writer(writer_socket, args.fanout_rate, args.fanout_window, end).await?;
    let mut latencies = Vec::new();
    let (mut in_window, mut total) = (0u64, 0u64);
    for handle in subscribers {
        let stats = handle.await??;
        in_window += stats.deltas_in_window;
        total += stats.deltas_total;
        latencies.extend(stats.latencies_us);
    }
    latencies.sort_unstable();
    let per_s = in_window as f64 / args.fanout_duration;
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    progress!(
        "fan-out: {calls} commits, {per_s:.0} deltas/s, p50 {} ms, p99 {} ms, {total} of {} deltas received",
        ms(p50),
        ms(p99),
        (calls - failed) * args.subscribers as u64
    );
    Ok(vec![
        ("fanout_deltas_per_s".into(), json!(per_s.round())),
        ("fanout_latency_p50_ms".into(), json!(ms(p50))),
        ("fanout_latency_p99_ms".into(), json!(ms(p99))),
        ("fanout_commits".into(), json!(calls)),
        ("fanout_failed_commits".into(), json!(failed)),
        ("fanout_deltas_received".into(), json!(total)),
        (
            "fanout_deltas_expected".into(),
            json!((calls - failed) * args.subscribers as u64),
        ),
    ])
}
