// Protects the documented behaviours modules rely on, one per test: the exact
// ABI byte shapes of point keys and range bounds (module-abi §7.4), errors that
// name what failed, sequences with write-back and overflow, set semantics,
// scans that stay valid while the transaction deletes, and deterministic deltas.

use std::ops::Bound;

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::{
    ColId, CommitError, Database, DbOptions, IndexAlgorithm, IndexDef, IndexRange, MutTx,
    SequenceDef, TableDef, TableId, TxError, UniqueConstraintDef,
};

fn person_def() -> TableDef {
    TableDef {
        name: "person".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U64),
            ("name", AlgebraicType::String),
            ("age", AlgebraicType::U8),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            IndexDef {
                name: "person_id_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(0)],
            },
            IndexDef {
                name: "person_name_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(1)],
            },
            IndexDef {
                name: "person_age_name_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(2), ColId(1)],
            },
            IndexDef {
                name: "person_age_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(2)],
            },
            IndexDef {
                name: "person_age_idx_hash".into(),
                algorithm: IndexAlgorithm::Hash,
                columns: vec![ColId(2)],
            },
        ],
        unique_constraints: vec![
            UniqueConstraintDef {
                name: "person_id_key".into(),
                columns: vec![ColId(0)],
            },
            UniqueConstraintDef {
                name: "person_name_key".into(),
                columns: vec![ColId(1)],
            },
        ],
        sequences: vec![SequenceDef {
            name: "person_id_seq".into(),
            column: ColId(0),
            start: None,
            min_value: None,
            max_value: None,
            increment: 1,
        }],
        public: true,
        is_event: false,
    }
}

fn person(id: u64, name: &str, age: u8) -> Vec<AlgebraicValue> {
    vec![
        AlgebraicValue::U64(id),
        AlgebraicValue::String(name.into()),
        AlgebraicValue::U8(age),
    ]
}

fn setup() -> (Database, TableId) {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(person_def()).unwrap();
    for (name, age) in [
        ("alice", 30),
        ("bob", 30),
        ("carol", 18),
        ("dave", 65),
        ("erin", 200),
        ("a", 30),
        ("m", 30),
    ] {
        tx.insert_row(table, person(0, name, age)).unwrap();
    }
    tx.commit().unwrap();
    (db, table)
}

