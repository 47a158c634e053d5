//! The `orrery` binary: the CLI and the entry point of every process.
//!
//! Composition only: it parses arguments and wires crates together. The
//! developer commands (publish, call, sql, logs, …) are HTTP clients of a
//! server and live in `cli`. Three commands run processes:
//! `orrery control-plane` (the control plane alone: metadata over SQLite or
//! Postgres, module signing into an object store, the control-plane API and
//! the internal API hosts call), `orrery host` (one pooled host: registers
//! with the control plane, heartbeats, serves tenants, runs only signed
//! modules; `remote` and `pool`), and `orrery start`, both in one process.
//! Every flag also comes from an environment variable and from the file
//! `--config` names (`config_file`). `orrery start` builds one tenant host, opens
//! (recovers) every database of the data directory's registry
//! (`tenant_host::registry`), opens the embedded control plane
//! (`control_plane` over SQLite in the data directory; `accounts` adapts it
//! to the edge), serves the client API (`orrery_edge`: identities and
//! databases) and the control-plane API (`control_api`, under `/api/`) on
//! `--listen-addr`, and keeps running until
//! SIGTERM or Ctrl-C; then it stops accepting, finishes requests in flight,
//! makes every commit log durable and snapshots every database that is
//! behind, so the next start replays nothing. Logs go to stdout through
//! `tracing-subscriber`, human-readable or JSON (`--log-format`); the API
//! also serves Prometheus metrics at `GET /metrics` (`tenant_host::metrics`).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use orrery_api::limits::{SNAPSHOT_EVERY_LOG_BYTES_DEFAULT, SNAPSHOT_EVERY_TXS_DEFAULT};
use orrery_api::Durability;
use storage::{Database, DbOptions, DbStorage, SnapshotPolicy};
use tenant_host::hosting::{Host, HostConfig};
use tenant_host::registry::Registry;

mod accounts;
mod config_file;
mod pool;
mod processes;
mod remote;
mod replica;
mod signing;

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "Orrery: a self-hostable platform for real-time database modules",
    after_help = "\
From nothing to a live subscription:
  orrery start                                    # the platform, in its own terminal
  orrery signup --email you@example.com           # an account; the CLI is logged in
  orrery publish chat --project-path ./my-module  # build the module, create database `chat`
  orrery subscribe chat 'SELECT * FROM message'   # one JSON line per transaction
  orrery call chat send_message 1 '\"hello\"'       # arguments are JSON values
  orrery generate -l typescript -o app/src/module_bindings -d chat
