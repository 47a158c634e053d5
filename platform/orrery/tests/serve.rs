//! End-to-end test of `orrery start` serving databases: publish two chat
//! modules over HTTP, call a reducer, query with `/sql`, stop with SIGTERM,
//! restart on the same data directory and find the rows and names again.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use serde_json::{json, Value};

use support::{send, Orrery};

fn sql_rows(o: &Orrery, token: &str, db: &str, sql: &str) -> Vec<Value> {
    let (status, body) = send(
        ureq::post(&o.url(&format!("/v1/database/{db}/sql")))
            .set("Authorization", &format!("Bearer {token}")),
        Some(sql.as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    reply[0]["rows"].as_array().unwrap().clone()
}

#[test]
fn start_serves_databases_and_recovers_them_after_sigterm() {
    let wasm = modules::module_bytes("chat");
    let data = tempfile::tempdir().unwrap();

    let o = Orrery::start(data.path());
    let (status, body) = send(ureq::post(&o.url("/v1/identity")), None);
    assert_eq!(status, 200, "{body}");
    let minted: Value = serde_json::from_str(&body).unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let mut ids = Vec::new();
    for name in ["chat-one", "chat-two"] {
        let (status, body) = send(
            ureq::put(&o.url(&format!("/v1/database/{name}?host_type=Wasm")))
                .set("Authorization", &bearer),
            Some(&wasm),
        );
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["Success"]["op"], "created");
        ids.push(
            reply["Success"]["database_identity"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/chat-one/call/set_name"))
            .set("Authorization", &bearer)
            .set("Content-Type", "application/json"),
        Some(br#"["persisted"]"#),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/chat-two/sql")).set("Authorization", &bearer),
        Some(b"INSERT INTO channel (id, name) VALUES (0, 'from-sql')"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sql_rows(&o, &token, "chat-one", "SELECT name FROM user"),
        vec![json!([[0, "persisted"]])]
    );
    o.stop();

    let o = Orrery::start(data.path());
    for (name, id) in ["chat-one", "chat-two"].iter().zip(&ids) {
        let (status, body) = send(
            ureq::get(&o.url(&format!("/v1/database/{name}/identity"))),
            None,
        );
        assert_eq!((status, body.as_str()), (200, id.as_str()));
    }
    assert_eq!(
        sql_rows(&o, &token, "chat-one", "SELECT name FROM user"),
        vec![json!([[0, "persisted"]])]
    );
    let channels = sql_rows(&o, &token, "chat-two", "SELECT name FROM channel");
    assert!(channels.contains(&json!(["from-sql"])), "{channels:?}");
    let (status, body) = send(
        ureq::get(&o.url(&format!(
            "/v1/identity/{}/databases",
            minted["identity"].as_str().unwrap()
        ))),
        None,
    );
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["identities"].as_array().unwrap().len(), 2);
    o.stop();
}
