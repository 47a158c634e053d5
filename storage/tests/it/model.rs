// Protects the transactional core: random sequences of transactions (insert,
// delete by value/point/range, update, clear, commit or rollback) run against
// the engine and against a plain BTreeSet model; after every operation the
// outcome, and after every transaction the full state and the commit delta,
// must match. Covers every index kind (unique and not, one and several
// columns, hash, direct), range bounds of every kind given as values and as
// ABI bytes, set semantics, sequences and rollback; an event table whose rows
// reach the delta but never the committed state; and transactions that start
// by altering a table in place (toggling an extra index and its visibility).

use std::collections::BTreeSet;
use std::ops::Bound;

use std::sync::Arc;

use proptest::prelude::*;
use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::clock::ManualClock;
use storage::commitlog::MemorySegmentStore;
use storage::snapshot::MemoryBlobStore;
use storage::{
    ColId, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, IndexId, IndexRange,
    SequenceDef, TableDef, TableId, TxError, UniqueConstraintDef,
};

type Row = Vec<AlgebraicValue>;

/// Table 0 "people": id u64 pk auto_inc; age u8 (btree); name String (unique);
/// score i32 (hash); slot u32 (unique, direct); (age, score) btree.
/// Table 1 "tags": no unique constraint (set semantics by full row):
/// x u8, y String, (x, y) btree, y hash.
fn defs() -> Vec<TableDef> {
    let people = TableDef {
        name: "people".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U64),
            ("age", AlgebraicType::U8),
            ("name", AlgebraicType::String),
            ("score", AlgebraicType::I32),
            ("slot", AlgebraicType::U32),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            index("people_id_idx_btree", IndexAlgorithm::BTree, &[0]),
            index("people_age_idx_btree", IndexAlgorithm::BTree, &[1]),
            index("people_name_idx_btree", IndexAlgorithm::BTree, &[2]),
            index("people_score_idx_hash", IndexAlgorithm::Hash, &[3]),
            index("people_slot_idx_direct", IndexAlgorithm::Direct, &[4]),
            index("people_age_score_idx_btree", IndexAlgorithm::BTree, &[1, 3]),
        ],
        unique_constraints: vec![
            unique("people_id_key", &[0]),
            unique("people_name_key", &[2]),
            unique("people_slot_key", &[4]),
        ],
        sequences: vec![SequenceDef {
            name: "people_id_seq".into(),
            column: ColId(0),
            start: None,
            min_value: None,
            max_value: None,
            increment: 1,
        }],
        public: true,
        is_event: false,
    };
    let tags = TableDef {
        name: "tags".into(),
        columns: ProductType::from([("x", AlgebraicType::U8), ("y", AlgebraicType::String)]),
        primary_key: None,
        indexes: vec![
            index("tags_x_y_idx_btree", IndexAlgorithm::BTree, &[0, 1]),
            index("tags_y_idx_hash", IndexAlgorithm::Hash, &[1]),
        ],
        unique_constraints: vec![],
        sequences: vec![],
        public: false,
        is_event: false,
    };
    let events = TableDef {
        name: "events".into(),
        columns: ProductType::from([("k", AlgebraicType::U8), ("v", AlgebraicType::U8)]),
        primary_key: None,
        indexes: vec![index("events_k_idx_btree", IndexAlgorithm::BTree, &[0])],
        unique_constraints: vec![unique("events_k_key", &[0])],
        sequences: vec![],
        public: true,
        is_event: true,
    };
    vec![people, tags, events]
}

const TAGS_EXTRA_INDEX: &str = "tags_x_idx_extra";

/// `tags` as altered: with or without the extra index on `x`; private iff it has it.
fn tags_def(extra: bool) -> TableDef {
    let mut def = defs().swap_remove(1);
    if extra {
        def.indexes
            .push(index(TAGS_EXTRA_INDEX, IndexAlgorithm::BTree, &[0]));
        def.public = true;
    }
    def
}

