//! The developer commands of `orrery` (everything but `start`): servers and
//! login, publish, call, sql, logs, describe, list, rename, delete, and the
//! account commands. Each is a thin client of the HTTP API a server speaks
//! (client-protocol §2, and the control-plane API under `/api/v1`), with
//! the argument shapes of the stock `spacetime` CLI where it has the same
//! command, so habits carry over.
//!
//! Owns: the [`Cmd`] tree, talking to a server ([`Remote`], the one place
//! that picks the bearer: `--token`, else `ORRERY_TOKEN`, else the stored
//! credential), confirmations, and turning failures into one line plus a
//! hint ([`main`] prints it and exits with 1). Does not own: the config file
//! (`config`), the account commands (`account`: signup, login with a
//! password or a token, logout, API tokens, databases), result rendering
//! (`output`), the interactive SQL prompt (`repl`), colours and the error
//! line's shape (`style`), subscriptions (`subscribe`), describing a module
//! (`describe`) or code generation (`generate`).

// A CLI's output is its stdout and stderr, not logs.
#![allow(clippy::disallowed_macros)]
// `ureq::Error` is large; it never outlives one request here.
#![allow(clippy::result_large_err)]

mod account;
pub(crate) mod config;
mod describe;
mod generate;
pub(crate) mod output;
mod repl;
pub(crate) mod style;
mod subscribe;

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use config::Config;
use output::{Format, ResultSet};

pub use account::{BackupCmd, DbCmd, Scope, TokenCmd};

