//! Source and canonical names (module-abi §6.4, client-protocol §6.1) over
//! the real HTTP and WebSocket API, with the `names` module: reducers and
//! procedures are called, tables and columns are queried and subscribed to,
//! by either form (`add_u8` / `add_u_8`, `t1` / `t_1`, `playerID2` /
//! `player_id_2`), results and wire messages carry the canonical names, and
//! `/schema` serves version 10 as published and version 9 in canonical form.

use orrery_wire::messages::ProcedureStatus;
use orrery_wire::{ClientMessage, ServerMessage};
use serde_json::{json, Value};
use spacetimedb_lib::bsatn;

use crate::ws::{V2, V3_V2};
use crate::ws_views::{published, sorted, sql, Client};

/// POSTs a JSON call; the status and body.
fn call(base: &str, token: &str, db: &str, function: &str, args: Value) -> (u16, String) {
    let response = ureq::post(&format!("{base}/v1/database/{db}/call/{function}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&args.to_string());
    match response {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("call {function}: {e}"),
    }
}

/// The one statement's result of a `/sql` answer: column names and rows.
fn query(base: &str, token: &str, db: &str, text: &str) -> (Vec<String>, Vec<Value>) {
    let (status, body) = sql(base, token, db, text);
    assert_eq!(status, 200, "`{text}`: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    let columns = json[0]["schema"]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"]["some"].as_str().unwrap_or("?").to_owned())
        .collect();
    let mut rows = json[0]["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r.to_string());
    (columns, rows)
}

fn schema(base: &str, db: &str, version: &str) -> (u16, String) {
    match ureq::get(&format!("{base}/v1/database/{db}/schema?version={version}")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("schema: {e}"),
    }
}

fn t1_args(player: u32, text: &str) -> Vec<u8> {
    bsatn::to_vec(&(player, text.to_string())).unwrap()
}

#[test]
fn calls_resolve_source_and_canonical_names() {
    let (_dir, server, owner) = published("names-calls", "names");
    let base = &server.base;
    let db = "names-calls";
    for (function, args) in [
        ("add_u8", json!([7, "seven"])),
        ("add_u_8", json!([8, "eight"])),
        ("setHTTPPort", json!([80])),
        ("set_http_port", json!([443])),
        ("explicitReducer", json!([1])),
        ("explicit_reducer", json!([2])),
    ] {
        let (status, body) = call(base, &owner, db, function, args);
        assert_eq!(status, 200, "{function}: {body}");
    }
    // The explicit name replaces the converted one: `explicit_reducer` is
    // the source name, `explicitReducer` the canonical one; nothing else.
    let (status, body) = call(base, &owner, db, "explicitreducer", json!([3]));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no such reducer"), "{body}");
    for function in ["double_u8", "double_u_8"] {
        let (status, body) = call(base, &owner, db, function, json!([21]));
        assert_eq!((status, body.as_str()), (200, "42"), "{function}");
    }
    let (_, rows) = query(base, &owner, db, "SELECT * FROM t_1");
    assert_eq!(rows, [json!([1, 7, "seven"]), json!([2, 8, "eight"])]);
    let (_, rows) = query(base, &owner, db, "SELECT * FROM http_server");
    assert_eq!(rows, [json!([443]), json!([80])]);
    let (_, rows) = query(base, &owner, db, "SELECT * FROM CustomName");
    assert_eq!(rows, [json!([1]), json!([2])]);

    // Over WebSocket too, reducers and procedures by either name.
    let mut client = Client::open(base, db, V2);
    assert!(client.call("add_u8", t1_args(9, "nine")));
    assert!(client.call("add_u_8", t1_args(10, "ten")));
    for (request_id, procedure) in [(50, "double_u8"), (51, "double_u_8")] {
        client.ws.send(&[ClientMessage::CallProcedure {
            request_id,
            procedure: procedure.into(),
            args: bsatn::to_vec(&5u8).unwrap(),
        }]);
        let mut pending = Vec::new();
        let returned = loop {
            match client.ws.message(&mut pending) {
                ServerMessage::ProcedureResult {
                    request_id: r,
                    status,
                    ..
                } if r == request_id => break status,
                _ => continue,
            }
        };
        match returned {
            ProcedureStatus::Returned(bytes) => {
                assert_eq!(bsatn::from_slice::<u16>(&bytes).unwrap(), 10, "{procedure}")
            }
            other => panic!("{procedure}: {other:?}"),
        }
    }
    let (_, rows) = query(base, &owner, db, "SELECT * FROM t1");
    assert_eq!(rows.len(), 4);
}

#[test]
fn sql_resolves_tables_and_columns_by_either_name_in_every_clause() {
    let (_dir, server, owner) = published("names-sql", "names");
    let base = &server.base;
    let db = "names-sql";
    for (player, text) in [(7, "a"), (8, "b"), (9, "c")] {
        let (status, body) = call(base, &owner, db, "add_u8", json!([player, text]));
        assert_eq!(status, 200, "{body}");
    }
    let all = [json!([1, 7, "a"]), json!([2, 8, "b"]), json!([3, 9, "c"])];
    for text in ["SELECT * FROM t_1", "SELECT * FROM t1"] {
        let (columns, rows) = query(base, &owner, db, text);
        assert_eq!(columns, ["id", "player_id_2", "already_snake"], "{text}");
        assert_eq!(rows, all, "{text}");
    }
    // A query-builder view: its SQL names `t1` and `playerID2` as the
    // module's source does; read by either of its own names.
    for text in ["SELECT * FROM t_1_high", "SELECT * FROM t1_high"] {
        let (columns, rows) = query(base, &owner, db, text);
        assert_eq!(columns, ["id", "player_id_2", "already_snake"], "{text}");
        assert_eq!(rows, all[1..], "{text}");
    }
    // Columns by either name in projections, filters and joins, tables
    // qualified by the name as written.
    for text in [
        "SELECT player_id_2 FROM t_1 WHERE player_id_2 = 8",
        "SELECT playerID2 FROM t1 WHERE playerID2 = 8",
        "SELECT t1.playerID2 FROM t1 WHERE t1.player_id_2 = 8",
        "SELECT x.player_id_2 FROM t1 AS x WHERE x.playerID2 > 7 AND x.playerID2 < 9",
    ] {
        let (columns, rows) = query(base, &owner, db, text);
        assert_eq!(columns, ["player_id_2"], "{text}");
        assert_eq!(rows, [json!([8])], "{text}");
    }
    for text in [
        "SELECT a.* FROM t1 a JOIN t_1 b ON a.playerID2 = b.player_id_2 WHERE b.id = 2",
        "SELECT t1.* FROM t1 JOIN custom ON t1.playerID2 = custom.v",
    ] {
        let (_, rows) = query(base, &owner, db, text);
        let expected: &[Value] = if text.contains("custom") {
            &[]
        } else {
            &all[1..2]
        };
        assert_eq!(rows, expected, "{text}");
    }
    let (_, rows) = query(base, &owner, db, "SELECT COUNT(*) AS n FROM t1");
    assert_eq!(rows, [json!([3])]);
    // Writes by either name.
    for text in [
        "UPDATE t1 SET already_snake = 'B' WHERE playerID2 = 8",
        "DELETE FROM t_1 WHERE player_id_2 = 9",
        "INSERT INTO HTTPServer (portNumber) VALUES (8080)",
        "INSERT INTO custom (v) VALUES (5)",
    ] {
        let (status, body) = sql(base, &owner, db, text);
        assert_eq!(status, 200, "{text}: {body}");
    }
    let (_, rows) = query(base, &owner, db, "SELECT * FROM t_1");
    assert_eq!(rows, [json!([1, 7, "a"]), json!([2, 8, "B"])]);
    let (_, rows) = query(base, &owner, db, "SELECT * FROM http_server");
    assert_eq!(rows, [json!([8080])]);
    let (_, rows) = query(base, &owner, db, "SELECT v FROM CustomName");
    assert_eq!(rows, [json!([5])]);
    // Names that are neither form are refused, naming what was written.
    for (text, missing) in [
        ("SELECT * FROM t2", "no such table `t2`"),
        ("SELECT * FROM T1", "no such table `T1`"),
        ("SELECT player_id2 FROM t1", "no such column `player_id2`"),
    ] {
        let (status, body) = sql(base, &owner, db, text);
        assert_eq!(status, 400, "{text}: {body}");
        assert!(body.contains(missing), "{text}: {body}");
    }
}

#[test]
fn subscriptions_and_one_off_queries_take_either_name_and_answer_canonically() {
    let (_dir, server, _owner) = published("names-ws", "names");
    let base = &server.base;
    let mut client = Client::open(base, "names-ws", V3_V2);
    let mut other = Client::open(base, "names-ws", V2);
    client.subscribe(0, "SELECT * FROM t1").unwrap();
    client
        .subscribe(1, "SELECT * FROM t_1 WHERE playerID2 = 7")
        .unwrap();
    client
        .subscribe(
            2,
            "SELECT a.* FROM t1 a JOIN t_1 b ON a.id = b.id WHERE b.already_snake = 'x'",
        )
        .unwrap();
    other.subscribe(0, "SELECT * FROM HTTPServer").unwrap();

    // The caller's own update names the table canonically.
    let request_id = client.request_id();
    client.ws.send(&[ClientMessage::CallReducer {
        request_id,
        reducer: "add_u8".into(),
        args: t1_args(7, "x"),
    }]);
    let mut pending = Vec::new();
    let update = loop {
        match client.ws.message(&mut pending) {
            ServerMessage::ReducerResult {
                request_id: r,
                result: orrery_wire::messages::ReducerOutcome::Ok(ok),
                ..
            } if r == request_id => break ok.transaction_update,
            ServerMessage::ReducerResult { result, .. } => panic!("add_u8: {result:?}"),
            _ => continue,
        }
    };
    let names: Vec<&str> = update
        .query_sets
        .iter()
        .flat_map(|s| s.tables.iter().map(|t| &*t.table_name))
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| *n == "t_1"),
        "{names:?}"
    );
    client.apply(&update.query_sets);
    let row = bsatn::to_vec(&(1u64, 7u32, "x".to_string())).unwrap();
    for set in 0..3 {
        assert_eq!(client.held[&set], std::slice::from_ref(&row), "set {set}");
    }
    assert!(client.call("add_u_8", t1_args(8, "y")));
    assert_eq!(client.held[&0].len(), 2);
    assert_eq!(client.held[&1].len(), 1);
    assert!(other.call("set_http_port", bsatn::to_vec(&80u16).unwrap()));
    assert_eq!(other.held[&0], [bsatn::to_vec(&80u16).unwrap()]);

    for text in [
        "SELECT * FROM t1",
        "SELECT * FROM t_1",
        "SELECT t1.* FROM t1",
    ] {
        assert_eq!(
            sorted(other.query(text).unwrap()),
            sorted(client.held[&0].clone()),
            "{text}"
        );
    }
    let error = other.subscribe(5, "SELECT * FROM nope").unwrap_err();
    assert!(error.contains("no such table `nope`"), "{error}");
}

