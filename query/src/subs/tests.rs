use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use spacetimedb_lib::Identity;
use spacetimedb_sats::{u256, AlgebraicType, AlgebraicValue, ProductType};
use storage::{
    ColId, Database, DbOptions, IndexAlgorithm, IndexDef, IndexId, Row, State, TableDef, TableId,
    TxDelta, UniqueConstraintDef,
};

use super::eval::{self, Canary};
use super::*;
use crate::sql::run_query;

fn sender() -> Identity {
    Identity::from_byte_array([7; 32])
}

fn other() -> Identity {
    Identity::from_byte_array([9; 32])
}

fn ident(i: Identity) -> AlgebraicValue {
    AlgebraicValue::product([AlgebraicValue::U256(Box::new(u256::from_le_bytes(
        i.to_byte_array(),
    )))])
}

fn index(name: &str, col: u16) -> IndexDef {
    IndexDef {
        name: name.into(),
        algorithm: IndexAlgorithm::BTree,
        columns: vec![ColId(col)],
    }
}

fn table(
    name: &str,
    columns: ProductType,
    pk: bool,
    indexes: Vec<IndexDef>,
    public: bool,
    is_event: bool,
) -> TableDef {
    TableDef {
        name: name.into(),
        columns,
        primary_key: pk.then_some(ColId(0)),
        indexes,
        unique_constraints: if pk {
            vec![UniqueConstraintDef {
                name: format!("{name}_pk_key"),
                columns: vec![ColId(0)],
            }]
        } else {
            vec![]
        },
        sequences: vec![],
        public,
        is_event,
    }
}

/// Table ids and the primary-key indexes the tests write through.
#[derive(Clone, Copy)]
struct Ids {
    user: TableId,
    user_pk: IndexId,
    item: TableId,
    item_pk: IndexId,
    ev: TableId,
}

/// player(id u32 pk, name string, grp u32 idx, score i32, who Identity),
/// item(iid u32 pk, owner u32 idx, kind u8), ev(uid u32 idx, amount u32) event,
/// secret(x u32) private, plain(k u32, v u32) without indexes.
fn db() -> (Database, Ids) {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let user = tx
        .create_table(table(
            "player",
            ProductType::from([
                ("id", AlgebraicType::U32),
                ("name", AlgebraicType::String),
                ("grp", AlgebraicType::U32),
                ("score", AlgebraicType::I32),
                ("who", AlgebraicType::identity()),
            ]),
            true,
            vec![index("player_id", 0), index("player_grp", 2)],
            true,
            false,
        ))
        .unwrap();
    let item = tx
        .create_table(table(
            "item",
            ProductType::from([
                ("iid", AlgebraicType::U32),
                ("owner", AlgebraicType::U32),
                ("kind", AlgebraicType::U8),
            ]),
            true,
            vec![index("item_iid", 0), index("item_owner", 1)],
            true,
            false,
        ))
        .unwrap();
    let ev = tx
        .create_table(table(
            "ev",
            ProductType::from([("uid", AlgebraicType::U32), ("amount", AlgebraicType::U32)]),
            false,
            vec![index("ev_uid", 0)],
            true,
            true,
        ))
        .unwrap();
    tx.create_table(table(
        "secret",
        ProductType::from([("x", AlgebraicType::U32)]),
        false,
        vec![],
        false,
        false,
    ))
    .unwrap();
    tx.create_table(table(
        "plain",
        ProductType::from([("k", AlgebraicType::U32), ("v", AlgebraicType::U32)]),
        false,
        vec![],
        true,
        false,
    ))
    .unwrap();
    tx.commit().unwrap();
    let state = db.read().unwrap();
    let ids = Ids {
        user,
        user_pk: state.index_id_from_name("player_id").unwrap(),
        item,
        item_pk: state.index_id_from_name("item_iid").unwrap(),
        ev,
    };
    drop(state);
    (db, ids)
}