/// The developer commands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Manage the servers this CLI talks to.
    #[command(subcommand)]
    Server(ServerCmd),
    /// Create an account on a server and log in to it.
    ///
    /// The password is asked for twice on the terminal (not shown), or read
    /// as the first line of stdin with --password-stdin. The session is kept
    /// in the CLI's config (readable by you only) for later commands.
    Signup {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// An operator's invitation (`orri_…`), on a server where sign-up is
        /// by invitation only.
        #[arg(long)]
        invite: Option<String>,
        /// Server name (see `orrery server list`) or URL; the default server
        /// otherwise.
        #[arg(short = 's', long = "server")]
        server: Option<String>,
    },
    /// Log in to a server and keep the credential for later commands.
    ///
    /// With --email: log in to your account (the password is asked for, or
    /// read from stdin with --password-stdin) and keep the session. With
    /// --token: keep an API token (from `orrery token create`) after the
    /// server accepts it. With neither: obtain a fresh identity, as a
    /// `--dev` server hands out to anyone (commands that need one do this by
    /// themselves on first use).
    Login {
        /// Log in to the account with this email.
        #[arg(long, conflicts_with = "token")]
        email: Option<String>,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long, requires = "email")]
        password_stdin: bool,
        /// Keep this API token (or session) instead of logging in with a
        /// password.
        #[arg(long)]
        token: Option<String>,
        /// Server name (see `orrery server list`) or URL; the default server
        /// otherwise.
        #[arg(short = 's', long = "server")]
        server: Option<String>,
    },
    /// End the session on the server and forget the stored credential.
    ///
    /// An API token is only forgotten here: revoke it with `orrery token
    /// revoke`.
    Logout {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Create, list and revoke API tokens (for CI, scripts and apps).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Create and list your account's databases.
    #[command(subcommand)]
    Db(DbCmd),
    /// Take and list backups of a database (snapshots in the object store).
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Bring back DATABASE's state at a backup, a time or right after a
    /// transaction: with --into, as a new database (a branch: same module,
    /// DATABASE untouched); without it, in place, undone by restoring to
    /// the offset the answer names.
    ///
    /// With --from-store URL (operators only), DATABASE is the identity of
    /// a database in another object store (another bucket or deployment),
    /// restored into a new database of your account; without a point, at
    /// its newest.
    #[command(group(clap::ArgGroup::new("point").args(["snapshot", "offset", "at"])))]
    Restore {
        database: String,
        /// Another object store (`s3://bucket/prefix`, `file:///dir`) to
        /// restore DATABASE (its identity there) from; needs --into.
        #[arg(long, requires = "into")]
        from_store: Option<String>,
        /// With --from-store: the email of the account the new database
        /// belongs to (default: yours).
        #[arg(long, requires = "from_store")]
        account: Option<String>,
        /// A backup id from `orrery backup list`.
        #[arg(long)]
        snapshot: Option<String>,
        /// The offset of the last transaction to keep.
        #[arg(long)]
        offset: Option<u64>,
        /// A time (RFC 3339, e.g. 2026-12-06T21:00:00Z): keep every
        /// transaction committed at or before it.
        #[arg(long)]
        at: Option<String>,
        /// The new database's name. Without it, DATABASE itself is
        /// restored in place (after confirmation): every client is
        /// disconnected, and the state it replaces stays restorable.
        #[arg(long)]
        into: Option<String>,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Publish a module: create the database, or update it in place.
    ///
    /// An update migrates the data automatically when it can (adding tables,
    /// columns with defaults, indexes); otherwise the server refuses with the
    /// reasons and nothing changes, unless you pass --clear-data, which
    /// replaces all data.
    Publish {
        /// Database name (letters, digits, `-`, `_`); without one, the
        /// server picks an identity.
        name: Option<String>,
        /// A compiled module (`.wasm`).
        #[arg(long, conflicts_with = "project_path")]
        bin_path: Option<PathBuf>,
        /// A module crate to build with `cargo build --release --target
        /// wasm32-unknown-unknown` first (default: the current directory).
        #[arg(long, short = 'p')]
        project_path: Option<PathBuf>,
        /// When the database exists, delete its data and start again from
        /// the module's `init`: `always` (what the flag alone means),
        /// `on-conflict` (only when the update cannot keep the data), or
        /// `never` (the default: such an update is refused).
        #[arg(
            long = "delete-data",
            short = 'c',
            aliases = ["clear-database", "clear-data"],
            value_enum,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "always",
        )]
        delete_data: Option<DeleteData>,
        /// Accept an update that the server says breaks connected clients
        /// without asking.
        #[arg(long)]
        break_clients: bool,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Call a reducer or procedure; ARGS are JSON values, one per parameter.
    ///
    /// Example: `orrery call chat send_message 1 '"hello"'`.
    Call {
        database: String,
        function: String,
        args: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Run a SQL query (or, as the owner, INSERT/UPDATE/DELETE), or with
    /// --interactive a prompt that runs statements ending in `;`.
    Sql {
        database: String,
        #[arg(required_unless_present = "interactive")]
        query: Option<String>,
        /// Read statements from stdin (`\h` for help, `\q` to quit).
        #[arg(long, short = 'i', conflicts_with = "query")]
        interactive: bool,
        /// How to print the rows.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Subscribe to SQL queries and print each transaction's changes as one
    /// JSON line (`{"table": {"inserts": [...], "deletes": [...]}}`).
    Subscribe {
        database: String,
        /// Subscription queries (`SELECT * FROM t [WHERE …]`, joins on
        /// indexed columns).
        #[arg(required = true)]
        queries: Vec<String>,
        /// Stop after this many transactions.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long, short = 't')]
        duration: Option<f64>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a database's module logs (the owner's only).
    Logs {
        database: String,
        /// How many of the latest lines to print first.
        #[arg(short = 'n', long = "num-lines")]
        num_lines: Option<usize>,
        /// Keep printing new lines as they come.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only lines at this level or more severe.
        #[arg(long, value_enum)]
        level: Option<Level>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a database's tables, reducers and views.
    Describe {
        database: String,
        /// `table`, `reducer`, `procedure` or `view`, to show one in detail.
        #[arg(requires = "name", value_parser = ["table", "reducer", "procedure", "view"])]
        kind: Option<String>,
        /// Its name.
        name: Option<String>,
        /// Print the module definition as the server returns it.
        #[arg(long, conflicts_with = "kind")]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the databases your identity owns on a server.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Give a database a new name (the old one stops resolving).
    Rename {
        database: String,
        /// The new name.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Write client bindings for a module: TypeScript for the npm
    /// `spacetimedb` SDK.
    ///
    /// Reads the module from a compiled `.wasm` (--bin-path), a module crate
    /// it builds first (--project-path, default: the current directory), or a
    /// running database's schema (--database). Writes `index.ts` (import
    /// `DbConnection`, row types and `tables` from it) and `types.ts`.
    ///
    /// Example: `orrery generate -l typescript -o app/src/module_bindings -p .`
    Generate {
        /// The language of the bindings.
        #[arg(long, short = 'l', value_enum)]
        lang: Lang,
        /// The directory to write the files into (created if missing).
        #[arg(long, short = 'o')]
        out_dir: PathBuf,
        /// A compiled module (`.wasm`).
        #[arg(long, short = 'b', conflicts_with_all = ["project_path", "database"])]
        bin_path: Option<PathBuf>,
        /// A module crate to build first.
        #[arg(long, short = 'p', conflicts_with = "database")]
        project_path: Option<PathBuf>,
        /// A database whose module to read, on the server of --server.
        #[arg(long, short = 'd')]
        database: Option<String>,
        /// Also bind private tables (only the owner can read them).
        #[arg(long)]
        include_private: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a module's definition as SATS-JSON (`{"V10": {…}}`).
    ///
    /// The stock `spacetime generate` runs `$SPACETIMEDB_SCHEMA_EXTRACTOR
    /// extract-schema MODULE.wasm` to read a module; point that variable at
    /// this binary to generate bindings without SpacetimeDB's server.
    ExtractSchema {
        /// The compiled module.
        module: PathBuf,
    },
    /// Delete a database and all its data.
    Delete {
        database: String,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Subcommand)]
pub enum ServerCmd {
    /// Remember a server under a name.
    Add {
        name: String,
        /// Its base URL, e.g. http://127.0.0.1:3000.
        url: String,
        /// Make it the default server.
        #[arg(long, short = 'd')]
        default: bool,
    },
    /// List the servers this CLI knows (the default is marked with *).
    List,
    /// Make a known server the default.
    Default { name: String },
}

#[derive(clap::Args)]
pub struct ServerArg {
    /// Server name (see `orrery server list`) or URL; the default server
    /// otherwise.
    #[arg(short = 's', long = "server")]
    server: Option<String>,
    /// The credential for this command only (an API token from `orrery token
    /// create`, or a session), instead of the one stored by `orrery login`.
    #[arg(
        long,
        env = "ORRERY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

/// When `publish` deletes the data of an existing database (the stock
/// CLI's `--delete-data[=MODE]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeleteData {
    /// Always: the update replaces all data.
    Always,
    /// Only when the update cannot keep the data (a manual migration).
    OnConflict,
    /// Never: an update that cannot keep the data is refused.
    Never,
}

#[derive(clap::Args)]
pub struct YesArg {
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
}

/// Languages `generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// For the npm `spacetimedb` SDK.
    #[value(alias = "ts")]
    Typescript,
}

/// Log levels, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Panic,
}

impl Level {
    fn parse(name: &str) -> Option<Level> {
        match name.to_ascii_lowercase().as_str() {
            "trace" => Some(Level::Trace),
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            "panic" | "fatal" => Some(Level::Panic),
            _ => None,
        }
    }
}

/// Runs one command; a failure is printed as one `error:` line (with a hint
/// and colours when stderr is a terminal) and answered with exit code 1.
pub fn main(cmd: Cmd) -> std::process::ExitCode {
    match run(cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let colour = style::enabled(style::Stream::Stderr);
            eprintln!("{}", style::error_line(&e, colour));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command.
fn run(cmd: Cmd) -> anyhow::Result<()> {
    let dir = config::dir()?;
    let mut config = Config::load(&dir)?;
    match cmd {
        Cmd::Server(cmd) => server_cmd(cmd, &mut config, &dir),
        Cmd::Signup {
            email,
            password_stdin,
            invite,
            server,
        } => account::signup(
            &mut config,
            &dir,
            server.as_deref(),
            &email,
            password_stdin,
            invite,
        ),
        Cmd::Login {
            email: Some(email),
            password_stdin,
            server,
            ..
        } => account::login(&mut config, &dir, server.as_deref(), &email, password_stdin),
        Cmd::Login {
            token: Some(token),
            server,
            ..
        } => account::login_with_token(&mut config, &dir, server.as_deref(), &token),
        Cmd::Login { server, .. } => {
            let mut remote = Remote::at(&config, server.as_deref(), None)?;
            let identity = remote.login()?;
            remote.remember(&mut config, &dir)?;
            println!("Logged in to {} as {identity}", remote.url);
            Ok(())
        }
        Cmd::Logout { server } => account::logout(&mut config, &dir, &server),
        Cmd::Token(cmd) => account::token(cmd, &config),
        Cmd::Db(cmd) => account::db(cmd, &config),
        Cmd::Backup(cmd) => account::backup(cmd, &mut config, &dir),
        Cmd::Restore {
            database,
            snapshot,
            offset,
            at,
            into,
            from_store,
            account,
            yes,
            server,
        } => {
            if let (Some(store), Some(into)) = (&from_store, &into) {
                return account::import(
                    (store, &database, account.as_deref()),
                    (snapshot, offset, at),
                    into,
                    &server,
                    &config,
                );
            }
            if into.is_none() {
                confirm(
                    &format!(
                        "This replaces every row of {database} with its state at that point and disconnects its clients (the current state stays restorable)."
                    ),
                    yes.yes,
                )?;
            }
            account::restore(
                &database,
                (snapshot, offset, at),
                into.as_deref(),
                &server,
                &mut config,
                &dir,
            )
        }
        Cmd::Publish {
            name,
            bin_path,
            project_path,
            delete_data,
            break_clients,
            yes,
            server,
        } => {
            if let Some(name) = &name {
                check_plain_name(name)?;
            }
            let delete_data = delete_data.unwrap_or(DeleteData::Never);
            if delete_data != DeleteData::Never && name.is_none() {
                bail!("--delete-data needs the name of the database whose data it deletes");
            }
            let wasm = match bin_path {
                Some(path) => path,
                None => build_project(&project_path.unwrap_or_else(|| PathBuf::from(".")))?,
            };
            let bytes = std::fs::read(&wasm)
                .with_context(|| format!("cannot read the module {}", wasm.display()))?;
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let mut query = vec!["host_type=Wasm".to_owned()];
            if let Some(name) = &name {
                let confirm_clear = |query: &mut Vec<String>| -> anyhow::Result<()> {
                    confirm(
                        &format!("Delete all data of {name} and start again from `init`?"),
                        yes.yes,
                    )?;
                    query.push("clear=true".to_owned());
                    Ok(())
                };
                if delete_data == DeleteData::Always {
                    confirm_clear(&mut query)?;
                } else {
                    eprintln!("Checking {name} on {} …", remote.url);
                    match remote.plan(name, &bytes)? {
                        // A new database: nothing to migrate.
                        None => {}
                        Some(plan) => {
                            if plan.major_version_upgrade {
                                confirm_major_version_upgrade(name, yes.yes)?;
                            }
                            match plan.migration {
                                Migration::Manual { reasons } => {
                                    if delete_data == DeleteData::Never {
                                        bail!(
                                            "this update of {name} cannot keep the data: {}; nothing changed (publish with --delete-data, alias --clear-data, to replace all data; --delete-data=on-conflict replaces it only when an update needs that)",
                                            reasons.join("; ")
                                        );
                                    }
                                    eprintln!(
                                        "This update of {name} cannot keep the data: {}",
                                        reasons.join("; ")
                                    );
                                    confirm_clear(&mut query)?;
                                }
                                Migration::Auto {
                                    text,
                                    break_clients: breaks,
                                    token,
                                } => {
                                    if let Some(text) = &text {
                                        let heading = style::bold(
                                            style::enabled(style::Stream::Stderr),
                                            &format!("Migration plan for {name}:"),
                                        );
                                        eprintln!("{heading}\n{text}");
                                    }
                                    if breaks {
                                        confirm_or(
                                            &format!("This update of {name} disconnects every client connected to it. Go ahead?"),
                                            break_clients || yes.yes,
                                            "--break-clients or --yes",
                                        )?;
                                    }
                                    // As the stock CLI: every automatic
                                    // update carries its token.
                                    query.push(format!("token={}", segment(&token)));
                                    query.push("policy=BreakClients".to_owned());
                                }
                            }
                        }
                    }
                }
            }
            let path = match &name {
                Some(name) => format!("/v1/database/{}", segment(name)),
                None => "/v1/database".to_owned(),
            };
            let url = format!("{}{path}?{}", remote.url, query.join("&"));
            eprintln!(
                "Uploading {} KiB to {} …",
                bytes.len().div_ceil(1024),
                remote.url
            );
            let request = match name {
                Some(_) => remote.agent.put(&url),
                None => remote.agent.post(&url),
            };
            let reply = remote.send_bytes(request, &bytes)?;
            let success = &reply["Success"];
            let identity = success["database_identity"].as_str().unwrap_or("?");
            let op = success["op"].as_str().unwrap_or("published");
            match success["domain"].as_str() {
                Some(domain) => println!("{op} database {domain} ({identity})"),
                None => println!("{op} database {identity}"),
            }
            Ok(())
        }
        Cmd::Call {
            database,
            function,
            args,
            server,
        } => {
            let args: Vec<Value> = args
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    serde_json::from_str(a).map_err(|e| {
                        anyhow!(
                            "argument {} (`{a}`) is not JSON: {e}; quote strings as '\"text\"'",
                            i + 1
                        )
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let url = format!(
                "{}/v1/database/{}/call/{}",
                remote.url,
                segment(&database),
                segment(&function)
            );
            let body = serde_json::to_string(&args).expect("JSON renders");
            let request = remote
                .agent
                .post(&url)
                .set("Content-Type", "application/json");
            let reply = remote.send_text(request, &body)?;
            if !reply.trim().is_empty() {
                println!("{}", reply.trim_end());
            }
            Ok(())
        }
        Cmd::Sql {
            database,
            query,
            interactive,
            format,
            server,
        } => {
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let query = match query {
                Some(query) if !interactive => query,
                _ => return repl::run(&remote, &database, format),
            };
            let colour = style::enabled(style::Stream::Stdout);
            let mut out = std::io::stdout().lock();
            for result in run_sql(&remote, &database, &query)? {
                out.write_all(result.render(format, colour).as_bytes())?;
            }
            Ok(())
        }
        Cmd::Logs {
            database,
            num_lines,
            follow,
            level,
            server,
        } => {
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let mut url = format!(
                "{}/v1/database/{}/logs?follow={follow}",
                remote.url,
                segment(&database)
            );
            if let Some(n) = num_lines {
                url.push_str(&format!("&num_lines={n}"));
            }
            let response = remote.call(remote.agent.get(&url), |r| r.call())?;
            let mut out = std::io::stdout().lock();
            for line in BufReader::new(response.into_reader()).lines() {
                let line = line.context("the log stream broke off")?;
                if let Some(text) = log_line(&line, level) {
                    writeln!(out, "{text}")?;
                    out.flush()?;
                }
            }
            Ok(())
        }
        Cmd::Subscribe {
            database,
            queries,
            count,
            duration,
            server,
        } => {
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let schema = fetch_schema(&remote, &database)?;
            let duration = match duration {
                Some(s) if !(s.is_finite() && s >= 0.0) => {
                    bail!("--duration must be a number of seconds, not {s}")
                }
                Some(s) => Some(Duration::from_secs_f64(s)),
                None => None,
            };
            let token = remote.token.clone().unwrap_or_default();
            let until = subscribe::Until { count, duration };
            subscribe::run(&remote.url, &database, &token, schema, queries, until)
        }
        Cmd::Describe {
            database,
            kind,
            name,
            json,
            server,
        } => {
            let remote = Remote::new(&config, &server)?;
            let schema = fetch_schema(&remote, &database)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&schema)?);
                return Ok(());
            }
            let module = generate::Module::from_raw(generate::from_schema_json(schema)?)?;
            match (kind, name) {
                (Some(kind), Some(name)) => print!("{}", describe::entity(&module, &kind, &name)?),
                _ => print!("{}", describe::overview(&database, &module)),
            }
            Ok(())
        }
        Cmd::List { server } => {
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let identity = remote.identity()?;
            let url = format!("{}/v1/identity/{identity}/databases", remote.url);
            let reply: Value = remote.send_json(remote.agent.get(&url), None)?;
            let ids = reply["identities"].as_array().cloned().unwrap_or_default();
            if ids.is_empty() {
                println!("No databases owned by {identity} on {}", remote.url);
            }
            for id in ids {
                let id = id.as_str().unwrap_or_default().to_owned();
                let names_url = format!("{}/v1/database/{id}/names", remote.url);
                let names: Value = remote.send_json(remote.agent.get(&names_url), None)?;
                let names: Vec<&str> = names["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!("{id}  {}", names.join(", "));
            }
            Ok(())
        }
        Cmd::Generate {
            lang: Lang::Typescript,
            out_dir,
            bin_path,
            project_path,
            database,
            include_private,
            server,
        } => {
            let (raw, source) = match (bin_path, database) {
                (Some(path), _) => (generate::describe_wasm(&path)?, path.display().to_string()),
                (None, Some(database)) => {
                    let remote = Remote::new(&config, &server)?;
                    (
                        generate::from_schema_json(fetch_schema(&remote, &database)?)?,
                        format!("database {database} on {}", remote.url),
                    )
                }
                (None, None) => {
                    let wasm = build_project(&project_path.unwrap_or_else(|| PathBuf::from(".")))?;
                    (generate::describe_wasm(&wasm)?, wasm.display().to_string())
                }
            };
            let module = generate::Module::from_raw(raw)
                .with_context(|| format!("cannot generate bindings for {source}"))?;
            let options = generate::typescript::Options { include_private };
            let files = generate::typescript::generate(&module, options)?;
            for path in generate::write_files(&out_dir, &files)? {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Cmd::ExtractSchema { module } => {
            let raw = generate::describe_wasm(&module)?;
            let json = serde_json::to_string(
                &spacetimedb_lib::ser::serde::SerializeWrapper::from_ref(&raw),
            )?;
            println!("{json}");
            Ok(())
        }
        Cmd::Rename {
            database,
            to,
            server,
        } => {
            let remote = Remote::authed(&mut config, &dir, &server)?;
            let url = format!("{}/v1/database/{}/names", remote.url, segment(&database));
            remote.send_json(remote.agent.put(&url), Some(json!([to])))?;
            println!("Renamed {database} to {to}");
            Ok(())
        }
        Cmd::Delete {
            database,
            yes,
            server,
        } => {
            let remote = Remote::authed(&mut config, &dir, &server)?;
            confirm(
                &format!("Delete database {database} and all its data?"),
                yes.yes,
            )?;
            let url = format!("{}/v1/database/{}", remote.url, segment(&database));
            match remote.send(remote.agent.delete(&url), |r| r.call()) {
                Ok(_) => {}
                // The stock two-step flow for a database with children: the
                // server names them all and wants the answer's token back.
                Err(ureq::Error::Status(428, response)) => {
                    let body = response.into_string().unwrap_or_default();
                    let (tree, token) = delete_confirmation(&body)?;
                    eprint!("{tree}");
                    confirm("Delete all the databases above?", yes.yes)?;
                    let url = format!("{url}?token={}", segment(&token));
                    remote.call(remote.agent.delete(&url), |r| r.call())?;
                }
                Err(e) => return Err(remote.failure(e)),
            }
            println!("Deleted database {database}");
            Ok(())
        }
    }
}

fn server_cmd(cmd: ServerCmd, config: &mut Config, dir: &Path) -> anyhow::Result<()> {
    match cmd {
        ServerCmd::Add { name, url, default } => {
            let url = url.trim_end_matches('/').to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("`{url}` is not an http:// or https:// URL");
            }
            if name.contains("://") {
                bail!("a server name cannot be a URL; try `orrery server add local {name}`");
            }
            let entry = config::Server {
                url: url.clone(),
                ..config::Server::default()
            };
            config.servers.insert(name.clone(), entry);
            if default {
                config.default_server = name.clone();
            }
            config.save(dir)?;
            println!("Added server {name} at {url}");
            Ok(())
        }
        ServerCmd::List => {
            for (name, server) in &config.servers {
                let mark = if *name == config.default_server {
                    "*"
                } else {
                    " "
                };
                let who = server
                    .email
                    .as_deref()
                    .or(server.identity.as_deref())
                    .unwrap_or("(not logged in)");
                println!("{mark} {name}  {}  {who}", server.url);
            }
            Ok(())
        }
        ServerCmd::Default { name } => {
            if !config.servers.contains_key(&name) {
                bail!("no server named `{name}`; add it with `orrery server add {name} URL`");
            }
            config.default_server = name.clone();
            config.save(dir)?;
            println!("The default server is now {name}");
            Ok(())
        }
    }
}

/// One server, its token, and an HTTP agent.
pub(crate) struct Remote {
    /// The config entry's name, or the URL for an unconfigured one.
    pub(crate) name: String,
    pub(crate) url: String,
    /// The bearer every request carries.
    pub(crate) token: Option<String>,
    /// The identity of `token`, hex, when known without asking.
    pub(crate) identity: Option<String>,
    /// `token` came from `--token` or `ORRERY_TOKEN`, not the config.
    pub(crate) given: bool,
    pub(crate) agent: ureq::Agent,
}

impl Remote {
    fn new(config: &Config, arg: &ServerArg) -> anyhow::Result<Remote> {
        Remote::at(config, arg.server.as_deref(), arg.token.as_deref())
    }

    /// The server `server` (the default one if `None`) with its bearer: this
    /// is the one place that picks it. `token` (`--token`, which clap takes
    /// from `ORRERY_TOKEN` when the flag is absent) beats the credential the
    /// config stores for the server.
    pub(crate) fn at(
        config: &Config,
        server: Option<&str>,
        token: Option<&str>,
    ) -> anyhow::Result<Remote> {
        let (name, server) = config.server(server)?;
        let given = token.map(str::trim).filter(|t| !t.is_empty());
        let (token, identity) = match given {
            // Whose token it is is not known here; `identity()` asks.
            Some(token) => (Some(token.to_owned()), None),
            None => (server.token, server.identity),
        };
        Ok(Remote {
            name,
            url: server.url.trim_end_matches('/').to_owned(),
            token,
            identity,
            given: given.is_some(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .build(),
        })
    }

    /// A remote with a token: the given or stored one, else a freshly minted
    /// one, saved for next time.
    pub(crate) fn authed(
        config: &mut Config,
        dir: &Path,
        arg: &ServerArg,
    ) -> anyhow::Result<Remote> {
        let mut remote = Remote::new(config, arg)?;
        if remote.token.is_none() {
            remote.login()?;
            remote.remember(config, dir)?;
        }
        Ok(remote)
    }

    /// Whether the bearer is an account credential (a session or an API
    /// token) rather than an app identity's token.
    pub(crate) fn has_account_credential(&self) -> bool {
        self.token
            .as_deref()
            .is_some_and(orrery_api::access::is_account_credential)
    }

    /// The identity the bearer acts as: the stored one, or for an account
    /// credential given on the command line, the account's (asked of the
    /// server).
    fn identity(&self) -> anyhow::Result<String> {
        if let Some(identity) = &self.identity {
            return Ok(identity.clone());
        }
        if self.has_account_credential() {
            let account = self.api("GET", "/account", None)?;
            if let Some(identity) = account["identity"].as_str() {
                return Ok(identity.to_owned());
            }
        }
        bail!("no identity for {}; run `orrery login`", self.url)
    }

    /// `POST /v1/identity`: a new identity and its token.
    fn login(&mut self) -> anyhow::Result<String> {
        let url = format!("{}/v1/identity", self.url);
        let saved = self.token.take();
        let reply = self.send_json(self.agent.post(&url), None);
        self.token = saved;
        let reply = reply?;
        let (Some(identity), Some(token)) = (reply["identity"].as_str(), reply["token"].as_str())
        else {
            bail!(
                "{} answered the login without an identity and token",
                self.url
            );
        };
        self.identity = Some(identity.to_owned());
        self.token = Some(token.to_owned());
        Ok(identity.to_owned())
    }

    /// `pre_publish` for an update of `name`: what the server says the
    /// update would do, or `None` for a database that does not exist yet.
    fn plan(&self, name: &str, wasm: &[u8]) -> anyhow::Result<Option<Plan>> {
        let url = format!(
            "{}/v1/database/{}/pre_publish?host_type=Wasm",
            self.url,
            segment(name)
        );
        let reply = match self.send(self.agent.post(&url), |r| r.send_bytes(wasm)) {
            Ok(response) => json_of(response)?,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(e) => return Err(self.failure(e)),
        };
        Plan::of(&reply).map(Some)
    }

    /// Stores this server's token in the config (under its name, or under
    /// its URL if it was given as one).
    fn remember(&self, config: &mut Config, dir: &Path) -> anyhow::Result<()> {
        self.remember_as(config, dir, None)
    }

    /// [`Remote::remember`], with the account's `email` for an account
    /// credential.
    pub(crate) fn remember_as(
        &self,
        config: &mut Config,
        dir: &Path,
        email: Option<&str>,
    ) -> anyhow::Result<()> {
        let entry = config
            .servers
            .entry(self.name.clone())
            .or_insert_with(|| config::Server {
                url: self.url.clone(),
                ..config::Server::default()
            });
        entry.token = self.token.clone();
        entry.identity = self.identity.clone();
        entry.email = email.map(str::to_owned);
        config.save(dir)
    }

    /// `method` on the control-plane API's `path` (under `/api/v1`) with
    /// the bearer and a JSON body; the JSON answer (`null` for none), or
    /// the API's error as one line with a hint.
    pub(crate) fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let response = self
            .api_response(method, path, body)
            .map_err(|e| self.api_failure(e))?;
        let text = response
            .into_string()
            .context("the server's reply is not text")?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("the server's reply is not JSON")
    }

    /// [`Remote::api`] without the error mapping, for callers that treat
    /// some statuses themselves.
    pub(crate) fn api_response(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ureq::Response, ureq::Error> {
        let request = self
            .agent
            .request(method, &format!("{}/api/v1{path}", self.url));
        self.send(request, |r| match body {
            Some(body) => r
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => r.call(),
        })
    }

    /// A failed control-plane API request as one line.
    pub(crate) fn api_failure(&self, error: ureq::Error) -> anyhow::Error {
        self.failure_on(error, Surface::Api)
    }

    /// Sends `request` with the token, if any, through `send`.
    fn send(
        &self,
        request: ureq::Request,
        send: impl FnOnce(ureq::Request) -> Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, ureq::Error> {
        match &self.token {
            Some(token) => send(request.set("Authorization", &format!("Bearer {token}"))),
            None => send(request),
        }
    }

    /// A failed request of the client API as one line: the server's
    /// message and a hint.
    fn failure(&self, error: ureq::Error) -> anyhow::Error {
        self.failure_on(error, Surface::Client)
    }

    fn failure_on(&self, error: ureq::Error, surface: Surface) -> anyhow::Error {
        match error {
            ureq::Error::Status(status, response) => {
                let retry_after = response.header("Retry-After").map(str::to_owned);
                let body = response.into_string().unwrap_or_default();
                let context = Failed {
                    server: &self.name,
                    surface,
                    account: self.token.is_none() || self.has_account_credential(),
                    given: self.given,
                    retry_after: retry_after.as_deref(),
                };
                status_error(status, body.trim(), &context)
            }
            ureq::Error::Transport(e) => anyhow!(
                "cannot reach {}: {e}; is `orrery start` running there? (check `orrery server list`)",
                self.url
            ),
        }
    }

    /// [`Remote::send`]; a non-2xx answer becomes an error with the
    /// server's message.
    fn call(
        &self,
        request: ureq::Request,
        send: impl FnOnce(ureq::Request) -> Result<ureq::Response, ureq::Error>,
    ) -> anyhow::Result<ureq::Response> {
        self.send(request, send).map_err(|e| self.failure(e))
    }

    fn send_text(&self, request: ureq::Request, body: &str) -> anyhow::Result<String> {
        let response = self.call(request, |r| r.send_string(body))?;
        response
            .into_string()
            .context("the server's reply is not text")
    }

    fn send_bytes(&self, request: ureq::Request, body: &[u8]) -> anyhow::Result<Value> {
        json_of(self.call(request, |r| r.send_bytes(body))?)
    }

    pub(crate) fn send_json(
        &self,
        request: ureq::Request,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let response = match body {
            Some(body) => self.call(request, |r| {
                r.set("Content-Type", "application/json")
                    .send_string(&body.to_string())
            })?,
            None => self.call(request, |r| r.call())?,
        };
        let text = response
            .into_string()
            .context("the server's reply is not text")?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("the server's reply is not JSON")
    }
}

fn json_of(response: ureq::Response) -> anyhow::Result<Value> {
    let text = response
        .into_string()
        .context("the server's reply is not text")?;
    serde_json::from_str(&text).context("the server's reply is not JSON")
}

/// Which of a server's two APIs answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Surface {
    /// The client API (`/v1/…`): databases, calls, SQL, publishing.
    Client,
    /// The control-plane API (`/api/v1/…`): accounts, tokens, databases.
    Api,
}

/// What a failed request's hint depends on.
struct Failed<'a> {
    /// The server's name in the config (or its URL).
    server: &'a str,
    surface: Surface,
    /// The request carried an account credential, or none: a refusal is
    /// solved by logging in to an account, not by minting an identity.
    account: bool,
    /// The credential came from `--token` or `ORRERY_TOKEN`.
    given: bool,
    /// The `Retry-After` header of a 429.
    retry_after: Option<&'a str>,
}

/// The message of an error body: the control-plane API's
/// `{"error":{"code","message"}}`, a JSON string, or plain text.
fn error_message(status: u16, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::String(s)) => s,
        Ok(value) if value["error"]["message"].is_string() => value["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        _ if body.is_empty() => format!("HTTP {status}"),
        _ => body.replace('\n', " "),
    }
}

/// One line for a failed request, with a hint where one helps.
fn status_error(status: u16, body: &str, failed: &Failed) -> anyhow::Error {
    let message = error_message(status, body);
    let server = failed.server;
    let hint = match (status, failed.surface) {
        (401, _) if failed.given => {
            " (from --token or ORRERY_TOKEN; `orrery token create` makes a new one)".to_owned()
        }
        (401, _) if failed.account => {
            format!(" (log in with `orrery login --email EMAIL -s {server}` or pass --token)")
        }
        (401, _) => format!(" (your token is not valid there: run `orrery login -s {server}`)"),
        // The server's message names the scope it needs.
        (403, _) if message.contains("scope") => {
            " (pass a token with that scope; `orrery token create --scope deploy` makes one)"
                .to_owned()
        }
        // The server's message says how to get an account token.
        (403, _) if message.contains("orrery token create") => String::new(),
        (403, Surface::Client) => " (only the database's owner may do this)".to_owned(),
        (404, Surface::Client) => " (check the name with `orrery list`)".to_owned(),
        (429, _) => match failed.retry_after {
            Some(seconds) => format!(" (too many requests: retry in {seconds} s)"),
            None => " (too many requests: retry later)".to_owned(),
        },
        _ => String::new(),
    };
    anyhow!("{message}{hint}")
}

/// A path segment, percent-encoded where needed.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asks on the terminal unless `yes`; refuses when there is no terminal.
fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    confirm_or(question, yes, "--yes")
}

/// [`confirm`], naming `flags` as the way to confirm without a terminal.
fn confirm_or(question: &str, yes: bool, flags: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question} Refusing without a terminal to ask on; pass {flags} to confirm");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled")
    }
}

/// Builds the module crate at `dir` for wasm32 and returns its `.wasm`.
fn build_project(dir: &Path) -> anyhow::Result<PathBuf> {
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml; pass --project-path DIR or --bin-path FILE.wasm",
            dir.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = std::process::Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("cannot run cargo (is Rust installed?)")?;
    if !metadata.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&metadata.stderr).trim()
        );
    }
    let metadata: Value = serde_json::from_slice(&metadata.stdout)?;
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml"))?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().map(PathBuf::from).as_deref() == Some(&manifest))
        .ok_or_else(|| anyhow!("{} is not a package (a workspace root?)", dir.display()))?;
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    eprintln!("Building {name} for wasm32-unknown-unknown …");
    let status = std::process::Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            &name,
        ])
        .current_dir(dir)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building {name} failed (see cargo's output above); is the wasm32-unknown-unknown target installed? `rustup target add wasm32-unknown-unknown`");
    }
    let wasm = target_dir
        .join("wasm32-unknown-unknown")
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.is_file() {
        bail!(
            "the build made no {}; is the crate a `cdylib`?",
            wasm.display()
        );
    }
    Ok(wasm)
}

