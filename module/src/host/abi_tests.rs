//! Protocol tests of the datastore and bytes imports, driven from a WAT
//! module that re-exports the imports so the test calls them with exact
//! pointers and reads guest memory back: errnos, write-back lengths, the
//! `i16` returns of `row_iter_bsatn_advance` and `bytes_source_read`,
//! `BUFFER_TOO_SMALL` with the needed size, handles destroyed on `-1`, and
//! `NOT_IN_TRANSACTION` without a transaction (module-abi §2, §3, §9).
//! Owns no production code.

use std::collections::HashMap;
use std::sync::Arc;

use spacetimedb_primitives::ColId;
use spacetimedb_sats::{AlgebraicType, ProductType};
use storage::{Database, DbOptions, IndexAlgorithm, IndexDef, SequenceDef, TableDef};
use wasmtime::{Engine, Instance, Linker, Memory, Store, WasmParams, WasmResults};

use super::{link, HostEnv};

const IMPORTS: &[(&str, &str, &str)] = &[
    (
        "spacetime_10.0",
        "table_id_from_name",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "index_id_from_name",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_table_row_count",
        "(param i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_table_scan_bsatn",
        "(param i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_index_scan_range_bsatn",
        "(param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_delete_by_index_scan_range_bsatn",
        "(param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_delete_all_by_eq_bsatn",
        "(param i32 i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "row_iter_bsatn_advance",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "row_iter_bsatn_close",
        "(param i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_insert_bsatn",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_update_bsatn",
        "(param i32 i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "bytes_source_read",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.1",
        "bytes_source_remaining_length",
        "(param i32 i32) (result i32)",
    ),
    ("spacetime_10.2", "get_jwt", "(param i32 i32) (result i32)"),
    (
        "spacetime_10.4",
        "datastore_index_scan_point_bsatn",
        "(param i32 i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.4",
        "datastore_delete_by_index_scan_point_bsatn",
        "(param i32 i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.5",
        "datastore_clear",
        "(param i32 i32) (result i32)",
    ),
];

struct Harness {
    store: Store<HostEnv>,
    instance: Instance,
    memory: Memory,
    db: Database,
}

/// Scratch addresses in guest memory.
const NAME: usize = 100;
const OUT: usize = 200;
const LEN: usize = 204;
const BUF: usize = 1000;

impl Harness {
    /// A database with table `thing(id: u64 auto-inc pk, bucket: u16 hash, name: String)`
    /// and an open transaction in the store.
    fn new() -> Harness {
        let db = Database::in_memory(DbOptions::default());
        let mut tx = db.begin().unwrap();
        tx.create_table(TableDef {
            name: "thing".into(),
            columns: ProductType::from([
                ("id", AlgebraicType::U64),
                ("bucket", AlgebraicType::U16),
                ("name", AlgebraicType::String),
            ]),
            primary_key: Some(ColId(0)),
            indexes: vec![
                IndexDef {
                    name: "thing_id_idx_btree".into(),
                    algorithm: IndexAlgorithm::BTree,
                    columns: vec![ColId(0)],
                },
                IndexDef {
                    name: "thing_bucket_idx_hash".into(),
                    algorithm: IndexAlgorithm::Hash,
                    columns: vec![ColId(1)],
                },
            ],
            unique_constraints: vec![storage::UniqueConstraintDef {
                name: "thing_id_key".into(),
                columns: vec![ColId(0)],
            }],
            sequences: vec![SequenceDef {
                name: "thing_id_seq".into(),
                column: ColId(0),
                start: None,
                min_value: None,
                max_value: None,
                increment: 1,
            }],
            public: true,
            is_event: false,
        })
        .unwrap();
        tx.commit().unwrap();

        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        link(&mut linker).unwrap();
        let mut text = String::from("(module\n");
        for (i, (namespace, name, sig)) in IMPORTS.iter().enumerate() {
            text += &format!("(import \"{namespace}\" \"{name}\" (func $f{i} {sig}))\n");
        }
        for (i, (_, name, _)) in IMPORTS.iter().enumerate() {
            text += &format!("(export \"{name}\" (func $f{i}))\n");
        }
        text += "(memory (export \"memory\") 1))";
        let module = wasmtime::Module::new(&engine, wat::parse_str(&text).unwrap()).unwrap();
        let mut env = HostEnv::default();
        let mut names = HashMap::new();
        names.insert("thing_src".to_string(), "thing".to_string());
        names.insert("thing".to_string(), "thing".to_string());
        env.table_names = Arc::new(names);
        env.tx = Some(db.begin().unwrap());
        let mut store = Store::new(&engine, env);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        store.data_mut().memory = Some(memory);
        Harness {
            store,
            instance,
            memory,
            db,
        }
    }