fn names(rows: storage::RowsRef<'_>) -> Vec<String> {
    let mut names: Vec<String> = rows
        .map(|r| match &r[1] {
            AlgebraicValue::String(s) => s.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    names.sort();
    names
}

fn range_bytes(
    tx: &MutTx,
    index: &str,
    prefix: &[u8],
    elems: usize,
    start: &[u8],
    end: &[u8],
) -> Vec<String> {
    let id = tx.index_id_from_name(index).unwrap();
    names(tx.index_range_bsatn(id, prefix, elems, start, end).unwrap())
}

#[test]
fn abi_byte_examples_select_the_right_rows() {
    let (db, _) = setup();
    let mut tx = db.begin().unwrap();
    let age = tx.index_id_from_name("person_age_idx_btree").unwrap();
    // age().filter(30u8): point 1e
    assert_eq!(
        names(tx.index_point_bsatn(age, &[0x1e]).unwrap()),
        ["a", "alice", "bob", "m"]
    );
    // age().filter(18u8..=65u8): rstart 00 12, rend 00 41
    assert_eq!(
        range_bytes(
            &tx,
            "person_age_idx_btree",
            &[],
            0,
            &[0x00, 0x12],
            &[0x00, 0x41]
        ),
        ["a", "alice", "bob", "carol", "dave", "m"]
    );
    // by_age_and_name().filter((30u8, "bob")): point 1e 03000000 626f62
    let by_age_name = tx.index_id_from_name("person_age_name_idx_btree").unwrap();
    assert_eq!(
        names(
            tx.index_point_bsatn(by_age_name, &[0x1e, 3, 0, 0, 0, b'b', b'o', b'b'])
                .unwrap()
        ),
        ["bob"]
    );
    // by_age_and_name().filter((30u8, "a".."m")): prefix 1e (1), rstart 00 "a", rend 01 "m"
    assert_eq!(
        range_bytes(
            &tx,
            "person_age_name_idx_btree",
            &[0x1e],
            1,
            &[0x00, 1, 0, 0, 0, b'a'],
            &[0x01, 1, 0, 0, 0, b'm']
        ),
        ["a", "alice", "bob"]
    );
    // by_age_and_name().filter(20u8..): empty prefix, rstart 00 14, rend 02
    assert_eq!(
        range_bytes(
            &tx,
            "person_age_name_idx_btree",
            &[],
            0,
            &[0x00, 0x14],
            &[0x02]
        ),
        ["a", "alice", "bob", "dave", "erin", "m"]
    );
    // name().find("x") is a point on a unique index; "alice" exists.
    let name = tx.index_id_from_name("person_name_idx_btree").unwrap();
    assert_eq!(
        names(
            tx.index_point_bsatn(name, &[5, 0, 0, 0, b'a', b'l', b'i', b'c', b'e'])
                .unwrap()
        ),
        ["alice"]
    );
    // Ordering is by value: 200 > 65 although 0xc8 < 0x41 is false bytewise for LE u16s, etc.
    assert_eq!(
        range_bytes(&tx, "person_age_idx_btree", &[], 0, &[0x01, 0x41], &[0x02]),
        ["erin"]
    );
    // age().delete(..10u8): rstart 02, rend 01 0a — nobody is under 10.
    assert_eq!(
        tx.delete_by_range_bsatn(age, &[], 0, &[0x02], &[0x01, 0x0a])
            .unwrap(),
        0
    );
    // by_age_and_name().delete(200u8): both bounds 00 c8.
    assert_eq!(
        tx.delete_by_range_bsatn(by_age_name, &[], 0, &[0x00, 0xc8], &[0x00, 0xc8])
            .unwrap(),
        1
    );
    assert_eq!(
        tx.row_count(tx.table_id_from_name("person").unwrap())
            .unwrap(),
        6
    );
}

#[test]
fn bad_abi_bytes_are_typed_errors() {
    let (db, table) = setup();
    let mut tx = db.begin().unwrap();
    let age = tx.index_id_from_name("person_age_idx_btree").unwrap();
    let decode =
        |r: Result<storage::RowsRef<'_>, TxError>| matches!(r.err(), Some(TxError::Decode { .. }));
    assert!(
        decode(tx.index_point_bsatn(age, &[0x1e, 0x00])),
        "trailing byte"
    );
    assert!(decode(tx.index_point_bsatn(age, &[])), "short key");
    assert!(
        decode(tx.index_range_bsatn(age, &[], 0, &[0x03, 0x01], &[0x02])),
        "unknown Bound tag"
    );
    assert!(
        decode(tx.index_range_bsatn(age, &[0x01], 1, &[0x02], &[0x02])),
        "prefix as long as the key"
    );
    let hash = tx.index_id_from_name("person_age_idx_hash").unwrap();
    assert!(matches!(
        tx.index_range_bsatn(hash, &[], 0, &[0x02], &[0x02]).err(),
        Some(TxError::WrongIndexAlgorithm { .. })
    ));
    assert!(matches!(
        tx.index_point_bsatn(storage::IndexId(999), &[0]).err(),
        Some(TxError::NoSuchIndex(_))
    ));
    // A row whose string is not UTF-8, and a row with trailing bytes.
    let bad_utf8 = [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 7];
    assert!(matches!(
        tx.insert_bsatn(table, &bad_utf8),
        Err(TxError::Decode { .. })
    ));
    let trailing = [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'z', 7, 9];
    assert!(matches!(
        tx.insert_bsatn(table, &trailing),
        Err(TxError::Decode { .. })
    ));
    // A row of the wrong shape given as values.
    let wrong = vec![
        AlgebraicValue::U64(1),
        AlgebraicValue::U8(3),
        AlgebraicValue::U8(3),
    ];
    assert!(matches!(
        tx.insert_row(table, wrong),
        Err(TxError::RowType { .. })
    ));
    assert_eq!(
        tx.row_count(table).unwrap(),
        7,
        "failed operations left no trace"
    );
}

#[test]
fn unique_violation_names_the_constraint_and_leaves_no_trace() {
    let (db, table) = setup();
    let mut tx = db.begin().unwrap();
    let err = tx.insert_row(table, person(0, "alice", 1)).unwrap_err();
    assert!(
        matches!(&err, TxError::UniqueViolation { table, constraint, .. } if table == "person" && constraint == "person_name_key"),
        "{err}"
    );
    assert!(err.to_string().contains("person_name_key"));
    assert_eq!(tx.row_count(table).unwrap(), 7);
    // Identical rows are a successful no-op (set semantics).
    let row = tx.scan(table).unwrap().next().unwrap().to_vec();
    let outcome = tx.insert_row(table, row).unwrap();
    assert!(!outcome.inserted);
    assert!(
        tx.commit().unwrap().tables.is_empty(),
        "a no-op insert produces no delta"
    );
}

#[test]
fn sequences_write_back_never_repeat_and_overflow() {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let mut def = person_def();
    def.name = "tiny".into();
    def.columns = ProductType::from([
        ("id", AlgebraicType::U8),
        ("name", AlgebraicType::String),
        ("age", AlgebraicType::U8),
    ]);
    for index in &mut def.indexes {
        index.name = index.name.replace("person", "tiny");
    }
    let table = tx.create_table(def).unwrap();
    let tiny = |id: u8, name: &str| {
        vec![
            AlgebraicValue::U8(id),
            AlgebraicValue::String(name.into()),
            AlgebraicValue::U8(1),
        ]
    };
    let first = tx.insert_row(table, tiny(0, "x")).unwrap();
    assert_eq!(first.row[0], AlgebraicValue::U8(1));
    assert_eq!(first.generated.as_slice(), [ColId(0)]);
    assert_eq!(first.generated_bsatn(), [1]);
    // A non-zero value is stored as given and does not advance the sequence.
    let given = tx.insert_row(table, tiny(100, "y")).unwrap();
    assert!(given.generated.is_empty());
    tx.commit().unwrap();
    // A rolled-back transaction's values are not handed out again.
    let mut tx = db.begin().unwrap();
    assert_eq!(
        tx.insert_row(table, tiny(0, "z")).unwrap().row[0],
        AlgebraicValue::U8(2)
    );
    tx.rollback();
    let mut tx = db.begin().unwrap();
    assert_eq!(
        tx.insert_row(table, tiny(0, "z")).unwrap().row[0],
        AlgebraicValue::U8(3)
    );
    // Run the u8 sequence out: 100 is taken (a generated 100 collides), then overflow.
    let mut overflow = None;
    for i in 0..300 {
        match tx.insert_row(table, tiny(0, &format!("n{i}"))) {
            Ok(_) | Err(TxError::UniqueViolation { .. }) => {}
            Err(e) => {
                overflow = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(overflow, Some(TxError::AutoIncOverflow { max: 255, .. })),
        "{overflow:?}"
    );
}

#[test]
fn scans_copied_out_stay_valid_while_deleting() {
    let (db, table) = setup();
    let mut tx = db.begin().unwrap();
    let rows = MutTx::collect(tx.scan(table).unwrap());
    for row in &rows {
        assert!(tx.delete_row(table, row).unwrap());
    }
    assert_eq!(tx.row_count(table).unwrap(), 0);
    let delta = tx.commit().unwrap();
    assert_eq!(delta.tables[0].deletes.len(), 7);
}

#[test]
fn update_replaces_by_unique_key() {
    let (db, table) = setup();
    let mut tx = db.begin().unwrap();
    let pk = tx.index_id_from_name("person_id_idx_btree").unwrap();
    let name_idx = tx.index_id_from_name("person_name_idx_btree").unwrap();
    let alice = tx
        .index_point(name_idx, &AlgebraicValue::String("alice".into()))
        .unwrap()
        .next()
        .unwrap()
        .clone();
    let AlgebraicValue::U64(id) = alice[0] else {
        panic!()
    };
    tx.update_row(table, pk, person(id, "alice", 31)).unwrap();
    assert!(matches!(
        tx.update_row(table, pk, person(9999, "zed", 1)),
        Err(TxError::NoSuchRow { .. })
    ));
    assert!(matches!(
        tx.update_row(table, pk, person(id, "bob", 1)),
        Err(TxError::UniqueViolation { .. })
    ));
    assert!(
        tx.update_row(table, name_idx, person(id, "alice", 1))
            .is_ok(),
        "update through another unique index"
    );
    let age_idx = tx.index_id_from_name("person_age_idx_btree").unwrap();
    assert!(matches!(
        tx.update_row(table, age_idx, person(id, "alice", 1)),
        Err(TxError::IndexNotUnique { .. })
    ));
    let delta = tx.commit().unwrap();
    // One row changed: the committed alice deleted, the final alice inserted.
    assert_eq!(delta.tables[0].deletes.len(), 1);
    assert_eq!(delta.tables[0].inserts.len(), 1);
    assert_eq!(delta.tables[0].inserts[0][2], AlgebraicValue::U8(1));
}

#[test]
fn delta_is_in_operation_order_and_cancels_restored_rows() {
    let (db, table) = setup();
    let mut tx = db.begin().unwrap();
    let carol = tx
        .scan(table)
        .unwrap()
        .find(|r| r[1] == AlgebraicValue::String("carol".into()))
        .unwrap()
        .to_vec();
    assert!(tx.delete_row(table, &carol).unwrap());
    tx.insert_row(table, carol.clone()).unwrap();
    for name in ["z3", "z1", "z2"] {
        tx.insert_row(table, person(0, name, 5)).unwrap();
    }
    let delta = tx.commit().unwrap();
    let inserted: Vec<_> = delta.tables[0]
        .inserts
        .iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(
        inserted,
        ["z3", "z1", "z2"].map(|n| AlgebraicValue::String(n.into()))
    );
    assert!(delta.tables[0].deletes.is_empty());
}

#[test]
fn range_by_values_handles_every_bound_kind() {
    let (db, _) = setup();
    let tx = db.read().unwrap();
    let by_age_name = tx.index_id_from_name("person_age_name_idx_btree").unwrap();
    let s = |x: &str| AlgebraicValue::String(x.into());
    let range = |prefix: Vec<AlgebraicValue>, start, end| IndexRange { prefix, start, end };
    let cases = [
        (
            range(
                vec![AlgebraicValue::U8(30)],
                Bound::Excluded(s("a")),
                Bound::Excluded(s("m")),
            ),
            vec!["alice", "bob"],
        ),
        (
            range(
                vec![AlgebraicValue::U8(30)],
                Bound::Included(s("a")),
                Bound::Included(s("m")),
            ),
            vec!["a", "alice", "bob", "m"],
        ),
        (
            range(
                vec![AlgebraicValue::U8(30)],
                Bound::Unbounded,
                Bound::Excluded(s("b")),
            ),
            vec!["a", "alice"],
        ),
        (
            range(
                vec![],
                Bound::Excluded(AlgebraicValue::U8(30)),
                Bound::Unbounded,
            ),
            vec!["dave", "erin"],
        ),
        (
            range(
                vec![],
                Bound::Excluded(AlgebraicValue::U8(30)),
                Bound::Excluded(AlgebraicValue::U8(30)),
            ),
            vec![],
        ),
        (
            range(
                vec![],
                Bound::Included(AlgebraicValue::U8(65)),
                Bound::Included(AlgebraicValue::U8(18)),
            ),
            vec![],
        ),
    ];
    for (range, expected) in cases {
        assert_eq!(
            names(tx.index_range(by_age_name, &range).unwrap()),
            expected,
            "{range:?}"
        );
    }
}

#[test]
fn a_panic_inside_a_transaction_poisons_the_database() {
    let (db, table) = setup();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut tx = db.begin().unwrap();
        tx.insert_row(table, person(0, "half", 1)).unwrap();
        panic!("a broken invariant");
    }));
    assert!(result.is_err());
    assert!(matches!(db.begin().err(), Some(CommitError::Poisoned)));
    assert!(matches!(db.read().err(), Some(CommitError::Poisoned)));
}

#[test]
fn invalid_schemas_are_refused_with_reasons() {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let mut no_unique_pk = person_def();
    no_unique_pk.unique_constraints.clear();
    let err = tx.create_table(no_unique_pk).unwrap_err().to_string();
    assert!(err.contains("primary key"), "{err}");
    let mut bad_seq = person_def();
    bad_seq.sequences[0].column = ColId(1);
    let err = tx.create_table(bad_seq).unwrap_err().to_string();
    assert!(err.contains("non-integer"), "{err}");
    let mut bad_col = person_def();
    bad_col.indexes[0].columns = vec![ColId(7)];
    let err = tx.create_table(bad_col).unwrap_err().to_string();
    assert!(err.contains("column 7"), "{err}");
    tx.create_table(person_def()).unwrap();
    assert!(matches!(
        tx.create_table(person_def()),
        Err(TxError::Schema(storage::SchemaError::TableExists { .. }))
    ));
}

/// Records each commit's offset, inserted ages and the row count the state
/// had at that moment.
struct Recorder {
    table: TableId,
    seen: std::sync::Mutex<Vec<(Option<u64>, usize, usize)>>,
}

impl storage::CommitObserver for Recorder {
    fn committed(&self, delta: &storage::TxDelta, state: &storage::State) {
        let inserted = delta.tables.iter().map(|t| t.inserts.len()).sum();
        let rows = state.row_count(self.table).unwrap() as usize;
        self.seen
            .lock()
            .unwrap()
            .push((delta.offset.map(|o| o.0), inserted, rows));
    }
}

#[test]
fn the_commit_observer_sees_every_commit_in_order_with_the_state_after_it() {
    let (db, table) = setup();
    let recorder = std::sync::Arc::new(Recorder {
        table,
        seen: Default::default(),
    });
    db.set_commit_observer(Some(recorder.clone()));
    let mut tx = db.begin().unwrap();
    tx.insert_row(table, person(0, "zed", 1)).unwrap();
    tx.commit().unwrap();
    // An empty commit is observed too (offset None); a rollback is not.
    db.begin().unwrap().commit().unwrap();
    let mut tx = db.begin().unwrap();
    tx.insert_row(table, person(0, "yan", 2)).unwrap();
    tx.rollback();
    let mut tx = db.begin().unwrap();
    tx.insert_row(table, person(0, "xia", 3)).unwrap();
    tx.insert_row(table, person(0, "wu", 4)).unwrap();
    tx.commit().unwrap();
    db.set_commit_observer(None);
    let mut tx = db.begin().unwrap();
    tx.insert_row(table, person(0, "vic", 5)).unwrap();
    tx.commit().unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(Some(1), 1, 8), (None, 0, 8), (Some(2), 2, 10)]);
}