/// A log record (one NDJSON line) as text, if it passes the level filter.
fn log_line(line: &str, min: Option<Level>) -> Option<String> {
    let record: Value = serde_json::from_str(line).ok()?;
    let level = record["level"].as_str().unwrap_or("info");
    if let (Some(min), Some(level)) = (min, Level::parse(level)) {
        if level < min {
            return None;
        }
    }
    let ts = record["ts"]
        .as_i64()
        .or_else(|| record["timestamp"].as_i64())
        .map(|us| us.to_string())
        .unwrap_or_default();
    let message = record["message"].as_str().unwrap_or_default();
    let function = record["function"].as_str().unwrap_or_default();
    let level = level.to_ascii_uppercase();
    Some(
        format!("{ts} {level:>5} {function}: {message}")
            .trim_start()
            .to_owned(),
    )
}

/// What `pre_publish` said about an update.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The new module is built with the next major version of the
    /// bindings (a 1.x module replaced by a 2.x one).
    major_version_upgrade: bool,
    migration: Migration,
}

#[derive(Debug, PartialEq)]
enum Migration {
    /// The data stays; `token` lets the publish go ahead.
    Auto {
        /// The migration plan, for people.
        text: Option<String>,
        /// The update disconnects every connected client.
        break_clients: bool,
        token: String,
    },
    /// The data cannot stay, for these reasons.
    Manual { reasons: Vec<String> },
}

