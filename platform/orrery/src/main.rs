//! The `orrery` binary: the CLI and the entry point of every process.
//!
//! Composition only: it parses arguments and wires crates together. Today it
//! has one command, `orrery start`, which opens (recovers) every database in
//! a data directory, serves the client API's HTTP routes built so far
//! (`tenant_host::api`: ping and identities) on `--listen-addr`, and keeps
//! running until SIGTERM or Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use storage::{Database, DbOptions, DbStorage};

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "Orrery: a self-hostable platform for real-time database modules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform in one process with embedded defaults.
    ///
    /// Every database under DATA_DIR/databases/ is opened and recovered from
    /// its snapshots and commit log. The process stops cleanly on SIGTERM or
    /// Ctrl-C, after making every committed transaction durable.
    Start {
        /// Directory holding all state; created if missing.
        #[arg(long, default_value = "orrery-data")]
        data_dir: PathBuf,
        /// Address the client API listens on (loopback unless told otherwise;
        /// port 0 picks a free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen_addr: String,
    },
}

fn main() -> anyhow::Result<()> {
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(colour)
        .init();
    match Cli::parse().command {
        Command::Start {
            data_dir,
            listen_addr,
        } => start(&data_dir, &listen_addr),
    }
}

fn start(data_dir: &Path, listen_addr: &str) -> anyhow::Result<()> {
    let databases_dir = data_dir.join("databases");
    std::fs::create_dir_all(&databases_dir)
        .with_context(|| format!("create data directory {}", databases_dir.display()))?;
    let (stop_tx, stop_rx) = mpsc::sync_channel(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .context("install the SIGTERM/Ctrl-C handler")?;

    let mut names: Vec<PathBuf> = std::fs::read_dir(&databases_dir)
        .with_context(|| format!("list {}", databases_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    names.sort();
    let mut open = Vec::with_capacity(names.len());
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let started = Instant::now();
        let storage =
            DbStorage::dir(&path).with_context(|| format!("open storage of database `{name}`"))?;
        let (db, report) = Database::open(storage, DbOptions::default())
            .with_context(|| format!("recover database `{name}`"))?;
        tracing::info!(
            database = %name,
            last_offset = ?report.last_offset.map(|o| o.0),
            snapshot_offset = ?report.snapshot_offset.map(|o| o.0),
            rows_from_snapshot = report.rows_from_snapshot,
            records_replayed = report.records_replayed,
            snapshots_skipped = report.snapshots_skipped.len(),
            recovery_ms = started.elapsed().as_millis() as u64,
            "database recovered"
        );
        open.push((name, db));
    }
    let keys = tenant_host::auth::Keys::load_or_create(&data_dir.join("keys"))
        .context("load or create the token signing key")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("api")
        .build()
        .context("start the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen_addr))
        .with_context(|| format!("listen on {listen_addr}"))?;
    let local = listener.local_addr().context("read the listen address")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let state = std::sync::Arc::new(tenant_host::api::ApiState { keys });
    let server = runtime.spawn(tenant_host::api::serve(listener, state, async move {
        let _ = shutdown_rx.await;
    }));
    tracing::info!(data_dir = %data_dir.display(), databases = open.len(), "orrery started; listening on http://{local}; SIGTERM or Ctrl-C stops");

    stop_rx.recv().context("wait for a stop signal")?;
    tracing::info!("stopping: no new connections; finishing requests in flight");
    let _ = shutdown_tx.send(());
    match runtime.block_on(server) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the client API stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the client API task failed"),
    }
    tracing::info!("stopping: making committed transactions durable");
    for (name, db) in &open {
        db.flush()
            .with_context(|| format!("flush database `{name}`"))?;
    }
    tracing::info!(databases = open.len(), "stopped cleanly");
    Ok(())
}
