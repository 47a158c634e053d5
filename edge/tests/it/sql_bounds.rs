//! Bounded queries for callers who do not own the database (issue 12), over a
//! real loopback socket with the `bank` module seeded with 2,000 accounts: a
//! cross product over `/sql` and over a WebSocket `OneOffQuery` is refused
//! with the limit named, while ordinary queries keep working and a writer's
//! reducer calls complete while the refused query runs.

use std::thread;
use std::time::Duration;

use orrery_api::limits::{QUERY_RESULT_ROWS_MAX, QUERY_ROWS_EXAMINED_MAX};
use orrery_wire::messages::ReducerOutcome;
use orrery_wire::{ClientMessage, ServerMessage};
use serde_json::Value;

use crate::database_api::{keys, mint, server};
use crate::ws::{connect, publish, table_rows, V3_V2};

const ACCOUNTS: u64 = 2_000;

/// (status, body) of a POST with `token` as bearer.
fn post(base: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let result = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
        .post(&format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("POST {path} failed: {e}"),
    };
    (response.status(), response.into_string().unwrap())
}

fn sql(base: &str, token: &str, query: &str) -> (u16, String) {
    post(base, "/v1/database/bounded/sql", token, query)
}

fn sql_rows(base: &str, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = sql(base, token, query);
    assert_eq!(status, 200, "{query}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    json[0]["rows"].as_array().unwrap().clone()
}

fn transfer(base: &str, token: &str) {
    let (status, body) = post(
        base,
        "/v1/database/bounded/call/transfer",
        token,
        "[1, 2, 1]",
    );
    assert_eq!(status, 200, "transfer: {body}");
}

/// A server with database `bounded` (module `bank`, 2,000 accounts) and the
/// owner's token.
fn seeded(dir: &std::path::Path) -> (crate::database_api::Server, String) {
    let server = server(dir, keys(dir));
    let owner = mint(&server.base);
    publish(&server.base, &owner, "bounded", "bank");
    let (status, body) = post(
        &server.base,
        "/v1/database/bounded/call/seed",
        &owner,
        &format!("[{ACCOUNTS}]"),
    );
    assert_eq!(status, 200, "seed: {body}");
    (server, owner)
}

#[test]
fn a_cross_product_over_sql_is_refused_while_writers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (server, owner) = seeded(dir.path());
    let base = server.base.clone();
    let stranger = mint(&base);

    // Ordinary queries work for anyone.
    let rows = sql_rows(&base, &stranger, "SELECT * FROM account WHERE id = 5");
    assert_eq!(rows, vec![serde_json::json!([5, 1_000_000])]);
    let rows = sql_rows(
        &base,
        &stranger,
        "SELECT a.id FROM account a JOIN account b ON a.id = b.id WHERE a.id = 7",
    );
    assert_eq!(rows, vec![serde_json::json!([7])]);

    // A 3-way cross product (8·10⁹ tuples) runs while the owner writes:
    // every transfer must commit while it runs, and it is refused by name.
    let query = {
        let (base, stranger) = (base.clone(), stranger.clone());
        thread::spawn(move || {
            sql(
                &base,
                &stranger,
                "SELECT COUNT(*) AS n FROM account a JOIN account b JOIN account c",
            )
        })
    };
    let mut transfers = 0;
    while !query.is_finished() || transfers == 0 {
        transfer(&base, &owner);
        transfers += 1;
    }
    let (status, body) = query.join().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("rows_examined = {QUERY_ROWS_EXAMINED_MAX}")),
        "{body}"
    );
    let rows = sql_rows(&base, &owner, "SELECT balance FROM account WHERE id = 2");
    assert_eq!(rows, vec![serde_json::json!([1_000_000 + transfers])]);
}

#[test]
fn a_cross_product_as_a_one_off_query_is_refused_and_the_socket_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _owner) = seeded(dir.path());
    let stranger = mint(&server.base);
    let mut client = connect(
        &server.base,
        "bounded",
        "?compression=None",
        V3_V2,
        Some(&stranger),
    );
    let mut pending = Vec::new();
    let ServerMessage::InitialConnection { .. } = client.message(&mut pending) else {
        panic!("InitialConnection must come first");
    };

    // 4·10⁶ pairs: over a non-owner's budget, whether the pairs are
    // filtered away (rows examined) or returned (result rows).
    for (request_id, query, limit) in [
        (
            1,
            "SELECT a.* FROM account a JOIN account b WHERE b.id > 5000",
            format!("rows_examined = {QUERY_ROWS_EXAMINED_MAX}"),
        ),
        (
            4,
            "SELECT a.* FROM account a JOIN account b",
            format!("result_rows = {QUERY_RESULT_ROWS_MAX}"),
        ),
    ] {
        client.send(&[ClientMessage::OneOffQuery {
            request_id,
            query_string: query.into(),
        }]);
        match client.message(&mut pending) {
            ServerMessage::OneOffQueryResult {
                request_id: answered,
                result: Err(error),
            } if answered == request_id => assert!(error.contains(&limit), "{error}"),
            other => panic!("expected a refused one-off query, got {other:?}"),
        }
    }

    // The same socket goes on: an ordinary query, then a write.
    client.send(&[ClientMessage::OneOffQuery {
        request_id: 2,
        query_string: "SELECT * FROM account WHERE id = 7".into(),
    }]);
    match client.message(&mut pending) {
        ServerMessage::OneOffQueryResult {
            request_id: 2,
            result: Ok(rows),
        } => assert_eq!(table_rows(&rows, "account").len(), 1),
        other => panic!("{other:?}"),
    }
    let mut args = 1u64.to_le_bytes().to_vec();
    args.extend_from_slice(&2u64.to_le_bytes());
    args.extend_from_slice(&1i64.to_le_bytes());
    client.send(&[ClientMessage::CallReducer {
        request_id: 3,
        reducer: "transfer".into(),
        args,
    }]);
    match client.message(&mut pending) {
        ServerMessage::ReducerResult {
            request_id: 3,
            result: ReducerOutcome::Ok(_) | ReducerOutcome::OkEmpty,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}