impl Plan {
    /// Reads a `pre_publish` answer (`{"AutoMigrate": …}` or
    /// `{"ManualMigrate": …}`).
    fn of(reply: &Value) -> anyhow::Result<Plan> {
        if let Some(manual) = reply.get("ManualMigrate") {
            let reason = manual["reason"].as_str().unwrap_or_default();
            return Ok(Plan {
                major_version_upgrade: manual["major_version_upgrade"].as_bool() == Some(true),
                migration: Migration::Manual {
                    reasons: reason
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_owned)
                        .collect(),
                },
            });
        }
        let auto = reply.get("AutoMigrate").ok_or_else(|| {
            anyhow!(
                "the server's pre_publish answer is neither AutoMigrate nor ManualMigrate: {reply}"
            )
        })?;
        let text = auto["migrate_plan"]
            .as_str()
            .map(str::trim_end)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned);
        let token = auto["token"]
            .as_str()
            .ok_or_else(|| anyhow!("the server's pre_publish answer has no token for the update"))?
            .to_owned();
        Ok(Plan {
            major_version_upgrade: auto["major_version_upgrade"].as_bool() == Some(true),
            migration: Migration::Auto {
                text,
                break_clients: auto["break_clients"].as_bool() == Some(true),
                token,
            },
        })
    }
}

