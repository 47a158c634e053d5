// Protects event tables (module-abi §8.10) and in-place schema changes
// (`MutTx::alter_table`, used by republish migrations): what a transaction
// sees, what its delta and commit-log record carry, what rollback restores,
// and that reopening from the log alone or from a snapshot gives the same
// schema, rows and sequence counters.

use std::sync::Arc;

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::clock::ManualClock;
use storage::commitlog::MemorySegmentStore;
use storage::snapshot::MemoryBlobStore;
use storage::{
    ColId, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, SchemaError, SequenceDef,
    TableDef, TableId, TxError, UniqueConstraintDef,
};

struct Disk {
    segments: MemorySegmentStore,
    blobs: MemoryBlobStore,
}

impl Disk {
    fn new() -> Disk {
        Disk {
            segments: MemorySegmentStore::new(),
            blobs: MemoryBlobStore::new(),
        }
    }

    fn open(&self) -> Database {
        let storage = DbStorage {
            segments: Arc::new(self.segments.clone()),
            snapshots: Some(Arc::new(self.blobs.clone())),
            clock: Arc::new(ManualClock::new(0)),
        };
        let options = DbOptions {
            sequence_reserve_step: 4,
            ..DbOptions::default()
        };
        Database::open(storage, options).unwrap().0
    }
}

fn index(name: &str, algorithm: IndexAlgorithm, cols: &[u16]) -> IndexDef {
    IndexDef {
        name: name.into(),
        algorithm,
        columns: cols.iter().map(|c| ColId(*c)).collect(),
    }
}

fn seq(column: u16) -> SequenceDef {
    SequenceDef {
        name: "id_seq".into(),
        column: ColId(column),
        start: None,
        min_value: None,
        max_value: None,
        increment: 1,
    }
}

