//! Views as tables over a real loopback socket, with the abi-coverage module
//! (`note` rows; `my_notes`, a sender-aware view; `note_count`, an anonymous
//! one): per-caller materialisations, view changes in the same update as the
//! writes that caused them, SQL and one-off queries of views, view tables
//! unreachable by their storage names and read-only, materialisations
//! dropped when their last reader leaves, and a differential test: random
//! reducer calls by several clients, after each of which every client's
//! incrementally maintained results must equal re-running each query.

use std::collections::BTreeMap;

use orrery_wire::messages::{QuerySetId, QuerySetUpdate, ReducerOutcome, UnsubscribeFlags};
use orrery_wire::{ClientMessage, ServerMessage};
use spacetimedb_lib::{bsatn, Identity};

use crate::database_api::{keys, mint, server, Server};
use crate::ws::{changes, connect, publish, split, V2, V3_V2};
use crate::wsclient::WsClient;

/// A connected client that applies every update it receives to the rows it
/// holds, per query set (one query per set in these tests).
pub(crate) struct Client {
    pub(crate) ws: WsClient,
    pub(crate) pending: Vec<ServerMessage>,
    pub(crate) identity: Identity,
    pub(crate) token: String,
    pub(crate) held: BTreeMap<u32, Vec<Vec<u8>>>,
    next_request: u32,
}

impl Client {
    pub(crate) fn open(base: &str, db: &str, protocols: &str) -> Client {
        Client::open_as(base, db, protocols, None)
    }

    pub(crate) fn open_as(base: &str, db: &str, protocols: &str, token: Option<&str>) -> Client {
        let mut ws = connect(base, db, "", protocols, token);
        let mut pending = Vec::new();
        let ServerMessage::InitialConnection {
            identity, token, ..
        } = ws.message(&mut pending)
        else {
            panic!("InitialConnection must come first");
        };
        Client {
            ws,
            pending,
            identity,
            token,
            held: BTreeMap::new(),
            next_request: 1,
        }
    }

    pub(crate) fn request_id(&mut self) -> u32 {
        self.next_request += 1;
        self.next_request
    }

    pub(crate) fn apply(&mut self, sets: &[QuerySetUpdate]) {
        for set in sets {
            let held = self
                .held
                .get_mut(&set.query_set_id.id)
                .unwrap_or_else(|| panic!("an update for unknown set {}", set.query_set_id.id));
            for table in &set.tables {
                let (inserts, deletes) = changes(std::slice::from_ref(set), &table.table_name);
                for row in deletes {
                    let at = held.iter().position(|r| *r == row).unwrap_or_else(|| {
                        panic!("set {} deletes a row it does not hold", set.query_set_id.id)
                    });
                    held.remove(at);
                }
                held.extend(inserts);
            }
        }
    }

    /// Reads messages, applying updates, until `want` picks one.
    pub(crate) fn until<T>(&mut self, mut want: impl FnMut(&ServerMessage) -> Option<T>) -> T {
        loop {
            let message = self.ws.message(&mut self.pending);
            if let ServerMessage::TransactionUpdate(update) = &message {
                self.apply(&update.query_sets);
                continue;
            }
            if let Some(found) = want(&message) {
                return found;
            }
            panic!("unexpected message {message:?}");
        }
    }

    /// Subscribes query set `set` to `sql`; returns the initial rows.
    pub(crate) fn subscribe(&mut self, set: u32, sql: &str) -> Result<Vec<Vec<u8>>, String> {
        let request_id = self.request_id();
        self.ws.send(&[ClientMessage::Subscribe {
            request_id,
            query_set_id: QuerySetId { id: set },
            query_strings: vec![sql.into()],
        }]);
        let result = self.until(|m| match m {
            ServerMessage::SubscribeApplied {
                request_id: r,
                rows,
                ..
            } if *r == request_id => Some(Ok(rows
                .tables
                .iter()
                .flat_map(|t| split(&t.rows.size_hint, &t.rows.rows_data))
                .collect::<Vec<_>>())),
            ServerMessage::SubscriptionError {
                request_id: Some(r),
                error,
                ..
            } if *r == request_id => Some(Err(error.clone())),
            _ => None,
        });
        if let Ok(rows) = &result {
            self.held.insert(set, rows.clone());
        }
        result
    }

