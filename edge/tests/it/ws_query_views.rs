//! Query-builder views and views' observable behaviour (issue 13 items 2
//! and 7) over a real loopback socket, with the `query-views` module
//! (players in guilds; a query view of every shape the `spacetimedb` 2.10.1
//! query builder produces) and `query-views-v2` (a compatible update whose
//! `fragile` view traps once `flag` holds a row):
//! - subscriptions to every query view, and to joins of a view with a table
//!   and with another view, change in the same transaction as the writes of
//!   a reducer, a scheduled reducer and a procedure, and stay equal to
//!   `SELECT * FROM view` and to the equivalent SQL over the tables in
//!   random states (the differential test);
//! - a view is evaluated once per change of what it read (per index key for
//!   point lookups), and a one-off read keeps its materialisation;
//! - `SELECT *` over a view lists rows in the view's order;
//! - a view subscription survives a compatible republish; a republish whose
//!   view traps during the migration is refused and the old module serves;
//! - the `st_view*` system tables answer SQL.

use std::collections::BTreeSet;

use orrery_wire::messages::ProcedureStatus;
use orrery_wire::{ClientMessage, ServerMessage};
use spacetimedb_lib::{bsatn, Identity};

use crate::modules::module_bytes;
use crate::ws::{publish, V2, V3_V2};
use crate::ws_views::{published, sql, Client};

/// A `player` row: (id, name, online, guild, owner).
type Player = (u32, String, bool, u32, Identity);
/// A `guild` row: (id, rank, open).
type Guild = (u32, u32, bool);

fn player(row: &[u8]) -> Player {
    bsatn::from_slice(row).unwrap()
}

fn guild(row: &[u8]) -> Guild {
    bsatn::from_slice(row).unwrap()
}

fn args<T: spacetimedb_sats::Serialize>(value: &T) -> Vec<u8> {
    bsatn::to_vec(value).unwrap()
}

/// Each subscribed query (one per query set, numbered from 1) with the SQL
/// over the base tables that must give the same rows (as a set: the
/// semijoins' SQL lists a guild once per matching player).
const VIEWS: [(&str, &str); 10] = [
    (
        "SELECT * FROM online_players",
        "SELECT * FROM player WHERE online = true",
    ),
    (
        "SELECT * FROM players_in_guilds",
        "SELECT player.* FROM player JOIN guild ON player.guild = guild.id",
    ),
    (
        "SELECT * FROM online_members",
        "SELECT player.* FROM player JOIN guild ON player.guild = guild.id \
         WHERE player.online = true AND player.name <> 'nobody'",
    ),
    (
        "SELECT * FROM guilds_with_players",
        "SELECT guild.* FROM player JOIN guild ON player.guild = guild.id",
    ),
    (
        "SELECT * FROM open_guilds_of_online_players",
        "SELECT guild.* FROM player JOIN guild ON player.guild = guild.id \
         WHERE player.online = true AND guild.open = true AND guild.rank >= 2",
    ),
    (
        "SELECT * FROM open_guilds",
        "SELECT * FROM guild WHERE open = true",
    ),
    (
        "SELECT * FROM my_players",
        "SELECT * FROM player WHERE owner = :sender",
    ),
    (
        "SELECT * FROM my_guilds",
        "SELECT guild.* FROM player JOIN guild ON player.guild = guild.id \
         WHERE player.owner = :sender",
    ),
    // A view joined with a table.
    (
        "SELECT online_players.* FROM online_players \
         JOIN guild ON online_players.guild = guild.id WHERE guild.open = true",
        "SELECT player.* FROM player JOIN guild ON player.guild = guild.id \
         WHERE player.online = true AND guild.open = true",
    ),
    // A view joined with another view that has a primary key.
    (
        "SELECT online_players.* FROM online_players \
         JOIN open_guilds ON online_players.guild = open_guilds.id",
        "SELECT player.* FROM player JOIN guild ON player.guild = guild.id \
         WHERE player.online = true AND guild.open = true",
    ),
];

