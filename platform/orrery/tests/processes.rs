//! The platform as separate processes: `orrery control-plane` over a real
//! PostgreSQL server and a real S3 server (SeaweedFS), and one
//! `orrery host` configured from a file, joined by a secret.
//!
//! The journey: sign up and create a token through the control-plane API;
//! publish with the `orrery` CLI and with plain HTTP and the token on the
//! host; call and subscribe with the stock npm `spacetimedb` SDK at the
//! tenant URL; read logs; rename and delete through the control-plane API
//! (which tells the host). On the way: the refusals with a clear message,
//! modules stored in S3 with a signed manifest, a host with the wrong join
//! secret refused, and a host restart that serves the same databases.
//!
//! `./scripts/test` starts PostgreSQL and the S3 server; outside CI the test
//! is skipped (loudly) without them.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::{listen_addr, repo_root, run, send, Captured};

/// The external servers this test needs, from the environment `scripts/test` sets.
struct Servers {
    postgres: String,
    s3_endpoint: String,
    s3_bucket: String,
}

#[allow(clippy::disallowed_macros)]
fn servers() -> Option<Servers> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        get("ORRERY_TEST_POSTGRES_URL"),
        get("ORRERY_TEST_S3_ENDPOINT"),
        get("ORRERY_TEST_S3_BUCKET"),
    ) {
        (Some(postgres), Some(s3_endpoint), Some(s3_bucket)) => Some(Servers {
            postgres,
            s3_endpoint,
            s3_bucket,
        }),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run this test: scripts/test starts PostgreSQL and the S3 server"
            );
            eprintln!(
                "\n!!! SKIPPED: run ./scripts/test (PostgreSQL and S3 servers) for the separate-process journey\n"
            );
            None
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom_fill(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom_fill(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}

/// A new database on the test PostgreSQL server; its URL.
fn postgres_database(server: &str) -> String {
    let name = format!("journey_{}", random_hex(6));
    let bin =
        std::env::var("ORRERY_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let output = Command::new(Path::new(&bin).join("psql"))
        .arg(server)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (base, _) = server
        .rsplit_once('/')
        .expect("the server URL names a database");
    format!("{base}/{name}")
}

fn orrery_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orrery"));
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    for var in [
        "ORRERY_TOKEN",
        "ORRERY_CONFIG",
        "ORRERY_LISTEN_ADDR",
        "ORRERY_DEV",
    ] {
        command.env_remove(var);
    }
    command
}

struct ControlPlane {
    process: Captured,
    url: String,
}

/// The operator the control plane makes at start (from its environment).
const OPERATOR: &str = "root@example.com";
const OPERATOR_PASSWORD: &str = "operator horse battery";

fn start_control_plane(
    metadata: &str,
    store: &str,
    key: &Path,
    secret: &str,
    s3: &str,
) -> ControlPlane {
    let mut command = orrery_command(&[
        "control-plane",
        "--metadata",
        metadata,
        "--object-store",
        store,
        "--listen-addr",
        "127.0.0.1:0",
    ]);
    command
        .arg("--signing-key")
        .arg(key)
        .env("ORRERY_JOIN_SECRET", secret)
        .env("ORRERY_OPERATOR_EMAIL", OPERATOR)
        .env("ORRERY_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
        .env("AWS_ENDPOINT_URL", s3);
    let process = Captured::spawn(command);
    let banner = process.wait_for_line("orrery control plane started");
    let url = format!("http://{}", listen_addr(&banner));
    ControlPlane { process, url }
}

struct HostProcess {
    process: Captured,
    addr: String,
}

/// `orrery host --config FILE`, every setting from the file.
fn start_host(config: &Path, s3: &str) -> HostProcess {
    let mut command = orrery_command(&["host", "--config"]);
    command.arg(config).env("AWS_ENDPOINT_URL", s3);
    let process = Captured::spawn(command);
    let banner = process.wait_for_line("orrery host started");
    HostProcess {
        addr: listen_addr(&banner),
        process,
    }
}

fn stop(process: &mut Captured, what: &str) {
    let exit = process.terminate();
    assert!(exit.success(), "{what} exited with {exit}");
    assert!(
        process
            .lines()
            .iter()
            .any(|l| l.contains("stopped cleanly")),
        "{what}: {:?}",
        process.lines()
    );
    process.check_errors();
}

fn request(
    base: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut r = ureq::request(method, &format!("{base}{path}"));
    if let Some(bearer) = bearer {
        r = r.set("Authorization", &format!("Bearer {bearer}"));
    }
    if path.starts_with("/api/") || path.contains("/call/") {
        r = r.set("Content-Type", "application/json");
    }
    send(r, Some(body))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn separate_processes_over_postgres_and_s3_sign_up_publish_subscribe_and_delete() {
    let Some(servers) = servers() else { return };
    let ts_dir = repo_root().join("tests/ts");
    assert!(
        ts_dir.join("node_modules/spacetimedb").is_dir(),
        "the npm packages are missing: run `npm ci` in {} (./scripts/test does)",
        ts_dir.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let metadata = postgres_database(&servers.postgres);
    let prefix = format!("journey-{}", random_hex(6));
    let store = format!("s3://{}/{prefix}", servers.s3_bucket);
    let secret = random_hex(32);
    let key = dir.path().join("cp").join("module-signing.key");
    let mut cp = start_control_plane(&metadata, &store, &key, &secret, &servers.s3_endpoint);

    // A host with the wrong secret is refused and says so.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        format!(
            "control-plane = \"{}\"\nobject-store = \"{store}\"\njoin-secret = \"{}\"\n[host]\ncache-dir = \"{}\"\nlisten-addr = \"127.0.0.1:0\"\n",
            cp.url,
            random_hex(32),
            dir.path().join("wrong-cache").display()
        ),
    )
    .unwrap();
    let mut refused = orrery_command(&["host", "--config"]);
    let output = refused
        .arg(&wrong)
        .env("AWS_ENDPOINT_URL", &servers.s3_endpoint)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("refused to register") && said.contains("join secret"),
        "{said}"
    );

    // The host, every setting from its config file.
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "# shared by the control plane and its hosts\ncontrol-plane = \"{}\"\nobject-store = \"{store}\"\njoin-secret = \"{secret}\"\n\n[host]\ncache-dir = \"{}\"\nlisten-addr = \"127.0.0.1:0\"\nhost-id = \"host-one\"\n",
            cp.url,
            dir.path().join("cache").display()
        ),
    )
    .unwrap();
    let mut host = start_host(&config, &servers.s3_endpoint);

    let (session, deploy) = journey(&cp.url, &host.addr, &ts_dir, dir.path());

    // A row to find again after the restarts below.
    let (status, body) = request(
        &format!("http://{}", host.addr),
        "POST",
        "/v1/database/jledger/sql",
        Some(&deploy),
        b"INSERT INTO account (id, balance) VALUES (7, 70)",
    );
    assert_eq!(status, 200, "{body}");
    // A host restart serves the same databases (modules verified again from S3).
    stop(&mut host.process, "orrery host");
    let mut host = start_host(&config, &servers.s3_endpoint);
    let host_url = format!("http://{}", host.addr);
    let (status, body) = request(
        &host_url,
        "POST",
        "/v1/database/jledger/sql",
        Some(&deploy),
        b"SELECT * FROM account",
    );
    assert_eq!(status, 200, "{body}");

    // The host's disk is lost (SIGKILL, its databases folder gone): the
    // next start reads every database placed on it back from S3.
    let before = body;
    host.process.kill();
    std::fs::remove_dir_all(dir.path().join("cache").join("databases")).unwrap();
    let mut host = start_host(&config, &servers.s3_endpoint);
    host.process
        .wait_for_line("database read back from the object store");
    let host_url = format!("http://{}", host.addr);
    let (status, body) = request(
        &host_url,
        "POST",
        "/v1/database/jledger/sql",
        Some(&deploy),
        b"SELECT * FROM account",
    );
    assert_eq!(status, 200, "{body}");
    let rows = |body: &str| json_of(body)[0]["rows"].clone();
    assert_eq!(rows(&before), serde_json::json!([[7, 70]]));
    assert_eq!(
        rows(&body),
        rows(&before),
        "the same rows, read back from S3"
    );

    restore_through_the_api(&cp.url, &host_url, &session, &deploy);
    import_from_a_store_by_url(&cp.url, &host_url, &store, &deploy);
    retention_through_the_api(&cp.url, &session, &dir.path().join("cache"));
    rename_and_delete(&cp.url, &host_url, &session, &deploy);
    stop(&mut host.process, "orrery host");
    stop(&mut cp.process, "orrery control-plane");
}

