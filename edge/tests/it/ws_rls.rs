//! Row-level security over a real loopback socket, with the rls module: a
//! client sees its own documents and those of its teams (a join filter whose
//! lookup table is itself filtered), its own memberships only, and every
//! notice; the owner sees everything. After each call, every client's
//! incrementally maintained results must equal re-running its queries, a
//! document admitted by two filters counting twice.

use spacetimedb_lib::{bsatn, Identity};

use crate::modules::module_bytes;
use crate::ws::{publish, V2, V3_V2};
use crate::ws_views::{published, sorted, sorted_strings, sql, Client};
use crate::wsclient::Received;

const QUERIES: [&str; 4] = [
    "SELECT * FROM doc",
    "SELECT * FROM member",
    "SELECT * FROM notice",
    "SELECT * FROM doc WHERE team = 1",
];

/// A `doc` row's title.
fn title(row: &[u8]) -> String {
    bsatn::from_slice::<(u64, Identity, u32, String)>(row)
        .unwrap()
        .3
}

fn titles(client: &Client, set: u32) -> Vec<String> {
    let mut titles: Vec<String> = client.held[&set].iter().map(|r| title(r)).collect();
    titles.sort();
    titles
}

fn doc(team: u32, title: &str) -> Vec<u8> {
    bsatn::to_vec(&(team, title.to_string())).unwrap()
}

fn team(team: u32) -> Vec<u8> {
    bsatn::to_vec(&team).unwrap()
}

/// Every client's held rows equal a fresh evaluation of its queries.
fn consistent(clients: &mut [&mut Client], step: &str) {
    for (c, client) in clients.iter_mut().enumerate() {
        for (set, query) in QUERIES.iter().enumerate() {
            let rerun = sorted(client.query(query).unwrap());
            let held = sorted(client.held[&(set as u32)].clone());
            assert_eq!(held, rerun, "after {step}: client {c}'s `{query}`");
        }
    }
}

#[test]
fn row_level_security_limits_what_each_client_sees() {
    let (_dir, server, owner_token) = published("rls", "rls");
    let base = &server.base;

    let mut alice = Client::open(base, "rls", V3_V2);
    let mut bob = Client::open(base, "rls", V2);
    let mut owner = Client::open_as(base, "rls", V2, Some(&owner_token));
    assert!(alice.call("add_doc", doc(1, "a-1")));
    assert!(alice.call("add_doc", doc(2, "a-2")));
    assert!(bob.call("join_team", team(1)));
    for client in [&mut alice, &mut bob, &mut owner] {
        for (set, query) in QUERIES.iter().enumerate() {
            client.subscribe(set as u32, query).unwrap();
        }
    }
    assert_eq!(titles(&alice, 0), ["a-1", "a-2"], "Alice's own documents");
    assert_eq!(
        titles(&bob, 0),
        ["a-1"],
        "team 1's document, through Bob's membership"
    );
    assert_eq!(
        titles(&owner, 0),
        ["a-1", "a-2"],
        "the owner bypasses the filters"
    );
    assert!(alice.held[&1].is_empty(), "Alice belongs to no team");
    assert_eq!(bob.held[&1].len(), 1, "Bob sees his own membership only");
    consistent(&mut [&mut alice, &mut bob, &mut owner], "subscribing");

    let steps: [(&str, &str, Vec<u8>); 8] = [
        ("alice", "add_doc", doc(1, "a-3")),
        ("alice", "add_doc", doc(3, "a-4")),
        ("bob", "add_doc", doc(2, "b-1")),
        // Alice's team-1 documents are now hers and her team's: twice.
        ("alice", "join_team", team(1)),
        ("bob", "leave_team", team(1)),
        (
            "bob",
            "post_notice",
            bsatn::to_vec(&"hello".to_string()).unwrap(),
        ),
        ("alice", "leave_team", team(1)),
        ("bob", "join_team", team(2)),
    ];
    for (i, (who, reducer, args)) in steps.into_iter().enumerate() {
        let caller = if who == "alice" { &mut alice } else { &mut bob };
        assert!(caller.call(reducer, args), "{reducer} by {who}");
        let step = format!("step {i}: {reducer} by {who}");
        consistent(&mut [&mut alice, &mut bob, &mut owner], &step);
        if i == 3 {
            assert_eq!(
                titles(&alice, 0),
                ["a-1", "a-1", "a-2", "a-3", "a-3", "a-4"]
            );
            assert_eq!(titles(&bob, 0), ["a-1", "a-3", "b-1"]);
        }
    }
    // Bob left team 1 and joined team 2: his own document and team 2's.
    assert_eq!(titles(&bob, 0), ["a-2", "b-1", "b-1"]);
    assert_eq!(titles(&alice, 0), ["a-1", "a-2", "a-3", "a-4"]);
    assert_eq!(titles(&owner, 0).len(), 5);
    assert_eq!(alice.held[&2].len(), 1, "notices are unfiltered");

    // SQL over HTTP applies the same filters; COUNT counts what is visible.
    let rows = |token: &str, query: &str| -> Vec<serde_json::Value> {
        let (status, body) = sql(base, token, "rls", query);
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        json[0]["rows"].as_array().unwrap().clone()
    };
    let team2: Vec<String> = rows(&bob.token, "SELECT * FROM doc WHERE team = 2")
        .iter()
        .map(|row| row[3].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted_strings(team2), ["a-2", "b-1", "b-1"]);
    assert_eq!(rows(&alice.token, "SELECT COUNT(*) AS n FROM doc")[0][0], 4);
    assert_eq!(rows(&owner_token, "SELECT COUNT(*) AS n FROM doc")[0][0], 5);
    assert!(rows(&alice.token, "SELECT * FROM member").is_empty());
    assert_eq!(rows(&bob.token, "SELECT * FROM member").len(), 1);
    assert_eq!(rows(&owner_token, "SELECT * FROM member").len(), 1);
    assert_eq!(rows(&bob.token, "SELECT * FROM doc LIMIT 2").len(), 2);
}

