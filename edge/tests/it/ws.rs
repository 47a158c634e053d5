//! The WebSocket route over a real loopback socket with the chat module:
//! InitialConnection first (byte-exact), subscriptions with their initial
//! rows, the caller's ReducerResult carrying its own update while others get
//! TransactionUpdates, reducer errors, unsubscribe with dropped rows,
//! subscription errors with their request id, v2 and v3 with compression,
//! refused connects, bad frames, slow clients and idle timeouts.

use std::time::Duration;

use orrery_edge::ws::WsConfig;
use orrery_wire::messages::{
    QueryRows, QuerySetId, ReducerOutcome, RowSizeHint, TableUpdateRows, UnsubscribeFlags,
};
use orrery_wire::{ClientMessage, ServerMessage};
use spacetimedb_lib::{ConnectionId, Identity};

use crate::database_api::{keys, mint, server, server_with};
use crate::modules::module_bytes;
use crate::wsclient::{open, Received, Upgrade, WsClient};

pub(crate) const V3_V2: &str = "v3.bsatn.spacetimedb, v2.bsatn.spacetimedb";
pub(crate) const V2: &str = "v2.bsatn.spacetimedb";

pub(crate) fn publish(base: &str, token: &str, name: &str, module: &str) {
    let response = ureq::put(&format!("{base}/v1/database/{name}?host_type=Wasm"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(&module_bytes(module))
        .unwrap_or_else(|e| panic!("publish {name}: {e:?}"));
    assert_eq!(response.status(), 200);
}

fn ws_url(base: &str, db: &str, query: &str) -> String {
    format!(
        "{}/v1/database/{db}/subscribe{query}",
        base.replacen("http://", "ws://", 1)
    )
}

pub(crate) fn connect(
    base: &str,
    db: &str,
    query: &str,
    protocols: &str,
    token: Option<&str>,
) -> WsClient {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    match open(&ws_url(base, db, query), protocols, &headers) {
        Upgrade::Open(client) => *client,
        Upgrade::Refused(status, body) => panic!("upgrade refused: {status} {body}"),
    }
}

fn refused(
    base: &str,
    db: &str,
    query: &str,
    protocols: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    match open(&ws_url(base, db, query), protocols, headers) {
        Upgrade::Open(_) => panic!("upgrade to {db}{query} was accepted"),
        Upgrade::Refused(status, body) => (status, body),
    }
}

/// BSATN of a chat `send_message(channel_id, text)` call.
fn send_message_args(channel: u64, text: &str) -> Vec<u8> {
    let mut args = channel.to_le_bytes().to_vec();
    args.extend_from_slice(&(text.len() as u32).to_le_bytes());
    args.extend_from_slice(text.as_bytes());
    args
}

/// Polls `condition` until it holds; fails naming `what` after 30 s. The
/// one place these tests wait, always on a condition, never on a duration.
pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        // sleep-ok: the pause of a poll with a deadline.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The hosted database published as `name`.
fn hosted(
    server: &crate::database_api::Server,
    name: &str,
) -> tenant_host::hosting::HostedDatabase {
    server
        .registry
        .resolve(name)
        .unwrap()
        .expect("published")
        .database()
        .clone()
}

pub(crate) fn string_args(s: &str) -> Vec<u8> {
    let mut args = (s.len() as u32).to_le_bytes().to_vec();
    args.extend_from_slice(s.as_bytes());
    args
}

/// Rows of a row list, split by its hint.
pub(crate) fn split(hint: &RowSizeHint, data: &[u8]) -> Vec<Vec<u8>> {
    match hint {
        RowSizeHint::FixedSize(n) => data.chunks(*n as usize).map(<[u8]>::to_vec).collect(),
        RowSizeHint::RowOffsets(offsets) => {
            let mut rows = Vec::new();
            for (i, start) in offsets.iter().enumerate() {
                let end = offsets.get(i + 1).map_or(data.len(), |e| *e as usize);
                rows.push(data[*start as usize..end].to_vec());
            }
            rows
        }
    }
}

pub(crate) fn table_rows(rows: &QueryRows, table: &str) -> Vec<Vec<u8>> {
    rows.tables
        .iter()
        .filter(|t| t.table == table)
        .flat_map(|t| split(&t.rows.size_hint, &t.rows.rows_data))
        .collect()
}

/// (inserts, deletes) of `table` in a list of query-set updates.
pub(crate) fn changes(
    sets: &[orrery_wire::messages::QuerySetUpdate],
    table: &str,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut inserts = Vec::new();
    let mut deletes = Vec::new();
    for set in sets {
        for update in set.tables.iter().filter(|t| t.table_name == table) {
            for rows in &update.rows {
                if let TableUpdateRows::PersistentTable {
                    inserts: i,
                    deletes: d,
                } = rows
                {
                    inserts.extend(split(&i.size_hint, &i.rows_data));
                    deletes.extend(split(&d.size_hint, &d.rows_data));
                }
            }
        }
    }
    (inserts, deletes)
}

#[test]
fn chat_over_websocket_with_own_updates_broadcasts_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let base = &server.base;
    let owner = mint(base);
    publish(base, &owner, "wschat", "chat");

    // Client A: v3, gzip, anonymous (the TS SDK's way).
    let mut a = connect(base, "wschat", "?compression=Gzip", V3_V2, None);
    assert_eq!(a.protocol.token(), "v3.bsatn.spacetimedb");
    let mut pending = Vec::new();
    let ServerMessage::InitialConnection {
        identity: a_identity,
        connection_id: a_conn,
        token: a_token,
    } = a.message(&mut pending)
    else {
        panic!("InitialConnection must come first");
    };
    assert_eq!(
        a.identity_header.as_deref(),
        Some(a_identity.to_hex().as_str()),
        "the minted identity is announced in the upgrade headers too"
    );
    assert_ne!(a_conn, ConnectionId::ZERO);
    assert_eq!(a_token.matches('.').count(), 2, "a JWT: {a_token}");

    a.send(&[ClientMessage::Subscribe {
        request_id: 0,
        query_set_id: QuerySetId { id: 0 },
        query_strings: vec!["SELECT * FROM message".into(), "SELECT * FROM user".into()],
    }]);
    let ServerMessage::SubscribeApplied {
        request_id: 0,
        query_set_id: QuerySetId { id: 0 },
        rows,
    } = a.message(&mut pending)
    else {
        panic!("expected SubscribeApplied");
    };
    assert!(table_rows(&rows, "message").is_empty());
    let users = table_rows(&rows, "user");
    assert_eq!(
        users.len(),
        1,
        "A's own user row, inserted by client_connected"
    );
    assert_eq!(&users[0][..32], &a_identity.to_byte_array());

    // Client B: v2, brotli, with a bearer token (the Rust SDK's way).
    let b_token = mint(base);
    let mut b = connect(base, "wschat", "?compression=Brotli", V2, Some(&b_token));
    assert_eq!(b.protocol.token(), V2);
    let mut b_pending = Vec::new();
    let ServerMessage::InitialConnection {
        identity: b_identity,
        token,
        ..
    } = b.message(&mut b_pending)
    else {
        panic!("InitialConnection must come first");
    };
    assert_eq!(token, b_token, "the token the socket authenticated with");
    // B's connect inserted its user row: A sees it as a TransactionUpdate.
    let ServerMessage::TransactionUpdate(update) = a.message(&mut pending) else {
        panic!("A should see B's user row");
    };
    let (inserts, deletes) = changes(&update.query_sets, "user");
    assert_eq!((inserts.len(), deletes.len()), (1, 0));
    assert_eq!(&inserts[0][..32], &b_identity.to_byte_array());

    b.send(&[ClientMessage::Subscribe {
        request_id: 1,
        query_set_id: QuerySetId { id: 1 },
        query_strings: vec!["SELECT * FROM message WHERE channel_id = 1".into()],
    }]);
    assert!(matches!(
        b.message(&mut b_pending),
        ServerMessage::SubscribeApplied { request_id: 1, .. }
    ));

    // A writes: A gets its ReducerResult with its own update, B a TransactionUpdate.
    a.send(&[ClientMessage::CallReducer {
        request_id: 7,
        reducer: "send_message".into(),
        args: send_message_args(1, "hello"),
    }]);
    let ServerMessage::ReducerResult {
        request_id: 7,
        result: ReducerOutcome::Ok(ok),
        ..
    } = a.message(&mut pending)
    else {
        panic!("expected A's ReducerResult Ok");
    };
    assert!(ok.ret_value.is_empty());
    let (inserts, _) = changes(&ok.transaction_update.query_sets, "message");
    assert_eq!(inserts.len(), 1);
    assert!(inserts[0].ends_with(b"hello"));
    let ServerMessage::TransactionUpdate(update) = b.message(&mut b_pending) else {
        panic!("B should see A's message");
    };
    assert_eq!(update.query_sets[0].query_set_id, QuerySetId { id: 1 });
    assert_eq!(changes(&update.query_sets, "message").0, inserts);

    // A user error goes back as Err(String) to the caller only.
    a.send(&[ClientMessage::CallReducer {
        request_id: 8,
        reducer: "send_message".into(),
        args: send_message_args(1, ""),
    }]);
    let ServerMessage::ReducerResult {
        request_id: 8,
        result: ReducerOutcome::Err(bytes),
        ..
    } = a.message(&mut pending)
    else {
        panic!("expected Err");
    };
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - 4, "a BSATN string");
    // Unknown reducers and lifecycle reducers are internal errors.
    a.send(&[
        ClientMessage::CallReducer {
            request_id: 9,
            reducer: "no_such".into(),
            args: vec![],
        },
        ClientMessage::CallReducer {
            request_id: 10,
            reducer: "client_connected".into(),
            args: vec![],
        },
    ]);
    match a.message(&mut pending) {
        ServerMessage::ReducerResult {
            request_id: 9,
            result: ReducerOutcome::InternalError(text),
            ..
        } => assert!(text.starts_with("no such reducer"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.message(&mut pending),
        ServerMessage::ReducerResult {
            request_id: 10,
            result: ReducerOutcome::InternalError(_),
            ..
        }
    ));

    // A renames itself: a primary-key update is a delete plus an insert.
    a.send(&[ClientMessage::CallReducer {
        request_id: 11,
        reducer: "set_name".into(),
        args: string_args("ada"),
    }]);
    let ServerMessage::ReducerResult {
        result: ReducerOutcome::Ok(ok),
        ..
    } = a.message(&mut pending)
    else {
        panic!("expected Ok");
    };
    let (inserts, deletes) = changes(&ok.transaction_update.query_sets, "user");
    assert_eq!((inserts.len(), deletes.len()), (1, 1));
    assert_eq!(inserts[0][..32], deletes[0][..32]);

    // Bad queries: SubscriptionError with the request id; nothing registered.
    a.send(&[ClientMessage::Subscribe {
        request_id: 12,
        query_set_id: QuerySetId { id: 5 },
        query_strings: vec!["SELECT * FROM nope".into()],
    }]);
    match a.message(&mut pending) {
        ServerMessage::SubscriptionError {
            request_id: Some(12),
            query_set_id: QuerySetId { id: 5 },
            error,
        } => assert!(!error.is_empty()),
        other => panic!("{other:?}"),
    }
    // One-off query in the subscription grammar.
    a.send(&[ClientMessage::OneOffQuery {
        request_id: 13,
        query_string: "SELECT * FROM channel".into(),
    }]);
    match a.message(&mut pending) {
        ServerMessage::OneOffQueryResult {
            request_id: 13,
            result: Ok(rows),
        } => assert_eq!(table_rows(&rows, "channel").len(), 1),
        other => panic!("{other:?}"),
    }

    // B leaves: A sees B go offline (update of B's row).
    b.close();
    let ServerMessage::TransactionUpdate(update) = a.message(&mut pending) else {
        panic!("A should see B go offline");
    };
    let (inserts, deletes) = changes(&update.query_sets, "user");
    assert_eq!((inserts.len(), deletes.len()), (1, 1));
    assert_eq!(*inserts[0].last().unwrap(), 0, "online = false");

    // Unsubscribe hands back exactly the rows A holds.
    a.send(&[ClientMessage::Unsubscribe {
        request_id: 14,
        query_set_id: QuerySetId { id: 0 },
        flags: UnsubscribeFlags::SendDroppedRows,
    }]);
    match a.message(&mut pending) {
        ServerMessage::UnsubscribeApplied {
            request_id: 14,
            rows: Some(rows),
            ..
        } => {
            assert_eq!(table_rows(&rows, "message").len(), 1);
            assert_eq!(table_rows(&rows, "user").len(), 2);
        }
        other => panic!("{other:?}"),
    }
    // Unsubscribing again is an error for that request.
    a.send(&[ClientMessage::Unsubscribe {
        request_id: 15,
        query_set_id: QuerySetId { id: 0 },
        flags: UnsubscribeFlags::SendDroppedRows,
    }]);
    assert!(matches!(
        a.message(&mut pending),
        ServerMessage::SubscriptionError {
            request_id: Some(15),
            ..
        }
    ));
    a.close();

    // Both disconnect hooks ran: every user is offline.
    let mut c = connect(base, "wschat", "?compression=None", V2, Some(&owner));
    let mut c_pending = Vec::new();
    c.message(&mut c_pending);
    c.send(&[ClientMessage::OneOffQuery {
        request_id: 1,
        query_string: "SELECT * FROM user WHERE online = true".into(),
    }]);
    match c.message(&mut c_pending) {
        ServerMessage::OneOffQueryResult {
            result: Ok(rows), ..
        } => assert_eq!(
            table_rows(&rows, "user").len(),
            1,
            "only the owner's own row"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn first_frames_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let base = &server.base;
    let token = mint(base);
    publish(base, &token, "golden", "chat");
    let conn = "0123456789abcdef0123456789abcdef";
    let mut a = connect(
        base,
        "golden",
        &format!("?compression=None&connection_id={conn}"),
        V3_V2,
        Some(&token),
    );
    let identity = Identity::from_hex(a.identity_header.clone().unwrap()).unwrap();
    // InitialConnection: tag 0 (uncompressed), message tag 0, identity LE,
    // connection id LE, the token as a BSATN string.
    let mut expected = vec![0u8, 0u8];
    expected.extend_from_slice(&identity.to_byte_array());
    expected.extend_from_slice(&ConnectionId::from_hex(conn).unwrap().as_le_byte_array());
    expected.extend_from_slice(&(token.len() as u32).to_le_bytes());
    expected.extend_from_slice(token.as_bytes());
    assert_eq!(a.next_raw().unwrap(), expected);
    // SubscribeApplied of an empty table (client-protocol §7 step 6 with `message`).
    a.send(&[ClientMessage::Subscribe {
        request_id: 0,
        query_set_id: QuerySetId { id: 0 },
        query_strings: vec!["SELECT * FROM message".into()],
    }]);
    let mut expected = vec![0u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0];
    expected.extend_from_slice(b"message");
    expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(a.next_raw().unwrap(), expected);
}

#[test]
fn upgrade_refusals_and_bad_frames_leave_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let base = &server.base;
    let token = mint(base);
    publish(base, &token, "sturdy", "chat");

    assert_eq!(refused(base, "no-such-db", "", V2, &[]).0, 404);
    assert_eq!(refused(base, "Bad_Name", "", V2, &[]).0, 400);
    assert_eq!(refused(base, "sturdy", "?compression=gzip", V2, &[]).0, 400);
    assert_eq!(
        refused(base, "sturdy", "", "v1.json.spacetimedb", &[]).0,
        400
    );
    let zero = format!("?connection_id={}", "0".repeat(32));
    assert_eq!(refused(base, "sturdy", &zero, V2, &[]).0, 400);
    // Undecodable tokens are 400, tokens that fail validation 401 (§2.1).
    assert_eq!(
        refused(
            base,
            "sturdy",
            "",
            V2,
            &[("Authorization", "Bearer not.a.jwt")]
        )
        .0,
        400
    );
    // A token signed by another server's key is refused.
    let other = tempfile::tempdir().unwrap();
    let foreign = keys(other.path()).mint_anonymous(0).unwrap().token;
    let bearer = format!("Bearer {foreign}");
    assert_eq!(
        refused(base, "sturdy", "", V2, &[("Authorization", &bearer)]).0,
        401
    );
    // So is an expired one of this server's own (a WebSocket token issued
    // long ago; they live a minute).
    let own = keys(dir.path());
    let claims = own.validate(&token, 1_000_000).unwrap();
    let expired = own.websocket_token(&claims, 1_000_000).unwrap();
    let bearer = format!("Bearer {expired}");
    let (status, body) = refused(base, "sturdy", "", V2, &[("Authorization", &bearer)]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");

    // Bad frames close the socket with 1011 and a reason.
    let bad: [tungstenite::Message; 4] = [
        tungstenite::Message::Text("SELECT 1".into()),
        tungstenite::Message::Binary(vec![9u8, 0, 0].into()),
        tungstenite::Message::Binary(vec![0u8, 1].into()),
        tungstenite::Message::Binary(vec![3u8, 0, 0, 0, 0, 7].into()),
    ];
    for frame in bad {
        let mut client = connect(base, "sturdy", "", V2, Some(&token));
        let mut pending = Vec::new();
        client.message(&mut pending);
        client.send_raw(frame.clone());
        loop {
            match client.next() {
                Received::Messages(_) => continue,
                Received::Closed(close) => {
                    let (code, reason) =
                        close.unwrap_or_else(|| panic!("{frame:?}: no close frame"));
                    assert_eq!(code, 1011, "{frame:?}: {reason}");
                    assert!(!reason.is_empty());
                    break;
                }
            }
        }
    }
    // Still serving, and nothing committed was lost.
    let mut client = connect(base, "sturdy", "", V3_V2, Some(&token));
    let mut pending = Vec::new();
    client.message(&mut pending);
    client.send(&[ClientMessage::OneOffQuery {
        request_id: 1,
        query_string: "SELECT * FROM channel".into(),
    }]);
    match client.message(&mut pending) {
        ServerMessage::OneOffQueryResult {
            result: Ok(rows), ..
        } => assert_eq!(table_rows(&rows, "channel").len(), 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refusing_connect_hook_closes_without_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let base = &server.base;
    let owner = mint(base);
    publish(base, &owner, "bouncer", "chat");
    let token = mint(base);
    let mut client = connect(base, "bouncer", "", V2, Some(&token));
    let mut pending = Vec::new();
    client.message(&mut pending);
    client.send(&[ClientMessage::CallReducer {
        request_id: 1,
        reducer: "set_name".into(),
        args: string_args("banned"),
    }]);
    assert!(matches!(
        client.message(&mut pending),
        ServerMessage::ReducerResult {
            result: ReducerOutcome::Ok(_) | ReducerOutcome::OkEmpty,
            ..
        }
    ));
    // The next connect must meet the stored name, not the first session.
    let database = hosted(&server, "bouncer");
    client.close();
    wait_until("the first session disconnected", || {
        database.connected_clients().is_empty()
    });
    let mut again = connect(base, "bouncer", "", V2, Some(&token));
    match again.next() {
        Received::Closed(_) => {}
        Received::Messages(m) => panic!("a refused client got {m:?}"),
    }
}

#[test]
fn a_slow_client_is_dropped_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = WsConfig {
        outbox_bytes_max: 1 << 20,
        ..WsConfig::default()
    };
    let server = server_with(dir.path(), keys(dir.path()), config);
    let base = &server.base;
    let token = mint(base);
    publish(base, &token, "slow", "chat");

    // A subscriber that stops reading while a writer sends 120 messages of
    // 256 KiB (30 MiB, more than the kernel buffers of a loopback socket):
    // its outbox passes 1 MiB and it is closed with 1008.
    let mut slow = connect(base, "slow", "?compression=None", V2, Some(&mint(base)));
    slow.send(&[ClientMessage::Subscribe {
        request_id: 1,
        query_set_id: QuerySetId { id: 1 },
        query_strings: vec!["SELECT * FROM message".into()],
    }]);
    // Read up to the subscription's answer, then stop reading.
    let mut before = Vec::new();
    assert!(matches!(
        slow.message(&mut before),
        ServerMessage::InitialConnection { .. }
    ));
    assert!(matches!(
        slow.message(&mut before),
        ServerMessage::SubscribeApplied { request_id: 1, .. }
    ));
    let mut writer = connect(base, "slow", "", V2, Some(&token));
    let mut pending = Vec::new();
    writer.message(&mut pending);
    let text = "x".repeat(256 * 1024);
    for i in 0..120u32 {
        writer.send(&[ClientMessage::CallReducer {
            request_id: i,
            reducer: "send_message".into(),
            args: send_message_args(1, &text),
        }]);
        assert!(matches!(
            writer.message(&mut pending),
            ServerMessage::ReducerResult { .. }
        ));
    }
    let mut seen = before.len();
    let close = loop {
        match slow.next() {
            Received::Messages(m) => seen += m.len(),
            Received::Closed(close) => break close,
        }
    };
    let (code, reason) = close.expect("a close frame with a reason");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("too slow"), "{reason}");
    assert!(
        seen < 120,
        "the slow client got {seen} messages before the close"
    );
    // The writer keeps being served.
    writer.send(&[ClientMessage::CallReducer {
        request_id: 999,
        reducer: "send_message".into(),
        args: send_message_args(1, "still here"),
    }]);
    assert!(matches!(
        writer.message(&mut pending),
        ServerMessage::ReducerResult {
            request_id: 999,
            ..
        }
    ));
}

#[test]
fn an_idle_client_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = WsConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..WsConfig::default()
    };
    let server = server_with(dir.path(), keys(dir.path()), config);
    let base = &server.base;
    let token = mint(base);
    publish(base, &token, "idle", "chat");
    // Not reading means not answering pings: after 400 ms of silence the
    // server closes (with 1000 "idle timeout"; by the time this client reads,
    // answering the buffered pings may already fail, so the close frame itself
    // may be lost). Without the timeout the server would keep pinging and
    // the session would never end: the wait below fails.
    let database = hosted(&server, "idle");
    let idle = connect(base, "idle", "", V2, Some(&token));
    wait_until("the idle client connected", || {
        database.connected_clients().len() == 1
    });
    wait_until("the server ended the idle session", || {
        database.connected_clients().is_empty()
    });
    let mut idle = idle;
    let close = loop {
        match idle.next() {
            Received::Messages(_) => continue,
            Received::Closed(close) => break close,
        }
    };
    if let Some((code, reason)) = close {
        assert_eq!(code, 1000, "{reason}");
        assert!(reason.contains("idle"), "{reason}");
    }
}

#[test]
fn deleting_the_database_closes_its_sockets_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let base = &server.base;
    let owner = mint(base);
    publish(base, &owner, "doomed", "chat");
    let mut client = connect(base, "doomed", "", V2, Some(&mint(base)));
    let mut pending = Vec::new();
    assert!(matches!(
        client.message(&mut pending),
        ServerMessage::InitialConnection { .. }
    ));
    let response = ureq::delete(&format!("{base}/v1/database/doomed"))
        .set("Authorization", &format!("Bearer {owner}"))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let close = loop {
        match client.next() {
            Received::Messages(_) => continue,
            Received::Closed(close) => break close,
        }
    };
    assert_eq!(close, Some((1001, "module exited".to_owned())));
}

