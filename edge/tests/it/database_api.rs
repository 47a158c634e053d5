//! The database routes of the client API over a real loopback socket:
//! publish (create, update, clear), pre-publish, call, SQL, names, logs,
//! schema, lock/delete, owner checks, anonymous minting, and a restart that
//! reopens the registry.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orrery_edge::auth::Keys;
use orrery_edge::{serve, ApiState};
use orrery_module::Runtime;
use serde_json::Value;
use tenant_host::hosting::{Host, HostConfig};
use tenant_host::registry::Registry;

use crate::modules::module_bytes;

/// A server over a registry in `dir`; stops when dropped.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) registry: Arc<Registry>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Starts the graceful shutdown.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serve task, to wait for its end.
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Graceful shutdown; true if `serve` returned within `timeout`.
    fn stop_within(&mut self, timeout: Duration) -> bool {
        let _ = self.stop.take().unwrap().send(());
        let served = self.served.take().unwrap();
        self.runtime
            .as_ref()
            .unwrap()
            .block_on(async { tokio::time::timeout(timeout, served).await })
            .is_ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

pub(crate) fn server(dir: &Path, keys: Keys) -> Server {
    server_with(dir, keys, Default::default())
}

/// [`server`] with WebSocket limits and timers of the test's choosing.
pub(crate) fn server_with(dir: &Path, keys: Keys, ws: orrery_edge::ws::WsConfig) -> Server {
    server_with_access(dir, keys, ws, orrery_edge::access::Access::open())
}

/// [`server_with`] with the given rules of who may act as an owner.
pub(crate) fn server_with_access(
    dir: &Path,
    keys: Keys,
    ws: orrery_edge::ws::WsConfig,
    access: orrery_edge::access::Access,
) -> Server {
    server_verified(dir, keys, ws, access, None)
}

/// [`server_with_access`] over a registry that runs only modules `verifier` vouches for.
pub(crate) fn server_verified(
    dir: &Path,
    keys: Keys,
    ws: orrery_edge::ws::WsConfig,
    access: orrery_edge::access::Access,
    verifier: Option<Arc<dyn tenant_host::registry::ModuleVerifier>>,
) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let host = Arc::new(Host::new(Runtime::new().unwrap(), HostConfig::default()));
    let registry = Arc::new(
        Registry::open_verified(dir, host, storage::DbOptions::default(), verifier).unwrap(),
    );
    let state = Arc::new(ApiState {
        keys,
        registry: registry.clone(),
        ws,
        tenant_domain: Some("localhost".into()),
        access,
        backups: None,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        registry,
        runtime: Some(runtime),
        stop: Some(stop),
        served: Some(served),
    }
}

pub(crate) fn keys(dir: &Path) -> Keys {
    Keys::load_or_create(&dir.join("keys")).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
    identity: Option<String>,
    token: Option<String>,
    energy: Option<String>,
    /// The stable error code (`x-orrery-error`) of an error reply.
    code: Option<String>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("request failed: {e}"),
    };
    let header = |name: &str| response.header(name).map(str::to_owned);
    Reply {
        status: response.status(),
        content_type: header("content-type").unwrap_or_default(),
        identity: header("spacetime-identity"),
        token: header("spacetime-identity-token"),
        energy: header("spacetime-energy-used"),
        code: header("x-orrery-error"),
        body: response.into_string().unwrap(),
    }
}

/// A client: an optional bearer token against one server.
struct Client<'a> {
    base: &'a str,
    token: Option<String>,
}

impl Client<'_> {
    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = agent().request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    fn get(&self, path: &str) -> Reply {
        reply(self.request("GET", path).call())
    }

    fn send(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        reply(self.request(method, path).send_bytes(body))
    }

    fn publish(&self, path: &str, module: &str) -> Reply {
        let method = if path == "/v1/database" || path.starts_with("/v1/database?") {
            "POST"
        } else {
            "PUT"
        };
        self.send(method, path, &module_bytes(module))
    }

    fn call(&self, db: &str, function: &str, args: &str) -> Reply {
        reply(
            self.request("POST", &format!("/v1/database/{db}/call/{function}"))
                .set("Content-Type", "application/json")
                .send_string(args),
        )
    }

    fn sql(&self, db: &str, sql: &str) -> Reply {
        self.send("POST", &format!("/v1/database/{db}/sql"), sql.as_bytes())
    }
}

