//! The publishing flows of the stock `spacetime` CLI over a real loopback
//! socket, with the exact query parameters it sends (client-protocol §2.3.6,
//! §2.3.7, §8.4): an update that changes row-level security needs
//! `policy=BreakClients` with the `pre_publish` token (in the spelling the
//! CLI's `Hash` writes back), logs "Disconnecting all users" and then closes
//! every socket, and so does one that adds columns to a table; a major version upgrade (a 1.x module replaced by a 2.x
//! one) is flagged by `pre_publish` and accepted; a failed first publish
//! leaves the name registered to an identity with no database, as the
//! reference does; `clear=true` wipes an existing database and is ignored
//! for a new one.

use std::time::Duration;

use serde_json::Value;
use spacetimedb_lib::{bsatn, Hash};

use crate::database_api::{keys, mint, server, Server};
use crate::handmade;
use crate::modules::module_bytes;
use crate::ws::V2;
use crate::ws_views::Client as WsClient;
use crate::wsclient::Received;

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn send(base: &str, token: &str, method: &str, path: &str, body: &[u8]) -> Answer {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let result = agent
        .request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(body);
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    Answer {
        status: response.status(),
        body: response.into_string().unwrap(),
    }
}

/// The stock CLI's `pre_publish` for `db` (its query, verbatim).
fn pre_publish(base: &str, token: &str, db: &str, wasm: &[u8]) -> Answer {
    send(
        base,
        token,
        "POST",
        &format!("/v1/database/{db}/pre_publish?pretty_print_style=NoColor&host_type=Wasm"),
        wasm,
    )
}

/// What the stock CLI sends back as `token`: the answer read into its
/// `Hash` type and written out again.
fn as_the_cli_writes_it(token: &str) -> String {
    let hash: Hash = serde_json::from_value(Value::String(token.to_owned()))
        .unwrap_or_else(|e| panic!("the CLI cannot read the token {token}: {e}"));
    match serde_json::to_value(hash).unwrap() {
        Value::String(text) => text,
        other => panic!("a Hash writes as a string, not {other}"),
    }
}

/// The stock CLI's publish of an automatic update: `pre_publish`, then the
/// PUT with `token` and `policy=BreakClients` (it sends both for every
/// automatic update, whether or not it breaks clients).
fn stock_update(base: &str, token: &str, db: &str, wasm: &[u8]) -> Answer {
    let pre = pre_publish(base, token, db, wasm);
    assert_eq!(pre.status, 200, "{}", pre.body);
    let auto = &pre.json()["AutoMigrate"];
    let hash = auto["token"].as_str().expect("an AutoMigrate token");
    let sent = as_the_cli_writes_it(hash);
    assert_eq!(
        sent, hash,
        "the token survives the CLI's round trip unchanged"
    );
    send(
        base,
        token,
        "PUT",
        &format!("/v1/database/{db}?token={sent}&policy=BreakClients&host_type=Wasm"),
        wasm,
    )
}