    pub(crate) fn unsubscribe(&mut self, set: u32) {
        let request_id = self.request_id();
        self.ws.send(&[ClientMessage::Unsubscribe {
            request_id,
            query_set_id: QuerySetId { id: set },
            flags: UnsubscribeFlags::Default,
        }]);
        self.until(|m| match m {
            ServerMessage::UnsubscribeApplied { request_id: r, .. } if *r == request_id => Some(()),
            _ => None,
        });
        self.held.remove(&set);
    }

    /// Calls `reducer`; true if it committed. Its own update is applied.
    pub(crate) fn call(&mut self, reducer: &str, args: Vec<u8>) -> bool {
        let request_id = self.request_id();
        self.ws.send(&[ClientMessage::CallReducer {
            request_id,
            reducer: reducer.into(),
            args,
        }]);
        let outcome = self.until(|m| match m {
            ServerMessage::ReducerResult {
                request_id: r,
                result,
                ..
            } if *r == request_id => Some(result.clone()),
            _ => None,
        });
        match outcome {
            ReducerOutcome::Ok(ok) => {
                self.apply(&ok.transaction_update.query_sets);
                true
            }
            ReducerOutcome::OkEmpty => true,
            ReducerOutcome::Err(_) => false,
            ReducerOutcome::InternalError(e) => panic!("{reducer} failed inside: {e}"),
        }
    }

    /// A one-off query's rows (or its error), after every update queued
    /// before it has been applied.
    pub(crate) fn query(&mut self, sql: &str) -> Result<Vec<Vec<u8>>, String> {
        let request_id = self.request_id();
        self.ws.send(&[ClientMessage::OneOffQuery {
            request_id,
            query_string: sql.into(),
        }]);
        self.until(|m| match m {
            ServerMessage::OneOffQueryResult {
                request_id: r,
                result,
            } if *r == request_id => Some(
                result
                    .as_ref()
                    .map(|rows| {
                        rows.tables
                            .iter()
                            .flat_map(|t| split(&t.rows.size_hint, &t.rows.rows_data))
                            .collect()
                    })
                    .map_err(Clone::clone),
            ),
            _ => None,
        })
    }
}

fn note_args(text: &str) -> Vec<u8> {
    bsatn::to_vec(&text.to_string()).unwrap()
}

fn id_args(id: u64) -> Vec<u8> {
    bsatn::to_vec(&id).unwrap()
}

/// A `note` row: (id, owner, text).
fn decode_note(row: &[u8]) -> (u64, Identity, String) {
    bsatn::from_slice::<(u64, Identity, String)>(row).unwrap()
}

pub(crate) fn sorted(mut rows: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    rows.sort();
    rows
}

fn materialised(server: &Server, name: &str) -> usize {
    let identity = server.registry.lookup_name(name).unwrap();
    server
        .registry
        .get(&identity)
        .unwrap()
        .database()
        .materialised_views()
}

/// Waits until database `name` holds `expected` view materialisations;
/// fails with `what` otherwise.
fn await_materialised(server: &Server, name: &str, expected: usize, what: &str) {
    crate::ws::wait_until(
        &format!("{what}: expected {expected} materialisations"),
        || materialised(server, name) == expected,
    );
}

/// A server in a fresh directory with test module `module` published as
/// `name`; returns the directory (keep it), the server and the owner's token.
pub(crate) fn published(name: &str, module: &str) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let owner = mint(&server.base);
    publish(&server.base, &owner, name, module);
    (dir, server, owner)
}