#[derive(Debug, Clone)]
enum Op {
    /// Insert, or update through the primary key if the id exists.
    User {
        id: u32,
        name: u8,
        grp: u32,
        score: i32,
        me: bool,
    },
    DeleteUser(u32),
    /// Delete the user row and insert it again, byte-identical.
    ReinsertUser(u32),
    Item {
        iid: u32,
        owner: u32,
        kind: u8,
    },
    DeleteItem(u32),
    ReinsertItem(u32),
    Event {
        uid: u32,
        amount: u32,
    },
}

fn user_row(id: u32, name: u8, grp: u32, score: i32, me: bool) -> Vec<AlgebraicValue> {
    vec![
        AlgebraicValue::U32(id),
        AlgebraicValue::String(["a", "b", "c"][name as usize % 3].into()),
        AlgebraicValue::U32(grp),
        AlgebraicValue::I32(score),
        ident(if me { sender() } else { other() }),
    ]
}

fn item_row(iid: u32, owner: u32, kind: u8) -> Vec<AlgebraicValue> {
    vec![
        AlgebraicValue::U32(iid),
        AlgebraicValue::U32(owner),
        AlgebraicValue::U8(kind),
    ]
}

fn upsert(tx: &mut storage::MutTx, table: TableId, pk: IndexId, row: Vec<AlgebraicValue>) {
    let exists = tx.find_unique(pk, &row[0]).unwrap().is_some();
    if exists {
        tx.update_row(table, pk, row).unwrap();
    } else {
        tx.insert_row(table, row).unwrap();
    }
}

fn reinsert(tx: &mut storage::MutTx, table: TableId, pk: IndexId, id: u32) {
    let Some(row) = tx
        .find_unique(pk, &AlgebraicValue::U32(id))
        .unwrap()
        .cloned()
    else {
        return;
    };
    assert!(tx.delete_row(table, &row).unwrap());
    tx.insert_row(table, row.to_vec()).unwrap();
}

fn delete(tx: &mut storage::MutTx, table: TableId, pk: IndexId, id: u32) {
    tx.delete_by_point(pk, &AlgebraicValue::U32(id)).unwrap();
    let _ = table;
}

fn apply(db: &Database, ids: Ids, ops: &[Op]) -> TxDelta {
    let mut tx = db.begin().unwrap();
    for op in ops {
        match *op {
            Op::User {
                id,
                name,
                grp,
                score,
                me,
            } => upsert(
                &mut tx,
                ids.user,
                ids.user_pk,
                user_row(id, name, grp, score, me),
            ),
            Op::DeleteUser(id) => delete(&mut tx, ids.user, ids.user_pk, id),
            Op::ReinsertUser(id) => reinsert(&mut tx, ids.user, ids.user_pk, id),
            Op::Item { iid, owner, kind } => {
                upsert(&mut tx, ids.item, ids.item_pk, item_row(iid, owner, kind))
            }
            Op::DeleteItem(iid) => delete(&mut tx, ids.item, ids.item_pk, iid),
            Op::ReinsertItem(iid) => reinsert(&mut tx, ids.item, ids.item_pk, iid),
            Op::Event { uid, amount } => {
                tx.insert_row(
                    ids.ev,
                    vec![AlgebraicValue::U32(uid), AlgebraicValue::U32(amount)],
                )
                .unwrap();
            }
        }
    }
    tx.commit().unwrap()
}

/// The differential test's queries.
const QUERIES: &[&str] = &[
    "SELECT * FROM player",
    "SELECT * FROM player WHERE score > 2 AND grp = 1 OR name = 'b'",
    "SELECT * FROM player WHERE id = 2",
    "SELECT * FROM player WHERE grp = 3 AND score <= 1",
    "SELECT * FROM player WHERE who = :sender",
    "SELECT * FROM item WHERE kind != 1 OR owner >= 4",
    "SELECT player.* FROM player JOIN item ON player.id = item.owner",
    "SELECT item.* FROM player JOIN item ON player.id = item.owner WHERE player.score > 0",
    "SELECT u.* FROM player u JOIN item i ON u.grp = i.owner WHERE i.kind = 1",
    "SELECT i.* FROM item i JOIN player u ON i.owner = u.grp WHERE u.score < 3 AND i.kind != 2",
    "SELECT u.* FROM item i JOIN player u ON i.owner = u.id WHERE u.id = 1 OR i.kind = 0",
    "SELECT a.* FROM player a JOIN player b ON a.grp = b.id WHERE b.score > a.score",
    "SELECT i.* FROM item i JOIN player p WHERE p.id = 1 AND i.kind < 2",
    "SELECT * FROM ev WHERE amount > 2",
    "SELECT ev.* FROM ev JOIN player ON ev.uid = player.id WHERE player.score > 0",
];