fn logs(base: &str, token: &str, db: &str) -> Vec<String> {
    let answer = send(base, token, "GET", &format!("/v1/database/{db}/logs"), b"");
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            record["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

const DISCONNECTING: &str = "Disconnecting all users";

/// Reads `client`'s socket until it closes; the close code and reason.
fn closed(client: &mut WsClient) -> (u16, String) {
    loop {
        match client.ws.next() {
            Received::Messages(_) => continue,
            Received::Closed(close) => break close.expect("a close frame"),
        }
    }
}

fn team(team: u32) -> Vec<u8> {
    bsatn::to_vec(&team).unwrap()
}

#[test]
fn a_changed_row_level_security_update_needs_break_clients_logs_and_disconnects_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let base = &s.base;
    let owner = mint(base);
    let created = send(
        base,
        &owner,
        "PUT",
        "/v1/database/rules?host_type=Wasm",
        &module_bytes("rls"),
    );
    assert_eq!(created.status, 200, "{}", created.body);

    // Two clients, really connected: each subscribed and called.
    let mut alice = WsClient::open(base, "rules", V2);
    let mut boss = WsClient::open_as(base, "rules", V2, Some(&owner));
    for client in [&mut alice, &mut boss] {
        client.subscribe(0, "SELECT * FROM member").unwrap();
        assert!(client.call("join_team", team(1)));
    }

    // pre_publish says the update breaks clients and is no major upgrade.
    let v2 = module_bytes("rls-v2");
    let pre = pre_publish(base, &owner, "rules", &v2);
    assert_eq!(pre.status, 200, "{}", pre.body);
    let auto = pre.json()["AutoMigrate"].clone();
    assert_eq!(auto["break_clients"], true, "{}", pre.body);
    assert_eq!(auto["major_version_upgrade"], false, "{}", pre.body);
    assert!(
        auto["migrate_plan"]
            .as_str()
            .unwrap()
            .contains("disconnect every client"),
        "{}",
        pre.body
    );

    // Without the policy (Compatible) the update is refused, and so it is
    // with a token for some other update; nothing changes, nobody leaves.
    let refused = send(
        base,
        &owner,
        "PUT",
        "/v1/database/rules?host_type=Wasm",
        &v2,
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("policy=BreakClients"),
        "{}",
        refused.body
    );
    let wrong = send(
        base,
        &owner,
        "PUT",
        "/v1/database/rules?token=0x1234&policy=BreakClients&host_type=Wasm",
        &v2,
    );
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.body.contains("does not match"), "{}", wrong.body);
    let garbage = send(
        base,
        &owner,
        "PUT",
        "/v1/database/rules?token=zz&policy=BreakClients&host_type=Wasm",
        &v2,
    );
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert!(!logs(base, &owner, "rules")
        .iter()
        .any(|m| m == DISCONNECTING));
    assert!(alice.call("join_team", team(2)), "still connected");

    // With the policy and the token the stock CLI sends back: updated.
    let updated = stock_update(base, &owner, "rules", &v2);
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["Success"]["op"], "updated");
    for client in [&mut alice, &mut boss] {
        let (code, reason) = closed(client);
        assert_eq!(code, 1001, "{reason}");
        // By the time a client sees its socket close, the log says why.
        assert!(
            logs(base, &owner, "rules")
                .iter()
                .any(|m| m == DISCONNECTING),
            "the log line comes before the disconnect"
        );
    }
    assert_eq!(
        logs(base, &owner, "rules")
            .iter()
            .filter(|m| *m == DISCONNECTING)
            .count(),
        1
    );

    // Publishing the same rules again keeps the clients and logs nothing.
    let mut carol = WsClient::open(base, "rules", V2);
    carol.subscribe(0, "SELECT * FROM member").unwrap();
    let pre = pre_publish(base, &owner, "rules", &v2);
    assert_eq!(
        pre.json()["AutoMigrate"]["break_clients"],
        false,
        "{}",
        pre.body
    );
    let again = stock_update(base, &owner, "rules", &v2);
    assert_eq!(again.status, 200, "{}", again.body);
    let plain = send(
        base,
        &owner,
        "PUT",
        "/v1/database/rules?host_type=Wasm",
        &v2,
    );
    assert_eq!(plain.status, 200, "Compatible is fine: {}", plain.body);
    assert!(carol.call("join_team", team(0)), "still connected");
    assert_eq!(
        logs(base, &owner, "rules")
            .iter()
            .filter(|m| *m == DISCONNECTING)
            .count(),
        1
    );
}

// Clients decode rows by the schema they were built against: an update
// that adds columns to a table needs policy=BreakClients too, and closes
// every socket with the reason.
#[test]
fn an_update_that_adds_columns_needs_break_clients_and_disconnects_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let base = &s.base;
    let owner = mint(base);
    let created = send(
        base,
        &owner,
        "PUT",
        "/v1/database/growing?host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    // Subscribed to a table the update leaves alone: only the new column
    // elsewhere disconnects her.
    let mut alice = WsClient::open(base, "growing", V2);
    alice.subscribe(0, "SELECT * FROM channel").unwrap();

    let v2 = module_bytes("chat-v2");
    let pre = pre_publish(base, &owner, "growing", &v2);
    let auto = pre.json()["AutoMigrate"].clone();
    assert_eq!(auto["break_clients"], true, "{}", pre.body);
    let refused = send(
        base,
        &owner,
        "PUT",
        "/v1/database/growing?host_type=Wasm",
        &v2,
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("table `user` gains columns"),
        "{}",
        refused.body
    );
    assert!(
        alice.query("SELECT * FROM reaction").is_err(),
        "still chat: {}",
        refused.body
    );

    let updated = stock_update(base, &owner, "growing", &v2);
    assert_eq!(updated.status, 200, "{}", updated.body);
    let (code, reason) = closed(&mut alice);
    assert_eq!(code, 1001, "{reason}");
    assert!(reason.contains("table `user` gains columns"), "{reason}");
    assert!(logs(base, &owner, "growing")
        .iter()
        .any(|m| m == DISCONNECTING));
}