/// Sign up and make tokens through the control-plane API at `api_url`; the
/// refusals; publish with the CLI and with plain HTTP on the host at
/// `host_addr`; the stock SDK at the tenant URL; logs. Returns the session
/// and the deploy token.
fn journey(api_url: &str, host_addr: &str, ts_dir: &Path, dir: &Path) -> (String, String) {
    let host_url = format!("http://{host_addr}");
    let port = host_addr.rsplit(':').next().unwrap().to_owned();
    // Sign up and make tokens through the control-plane API.
    let (status, body) = request(
        api_url,
        "POST",
        "/api/v1/signup",
        None,
        json!({"email": "ops@example.com", "password": "correct horse battery"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let session = json_of(&body)["session"].as_str().unwrap().to_owned();
    let token = |scope: &str, databases: Option<Vec<&str>>| {
        let mut request_body = json!({"name": format!("{scope} token"), "scope": scope});
        if let Some(databases) = databases {
            request_body["databases"] = json!(databases);
        }
        let (status, body) = request(
            api_url,
            "POST",
            "/api/v1/tokens",
            Some(&session),
            request_body.to_string().as_bytes(),
        );
        assert_eq!(status, 201, "{body}");
        json_of(&body)["token"].as_str().unwrap().to_owned()
    };
    let deploy = token("deploy", None);
    let read = token("read", None);

    // Refusals on the host, each with a clear message.
    let chat_wasm = modules::module_bytes("chat");
    let (status, body) = request(&host_url, "PUT", "/v1/database/jchat", None, &chat_wasm);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("orrery token create"), "{body}");
    let (status, body) = request(
        &host_url,
        "PUT",
        "/v1/database/jchat",
        Some(&read),
        &chat_wasm,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("deploy"), "{body}");
    let (status, body) = request(
        &host_url,
        "PUT",
        "/v1/database/Not_A_Label",
        Some(&deploy),
        &chat_wasm,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = request(
        &host_url,
        "PUT",
        "/v1/database/jbad",
        Some(&deploy),
        b"\0asm\x01\0\0\0garbage",
    );
    assert_eq!(
        status, 400,
        "an invalid module is refused by the control plane: {body}"
    );
    assert!(body.contains("not valid"), "{body}");

    // Publish with the `orrery` CLI …
    let cli_config = dir.join("cli");
    let chat_path = modules::module_wasm("chat");
    let out = run(
        "orrery publish",
        orrery_command(&[
            "publish",
            "jchat",
            "--bin-path",
            chat_path.to_str().unwrap(),
            "-s",
            &host_url,
            "--token",
            &deploy,
        ])
        .env("ORRERY_CONFIG_DIR", &cli_config),
    );
    assert!(out.contains("jchat"), "{out}");
    // … and with plain HTTP and the token.
    let (status, body) = request(
        &host_url,
        "PUT",
        "/v1/database/jledger",
        Some(&deploy),
        &modules::module_bytes("bank"),
    );
    assert_eq!(status, 200, "{body}");
    // A token for jledger only cannot touch jchat.
    let ledger_only = token("deploy", Some(vec!["jledger"]));
    let (status, body) = request(
        &host_url,
        "PUT",
        "/v1/database/jchat",
        Some(&ledger_only),
        &chat_wasm,
    );
    assert_eq!(status, 403, "{body}");

    // The control plane knows both, placed on this host, and the modules
    // sit in S3 with their signed manifests.
    let (status, body) = request(api_url, "GET", "/api/v1/databases", Some(&session), b"");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"jchat\"") && body.contains("\"jledger\""),
        "{body}"
    );
    let (status, body) = request(api_url, "GET", "/api/v1/audit", Some(&session), b"");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("publish"),
        "the audit log records publishes: {body}"
    );

    // The stock SDK at the tenant URL, with the token for owner actions.
    let generated = ts_dir.join("generated");
    let _ = std::fs::remove_dir_all(&generated);
    run(
        "orrery generate",
        orrery_command(&[
            "generate",
            "--lang",
            "typescript",
            "--bin-path",
            chat_path.to_str().unwrap(),
            "--out-dir",
            generated.join("chat").to_str().unwrap(),
        ])
        .env("ORRERY_CONFIG_DIR", &cli_config),
    );
    let tenant_url = format!("http://jchat.localhost:{port}");
    let stdout = run(
        "chat.test.ts at the tenant URL",
        Command::new("npx")
            .args(["--no-install", "tsx", "chat.test.ts"])
            .current_dir(ts_dir)
            .env("ORRERY_URL", &tenant_url)
            .env("ORRERY_DB", "jchat")
            .env("ORRERY_OWNER_TOKEN", &deploy),
    );
    assert!(stdout.contains("PASS: all"), "{stdout}");
    assert!(
        stdout.contains("owner DELETE over /sql"),
        "the owner step ran with the token: {stdout}"
    );

    // Logs: the token reads them, the app user may not.
    let (status, body) = request(
        &host_url,
        "GET",
        "/v1/database/jchat/logs",
        Some(&deploy),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let (status, minted) = request(&host_url, "POST", "/v1/identity", None, b"");
    assert_eq!(status, 200, "{minted}");
    let app = json_of(&minted)["token"].as_str().unwrap().to_owned();
    let (status, body) = request(&host_url, "GET", "/v1/database/jchat/logs", Some(&app), b"");
    assert_eq!(status, 403, "{body}");

    (session, deploy)
}

/// Restores through the control-plane API, done by the host holding the
/// database: into a new database (deploy) and in place (admin only), then
/// the in-place restore undone. Refusals change nothing and leave no
/// database behind; the audit log records each restore.
fn restore_through_the_api(api_url: &str, host_url: &str, session: &str, deploy: &str) {
    let sql = |db: &str, query: &str| {
        let path = format!("/v1/database/{db}/sql");
        let (status, body) = request(host_url, "POST", &path, Some(deploy), query.as_bytes());
        assert_eq!(status, 200, "{query}: {body}");
        body
    };
    let rows = |db: &str| account_rows(host_url, deploy, db);
    let restore = |bearer: &str, body: Value| {
        request(
            api_url,
            "POST",
            "/api/v1/databases/jledger/restore",
            Some(bearer),
            body.to_string().as_bytes(),
        )
    };
    sql(
        "jledger",
        "INSERT INTO account (id, balance) VALUES (8, 80)",
    );
    let (status, body) = request(
        host_url,
        "POST",
        "/v1/database/jledger/backups",
        Some(deploy),
        b"",
    );
    assert_eq!(status, 201, "{body}");
    let backup = json_of(&body)["id"].as_str().unwrap().to_owned();
    let at_backup = rows("jledger");
    sql("jledger", "DELETE FROM account WHERE id = 8");
    let changed = rows("jledger");
    assert_ne!(changed, at_backup, "canary: the delete changed the data");

    let (status, body) = restore(
        session,
        json!({"into": "jcopy", "in_place": true, "offset": 1}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = restore(deploy, json!({"in_place": true, "snapshot": backup}));
    assert_eq!(status, 403, "in place needs admin: {body}");
    let (status, body) = restore(deploy, json!({"into": "jfuture", "offset": 999_999}));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("history reaches offset"), "{body}");
    let (status, body) = request(
        api_url,
        "GET",
        "/api/v1/databases/jfuture",
        Some(session),
        b"",
    );
    assert_eq!(status, 404, "a failed restore leaves no database: {body}");
    assert_eq!(rows("jledger"), changed);

    let (status, body) = restore(deploy, json!({"into": "jcopy", "snapshot": backup}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(json_of(&body)["database"], "jcopy");
    assert_eq!(rows("jcopy"), at_backup);
    let (status, body) = request(
        api_url,
        "GET",
        "/api/v1/databases/jcopy",
        Some(session),
        b"",
    );
    assert_eq!(status, 200, "the copy is the account's: {body}");

    let (status, body) = restore(session, json!({"in_place": true, "snapshot": backup}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows("jledger"), at_backup);
    let replaced = json_of(&body)["replaced_through"].as_u64().unwrap();
    let (status, body) = restore(session, json!({"in_place": true, "offset": replaced}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows("jledger"), changed, "the undo");

    let (status, body) = request(api_url, "GET", "/api/v1/audit", Some(session), b"");
    assert_eq!(status, 200, "{body}");
    let restores = json_of(&body)
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "database.restore")
        .count();
    assert_eq!(restores, 3, "{body}");
}

/// The operator restores jledger from the S3 store by URL, as from another
/// deployment, into a new database the control plane places on its host.
fn import_from_a_store_by_url(api_url: &str, host_url: &str, store: &str, deploy: &str) {
    let (status, body) = request(
        api_url,
        "POST",
        "/api/v1/login",
        None,
        json!({"email": OPERATOR, "password": OPERATOR_PASSWORD})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let operator = json_of(&body)["session"].as_str().unwrap().to_owned();
    // A backup now: the store then holds every transaction so far.
    let (status, body) = request(
        host_url,
        "POST",
        "/v1/database/jledger/backups",
        Some(deploy),
        b"",
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(host_url, "GET", "/v1/database/jledger", None, b"");
    assert_eq!(status, 200, "{body}");
    let identity = json_of(&body)["database_identity"]["__identity__"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_owned();
    let (status, body) = request(
        api_url,
        "POST",
        "/api/v1/admin/restores",
        Some(&operator),
        json!({"store": store, "database": identity, "into": "jimport"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let rows = |db: &str, bearer: &str| account_rows(host_url, bearer, db);
    assert_eq!(rows("jimport", &operator), rows("jledger", deploy));
}

/// Every row of `db`'s accounts on the host, sorted by id.
fn account_rows(host_url: &str, bearer: &str, db: &str) -> Value {
    let path = format!("/v1/database/{db}/sql");
    let (status, body) = request(
        host_url,
        "POST",
        &path,
        Some(bearer),
        b"SELECT * FROM account",
    );
    assert_eq!(status, 200, "{db}: {body}");
    let mut rows = json_of(&body)[0]["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|row| row[0].as_u64());
    Value::Array(rows)
}

/// The `database.json` of database `name` anywhere under `root`.
fn meta_of(root: &Path, name: &str) -> Value {
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.file_name().is_some_and(|n| n == "database.json") {
                let meta = json_of(&std::fs::read_to_string(&path).unwrap());
                if meta["names"] == json!([name]) {
                    return meta;
                }
            }
        }
    }
    panic!("no database.json of {name} under {}", root.display())
}

/// A database's retention changed through the control-plane API reaches
/// the host holding it (its `database.json`); over the ceiling is refused.
fn retention_through_the_api(api_url: &str, session: &str, cache: &Path) {
    let set = |days: u64| {
        request(
            api_url,
            "PUT",
            "/api/v1/databases/jledger/retention",
            Some(session),
            json!({"retention_days": days}).to_string().as_bytes(),
        )
    };
    let (status, body) = set(3651);
    assert_eq!(status, 400, "{body}");
    let (status, body) = set(14);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["retention_days"], 14);
    assert_eq!(meta_of(cache, "jledger")["retention_days"], 14);
}

/// Rename and delete through the control-plane API: the host follows.
fn rename_and_delete(api_url: &str, host_url: &str, session: &str, deploy: &str) {
    let (session, deploy) = (session.to_owned(), deploy.to_owned());
    // Rename and delete through the control-plane API: the host follows.
    let (status, body) = request(
        api_url,
        "PATCH",
        "/api/v1/databases/jledger",
        Some(&session),
        json!({"name": "jbooks"}).to_string().as_bytes(),
    );
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, body) = request(
        host_url,
        "POST",
        "/v1/database/jbooks/sql",
        Some(&deploy),
        b"SELECT * FROM account",
    );
    assert_eq!(status, 200, "the host serves the new name: {body}");
    let (status, body) = request(
        api_url,
        "DELETE",
        "/api/v1/databases/jbooks?confirm=jbooks",
        Some(&session),
        b"",
    );
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, body) = request(
        host_url,
        "POST",
        "/v1/database/jbooks/sql",
        Some(&deploy),
        b"SELECT * FROM account",
    );
    assert_eq!(status, 404, "deleted on the host too: {body}");
}

#[test]
fn the_same_journey_on_orrery_start_with_sqlite() {
    let ts_dir = repo_root().join("tests/ts");
    assert!(
        ts_dir.join("node_modules/spacetimedb").is_dir(),
        "the npm packages are missing: run `npm ci` in {} (./scripts/test does)",
        ts_dir.display()
    );
    let data = tempfile::tempdir().unwrap();
    let o = support::Orrery::start_closed(data.path(), &[]);
    let url = o.url("");
    let (session, deploy) = journey(&url, &o.addr, &ts_dir, data.path());
    restore_through_the_api(&url, &url, &session, &deploy);
    retention_through_the_api(&url, &session, &data.path().join("cache"));
    rename_and_delete(&url, &url, &session, &deploy);
    assert!(
        data.path().join("control-plane.db").is_file()
            && data.path().join("objects/modules").is_dir(),
        "SQLite metadata and the folder object store under the data directory"
    );
    o.stop();
}
