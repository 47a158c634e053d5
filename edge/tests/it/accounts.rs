//! The edge with accounts: owner actions need an account credential that
//! an `Authenticator` accepts, with the right scope and for the right
//! database; app identities call, subscribe and query public tables as
//! before and own nothing. The authenticator here is a table of
//! credentials in memory: the edge's half of the seam. The control plane's
//! half, and both together in `orrery start`, have their own tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orrery_api::access::{Scope, API_TOKEN_PREFIX};
use orrery_edge::access::{Access, Authenticator, BoxFuture, Grant, Handle, OwnerEvent, Refusal};
use spacetimedb_lib::Identity;

use crate::database_api::{keys, mint, server_with_access, Server};
use crate::modules::module_bytes;
use crate::ws::V2;
use crate::ws_views::Client as WsClient;

const ISSUER: &str = "https://orrery.test/accounts";

/// Credentials, names and what was recorded, in memory.
#[derive(Default)]
struct Table {
    grants: HashMap<String, Grant>,
    /// Database name → account id.
    names: HashMap<String, String>,
    recorded: Vec<String>,
}

#[derive(Default, Clone)]
struct Accounts(Arc<Mutex<Table>>);

impl Accounts {
    /// A credential of `account` with `scope`, for `databases` (all if `None`).
    fn token(&self, account: &str, scope: Scope, databases: Option<&[&str]>) -> String {
        let mut table = self.0.lock().unwrap();
        let n = table.grants.len();
        let token = format!("{API_TOKEN_PREFIX}e30.secret{n}");
        table.grants.insert(
            token.clone(),
            Grant {
                identity: Identity::from_claims(ISSUER, account),
                account: account.to_owned(),
                issuer: ISSUER.to_owned(),
                scope,
                databases: databases.map(|d| d.iter().map(|s| s.to_string()).collect()),
                credential: format!("tok_{n}"),
                handle: Handle::none(),
            },
        );
        token
    }

    fn recorded(&self) -> Vec<String> {
        self.0.lock().unwrap().recorded.clone()
    }
}

impl Authenticator for Accounts {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
        _client: Option<std::net::IpAddr>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>> {
        let found = self.0.lock().unwrap().grants.get(credential).cloned();
        Box::pin(async move {
            found.ok_or_else(|| Refusal::Unauthorized("unknown or revoked token".into()))
        })
    }

    fn claim_database<'a>(
        &'a self,
        grant: &'a Grant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<orrery_api::DatabaseSettings, Refusal>> {
        let mut table = self.0.lock().unwrap();
        let answer = match table.names.get(name) {
            Some(holder) if *holder != grant.account => {
                Err(Refusal::Conflict(format!("`{name}` is taken")))
            }
            Some(_) => Ok(Default::default()),
            None if grant.databases.is_some() => Err(Refusal::Forbidden(
                "a token for listed databases creates none".into(),
            )),
            None => {
                table.names.insert(name.to_owned(), grant.account.clone());
                Ok(Default::default())
            }
        };
        Box::pin(async move { answer })
    }

    fn rename_database<'a>(
        &'a self,
        grant: &'a Grant,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        let mut table = self.0.lock().unwrap();
        let answer = if table.names.contains_key(to) {
            Err(Refusal::Conflict(format!("`{to}` is taken")))
        } else {
            table.names.remove(from);
            table.names.insert(to.to_owned(), grant.account.clone());
            table.recorded.push(format!("renamed {from} {to}"));
            Ok(())
        };
        Box::pin(async move { answer })
    }

    fn record<'a>(&'a self, grant: &'a Grant, event: OwnerEvent) -> BoxFuture<'a, ()> {
        let line = match event {
            OwnerEvent::Published {
                database,
                module,
                created,
            } => format!(
                "{} published {database} ({} bytes, created {created})",
                grant.credential,
                module.len()
            ),
            OwnerEvent::Deleted { database } => {
                format!("{} deleted {database}", grant.credential)
            }
        };
        self.0.lock().unwrap().recorded.push(line);
        Box::pin(async {})
    }
}