#[test]
fn a_major_version_upgrade_is_flagged_by_pre_publish_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let base = &s.base;
    let owner = mint(base);
    let (v9, v10) = (handmade::v9_module(), handmade::v10_module());
    let created = send(
        base,
        &owner,
        "PUT",
        "/v1/database/old-notes?host_type=Wasm",
        &v9,
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let inserted = send(
        base,
        &owner,
        "POST",
        "/v1/database/old-notes/sql",
        b"INSERT INTO note (owner, text) VALUES (7, 'kept')",
    );
    assert_eq!(inserted.status, 200, "{}", inserted.body);

    // 1.x → 1.x is no upgrade; 1.x → 2.x is, on both kinds of answer.
    let same = pre_publish(base, &owner, "old-notes", &v9);
    assert_eq!(
        same.json()["AutoMigrate"]["major_version_upgrade"],
        false,
        "{}",
        same.body
    );
    let up = pre_publish(base, &owner, "old-notes", &v10);
    assert_eq!(
        up.json()["AutoMigrate"]["major_version_upgrade"],
        true,
        "{}",
        up.body
    );
    assert_eq!(
        up.json()["AutoMigrate"]["break_clients"],
        false,
        "{}",
        up.body
    );
    let manual = pre_publish(base, &owner, "old-notes", &module_bytes("chat"));
    assert_eq!(
        manual.json()["ManualMigrate"]["major_version_upgrade"],
        true,
        "{}",
        manual.body
    );

    // The stock CLI confirms on its side and sends nothing more; the
    // server takes the update, and the data stays.
    let updated = stock_update(base, &owner, "old-notes", &v10);
    assert_eq!(updated.status, 200, "{}", updated.body);
    let rows = send(
        base,
        &owner,
        "POST",
        "/v1/database/old-notes/sql",
        b"SELECT text FROM note",
    );
    assert_eq!(
        rows.json()[0]["rows"],
        serde_json::json!([["kept"]]),
        "{}",
        rows.body
    );
    let after = pre_publish(base, &owner, "old-notes", &v10);
    assert_eq!(
        after.json()["AutoMigrate"]["major_version_upgrade"],
        false,
        "{}",
        after.body
    );
}

/// A failed first publish of `name` by `owner` (init traps).
fn fail_first_publish(s: &Server, owner: &str, name: &str) {
    let failed = send(
        &s.base,
        owner,
        "PUT",
        &format!("/v1/database/{name}?host_type=Wasm"),
        &handmade::init_traps(),
    );
    assert_eq!(failed.status, 400, "{}", failed.body);
}