pub(crate) fn sql(base: &str, token: &str, db: &str, query: &str) -> (u16, String) {
    let response = ureq::post(&format!("{base}/v1/database/{db}/sql"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_string(query);
    match response {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("sql: {e}"),
    }
}

#[test]
fn views_are_tables_per_caller_over_websocket_and_sql() {
    let (_dir, server, owner) = published("views", "abi-coverage");
    let base = &server.base;

    let mut alice = Client::open(base, "views", V3_V2);
    let mut bob = Client::open(base, "views", V2);
    assert!(alice
        .subscribe(1, "SELECT * FROM my_notes")
        .unwrap()
        .is_empty());
    let count = alice.subscribe(2, "SELECT * FROM note_count").unwrap();
    assert_eq!(count, vec![0u64.to_le_bytes().to_vec()]);
    assert!(bob
        .subscribe(1, "SELECT * FROM my_notes")
        .unwrap()
        .is_empty());
    assert_eq!(
        materialised(&server, "views"),
        3,
        "two my_notes, one note_count"
    );

    // Alice's note reaches her own my_notes and the shared note_count in her
    // ReducerResult: the view changes commit with the write.
    let request_id = alice.request_id();
    alice.ws.send(&[ClientMessage::CallReducer {
        request_id,
        reducer: "add_note".into(),
        args: note_args("first"),
    }]);
    let ServerMessage::ReducerResult {
        result: ReducerOutcome::Ok(ok),
        ..
    } = alice.ws.message(&mut alice.pending)
    else {
        panic!("Alice's call should commit with her update");
    };
    let sets = &ok.transaction_update.query_sets;
    let (mine, none) = changes(sets, "my_notes");
    assert_eq!(none.len(), 0);
    assert_eq!(mine.len(), 1);
    let (id, note_owner, text) = decode_note(&mine[0]);
    assert_eq!((note_owner, text.as_str()), (alice.identity, "first"));
    let (inserted, deleted) = changes(sets, "note_count");
    assert_eq!(inserted, vec![1u64.to_le_bytes().to_vec()]);
    assert_eq!(deleted, vec![0u64.to_le_bytes().to_vec()]);
    alice.apply(sets);

    // Bob's my_notes did not change: he hears nothing of it.
    assert_eq!(
        bob.query("SELECT * FROM my_notes").unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert!(bob.held[&1].is_empty());

    // Giving the note away moves it between the two materialisations.
    let mut args = id_args(id);
    args.extend(bsatn::to_vec(&bob.identity).unwrap());
    assert!(alice.call("give_note", args));
    assert!(alice.held[&1].is_empty());
    assert_eq!(bob.query("SELECT * FROM note_count").unwrap().len(), 1);
    assert_eq!(bob.held[&1].len(), 1);
    assert_eq!(decode_note(&bob.held[&1][0]).1, bob.identity);
    // Filters apply to view rows like table rows.
    assert_eq!(
        bob.query("SELECT * FROM my_notes WHERE text = 'first'")
            .unwrap()
            .len(),
        1
    );
    assert!(bob
        .query("SELECT * FROM my_notes WHERE text = 'other'")
        .unwrap()
        .is_empty());

    // SQL over HTTP reads the caller's own materialisation.
    let (status, body) = sql(base, &bob.token, "views", "SELECT * FROM my_notes");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("first"), "{body}");
    let (status, body) = sql(base, &alice.token, "views", "SELECT * FROM my_notes");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("first"), "Alice gave her note away: {body}");
    // The storage names of materialisations never resolve, and views are
    // read-only even to the owner.
    let theirs = format!("SELECT * FROM \"my_notes@{}\"", bob.identity.to_hex());
    let (status, body) = sql(base, &alice.token, "views", &theirs);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no such table"), "{body}");
    assert!(alice.query(&theirs).unwrap_err().contains("no such table"));
    let (status, body) = sql(base, &owner, "views", "DELETE FROM note_count");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("view"), "{body}");

    // A view mentioned in a subscription that fails to compile still leaves
    // the client connected and the error tied to its request.
    let error = alice
        .subscribe(3, "SELECT * FROM my_notes WHERE nope = 1")
        .unwrap_err();
    assert!(error.contains("nope"), "{error}");

    // When the last reader of Bob's materialisation leaves, it is dropped;
    // the anonymous view stays (one table serves everyone).
    // Eviction runs on the lane right after the reply is queued, so the
    // count is awaited, not read once.
    let before = materialised(&server, "views");
    bob.unsubscribe(1);
    await_materialised(
        &server,
        "views",
        before - 1,
        "Bob's my_notes was not dropped",
    );
    let Client { ws, .. } = alice;
    ws.close();
    await_materialised(&server, "views", 1, "Alice's my_notes was not dropped");
    assert_eq!(bob.query("SELECT * FROM note_count").unwrap().len(), 1);
}