#[test]
fn schema_serves_v10_as_published_and_v9_in_canonical_form() {
    let (_dir, server, _owner) = published("names-schema", "names");
    let base = &server.base;
    let (status, v10) = schema(base, "names-schema", "10");
    assert_eq!(status, 200, "{v10}");
    assert!(
        v10.contains("\"add_u8\"") && v10.contains("\"playerID2\""),
        "{v10}"
    );

    let (status, body) = schema(base, "names-schema", "9");
    assert_eq!(status, 200, "{body}");
    let v9: Value = serde_json::from_str(&body).unwrap();
    let names = |key: &str| -> Vec<String> {
        let mut names: Vec<String> = v9[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("tables"), ["CustomName", "http_server", "t_1"]);
    assert_eq!(
        names("reducers"),
        ["add_u_8", "explicitReducer", "set_http_port"]
    );
    let procedures: Vec<&str> = v9["misc_exports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["Procedure"]["name"].as_str())
        .collect();
    assert_eq!(procedures, ["double_u_8"]);
    // Columns in the typespace are canonical; reducer parameters as written.
    let t1 = v9["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t_1")
        .unwrap();
    let row_ref = t1["product_type_ref"].as_u64().unwrap() as usize;
    let columns: Vec<&str> = v9["typespace"]["types"][row_ref]["Product"]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"]["some"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "player_id_2", "already_snake"]);
    assert_eq!(t1["sequences"][0]["name"]["some"], "t_1_id_seq");
    assert_eq!(t1["constraints"][0]["name"]["some"], "t_1_id_key");
    // It decodes as a V9 definition and validates as one.
    let raw: spacetimedb_lib::db::raw_def::v9::RawModuleDefV9 =
        serde_json::from_value::<spacetimedb_sats::serde::SerdeWrapper<_>>(v9)
            .map(|w| w.0)
            .unwrap();
    let def = orrery_moduledef::ModuleDef::from_raw(spacetimedb_lib::RawModuleDef::V9(raw))
        .expect("the V9 form validates");
    assert!(def.reducer("add_u_8").is_some());
    assert_eq!(def.tables.len(), 3);

    let (status, body) = schema(base, "names-schema", "8");
    assert_eq!(status, 400, "{body}");
}
