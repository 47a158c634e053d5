// Protects every entry point that takes bytes from outside (a module's rows,
// keys and bounds; segment files on disk) against arbitrary input: the result
// is a value or a typed error, never a panic, and a row that decodes encodes
// back to exactly the bytes it came from (BSATN is canonical), so nothing is
// silently altered on its way into the log.

use std::sync::Arc;

use proptest::prelude::*;
use spacetimedb_sats::{AlgebraicType, ProductType};
use storage::clock::ManualClock;
use storage::commitlog::{MemorySegmentStore, SegmentStore};
use storage::{
    ColId, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, TableDef, TxError, TxOffset,
    UniqueConstraintDef,
};

fn rich_def() -> TableDef {
    TableDef {
        name: "rich".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U32),
            ("flag", AlgebraicType::Bool),
            ("name", AlgebraicType::String),
            ("blob", AlgebraicType::array(AlgebraicType::U8)),
            ("maybe", AlgebraicType::option(AlgebraicType::I16)),
            (
                "pair",
                AlgebraicType::product([AlgebraicType::F64, AlgebraicType::String]),
            ),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            IndexDef {
                name: "rich_id_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(0)],
            },
            IndexDef {
                name: "rich_name_pair_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(2), ColId(5)],
            },
        ],
        unique_constraints: vec![UniqueConstraintDef {
            name: "rich_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![],
        public: true,
        is_event: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn module_bytes_give_values_or_typed_errors(row in prop_oneof![prop::collection::vec(any::<u8>(), 0..48), near_rows()],
                                                prefix in prop::collection::vec(any::<u8>(), 0..12),
                                                start in prop::collection::vec(any::<u8>(), 0..12),
                                                end in prop::collection::vec(any::<u8>(), 0..12),
                                                elems in 0usize..3) {
        let db = Database::in_memory(DbOptions::default());
        let mut tx = db.begin().unwrap();
        let table = tx.create_table(rich_def()).unwrap();
        match tx.insert_bsatn(table, &row) {
            Ok(outcome) => {
                let mut again = Vec::new();
                storage::value::encode_row(&outcome.row, &mut again);
                prop_assert_eq!(&again, &row);
            }
            Err(TxError::Decode { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        let by_name = tx.index_id_from_name("rich_name_pair_idx_btree").unwrap();
        let by_id = tx.index_id_from_name("rich_id_idx_btree").unwrap();
        for index in [by_name, by_id] {
            if let Ok(rows) = tx.index_range_bsatn(index, &prefix, elems, &start, &end) {
                let _ = rows.count();
            }
            if let Ok(rows) = tx.index_point_bsatn(index, &start) {
                let _ = rows.count();
            }
            let _ = tx.delete_by_range_bsatn(index, &prefix, elems, &start, &end);
        }
        let _ = tx.delete_rows_bsatn(table, &row);
        tx.commit().unwrap();
    }

    #[test]
    fn garbage_segments_never_panic_on_open(bytes in prop::collection::vec(any::<u8>(), 0..256), header in any::<bool>()) {
        let store = MemorySegmentStore::new();
        let mut contents = Vec::new();
        if header {
            // A genuine header followed by garbage: the record scanner must cope.
            let real = MemorySegmentStore::new();
            let (db, _) = open(&real);
            let mut tx = db.begin().unwrap();
            tx.create_table(rich_def()).unwrap();
            tx.commit().unwrap();
            db.flush().unwrap();
            drop(db);
            contents = real.read(TxOffset(0)).unwrap();
            contents.truncate(28);
        }
        contents.extend_from_slice(&bytes);
        store.set_bytes(TxOffset(0), contents);
        // Either an error or a database holding a valid prefix (possibly empty).
        if let Ok((db, _)) = Database::open(storage(&store), DbOptions::default()) {
            let read = db.read().unwrap();
            prop_assert!(read.last_offset().is_none() || read.table_id_from_name("rich").is_some());
        }
    }
}

/// Bytes shaped like rows of `rich` (lengths and tags mostly plausible, bool
/// bytes, UTF-8 and tags sometimes not), sometimes cut short or extended, so
/// that decoding succeeds often enough to check the round trip.
fn near_rows() -> impl Strategy<Value = Vec<u8>> {
    let text = (0u32..4).prop_flat_map(|n| {
        prop::collection::vec(prop_oneof![4 => 0x61u8..0x7b, 1 => any::<u8>()], n as usize)
    });
    (
        any::<u32>(),
        prop_oneof![4 => 0u8..2, 1 => any::<u8>()],
        text.clone(),
        prop::collection::vec(any::<u8>(), 0..4),
        prop_oneof![4 => 0u8..2, 1 => any::<u8>()],
        any::<i16>(),
        any::<f64>(),
        text,
        0u8..4,
    )
        .prop_map(
            |(id, flag, name, blob, tag, small, float, second, damage)| {
                let mut out = Vec::new();
                out.extend(id.to_le_bytes());
                out.push(flag);
                out.extend((name.len() as u32).to_le_bytes());
                out.extend(&name);
                out.extend((blob.len() as u32).to_le_bytes());
                out.extend(&blob);
                out.push(tag);
                if tag == 0 {
                    out.extend(small.to_le_bytes());
                }
                out.extend(float.to_le_bytes());
                out.extend((second.len() as u32).to_le_bytes());
                out.extend(&second);
                match damage {
                    0 => {
                        out.pop();
                    }
                    1 => out.push(0),
                    _ => {}
                }
                out
            },
        )
}

fn storage(segments: &MemorySegmentStore) -> DbStorage {
    DbStorage {
        segments: Arc::new(segments.clone()),
        snapshots: None,
        clock: Arc::new(ManualClock::new(0)),
    }
}

fn open(segments: &MemorySegmentStore) -> (Database, storage::RecoveryReport) {
    Database::open(storage(segments), DbOptions::default()).unwrap()
}

// Protects float bit patterns: a NaN with a payload and a negative zero
// survive decode and encode unchanged.
#[test]
fn float_bit_patterns_round_trip() {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(rich_def()).unwrap();
    for (id, bits) in [
        (1u32, 0x7ff8_0000_0000_0001u64),
        (2, 0x8000_0000_0000_0000),
        (3, 0xfff0_0000_0000_0000),
    ] {
        let mut row = Vec::new();
        row.extend(id.to_le_bytes());
        row.push(1);
        row.extend(0u32.to_le_bytes());
        row.extend(0u32.to_le_bytes());
        row.push(1);
        row.extend(bits.to_le_bytes());
        row.extend(0u32.to_le_bytes());
        let outcome = tx.insert_bsatn(table, &row).unwrap();
        let mut again = Vec::new();
        storage::value::encode_row(&outcome.row, &mut again);
        assert_eq!(again, row, "bits {bits:#x}");
    }
}

// Protects the commit time in every record (payload version 2): it is the
// database clock's time at commit, read back by `record_commit_micros`, and
// a reopened database replays the timed records.
#[test]
fn records_carry_their_commit_time() {
    let segments = MemorySegmentStore::new();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let timed = DbStorage {
        segments: Arc::new(segments.clone()),
        snapshots: None,
        clock: clock.clone(),
    };
    let (db, _) = Database::open(timed, DbOptions::default()).unwrap();
    let mut tx = db.begin().unwrap();
    tx.create_table(rich_def()).unwrap();
    tx.commit().unwrap();
    clock.advance(2_500_000);
    let mut tx = db.begin().unwrap();
    tx.create_table(TableDef {
        name: "second".into(),
        indexes: vec![],
        unique_constraints: vec![],
        primary_key: None,
        ..rich_def()
    })
    .unwrap();
    tx.commit().unwrap();
    db.flush().unwrap();
    let mut times = Vec::new();
    db.commit_log()
        .unwrap()
        .replay(TxOffset(0), |_, payload| {
            times.push(storage::record_commit_micros(payload));
            Ok::<_, ()>(())
        })
        .unwrap();
    assert_eq!(
        times,
        [Some(1_700_000_000_000_000), Some(1_700_000_002_500_000)]
    );
    drop(db);
    let (_, report) = open(&segments);
    assert_eq!(report.records_replayed, 2);
    assert_eq!(storage::record_commit_micros(b"\x01old"), None);
}