/// A module of the next major version over one of the previous (1.x → 2.x)
/// cannot be undone: asks the publisher to type `upgrade`, as the stock CLI
/// does, unless `yes`.
fn confirm_major_version_upgrade(name: &str, yes: bool) -> anyhow::Result<()> {
    let warning = format!(
        "This publish upgrades {name} from a module of the 1.x bindings to one of 2.x, which cannot be reverted."
    );
    if yes {
        eprintln!("{warning}");
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{warning} Refusing without a terminal to ask on; pass --yes to confirm");
    }
    eprint!("{warning}\nType 'upgrade' to accept: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() == "upgrade" {
        Ok(())
    } else {
        bail!("cancelled: the major version upgrade was not accepted")
    }
}

/// Refuses a stock `parent/child` database name: Orrery has no child
/// databases.
fn check_plain_name(name: &str) -> anyhow::Result<()> {
    if name.contains('/') {
        bail!(
            "`{name}` names a child database (parent/child), and Orrery has no child databases; publish under a plain name (letters, digits, `-`, `_`)"
        );
    }
    Ok(())
}

/// A `428` answer to a delete (`{"database_tree": …, "confirmation_token":
/// …}`): the databases it would delete as an indented list, and the token
/// that confirms it.
fn delete_confirmation(body: &str) -> anyhow::Result<(String, String)> {
    let reply: Value = serde_json::from_str(body)
        .map_err(|e| anyhow!("the server asked to confirm the delete, but not in JSON: {e}"))?;
    let token = reply["confirmation_token"].as_str().ok_or_else(|| {
        anyhow!("the server asked to confirm the delete, but sent no confirmation token")
    })?;
    fn tree(node: &Value, depth: usize, out: &mut String) {
        let root = &node["root"];
        let id = root["database_identity"].as_str().unwrap_or("?");
        let names: Vec<&str> = root["database_names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let indent = "  ".repeat(depth + 1);
        if names.is_empty() {
            out.push_str(&format!("{indent}{id}\n"));
        } else {
            out.push_str(&format!("{indent}{} ({id})\n", names.join(", ")));
        }
        for child in node["children"].as_array().into_iter().flatten() {
            tree(child, depth + 1, out);
        }
    }
    let mut out = "This deletes the database and its children:\n".to_owned();
    tree(&reply["database_tree"], 0, &mut out);
    Ok((out, token.to_owned()))
}

/// `POST /sql` with one statement; its results.
fn run_sql(remote: &Remote, database: &str, query: &str) -> anyhow::Result<Vec<ResultSet>> {
    let url = format!("{}/v1/database/{}/sql", remote.url, segment(database));
    let reply = remote.send_text(remote.agent.post(&url), query)?;
    let statements: Value =
        serde_json::from_str(&reply).context("the server's SQL reply is not JSON")?;
    Ok(statements
        .as_array()
        .into_iter()
        .flatten()
        .map(ResultSet::from_server)
        .collect())
}

/// `GET /schema?version=10`: the module definition as JSON.
fn fetch_schema(remote: &Remote, database: &str) -> anyhow::Result<Value> {
    let url = format!(
        "{}/v1/database/{}/schema?version=10",
        remote.url,
        segment(database)
    );
    json_of(remote.call(remote.agent.get(&url), |r| r.call())?)
}

/// The entries of one kind (`"Tables"`, `"Reducers"`, …) of a module
/// definition (schema v10 JSON: `{"sections": [{"Tables": […]}, …]}`).
fn section(schema: &Value, key: &str) -> Vec<Value> {
    schema["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s[key].as_array())
        .flatten()
        .cloned()
        .collect()
}

/// `public` or `private`, from a table's `{"table_access": {"Public": []}}`.
fn table_access(table: &Value) -> String {
    table["table_access"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_filter_by_level_and_show_the_message() {
        let line = r#"{"level":"warn","ts":17,"message":"careful","function":"send"}"#;
        assert_eq!(log_line(line, None).unwrap(), "17  WARN send: careful");
        assert!(log_line(line, Some(Level::Error)).is_none());
        assert!(log_line(line, Some(Level::Warn)).is_some());
        assert!(log_line("not json", None).is_none());
    }

    #[test]
    fn a_delete_confirmation_shows_the_tree_and_keeps_the_token() {
        let body = r#"{
            "database_tree": {
                "root": {"database_identity": "c200aa", "database_names": ["game"]},
                "children": [
                    {"root": {"database_identity": "c200bb", "database_names": ["game-eu", "eu"]},
                     "children": [{"root": {"database_identity": "c200cc", "database_names": []}, "children": []}]},
                    {"root": {"database_identity": "c200dd", "database_names": ["game-us"]}, "children": []}
                ]
            },
            "confirmation_token": "0x1234abcd"
        }"#;
        let (tree, token) = delete_confirmation(body).unwrap();
        assert_eq!(token, "0x1234abcd");
        assert_eq!(
            tree,
            "This deletes the database and its children:\n  game (c200aa)\n    game-eu, eu (c200bb)\n      c200cc\n    game-us (c200dd)\n"
        );
        let e = delete_confirmation(r#"{"database_tree": {}}"#).unwrap_err();
        assert!(e.to_string().contains("no confirmation token"), "{e}");
        assert!(delete_confirmation("Precondition Required").is_err());
    }

    #[test]
    fn pre_publish_answers_become_plans() {
        let plain = json!({"AutoMigrate": {"migrate_plan": "- add table x\n", "break_clients": false, "token": "0xab", "major_version_upgrade": false}});
        assert_eq!(
            Plan::of(&plain).unwrap(),
            Plan {
                major_version_upgrade: false,
                migration: Migration::Auto {
                    text: Some("- add table x".into()),
                    break_clients: false,
                    token: "0xab".into(),
                }
            }
        );
        let breaking = json!({"AutoMigrate": {"migrate_plan": "", "break_clients": true, "token": "0xab", "major_version_upgrade": true}});
        assert_eq!(
            Plan::of(&breaking).unwrap(),
            Plan {
                major_version_upgrade: true,
                migration: Migration::Auto {
                    text: None,
                    break_clients: true,
                    token: "0xab".into(),
                }
            }
        );
        let manual = json!({"ManualMigrate": {"reason": "table a removed\n\ncolumn b changed", "major_version_upgrade": false}});
        assert_eq!(
            Plan::of(&manual).unwrap(),
            Plan {
                major_version_upgrade: false,
                migration: Migration::Manual {
                    reasons: vec!["table a removed".into(), "column b changed".into()]
                }
            }
        );
        let e = Plan::of(&json!({"AutoMigrate": {"break_clients": false}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no token"), "{e}");
        let e = Plan::of(&json!("Success")).unwrap_err().to_string();
        assert!(e.contains("neither AutoMigrate nor ManualMigrate"), "{e}");
    }

    #[test]
    fn child_database_names_are_refused() {
        assert!(check_plain_name("chat-1").is_ok());
        let e = check_plain_name("game/eu").unwrap_err().to_string();
        assert!(
            e.contains("`game/eu`") && e.contains("no child databases"),
            "{e}"
        );
    }

    fn failed(surface: Surface, account: bool, given: bool) -> Failed<'static> {
        Failed {
            server: "prod",
            surface,
            account,
            given,
            retry_after: None,
        }
    }

    #[test]
    fn error_bodies_of_both_apis_become_messages() {
        let api = r#"{"error":{"code":"unauthorized","message":"the API token was revoked"}}"#;
        assert_eq!(error_message(401, api), "the API token was revoked");
        assert_eq!(
            error_message(404, "\"no such database\""),
            "no such database"
        );
        assert_eq!(error_message(400, "bad\nrequest"), "bad request");
        assert_eq!(error_message(502, ""), "HTTP 502");
        // Some other JSON is shown as it is.
        assert_eq!(error_message(500, r#"{"oops":1}"#), r#"{"oops":1}"#);
    }

    #[test]
    fn hints_say_what_to_do_next() {
        let api = r#"{"error":{"code":"unauthorized","message":"unknown session or API token"}}"#;
        let e = status_error(401, api, &failed(Surface::Client, true, false)).to_string();
        assert_eq!(
            e,
            "unknown session or API token (log in with `orrery login --email EMAIL -s prod` or pass --token)"
        );
        let e = status_error(401, "revoked", &failed(Surface::Client, true, true)).to_string();
        assert!(e.contains("--token or ORRERY_TOKEN"), "{e}");
        // A minted identity's token: a plain login mints a fresh one.
        let e = status_error(401, "expired", &failed(Surface::Client, false, false)).to_string();
        assert!(e.ends_with("run `orrery login -s prod`)"), "{e}");
        let scope = "this token's scope is `read`; this needs `deploy` or more";
        let e = status_error(403, scope, &failed(Surface::Client, true, true)).to_string();
        assert!(e.starts_with(scope) && e.contains("--scope deploy"), "{e}");
        let e = status_error(403, "nope", &failed(Surface::Client, true, false)).to_string();
        assert!(
            e.ends_with("(only the database's owner may do this)"),
            "{e}"
        );
        let e = status_error(403, "nope", &failed(Surface::Api, true, false)).to_string();
        assert_eq!(e, "nope");
        let limited =
            r#"{"error":{"code":"rate_limited","message":"too many attempts; retry after 7 s"}}"#;
        let e = status_error(429, limited, &failed(Surface::Api, true, false)).to_string();
        assert_eq!(
            e,
            "too many attempts; retry after 7 s (too many requests: retry later)"
        );
        let with_header = Failed {
            retry_after: Some("7"),
            ..failed(Surface::Api, true, false)
        };
        let e = status_error(429, limited, &with_header).to_string();
        assert!(e.ends_with("(too many requests: retry in 7 s)"), "{e}");
    }

    #[test]
    fn a_given_token_beats_the_stored_one() {
        let mut config = Config::default();
        config.servers.get_mut("local").unwrap().token = Some("stored".into());
        config.servers.get_mut("local").unwrap().identity = Some("c200aa".into());
        let stored = Remote::at(&config, None, None).unwrap();
        assert_eq!(
            (
                stored.token.as_deref(),
                stored.identity.as_deref(),
                stored.given
            ),
            (Some("stored"), Some("c200aa"), false)
        );
        let given = Remote::at(&config, None, Some(" orrs_given ")).unwrap();
        assert_eq!(
            (
                given.token.as_deref(),
                given.identity.as_deref(),
                given.given
            ),
            (Some("orrs_given"), None, true)
        );
        assert!(given.has_account_credential() && !stored.has_account_credential());
        // An empty ORRERY_TOKEN is no token.
        let empty = Remote::at(&config, None, Some("")).unwrap();
        assert_eq!(empty.token.as_deref(), Some("stored"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("chat-1_x"), "chat-1_x");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