#[test]
fn a_failed_first_publish_leaves_the_name_resolvable_to_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = server(dir.path(), keys(dir.path()));
    let owner = mint(&s.base);
    let other = mint(&s.base);
    fail_first_publish(&s, &owner, "doomed");

    // What the stock CLI asks next (`describe`, `sql`, `call`, `logs`
    // resolve the name, then use the identity): the name resolves, the
    // database routes answer "No such database.".
    let check = |s: &Server| -> String {
        let base = &s.base;
        let id = send(base, &owner, "GET", "/v1/database/doomed/identity", b"");
        assert_eq!(id.status, 200, "{}", id.body);
        assert_eq!(id.body.len(), 64, "{}", id.body);
        for path in [
            format!("/v1/database/{}/schema?version=10", id.body),
            format!("/v1/database/{}", id.body),
            "/v1/database/doomed".to_owned(),
            "/v1/database/doomed/names".to_owned(),
            "/v1/database/doomed/logs".to_owned(),
        ] {
            let answer = send(base, &owner, "GET", &path, b"");
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (404, "No such database."),
                "{path}"
            );
        }
        let pre = pre_publish(base, &owner, &id.body, &module_bytes("chat"));
        assert_eq!(pre.status, 404, "a new database for the CLI: {}", pre.body);
        let mine = send(
            base,
            &owner,
            "GET",
            &format!("/v1/identity/{}/databases", owner_identity(base, &owner)),
            b"",
        );
        assert_eq!(
            mine.json()["identities"],
            serde_json::json!([]),
            "{}",
            mine.body
        );
        id.body
    };
    let id = check(&s);
    // An unknown name is still "not found", and the name is not free.
    let unknown = send(
        &s.base,
        &owner,
        "GET",
        "/v1/database/never-was/identity",
        b"",
    );
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (404, "`never-was` not found")
    );
    let theirs = send(
        &s.base,
        &other,
        "PUT",
        "/v1/database/doomed?host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(theirs.status, 401, "{}", theirs.body);
    assert_eq!(theirs.json()["PermissionDenied"]["name"], "doomed");

    // It survives a restart.
    drop(s);
    s = server(dir.path(), keys(dir.path()));
    assert_eq!(check(&s), id);

    // The owner's next publish creates the database under that identity.
    let created = send(
        &s.base,
        &owner,
        "PUT",
        "/v1/database/doomed?host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.json()["Success"]["op"], "created");
    assert_eq!(created.json()["Success"]["database_identity"], id.as_str());
    let schema = send(
        &s.base,
        &owner,
        "GET",
        "/v1/database/doomed/schema?version=10",
        b"",
    );
    assert_eq!(schema.status, 200, "{}", schema.body);
    let mine = send(
        &s.base,
        &owner,
        "GET",
        &format!("/v1/identity/{}/databases", owner_identity(&s.base, &owner)),
        b"",
    );
    assert_eq!(
        mine.json()["identities"],
        serde_json::json!([id]),
        "{}",
        mine.body
    );

    // Deleting a name that never got its database frees it.
    fail_first_publish(&s, &owner, "doomed-too");
    let id2 = send(
        &s.base,
        &owner,
        "GET",
        "/v1/database/doomed-too/identity",
        b"",
    )
    .body;
    let deleted = send(
        &s.base,
        &owner,
        "DELETE",
        &format!("/v1/database/{id2}"),
        b"",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let gone = send(
        &s.base,
        &owner,
        "GET",
        "/v1/database/doomed-too/identity",
        b"",
    );
    assert_eq!(gone.status, 404, "{}", gone.body);
    let by_other = send(
        &s.base,
        &other,
        "PUT",
        "/v1/database/doomed-too?host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(by_other.status, 200, "{}", by_other.body);
}

/// The identity a token stands for, as the server says it.
fn owner_identity(base: &str, token: &str) -> String {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let response = agent
        .get(&format!("{base}/v1/database/anything/identity"))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    response
        .header("spacetime-identity")
        .expect("the database routes name the caller")
        .to_owned()
}

#[test]
fn clear_wipes_an_existing_database_and_is_ignored_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let base = &s.base;
    let owner = mint(base);
    // `--delete-data` on a database that does not exist yet: created.
    let created = send(
        base,
        &owner,
        "PUT",
        "/v1/database/fresh?clear=true&host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.json()["Success"]["op"], "created");
    let sql = |text: &str| {
        send(
            base,
            &owner,
            "POST",
            "/v1/database/fresh/sql",
            text.as_bytes(),
        )
    };
    assert_eq!(
        sql("INSERT INTO channel (id, name) VALUES (0, 'extra')").status,
        200
    );
    let count = || {
        sql("SELECT name FROM channel").json()[0]["rows"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(), 2);

    // `--delete-data=on-conflict` with a compatible update: the CLI sends
    // the token, no `clear`, and the data stays.
    let kept = stock_update(base, &owner, "fresh", &module_bytes("chat"));
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(count(), 2);
    // With a conflicting one, `pre_publish` says so and the CLI sends only
    // `clear=true`: the data goes and `init` runs again.
    let pre = pre_publish(base, &owner, "fresh", &module_bytes("bank"));
    assert!(
        pre.json()["ManualMigrate"]["reason"].is_string(),
        "{}",
        pre.body
    );
    let without = send(
        base,
        &owner,
        "PUT",
        "/v1/database/fresh?host_type=Wasm",
        &module_bytes("bank"),
    );
    assert_eq!(without.status, 400, "never: refused, {}", without.body);
    assert_eq!(count(), 2, "nothing changed");
    let cleared = send(
        base,
        &owner,
        "PUT",
        "/v1/database/fresh?clear=true&host_type=Wasm",
        &module_bytes("bank"),
    );
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    assert_eq!(cleared.json()["Success"]["op"], "updated");
    let accounts = sql("SELECT * FROM account");
    assert_eq!(accounts.status, 200, "now a bank: {}", accounts.body);
    // `--delete-data` (always) sends `clear=true` without asking the
    // server: even a compatible update starts again from `init`.
    let back = send(
        base,
        &owner,
        "PUT",
        "/v1/database/fresh?clear=true&host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(
        sql("INSERT INTO channel (id, name) VALUES (0, 'extra')").status,
        200
    );
    assert_eq!(count(), 2);
    let again = send(
        base,
        &owner,
        "PUT",
        "/v1/database/fresh?clear=true&host_type=Wasm",
        &module_bytes("chat"),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(count(), 1, "init created `general` again, alone");
}
