//! Automatic migrations the reference accepts, through the real HTTP API:
//! publish `migrate-v1`, write rows, republish `migrate-v2` (an enum variant
//! appended, a sequence added, a primary key removed, an event table's
//! columns changed) and check that the rows survive and the new behaviour
//! holds; and that what the reference still refuses is refused with a clear
//! error and changes nothing.

use serde_json::{json, Value};
use spacetimedb_lib::bsatn;

use crate::database_api::{keys, mint, server};
use crate::modules::module_bytes;
use crate::ws::{publish, V2};
use crate::ws_views::{sql, Client};

/// Sends `bytes` with `method` to `path`; the status and body.
fn send(base: &str, token: &str, method: &str, path: &str, bytes: &[u8]) -> (u16, String) {
    let response = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(bytes);
    match response {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// PUTs `module` over database `name` as the stock CLI does: `pre_publish`
/// first, then, for an automatic update, with its token and
/// `policy=BreakClients`; otherwise plainly (and the update is refused
/// with the reasons). The status and body of the PUT.
fn republish(base: &str, token: &str, name: &str, module: &str) -> (u16, String) {
    let wasm = module_bytes(module);
    let (status, body) = send(
        base,
        token,
        "POST",
        &format!("/v1/database/{name}/pre_publish?host_type=Wasm"),
        &wasm,
    );
    assert_eq!(status, 200, "pre_publish {name}: {body}");
    let pre: Value = serde_json::from_str(&body).unwrap();
    let path = match pre["AutoMigrate"]["token"].as_str() {
        Some(hash) => {
            format!("/v1/database/{name}?token={hash}&policy=BreakClients&host_type=Wasm")
        }
        None => format!("/v1/database/{name}?host_type=Wasm"),
    };
    send(base, token, "PUT", &path, &wasm)
}

fn call(base: &str, token: &str, db: &str, function: &str, args: Value) {
    let response = ureq::post(&format!("{base}/v1/database/{db}/call/{function}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&args.to_string());
    match response {
        Ok(r) => assert_eq!(r.status(), 200),
        Err(ureq::Error::Status(status, r)) => {
            panic!("{function}: {status} {}", r.into_string().unwrap())
        }
        Err(e) => panic!("{function}: {e}"),
    }
}

fn rows(base: &str, token: &str, db: &str, text: &str) -> Vec<Value> {
    let (status, body) = sql(base, token, db, text);
    assert_eq!(status, 200, "`{text}`: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    let mut rows = json[0]["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[test]
fn republishing_with_the_changes_the_reference_migrates_keeps_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let (base, db) = (&s.base, "migrating");
    let owner = mint(base);
    publish(base, &owner, db, "migrate-v1");
    call(base, &owner, db, "add_paint", json!([1, false]));
    call(base, &owner, db, "add_paint", json!([2, true]));
    call(base, &owner, db, "add_counter", json!(["old-a"]));
    call(base, &owner, db, "add_counter", json!(["old-b"]));
    call(base, &owner, db, "add_keyed", json!([1, "first"]));
    call(base, &owner, db, "send_ping", json!(["before"]));
    let paint_before = rows(base, &owner, db, "SELECT * FROM paint");
    assert_eq!(paint_before.len(), 2);

    // v2 reshapes the event table `ping`, which disconnects every client:
    // a plain update is refused with that reason and changes nothing.
    let (status, body) = send(
        base,
        &owner,
        "PUT",
        &format!("/v1/database/{db}?host_type=Wasm"),
        &module_bytes("migrate-v2"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("event table `ping` changes its columns")
            && body.contains("policy=BreakClients"),
        "{body}"
    );
    call(base, &owner, db, "send_ping", json!(["still v1"]));

    let (status, body) = republish(base, &owner, db, "migrate-v2");
    assert_eq!(status, 200, "{body}");

    // The enum gained `Blue`: old rows read the same, new rows use it.
    assert_eq!(rows(base, &owner, db, "SELECT * FROM paint"), paint_before);
    call(base, &owner, db, "add_paint", json!([3, true]));
    let mut client = Client::open(base, db, V2);
    let blue = client.query("SELECT * FROM paint WHERE id = 3").unwrap();
    assert_eq!(
        blue,
        [bsatn::to_vec(&(3u32, 2u8)).unwrap()],
        "tag 2 is Blue"
    );
    let red = client.query("SELECT * FROM paint WHERE id = 1").unwrap();
    assert_eq!(red, [bsatn::to_vec(&(1u32, 0u8)).unwrap()]);

    // `n` is now auto-incremented: the old rows keep 0, new ones count from 1.
    call(base, &owner, db, "add_counter", json!(["new-a"]));
    call(base, &owner, db, "add_counter", json!(["new-b"]));
    assert_eq!(
        rows(base, &owner, db, "SELECT * FROM counter"),
        [
            json!([0, "old-a"]),
            json!([0, "old-b"]),
            json!([1, "new-a"]),
            json!([2, "new-b"]),
        ]
    );

    // `key` is no longer a primary key: a second row with key 1 is accepted.
    call(base, &owner, db, "add_keyed", json!([1, "second"]));
    assert_eq!(
        rows(base, &owner, db, "SELECT * FROM keyed WHERE key = 1"),
        [json!([1, "first"]), json!([1, "second"])]
    );

    // The event table takes its new columns.
    client.subscribe(0, "SELECT * FROM ping").unwrap();
    assert!(client.call(
        "send_ping",
        bsatn::to_vec(&(5u64, "after".to_string())).unwrap()
    ));

    // Going back removes the variant `Blue`: the reference refuses that,
    // and nothing changes.
    let (status, body) = republish(base, &owner, db, "migrate-v1");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("table `paint`: column `color` changed type")
            && body.contains("enum variants were removed"),
        "{body}"
    );
    assert_eq!(rows(base, &owner, db, "SELECT * FROM paint").len(), 3);
    call(base, &owner, db, "add_counter", json!(["still-v2"]));
    assert_eq!(
        rows(
            base,
            &owner,
            db,
            "SELECT n FROM counter WHERE label = 'still-v2'"
        ),
        [json!([3])]
    );
}

#[test]
fn a_sequence_over_values_in_its_range_is_refused_until_they_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), keys(dir.path()));
    let (base, db) = (&s.base, "seq-refused");
    let owner = mint(base);
    publish(base, &owner, db, "migrate-v1");
    call(base, &owner, db, "add_counter", json!(["zero"]));
    call(base, &owner, db, "add_counter_n", json!([5, "five"]));
    // The reference refuses a new sequence whose range holds existing values.
    let (status, body) = republish(base, &owner, db, "migrate-v2");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("cannot add sequence") && body.contains("already holds 5"),
        "{body}"
    );
    // Nothing changed: v1 still serves, with its rows.
    call(base, &owner, db, "add_keyed", json!([1, "a"]));
    assert_eq!(
        rows(base, &owner, db, "SELECT * FROM counter"),
        [json!([0, "zero"]), json!([5, "five"])]
    );

    // Once the value is gone the same update goes through.
    let (status, body) = sql(base, &owner, db, "DELETE FROM counter WHERE n = 5");
    assert_eq!(status, 200, "{body}");
    let (status, body) = republish(base, &owner, db, "migrate-v2");
    assert_eq!(status, 200, "{body}");

    call(base, &owner, db, "add_counter", json!(["one"]));
    assert_eq!(
        rows(base, &owner, db, "SELECT * FROM counter"),
        [json!([0, "zero"]), json!([1, "one"])]
    );
}