fn index(name: &str, algorithm: IndexAlgorithm, cols: &[u16]) -> IndexDef {
    IndexDef {
        name: name.into(),
        algorithm,
        columns: cols.iter().map(|c| ColId(*c)).collect(),
    }
}

fn unique(name: &str, cols: &[u16]) -> UniqueConstraintDef {
    UniqueConstraintDef {
        name: name.into(),
        columns: cols.iter().map(|c| ColId(*c)).collect(),
    }
}

/// Index columns per table, in the order of `defs` (constraint indexes reuse these).
fn index_cols(table: usize) -> Vec<(&'static str, Vec<usize>, IndexAlgorithm)> {
    match table {
        0 => vec![
            ("people_id_idx_btree", vec![0], IndexAlgorithm::BTree),
            ("people_age_idx_btree", vec![1], IndexAlgorithm::BTree),
            ("people_name_idx_btree", vec![2], IndexAlgorithm::BTree),
            ("people_score_idx_hash", vec![3], IndexAlgorithm::Hash),
            ("people_slot_idx_direct", vec![4], IndexAlgorithm::Direct),
            (
                "people_age_score_idx_btree",
                vec![1, 3],
                IndexAlgorithm::BTree,
            ),
        ],
        _ => vec![
            ("tags_x_y_idx_btree", vec![0, 1], IndexAlgorithm::BTree),
            ("tags_y_idx_hash", vec![1], IndexAlgorithm::Hash),
        ],
    }
}

const NAMES: [&str; 5] = ["", "a", "ab", "b", "ç"];

fn column_value(table: usize, col: usize, n: u8) -> AlgebraicValue {
    match (table, col) {
        (0, 0) => AlgebraicValue::U64((n % 6) as u64),
        (0, 1) | (1, 0) => AlgebraicValue::U8(n % 4),
        (0, 2) | (1, 1) => AlgebraicValue::String(NAMES[(n % 5) as usize].into()),
        (0, 3) => AlgebraicValue::I32((n % 5) as i32 - 2),
        (0, 4) => AlgebraicValue::U32((n % 7) as u32),
        _ => unreachable!(),
    }
}

fn columns(table: usize) -> usize {
    if table == 0 {
        5
    } else {
        2
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        table: usize,
        seeds: Vec<u8>,
    },
    DeleteRow {
        table: usize,
        seeds: Vec<u8>,
    },
    DeletePoint {
        table: usize,
        index: usize,
        seeds: Vec<u8>,
    },
    DeleteRange {
        table: usize,
        index: usize,
        range: RangeSeed,
    },
    Scan {
        table: usize,
        index: usize,
        range: RangeSeed,
    },
    Point {
        table: usize,
        index: usize,
        seeds: Vec<u8>,
    },
    Update {
        seeds: Vec<u8>,
    },
    Clear {
        table: usize,
    },
    /// Insert into the event table.
    Event {
        seeds: Vec<u8>,
    },
}

#[derive(Clone, Debug)]
struct RangeSeed {
    prefix: usize,
    values: Vec<u8>,
    start: (u8, u8),
    end: (u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let seeds = prop::collection::vec(any::<u8>(), 5);
    let range = (
        0usize..2,
        prop::collection::vec(any::<u8>(), 2),
        (0u8..3, any::<u8>()),
        (0u8..3, any::<u8>()),
    )
        .prop_map(|(prefix, values, start, end)| RangeSeed {
            prefix,
            values,
            start,
            end,
        });
    prop_oneof![
        4 => (0usize..2, seeds.clone()).prop_map(|(table, seeds)| Op::Insert { table, seeds }),
        1 => (0usize..2, seeds.clone()).prop_map(|(table, seeds)| Op::DeleteRow { table, seeds }),
        1 => (0usize..2, 0usize..6, seeds.clone()).prop_map(|(table, index, seeds)| Op::DeletePoint { table, index, seeds }),
        1 => (0usize..2, 0usize..6, range.clone()).prop_map(|(table, index, range)| Op::DeleteRange { table, index, range }),
        2 => (0usize..2, 0usize..6, range).prop_map(|(table, index, range)| Op::Scan { table, index, range }),
        1 => (0usize..2, 0usize..6, seeds.clone()).prop_map(|(table, index, seeds)| Op::Point { table, index, seeds }),
        1 => seeds.clone().prop_map(|seeds| Op::Update { seeds }),
        1 => (0usize..2).prop_map(|table| Op::Clear { table }),
        1 => seeds.clone().prop_map(|seeds| Op::Event { seeds }),
    ]
}

#[derive(Clone, Debug, Default)]
struct Model {
    tables: [BTreeSet<Row>; 2],
    next_id: u64,
    /// Event rows of the running transaction.
    events: BTreeSet<Row>,
    /// Whether `tags` currently has its extra index (see [`tags_def`]).
    tags_extra: bool,
}

impl Model {
    fn unique_cols(table: usize) -> Vec<usize> {
        if table == 0 {
            vec![0, 2, 4]
        } else {
            vec![]
        }
    }

