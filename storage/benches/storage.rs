//! Criterion micro-benchmarks of the storage engine: a 1,000-row insert
//! transaction into an in-memory table, a primary-key point lookup and a
//! 100-row secondary-index range scan on a 100,000-row table, and one durable
//! small transaction (commit + `wait_durable`, so one fsync) on a temp dir.
//!
//! Run: `cargo bench -p storage`. Sample sizes are small so the whole run takes
//! a few minutes; `storage/examples/bench.rs` gives the headline figures.

#[path = "../examples/common/workload.rs"]
mod workload;

use workload::{bench_row, mix, table_def};

use std::ops::Bound;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use spacetimedb_sats::AlgebraicValue;
use storage::{Database, DbOptions, DbStorage, IndexRange, TableId};

const TABLE_ROWS: u64 = 100_000;

/// `id` (primary key), `grp` uniform in `[0, TABLE_ROWS)` (secondary index), `val`.
fn row(id: u64) -> Vec<AlgebraicValue> {
    bench_row(id, TABLE_ROWS)
}

fn with_table(db: &Database) -> TableId {
    let mut tx = db.begin().unwrap();
    let table = tx.create_table(table_def()).unwrap();
    tx.commit().unwrap();
    table
}

fn filled(rows: u64) -> Database {
    let db = Database::in_memory(DbOptions::default());
    let table = with_table(&db);
    for chunk in (1..=rows).collect::<Vec<_>>().chunks(1_000) {
        let mut tx = db.begin().unwrap();
        for id in chunk {
            tx.insert_row(table, row(*id)).unwrap();
        }
        tx.commit().unwrap();
    }
    db
}

fn insert(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1_000));
    group.bench_function("tx_of_1000_rows_in_memory", |b| {
        b.iter_batched(
            || {
                let db = Database::in_memory(DbOptions::default());
                let table = with_table(&db);
                (db, table)
            },
            |(db, table)| {
                let mut tx = db.begin().unwrap();
                for id in 1..=1_000 {
                    tx.insert_row(table, row(id)).unwrap();
                }
                tx.commit().unwrap();
                db
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let db = filled(TABLE_ROWS);
    let read = db.read().unwrap();
    let pk = read.index_id_from_name("bench_id_idx_btree").unwrap();
    let grp = read.index_id_from_name("bench_grp_idx_btree").unwrap();
    let mut group = c.benchmark_group("read_100k_rows");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    let mut i = 0u64;
    group
        .throughput(Throughput::Elements(1))
        .bench_function("pk_point_lookup", |b| {
            b.iter(|| {
                i += 1;
                let key = AlgebraicValue::U64(1 + mix(i) % TABLE_ROWS);
                read.index_point(pk, &key).unwrap().count()
            })
        });
    group
        .throughput(Throughput::Elements(100))
        .bench_function("range_scan_100_rows", |b| {
            b.iter(|| {
                i += 1;
                let low = mix(i) % (TABLE_ROWS - 100);
                let range = IndexRange {
                    prefix: vec![],
                    start: Bound::Included(AlgebraicValue::U64(low)),
                    end: Bound::Excluded(AlgebraicValue::U64(low + 100)),
                };
                read.index_range(grp, &range).unwrap().count()
            })
        });
    group.finish();
}

fn durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) =
        Database::open(DbStorage::dir(dir.path()).unwrap(), DbOptions::default()).unwrap();
    let table = with_table(&db);
    let mut group = c.benchmark_group("durable");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    let mut id = 0u64;
    group.bench_function("one_row_tx_commit_and_wait_durable", |b| {
        b.iter(|| {
            id += 1;
            let mut tx = db.begin().unwrap();
            tx.insert_row(table, row(id)).unwrap();
            let offset = tx.commit().unwrap().offset.unwrap();
            db.wait_durable(offset).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, insert, reads, durable);
criterion_main!(benches);