    fn try_call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &str,
        params: P,
    ) -> wasmtime::Result<R> {
        let func = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .unwrap();
        func.call(&mut self.store, params)
    }

    fn call<P: WasmParams, R: WasmResults>(&mut self, name: &str, params: P) -> R {
        self.try_call(name, params)
            .unwrap_or_else(|e| panic!("{name} trapped: {e:#}"))
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        self.memory.write(&mut self.store, at, bytes).unwrap();
    }

    fn read(&self, at: usize, len: usize) -> Vec<u8> {
        self.memory.data(&self.store)[at..at + len].to_vec()
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.read(at, 4).try_into().unwrap())
    }

    fn u64_at(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.read(at, 8).try_into().unwrap())
    }

    fn table_id(&mut self, name: &str) -> (i32, u32) {
        self.write(NAME, name.as_bytes());
        let code = self.call::<_, i32>(
            "table_id_from_name",
            (NAME as i32, name.len() as i32, OUT as i32),
        );
        (code, self.u32_at(OUT))
    }

    fn index_id(&mut self, name: &str) -> u32 {
        self.write(NAME, name.as_bytes());
        let code = self.call::<_, i32>(
            "index_id_from_name",
            (NAME as i32, name.len() as i32, OUT as i32),
        );
        assert_eq!(code, 0, "index {name}");
        self.u32_at(OUT)
    }

    /// Inserts `row` from `BUF`; returns the code and the write-back bytes.
    fn insert(&mut self, table: u32, row: &[u8]) -> (i32, Vec<u8>) {
        self.write(BUF, row);
        self.write(LEN, &(row.len() as u32).to_le_bytes());
        let code = self.call::<_, i32>(
            "datastore_insert_bsatn",
            (table as i32, BUF as i32, LEN as i32),
        );
        let len = self.u32_at(LEN) as usize;
        (
            code,
            if code == 0 {
                self.read(BUF, len)
            } else {
                Vec::new()
            },
        )
    }

    /// Advances iterator `iter` with capacity `cap`; returns the code and bytes.
    fn advance(&mut self, iter: u32, cap: u32) -> (i32, u32, Vec<u8>) {
        self.write(LEN, &cap.to_le_bytes());
        let code = self.call::<_, i32>(
            "row_iter_bsatn_advance",
            (iter as i32, BUF as i32, LEN as i32),
        );
        let len = self.u32_at(LEN);
        let bytes = if code == 0 || code == -1 {
            self.read(BUF, len as usize)
        } else {
            Vec::new()
        };
        (code, len, bytes)
    }
}