fn server(dir: &std::path::Path, accounts: &Accounts) -> Server {
    let access = Access {
        authenticator: Some(Arc::new(accounts.clone())),
        open_publishing: false,
        signer: None,
    };
    server_with_access(dir, keys(dir), Default::default(), access)
}

/// One answer: status and body.
fn send(base: &str, bearer: Option<&str>, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut request = ureq::request(method, &format!("{base}{path}"));
    if path.contains("/call/") {
        request = request.set("Content-Type", "application/json");
    }
    if let Some(bearer) = bearer {
        request = request.set("Authorization", &format!("Bearer {bearer}"));
    }
    match request.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn publish(base: &str, bearer: Option<&str>, name: &str, module: &str) -> (u16, String) {
    send(
        base,
        bearer,
        "PUT",
        &format!("/v1/database/{name}?host_type=Wasm"),
        &module_bytes(module),
    )
}

#[test]
fn publishing_needs_an_account_token_with_the_deploy_scope() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::default();
    let s = server(dir.path(), &accounts);
    let base = &s.base;

    // No credentials: 401 that says how to get a token; nothing is created.
    let (status, body) = publish(base, None, "chat", "chat");
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("orrery token create") && body.contains("Authorization: Bearer"),
        "{body}"
    );
    // An app identity is no owner: 403.
    let app = mint(base);
    let (status, body) = publish(base, Some(&app), "chat", "chat");
    assert_eq!(status, 403, "{body}");
    // An unknown account token: 401.
    let (status, body) = publish(
        base,
        Some(&format!("{API_TOKEN_PREFIX}e30.nope")),
        "chat",
        "chat",
    );
    assert_eq!(status, 401, "{body}");
    // A refused credential with a large upload still gets its answer, not
    // a connection reset while the body is on its way.
    let (status, body) = send(
        base,
        Some(&format!("{API_TOKEN_PREFIX}e30.revoked")),
        "PUT",
        "/v1/database/chat?host_type=Wasm",
        &vec![0u8; 8 << 20],
    );
    assert_eq!(status, 401, "{body}");
    // A read token may not publish.
    let read = accounts.token("acc_a", Scope::Read, None);
    let (status, body) = publish(base, Some(&read), "chat", "chat");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("`deploy`"), "{body}");
    assert_eq!(
        send(base, None, "GET", "/v1/database/chat", b"").0,
        404,
        "nothing was created"
    );
    assert!(accounts.recorded().is_empty());

    // A deploy token creates it, owned by the account's identity.
    let deploy = accounts.token("acc_a", Scope::Deploy, None);
    let (status, body) = publish(base, Some(&deploy), "chat", "chat");
    assert_eq!(status, 200, "{body}");
    let (_, info) = send(base, None, "GET", "/v1/database/chat", b"");
    let owner = Identity::from_claims(ISSUER, "acc_a").to_hex().to_string();
    assert!(info.contains(&owner), "{info}");
    assert_eq!(accounts.recorded().len(), 1);
    assert!(accounts.recorded()[0].contains("published chat"));
    assert!(accounts.recorded()[0].contains("created true"));

    // Another account's token finds the name taken: 409, as the control
    // plane said; a nameless publish is refused with a hint.
    let other = accounts.token("acc_b", Scope::Admin, None);
    let (status, body) = publish(base, Some(&other), "chat", "bank");
    assert_eq!(
        status, 401,
        "an update of another account's database: {body}"
    );
    assert!(body.contains("PermissionDenied"), "{body}");
    let (status, body) = send(
        base,
        Some(&other),
        "POST",
        "/v1/database?host_type=Wasm",
        &module_bytes("bank"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("needs a name"), "{body}");
    accounts
        .0
        .lock()
        .unwrap()
        .names
        .insert("reserved".into(), "acc_a".into());
    let (status, body) = publish(base, Some(&other), "reserved", "bank");
    assert_eq!(status, 409, "{body}");
}