/// A tiny deterministic generator (the test must replay the same way).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn view_and_table_deltas_equal_rerunning_the_queries_after_random_calls() {
    const QUERIES: [&str; 7] = [
        "SELECT * FROM my_notes",
        "SELECT * FROM my_notes WHERE text = 'b'",
        "SELECT * FROM note_count",
        "SELECT * FROM note",
        "SELECT * FROM note WHERE owner = :sender",
        "SELECT * FROM note WHERE text = 'a' OR id > 5",
        "SELECT * FROM note_count WHERE count > 2",
    ];
    let (_dir, server, _owner) = published("diff", "abi-coverage");
    let base = &server.base;
    let mut clients: Vec<Client> = (0..3)
        .map(|i| Client::open(base, "diff", if i % 2 == 0 { V3_V2 } else { V2 }))
        .collect();
    for client in &mut clients {
        for (set, query) in QUERIES.iter().enumerate() {
            client.subscribe(set as u32, query).unwrap();
        }
    }
    let identities: Vec<Identity> = clients.iter().map(|c| c.identity).collect();
    let mut rng = Lcg(0x5eed);
    let mut committed = 0;
    for step in 0..60 {
        let who = rng.below(clients.len());
        // Every client holds every note through set 3.
        let notes: Vec<(u64, Identity, String)> = clients[who].held[&3]
            .iter()
            .map(|row| decode_note(row))
            .collect();
        let text = ["a", "b", "c"][rng.below(3)];
        let pick = |rng: &mut Lcg| notes.get(rng.below(notes.len().max(1))).map(|n| n.0);
        let (reducer, args) = match (rng.below(4), pick(&mut rng)) {
            (0, _) | (_, None) => ("add_note", note_args(text)),
            (1, Some(id)) => ("delete_note", id_args(id)),
            (2, Some(id)) => {
                let mut args = id_args(id);
                args.extend(note_args(text));
                ("edit_note", args)
            }
            (_, Some(id)) => {
                let mut args = id_args(id);
                let to = identities[rng.below(identities.len())];
                args.extend(bsatn::to_vec(&to).unwrap());
                ("give_note", args)
            }
        };
        // Calls on someone else's note fail and must change nothing.
        if clients[who].call(reducer, args) {
            committed += 1;
        }
        for (c, client) in clients.iter_mut().enumerate() {
            for (set, query) in QUERIES.iter().enumerate() {
                let rerun = sorted(client.query(query).unwrap());
                let held = sorted(client.held[&(set as u32)].clone());
                assert_eq!(
                    held, rerun,
                    "step {step} ({reducer} by client {who}): client {c}'s `{query}`"
                );
            }
        }
    }
    assert!(committed >= 30, "only {committed} of 60 calls committed");
    let notes = clients[0].held[&3].len();
    assert!(notes > 0, "the run should leave some notes");
    let total: usize = clients.iter().map(|c| c.held[&0].len()).sum();
    assert_eq!(
        total, notes,
        "every note is in exactly one owner's my_notes"
    );
}

#[test]
fn a_module_update_keeps_view_subscribers_and_refreshes_their_views() {
    let (_dir, server, owner) = published("swap", "abi-coverage");
    let base = &server.base;
    let mut viewer = Client::open(base, "swap", V3_V2);
    let mut reader = Client::open(base, "swap", V2);
    viewer.subscribe(1, "SELECT * FROM my_notes").unwrap();
    reader.subscribe(1, "SELECT * FROM note").unwrap();
    assert!(viewer.call("add_note", note_args("before")));

    // Republishing the same module is a hot swap with nothing to migrate:
    // the materialisations are re-evaluated by the new module inside the
    // migration and every subscriber keeps its socket and subscription.
    publish(base, &owner, "swap", "abi-coverage");
    assert_eq!(materialised(&server, "swap"), 1);
    assert!(viewer.call("add_note", note_args("mine")));
    let texts: Vec<String> = viewer.held[&1].iter().map(|r| decode_note(r).2).collect();
    assert_eq!(sorted_strings(texts), ["before", "mine"]);
    assert!(reader.call("add_note", note_args("after")));
    let texts: Vec<String> = reader.held[&1].iter().map(|r| decode_note(r).2).collect();
    assert_eq!(sorted_strings(texts), ["after", "before", "mine"]);
    // A new connection reads the view from the new module.
    let mut again = Client::open(base, "swap", V2);
    assert!(again
        .subscribe(1, "SELECT * FROM my_notes")
        .unwrap()
        .is_empty());
    assert_eq!(again.query("SELECT * FROM note_count").unwrap().len(), 1);
}

pub(crate) fn sorted_strings(mut texts: Vec<String>) -> Vec<String> {
    texts.sort();
    texts
}