`orrery <command> --help` explains each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform in one process with embedded defaults.
    ///
    /// Every database under DATA_DIR/cache/ is opened and recovered from
    /// its snapshots and commit log, or read back from the object store
    /// (DATA_DIR/objects/) when the cache lacks it. The process stops cleanly on SIGTERM or
    /// Ctrl-C, after making every committed transaction durable.
    Start {
        /// Settings file (TOML): `flag-name = value` at the top or under
        /// `[start]`; flags and environment variables win over it.
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Directory holding all state; created if missing.
        #[arg(long, env = "ORRERY_DATA_DIR", default_value = "orrery-data")]
        data_dir: PathBuf,
        /// Address the client API listens on (loopback unless told otherwise;
        /// port 0 picks a free port, printed at start).
        #[arg(long, env = "ORRERY_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
        listen_addr: String,
        /// Domain of tenant URLs: database NAME is served at
        /// `NAME.DOMAIN` (by the Host header) as well as under
        /// `/v1/database/NAME`.
        #[arg(long, env = "ORRERY_DOMAIN", default_value = "localhost")]
        domain: String,
        /// Local development only: anyone who reaches the server may publish
        /// with a minted identity, as on a stock standalone server, so stock
        /// tools and their test suites work unchanged. Refused unless the
        /// listen address is loopback.
        #[arg(long, env = "ORRERY_DEV")]
        dev: bool,
        /// Log lines for people (`human`) or one JSON object per line
        /// (`json`). `RUST_LOG` filters them (default `info`).
        #[arg(long, env = "ORRERY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        /// A database takes a snapshot in the background after this many
        /// transactions since its last one (0: never by count).
        #[arg(long, env = "ORRERY_SNAPSHOT_EVERY_TXS", default_value_t = SNAPSHOT_EVERY_TXS_DEFAULT)]
        snapshot_every_txs: u64,
        /// … or after this many MiB of commit log since its last one,
        /// whichever comes first (0: never by size).
        #[arg(long, env = "ORRERY_SNAPSHOT_EVERY_LOG_MIB", default_value_t = SNAPSHOT_EVERY_LOG_BYTES_DEFAULT / MIB)]
        snapshot_every_log_mib: u64,
        #[command(flatten)]
        copies: CopyArgs,
        /// Sign-up needs an invitation from an operator (see
        /// --operator-email).
        #[arg(long, env = "ORRERY_INVITE_ONLY")]
        invite_only: bool,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Run the control plane alone: accounts, tokens, databases, module
    /// signing and placement, for hosts started with `orrery host`.
    ///
    /// Stateless apart from its metadata store, so several may run behind a
    /// load balancer.
    ControlPlane {
        /// Settings file (TOML): `flag-name = value` at the top or under
        /// `[control-plane]`; flags and environment variables win over it.
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// Metadata store: `sqlite:///path/file.db` or `postgres://…`.
        #[arg(long, env = "ORRERY_METADATA")]
        metadata: String,
        /// Where modules and manifests are stored: `s3://bucket/prefix`
        /// (settings from the `AWS_*` variables) or `file:///dir`.
        #[arg(long, env = "ORRERY_OBJECT_STORE")]
        object_store: String,
        /// The ed25519 key manifests are signed with (created, 0600, if missing).
        #[arg(long, env = "ORRERY_SIGNING_KEY")]
        signing_key: PathBuf,
        /// Address the control-plane API and the hosts' internal API listen on.
        #[arg(long, env = "ORRERY_LISTEN_ADDR", default_value = "127.0.0.1:3100")]
        listen_addr: String,
        /// The secret hosts present (at least 32 characters); the same on every host.
        #[arg(long, env = "ORRERY_JOIN_SECRET", hide_env_values = true)]
        join_secret: String,
        /// Clients reach the API over TLS (session cookies get `Secure`).
        #[arg(long, env = "ORRERY_BEHIND_TLS")]
        behind_tls: bool,
        /// Sign-up needs an invitation from an operator.
        #[arg(long, env = "ORRERY_INVITE_ONLY")]
        invite_only: bool,
        #[command(flatten)]
        operator: OperatorArgs,
        #[arg(long, env = "ORRERY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Run one pooled host: it registers with the control plane, serves the
    /// databases placed on it, and runs only modules the control plane signed.
    Host {
        /// Settings file (TOML): `flag-name = value` at the top or under
        /// `[host]`; flags and environment variables win over it.
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// The control plane's URL (`http://…` or `https://…`).
        #[arg(long, env = "ORRERY_CONTROL_PLANE")]
        control_plane: String,
        /// The object store the control plane stores modules in.
        #[arg(long, env = "ORRERY_OBJECT_STORE")]
        object_store: String,
        /// The host's local state (databases, compiled modules, keys).
        #[arg(long, env = "ORRERY_CACHE_DIR", default_value = "orrery-cache")]
        cache_dir: PathBuf,
        /// Address tenant traffic (and the control plane) reaches this host on.
        #[arg(long, env = "ORRERY_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
        listen_addr: String,
        /// The URL the control plane calls this host at (default
        /// `http://` and the bound listen address).
        #[arg(long, env = "ORRERY_ADVERTISE_URL")]
        advertise_url: Option<String>,
        /// This host's name at the control plane (default: one made on
        /// first start and kept in the cache directory).
        #[arg(long, env = "ORRERY_HOST_ID")]
        host_id: Option<String>,
        /// The control plane's join secret.
        #[arg(long, env = "ORRERY_JOIN_SECRET", hide_env_values = true)]
        join_secret: String,
        /// The control plane's manifest key (`ed25519:<hex>`); when given,
        /// a control plane that signs with another key is refused.
        #[arg(long, env = "ORRERY_MODULE_PUBLIC_KEY")]
        module_public_key: Option<String>,
        /// Domain of tenant URLs (`NAME.DOMAIN`).
        #[arg(long, env = "ORRERY_DOMAIN", default_value = "localhost")]
        domain: String,
        #[arg(long, env = "ORRERY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        #[arg(long, env = "ORRERY_SNAPSHOT_EVERY_TXS", default_value_t = SNAPSHOT_EVERY_TXS_DEFAULT)]
        snapshot_every_txs: u64,
        #[arg(long, env = "ORRERY_SNAPSHOT_EVERY_LOG_MIB", default_value_t = SNAPSHOT_EVERY_LOG_BYTES_DEFAULT / MIB)]
        snapshot_every_log_mib: u64,
        #[command(flatten)]
        copies: CopyArgs,
    },
    #[command(flatten)]
    Dev(orrery_cli::Cmd),
}

const MIB: u64 = 1024 * 1024;

/// The operator's account (`start` and `control-plane`).
#[derive(clap::Args, Clone)]
pub(crate) struct OperatorArgs {
    /// Make this account the platform's operator at start (it may list
    /// accounts, suspend and delete any database, and restore databases
    /// from other object stores). Created with the password in
    /// ORRERY_OPERATOR_PASSWORD when it does not exist yet.
    #[arg(long, env = "ORRERY_OPERATOR_EMAIL")]
    operator_email: Option<String>,
    /// The operator's password for a new account; from the environment or
    /// the settings file only, so it never shows in a process list.
    #[arg(
        long,
        env = "ORRERY_OPERATOR_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    operator_password: Option<String>,
}

/// Makes the account `operator` names the operator, if it names one.
async fn bootstrap_operator(
    plane: &control_plane::ControlPlane,
    operator: &OperatorArgs,
) -> anyhow::Result<()> {
    let Some(email) = &operator.operator_email else {
        return Ok(());
    };
    let password = operator.operator_password.as_deref().unwrap_or_default();
    let account = plane
        .bootstrap_operator(email, password)
        .await
        .with_context(|| {
            format!("make {email} the operator (a new account needs ORRERY_OPERATOR_PASSWORD)")
        })?;
    tracing::info!(email = %account.email, "operator account ready");
    Ok(())
}

/// How a host's databases are kept in the object store (`start` and `host`).
#[derive(clap::Args, Clone, Copy)]
struct CopyArgs {
    /// When a transaction counts as durable for the databases here:
    /// `local` (fsync on the host; the object store gets it within
    /// half a second) or `object-store` (only once the object store
    /// holds it).
    #[arg(long, env = "ORRERY_DURABILITY", default_value_t = Durability::Local, value_parser = parse_durability)]
    durability: Durability,
    /// Days of point-in-time history each database keeps in the object
    /// store (restorable to any transaction in them); older snapshots
    /// and log pieces are deleted. 0 keeps everything.
    #[arg(long, env = "ORRERY_RETENTION_DAYS", default_value_t = 7)]
    retention_days: u64,
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    text.parse()
}

/// How `orrery` writes its logs to stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// Installs the process's tracing subscriber: `RUST_LOG` filtering (default
/// `info`), human-readable or JSON lines.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Human => {
            let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
            logs.with_ansi(colour).init();
        }
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .with_current_span(false)
            .init(),
    }
}