/// `notice`: id u64 auto_inc (unique), text String; an event table.
fn notice_def() -> TableDef {
    TableDef {
        name: "notice".into(),
        columns: ProductType::from([("id", AlgebraicType::U64), ("text", AlgebraicType::String)]),
        primary_key: Some(ColId(0)),
        indexes: vec![index("notice_id_idx", IndexAlgorithm::BTree, &[0])],
        unique_constraints: vec![UniqueConstraintDef {
            name: "notice_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![seq(0)],
        public: true,
        is_event: true,
    }
}

/// `user` version 1: id u64 pk auto_inc, name String (btree), age u8 (hash).
fn user_v1() -> TableDef {
    TableDef {
        name: "user".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U64),
            ("name", AlgebraicType::String),
            ("age", AlgebraicType::U8),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            index("user_id_idx", IndexAlgorithm::BTree, &[0]),
            index("user_name_idx", IndexAlgorithm::BTree, &[1]),
            index("user_age_idx", IndexAlgorithm::Hash, &[2]),
        ],
        unique_constraints: vec![UniqueConstraintDef {
            name: "user_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![seq(0)],
        public: true,
        is_event: false,
    }
}

/// Version 2: adds `karma: u32` and `tag: String`, drops the name index, adds
/// an (age, karma) btree and becomes private.
fn user_v2() -> TableDef {
    let mut def = user_v1();
    def.columns = ProductType::from([
        ("id", AlgebraicType::U64),
        ("name", AlgebraicType::String),
        ("age", AlgebraicType::U8),
        ("karma", AlgebraicType::U32),
        ("tag", AlgebraicType::String),
    ]);
    def.indexes = vec![
        index("user_id_idx", IndexAlgorithm::BTree, &[0]),
        index("user_age_idx", IndexAlgorithm::Hash, &[2]),
        index("user_age_karma_idx", IndexAlgorithm::BTree, &[2, 3]),
    ];
    def.public = false;
    def
}

fn user(id: u64, name: &str, age: u8) -> Vec<AlgebraicValue> {
    vec![id.into(), name.into(), age.into()]
}

fn sorted_rows(db: &Database, table: TableId) -> Vec<Vec<AlgebraicValue>> {
    let read = db.read().unwrap();
    let mut rows: Vec<_> = read.scan(table).unwrap().map(|r| r.to_vec()).collect();
    rows.sort();
    rows
}

fn defaults() -> Vec<AlgebraicValue> {
    vec![AlgebraicValue::U32(7), AlgebraicValue::String("new".into())]
}

#[test]
fn event_rows_live_only_in_their_transaction() {
    let disk = Disk::new();
    let db = disk.open();
    let mut tx = db.begin().unwrap();
    let notice = tx.create_table(notice_def()).unwrap();
    tx.commit().unwrap();

    let mut tx = db.begin().unwrap();
    let first = tx
        .insert_row(notice, vec![0u64.into(), "a".into()])
        .unwrap();
    assert_eq!(first.row[0], AlgebraicValue::U64(1));
    tx.insert_row(notice, vec![0u64.into(), "b".into()])
        .unwrap();
    // Visible to the inserting transaction; constraints apply within it.
    assert_eq!(tx.row_count(notice).unwrap(), 2);
    let clash = tx.insert_row(notice, vec![1u64.into(), "c".into()]);
    assert!(
        matches!(clash, Err(TxError::UniqueViolation { .. })),
        "{clash:?}"
    );
    let delta = tx.commit().unwrap();
    assert!(delta.offset.is_some());
    assert_eq!(delta.tables.len(), 1);
    assert_eq!(delta.tables[0].inserts.len(), 2);
    assert!(delta.tables[0].deletes.is_empty());
    // Not merged into the committed state.
    assert_eq!(db.read().unwrap().row_count(notice).unwrap(), 0);

    // Deleting an event row within its transaction leaves nothing to deliver.
    let mut tx = db.begin().unwrap();
    let row = tx
        .insert_row(notice, vec![0u64.into(), "gone".into()])
        .unwrap()
        .row;
    assert!(tx.delete_row(notice, &row).unwrap());
    let delta = tx.commit().unwrap();
    assert!(delta.tables.is_empty(), "{delta:?}");

    // A rolled-back event insert leaves nothing either.
    let mut tx = db.begin().unwrap();
    tx.insert_row(notice, vec![0u64.into(), "rolled".into()])
        .unwrap();
    tx.rollback();
    assert_eq!(db.read().unwrap().row_count(notice).unwrap(), 0);
    drop(db);

    // Replay from the log: the table is empty and sequence values are not reused.
    let db = disk.open();
    assert_eq!(db.read().unwrap().row_count(notice).unwrap(), 0);
    let mut tx = db.begin().unwrap();
    let next = tx
        .insert_row(notice, vec![0u64.into(), "after".into()])
        .unwrap();
    assert!(next.row[0] > AlgebraicValue::U64(4), "{:?}", next.row);
    tx.commit().unwrap();
    db.take_snapshot().unwrap().expect("a snapshot");
    drop(db);

    // From the snapshot: still empty.
    let db = disk.open();
    assert_eq!(db.read().unwrap().row_count(notice).unwrap(), 0);
    let mut tx = db.begin().unwrap();
    let after = tx
        .insert_row(notice, vec![0u64.into(), "later".into()])
        .unwrap();
    assert!(after.row[0] > next.row[0]);
    tx.commit().unwrap();
}

#[test]
fn alter_adds_columns_and_indexes_keeping_rows_ids_and_sequences() {
    let disk = Disk::new();
    let db = disk.open();
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(user_v1()).unwrap();
    for (name, age) in [("ann", 30), ("bob", 40), ("cy", 30)] {
        tx.insert_row(table, user(0, name, age)).unwrap();
    }
    tx.commit().unwrap();
    let (id_index, age_index, name_index) = {
        let read = db.read().unwrap();
        (
            read.index_id_from_name("user_id_idx").unwrap(),
            read.index_id_from_name("user_age_idx").unwrap(),
            read.index_id_from_name("user_name_idx").unwrap(),
        )
    };

    let mut tx = db.begin().unwrap();
    let schema = tx.alter_table(table, user_v2(), defaults()).unwrap();
    assert_eq!(schema.table_id, table);
    assert!(!schema.public);
    // Writes after the alteration are at the new schema.
    let dan = tx
        .insert_row(
            table,
            vec![
                0u64.into(),
                "dan".into(),
                30u8.into(),
                1u32.into(),
                "x".into(),
            ],
        )
        .unwrap();
    assert_eq!(dan.row[0], AlgebraicValue::U64(4));
    let delta = tx.commit().unwrap();
    assert_eq!(delta.altered_tables.len(), 1);
    assert_eq!(delta.altered_tables[0].added_defaults, defaults());
    assert_eq!(delta.tables[0].inserts.len(), 1);

    let check = |db: &Database| {
        let expected = vec![
            vec![
                1u64.into(),
                "ann".into(),
                30u8.into(),
                7u32.into(),
                "new".into(),
            ],
            vec![
                2u64.into(),
                "bob".into(),
                40u8.into(),
                7u32.into(),
                "new".into(),
            ],
            vec![
                3u64.into(),
                "cy".into(),
                30u8.into(),
                7u32.into(),
                "new".into(),
            ],
            vec![
                4u64.into(),
                "dan".into(),
                30u8.into(),
                1u32.into(),
                "x".into(),
            ],
        ];
        assert_eq!(sorted_rows(db, table), expected);
        let read = db.read().unwrap();
        assert_eq!(read.index_id_from_name("user_id_idx"), Some(id_index));
        assert_eq!(read.index_id_from_name("user_age_idx"), Some(age_index));
        assert_eq!(read.index_id_from_name("user_name_idx"), None);
        assert!(matches!(
            read.index_point(name_index, &"ann".into()),
            Err(TxError::NoSuchIndex(_))
        ));
        let new_index = read.index_id_from_name("user_age_karma_idx").unwrap();
        assert!(new_index.0 > name_index.0, "new indexes get fresh ids");
        let key = AlgebraicValue::product([AlgebraicValue::U8(30), AlgebraicValue::U32(7)]);
        assert_eq!(read.index_point(new_index, &key).unwrap().count(), 2);
        assert_eq!(
            read.index_point(age_index, &AlgebraicValue::U8(30))
                .unwrap()
                .count(),
            3
        );
        assert!(!read.schema(table).unwrap().public);
    };
    check(&db);
    drop(db);

    // From the log alone.
    let db = disk.open();
    check(&db);
    let mut tx = db.begin().unwrap();
    let eve = tx
        .insert_row(
            table,
            vec![
                0u64.into(),
                "eve".into(),
                50u8.into(),
                2u32.into(),
                "y".into(),
            ],
        )
        .unwrap();
    assert!(eve.row[0] > AlgebraicValue::U64(4), "sequence not reused");
    tx.delete_row(table, &eve.row).unwrap();
    tx.commit().unwrap();
    db.take_snapshot().unwrap().expect("a snapshot");
    drop(db);

    // From the snapshot.
    let db = disk.open();
    check(&db);
    let mut tx = db.begin().unwrap();
    let fay = tx
        .insert_row(
            table,
            vec![
                0u64.into(),
                "fay".into(),
                50u8.into(),
                2u32.into(),
                "z".into(),
            ],
        )
        .unwrap();
    assert!(fay.row[0] > eve.row[0], "sequence not reused");
    tx.rollback();
}

#[test]
fn rolled_back_alter_restores_the_old_table() {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(user_v1()).unwrap();
    tx.insert_row(table, user(0, "ann", 30)).unwrap();
    tx.commit().unwrap();
    let before = sorted_rows(&db, table);
    let schema_before = db.read().unwrap().schema(table).unwrap().clone();

    let mut tx = db.begin().unwrap();
    tx.alter_table(table, user_v2(), defaults()).unwrap();
    tx.insert_row(
        table,
        vec![
            0u64.into(),
            "bob".into(),
            1u8.into(),
            1u32.into(),
            "b".into(),
        ],
    )
    .unwrap();
    tx.rollback();
    assert_eq!(sorted_rows(&db, table), before);
    let read = db.read().unwrap();
    assert_eq!(read.schema(table).unwrap(), &schema_before);
    assert!(read.index_id_from_name("user_name_idx").is_some());
    assert!(read.index_id_from_name("user_age_karma_idx").is_none());
}

#[test]
fn alter_refuses_incompatible_changes_and_changes_nothing() {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(user_v1()).unwrap();
    tx.insert_row(table, user(0, "ann", 30)).unwrap();
    tx.commit().unwrap();

    let reason = |def: TableDef, defaults: Vec<AlgebraicValue>| -> String {
        let mut tx = db.begin().unwrap();
        let error = tx.alter_table(table, def, defaults).unwrap_err();
        assert_eq!(
            tx.schema(table).unwrap().columns.elements.len(),
            3,
            "a refused alter changes nothing"
        );
        tx.rollback();
        match error {
            TxError::Schema(SchemaError::Invalid { reason, .. }) => reason,
            other => panic!("unexpected error {other:?}"),
        }
    };

    let mut retyped = user_v1();
    retyped.columns.elements[2].algebraic_type = AlgebraicType::U16;
    assert!(reason(retyped, vec![]).contains("column 2 (`age`) changed name or type"));

    let mut removed = user_v1();
    removed.columns =
        ProductType::from([("id", AlgebraicType::U64), ("name", AlgebraicType::String)]);
    removed.indexes.truncate(2);
    assert!(reason(removed, vec![]).contains("3 columns cannot become 2"));

    assert!(reason(user_v2(), vec![AlgebraicValue::U32(1)]).contains("2 columns added with 1"));
    assert!(reason(
        user_v2(),
        vec![AlgebraicValue::U64(1), AlgebraicValue::String("s".into())]
    )
    .contains("default of added column `karma`"));

    // A unique constraint the rows violate (two users named "ann").
    let mut tx = db.begin().unwrap();
    tx.insert_row(table, user(0, "ann", 31)).unwrap();
    tx.commit().unwrap();
    let before = sorted_rows(&db, table);
    let mut unique = user_v1();
    unique.unique_constraints.push(UniqueConstraintDef {
        name: "user_name_key".into(),
        columns: vec![ColId(1)],
    });
    let why = reason(unique, vec![]);
    assert!(
        why.contains("two rows share key") && why.contains("user_name_key"),
        "{why}"
    );

    // A changed sequence starts afresh; rows hold values in its range.
    let mut sequence = user_v1();
    sequence.sequences[0].increment = 2;
    let why = reason(sequence, vec![]);
    assert!(
        why.contains("cannot add sequence `id_seq`: column `id` already holds"),
        "{why}"
    );

    // A widened type must keep the old variants first.
    let mut reordered = user_v1();
    reordered.columns.elements[2].algebraic_type =
        AlgebraicType::simple_enum(["B", "A"].into_iter());
    assert!(reason(reordered, vec![]).contains("column 2 (`age`) changed name or type"));

    let mut event = user_v1();
    event.is_event = true;
    assert!(reason(event, vec![]).contains("event flag"));

    // A table this transaction already wrote cannot be altered.
    let mut tx = db.begin().unwrap();
    tx.insert_row(table, user(0, "bob", 1)).unwrap();
    let written = tx.alter_table(table, user_v2(), defaults());
    assert!(written.is_err(), "{written:?}");
    tx.rollback();
    assert_eq!(sorted_rows(&db, table), before);
}

#[test]
fn drop_and_recreate_under_the_same_name_replays() {
    let disk = Disk::new();
    let db = disk.open();
    let mut tx = db.begin().unwrap();
    let old = tx.create_table(user_v1()).unwrap();
    tx.insert_row(old, user(0, "ann", 30)).unwrap();
    tx.commit().unwrap();

    // One transaction drops `user`, creates it again and writes to it.
    let mut tx = db.begin().unwrap();
    tx.drop_table(old).unwrap();
    let new = tx.create_table(user_v1()).unwrap();
    assert_ne!(new, old);
    tx.insert_row(new, user(0, "bob", 40)).unwrap();
    tx.commit().unwrap();

    // A rolled-back transaction whose only reservation is for a table it
    // created leaves nothing that replay could trip over.
    let mut tx = db.begin().unwrap();
    let mut def = notice_def();
    def.is_event = false;
    let temp = tx.create_table(def).unwrap();
    tx.insert_row(temp, vec![0u64.into(), "x".into()]).unwrap();
    tx.rollback();
    drop(db);

    let db = disk.open();
    let read = db.read().unwrap();
    assert_eq!(read.table_id_from_name("user"), Some(new));
    assert_eq!(read.table_id_from_name("notice"), None);
    drop(read);
    assert_eq!(
        sorted_rows(&db, new),
        vec![user(1, "bob", 40)],
        "the new table's own sequence starts afresh"
    );
}

/// `paint(id u32 pk, color Red | Green, n u64)`: the v1 of the migrations the
/// reference applies automatically.
fn paint_v1() -> TableDef {
    TableDef {
        name: "paint".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U32),
            (
                "color",
                AlgebraicType::simple_enum(["Red", "Green"].into_iter()),
            ),
            ("n", AlgebraicType::U64),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![index("paint_id_idx", IndexAlgorithm::BTree, &[0])],
        unique_constraints: vec![UniqueConstraintDef {
            name: "paint_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![],
        public: true,
        is_event: false,
    }
}

fn paint(id: u32, color: u8, n: u64) -> Vec<AlgebraicValue> {
    vec![
        id.into(),
        AlgebraicValue::sum(color, AlgebraicValue::unit()),
        n.into(),
    ]
}

// Protects the in-place changes behind the reference's automatic
// migrations: an enum variant appended (old rows stay readable), a sequence
// added over a column holding only zeros (it starts at 1), and the primary
// key removed (duplicates accepted); then the same schema, rows and counter
// from the log alone and from a snapshot. And an event table's columns
// change freely.
#[test]
fn alter_widens_enums_adds_sequences_and_drops_keys_and_replays() {
    let disk = Disk::new();
    let db = disk.open();
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(paint_v1()).unwrap();
    tx.insert_row(table, paint(1, 0, 0)).unwrap();
    tx.insert_row(table, paint(2, 1, 0)).unwrap();
    let ev = tx.create_table(notice_def()).unwrap();
    tx.commit().unwrap();

    let mut v2 = paint_v1();
    v2.columns.elements[1].algebraic_type =
        AlgebraicType::simple_enum(["Red", "Green", "Blue"].into_iter());
    v2.primary_key = None;
    v2.unique_constraints.clear();
    v2.sequences = vec![SequenceDef {
        name: "paint_n_seq".into(),
        ..seq(2)
    }];
    let mut ev_v2 = notice_def();
    ev_v2.columns = ProductType::from([("seq", AlgebraicType::U64), ("at", AlgebraicType::I64)]);
    ev_v2.primary_key = None;
    ev_v2.unique_constraints.clear();
    ev_v2.sequences.clear();
    ev_v2.indexes.clear();
    let mut tx = db.begin().unwrap();
    tx.alter_table(table, v2, vec![]).unwrap();
    tx.alter_table(ev, ev_v2, vec![]).unwrap();
    tx.commit().unwrap();

    let mut tx = db.begin().unwrap();
    let blue = tx.insert_row(table, paint(1, 2, 0)).unwrap();
    assert_eq!(
        blue.row.to_vec(),
        paint(1, 2, 1),
        "the sequence starts at 1"
    );
    tx.insert_row(table, paint(3, 0, 0)).unwrap();
    tx.commit().unwrap();
    let expected = vec![
        paint(1, 0, 0),
        paint(1, 2, 1),
        paint(2, 1, 0),
        paint(3, 0, 2),
    ];
    assert_eq!(sorted_rows(&db, table), expected);
    drop(db);

    // From the log alone, then from a snapshot: the same rows and counter.
    let db = disk.open();
    assert_eq!(sorted_rows(&db, table), expected);
    db.take_snapshot().unwrap().expect("a snapshot");
    drop(db);
    let db = disk.open();
    assert_eq!(sorted_rows(&db, table), expected);
    let mut tx = db.begin().unwrap();
    let next = tx.insert_row(table, paint(4, 2, 0)).unwrap();
    assert!(next.row[2] > AlgebraicValue::U64(2), "{:?}", next.row);
    tx.insert_row(ev, vec![1u64.into(), 2i64.into()]).unwrap();
    tx.commit().unwrap();
}
