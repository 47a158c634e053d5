// Protects the engine against a misbehaving medium: a failed fsync or write
// makes the database refuse writes until it is reopened (never retry and carry
// on), torn writes and bit flips give a clear error or a safe cut — never wrong
// data — and a corrupt snapshot falls back to an older one with a longer replay.
// Recovery rebuilds indexes and sequences exactly. Each test compares the
// recovered state with a model of the workload at the recovered offset.

use std::sync::Arc;

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::clock::ManualClock;
use storage::commitlog::{MemorySegmentStore, SegmentStore, Unreliable};
use storage::snapshot::{object_key, BlobStore, MemoryBlobStore, SnapshotRepo};
use storage::{
    ColId, CommitError, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, OpenError,
    SequenceDef, TableDef, TxOffset, UniqueConstraintDef,
};

fn items_def() -> TableDef {
    TableDef {
        name: "items".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U64),
            ("n", AlgebraicType::U64),
            ("label", AlgebraicType::String),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            IndexDef {
                name: "items_id_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(0)],
            },
            IndexDef {
                name: "items_n_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(1)],
            },
        ],
        unique_constraints: vec![UniqueConstraintDef {
            name: "items_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![SequenceDef {
            name: "items_id_seq".into(),
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

struct Stores {
    segments: MemorySegmentStore,
    blobs: MemoryBlobStore,
}

impl Stores {
    fn new() -> Stores {
        Stores {
            segments: MemorySegmentStore::new(),
            blobs: MemoryBlobStore::new(),
        }
    }

    fn storage(&self, segments: Arc<dyn SegmentStore>) -> DbStorage {
        DbStorage {
            segments,
            snapshots: Some(Arc::new(self.blobs.clone())),
            clock: Arc::new(ManualClock::new(1_700_000_000_000_000)),
        }
    }

    fn open(&self) -> Result<(Database, storage::RecoveryReport), OpenError> {
        Database::open(self.storage(Arc::new(self.segments.clone())), options())
    }
}

fn options() -> DbOptions {
    DbOptions {
        segment_bytes_max: 4096,
        ..DbOptions::default()
    }
}

/// Offset 0 creates the table; the transaction at offset `i > 0` inserts
/// `n = i` with a generated id.
fn write(db: &Database, from: u64, to: u64) {
    for i in from..to {
        let mut tx = db.begin().unwrap();
        let table = match tx.table_id_from_name("items") {
            Some(table) => table,
            None => tx.create_table(items_def()).unwrap(),
        };
        if i > 0 {
            let row = vec![
                AlgebraicValue::U64(0),
                AlgebraicValue::U64(i),
                AlgebraicValue::String(format!("item {i}").into()),
            ];
            tx.insert_row(table, row).unwrap();
        }
        assert_eq!(tx.commit().unwrap().offset, Some(TxOffset(i)));
    }
}

/// The values of `n` present, which must be exactly 1..=last, with consistent
/// indexes: every row is found through both indexes.
fn check_state(db: &Database) -> Option<TxOffset> {
    let read = db.read().unwrap();
    let last = read.last_offset();
    let Some(table) = read.table_id_from_name("items") else {
        assert!(last.is_none(), "offset {last:?} without the table");
        return last;
    };
    let mut ns: Vec<u64> = read
        .scan(table)
        .unwrap()
        .map(|row| {
            let AlgebraicValue::U64(n) = row[1] else {
                panic!("bad row {row:?}")
            };
            assert_eq!(row[2], AlgebraicValue::String(format!("item {n}").into()));
            let by_id = read
                .index_point(
                    read.index_id_from_name("items_id_idx_btree").unwrap(),
                    &row[0],
                )
                .unwrap()
                .count();
            let by_n = read
                .index_point(
                    read.index_id_from_name("items_n_idx_btree").unwrap(),
                    &row[1],
                )
                .unwrap()
                .count();
            assert_eq!((by_id, by_n), (1, 1), "index entries for {row:?}");
            n
        })
        .collect();
    ns.sort();
    let expected: Vec<u64> = (1..=last.map_or(0, |l| l.0)).collect();
    assert_eq!(
        ns, expected,
        "state differs from the model at offset {last:?}"
    );
    last
}

#[test]
fn failed_fsync_refuses_writes_until_reopen() {
    let stores = Stores::new();
    let unreliable = Arc::new(Unreliable::new(stores.segments.clone()));
    let (db, _) = Database::open(stores.storage(unreliable.clone()), options()).unwrap();
    write(&db, 0, 20);
    let durable = db.flush().unwrap().unwrap();
    let failing_sync = unreliable.syncs() + 1;
    unreliable.fail_sync_nth(failing_sync);
    let mut tx = db.begin().unwrap();
    let table = tx.table_id_from_name("items").unwrap();
    tx.insert_row(
        table,
        vec![
            AlgebraicValue::U64(0),
            AlgebraicValue::U64(20),
            AlgebraicValue::String("item 20".into()),
        ],
    )
    .unwrap();
    let offset = tx.commit().unwrap().offset.unwrap();
    assert!(
        db.wait_durable(offset).is_err(),
        "a failed fsync must not count as durable"
    );
    assert!(
        matches!(db.begin().err(), Some(CommitError::LogFailed(_))),
        "writes must be refused after a failed fsync"
    );
    // Asking again does not sync again, and closing the database (which
    // joins its log thread, so every sync it would ever make has been made)
    // leaves the failed fsync as the last one the store saw.
    assert!(db.flush().is_err(), "a flush after a failed fsync");
    assert!(db.wait_durable(offset).is_err());
    drop(db);
    assert_eq!(
        unreliable.syncs(),
        failing_sync,
        "the fsync must not be retried"
    );
    let (db, _) = stores.open().unwrap();
    let last = check_state(&db).unwrap();
    assert!(last >= durable);
    write(&db, last.0 + 1, last.0 + 5);
    check_state(&db);
}

#[test]
fn failed_and_torn_writes_refuse_writes_and_recover_a_prefix() {
    for torn in [false, true] {
        let stores = Stores::new();
        let unreliable = Arc::new(Unreliable::new(stores.segments.clone()));
        let (db, _) = Database::open(stores.storage(unreliable.clone()), options()).unwrap();
        write(&db, 0, 30);
        let durable = db.flush().unwrap().unwrap();
        let n = unreliable.appends() + 1;
        if torn {
            unreliable.tear_append_nth(n, 7);
        } else {
            unreliable.fail_append_nth(n);
        }
        let mut refused = false;
        for i in 30..60 {
            let Ok(mut tx) = db.begin() else {
                refused = true;
                break;
            };
            let table = tx.table_id_from_name("items").unwrap();
            tx.insert_row(
                table,
                vec![
                    AlgebraicValue::U64(0),
                    AlgebraicValue::U64(i),
                    AlgebraicValue::String(format!("item {i}").into()),
                ],
            )
            .unwrap();
            match tx.commit() {
                Ok(delta) => {
                    let _ = db.wait_durable(delta.offset.unwrap());
                }
                Err(CommitError::LogFailed(_)) => {
                    refused = true;
                    break;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(
            refused,
            "torn={torn}: the database kept accepting writes after a failed write"
        );
        drop(db);
        stores.segments.crash(7);
        let (db, _) = stores.open().unwrap();
        assert!(
            check_state(&db).unwrap() >= durable,
            "torn={torn}: durable data lost"
        );
    }
}

#[test]
fn bit_flips_in_the_log_are_a_clear_error_or_a_safe_cut() {
    let stores = Stores::new();
    let (db, _) = stores.open().unwrap();
    write(&db, 0, 200);
    db.flush().unwrap();
    drop(db);
    let segments = stores.segments.list().unwrap();
    assert!(segments.len() > 2, "small segments should have rotated");

    // The last record of the last segment: indistinguishable from a torn
    // write, so it is cut; recovery ends one transaction earlier.
    let last_segment = *segments.last().unwrap();
    let original = stores.segments.read(last_segment).unwrap();
    let mut flipped = original.clone();
    let at = flipped.len() - 3;
    flipped[at] ^= 0x10;
    stores.segments.set_bytes(last_segment, flipped);
    let (db, _) = stores.open().unwrap();
    assert_eq!(check_state(&db), Some(TxOffset(198)));
    drop(db);

    // A record inside a sealed segment: a clear error, never a skip.
    let first = segments[0];
    let mut bytes = stores.segments.read(first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    stores.segments.set_bytes(first, bytes);
    match stores.open() {
        Err(OpenError::CommitLog(error)) => {
            assert!(error.to_string().contains("corrupt"), "{error}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a corrupt sealed segment was accepted"),
    }
}

#[test]
fn corrupt_snapshots_fall_back_to_older_ones() {
    let stores = Stores::new();
    let (db, _) = stores.open().unwrap();
    write(&db, 0, 50);
    let older = db.take_snapshot().unwrap().unwrap();
    write(&db, 50, 100);
    let newer = db.take_snapshot().unwrap().unwrap();
    assert!(
        newer.objects_reused >= 1,
        "the unchanged meta part is not written again"
    );
    write(&db, 100, 120);
    drop(db);

    // A flipped bit in an object of the newer snapshot only.
    let repo = SnapshotRepo::new(
        Arc::new(stores.blobs.clone()),
        Arc::new(ManualClock::new(0)),
    );
    let older_hashes: Vec<_> = repo
        .read_manifest(older.offset)
        .unwrap()
        .parts
        .iter()
        .map(|p| p.hash)
        .collect();
    let part = repo
        .read_manifest(newer.offset)
        .unwrap()
        .parts
        .into_iter()
        .find(|p| !older_hashes.contains(&p.hash))
        .unwrap();
    let key = object_key(&part.hash);
    let mut bytes = stores.blobs.get(&key).unwrap().unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    stores.blobs.overwrite_raw(&key, bytes);

    let (db, report) = stores.open().unwrap();
    assert_eq!(report.snapshot_offset, Some(older.offset), "{report:?}");
    assert_eq!(report.snapshots_skipped.len(), 1);
    assert_eq!(report.snapshots_skipped[0].0, newer.offset);
    assert_eq!(check_state(&db), Some(TxOffset(119)));
    assert_eq!(report.records_replayed, 119 - older.offset.0);
}

#[test]
fn recovery_rebuilds_sequences_without_reusing_values() {
    let stores = Stores::new();
    let (db, _) = stores.open().unwrap();
    write(&db, 0, 10);
    let handed_out = |db: &Database, commit: bool| {
        let mut tx = db.begin().unwrap();
        let table = tx.table_id_from_name("items").unwrap();
        let outcome = tx
            .insert_row(
                table,
                vec![
                    AlgebraicValue::U64(0),
                    AlgebraicValue::U64(1000),
                    AlgebraicValue::String("item 1000".into()),
                ],
            )
            .unwrap();
        let AlgebraicValue::U64(id) = outcome.row[0] else {
            panic!()
        };
        if commit {
            tx.commit().unwrap();
        } else {
            tx.rollback();
        }
        id
    };
    let rolled_back = handed_out(&db, false);
    assert_eq!(
        handed_out(&db, true),
        rolled_back + 1,
        "in memory the next value follows"
    );
    db.flush().unwrap();
    drop(db);
    // First reopen replays the log; the second starts from a snapshot.
    let mut highest = rolled_back;
    for round in 0..2 {
        let (db, report) = stores.open().unwrap();
        assert_eq!(report.snapshot_offset.is_some(), round == 1);
        let next = handed_out(&db, round == 1);
        assert!(
            next > highest,
            "round {round}: value {next} handed out again after restart (had {highest})"
        );
        highest = next;
        db.take_snapshot().unwrap();
    }
}