fn snapshot_options(every_txs: u64, every_log_mib: u64) -> DbOptions {
    DbOptions {
        snapshot_policy: SnapshotPolicy {
            every_txs,
            every_log_bytes: every_log_mib.saturating_mul(MIB),
        },
        ..DbOptions::default()
    }
}

fn main() -> anyhow::Result<()> {
    config_file::apply(&Cli::command())?;
    match Cli::parse().command {
        Command::ControlPlane {
            config: _,
            metadata,
            object_store,
            signing_key,
            listen_addr,
            join_secret,
            behind_tls,
            invite_only,
            operator,
            log_format,
        } => {
            init_logs(log_format);
            processes::control_plane(processes::ControlPlaneArgs {
                operator,
                metadata,
                object_store,
                signing_key,
                listen_addr,
                join_secret,
                behind_tls,
                invite_only,
            })
        }
        Command::Host {
            config: _,
            control_plane,
            object_store,
            cache_dir,
            listen_addr,
            advertise_url,
            host_id,
            join_secret,
            module_public_key,
            domain,
            log_format,
            snapshot_every_txs,
            snapshot_every_log_mib,
            copies,
        } => {
            init_logs(log_format);
            processes::host(processes::HostArgs {
                durability: copies.durability,
                retention_days: copies.retention_days,
                control_plane,
                object_store,
                cache_dir,
                listen_addr,
                advertise_url,
                host_id,
                join_secret,
                module_public_key,
                domain,
                options: snapshot_options(snapshot_every_txs, snapshot_every_log_mib),
            })
        }
        Command::Start {
            config: _,
            data_dir,
            listen_addr,
            domain,
            dev,
            log_format,
            snapshot_every_txs,
            snapshot_every_log_mib,
            copies,
            invite_only,
            operator,
        } => {
            init_logs(log_format);
            let options = snapshot_options(snapshot_every_txs, snapshot_every_log_mib);
            let signup = if invite_only {
                control_plane::SignupMode::InviteOnly
            } else {
                control_plane::SignupMode::Open
            };
            start(
                &data_dir,
                &listen_addr,
                &domain,
                dev,
                options,
                copies,
                (signup, &operator),
            )
        }
        Command::Dev(cmd) => {
            let code = orrery_cli::main(cmd);
            if code != std::process::ExitCode::SUCCESS {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn start(
    data_dir: &Path,
    listen_addr: &str,
    domain: &str,
    dev: bool,
    options: DbOptions,
    copies: CopyArgs,
    (signup, operator): (control_plane::SignupMode, &OperatorArgs),
) -> anyhow::Result<()> {
    if dev {
        refuse_dev_off_loopback(listen_addr)?;
    }
    let databases_dir = cache_dir(data_dir)?;
    let stop_rx = stop_signal()?;

    // Directories that are not registry databases (not named by a database
    // identity) are bare storage: recovered and kept durable, not served.
    let bare = open_bare_storage(&databases_dir, &options)?;
    // Compiled modules are kept under the data directory, so a restart
    // loads each module's artifact instead of compiling it again.
    let module_runtime = orrery_module::Runtime::with_config(orrery_module::RuntimeConfig {
        artifact_dir: Some(data_dir.join("artifacts")),
        ..orrery_module::RuntimeConfig::default()
    })
    .context("start the module runtime")?;
    let host = Arc::new(Host::new(module_runtime, HostConfig::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("api")
        .build()
        .context("start the async runtime")?;
    // The control plane, embedded: accounts, tokens and databases in SQLite
    // under the data directory, module artifacts and their signed manifests
    // in a folder object store (the same code a separate control plane runs
    // over Postgres and S3).
    let objects = data_dir.join("objects");
    let modules = orrery_objstore::ModuleStore::open(&orrery_objstore::ObjectStoreUrl::File {
        dir: std::path::absolute(&objects).context("resolve the object store folder")?,
    })
    .context("open the object store")?;
    let signing_key =
        signing::load_or_create_key(&data_dir.join("keys").join("module-signing.key"))?;
    let verifying_key = signing_key.verifying_key();
    let metadata = format!("sqlite://{}", data_dir.join("control-plane.db").display());
    let plane = runtime
        .block_on(control_plane::Store::connect(&metadata))
        .map(|store| {
            control_plane::ControlPlane::new(
                store,
                control_plane::Config {
                    signup,
                    ..control_plane::Config::default()
                },
            )
            .with_module_signing(control_plane::ModuleSigning::new(
                modules.clone(),
                signing_key,
                Arc::new(signing::RuntimeValidator::Shared(host.clone())),
            ))
        })
        .context("open the control plane's metadata store")?;
    runtime.block_on(bootstrap_operator(&plane, operator))?;
    let plane = Arc::new(plane);
    // Every module runs only once its signed manifest verifies.
    let verifier = signing::ObjectStoreVerifier {
        store: modules,
        key: verifying_key,
        runtime: runtime.handle().clone(),
    };
    // Every database is copied to the object store and restored from it
    // when the cache lacks it.
    let replica = Arc::new(replica::ObjectStoreReplica::open(
        &orrery_objstore::ObjectStoreUrl::File {
            dir: std::path::absolute(&objects).context("resolve the object store folder")?,
        },
        runtime.handle().clone(),
        None,
        copies.durability,
        copies.retention_days,
    )?);
    let registry = Arc::new(
        Registry::open_replicated(
            &databases_dir,
            host,
            options,
            Some(Arc::new(verifier)),
            Some(replica.clone()),
        )
        .context("open the databases of the data directory")?,
    );
    let keys = orrery_edge::auth::Keys::load_or_create(&data_dir.join("keys"))
        .context("load or create the token signing key")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen_addr))
        .with_context(|| format!("listen on {listen_addr}"))?;
    let local = listener.local_addr().context("read the listen address")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let embedded = Arc::new(accounts::Embedded {
        plane: plane.clone(),
        open_publishing: dev,
    });
    let state = Arc::new(orrery_edge::ApiState {
        keys,
        registry: registry.clone(),
        ws: Default::default(),
        tenant_domain: Some(domain.to_owned()),
        access: orrery_edge::access::Access {
            authenticator: Some(embedded.clone()),
            open_publishing: dev,
            signer: Some(embedded),
        },
        backups: Some(replica.clone()),
    });
    let control_api = control_api::router(Arc::new(control_api::ApiState {
        control_plane: plane.clone(),
        config: control_api::ApiConfig { behind_tls: false },
        hosts: Some(Arc::new(accounts::LocalHosts {
            plane: plane.clone(),
            registry: registry.clone(),
            backups: replica.clone(),
        })),
    }));
    let server = runtime.spawn(orrery_edge::serve_with(
        listener,
        state,
        control_api,
        async move {
            let _ = shutdown_rx.await;
        },
    ));
    let databases = registry.all().len() + bare.len();
    tracing::info!(data_dir = %data_dir.display(), databases, "orrery started; listening on http://{local}; SIGTERM or Ctrl-C stops");

    serve_until_stopped(
        stop_rx,
        shutdown_tx,
        runtime,
        server,
        &registry,
        &bare,
        Some(&replica),
    )
}

/// `<data-dir>/cache`, the local copy of the databases (created if missing).
/// A data directory from before the object store keeps its databases in
/// `databases/`; that folder becomes the cache.
fn cache_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let cache = data_dir.join("cache");
    let legacy = data_dir.join("databases");
    if !cache.exists() && legacy.is_dir() {
        std::fs::rename(&legacy, &cache)
            .with_context(|| format!("move {} to {}", legacy.display(), cache.display()))?;
        tracing::info!(cache = %cache.display(), "the databases folder is now the cache folder");
    }
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("create data directory {}", cache.display()))?;
    Ok(cache)
}

/// Waits for SIGTERM or Ctrl-C, then stops a host side cleanly: no new
/// connections, requests in flight finished (30 s at most), every commit
/// log durable, and a snapshot of every database with new transactions.
pub(crate) fn serve_until_stopped(
    stop_rx: mpsc::Receiver<()>,
    shutdown_tx: tokio::sync::oneshot::Sender<()>,
    runtime: tokio::runtime::Runtime,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    registry: &Registry,
    bare: &[(String, Database)],
    replica: Option<&replica::ObjectStoreReplica>,
) -> anyhow::Result<()> {
    stop_rx.recv().context("wait for a stop signal")?;
    tracing::info!("stopping: no new connections; finishing requests in flight");
    let _ = shutdown_tx.send(());
    match runtime
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(30), server).await })
    {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the client API stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the client API task failed"),
        Err(_) => {
            tracing::warn!("requests still running after 30 s (log followers?); stopping anyway")
        }
    }
    tracing::info!("stopping: making committed transactions durable");
    registry.flush_all().context("flush the databases")?;
    for (name, db) in bare {
        db.flush()
            .with_context(|| format!("flush database `{name}`"))?;
    }
    // Everything is durable now; a snapshot only shortens the next start,
    // so a failure is logged (by `snapshot_all`) and the stop stays clean.
    tracing::info!("stopping: snapshotting databases with new transactions");
    if registry.snapshot_all().is_err() {
        tracing::warn!("some snapshots failed; the next start replays their logs");
    }
    for (name, db) in bare {
        if let Err(e) = db.snapshot_if_behind() {
            tracing::warn!(database = %name, error = %e, "snapshot at shutdown failed");
        }
    }
    if let Some(replica) = replica {
        tracing::info!(
            "stopping: shipping the last transactions and snapshots to the object store"
        );
        runtime.block_on(replica.shutdown());
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let databases = registry.all().len() + bare.len();
    tracing::info!(databases, "stopped cleanly");
    Ok(())
}