#[test]
fn a_control_character_in_a_function_name_is_answered_and_the_session_goes_on() {
    // Issue 12: a NUL byte in a procedure name panicked the session task
    // (the procedure's thread was named after it), skipping the socket's
    // cleanup and `client_disconnected`. Malformed names now get a reply
    // naming the problem, and the session serves the next request.
    use orrery_wire::messages::ProcedureStatus;
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), keys(dir.path()));
    let base = &server.base;
    let token = mint(base);
    publish(base, &token, "names", "chat");
    let stranger = mint(base);
    let mut client = connect(base, "names", "", V3_V2, Some(&stranger));
    let mut pending = Vec::new();
    assert!(matches!(
        client.message(&mut pending),
        ServerMessage::InitialConnection { .. }
    ));
    let database = server
        .registry
        .resolve("names")
        .unwrap()
        .expect("published")
        .database()
        .clone();
    assert_eq!(database.connected_clients().len(), 1);

    client.send(&[
        ClientMessage::CallProcedure {
            request_id: 7,
            procedure: "a\0b".into(),
            args: Vec::new(),
        },
        ClientMessage::CallReducer {
            request_id: 8,
            reducer: "send_message\0".into(),
            args: send_message_args(1, "hi"),
        },
        ClientMessage::CallProcedure {
            request_id: 9,
            procedure: "x".repeat(orrery_api::limits::FUNCTION_NAME_BYTES_MAX + 1),
            args: Vec::new(),
        },
    ]);
    match client.message(&mut pending) {
        ServerMessage::ProcedureResult {
            request_id: 7,
            status: ProcedureStatus::InternalError(error),
            ..
        } => assert!(
            error.contains("invalid procedure name") && error.contains("U+0000 at byte 1"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    match client.message(&mut pending) {
        ServerMessage::ReducerResult {
            request_id: 8,
            result: ReducerOutcome::InternalError(error),
            ..
        } => assert!(error.contains("invalid reducer name"), "{error}"),
        other => panic!("{other:?}"),
    }
    match client.message(&mut pending) {
        ServerMessage::ProcedureResult {
            request_id: 9,
            status: ProcedureStatus::InternalError(error),
            ..
        } => assert!(error.contains("the limit is"), "{error}"),
        other => panic!("{other:?}"),
    }
    // The session goes on.
    client.send(&[ClientMessage::OneOffQuery {
        request_id: 10,
        query_string: "SELECT * FROM channel".into(),
    }]);
    match client.message(&mut pending) {
        ServerMessage::OneOffQueryResult {
            request_id: 10,
            result: Ok(rows),
            ..
        } => assert_eq!(table_rows(&rows, "channel").len(), 1),
        other => panic!("{other:?}"),
    }
    // And it ends with its cleanup: the disconnect hook removes the client.
    client.close();
    wait_until("client_disconnected ran after the session ended", || {
        database.connected_clients().is_empty()
    });
}