fn compile_all(db: &Database) -> Vec<Query> {
    let state = db.read().unwrap();
    QUERIES
        .iter()
        .map(|sql| {
            Query::compile(&state, sql, false, sender()).unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
        .collect()
}

type Bag = HashMap<Row, i64>;

fn bag<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Bag {
    let mut b = Bag::new();
    for r in rows {
        *b.entry(r.clone()).or_default() += 1;
    }
    b.retain(|_, n| *n != 0);
    b
}

/// The one-off evaluator's answer (an independent implementation).
fn reference(state: &State, q: &Query) -> Bag {
    let result = run_query(state, q.key().text(), false, sender()).unwrap();
    let rows: Vec<Row> = result
        .rows
        .into_iter()
        .map(|p| Row::from(p.elements))
        .collect();
    bag(&rows)
}

/// What the event queries must report for a transaction.
fn expected_events(q: &Query, delta: &TxDelta, after: &State, ids: Ids) -> Bag {
    let inserted: Vec<&Row> = delta
        .tables
        .iter()
        .filter(|t| t.table_id == ids.ev)
        .flat_map(|t| &t.inserts)
        .collect();
    let amount = |r: &Row| match r[1] {
        AlgebraicValue::U32(a) => a,
        _ => unreachable!(),
    };
    match q.key().text() {
        "SELECT * FROM ev WHERE amount > 2" => bag(inserted.into_iter().filter(|r| amount(r) > 2)),
        "SELECT ev.* FROM ev JOIN player ON ev.uid = player.id WHERE player.score > 0" => {
            let mut out = Vec::new();
            for e in inserted {
                for u in after.scan(ids.user).unwrap() {
                    if u[0] == e[0] && u[3] > AlgebraicValue::I32(0) {
                        out.push(e.clone());
                    }
                }
            }
            bag(&out)
        }
        other => panic!("no event expectation for {other}"),
    }
}

/// Runs one transaction and checks every query's delta against its results
/// before and after; `Err` describes the first mismatch.
fn check_tx(
    db: &Database,
    ids: Ids,
    queries: &[Query],
    ops: &[Op],
    canary: Canary,
) -> Result<(), String> {
    let before: Vec<Bag> = {
        let state = db.read().unwrap();
        queries.iter().map(|q| bag(&q.initial(&state))).collect()
    };
    let delta = apply(db, ids, ops);
    let after = db.read().unwrap();
    for (q, before) in queries.iter().zip(before) {
        let sql = q.key().text();
        let now = bag(&q.initial(&after));
        if now != reference(&after, q) {
            return Err(format!("{sql}: initial differs from the one-off evaluator"));
        }
        if q.invalidated_by(&delta) {
            return Err(format!("{sql}: invalidated by a plain transaction"));
        }
        let d = eval::delta(q, &delta, &after, canary);
        let ins = bag(&d.inserts);
        let del = bag(&d.deletes);
        if let Some(r) = ins.keys().find(|r| del.contains_key(*r)) {
            return Err(format!("{sql}: {r:?} both inserted and deleted"));
        }
        for (r, n) in &del {
            if before.get(r).copied().unwrap_or(0) < *n {
                return Err(format!("{sql}: deletes {r:?} ×{n}, not held before"));
            }
        }
        let mut held = before;
        for (r, n) in ins {
            *held.entry(r).or_default() += n;
        }
        for (r, n) in del {
            *held.entry(r).or_default() -= n;
        }
        held.retain(|_, n| *n != 0);
        if held != now {
            return Err(format!(
                "{sql}: before + inserts − deletes ≠ after\n got {held:?}\nwant {now:?}\nops {ops:?}"
            ));
        }
        if q.is_event() {
            if !d.inserts.is_empty() || !d.deletes.is_empty() {
                return Err(format!("{sql}: event query with persistent rows"));
            }
            let want = expected_events(q, &delta, &after, ids);
            if bag(&d.events) != want {
                return Err(format!("{sql}: events {:?}, want {want:?}", d.events));
            }
        } else if !d.events.is_empty() {
            return Err(format!("{sql}: events from a persistent table"));
        }
    }
    Ok(())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..6, 0u8..3, 0u32..5, -2i32..5, any::<bool>()).prop_map(
            |(id, name, grp, score, me)| Op::User { id, name, grp, score, me }
        ),
        2 => (0u32..6).prop_map(Op::DeleteUser),
        1 => (0u32..6).prop_map(Op::ReinsertUser),
        4 => (0u32..8, 0u32..6, 0u8..3).prop_map(|(iid, owner, kind)| Op::Item { iid, owner, kind }),
        2 => (0u32..8).prop_map(Op::DeleteItem),
        1 => (0u32..8).prop_map(Op::ReinsertItem),
        2 => (0u32..6, 0u32..5).prop_map(|(uid, amount)| Op::Event { uid, amount }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn delta_matches_initial_results(txs in prop::collection::vec(prop::collection::vec(op(), 1..10), 1..8)) {
        let (db, ids) = db();
        let queries = compile_all(&db);
        for ops in &txs {
            let r = check_tx(&db, ids, &queries, ops, Canary::Off);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }
}

/// A fixed workload touching every query kind.
fn fixed_workload() -> Vec<Vec<Op>> {
    let user = |id, grp, score| Op::User {
        id,
        name: 1,
        grp,
        score,
        me: true,
    };
    vec![
        vec![
            user(1, 1, 3),
            user(2, 1, 4),
            user(3, 2, 1),
            Op::Item {
                iid: 0,
                owner: 1,
                kind: 1,
            },
            Op::Item {
                iid: 1,
                owner: 1,
                kind: 0,
            },
        ],
        vec![
            user(1, 2, 5),
            Op::DeleteItem(0),
            Op::Item {
                iid: 2,
                owner: 2,
                kind: 1,
            },
            Op::Event { uid: 1, amount: 3 },
        ],
        vec![Op::DeleteUser(2), Op::ReinsertItem(1), Op::ReinsertUser(1)],
    ]
}

#[test]
fn fixed_workload_passes() {
    let (db, ids) = db();
    let queries = compile_all(&db);
    for ops in fixed_workload() {
        check_tx(&db, ids, &queries, &ops, Canary::Off).unwrap();
    }
}

/// The canary drops one delta row; the differential check must notice.
#[test]
fn canary_dropping_a_delta_row_is_caught() {
    let (db, ids) = db();
    let queries = compile_all(&db);
    let failures = fixed_workload()
        .iter()
        .filter(|ops| check_tx(&db, ids, &queries, ops, Canary::On).is_err())
        .count();
    assert_eq!(failures, fixed_workload().len());
}

fn compile(db: &Database, sql: &str) -> Query {
    Query::compile(&db.read().unwrap(), sql, false, sender())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn compile_err(db: &Database, sql: &str, owner: bool) -> String {
    match Query::compile(&db.read().unwrap(), sql, owner, sender()) {
        Ok(_) => panic!("{sql} compiled"),
        Err(e) => e.0,
    }
}

#[test]
fn bag_multiplicity_through_non_unique_index() {
    let (db, ids) = db();
    apply(
        &db,
        ids,
        &[
            Op::User {
                id: 1,
                name: 0,
                grp: 0,
                score: 0,
                me: false,
            },
            Op::Item {
                iid: 10,
                owner: 1,
                kind: 0,
            },
            Op::Item {
                iid: 11,
                owner: 1,
                kind: 1,
            },
            Op::Item {
                iid: 12,
                owner: 1,
                kind: 2,
            },
        ],
    );
    let q = compile(
        &db,
        "SELECT player.* FROM player JOIN item ON player.id = item.owner",
    );
    let user = Row::from(user_row(1, 0, 0, 0, false));
    assert_eq!(q.initial(&db.read().unwrap()), vec![user.clone(); 3]);
    let delta = apply(&db, ids, &[Op::DeleteItem(11)]);
    let d = q.delta(&delta, &db.read().unwrap());
    assert_eq!(d.deletes, vec![user.clone()]);
    assert!(d.inserts.is_empty() && d.events.is_empty());
    // Deleting the user drops the remaining two copies at once.
    let delta = apply(&db, ids, &[Op::DeleteUser(1)]);
    let d = q.delta(&delta, &db.read().unwrap());
    assert_eq!(d.deletes, vec![user.clone(); 2]);
    // The same through the other side of the join returns items.
    let q = compile(
        &db,
        "SELECT item.* FROM item JOIN player ON item.owner = player.id",
    );
    assert!(q.initial(&db.read().unwrap()).is_empty());
    let delta = apply(
        &db,
        ids,
        &[Op::User {
            id: 1,
            name: 0,
            grp: 0,
            score: 0,
            me: false,
        }],
    );
    let d = q.delta(&delta, &db.read().unwrap());
    assert_eq!(d.inserts.len(), 2);
}

#[test]
fn pk_update_is_delete_old_and_insert_new() {
    let (db, ids) = db();
    let u = |score| Op::User {
        id: 4,
        name: 2,
        grp: 1,
        score,
        me: false,
    };
    apply(&db, ids, &[u(1)]);
    let q = compile(&db, "SELECT * FROM player WHERE grp = 1");
    let delta = apply(&db, ids, &[u(2)]);
    let d = q.delta(&delta, &db.read().unwrap());
    assert_eq!(d.deletes, vec![Row::from(user_row(4, 2, 1, 1, false))]);
    assert_eq!(d.inserts, vec![Row::from(user_row(4, 2, 1, 2, false))]);
    // An identical delete + reinsert changes nothing.
    let delta = apply(&db, ids, &[Op::ReinsertUser(4)]);
    assert!(q.delta(&delta, &db.read().unwrap()).is_empty());
}

#[test]
fn identical_delete_and_insert_in_one_delta_cancel() {
    let (db, ids) = db();
    apply(
        &db,
        ids,
        &[Op::User {
            id: 1,
            name: 0,
            grp: 0,
            score: 0,
            me: false,
        }],
    );
    let q = compile(&db, "SELECT * FROM player");
    let row = Row::from(user_row(1, 0, 0, 0, false));
    // Storage nets these out itself; build the delta by hand to be sure.
    let schema = db.read().unwrap().schema(ids.user).unwrap().clone();
    let delta = TxDelta {
        tables: vec![storage::TableDelta {
            table_id: ids.user,
            schema,
            inserts: vec![row.clone()],
            deletes: vec![row.clone()],
        }],
        ..TxDelta::default()
    };
    assert!(q.delta(&delta, &db.read().unwrap()).is_empty());
    let q = compile(
        &db,
        "SELECT player.* FROM player JOIN item ON player.id = item.owner",
    );
    assert!(q.delta(&delta, &db.read().unwrap()).is_empty());
}

#[test]
fn sender_query() {
    let (db, ids) = db();
    apply(
        &db,
        ids,
        &[
            Op::User {
                id: 1,
                name: 0,
                grp: 0,
                score: 0,
                me: true,
            },
            Op::User {
                id: 2,
                name: 0,
                grp: 0,
                score: 0,
                me: false,
            },
        ],
    );
    let state = db.read().unwrap();
    let sql = "SELECT * FROM player WHERE who = :sender";
    let mine = Query::compile(&state, sql, false, sender()).unwrap();
    let theirs = Query::compile(&state, &format!("  {sql} "), false, other()).unwrap();
    assert!(mine.depends_on_sender());
    assert_ne!(mine.key(), theirs.key());
    assert_eq!(
        mine.initial(&state),
        vec![Row::from(user_row(1, 0, 0, 0, true))]
    );
    assert_eq!(
        theirs.initial(&state),
        vec![Row::from(user_row(2, 0, 0, 0, false))]
    );
    // Without :sender, callers share one key; trimming does not matter.
    let a = Query::compile(&state, "SELECT * FROM player", false, sender()).unwrap();
    let b = Query::compile(&state, " SELECT * FROM player\n", false, other()).unwrap();
    assert!(!a.depends_on_sender());
    assert_eq!(a.key(), b.key());
    assert_eq!(a.reads(), &[ids.user]);
    assert_eq!(a.returned_table().name, "player");
}

#[test]
fn compile_errors() {
    let (db, _) = db();
    assert!(compile_err(&db, "SELECT * FROM nope", false).contains("no such table"));
    assert!(compile_err(&db, "SELECT * FROM secret", false).contains("no such table"));
    Query::compile(&db.read().unwrap(), "SELECT * FROM secret", true, sender()).unwrap();
    compile_err(
        &db,
        "SELECT * FROM player JOIN item ON player.id = item.owner",
        false,
    );
    assert!(compile_err(
        &db,
        "SELECT player.* FROM player JOIN plain ON player.id = plain.k",
        false
    )
    .contains("indexes on join columns"));
    assert!(compile_err(
        &db,
        "SELECT player.* FROM player JOIN ev ON player.id = ev.uid",
        false
    )
    .contains("event table"));
    compile_err(&db, "SELECT id FROM player", false);
    compile_err(&db, "DELETE FROM player", true);
    compile_err(&db, "SELECT * FROM player LIMIT 1", false);
}

#[test]
fn select_all_expansion() {
    let (db, _) = db();
    let state = db.read().unwrap();
    let public = [
        "SELECT * FROM \"player\"",
        "SELECT * FROM \"item\"",
        "SELECT * FROM \"ev\"",
        "SELECT * FROM \"plain\"",
    ];
    for sql in [
        "SELECT * FROM *",
        "  select\t*\nfrom  * ",
        "Select*From*",
        "SELECT * FROM *;",
    ] {
        assert_eq!(
            expand_select_all(sql, &state, false).unwrap(),
            public,
            "{sql}"
        );
    }
    let all = expand_select_all("SELECT * FROM *", &state, true).unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.contains(&"SELECT * FROM \"secret\"".to_string()));
    for sql in [
        "SELECT * FROM player",
        "SELECT * FROM * WHERE x",
        "SELECT ** FROM *",
        "SELECTX * FROM *",
    ] {
        assert!(expand_select_all(sql, &state, true).is_none(), "{sql}");
    }
    // Every expansion compiles.
    for sql in all {
        Query::compile(&state, &sql, true, sender()).unwrap();
    }
}

#[test]
fn encode_rows_hints() {
    let (db, ids) = db();
    let state = db.read().unwrap();
    let item = state.schema(ids.item).unwrap().clone();
    let user = state.schema(ids.user).unwrap().clone();
    let empty = encode_rows(&[], &item);
    assert_eq!(empty.size_hint, RowSizeHint::RowOffsets(vec![]));
    assert!(empty.rows_data.is_empty());
    let items = [Row::from(item_row(1, 2, 3)), Row::from(item_row(4, 5, 6))];
    let fixed = encode_rows(&items, &item);
    assert_eq!(fixed.size_hint, RowSizeHint::FixedSize(9));
    assert_eq!(fixed.rows_data.len(), 18);
    assert_eq!(&fixed.rows_data[..9], &[1, 0, 0, 0, 2, 0, 0, 0, 3]);
    let mut long = user_row(2, 0, 0, 0, false);
    long[1] = AlgebraicValue::String("longer".into());
    let users = [Row::from(user_row(1, 0, 0, 0, false)), Row::from(long)];
    let varied = encode_rows(&users, &user);
    // id 4 + name (4 + 1) + grp 4 + score 4 + identity 32 = 49.
    assert_eq!(varied.size_hint, RowSizeHint::RowOffsets(vec![0, 49]));
    assert_eq!(varied.rows_data.len(), 49 + 54);
    assert_eq!(varied.rows().unwrap().len(), 2);
}

#[test]
fn event_rows_only_in_events() {
    let (db, ids) = db();
    let q = compile(&db, "SELECT * FROM ev");
    assert!(q.is_event());
    let delta = apply(
        &db,
        ids,
        &[
            Op::Event { uid: 1, amount: 2 },
            Op::Event { uid: 2, amount: 3 },
        ],
    );
    let state = db.read().unwrap();
    assert!(q.initial(&state).is_empty());
    let d = q.delta(&delta, &state);
    assert!(d.inserts.is_empty() && d.deletes.is_empty());
    assert_eq!(
        bag(&d.events),
        bag(&[
            Row::from(vec![AlgebraicValue::U32(1), AlgebraicValue::U32(2)]),
            Row::from(vec![AlgebraicValue::U32(2), AlgebraicValue::U32(3)]),
        ])
    );
}

#[test]
fn schema_changes_invalidate() {
    let (db, ids) = db();
    let q = compile(
        &db,
        "SELECT player.* FROM player JOIN item ON player.id = item.owner",
    );
    let plain = compile(&db, "SELECT * FROM plain");
    let mut delta = TxDelta {
        dropped_tables: vec![ids.item],
        ..TxDelta::default()
    };
    assert!(q.invalidated_by(&delta));
    assert!(!plain.invalidated_by(&delta));
    delta.dropped_tables.clear();
    assert!(!q.invalidated_by(&delta));
    let _ = Arc::clone(q.returned_table());
}

// Protects issue 12's bound on one-off queries and initial subscription
// rows: a 2-way cross product (a join without ON) of 2,000-row tables is
// refused by the budget as soon as it crosses a limit, naming it; ordinary
// queries under the same budget return their rows.
#[test]
fn initial_rows_are_charged_to_a_budget() {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let big = tx
        .create_table(table(
            "big",
            ProductType::from([("k", AlgebraicType::U32)]),
            true,
            vec![index("big_k", 0)],
            true,
            false,
        ))
        .unwrap();
    for k in 0..2_000u32 {
        tx.insert_row(big, vec![AlgebraicValue::U32(k)]).unwrap();
    }
    tx.commit().unwrap();
    let state = db.read().unwrap();
    let max = orrery_api::limits::QUERY_ROWS_EXAMINED_MAX;
    let cross = Query::compile(
        &state,
        "SELECT a.* FROM big a JOIN big b WHERE b.k > 5000",
        false,
        sender(),
    )
    .unwrap();
    let mut budget = Budget::new(QueryLimits::NON_OWNER);
    let e = cross.initial_bounded(&state, &mut budget).unwrap_err();
    assert_eq!(e, LimitExceeded::RowsExamined { max });
    assert!(
        e.to_string().contains(&format!("rows_examined = {max}")),
        "{e}"
    );
    assert_eq!(budget.examined(), max + 1);
    // Returning the pairs, it meets the result-row cap first.
    let rows_max = orrery_api::limits::QUERY_RESULT_ROWS_MAX;
    let cross =
        Query::compile(&state, "SELECT a.* FROM big a JOIN big b", false, sender()).unwrap();
    let mut budget = Budget::new(QueryLimits::NON_OWNER);
    assert_eq!(
        cross.initial_bounded(&state, &mut budget),
        Err(LimitExceeded::ResultRows { max: rows_max })
    );
    assert!(budget.examined() < 2 * rows_max);

    let point = Query::compile(&state, "SELECT * FROM big WHERE k = 7", false, sender()).unwrap();
    let mut budget = Budget::new(QueryLimits::NON_OWNER);
    assert_eq!(point.initial_bounded(&state, &mut budget).unwrap().len(), 1);
    assert_eq!(
        budget.examined(),
        1,
        "an index lookup examines what it finds"
    );
    let all = Query::compile(&state, "SELECT * FROM big", false, sender()).unwrap();
    let mut budget = Budget::new(QueryLimits {
        result_bytes_max: 4 * 1_999,
        ..QueryLimits::NON_OWNER
    });
    assert_eq!(
        all.initial_bounded(&state, &mut budget),
        Err(LimitExceeded::ResultBytes { max: 4 * 1_999 })
    );
    let mut budget = Budget::new(QueryLimits::SUBSCRIPTION_INITIAL);
    assert_eq!(
        all.initial_bounded(&state, &mut budget).unwrap().len(),
        2_000
    );
}