fn set_of(rows: Vec<Vec<u8>>) -> BTreeSet<Vec<u8>> {
    rows.into_iter().collect()
}

/// Every query set of `client` holds exactly what the view answers now and
/// what the equivalent SQL over the tables answers; `when` says where.
fn assert_views_agree(client: &mut Client, who: &str, when: &str) {
    for (set, (view, equivalent)) in VIEWS.iter().enumerate() {
        // Re-run first: the answer comes after every update queued before
        // it, which the client applies on the way.
        let rerun = set_of(client.query(view).unwrap());
        let held = client.held[&(set as u32 + 1)].clone();
        let distinct = set_of(held.clone());
        assert_eq!(
            distinct.len(),
            held.len(),
            "{when}: {who}'s `{view}` holds a row twice"
        );
        let by_hand = set_of(client.query(equivalent).unwrap());
        assert_eq!(distinct, rerun, "{when}: {who}'s `{view}` vs re-running it");
        assert_eq!(rerun, by_hand, "{when}: {who}'s `{view}` vs `{equivalent}`");
    }
}

fn subscribe_all(client: &mut Client) {
    for (set, (view, _)) in VIEWS.iter().enumerate() {
        client.subscribe(set as u32 + 1, view).unwrap();
    }
}

/// Reads messages, applying updates, until set `set` of `client` holds rows
/// that satisfy `done`.
fn await_rows(client: &mut Client, set: u32, what: &str, done: impl Fn(&[Vec<u8>]) -> bool) {
    while !done(&client.held[&set]) {
        match client.ws.message(&mut client.pending) {
            ServerMessage::TransactionUpdate(update) => client.apply(&update.query_sets),
            other => panic!("{what}: unexpected message {other:?}"),
        }
    }
}

/// Calls procedure `name`; returns once its result arrived (updates read
/// meanwhile are applied).
fn call_procedure(client: &mut Client, name: &str, args: Vec<u8>) {
    let request_id = client.request_id();
    client.ws.send(&[ClientMessage::CallProcedure {
        request_id,
        procedure: name.into(),
        args,
    }]);
    let status = client.until(|m| match m {
        ServerMessage::ProcedureResult {
            request_id: r,
            status,
            ..
        } if *r == request_id => Some(status.clone()),
        _ => None,
    });
    assert!(
        matches!(status, ProcedureStatus::Returned(_)),
        "{name}: {status:?}"
    );
}

fn online_ids(rows: &[Vec<u8>]) -> Vec<u32> {
    let mut ids: Vec<u32> = rows.iter().map(|r| player(r).0).collect();
    ids.sort();
    ids
}

