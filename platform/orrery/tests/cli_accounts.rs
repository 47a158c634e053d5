//! End to end: the account commands of the `orrery` CLI against `orrery
//! start` as it runs by default (no `--dev`). Sign up, create a database and
//! an API token, publish and call with the token given by `--token` and by
//! `ORRERY_TOKEN`, list and revoke the token, log out; a wrong password, a
//! refused token and a token whose scope is too narrow each fail with one
//! line that names the problem.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::path::Path;

use serde_json::Value;

use support::{run_cli, CliRun, Orrery};

const PASSWORD: &str = "correct horse battery";

/// One CLI configuration (a temporary `ORRERY_CONFIG_DIR`) whose default
/// server is the one under test.
struct Cli {
    config: tempfile::TempDir,
}

impl Cli {
    fn new(o: &Orrery) -> Cli {
        let cli = Cli {
            config: tempfile::tempdir().unwrap(),
        };
        cli.ok(&["server", "add", "mine", &o.url(""), "--default"]);
        cli
    }

    fn dir(&self) -> &Path {
        self.config.path()
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)], input: &str) -> CliRun {
        run_cli(self.dir(), args, env, input)
    }

    /// `orrery ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[], "")
    }

    fn ok_with(&self, args: &[&str], env: &[(&str, &str)], input: &str) -> String {
        let run = self.run(args, env, input);
        assert!(run.ok, "orrery {args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// `orrery ARGS`, which must fail with one `error:` line; that line.
    fn fails(&self, args: &[&str]) -> String {
        self.fails_with(args, &[], "")
    }

    fn fails_with(&self, args: &[&str], env: &[(&str, &str)], input: &str) -> String {
        let run = self.run(args, env, input);
        assert!(!run.ok, "orrery {args:?} should fail: {}", run.stdout);
        run.error_line().to_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// `orrery signup` with the password on stdin.
    fn signup(&self, email: &str) {
        let out = self.ok_with(
            &["signup", "--email", email, "--password-stdin"],
            &[],
            &format!("{PASSWORD}\n"),
        );
        assert!(
            out.starts_with(&format!("Signed up as {email} on ")),
            "{out}"
        );
    }

    /// The credential stored for the default server, if any.
    fn stored_token(&self) -> Option<String> {
        let file: Value =
            serde_json::from_slice(&std::fs::read(self.dir().join("cli.json")).unwrap()).unwrap();
        file["servers"]["mine"]["token"].as_str().map(str::to_owned)
    }

    /// `orrery token create --json` with `args` added: the token and its id.
    fn create_token(&self, name: &str, scope: &str, args: &[&str]) -> (String, String) {
        let mut all = vec![
            "token", "create", "--name", name, "--scope", scope, "--json",
        ];
        all.extend_from_slice(args);
        let created = self.json(&all);
        assert_eq!(created["scope"], scope, "{created}");
        (
            created["token"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    }
}

// Protects the path from nothing to a deployed database with the CLI alone
// on a closed server: signup keeps a session (0600), `db create`/`db list`,
// `token create --json`, publish and call with the token from --token and
// from ORRERY_TOKEN in a configuration that stores nothing (as CI runs),
// `token list`/`token revoke`, the revoked token refused by name, and
// `logout` ending the session on the server as well as locally.
/// The `database.json` of database `name` in `orrery start`'s cache.
fn meta_of(data: &Path, name: &str) -> Value {
    std::fs::read_dir(data.join("cache"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("database.json")).ok())
        .map(|text| serde_json::from_str::<Value>(&text).unwrap())
        .find(|meta| meta["names"] == serde_json::json!([name]))
        .unwrap_or_else(|| panic!("no database.json of {name}"))
}

#[test]
fn signup_deploy_with_a_token_revoke_it_and_log_out() {
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_closed(data.path(), &[]);
    let wasm = modules::module_wasm("chat");
    let wasm = wasm.to_str().unwrap();

    let dev = Cli::new(&o);
    dev.signup("dev@example.com");
    let session = dev.stored_token().expect("signup keeps the session");
    assert!(session.starts_with("orrs_"), "{session}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dev.dir().join("cli.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the session is the owner's only");
    }
    let servers = dev.ok(&["server", "list"]);
    assert!(servers.contains("dev@example.com"), "{servers}");

    let out = dev.ok(&["db", "create", "chat"]);
    assert!(out.starts_with("Created database chat ("), "{out}");
    assert!(out.contains("durability the host's default"), "{out}");
    let out = dev.ok(&[
        "db",
        "create",
        "ledger",
        "--durability",
        "object-store",
        "--retention-days",
        "30",
    ]);
    assert!(
        out.contains("durability object-store, 30 days of history"),
        "{out}"
    );
    let refused = dev.run(
        &["db", "create", "other", "--retention-days", "5000"],
        &[],
        "",
    );
    assert!(
        !refused.ok && refused.stderr.contains("5000"),
        "{}",
        refused.stderr
    );
    // The host that serves ledger keeps its settings with it.
    dev.ok(&["publish", "ledger", "--bin-path", wasm]);
    let meta = meta_of(data.path(), "ledger");
    assert_eq!(meta["retention_days"], 30, "{meta}");
    assert_eq!(meta["durability"], "object-store", "{meta}");
    // Changed later, the host that serves it follows.
    let out = dev.ok(&["db", "retention", "ledger", "90"]);
    assert_eq!(out, "ledger keeps 90 days of history\n");
    let meta = meta_of(data.path(), "ledger");
    assert_eq!(meta["retention_days"], 90, "{meta}");
    let listed = dev.json(&["db", "list", "--json"]);
    let ledger = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "ledger")
        .unwrap();
    assert_eq!(ledger["retention_days"], 90, "{ledger}");
    // A mode clap refuses (its usage error ends with a pointer to --help).
    let refused = dev.run(
        &["db", "create", "other", "--durability", "eventually"],
        &[],
        "",
    );
    assert!(
        !refused.ok && refused.stderr.contains("`local` or `object-store`"),
        "{}",
        refused.stderr
    );
    let databases = dev.json(&["db", "list", "--json"]);
    let names: Vec<&str> = databases
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["chat", "ledger"], "{databases}");
    let table = dev.ok(&["db", "list"]);
    assert!(table.lines().any(|l| l.starts_with(" chat ")), "{table}");

    let (deploy, deploy_id) = dev.create_token(
        "ci",
        "deploy",
        &["--database", "chat", "--expires-in", "30d"],
    );
    assert!(deploy_id.starts_with("tok_"), "{deploy_id}");

    // CI: a configuration without a login, the token from the flag, then
    // from the environment.
    let ci = Cli::new(&o);
    let out = ci.ok(&["publish", "chat", "--bin-path", wasm, "--token", &deploy]);
    assert!(out.starts_with("created database chat ("), "{out}");
    let out = ci.ok_with(
        &["publish", "chat", "--bin-path", wasm],
        &[("ORRERY_TOKEN", &deploy)],
        "",
    );
    assert!(out.starts_with("updated database chat ("), "{out}");
    ci.ok_with(
        &["call", "chat", "send_message", "1", "\"from ci\""],
        &[("ORRERY_TOKEN", &deploy)],
        "",
    );
    // The developer's session sees what the token did.
    let csv = dev.ok(&["sql", "chat", "SELECT text FROM message", "--format", "csv"]);
    assert_eq!(csv, "text\r\nfrom ci\r\n");
    assert_eq!(
        ci.stored_token(),
        None,
        "--token and ORRERY_TOKEN are never stored"
    );

    let tokens = dev.json(&["token", "list", "--json"]);
    let listed = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == deploy_id.as_str())
        .unwrap_or_else(|| panic!("{deploy_id} not in {tokens}"));
    assert_eq!(listed["name"], "ci");
    assert_eq!(listed["databases"], serde_json::json!(["chat"]));
    assert!(listed["revoked_at_ms"].is_null(), "{listed}");
    assert!(
        !tokens.to_string().contains(&deploy),
        "the list never shows a token"
    );
    let table = dev.ok(&["token", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(&deploy_id) && l.contains("deploy") && l.contains("expires")),
        "{table}"
    );

    let out = dev.ok(&["token", "revoke", &deploy_id]);
    assert_eq!(out, format!("Revoked API token {deploy_id}\n"));
    let e = ci.fails(&["publish", "chat", "--bin-path", wasm, "--token", &deploy]);
    assert!(e.contains("revoked"), "{e}");
    let e = dev.fails(&["token", "revoke", "tok_nonesuch"]);
    assert!(e.contains("orrery token list"), "{e}");

    let out = dev.ok(&["logout"]);
    assert!(out.starts_with("Logged out of "), "{out}");
    assert_eq!(dev.stored_token(), None);
    let e = dev.fails(&["db", "list"]);
    assert!(
        e.contains("not logged in") && e.contains("orrery login --email"),
        "{e}"
    );
    // The server ended the session too.
    let e = dev.fails(&["db", "list", "--token", &session]);
    assert!(e.contains("unknown session"), "{e}");
    o.stop();
}

// Protects the refusals of `login`: a wrong password and an unknown email
// get the same line and store nothing; `login --token` keeps only a token
// the server accepts, and a refused one leaves the stored login alone.
#[test]
fn wrong_passwords_and_refused_tokens_store_nothing() {
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_closed(data.path(), &[]);
    let dev = Cli::new(&o);
    dev.signup("dev@example.com");
    let (admin, _) = dev.create_token("laptop", "admin", &[]);

    let other = Cli::new(&o);
    let login = ["login", "--email", "dev@example.com", "--password-stdin"];
    let wrong = other.fails_with(&login, &[], "not the password\n");
    assert!(wrong.contains("wrong email or password"), "{wrong}");
    let unknown = other.fails_with(
        &["login", "--email", "nobody@example.com", "--password-stdin"],
        &[],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(unknown, wrong, "one answer for either mistake");
    assert_eq!(other.stored_token(), None);
    let e = other.fails_with(&login, &[], "");
    assert!(e.contains("--password-stdin read no password"), "{e}");
    let out = other.ok_with(&login, &[], &format!("{PASSWORD}\n"));
    assert!(
        out.starts_with("Logged in to ") && out.contains("dev@example.com"),
        "{out}"
    );
    let session = other.stored_token().expect("a login keeps the session");

    let e = other.fails(&["login", "--token", "garbage"]);
    assert!(
        e.contains("refused the token") && e.contains("not an Orrery session or API token"),
        "{e}"
    );
    assert_eq!(
        other.stored_token(),
        Some(session),
        "a refused token changes nothing"
    );

    let tokened = Cli::new(&o);
    let out = tokened.ok(&["login", "--token", &admin]);
    assert!(out.contains("dev@example.com"), "{out}");
    assert_eq!(tokened.stored_token(), Some(admin));
    tokened.ok(&["db", "list"]);
    o.stop();
}

// Protects scopes through the CLI and the bearer's precedence: a read token
// cannot publish and the 403 says why; ORRERY_TOKEN beats the stored
// session, and --token beats ORRERY_TOKEN.
#[test]
fn a_read_token_cannot_publish_and_the_flag_beats_the_environment() {
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_closed(data.path(), &[]);
    let wasm = modules::module_wasm("chat");
    let wasm = wasm.to_str().unwrap();
    let dev = Cli::new(&o);
    dev.signup("dev@example.com");
    let out = dev.ok(&["publish", "chat", "--bin-path", wasm]);
    assert!(out.starts_with("created database chat ("), "{out}");
    let (read, _) = dev.create_token("reader", "read", &[]);
    let (deploy, _) = dev.create_token("deployer", "deploy", &[]);

    let e = dev.fails(&["publish", "chat", "--bin-path", wasm, "--token", &read]);
    assert!(e.contains("scope is `read`") && e.contains("deploy"), "{e}");
    // The session stored in the configuration could publish; the
    // environment's read token wins over it.
    let e = dev.fails_with(
        &["publish", "chat", "--bin-path", wasm],
        &[("ORRERY_TOKEN", &read)],
        "",
    );
    assert!(e.contains("scope is `read`"), "{e}");
    let out = dev.ok_with(
        &["publish", "chat", "--bin-path", wasm, "--token", &deploy],
        &[("ORRERY_TOKEN", &read)],
        "",
    );
    assert!(out.starts_with("updated database chat ("), "{out}");
    // What a read token is for still works.
    dev.ok(&["sql", "chat", "SELECT * FROM message", "--token", &read]);
    o.stop();
}