/// A fresh identity's token, minted by the server.
pub(crate) fn mint(base: &str) -> String {
    let r = reply(agent().post(&format!("{base}/v1/identity")).call());
    r.json()["token"].as_str().unwrap().to_owned()
}

fn rows(r: &Reply) -> Vec<Value> {
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json"),
        "{}",
        r.body
    );
    let json = r.json();
    let results = json.as_array().unwrap();
    assert_eq!(results.len(), 1);
    results[0]["rows"].as_array().unwrap().clone()
}

#[test]
fn publish_call_and_sql_with_anonymous_minting() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let anonymous = Client {
        base: &s.base,
        token: None,
    };

    // Anonymous publish: the server mints the owner and says so in headers.
    let r = anonymous.publish("/v1/database/chat-a", "chat");
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json"),
        "{}",
        r.body
    );
    let owner_identity = r.identity.clone().expect("spacetime-identity header");
    let owner = Client {
        base: &s.base,
        token: Some(r.token.clone().expect("token header")),
    };
    let success = &r.json()["Success"];
    assert_eq!(success["domain"], "chat-a");
    assert_eq!(success["op"], "created");
    let db_identity = success["database_identity"].as_str().unwrap().to_owned();
    assert_eq!(db_identity.len(), 64);

    // The identity route answers in plain text; the owner's list has it.
    let r = anonymous.get("/v1/database/chat-a/identity");
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (200, "text/plain", db_identity.as_str())
    );
    assert!(
        r.identity.is_some() && r.token.is_some(),
        "minting headers on every database route"
    );
    let r = anonymous.get(&format!("/v1/identity/{owner_identity}/databases"));
    assert_eq!(r.json()["identities"], serde_json::json!([db_identity]));
    assert!(r.identity.is_none(), "identity routes never mint");

    // Info and timestamp.
    let r = anonymous.get(&format!("/v1/database/{db_identity}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let info = r.json();
    assert!(info["database_identity"]["__identity__"]
        .as_str()
        .unwrap()
        .starts_with("0x"));
    assert_eq!(info["host_type"], serde_json::json!({"Wasm": []}));
    let r = anonymous.get("/v1/database/chat-a/unstable/timestamp");
    assert!(
        r.json()["__timestamp_micros_since_unix_epoch__"]
            .as_i64()
            .unwrap()
            > 0
    );

    // Calls.
    let r = owner.call("chat-a", "set_name", r#"["alice"]"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.energy.is_some());
    let r = owner.call("chat-a", "set_name", r#"{"name": "alice2"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = owner.call("chat-a", "set_name", r#"[""]"#);
    assert_eq!((r.status, r.body.as_str()), (530, "name must not be empty"));
    let r = owner.call("chat-a", "nope", "[]");
    assert_eq!(r.status, 404);
    assert!(r.body.starts_with("no such reducer"), "{}", r.body);
    let r = owner.call("chat-a", "set_name", "[42]");
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with("invalid arguments for reducer set_name"),
        "{}",
        r.body
    );
    let r = owner.call("chat-a", "init", "[]");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = reply(
        owner
            .request("POST", "/v1/database/chat-a/call/set_name")
            .set("Content-Type", "text/plain")
            .send_string("[\"x\"]"),
    );
    assert_eq!(r.status, 415);
    let r = reply(
        owner
            .request("POST", "/v1/database/chat-a/call/set_name")
            .send_bytes(b"[\"x\"]"),
    );
    assert_eq!(r.status, 400);

    // SQL: the row the call wrote, with its schema. (Every anonymous
    // request connects as a new identity, which adds a nameless user.)
    let r = anonymous.sql("chat-a", "SELECT name FROM user WHERE online = false");
    let got = rows(&r);
    assert!(
        got.contains(&serde_json::json!([[0, "alice2"]])),
        "{}",
        r.body
    );
    let json = r.json();
    let schema = &json[0]["schema"]["elements"][0];
    assert_eq!(schema["name"], serde_json::json!({"some": "name"}));
    assert!(json[0]["total_duration_micros"].is_u64());
    assert_eq!(json[0]["stats"]["rows_inserted"], 0);

    // DML: owner commits, others are refused.
    let r = owner.sql(
        "chat-a",
        "INSERT INTO channel (id, name) VALUES (0, 'random')",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["stats"]["rows_inserted"], 1);
    assert_eq!(r.json()[0]["rows"], serde_json::json!([]));
    let r = owner.sql(
        "chat-a",
        "UPDATE channel SET name = 'random2' WHERE name = 'random'",
    );
    assert_eq!(r.json()[0]["stats"]["rows_updated"], 1, "{}", r.body);
    let got = rows(&anonymous.sql("chat-a", "SELECT name FROM channel"));
    assert_eq!(got.len(), 2);
    assert!(got.contains(&serde_json::json!(["random2"])), "{got:?}");
    let r = anonymous.sql("chat-a", "DELETE FROM channel WHERE name = 'general'");
    assert!(matches!(r.status, 400 | 403), "{r:?}");
    let r = owner.sql("chat-a", "DELETE FROM channel WHERE name = 'general'");
    assert_eq!(r.json()[0]["stats"]["rows_deleted"], 1, "{}", r.body);
    let r = anonymous.sql("chat-a", "SELECT * FROM prune_schedule");
    assert_eq!(
        r.status, 400,
        "private tables are invisible to others: {}",
        r.body
    );
    assert_eq!(
        rows(&owner.sql("chat-a", "SELECT * FROM prune_schedule")).len(),
        1
    );
    let r = owner.sql("chat-a", "DELETE FROM st_client");
    assert_eq!(r.status, 400, "system tables are read-only: {}", r.body);
    let r = owner.sql("chat-a", "SELEC nonsense");
    assert_eq!(r.status, 400);

    // Bad names, unknown databases, bad tokens, unsupported publishes.
    let r = anonymous.get("/v1/database/Bad_Name/identity");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = anonymous.get("/v1/database/nope/identity");
    assert_eq!((r.status, r.body.as_str()), (404, "`nope` not found"));
    let r = anonymous.get(&format!("/v1/database/{}/identity", "ab".repeat(32)));
    assert_eq!(r.status, 404);
    let bad = Client {
        base: &s.base,
        token: Some("a.b.c".into()),
    };
    let r = bad.get("/v1/database/chat-a/identity");
    assert!(matches!(r.status, 400 | 401), "{r:?}");
    let r = owner.publish("/v1/database?clear=true", "chat");
    assert_eq!(r.status, 400);
    let r = owner.publish("/v1/database/chat-js?host_type=Js", "chat");
    assert_eq!(r.status, 400);

    // Health.
    let r = anonymous.get("/v1/health");
    assert_eq!(r.json()["package_name"], "orrery");
    assert_eq!(anonymous.get("/health").body, "ok");
}

#[test]
fn update_clear_pre_publish_names_lock_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let owner = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };
    let other = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };

    // POST without a name: a fresh identity, no domain.
    let r = owner.publish("/v1/database", "chat");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Success"]["domain"], Value::Null);
    let r = owner.publish("/v1/database/chat-b", "chat");
    let id = r.json()["Success"]["database_identity"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(owner.call("chat-b", "set_name", r#"["bob"]"#).status, 200);
    assert_eq!(
        owner
            .call("chat-b", "create_channel", r#"["extra"]"#)
            .status,
        200
    );

    // Pre-publish: unknown 404, compatible change AutoMigrate, owner only.
    let r = owner.send(
        "POST",
        "/v1/database/unknown-db/pre_publish",
        &module_bytes("chat-v2"),
    );
    assert_eq!(r.status, 404);
    let r = owner.send(
        "POST",
        "/v1/database/chat-b/pre_publish",
        &module_bytes("chat-v2"),
    );
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json"),
        "{}",
        r.body
    );
    let auto = &r.json()["AutoMigrate"];
    // chat-v2 adds the column `user.karma`: clients decoding the old rows
    // are disconnected, so the update needs policy=BreakClients.
    assert_eq!(auto["break_clients"], true, "{}", r.body);
    let hash = auto["token"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("0x"));
    assert!(
        auto["migrate_plan"]
            .as_str()
            .unwrap()
            .contains("table `user` gains columns"),
        "{}",
        r.body
    );
    let r = other.send(
        "POST",
        "/v1/database/chat-b/pre_publish",
        &module_bytes("chat-v2"),
    );
    assert_eq!(r.status, 403);

    // Update: others are refused, the owner migrates with the data.
    let r = other.publish("/v1/database/chat-b", "chat-v2");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["PermissionDenied"]["name"], "chat-b");
    let r = other.publish(&format!("/v1/database/{id}"), "chat-v2");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = owner.publish("/v1/database/chat-b", "chat-v2");
    assert_eq!(r.status, 400, "without the policy: {}", r.body);
    assert!(
        r.body.contains("table `user` gains columns") && r.body.contains("policy=BreakClients"),
        "{}",
        r.body
    );
    let r = owner.send(
        "PUT",
        &format!("/v1/database/chat-b?token={hash}&policy=BreakClients&host_type=Wasm"),
        &module_bytes("chat-v2"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Success"]["op"], "updated");
    let got = rows(&owner.sql("chat-b", "SELECT name, karma FROM user"));
    assert_eq!(got, vec![serde_json::json!([[0, "bob"], 10])]);

    // Going back drops a table: manual migration; refused without clear.
    let r = owner.send(
        "POST",
        &format!("/v1/database/{id}/pre_publish"),
        &module_bytes("chat"),
    );
    assert!(
        r.json()["ManualMigrate"]["reason"].is_string(),
        "{}",
        r.body
    );
    let r = owner.publish("/v1/database/chat-b", "chat");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = owner.publish("/v1/database/chat-b?clear=true", "chat");
    assert_eq!(r.status, 200, "{}", r.body);
    let got = rows(&owner.sql("chat-b", "SELECT name FROM channel"));
    assert_eq!(
        got,
        vec![serde_json::json!(["general"])],
        "clear wiped the data, init ran again"
    );

    // Schema.
    let r = owner.get("/v1/database/chat-b/schema?version=10");
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json"),
        "{}",
        r.body
    );
    let schema = r.json();
    assert!(schema.to_string().contains("\"channel\""), "{schema}");
    assert_eq!(owner.get("/v1/database/chat-b/schema").status, 400);
    assert_eq!(
        owner.get("/v1/database/chat-b/schema?version=8").status,
        400
    );

    // Names.
    let r = owner.get("/v1/database/chat-b/names");
    assert_eq!(r.json(), serde_json::json!({"names": ["chat-b"]}));
    let r = owner.send("PUT", "/v1/database/chat-b/names", br#"["chat-c"]"#);
    assert_eq!((r.status, r.body.as_str()), (200, "\"Success\""));
    assert_eq!(owner.get("/v1/database/chat-b/identity").status, 404);
    assert_eq!(owner.get("/v1/database/chat-c/identity").body, id);
    let r = owner.send("POST", "/v1/database/chat-c/names", b"chat-d");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(owner.get("/v1/database/chat-d/identity").body, id);
    let r = other.send("PUT", "/v1/database/chat-c/names", br#"["mine"]"#);
    assert_eq!(r.status, 401);
    assert!(r.json()["NotYourDatabase"].is_object());
    let r = owner.send("PUT", "/v1/database/chat-c/names", br#"["Bad_Name"]"#);
    assert_eq!(r.status, 400);
    other.publish("/v1/database/taken", "chat");
    let r = owner.send("PUT", "/v1/database/chat-c/names", br#"["taken"]"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["OtherError"]
        .as_str()
        .unwrap()
        .contains("already is in use"));

    // Logs: owner only; NDJSON with the failure the host recorded.
    assert_eq!(
        owner.call("chat-c", "create_channel", r#"[""]"#).status,
        530
    );
    assert_eq!(other.get("/v1/database/chat-c/logs").status, 403);
    let r = owner.get("/v1/database/chat-c/logs?num_lines=50");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or("")
            .contains("channel name must not be empty")),
        "{}",
        r.body
    );
    let levels = ["Error", "Warn", "Info", "Debug", "Trace", "Panic"];
    for l in &lines {
        assert!(l["ts"].is_i64(), "{l}");
        assert!(levels.contains(&l["level"].as_str().unwrap()), "{l}");
        assert!(!l.as_object().unwrap().values().any(Value::is_null), "{l}");
    }

    // Following: a record written after the request starts arrives.
    let response = owner
        .request("GET", "/v1/database/chat-c/logs?num_lines=0&follow=true")
        .call()
        .unwrap();
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    let mut reader = BufReader::new(response.into_reader());
    assert_eq!(
        owner
            .call("chat-c", "send_message", r#"[999, "hi"]"#)
            .status,
        530
    );
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let record: Value = serde_json::from_str(&line).unwrap();
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("no channel 999"),
        "{line}"
    );
    drop(reader);

    // Lock forbids delete and clear; others may not lock or delete.
    assert_eq!(
        other.send("POST", "/v1/database/chat-c/lock", b"").status,
        403
    );
    assert_eq!(
        owner.send("POST", "/v1/database/chat-c/lock", b"").status,
        200
    );
    assert_eq!(owner.send("DELETE", "/v1/database/chat-c", b"").status, 403);
    assert_eq!(
        owner
            .publish("/v1/database/chat-c?clear=true", "chat")
            .status,
        403
    );
    assert_eq!(
        owner.send("POST", "/v1/database/chat-c/unlock", b"").status,
        200
    );
    assert_eq!(other.send("DELETE", "/v1/database/chat-c", b"").status, 403);
    assert_eq!(owner.send("DELETE", "/v1/database/chat-c", b"").status, 200);
    assert_eq!(owner.get("/v1/database/chat-c/identity").status, 404);
    assert_eq!(
        owner.get(&format!("/v1/database/{id}/identity")).status,
        404
    );
    assert_eq!(
        owner
            .send("DELETE", &format!("/v1/database/{id}"), b"")
            .status,
        200
    );
    assert!(!dir.path().join(&id).exists());
}

#[test]
fn restart_reopens_databases_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let token;
    let ids: Vec<String>;
    {
        let s = server(dir.path(), keys(dir.path()));
        token = mint(&s.base);
        let owner = Client {
            base: &s.base,
            token: Some(token.clone()),
        };
        ids = ["chat-one", "chat-two"]
            .iter()
            .map(|name| {
                let r = owner.publish(&format!("/v1/database/{name}"), "chat");
                assert_eq!(r.status, 200, "{}", r.body);
                r.json()["Success"]["database_identity"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(owner.call("chat-one", "set_name", r#"["one"]"#).status, 200);
        assert_eq!(
            owner
                .call("chat-two", "create_channel", r#"["two"]"#)
                .status,
            200
        );
        s.registry.flush_all().unwrap();
    }
    // A creation that never finished is removed on open.
    let stale = dir.path().join("cd".repeat(32));
    std::fs::create_dir_all(&stale).unwrap();

    let s = server(dir.path(), keys(dir.path()));
    assert!(!stale.exists());
    assert_eq!(s.registry.all().len(), 2);
    let owner = Client {
        base: &s.base,
        token: Some(token),
    };
    assert_eq!(owner.get("/v1/database/chat-one/identity").body, ids[0]);
    assert_eq!(owner.get("/v1/database/chat-two/identity").body, ids[1]);
    let got = rows(&owner.sql("chat-one", "SELECT name FROM user"));
    assert_eq!(got, vec![serde_json::json!([[0, "one"]])]);
    let got = rows(&owner.sql("chat-two", "SELECT name FROM channel WHERE name = 'two'"));
    assert_eq!(got.len(), 1);
    // Still the owner after the restart, and still callable.
    assert_eq!(
        owner
            .call("chat-two", "create_channel", r#"["three"]"#)
            .status,
        200
    );
    assert_eq!(
        owner.send("POST", "/v1/database/chat-two/lock", b"").status,
        200
    );
}

#[test]
fn failed_first_publish_leaves_nothing_and_identities_are_publish_targets() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let owner = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };
    let other = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };

    // Not a module: 400, no database directory; as the reference, the name
    // stays registered to an identity with no database (the owner's next
    // publish creates it).
    let r = owner.send("PUT", "/v1/database/broken", b"\0asm not really");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = owner.get("/v1/database/broken/identity");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = owner.get(&format!("/v1/database/{}/schema?version=10", r.body));
    assert_eq!((r.status, r.body.as_str()), (404, "No such database."));
    assert!(s.registry.all().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name() != "keys" && e.file_name() != tenant_host::registry::DANGLING_FILE
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // No body size limit: a 3 MiB non-module is refused as a module (400), not as too large.
    let r = owner.send("PUT", "/v1/database/big", &vec![7u8; 3 << 20]);
    assert_eq!(r.status, 400, "{}", r.body);
    // CORS reaches the database routes too.
    let preflight = agent()
        .request("OPTIONS", &format!("{}/v1/database/big/call/f", s.base))
        .set("Origin", "http://app.example")
        .set("Access-Control-Request-Method", "POST")
        .call()
        .unwrap();
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    // The name is free for a working publish afterwards.
    assert_eq!(owner.publish("/v1/database/broken", "chat").status, 200);

    // Publishing to an unknown identity creates the database with it.
    let wanted = format!("c200{}", "5a".repeat(30));
    let r = owner.publish(&format!("/v1/database/{wanted}"), "chat");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["Success"]["database_identity"], wanted.as_str());
    assert_eq!(r.json()["Success"]["domain"], Value::Null);
    let r = owner.publish(&format!("/v1/database/0x{wanted}"), "chat");
    assert_eq!(r.json()["Success"]["op"], "updated", "{}", r.body);

    // POST /names: a second name; someone else's name or database is refused.
    let r = owner.send(
        "POST",
        &format!("/v1/database/{wanted}/names"),
        b"second-name",
    );
    assert_eq!(r.json()["Success"]["domain"], "second-name", "{}", r.body);
    let r = owner.send("POST", &format!("/v1/database/{wanted}/names"), b"broken");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.json()["PermissionDenied"].is_object());
    let r = other.send("POST", &format!("/v1/database/{wanted}/names"), b"third");
    assert_eq!(r.status, 401);
    let r = other.send(
        "PUT",
        &format!("/v1/database/{}/names", "ab".repeat(32)),
        b"[\"x\"]",
    );
    assert_eq!((r.status, r.body.as_str()), (404, "\"DatabaseNotFound\""));
}

#[test]
fn procedures_over_http_and_shutdown_ends_log_followers() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = server(dir.path(), keys(dir.path()));
    let owner = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };
    let r = owner.publish("/v1/database/coverage", "abi-coverage");
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["Success"]["database_identity"]
        .as_str()
        .unwrap()
        .to_owned();

    // A procedure's return value is untyped SATS-JSON.
    let r = owner.call("coverage", "proc_with_tx", "[2]");
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json"),
        "{}",
        r.body
    );
    assert!(r.json().is_u64(), "{}", r.body);
    let r = owner.call("coverage", "proc_identity", "[]");
    assert_eq!(r.status, 200, "{}", r.body);
    let hex = r.json()[0].as_str().unwrap().to_owned();
    assert!(hex.starts_with("0x"), "{}", r.body);
    let r = owner.call("coverage", "proc_panic_in_tx", "[1]");
    assert_eq!(r.status, 530, "{}", r.body);
    let r = owner.call("coverage", "proc_with_tx", r#"["two"]"#);
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("invalid arguments"), "{}", r.body);

    // `/metrics` counts procedure calls by outcome, apart from reducers.
    let (_, text) = crate::metrics::scrape(&s.base);
    let procedures = |outcome: &str| {
        crate::metrics::value(
            &text,
            &format!("orrery_procedure_calls_total{{database=\"{id}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(procedures("returned"), Some(2.0), "{text}");
    assert_eq!(procedures("trapped"), Some(1.0), "{text}");
    assert_eq!(procedures("timeout"), Some(0.0), "{text}");

    // A follower does not hold up a graceful shutdown.
    let response = owner
        .request("GET", "/v1/database/coverage/logs?follow=true")
        .call()
        .unwrap();
    let mut reader = BufReader::new(response.into_reader());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(serde_json::from_str::<Value>(&line).is_ok(), "{line}");
    assert!(s.stop_within(Duration::from_secs(10)), "serve returned");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
}

// Protects "one broken database never stops every tenant" at the edge: a
// database whose storage no longer recovers does not stop the server from
// starting; every route that names it, by name or identity, answers 503
// with a message saying so (the WebSocket upgrade too), the other database
// serves, and `/metrics` counts it. Before the fix the registry did not
// open at all.
#[test]
fn a_broken_database_answers_503_everywhere_and_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let token;
    let victim;
    {
        let s = server(dir.path(), keys(dir.path()));
        token = mint(&s.base);
        let owner = Client {
            base: &s.base,
            token: Some(token.clone()),
        };
        for name in ["healthy", "victim"] {
            let r = owner.publish(&format!("/v1/database/{name}"), "chat");
            assert_eq!(r.status, 200, "{}", r.body);
        }
        for text in ["a", "b"] {
            let args = format!(r#"["{text}"]"#);
            assert_eq!(owner.call("victim", "create_channel", &args).status, 200);
        }
        victim = owner.get("/v1/database/victim/identity").body;
        s.registry.flush_all().unwrap();
    }
    // Damage the first record of the victim's log; later records are intact,
    // so recovery reports corruption rather than a torn tail.
    let segment = dir
        .path()
        .join(&victim)
        .join("storage/log/00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("the first log segment exists");
    bytes[28 + 16 + 8] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let s = server(dir.path(), keys(dir.path()));
    let owner = Client {
        base: &s.base,
        token: Some(token),
    };
    assert_eq!(
        owner
            .call("healthy", "create_channel", r#"["fine"]"#)
            .status,
        200
    );
    let expect_503 = |what: &str, r: Reply| {
        assert_eq!(r.status, 503, "{what}: {}", r.body);
        assert!(
            r.body.contains(&victim) && r.body.contains("storage did not recover"),
            "{what}: {}",
            r.body
        );
    };
    for target in ["victim", victim.as_str()] {
        expect_503("info", owner.get(&format!("/v1/database/{target}")));
        expect_503(
            "schema",
            owner.get(&format!("/v1/database/{target}/schema?version=9")),
        );
        expect_503("logs", owner.get(&format!("/v1/database/{target}/logs")));
        expect_503("call", owner.call(target, "create_channel", r#"["c"]"#));
        expect_503("sql", owner.sql(target, "SELECT * FROM channel"));
        expect_503(
            "publish",
            owner.publish(&format!("/v1/database/{target}"), "chat"),
        );
        expect_503(
            "delete",
            owner.send("DELETE", &format!("/v1/database/{target}"), b""),
        );
        expect_503(
            "lock",
            owner.send("POST", &format!("/v1/database/{target}/lock"), b""),
        );
        expect_503("names", owner.get(&format!("/v1/database/{target}/names")));
        expect_503(
            "add a name",
            owner.send("POST", &format!("/v1/database/{target}/names"), b"other"),
        );
        expect_503(
            "replace the names",
            owner.send(
                "PUT",
                &format!("/v1/database/{target}/names"),
                br#"["other"]"#,
            ),
        );
        let url = format!(
            "{}/v1/database/{target}/subscribe",
            s.base.replacen("http://", "ws://", 1)
        );
        match crate::wsclient::open(&url, "v2.bsatn.spacetimedb", &[]) {
            crate::wsclient::Upgrade::Refused(status, body) => {
                assert_eq!(status, 503, "{body}");
                assert!(body.contains("storage did not recover"), "{body}");
            }
            crate::wsclient::Upgrade::Open(_) => panic!("subscribed to a broken database"),
        }
    }
    let metrics = agent()
        .get(&format!("{}/metrics", s.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("orrery_databases_broken 1\n"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "orrery_database_broken{{database=\"{victim}\",reason=\"storage\"}} 1\n"
        )),
        "{metrics}"
    );
    assert!(
        dir.path().join(&victim).is_dir(),
        "the broken database is kept"
    );
}

// Protects the logs of a first publish: what the module writes in `init`
// when the database is created is served by the logs route, like every
// other call's output. Before the fix those lines were dropped.
#[test]
fn what_init_logs_on_the_first_publish_is_served_by_the_logs_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let owner = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };
    let r = owner.publish("/v1/database/fresh", "chat");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = owner.get("/v1/database/fresh/logs?num_lines=100");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .any(|l| l["message"] == "chat: init created the general channel"),
        "{}",
        r.body
    );
}

// Protects the one error path of the names routes: a failure to save the
// names (here the metadata file cannot be replaced) is a plain-text error
// with its stable code, which `log_errors` logs, not a raw JSON 500.
#[test]
fn a_names_route_that_cannot_save_answers_through_the_error_path() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let owner = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };
    let r = owner.publish("/v1/database/unsaved", "chat");
    assert_eq!(r.status, 200, "{}", r.body);
    let id = owner.get("/v1/database/unsaved/identity").body;
    // A non-empty directory cannot be renamed over, even by root.
    let meta = dir.path().join(&id).join("database.json");
    assert!(meta.is_file(), "{}", meta.display());
    std::fs::remove_file(&meta).unwrap();
    std::fs::create_dir_all(meta.join("in-the-way")).unwrap();
    for r in [
        owner.send("POST", "/v1/database/unsaved/names", b"second"),
        owner.send("PUT", "/v1/database/unsaved/names", br#"["third"]"#),
    ] {
        assert_eq!(r.status, 500, "{}", r.body);
        assert_eq!(r.code.as_deref(), Some("internal"), "{}", r.body);
        assert!(r.body.contains("database.json"), "{}", r.body);
    }
}

// Protects the callers of a trapping reducer from the module's internals: the
// HTTP answer carries the module's panic message, never the wasm backtrace,
// which goes to the owner's log instead.
#[test]
fn a_trapping_reducer_tells_the_caller_its_panic_and_the_owner_its_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let anonymous = Client {
        base: &s.base,
        token: None,
    };
    let r = anonymous.publish("/v1/database/hostile-t", "hostile");
    assert_eq!(r.status, 200, "{}", r.body);
    let owner = Client {
        base: &s.base,
        token: r.token.clone(),
    };
    let caller = Client {
        base: &s.base,
        token: Some(mint(&s.base)),
    };

    let r = caller.call("hostile-t", "trap", "[]");
    assert_eq!(r.status, 530, "{}", r.body);
    assert_eq!(r.code.as_deref(), Some("module_failed"));
    assert!(r.body.contains("hostile: deliberate trap"), "{}", r.body);
    for internal in ["backtrace", "wasm", ".rs:", "0x"] {
        assert!(
            !r.body.contains(internal),
            "the caller sees `{internal}`: {}",
            r.body
        );
    }

    let r = owner.get("/v1/database/hostile-t/logs?num_lines=100");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("wasm backtrace"),
        "the owner's log has the backtrace: {}",
        r.body
    );
}

/// The status line of a raw HTTP/1.1 request that declares `length` body
/// bytes and sends none: a route that waited for the body before checking
/// its size would never answer, and the read times out.
pub(crate) fn status_of_unsent_body(base: &str, method: &str, path: &str, length: usize) -> String {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .unwrap_or_else(|e| panic!("{method} {path}: no answer before the body ({e})"));
    String::from_utf8_lossy(&head[9..12]).into_owned()
}

// Protects the host's memory from bodies of any size: each route reads at
// most its limit from orrery_api::limits and answers 413, naming the limit,
// before reading more.
#[test]
fn request_bodies_over_their_route_limit_are_refused_before_they_are_read() {
    use orrery_api::limits::{
        CALL_BODY_BYTES_MAX, MODULE_BYTES_MAX, SMALL_BODY_BYTES_MAX, SQL_BODY_BYTES_MAX,
    };
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let anonymous = Client {
        base: &s.base,
        token: None,
    };
    let r = anonymous.publish("/v1/database/bodies", "chat");
    assert_eq!(r.status, 200, "{}", r.body);
    let owner = Client {
        base: &s.base,
        token: r.token.clone(),
    };

    // A declared length over the limit is refused unread, on every route
    // that reads a body.
    for (method, path, max) in [
        ("POST", "/v1/database", MODULE_BYTES_MAX),
        ("PUT", "/v1/database/bodies", MODULE_BYTES_MAX),
        ("POST", "/v1/database/bodies/pre_publish", MODULE_BYTES_MAX),
        (
            "POST",
            "/v1/database/bodies/call/send_message",
            CALL_BODY_BYTES_MAX,
        ),
        ("POST", "/v1/database/bodies/sql", SQL_BODY_BYTES_MAX),
        ("POST", "/v1/database/bodies/names", SMALL_BODY_BYTES_MAX),
        ("PUT", "/v1/database/bodies/names", SMALL_BODY_BYTES_MAX),
    ] {
        assert_eq!(
            status_of_unsent_body(&s.base, method, path, max + 1),
            "413",
            "{method} {path}"
        );
    }

    // A body without a length (chunked) is read up to the limit only.
    let oversized = vec![b' '; SQL_BODY_BYTES_MAX + 1];
    let r = reply(
        owner
            .request("POST", "/v1/database/bodies/sql")
            .send(&oversized[..]),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.code.as_deref(), Some("payload_too_large"));
    assert!(
        r.body.contains("the SQL text") && r.body.contains(&SQL_BODY_BYTES_MAX.to_string()),
        "{}",
        r.body
    );

    // At the limit exactly, the body is read and served.
    let mut at_limit = "SELECT * FROM message".to_owned();
    at_limit.push_str(&" ".repeat(SQL_BODY_BYTES_MAX - at_limit.len()));
    let r = owner.sql("bodies", &at_limit);
    assert_eq!(r.status, 200, "{}", r.body);

    // Other errors carry their own codes.
    let r = owner.call("bodies", "no_such_reducer", "[]");
    assert_eq!((r.status, r.code.as_deref()), (404, Some("not_found")));
    let r = owner.call("bodies", "send_message", r#"["not a number", 1]"#);
    assert_eq!(
        (r.status, r.code.as_deref()),
        (400, Some("invalid_arguments")),
        "{}",
        r.body
    );
}