#[test]
fn query_views_of_every_shape_change_with_the_writes_of_reducers_schedules_and_procedures() {
    let (_dir, server, _owner) = published("qv", "query-views");
    let base = &server.base;
    let mut alice = Client::open(base, "qv", V3_V2);
    let mut bob = Client::open(base, "qv", V2);
    subscribe_all(&mut alice);
    subscribe_all(&mut bob);

    // The caller's own ReducerResult carries every view's change: they
    // commit in the writing transaction.
    assert!(alice.call("add_guild", args(&(1u32, 3u32, true))));
    assert!(alice.call("add_guild", args(&(2u32, 1u32, false))));
    assert!(alice.call("add_player", args(&(10u32, "ann".to_string(), true, 1u32))));
    let online = &alice.held[&1];
    assert_eq!(online.len(), 1, "online_players after ann joined");
    assert_eq!(player(&online[0]).1, "ann");
    assert_eq!(alice.held[&4].len(), 1, "guilds_with_players");
    assert_eq!(guild(&alice.held[&4][0]).0, 1);
    assert_eq!(alice.held[&5].len(), 1, "open_guilds_of_online_players");
    assert_eq!(alice.held[&7].len(), 1, "alice's my_players");
    assert_eq!(alice.held[&9].len(), 1, "online_players JOIN guild");
    assert_eq!(alice.held[&10].len(), 1, "online_players JOIN open_guilds");
    assert!(bob.call("add_player", args(&(20u32, "bo".to_string(), false, 2u32))));
    assert_eq!(bob.held[&7].len(), 1, "bob's my_players");
    assert_eq!(guild(&bob.held[&8][0]).0, 2, "bob's my_guilds");
    assert_views_agree(&mut alice, "alice", "after the first calls");
    assert_views_agree(&mut bob, "bob", "after the first calls");

    // A scheduled reducer's writes reach subscribers in its own update.
    assert!(alice.call("schedule_set_online", args(&(20u32, true))));
    await_rows(&mut alice, 1, "the scheduled call", |rows| {
        online_ids(rows) == [10, 20]
    });
    await_rows(&mut bob, 1, "the scheduled call", |rows| {
        online_ids(rows) == [10, 20]
    });
    assert_views_agree(&mut bob, "bob", "after the scheduled call");

    // So do a procedure's.
    call_procedure(&mut bob, "set_online_proc", args(&(10u32, false)));
    await_rows(&mut bob, 1, "the procedure", |rows| {
        online_ids(rows) == [20]
    });
    await_rows(&mut alice, 1, "the procedure", |rows| {
        online_ids(rows) == [20]
    });
    assert_views_agree(&mut alice, "alice", "after the procedure");

    // Deletes and updates.
    assert!(alice.call("set_guild_open", args(&(1u32, false))));
    assert!(alice.held[&6].is_empty(), "no open guild left");
    assert!(alice.call("delete_guild", args(&1u32)));
    assert!(alice.held[&2].iter().all(|r| player(r).3 != 1));
    assert_views_agree(&mut alice, "alice", "after the deletes");
    assert_views_agree(&mut bob, "bob", "after the deletes");
}

/// A tiny deterministic generator (the test must replay the same way).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(n)) as u32
    }
}

#[test]
fn every_query_view_equals_its_sql_over_the_tables_in_random_states() {
    let (_dir, server, _owner) = published("qvdiff", "query-views");
    let base = &server.base;
    let mut clients: Vec<Client> = (0..2)
        .map(|i| Client::open(base, "qvdiff", if i == 0 { V3_V2 } else { V2 }))
        .collect();
    for client in &mut clients {
        subscribe_all(client);
    }
    let names = ["ann", "bo", "nobody", "cy"];
    for seed in [0x5eed_u64, 0xbeef, 0x1234] {
        let mut rng = Lcg(seed);
        for step in 0..25 {
            let who = rng.below(2) as usize;
            let id = rng.below(6);
            let guild_id = rng.below(4);
            let flag = rng.below(2) == 0;
            let (reducer, call_args) = match rng.below(8) {
                0 | 1 => (
                    "add_player",
                    args(&(id, names[rng.below(4) as usize].to_string(), flag, guild_id)),
                ),
                2 => ("set_online", args(&(id, flag))),
                3 => ("set_guild", args(&(id, guild_id))),
                4 => ("delete_player", args(&id)),
                5 => ("add_guild", args(&(guild_id, rng.below(4), flag))),
                6 => ("set_guild_open", args(&(guild_id, flag))),
                _ => ("delete_guild", args(&guild_id)),
            };
            // Calls on missing rows fail and change nothing.
            clients[who].call(reducer, call_args);
            for (c, client) in clients.iter_mut().enumerate() {
                assert_views_agree(
                    client,
                    &format!("client {c}"),
                    &format!("seed {seed:#x} step {step} ({reducer} by {who})"),
                );
            }
        }
    }
}

fn evaluations(server: &crate::database_api::Server, name: &str, marker: &str) -> usize {
    let identity = server.registry.lookup_name(name).unwrap();
    server
        .registry
        .get(&identity)
        .unwrap()
        .database()
        .log()
        .tail(10_000)
        .iter()
        .filter(|entry| entry.message.contains(marker))
        .count()
}