/// A channel that receives once on SIGTERM or Ctrl-C.
pub(crate) fn stop_signal() -> anyhow::Result<mpsc::Receiver<()>> {
    let (stop_tx, stop_rx) = mpsc::sync_channel(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .context("install the SIGTERM/Ctrl-C handler")?;
    Ok(stop_rx)
}

/// Opens (recovers) every directory under `databases_dir` whose name is not
/// a database identity: storage written without the registry.
pub(crate) fn open_bare_storage(
    databases_dir: &Path,
    options: &DbOptions,
) -> anyhow::Result<Vec<(String, Database)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(databases_dir)
        .with_context(|| format!("list {}", databases_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    paths.sort();
    let mut open = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Registry databases, and dot names (a restore under way).
        if name.starts_with('.')
            || (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            continue;
        }
        let started = Instant::now();
        let storage =
            DbStorage::dir(&path).with_context(|| format!("open storage of database `{name}`"))?;
        let (db, report) = Database::open(storage, options.clone())
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
    Ok(open)
}

/// `--dev` opens publishing to anyone who reaches the server: only on a
/// loopback address, and never quietly.
pub(crate) fn refuse_dev_off_loopback(listen_addr: &str) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = listen_addr
        .to_socket_addrs()
        .with_context(|| format!("resolve the listen address {listen_addr}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "--dev opens publishing to anyone who can reach the server, so it needs a loopback \
             listen address (127.0.0.1 or ::1), not {listen_addr}"
        );
    }
    tracing::warn!(
        "DEVELOPMENT MODE (--dev): anyone who reaches {listen_addr} may publish databases with a \
         minted identity; never use this for anything but local development"
    );
    Ok(())
}