/// Keeps a count table's single row equal to the number of `person` rows,
/// as part of every transaction that wrote something; refuses transactions
/// that leave a person named "refused".
struct Counter {
    people: TableId,
    count: TableId,
    calls: std::sync::atomic::AtomicUsize,
}

impl storage::PreCommit for Counter {
    fn before_commit(&self, mut tx: storage::MutTx) -> (storage::MutTx, Result<(), String>) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refused = tx
            .scan(self.people)
            .unwrap()
            .any(|row| row[1] == AlgebraicValue::String("refused".into()));
        if refused {
            return (tx, Err("no one may be called refused".into()));
        }
        let n = tx.row_count(self.people).unwrap();
        let old = storage::MutTx::collect(tx.scan(self.count).unwrap());
        for row in old {
            tx.delete_row(self.count, &row).unwrap();
        }
        tx.insert_row(self.count, vec![AlgebraicValue::U64(n)])
            .unwrap();
        (tx, Ok(()))
    }
}

#[test]
fn the_pre_commit_hook_writes_inside_the_transaction_and_can_refuse_it() {
    let (db, people) = setup();
    let mut tx = db.begin().unwrap();
    let count = tx
        .create_table(TableDef {
            name: "person_count".into(),
            columns: ProductType::from([("n", AlgebraicType::U64)]),
            primary_key: None,
            indexes: vec![],
            unique_constraints: vec![],
            sequences: vec![],
            public: true,
            is_event: false,
        })
        .unwrap();
    tx.commit().unwrap();
    let counter = std::sync::Arc::new(Counter {
        people,
        count,
        calls: Default::default(),
    });
    db.set_pre_commit(Some(counter.clone()));
    let recorder = std::sync::Arc::new(Recorder {
        table: people,
        seen: Default::default(),
    });
    db.set_commit_observer(Some(recorder.clone()));

    let mut tx = db.begin().unwrap();
    tx.insert_row(people, person(0, "zed", 1)).unwrap();
    let delta = tx.commit().unwrap();
    // The hook's write is part of the same transaction's delta.
    let written = delta.tables.iter().find(|t| t.table_id == count).unwrap();
    assert_eq!(written.inserts.len(), 1);
    assert_eq!(written.inserts[0][0], AlgebraicValue::U64(8));

    // A transaction that wrote nothing does not call the hook.
    db.begin().unwrap().commit().unwrap();
    assert_eq!(counter.calls.load(std::sync::atomic::Ordering::Relaxed), 1);

    // A refusal rolls everything back, the hook's writes included.
    let mut tx = db.begin().unwrap();
    tx.insert_row(people, person(0, "refused", 2)).unwrap();
    let err = tx.commit().unwrap_err();
    assert!(
        matches!(&err, storage::CommitError::Refused(m) if m.contains("refused")),
        "{err}"
    );
    let state = db.read().unwrap();
    assert_eq!(state.row_count(people).unwrap(), 8);
    let counts: Vec<_> = state.scan(count).unwrap().cloned().collect();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0][0], AlgebraicValue::U64(8));
    drop(state);
    // The refused transaction was never observed; the others were.
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(Some(2), 2, 8), (None, 0, 8)]);

    db.set_pre_commit(None);
    let mut tx = db.begin().unwrap();
    tx.insert_row(people, person(0, "refused", 2)).unwrap();
    tx.commit().unwrap();
}