#[test]
fn owner_routes_follow_the_tokens_scope_and_databases() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::default();
    let s = server(dir.path(), &accounts);
    let base = &s.base;
    let admin = accounts.token("acc_a", Scope::Admin, None);
    for name in ["alpha", "beta"] {
        let (status, body) = publish(base, Some(&admin), name, "chat");
        assert_eq!(status, 200, "{body}");
    }
    let read_alpha = accounts.token("acc_a", Scope::Read, Some(&["alpha"]));
    let deploy = accounts.token("acc_a", Scope::Deploy, None);
    let app = mint(base);

    // Logs: read is enough, but only for the listed database; an app
    // identity is told it needs an account token.
    assert_eq!(
        send(
            base,
            Some(&read_alpha),
            "GET",
            "/v1/database/alpha/logs",
            b""
        )
        .0,
        200
    );
    let (status, body) = send(
        base,
        Some(&read_alpha),
        "GET",
        "/v1/database/beta/logs",
        b"",
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(base, Some(&app), "GET", "/v1/database/alpha/logs", b"");
    assert_eq!(status, 403, "{body}");

    // SQL: a read token queries private tables as the owner but may not
    // write; a deploy token writes.
    let insert = b"INSERT INTO channel (id, name) VALUES (100, 'extra')";
    let (status, body) = send(
        base,
        Some(&read_alpha),
        "POST",
        "/v1/database/alpha/sql",
        insert,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("deploy"), "{body}");
    let (status, body) = send(
        base,
        Some(&deploy),
        "POST",
        "/v1/database/alpha/sql",
        insert,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(base, Some(&app), "POST", "/v1/database/alpha/sql", insert);
    assert_eq!(status, 400, "an app user never writes: {body}");

    // Apps call reducers as before, and a token's calls run as the account.
    let (status, body) = send(
        base,
        Some(&app),
        "POST",
        "/v1/database/alpha/call/set_name",
        br#"["app"]"#,
    );
    assert_eq!(status, 200, "{body}");

    // Delete needs admin; it is recorded.
    let (status, body) = send(base, Some(&deploy), "DELETE", "/v1/database/beta", b"");
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(base, Some(&admin), "DELETE", "/v1/database/beta", b"");
    assert_eq!(status, 200, "{body}");
    assert!(accounts
        .recorded()
        .iter()
        .any(|r| r.ends_with("deleted beta")));

    // Rename: one name, moved by the control plane first.
    let (status, body) = send(
        base,
        Some(&admin),
        "PUT",
        "/v1/database/alpha/names",
        br#"["gamma"]"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(accounts
        .recorded()
        .contains(&"renamed alpha gamma".to_owned()));
    assert_eq!(send(base, None, "GET", "/v1/database/gamma", b"").0, 200);
    let (status, body) = send(
        base,
        Some(&admin),
        "POST",
        "/v1/database/gamma/names",
        b"second",
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn an_account_token_connects_over_websocket_as_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::default();
    let s = server(dir.path(), &accounts);
    let base = &s.base;
    let deploy = accounts.token("acc_a", Scope::Deploy, None);
    let (status, body) = publish(base, Some(&deploy), "chat", "chat");
    assert_eq!(status, 200, "{body}");
    let mut owner = WsClient::open_as(base, "chat", V2, Some(&deploy));
    assert_eq!(owner.identity, Identity::from_claims(ISSUER, "acc_a"));
    assert!(owner.call("set_name", crate::ws::string_args("boss")));

    // The short-lived token the SDKs fetch first is for the same identity.
    let (status, body) = send(
        base,
        Some(&deploy),
        "POST",
        "/v1/identity/websocket-token",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let short: serde_json::Value = serde_json::from_str(&body).unwrap();
    let short = short["token"].as_str().unwrap();
    let again = WsClient::open_as(base, "chat", V2, Some(short));
    assert_eq!(again.identity, owner.identity);
}