    fn conflicts(&self, table: usize, row: &Row, ignoring: Option<&Row>) -> bool {
        Model::unique_cols(table).into_iter().any(|col| {
            self.tables[table]
                .iter()
                .any(|r| Some(r) != ignoring && r[col] == row[col])
        })
    }
}

fn make_row(table: usize, seeds: &[u8]) -> Row {
    (0..columns(table))
        .map(|col| column_value(table, col, seeds[col]))
        .collect()
}

fn key_of(row: &Row, cols: &[usize]) -> AlgebraicValue {
    match cols {
        [c] => row[*c].clone(),
        cs => AlgebraicValue::product(cs.iter().map(|c| row[*c].clone()).collect::<Vec<_>>()),
    }
}

fn bound(table: usize, col: usize, (kind, n): (u8, u8)) -> Bound<AlgebraicValue> {
    match kind {
        0 => Bound::Included(column_value(table, col, n)),
        1 => Bound::Excluded(column_value(table, col, n)),
        _ => Bound::Unbounded,
    }
}

fn in_bound(
    value: &AlgebraicValue,
    start: &Bound<AlgebraicValue>,
    end: &Bound<AlgebraicValue>,
) -> bool {
    let above = match start {
        Bound::Included(s) => value >= s,
        Bound::Excluded(s) => value > s,
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => value <= e,
        Bound::Excluded(e) => value < e,
        Bound::Unbounded => true,
    };
    above && below
}

fn encode_bound(b: &Bound<AlgebraicValue>) -> Vec<u8> {
    let mut out = Vec::new();
    match b {
        Bound::Included(v) => {
            out.push(0);
            out.extend(spacetimedb_sats::bsatn::to_vec(v).unwrap());
        }
        Bound::Excluded(v) => {
            out.push(1);
            out.extend(spacetimedb_sats::bsatn::to_vec(v).unwrap());
        }
        Bound::Unbounded => out.push(2),
    }
    out
}

struct Harness {
    db: Database,
    table_ids: Vec<TableId>,
    segments: MemorySegmentStore,
    blobs: MemoryBlobStore,
}

impl Harness {
    fn new() -> Harness {
        let segments = MemorySegmentStore::new();
        let blobs = MemoryBlobStore::new();
        let db = Harness::open(&segments, &blobs);
        let mut tx = db.begin().unwrap();
        let table_ids = defs()
            .into_iter()
            .map(|def| tx.create_table(def).unwrap())
            .collect();
        tx.commit().unwrap();
        Harness {
            db,
            table_ids,
            segments,
            blobs,
        }
    }

