//! The benchmark table and rows shared by `examples/bench.rs` and
//! `benches/storage.rs`: `bench(id u64 primary key, grp u64 indexed, val u64)`.
//! Included with `#[path]`; not a target of its own.

#![allow(dead_code)]

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::{ColId, IndexAlgorithm, IndexDef, TableDef, UniqueConstraintDef};

pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The benchmark row: `id` (primary key), `grp` uniform in `[0, rows)` (secondary
/// non-unique index, so a window of 1,000 values holds ~1,000 rows), `val`.
pub(crate) fn bench_row(id: u64, rows: u64) -> Vec<AlgebraicValue> {
    vec![
        AlgebraicValue::U64(id),
        AlgebraicValue::U64(mix(id) % rows),
        AlgebraicValue::U64(id.wrapping_mul(31)),
    ]
}

pub(crate) fn table_def() -> TableDef {
    TableDef {
        name: "bench".into(),
        columns: ProductType::from([
            ("id", AlgebraicType::U64),
            ("grp", AlgebraicType::U64),
            ("val", AlgebraicType::U64),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![
            IndexDef {
                name: "bench_id_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(0)],
            },
            IndexDef {
                name: "bench_grp_idx_btree".into(),
                algorithm: IndexAlgorithm::BTree,
                columns: vec![ColId(1)],
            },
        ],
        unique_constraints: vec![UniqueConstraintDef {
            name: "bench_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: vec![],
        public: true,
        is_event: false,
    }
}