#[test]
fn a_view_is_evaluated_once_per_change_of_the_keys_it_read() {
    let (_dir, server, _owner) = published("qvcount", "query-views");
    let base = &server.base;
    let mut alice = Client::open(base, "qvcount", V2);
    let first = |server: &_| evaluations(server, "qvcount", "first_player evaluated");
    let rank = |server: &_| evaluations(server, "qvcount", "rank_three evaluated");

    // `first_player` looks up key 1 of `player`'s primary key.
    assert!(alice
        .query("SELECT * FROM first_player")
        .unwrap()
        .is_empty());
    assert_eq!(first(&server), 1, "the first read evaluates it");
    assert!(alice
        .query("SELECT * FROM first_player")
        .unwrap()
        .is_empty());
    assert_eq!(
        first(&server),
        1,
        "a second read reuses the materialisation"
    );
    assert!(alice.call("add_player", args(&(2u32, "bo".to_string(), true, 0u32))));
    assert_eq!(first(&server), 1, "another key does not make it stale");
    assert!(alice.call("add_player", args(&(1u32, "ann".to_string(), true, 0u32))));
    assert_eq!(first(&server), 2, "its key does, once");
    assert_eq!(alice.query("SELECT * FROM first_player").unwrap().len(), 1);
    assert_eq!(first(&server), 2);
    assert!(alice.call("set_online", args(&(2u32, false))));
    assert_eq!(first(&server), 2, "an update of another key");
    assert!(alice.call("set_online", args(&(1u32, false))));
    assert_eq!(first(&server), 3, "an update of its key, once");
    // Subscribing to the materialised view does not evaluate it again.
    alice.subscribe(1, "SELECT * FROM first_player").unwrap();
    assert_eq!(first(&server), 3);

    // `rank_three` filters `guild`'s `rank` index on the single value 3.
    assert!(alice
        .subscribe(2, "SELECT * FROM rank_three")
        .unwrap()
        .is_empty());
    assert_eq!(rank(&server), 1);
    assert!(alice.call("add_guild", args(&(1u32, 1u32, true))));
    assert_eq!(rank(&server), 1, "a guild of another rank");
    assert!(alice.call("add_guild", args(&(2u32, 3u32, true))));
    assert_eq!(rank(&server), 2, "a guild of rank 3");
    assert_eq!(alice.held[&2].len(), 1);
    assert!(alice.call("set_guild_open", args(&(1u32, false))));
    assert_eq!(rank(&server), 2, "an update of a guild of another rank");
    assert!(alice.call("set_guild_open", args(&(2u32, false))));
    assert_eq!(rank(&server), 3);
    assert!(
        !guild(&alice.held[&2][0]).2,
        "the update reached the subscriber"
    );
    // A table the views never read.
    assert!(alice.call("set_flag", Vec::new()));
    assert_eq!((first(&server), rank(&server)), (3, 3));
}

#[test]
fn select_star_over_a_view_lists_rows_in_the_views_order() {
    let (_dir, server, _owner) = published("qvorder", "query-views");
    let base = &server.base;
    let mut alice = Client::open(base, "qvorder", V2);
    for id in [2u32, 3, 1] {
        assert!(alice.call("add_player", args(&(id, format!("p{id}"), true, 0u32))));
    }
    // A procedural view: the order it returned (highest id first).
    let rows = alice.query("SELECT * FROM players_by_id_desc").unwrap();
    let ids: Vec<u32> = rows.iter().map(|r| player(r).0).collect();
    assert_eq!(ids, [3, 2, 1]);
    // A query view: the order of its query's result, the table's order.
    let table: Vec<u32> = alice
        .query("SELECT * FROM player")
        .unwrap()
        .iter()
        .map(|r| player(r).0)
        .collect();
    assert_eq!(table, [2, 3, 1]);
    let rows = alice.query("SELECT * FROM online_players").unwrap();
    let ids: Vec<u32> = rows.iter().map(|r| player(r).0).collect();
    assert_eq!(ids, table);
}