    /// A durable database over in-memory stores (small segments, so replay
    /// crosses segment boundaries).
    fn open(segments: &MemorySegmentStore, blobs: &MemoryBlobStore) -> Database {
        let storage = DbStorage {
            segments: Arc::new(segments.clone()),
            snapshots: Some(Arc::new(blobs.clone())),
            clock: Arc::new(ManualClock::new(0)),
        };
        let options = DbOptions {
            segment_bytes_max: 2048,
            ..DbOptions::default()
        };
        Database::open(storage, options).unwrap().0
    }
}

/// The recovered database holds exactly the model's rows, every index finds
/// every row by its key, and the sequence continues past every value handed out.
fn check_recovered(
    db: &Database,
    table_ids: &[TableId],
    model: &Model,
) -> Result<(), TestCaseError> {
    let read = db.read().unwrap();
    for (table, &table_id) in table_ids.iter().enumerate().take(2) {
        let got = sorted(read.scan(table_id).unwrap().map(|r| r.to_vec()));
        prop_assert_eq!(
            &got,
            &model.tables[table].iter().cloned().collect::<Vec<_>>()
        );
        for (name, cols, _) in index_cols(table) {
            let index = read.index_id_from_name(name).unwrap();
            for row in &got {
                let found = read
                    .index_point(index, &key_of(row, &cols))
                    .unwrap()
                    .any(|r| **r == **row);
                prop_assert!(found, "index {} lost {:?} in recovery", name, row);
            }
        }
    }
    check_tags_and_events(&read, table_ids, model)?;
    drop(read);
    let mut tx = db.begin().unwrap();
    let row = vec![
        AlgebraicValue::U64(0),
        AlgebraicValue::U8(0),
        AlgebraicValue::String("after recovery".into()),
        AlgebraicValue::I32(0),
        AlgebraicValue::U32(1_000),
    ];
    // The generated id may collide with an explicit one (documented): then
    // the error names the key that the sequence handed out.
    let id = match tx.insert_row(table_ids[0], row) {
        Ok(outcome) => outcome.row[0].clone(),
        Err(TxError::UniqueViolation {
            constraint, key, ..
        }) if constraint == "people_id_key" => {
            // The key prints as `U64(n)`.
            let inner = key.trim_start_matches("U64(").trim_end_matches(')');
            AlgebraicValue::U64(inner.parse().unwrap())
        }
        Err(other) => {
            return Err(TestCaseError::fail(format!(
                "insert after recovery: {other}"
            )))
        }
    };
    let AlgebraicValue::U64(id) = id else {
        unreachable!()
    };
    prop_assert!(
        id >= model.next_id,
        "sequence handed out {} again (next was {})",
        id,
        model.next_id
    );
    tx.rollback();
    Ok(())
}

/// The event table is empty, and `tags` has its extra index (finding every
/// row) and visibility exactly as the model says.
fn check_tags_and_events(
    read: &storage::State,
    table_ids: &[TableId],
    model: &Model,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(read.row_count(table_ids[2]).unwrap(), 0);
    prop_assert_eq!(read.schema(table_ids[1]).unwrap().public, model.tags_extra);
    let extra = read.index_id_from_name(TAGS_EXTRA_INDEX);
    prop_assert_eq!(extra.is_some(), model.tags_extra);
    if let Some(extra) = extra {
        for row in &model.tables[1] {
            let found = read
                .index_point(extra, &row[0])
                .unwrap()
                .any(|r| **r == **row);
            prop_assert!(found, "extra index lost {:?}", row);
        }
    }
    Ok(())
}

fn sorted(rows: impl Iterator<Item = Vec<AlgebraicValue>>) -> Vec<Row> {
    let mut rows: Vec<Row> = rows.collect();
    rows.sort();
    rows
}

fn run(txs: Vec<(bool, Vec<Op>, bool)>) -> Result<(), TestCaseError> {
    let h = Harness::new();
    let mut model = Model {
        next_id: 1,
        ..Model::default()
    };
    for (alter, ops, commit) in txs {
        let before = model.clone();
        let mut tx = h.db.begin().unwrap();
        if alter {
            let extra = !model.tags_extra;
            tx.alter_table(h.table_ids[1], tags_def(extra), vec![])
                .unwrap();
            model.tags_extra = extra;
        }
        for op in ops {
            apply(&h, &mut tx, &mut model, op)?;
        }
        if commit {
            let delta = tx.commit().unwrap();
            prop_assert_eq!(delta.altered_tables.len(), alter as usize);
            let events: BTreeSet<Row> = delta
                .tables
                .iter()
                .filter(|t| t.table_id == h.table_ids[2])
                .flat_map(|t| {
                    assert!(t.deletes.is_empty(), "event tables never delete");
                    t.inserts.iter().map(|r| r.to_vec())
                })
                .collect();
            prop_assert_eq!(&events, &model.events);
            model.events.clear();
            for table in 0..2 {
                let expected_ins: BTreeSet<&Row> = model.tables[table]
                    .difference(&before.tables[table])
                    .collect();
                let expected_del: BTreeSet<&Row> = before.tables[table]
                    .difference(&model.tables[table])
                    .collect();
                let got = delta
                    .tables
                    .iter()
                    .find(|t| t.table_id == h.table_ids[table]);
                let got_ins: BTreeSet<Row> = got
                    .map(|t| t.inserts.iter().map(|r| r.to_vec()).collect())
                    .unwrap_or_default();
                let got_del: BTreeSet<Row> = got
                    .map(|t| t.deletes.iter().map(|r| r.to_vec()).collect())
                    .unwrap_or_default();
                prop_assert_eq!(
                    got_ins,
                    expected_ins.into_iter().cloned().collect::<BTreeSet<_>>()
                );
                prop_assert_eq!(
                    got_del,
                    expected_del.into_iter().cloned().collect::<BTreeSet<_>>()
                );
            }
        } else {
            tx.rollback();
            // Sequences are not rolled back: keep the model's counter.
            let next_id = model.next_id;
            model = before;
            model.next_id = next_id;
        }
        let read = h.db.read().unwrap();
        check_tags_and_events(&read, &h.table_ids, &model)?;
        for table in 0..2 {
            let got = sorted(read.scan(h.table_ids[table]).unwrap().map(|r| r.to_vec()));
            prop_assert_eq!(got, model.tables[table].iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(
                read.row_count(h.table_ids[table]).unwrap(),
                model.tables[table].len() as u64
            );
        }
    }
    // Replay of the commit log, then a snapshot and a reopen from it, must
    // rebuild the same state, indexes and sequences.
    h.db.flush().unwrap();
    let Harness {
        db,
        table_ids,
        segments,
        blobs,
    } = h;
    drop(db);
    let db = Harness::open(&segments, &blobs);
    check_recovered(&db, &table_ids, &model)?;
    db.take_snapshot().unwrap();
    drop(db);
    let db = Harness::open(&segments, &blobs);
    check_recovered(&db, &table_ids, &model)?;
    Ok(())
}

fn apply(
    h: &Harness,
    tx: &mut storage::MutTx,
    model: &mut Model,
    op: Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Insert { table, seeds } => {
            let mut row = make_row(table, &seeds);
            let generate = table == 0 && row[0] == AlgebraicValue::U64(0);
            let result = tx.insert_row(h.table_ids[table], row.clone());
            if generate {
                row[0] = AlgebraicValue::U64(model.next_id);
                model.next_id += 1;
            }
            let duplicate = model.tables[table].contains(&row);
            match result {
                Ok(outcome) => {
                    prop_assert_eq!(outcome.row.to_vec(), row.clone());
                    prop_assert_eq!(outcome.inserted, !duplicate);
                    prop_assert_eq!(outcome.generated.len(), generate as usize);
                    if generate {
                        prop_assert_eq!(
                            outcome.generated_bsatn(),
                            spacetimedb_sats::bsatn::to_vec(&row[0]).unwrap()
                        );
                    }
                    prop_assert!(duplicate || !model.conflicts(table, &row, None));
                    model.tables[table].insert(row);
                }
                Err(TxError::UniqueViolation { constraint, .. }) => {
                    prop_assert!(
                        !duplicate && model.conflicts(table, &row, None),
                        "spurious violation of {}",
                        constraint
                    );
                }
                Err(other) => prop_assert!(false, "insert failed: {other}"),
            }
        }
        Op::DeleteRow { table, seeds } => {
            let row = make_row(table, &seeds);
            let deleted = tx.delete_row(h.table_ids[table], &row).unwrap();
            prop_assert_eq!(deleted, model.tables[table].remove(&row));
        }
        Op::DeletePoint {
            table,
            index,
            seeds,
        } => {
            let indexes = index_cols(table);
            let (name, cols, _) = &indexes[index % indexes.len()];
            let key = key_of(&make_row(table, &seeds), cols);
            let count = tx
                .delete_by_point(tx.index_id_from_name(name).unwrap(), &key)
                .unwrap();
            let before = model.tables[table].len();
            model.tables[table].retain(|r| key_of(r, cols) != key);
            prop_assert_eq!(count as usize, before - model.tables[table].len());
        }
        Op::Point {
            table,
            index,
            seeds,
        } => {
            let indexes = index_cols(table);
            let (name, cols, _) = &indexes[index % indexes.len()];
            let key = key_of(&make_row(table, &seeds), cols);
            let got = sorted(
                tx.index_point(tx.index_id_from_name(name).unwrap(), &key)
                    .unwrap()
                    .map(|r| r.to_vec()),
            );
            let expected: Vec<Row> = model.tables[table]
                .iter()
                .filter(|r| key_of(r, cols) == key)
                .cloned()
                .collect();
            prop_assert_eq!(got, expected);
            // The ABI form: the key columns' BSATN back to back.
            let mut bytes = Vec::new();
            for col in cols {
                bytes.extend(
                    spacetimedb_sats::bsatn::to_vec(&make_row(table, &seeds)[*col]).unwrap(),
                );
            }
            let got_bytes = sorted(
                tx.index_point_bsatn(tx.index_id_from_name(name).unwrap(), &bytes)
                    .unwrap()
                    .map(|r| r.to_vec()),
            );
            let expected: Vec<Row> = model.tables[table]
                .iter()
                .filter(|r| key_of(r, cols) == key)
                .cloned()
                .collect();
            prop_assert_eq!(got_bytes, expected);
        }
        Op::Scan {
            table,
            index,
            range,
        } => {
            let Some((index_id, cols, range, bytes)) = make_range(tx, table, index, &range) else {
                return Ok(());
            };
            let hash = index_cols(table)[index % index_cols(table).len()].2 == IndexAlgorithm::Hash;
            match tx.index_range(index_id, &range) {
                Err(TxError::WrongIndexAlgorithm { .. }) => prop_assert!(hash),
                Err(other) => prop_assert!(false, "scan failed: {other}"),
                Ok(rows) => {
                    prop_assert!(!hash);
                    let rows: Vec<Row> = rows.map(|r| r.to_vec()).collect();
                    // Rows come in key order.
                    let keys: Vec<AlgebraicValue> = rows.iter().map(|r| key_of(r, &cols)).collect();
                    prop_assert!(
                        keys.windows(2).all(|w| w[0] <= w[1]),
                        "range scan out of key order"
                    );
                    let expected: Vec<Row> = model.tables[table]
                        .iter()
                        .filter(|r| matches(r, &cols, &range))
                        .cloned()
                        .collect();
                    prop_assert_eq!(sorted(rows.into_iter()), expected.clone());
                    let (prefix, elems, start, end) = bytes;
                    let got_bytes = sorted(
                        tx.index_range_bsatn(index_id, &prefix, elems, &start, &end)
                            .unwrap()
                            .map(|r| r.to_vec()),
                    );
                    prop_assert_eq!(got_bytes, expected);
                }
            }
        }
        Op::DeleteRange {
            table,
            index,
            range,
        } => {
            let Some((index_id, cols, range, _)) = make_range(tx, table, index, &range) else {
                return Ok(());
            };
            match tx.delete_by_range(index_id, &range) {
                Err(TxError::WrongIndexAlgorithm { .. }) => {}
                Err(other) => prop_assert!(false, "delete range failed: {other}"),
                Ok(count) => {
                    let before = model.tables[table].len();
                    model.tables[table].retain(|r| !matches(r, &cols, &range));
                    prop_assert_eq!(count as usize, before - model.tables[table].len());
                }
            }
        }
        Op::Update { seeds } => {
            let mut row = make_row(0, &seeds);
            if row[0] == AlgebraicValue::U64(0) {
                row[0] = AlgebraicValue::U64(1);
            }
            let pk = tx.index_id_from_name("people_id_idx_btree").unwrap();
            let old = model.tables[0].iter().find(|r| r[0] == row[0]).cloned();
            let result = tx.update_row(h.table_ids[0], pk, row.clone());
            match (result, old) {
                (Err(TxError::NoSuchRow { .. }), None) => {}
                (Ok(outcome), Some(old)) => {
                    prop_assert!(!model.conflicts(0, &row, Some(&old)));
                    prop_assert_eq!(outcome.inserted, old != row);
                    model.tables[0].remove(&old);
                    model.tables[0].insert(row);
                }
                (Err(TxError::UniqueViolation { .. }), Some(old)) => {
                    prop_assert!(model.conflicts(0, &row, Some(&old)))
                }
                (result, old) => prop_assert!(false, "update {row:?} over {old:?}: {result:?}"),
            }
        }
        Op::Clear { table } => {
            let count = tx.clear(h.table_ids[table]).unwrap();
            prop_assert_eq!(count as usize, model.tables[table].len());
            model.tables[table].clear();
        }
        Op::Event { seeds } => {
            let row: Row = vec![
                AlgebraicValue::U8(seeds[0] % 4),
                AlgebraicValue::U8(seeds[1] % 3),
            ];
            let result = tx.insert_row(h.table_ids[2], row.clone());
            if model.events.contains(&row) {
                prop_assert!(matches!(result, Ok(ref o) if !o.inserted), "{:?}", result);
            } else if model.events.iter().any(|r| r[0] == row[0]) {
                prop_assert!(
                    matches!(result, Err(TxError::UniqueViolation { .. })),
                    "{:?}",
                    result
                );
            } else {
                prop_assert!(matches!(result, Ok(ref o) if o.inserted), "{:?}", result);
                model.events.insert(row);
            }
            // Visible to the transaction itself.
            prop_assert_eq!(
                tx.row_count(h.table_ids[2]).unwrap(),
                model.events.len() as u64
            );
        }
    }
    Ok(())
}

type RangeBytes = (Vec<u8>, usize, Vec<u8>, Vec<u8>);

fn make_range(
    tx: &storage::MutTx,
    table: usize,
    index: usize,
    seed: &RangeSeed,
) -> Option<(IndexId, Vec<usize>, IndexRange, RangeBytes)> {
    let indexes = index_cols(table);
    let (name, cols, _) = indexes[index % indexes.len()].clone();
    let prefix_len = seed.prefix.min(cols.len() - 1);
    let prefix: Vec<AlgebraicValue> = (0..prefix_len)
        .map(|i| column_value(table, cols[i], seed.values[i]))
        .collect();
    let col = cols[prefix_len];
    let range = IndexRange {
        prefix: prefix.clone(),
        start: bound(table, col, seed.start),
        end: bound(table, col, seed.end),
    };
    let mut prefix_bytes = Vec::new();
    for v in &prefix {
        prefix_bytes.extend(spacetimedb_sats::bsatn::to_vec(v).unwrap());
    }
    let bytes = (
        prefix_bytes,
        prefix_len,
        encode_bound(&range.start),
        encode_bound(&range.end),
    );
    Some((tx.index_id_from_name(name).unwrap(), cols, range, bytes))
}

fn matches(row: &Row, cols: &[usize], range: &IndexRange) -> bool {
    let k = range.prefix.len();
    (0..k).all(|i| row[cols[i]] == range.prefix[i])
        && in_bound(&row[cols[k]], &range.start, &range.end)
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES deepens the run; 256 by default.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn transactions_match_model(txs in prop::collection::vec((prop::bool::weighted(0.15), prop::collection::vec(op(), 1..12), prop::bool::weighted(0.75)), 1..12)) {
        run(txs)?;
    }
}