fn row(id: u64, bucket: u16, name: &str) -> Vec<u8> {
    let mut bytes = id.to_le_bytes().to_vec();
    bytes.extend_from_slice(&bucket.to_le_bytes());
    bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

#[test]
fn names_inserts_and_write_back() {
    let mut h = Harness::new();
    let (code, table) = h.table_id("thing_src");
    assert_eq!(code, 0);
    assert_eq!(
        h.table_id("thing"),
        (0, table),
        "canonical names resolve too"
    );
    assert_eq!(h.table_id("nope").0, 4, "NO_SUCH_TABLE");
    h.write(NAME, &[0xff, 0xfe]);
    assert!(
        h.try_call::<_, i32>("table_id_from_name", (NAME as i32, 2, OUT as i32))
            .is_err(),
        "invalid UTF-8 traps"
    );
    assert!(
        h.try_call::<_, i32>("table_id_from_name", (NAME as i32, 5, 1 << 20))
            .is_err(),
        "an out-pointer outside memory traps"
    );

    assert_eq!(
        h.insert(table, &row(0, 7, "a")),
        (0, 1u64.to_le_bytes().to_vec())
    );
    assert_eq!(
        h.insert(table, &row(0, 7, "b")),
        (0, 2u64.to_le_bytes().to_vec())
    );
    assert_eq!(
        h.insert(table, &row(1, 7, "a")),
        (0, vec![]),
        "set semantics"
    );
    assert_eq!(
        h.insert(table, &row(1, 8, "z")).0,
        12,
        "UNIQUE_ALREADY_EXISTS"
    );
    assert_eq!(
        h.insert(table, &row(5, 8, "z")[..10]).0,
        3,
        "BSATN_DECODE_ERROR"
    );
    assert_eq!(h.insert(table + 100, &row(5, 8, "z")).0, 4, "NO_SUCH_TABLE");

    let code = h.call::<_, i32>("datastore_table_row_count", (table as i32, OUT as i32));
    assert_eq!((code, h.u64_at(OUT)), (0, 2));
}

#[test]
fn row_iterators_follow_the_advance_protocol() {
    let mut h = Harness::new();
    let (_, table) = h.table_id("thing");
    h.insert(table, &row(0, 7, "a"));
    h.insert(table, &row(0, 7, "b"));
    let both = [row(1, 7, "a"), row(2, 7, "b")].concat();

    let code = h.call::<_, i32>("datastore_table_scan_bsatn", (table as i32, OUT as i32));
    assert_eq!(code, 0);
    let iter = h.u32_at(OUT);
    assert_ne!(iter, 0, "iterator handles are never 0");
    // Too small: BUFFER_TOO_SMALL with the size of the next chunk.
    assert_eq!(h.advance(iter, 8), (11, both.len() as u32, vec![]));
    let (code, _, bytes) = h.advance(iter, 4096);
    assert_eq!(code, -1, "exhausted in the same call");
    let mut rows = [bytes[..15].to_vec(), bytes[15..].to_vec()];
    rows.sort();
    assert_eq!(rows.concat(), both);
    assert_eq!(h.advance(iter, 4096).0, 6, "destroyed after -1");
    assert_eq!(h.call::<_, i32>("row_iter_bsatn_close", iter as i32), 6);
    assert_eq!(h.advance(0, 4096).0, 6, "handle 0 is invalid");

    // An empty result: -1 with no bytes on the first advance.
    let hash = h.index_id("thing_bucket_idx_hash");
    h.write(NAME, &99u16.to_le_bytes());
    let code = h.call::<_, i32>(
        "datastore_index_scan_point_bsatn",
        (hash as i32, NAME as i32, 2, OUT as i32),
    );
    assert_eq!(code, 0);
    assert_eq!(h.advance(h.u32_at(OUT), 4096), (-1, 0, vec![]));

    // Point scan on the hash index finds both rows; close works once.
    h.write(NAME, &7u16.to_le_bytes());
    h.call::<_, i32>(
        "datastore_index_scan_point_bsatn",
        (hash as i32, NAME as i32, 2, OUT as i32),
    );
    let iter = h.u32_at(OUT);
    assert_eq!(h.call::<_, i32>("row_iter_bsatn_close", iter as i32), 0);
    assert_eq!(h.call::<_, i32>("row_iter_bsatn_close", iter as i32), 6);
    // Trailing bytes in a point key: BSATN_DECODE_ERROR.
    let code = h.call::<_, i32>(
        "datastore_index_scan_point_bsatn",
        (hash as i32, NAME as i32, 3, OUT as i32),
    );
    assert_eq!(code, 3);
}

#[test]
fn ranges_updates_and_deletes() {
    let mut h = Harness::new();
    let (_, table) = h.table_id("thing");
    for name in ["a", "b", "c"] {
        h.insert(table, &row(0, 7, name));
    }
    let pk = h.index_id("thing_id_idx_btree");
    let hash = h.index_id("thing_bucket_idx_hash");
    // Unbounded (tag 2) on both sides; prefix pointer is garbage with 0 elems.
    h.write(NAME, &[2]);
    let range = |index: u32| {
        (
            index as i32,
            -12345,
            77,
            0,
            NAME as i32,
            1,
            NAME as i32,
            1,
            OUT as i32,
        )
    };
    assert_eq!(
        h.call::<_, i32>("datastore_index_scan_range_bsatn", range(hash)),
        10,
        "WRONG_INDEX_ALGO on a hash index"
    );
    assert_eq!(
        h.call::<_, i32>("datastore_index_scan_range_bsatn", range(pk)),
        0
    );
    let (code, len, _) = h.advance(h.u32_at(OUT), 4096);
    assert_eq!((code, len), (-1, 45));
    assert!(
        h.try_call::<_, i32>(
            "datastore_index_scan_range_bsatn",
            (
                pk as i32,
                NAME as i32,
                1,
                70_000,
                NAME as i32,
                1,
                NAME as i32,
                1,
                OUT as i32
            )
        )
        .is_err(),
        "prefix_elems beyond u16 traps"
    );

    // Update through the primary key.
    let new = row(2, 9, "B");
    h.write(BUF, &new);
    h.write(LEN, &(new.len() as u32).to_le_bytes());
    let update = |index: u32| (table as i32, index as i32, BUF as i32, LEN as i32);
    assert_eq!(h.call::<_, i32>("datastore_update_bsatn", update(pk)), 0);
    assert_eq!(h.u32_at(LEN), 0, "nothing generated");
    h.write(LEN, &(new.len() as u32).to_le_bytes());
    assert_eq!(h.call::<_, i32>("datastore_update_bsatn", update(hash)), 14);
    let ghost = row(99, 1, "g");
    h.write(BUF, &ghost);
    h.write(LEN, &(ghost.len() as u32).to_le_bytes());
    assert_eq!(h.call::<_, i32>("datastore_update_bsatn", update(pk)), 15);

    // Delete by value: an array of one present and one absent row.
    let mut array = 2u32.to_le_bytes().to_vec();
    array.extend(row(2, 9, "B"));
    array.extend(row(2, 7, "b"));
    h.write(BUF, &array);
    let code = h.call::<_, i32>(
        "datastore_delete_all_by_eq_bsatn",
        (table as i32, BUF as i32, array.len() as i32, OUT as i32),
    );
    assert_eq!((code, h.u32_at(OUT)), (0, 1));

    // Point delete on the pk: count as u32.
    h.write(NAME, &1u64.to_le_bytes());
    h.write(OUT, &[0xaa; 8]);
    let code = h.call::<_, i32>(
        "datastore_delete_by_index_scan_point_bsatn",
        (pk as i32, NAME as i32, 8, OUT as i32),
    );
    assert_eq!((code, h.u32_at(OUT)), (0, 1));
    assert_eq!(h.read(OUT + 4, 4), [0xaa; 4], "the count is a u32");

    // Clear: count as u64.
    let code = h.call::<_, i32>("datastore_clear", (table as i32, OUT as i32));
    assert_eq!((code, h.u64_at(OUT)), (0, 1));
    let code = h.call::<_, i32>("datastore_table_row_count", (table as i32, OUT as i32));
    assert_eq!((code, h.u64_at(OUT)), (0, 0));
    // The writes were never committed: the database still has no rows.
    drop(h.store.data_mut().tx.take());
    assert_eq!(
        h.db.read()
            .unwrap()
            .row_count(storage::TableId(table))
            .unwrap(),
        0
    );
}

#[test]
fn bytes_sources_and_missing_transactions() {
    let mut h = Harness::new();
    let source = h.store.data_mut().new_source(b"hello".to_vec());
    assert_ne!(source, 0);
    let remaining = |h: &mut Harness| {
        let code = h.call::<_, i32>("bytes_source_remaining_length", (source as i32, OUT as i32));
        (code, h.u32_at(OUT))
    };
    assert_eq!(remaining(&mut h), (0, 5));
    let read = |h: &mut Harness, cap: u32| {
        h.write(LEN, &cap.to_le_bytes());
        let code = h.call::<_, i32>("bytes_source_read", (source as i32, BUF as i32, LEN as i32));
        let len = h.u32_at(LEN) as usize;
        (code, h.read(BUF, len))
    };
    assert_eq!(read(&mut h, 3), (0, b"hel".to_vec()));
    assert_eq!(remaining(&mut h), (0, 2));
    assert_eq!(read(&mut h, 10), (-1, b"lo".to_vec()));
    assert_eq!(remaining(&mut h).0, 8, "destroyed after -1");
    h.write(LEN, &10u32.to_le_bytes());
    assert_eq!(
        h.call::<_, i32>("bytes_source_read", (source as i32, BUF as i32, LEN as i32)),
        8
    );
    assert_eq!(
        h.call::<_, i32>("bytes_source_read", (0, BUF as i32, LEN as i32)),
        8
    );

    // get_jwt in a transaction: no JWT is known, so source 0.
    h.write(OUT, &[0xaa; 4]);
    assert_eq!(h.call::<_, i32>("get_jwt", (NAME as i32, OUT as i32)), 0);
    assert_eq!(h.u32_at(OUT), 0);

    // Without a transaction every datastore import answers NOT_IN_TRANSACTION.
    drop(h.store.data_mut().tx.take());
    assert_eq!(h.table_id("thing").0, 2);
    assert_eq!(h.call::<_, i32>("get_jwt", (NAME as i32, OUT as i32)), 2);
    assert_eq!(
        h.call::<_, i32>("datastore_table_row_count", (1, OUT as i32)),
        2
    );
    assert_eq!(h.insert(1, &row(0, 1, "x")).0, 2);
}