/// Republishes `module` as `name`; the status and body of the reply.
fn republish(base: &str, token: &str, name: &str, module: &str) -> (u16, String) {
    let response = ureq::put(&format!("{base}/v1/database/{name}?host_type=Wasm"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(&module_bytes(module));
    match response {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("publish {name}: {e}"),
    }
}

#[test]
fn a_view_subscription_survives_a_compatible_republish() {
    let (_dir, server, owner) = published("qvswap", "query-views");
    let base = &server.base;
    let mut alice = Client::open(base, "qvswap", V3_V2);
    assert!(alice.call("add_guild", args(&(1u32, 3u32, true))));
    assert!(alice.call("add_player", args(&(1u32, "ann".to_string(), true, 1u32))));
    alice.subscribe(1, "SELECT * FROM online_players").unwrap();
    alice.subscribe(2, "SELECT * FROM my_players").unwrap();
    alice.subscribe(3, "SELECT * FROM fragile").unwrap();
    assert_eq!(alice.held[&3].len(), 1);

    publish(base, &owner, "qvswap", "query-views-v2");

    // The same socket and subscriptions keep receiving the views' changes.
    assert!(alice.call("add_player", args(&(2u32, "bo".to_string(), true, 1u32))));
    assert_eq!(online_ids(&alice.held[&1]), [1, 2]);
    assert_eq!(alice.held[&2].len(), 2);
    assert!(alice.call("set_guild_open", args(&(1u32, false))));
    assert!(alice.held[&3].is_empty(), "fragile, evaluated by v2");
    // The new module's own view answers.
    assert!(alice.query("SELECT * FROM badges").unwrap().is_empty());
}

#[test]
fn a_republish_whose_view_traps_during_the_migration_is_refused() {
    let (_dir, server, owner) = published("qvtrap", "query-views");
    let base = &server.base;
    let mut alice = Client::open(base, "qvtrap", V2);
    assert!(alice.call("add_guild", args(&(1u32, 3u32, true))));
    assert!(alice.call("set_flag", Vec::new()));
    alice.subscribe(1, "SELECT * FROM fragile").unwrap();
    assert_eq!(alice.held[&1].len(), 1);

    // v2's `fragile` traps while `flag` holds a row: the migration, which
    // evaluates it, fails and the publish is refused with the reason.
    let (status, body) = republish(base, &owner, "qvtrap", "query-views-v2");
    assert!(status >= 400, "{status}: {body}");
    assert!(body.contains("fragile"), "{body}");
    assert!(body.contains("trapped"), "{body}");

    // The old module keeps serving, the subscription included.
    assert!(alice.call("add_guild", args(&(2u32, 1u32, true))));
    assert_eq!(alice.held[&1].len(), 2);
    let error = alice.query("SELECT * FROM badges").unwrap_err();
    assert!(error.contains("badges"), "{error}");
}

#[test]
fn the_st_view_tables_answer_sql() {
    let (_dir, server, owner) = published("qvst", "query-views");
    let base = &server.base;
    let (status, body) = sql(base, &owner, "qvst", "SELECT * FROM st_view");
    assert_eq!(status, 200, "{body}");
    for column in [
        "view_id",
        "view_name",
        "table_id",
        "is_public",
        "is_anonymous",
    ] {
        assert!(body.contains(column), "{column}: {body}");
    }
    for view in ["online_players", "my_guilds", "first_player", "fragile"] {
        assert!(body.contains(view), "{view}: {body}");
    }
    let (status, body) = sql(
        base,
        &owner,
        "qvst",
        "SELECT * FROM st_view WHERE view_name = 'my_players' AND is_anonymous = false",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("my_players"), "{body}");
    assert!(!body.contains("online_players"), "{body}");
    let (status, body) = sql(base, &owner, "qvst", "SELECT * FROM st_view_column");
    assert_eq!(status, 200, "{body}");
    for column in ["col_pos", "col_name", "col_type", "owner", "rank"] {
        assert!(body.contains(column), "{column}: {body}");
    }
    for table in ["st_view_param", "st_view_sub", "st_view_arg"] {
        let (status, body) = sql(base, &owner, "qvst", &format!("SELECT * FROM {table}"));
        assert_eq!(status, 200, "{table}: {body}");
    }
}