/// The rows of every table, sorted, as a comparable picture of a state.
fn picture(db: &Database, table: &str) -> Vec<Vec<AlgebraicValue>> {
    let state = db.read().unwrap();
    let id = state.table_id_from_name(table).unwrap();
    let mut rows: Vec<Vec<AlgebraicValue>> =
        state.scan(id).unwrap().map(|row| row.to_vec()).collect();
    rows.sort();
    rows
}

fn note_def() -> TableDef {
    TableDef {
        name: "note".into(),
        columns: ProductType::from([("text", AlgebraicType::String)]),
        primary_key: None,
        indexes: Vec::new(),
        unique_constraints: Vec::new(),
        sequences: Vec::new(),
        public: true,
        is_event: false,
    }
}

/// Both copies of a history: `earlier` stops where `now` goes on.
fn two_points() -> (Database, Database) {
    let earlier = Database::in_memory(DbOptions::default());
    let now = Database::in_memory(DbOptions::default());
    for db in [&earlier, &now] {
        let mut tx = db.begin().unwrap();
        let people = tx.create_table(person_def()).unwrap();
        let note = tx.create_table(note_def()).unwrap();
        tx.insert_row(people, person(0, "ada", 36)).unwrap();
        tx.insert_row(people, person(0, "bob", 40)).unwrap();
        tx.insert_row(note, vec![AlgebraicValue::String("kept".into())])
            .unwrap();
        tx.insert_row(note, vec![AlgebraicValue::String("dropped later".into())])
            .unwrap();
        tx.commit().unwrap();
    }
    // The destructive part of `now`'s history: names swapped between rows
    // (unique keys change hands), a row deleted, rows added.
    let mut tx = now.begin().unwrap();
    let people = tx.table_id_from_name("person").unwrap();
    let note = tx.table_id_from_name("note").unwrap();
    tx.delete_row(people, &person(1, "ada", 36)).unwrap();
    tx.delete_row(people, &person(2, "bob", 40)).unwrap();
    tx.insert_row(people, person(1, "bob", 36)).unwrap();
    tx.insert_row(people, person(2, "ada", 40)).unwrap();
    tx.insert_row(people, person(0, "cyd", 20)).unwrap();
    tx.delete_row(note, &[AlgebraicValue::String("dropped later".into())])
        .unwrap();
    tx.insert_row(note, vec![AlgebraicValue::String("new".into())])
        .unwrap();
    tx.commit().unwrap();
    (earlier, now)
}