/// Publishes `module` to `name` as the stock CLI does an update that
/// breaks clients: `pre_publish`, then the PUT with its token and
/// `policy=BreakClients`.
fn publish_breaking(base: &str, token: &str, name: &str, module: &str) {
    let wasm = module_bytes(module);
    let pre = ureq::post(&format!(
        "{base}/v1/database/{name}/pre_publish?pretty_print_style=NoColor&host_type=Wasm"
    ))
    .set("Authorization", &format!("Bearer {token}"))
    .send_bytes(&wasm)
    .unwrap()
    .into_string()
    .unwrap();
    let pre: serde_json::Value = serde_json::from_str(&pre).unwrap();
    assert_eq!(pre["AutoMigrate"]["break_clients"], true, "{pre}");
    let hash = pre["AutoMigrate"]["token"].as_str().unwrap();
    let response = ureq::put(&format!(
        "{base}/v1/database/{name}?token={hash}&policy=BreakClients&host_type=Wasm"
    ))
    .set("Authorization", &format!("Bearer {token}"))
    .send_bytes(&wasm)
    .unwrap_or_else(|e| panic!("publish {name}: {e:?}"));
    assert_eq!(response.status(), 200);
}

#[test]
fn republishing_with_changed_rules_closes_sockets_and_unchanged_rules_keep_them() {
    let (_dir, server, owner) = published("rules", "rls");
    let base = &server.base;
    let mut before = Client::open(base, "rules", V2);
    before.subscribe(0, "SELECT * FROM member").unwrap();
    assert!(before.call("join_team", team(0)));

    // `rls-v2` has the same tables and one filter changed: an update that
    // disconnects every client, refused without policy=BreakClients and
    // done with it and the token `pre_publish` gives.
    let plain = ureq::put(&format!("{base}/v1/database/rules?host_type=Wasm"))
        .set("Authorization", &format!("Bearer {owner}"))
        .send_bytes(&module_bytes("rls-v2"));
    assert!(
        matches!(plain, Err(ureq::Error::Status(400, _))),
        "{plain:?}"
    );
    publish_breaking(base, &owner, "rules", "rls-v2");
    let closed = loop {
        match before.ws.next() {
            Received::Messages(_) => continue,
            Received::Closed(close) => break close,
        }
    };
    let (code, reason) = closed.expect("a close frame with a reason");
    assert_eq!(code, 1001);
    assert!(reason.contains("row-level security"), "{reason}");

    // Under the new rules everyone sees team 0's memberships.
    let mut after = Client::open(base, "rules", V3_V2);
    let rows = after.subscribe(0, "SELECT * FROM member").unwrap();
    assert_eq!(rows.len(), 1, "the first client's team-0 membership");
    // Publishing the same rules again keeps the socket and its subscription.
    publish(base, &owner, "rules", "rls-v2");
    assert!(after.call("join_team", team(0)));
    assert_eq!(after.held[&0].len(), 2);
}
