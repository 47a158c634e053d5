//! The account commands: `signup`, `login --email` and `login --token`,
//! `logout`, `token create|list|revoke` and `db create|list`. Each is a
//! client of the control-plane API (JSON under `/api/v1` on the server's
//! URL, errors `{"error":{"code","message"}}`).
//!
//! Owns: reading a password (a terminal prompt without echo, or the first
//! line of stdin), keeping or forgetting an account's credential in the
//! config (a session from `signup` and `login --email`, an API token from
//! `login --token`), token lifetimes (`30d`, `12h`, `90m`, `3600s`), and
//! the tables and JSON these commands print.
//! Does not own: which bearer a request carries or how a failure reads
//! (`Remote` in the crate root), or any rule of who may do what (the
//! server decides).

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::config::Config;
use crate::output::{Format, ResultSet};
use crate::{segment, style, Remote, ServerArg};

/// `orrery token …`.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token; it is printed this once and never again.
    ///
    /// Example: `orrery token create --name ci --scope deploy --database chat
    /// --expires-in 90d`.
    Create {
        /// A label for people (1 to 100 characters).
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        scope: Scope,
        /// A database the token is for (repeat for several); without one,
        /// every database of the account.
        #[arg(long = "database", short = 'd', value_name = "DB")]
        databases: Vec<String>,
        /// How long until the token expires: `30d`, `12h`, `90m` or `3600s`;
        /// without it, never.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        expires_in: Option<u64>,
        /// Print the server's answer as one JSON object (with `id` and
        /// `token`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the account's API tokens (never the tokens themselves).
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Revoke an API token: the server refuses it from then on.
    Revoke {
        /// The token's id (`tok_…`, see `orrery token list`).
        id: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// `orrery db …`.
#[derive(Subcommand)]
pub enum DbCmd {
    /// Create an empty database in your account (`orrery publish NAME`
    /// gives it a module).
    Create {
        /// A DNS label: `a-z`, `0-9` and `-`, at most 63 characters.
        name: String,
        /// When a transaction counts as durable: `local` (at the host's
        /// fsync; the object store gets it within a second) or
        /// `object-store` (once the object store holds it). Default: the
        /// host's.
        #[arg(long, value_parser = parse_durability)]
        durability: Option<orrery_api::Durability>,
        /// Days of point-in-time history to keep in the object store (0
        /// keeps everything). Default: the host's (7 for `orrery start`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(..=i64::from(orrery_api::limits::RETENTION_DAYS_MAX)))]
        retention_days: Option<u32>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Set how many days of point-in-time history a database keeps in the
    /// object store (0 keeps everything); the host applies it at once.
    Retention {
        name: String,
        #[arg(value_parser = clap::value_parser!(u32).range(..=i64::from(orrery_api::limits::RETENTION_DAYS_MAX)))]
        days: u32,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the databases your credential may see.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// What an API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Logs, SQL queries, private tables, describe.
    Read,
    /// Also publish (a first publish creates the database, for tokens of the
    /// whole account).
    Deploy,
    /// Also delete and rename databases, manage tokens, read the audit log.
    Admin,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

/// `orrery signup`: creates the account and keeps its session.
pub(crate) fn signup(
    config: &mut Config,
    dir: &Path,
    server: Option<&str>,
    email: &str,
    password_stdin: bool,
    invite: Option<String>,
) -> anyhow::Result<()> {
    let mut remote = anonymous(config, server)?;
    let password = read_password(password_stdin, true)?;
    let mut body = json!({"email": email, "password": password});
    if let Some(invite) = invite {
        body["invite"] = Value::String(invite);
    }
    let reply = match remote.api_response("POST", "/signup", Some(&body)) {
        Ok(response) => json_of(response)?,
        Err(ureq::Error::Status(409, response)) => {
            let message = crate::error_message(409, &response.into_string().unwrap_or_default());
            bail!("{message} (`orrery login --email {email}`)")
        }
        Err(e) => return Err(remote.api_failure(e)),
    };
    let email = keep_session(config, dir, &mut remote, &reply)?;
    println!("Signed up as {email} on {} and logged in", remote.url);
    Ok(())
}

/// `orrery login --email`: logs in with a password and keeps the session.
pub(crate) fn login(
    config: &mut Config,
    dir: &Path,
    server: Option<&str>,
    email: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let mut remote = anonymous(config, server)?;
    let password = read_password(password_stdin, false)?;
    let body = json!({"email": email, "password": password});
    let reply = match remote.api_response("POST", "/login", Some(&body)) {
        Ok(response) => json_of(response)?,
        // One answer whether the email or the password was wrong.
        Err(ureq::Error::Status(401, _)) => bail!("wrong email or password for {}", remote.url),
        Err(e) => return Err(remote.api_failure(e)),
    };
    let email = keep_session(config, dir, &mut remote, &reply)?;
    println!("Logged in to {} as {email}", remote.url);
    Ok(())
}

/// `orrery login --token`: keeps `token` once the server accepts it.
pub(crate) fn login_with_token(
    config: &mut Config,
    dir: &Path,
    server: Option<&str>,
    token: &str,
) -> anyhow::Result<()> {
    let token = token.trim();
    if token.is_empty() {
        bail!("--token is empty; pass the token `orrery token create` printed");
    }
    let mut remote = Remote::at(config, server, Some(token))?;
    let account = match remote.api_response("GET", "/account", None) {
        Ok(response) => json_of(response)?,
        Err(ureq::Error::Status(status @ (400 | 401 | 403), response)) => {
            let message = crate::error_message(status, &response.into_string().unwrap_or_default());
            bail!(
                "{} refused the token, so it is not kept: {message}",
                remote.url
            )
        }
        Err(e) => return Err(remote.api_failure(e)),
    };
    let (Some(email), Some(identity)) = (account["email"].as_str(), account["identity"].as_str())
    else {
        bail!(
            "{} answered without the account's email and identity",
            remote.url
        );
    };
    remote.identity = Some(identity.to_owned());
    remote.remember_as(config, dir, Some(email))?;
    println!(
        "Logged in to {} as {email} with the given token",
        remote.url
    );
    Ok(())
}

/// `orrery logout`: ends the session on the server (an API token has none
/// to end: it stays valid until revoked) and forgets the stored credential.
pub(crate) fn logout(config: &mut Config, dir: &Path, arg: &ServerArg) -> anyhow::Result<()> {
    let remote = Remote::at(config, arg.server.as_deref(), arg.token.as_deref())?;
    let stored = config
        .servers
        .get(&remote.name)
        .is_some_and(|s| s.token.is_some());
    if remote.token.is_none() {
        println!("Not logged in to {}", remote.url);
        return Ok(());
    }
    let mut unended = None;
    let session = remote
        .token
        .as_deref()
        .is_some_and(|t| t.starts_with(orrery_api::access::SESSION_PREFIX));
    if session {
        match remote.api_response("POST", "/logout", None) {
            Ok(_) => {}
            // 401: the session already ended or expired; 403: the server
            // took it for an API token, which has no session to end.
            Err(ureq::Error::Status(401 | 403, _)) => {}
            Err(e) => unended = Some(remote.api_failure(e)),
        }
    }
    if stored {
        let entry = config
            .servers
            .get_mut(&remote.name)
            .expect("the entry was found above");
        entry.token = None;
        entry.identity = None;
        entry.email = None;
        config.save(dir)?;
    }
    if let Some(e) = unended {
        return Err(e.context(format!(
            "forgot the credential for {}, but the server did not end the session",
            remote.url
        )));
    }
    println!("Logged out of {}", remote.url);
    Ok(())
}

/// `orrery token …`.
pub(crate) fn token(cmd: TokenCmd, config: &Config) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            name,
            scope,
            databases,
            expires_in,
            json,
            server,
        } => {
            let remote = account_remote(config, &server)?;
            let mut body = json!({"name": name, "scope": scope.as_str()});
            if !databases.is_empty() {
                body["databases"] = json!(databases);
            }
            if let Some(secs) = expires_in {
                body["expires_in_secs"] = json!(secs);
            }
            let created = remote.api("POST", "/tokens", Some(&body))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
                return Ok(());
            }
            let token = created["token"]
                .as_str()
                .ok_or_else(|| anyhow!("{} answered without the token", remote.url))?;
            eprintln!(
                "Created API token {} ({}): scope {}, {}, {}.",
                text(&created["name"]),
                text(&created["id"]),
                text(&created["scope"]),
                for_databases(&created["databases"]),
                match created["expires_at_ms"].as_i64() {
                    Some(ms) => format!("expires {}", utc(ms)),
                    None => "never expires".to_owned(),
                }
            );
            println!("{token}");
            eprintln!("Copy it now: it will not be shown again.");
            Ok(())
        }
        TokenCmd::List { json, server } => {
            let remote = account_remote(config, &server)?;
            list(
                &remote,
                "/tokens",
                json,
                "No API tokens on {url}; create one with `orrery token create`",
                &[
                    "id",
                    "name",
                    "scope",
                    "databases",
                    "created",
                    "last used",
                    "status",
                ],
                |t| {
                    let status = if t["revoked_at_ms"].is_i64() {
                        "revoked".to_owned()
                    } else {
                        match t["expires_at_ms"].as_i64() {
                            Some(ms) => format!("expires {}", utc(ms)),
                            None => "active".to_owned(),
                        }
                    };
                    vec![
                        text(&t["id"]),
                        text(&t["name"]),
                        text(&t["scope"]),
                        match t["databases"].as_array() {
                            Some(names) => names.iter().map(text).collect::<Vec<_>>().join(", "),
                            None => "all".to_owned(),
                        },
                        t["created_at_ms"].as_i64().map(utc).unwrap_or_default(),
                        t["last_used_at_ms"]
                            .as_i64()
                            .map_or_else(|| "never".to_owned(), utc),
                        status,
                    ]
                },
            )
        }
        TokenCmd::Revoke { id, server } => {
            let remote = account_remote(config, &server)?;
            match remote.api_response("DELETE", &format!("/tokens/{}", segment(&id)), None) {
                Ok(_) => {}
                Err(ureq::Error::Status(404, response)) => {
                    let message =
                        crate::error_message(404, &response.into_string().unwrap_or_default());
                    bail!("{message} (see the ids with `orrery token list`)")
                }
                Err(e) => return Err(remote.api_failure(e)),
            }
            println!("Revoked API token {id}");
            Ok(())
        }
    }
}

/// `orrery backup …`.
#[derive(Subcommand)]
pub enum BackupCmd {
    /// Take a backup of DATABASE now (a snapshot in the object store);
    /// prints it once the store holds it.
    Create {
        database: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List DATABASE's backups, newest first: id, offset, time and size.
    List {
        database: String,
        /// Print a JSON array of objects with `id`, `offset`, `time` and `size`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// `orrery restore DATABASE (--snapshot ID | --offset N | --at TIME)
/// [--into NEW]`: into a new database, or in place without `--into`.
pub(crate) fn restore(
    database: &str,
    (snapshot, offset, at): (Option<String>, Option<u64>, Option<String>),
    into: Option<&str>,
    server: &ServerArg,
    config: &mut Config,
    dir: &Path,
) -> anyhow::Result<()> {
    let remote = Remote::authed(config, dir, server)?;
    let mut body = match into {
        Some(into) => json!({"into": into}),
        None => json!({"in_place": true}),
    };
    match (snapshot, offset, at) {
        (Some(id), None, None) => body["snapshot"] = json!(id),
        (None, Some(offset), None) => body["offset"] = json!(offset),
        (None, None, Some(at)) => body["at"] = json!(at),
        _ => bail!("give exactly one of --snapshot ID, --offset N and --at TIME"),
    }
    let url = format!("{}/v1/database/{}/restore", remote.url, segment(database));
    let restored = remote.send_json(remote.agent.post(&url), Some(body))?;
    match into {
        Some(into) => println!(
            "Restored {database} as of offset {} into the new database {into} ({})",
            text(&restored["offset"]),
            text(&restored["identity"])
        ),
        None => {
            println!(
                "Restored {database} in place as of offset {} ({} rows deleted, {} inserted; clients were disconnected)",
                text(&restored["restored_offset"]),
                text(&restored["rows_deleted"]),
                text(&restored["rows_inserted"]),
            );
            if let Some(replaced) = restored["replaced_through"].as_u64() {
                println!("To undo: orrery restore {database} --offset {replaced} --yes");
            }
        }
    }
    Ok(())
}

/// `orrery restore ID --from-store URL --into NEW [point]`: the operator's
/// `POST /api/v1/admin/restores`.
pub(crate) fn import(
    (store, database, account): (&str, &str, Option<&str>),
    (snapshot, offset, at): (Option<String>, Option<u64>, Option<String>),
    into: &str,
    server: &ServerArg,
    config: &Config,
) -> anyhow::Result<()> {
    let remote = account_remote(config, server)?;
    let database = database.trim_start_matches("0x");
    let mut body = json!({"store": store, "database": database, "into": into});
    if let Some(account) = account {
        body["account"] = json!(account);
    }
    if let Some(id) = snapshot {
        body["snapshot"] = json!(id);
    }
    if let Some(offset) = offset {
        body["offset"] = json!(offset);
    }
    if let Some(at) = at {
        body["at"] = json!(at);
    }
    let restored = remote.api("POST", "/admin/restores", Some(&body))?;
    println!(
        "Restored {database} of {store} as of offset {} into the new database {into} ({})",
        text(&restored["offset"]),
        text(&restored["identity"])
    );
    Ok(())
}

/// `orrery backup …`: the host's `/v1/database/{name}/backups`.
pub(crate) fn backup(cmd: BackupCmd, config: &mut Config, dir: &Path) -> anyhow::Result<()> {
    match cmd {
        BackupCmd::Create { database, server } => {
            let remote = Remote::authed(config, dir, &server)?;
            let url = format!("{}/v1/database/{}/backups", remote.url, segment(&database));
            let made = remote.send_json(remote.agent.post(&url), None)?;
            println!(
                "Backed up {database}: backup {} at offset {}, {} ({} bytes)",
                text(&made["id"]),
                text(&made["offset"]),
                text(&made["time"]),
                text(&made["size"])
            );
            Ok(())
        }
        BackupCmd::List {
            database,
            json,
            server,
        } => {
            let remote = Remote::authed(config, dir, &server)?;
            let url = format!("{}/v1/database/{}/backups", remote.url, segment(&database));
            let listed = remote.send_json(remote.agent.get(&url), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
                return Ok(());
            }
            let items = listed.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!(
                    "No backups of {database} yet; take one with `orrery backup create {database}`"
                );
                return Ok(());
            }
            let rows = items
                .iter()
                .map(|b| {
                    ["id", "offset", "time", "size"]
                        .iter()
                        .map(|key| text(&b[*key]))
                        .collect()
                })
                .collect();
            print_table(&["id", "offset", "time", "size"], rows);
            Ok(())
        }
    }
}

fn parse_durability(text: &str) -> Result<orrery_api::Durability, String> {
    text.parse()
}

/// `orrery db …`.
pub(crate) fn db(cmd: DbCmd, config: &Config) -> anyhow::Result<()> {
    match cmd {
        DbCmd::Create {
            name,
            durability,
            retention_days,
            server,
        } => {
            let remote = account_remote(config, &server)?;
            let mut body = json!({"name": name});
            if let Some(mode) = durability {
                body["durability"] = json!(mode.as_str());
            }
            if let Some(days) = retention_days {
                body["retention_days"] = json!(days);
            }
            let created = remote.api("POST", "/databases", Some(&body))?;
            let retention = match created["retention_days"].as_u64() {
                Some(0) => "all history kept".to_owned(),
                Some(days) => format!("{days} days of history"),
                None => "the host's default history".to_owned(),
            };
            println!(
                "Created database {} ({}, durability {}, {retention}); give it a module with `orrery publish {name}`",
                text(&created["name"]),
                text(&created["id"]),
                created["durability"].as_str().unwrap_or("the host's default")
            );
            Ok(())
        }
        DbCmd::Retention { name, days, server } => {
            let remote = account_remote(config, &server)?;
            let path = format!("/databases/{}/retention", segment(&name));
            remote.api("PUT", &path, Some(&json!({"retention_days": days})))?;
            match days {
                0 => println!("{name} keeps all of its history"),
                _ => println!("{name} keeps {days} days of history"),
            }
            Ok(())
        }
        DbCmd::List { json, server } => {
            let remote = account_remote(config, &server)?;
            list(
                &remote,
                "/databases",
                json,
                "No databases on {url}; create one with `orrery db create NAME` or `orrery publish NAME`",
                &["name", "id", "created", "status"],
                |d| {
                    vec![
                        text(&d["name"]),
                        text(&d["id"]),
                        d["created_at_ms"].as_i64().map(utc).unwrap_or_default(),
                        match d["suspended_at_ms"].as_i64() {
                            Some(ms) => format!("suspended {}", utc(ms)),
                            None => "active".to_owned(),
                        },
                    ]
                },
            )
        }
    }
}

/// `GET path` of the API: the JSON as it came with `--json`, else `empty`
/// (`{url}` replaced by the server's) when the list is empty, else a table
/// of `headers` with one `row` per element.
fn list(
    remote: &Remote,
    path: &str,
    json: bool,
    empty: &str,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<()> {
    let listed = remote.api("GET", path, None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    let items = listed.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("{}", empty.replace("{url}", &remote.url));
        return Ok(());
    }
    print_table(headers, items.iter().map(row).collect());
    Ok(())
}

/// The server without a credential (sign-up and login send none).
fn anonymous(config: &Config, server: Option<&str>) -> anyhow::Result<Remote> {
    let mut remote = Remote::at(config, server, None)?;
    remote.token = None;
    remote.identity = None;
    Ok(remote)
}

/// The server with an account credential, or a refusal that says how to
/// get one. A minted identity token is sent anyway: the server's refusal
/// names the problem.
fn account_remote(config: &Config, arg: &ServerArg) -> anyhow::Result<Remote> {
    let remote = Remote::at(config, arg.server.as_deref(), arg.token.as_deref())?;
    if remote.token.is_none() {
        bail!(
            "not logged in to {}: log in with `orrery login --email EMAIL` (or create an account with `orrery signup --email EMAIL`), or pass --token",
            remote.url
        );
    }
    Ok(remote)
}

/// Keeps the session of a sign-up or login answer (`{"account": {…},
/// "session": …}`); the account's email.
fn keep_session(
    config: &mut Config,
    dir: &Path,
    remote: &mut Remote,
    reply: &Value,
) -> anyhow::Result<String> {
    let (Some(session), Some(identity), Some(email)) = (
        reply["session"].as_str(),
        reply["account"]["identity"].as_str(),
        reply["account"]["email"].as_str(),
    ) else {
        bail!(
            "{} answered without a session and the account's identity",
            remote.url
        );
    };
    remote.token = Some(session.to_owned());
    remote.identity = Some(identity.to_owned());
    remote.remember_as(config, dir, Some(email))?;
    Ok(email.to_owned())
}

/// The password: the first line of stdin, or asked for on the terminal
/// without echo (twice when `confirm`, for a new password).
fn read_password(from_stdin: bool, confirm: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!("--password-stdin read no password: write it as the first line of stdin");
        }
        return Ok(password.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password on; pass --password-stdin and write the password to stdin");
    }
    let password = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    if password.is_empty() {
        bail!("no password given");
    }
    if confirm {
        let again = rpassword::prompt_password("Repeat the password: ")
            .context("cannot read the password")?;
        if again != password {
            bail!("the two passwords differ; nothing changed");
        }
    }
    Ok(password)
}

/// A token lifetime in seconds: a whole number and a unit, `s`, `m`, `h` or
/// `d` (`30d`, `12h`, `90m`, `3600s`).
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let wrong = || {
        format!(
            "`{text}` is not a duration: write a number and a unit, like 30d, 12h, 90m or 3600s"
        )
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| wrong())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(wrong()),
    };
    match n.checked_mul(unit_secs) {
        Some(0) => Err(format!(
            "`{text}` is no time at all; a token must live a while"
        )),
        Some(secs) => Ok(secs),
        None => Err(format!("`{text}` is too long")),
    }
}

/// A JSON string as text (anything else compactly).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `databases` of a token: `null` is the whole account.
fn for_databases(value: &Value) -> String {
    match value.as_array() {
        Some(names) => {
            let names: Vec<String> = names.iter().map(text).collect();
            format!("for {}", names.join(", "))
        }
        None => "for every database".to_owned(),
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM` UTC.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date, in 400-year eras of 146,097
    // days that start on 0000-03-01 (so the leap day ends a year).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Prints an aligned table with a bold header on a terminal.
fn print_table(columns: &[&str], rows: Vec<Vec<String>>) {
    let table = ResultSet {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows: rows
            .into_iter()
            .map(|row| row.into_iter().map(Value::String).collect())
            .collect(),
    };
    let colour = style::enabled(style::Stream::Stdout);
    print!("{}", table.render(Format::Table, colour));
}

fn json_of(response: ureq::Response) -> anyhow::Result<Value> {
    crate::json_of(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_number_and_a_unit() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("90m"), Ok(90 * 60));
        assert_eq!(parse_duration("3600s"), Ok(3600));
        for wrong in ["", "30", "d", "1.5h", "-1d", "3 d", "10y", "1dd"] {
            let e = parse_duration(wrong).unwrap_err();
            assert!(e.contains("not a duration"), "{wrong:?}: {e}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("no time"));
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        // 2000-02-29 12:34:56 UTC, a leap day of a century year.
        assert_eq!(utc(951_827_696_000), "2000-02-29 12:34");
        // 2024-12-31 23:59:59.999 UTC.
        assert_eq!(utc(1_735_689_599_999), "2024-12-31 23:59");
        assert_eq!(utc(-1), "1969-12-31 23:59");
    }

    #[test]
    fn token_databases_read_as_words() {
        assert_eq!(for_databases(&Value::Null), "for every database");
        assert_eq!(for_databases(&json!(["chat", "game"])), "for chat, game");
    }
}