#[test]
fn replace_rows_brings_back_an_earlier_state_and_sequences_stay_ahead() {
    let (earlier, now) = two_points();
    let before = (picture(&earlier, "person"), picture(&earlier, "note"));
    assert_ne!(
        before.0,
        picture(&now, "person"),
        "canary: the states differ"
    );
    let target = earlier.read().unwrap();
    let mut tx = now.begin().unwrap();
    let replaced = tx.replace_rows(&target, |_| true).unwrap();
    drop(target);
    assert_eq!(replaced.tables, 2);
    // person: (1,bob),(2,ada),(3,cyd) out, (1,ada),(2,bob) in; note: one each way.
    assert_eq!((replaced.deleted, replaced.inserted), (4, 3));
    let delta = tx.commit().unwrap();
    assert!(delta.offset.is_some());
    assert_eq!((picture(&now, "person"), picture(&now, "note")), before);
    // The sequence keeps its place above every id it gave out (cyd had 3).
    let mut tx = now.begin().unwrap();
    let people = tx.table_id_from_name("person").unwrap();
    let outcome = tx.insert_row(people, person(0, "dan", 1)).unwrap();
    assert_eq!(outcome.row[0], AlgebraicValue::U64(4));
    tx.rollback();
}

#[test]
fn replace_rows_refuses_other_tables_and_changes_nothing() {
    let (earlier, now) = two_points();
    let untouched = picture(&now, "person");
    // A table `now` has that `earlier` lacks.
    {
        let mut tx = now.begin().unwrap();
        let mut def = note_def();
        def.name = "later".into();
        tx.create_table(def).unwrap();
        tx.commit().unwrap();
    }
    let target = earlier.read().unwrap();
    let mut tx = now.begin().unwrap();
    let err = tx.replace_rows(&target, |_| true).unwrap_err();
    assert!(
        matches!(&err, TxError::NotComparable { table, .. } if table == "later"),
        "{err}"
    );
    // Leaving that table out of the comparison makes it work.
    let replaced = tx
        .replace_rows(&target, |schema| schema.name != "later")
        .unwrap();
    assert_eq!(replaced.tables, 2);
    tx.rollback();
    drop(target);
    assert_eq!(picture(&now, "person"), untouched);
    // Changed columns.
    let other = Database::in_memory(DbOptions::default());
    let mut tx = other.begin().unwrap();
    let mut def = note_def();
    def.columns = ProductType::from([("text", AlgebraicType::U32)]);
    tx.create_table(def).unwrap();
    tx.create_table(person_def()).unwrap();
    tx.commit().unwrap();
    let target = other.read().unwrap();
    let mut tx = now.begin().unwrap();
    let err = tx
        .replace_rows(&target, |schema| schema.name != "later")
        .unwrap_err();
    assert!(
        matches!(&err, TxError::NotComparable { table, reason } if table == "note" && reason.contains("columns")),
        "{err}"
    );
}
