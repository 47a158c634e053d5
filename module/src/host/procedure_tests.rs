//! Protocol tests of the procedure imports (module-abi §3.4) and of the
//! view read set, driven from a WAT module that re-exports the imports:
//! exact errnos of start/commit/abort, `NOT_IN_TRANSACTION` outside the
//! procedure's transaction, `WOULD_BLOCK_TRANSACTION` for HTTP and sleeping
//! while holding one, the HTTP error payload, a reducer's transaction never
//! touched by commit/abort, and views recording reads and trapping on writes.
//! Owns no production code.

use std::time::{Duration, Instant};

use spacetimedb_sats::{AlgebraicType, ProductType};
use storage::{Database, DbOptions, TableDef, TableId};
use wasmtime::{Engine, Instance, Linker, Memory, Store, WasmParams, WasmResults};

use super::{link, HostEnv, HttpPolicy, ProcedureCall};

const IMPORTS: &[(&str, &str, &str)] = &[
    (
        "spacetime_10.0",
        "table_id_from_name",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_table_row_count",
        "(param i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "datastore_insert_bsatn",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.0",
        "bytes_source_read",
        "(param i32 i32 i32) (result i32)",
    ),
    (
        "spacetime_10.3",
        "procedure_sleep_until",
        "(param i64) (result i64)",
    ),
    (
        "spacetime_10.3",
        "procedure_start_mut_tx",
        "(param i32) (result i32)",
    ),
    ("spacetime_10.3", "procedure_commit_mut_tx", "(result i32)"),
    ("spacetime_10.3", "procedure_abort_mut_tx", "(result i32)"),
    (
        "spacetime_10.3",
        "procedure_http_request",
        "(param i32 i32 i32 i32 i32) (result i32)",
    ),
];

/// Scratch addresses in guest memory.
const NAME: usize = 100;
const OUT: usize = 200;
const LEN: usize = 216;
const BUF: usize = 1000;

struct Harness {
    store: Store<HostEnv>,
    instance: Instance,
    memory: Memory,
    db: Database,
    table: u32,
}

impl Harness {
    /// A database with table `thing(id: u64)`; no transaction, no procedure.
    fn new() -> Harness {
        let db = Database::in_memory(DbOptions::default());
        let mut tx = db.begin().unwrap();
        let table = tx
            .create_table(TableDef {
                name: "thing".into(),
                columns: ProductType::from([("id", AlgebraicType::U64)]),
                primary_key: None,
                indexes: vec![],
                unique_constraints: vec![],
                sequences: vec![],
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
        let mut store = Store::new(&engine, HostEnv::default());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        store.data_mut().memory = Some(memory);
        Harness {
            store,
            instance,
            memory,
            db,
            table: table.0,
        }
    }

    /// Marks the store as running a procedure on the harness database.
    fn in_procedure(mut self, http: HttpPolicy) -> Harness {
        self.store.data_mut().procedure = Some(ProcedureCall {
            db: self.db.clone(),
            deadline: Instant::now() + Duration::from_secs(10),
            http,
            commits: Vec::new(),
        });
        self
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

    fn table_id(&mut self) -> i32 {
        self.write(NAME, b"thing");
        self.call::<_, i32>("table_id_from_name", (NAME as i32, 5, OUT as i32))
    }

    fn insert(&mut self, id: u64) -> wasmtime::Result<i32> {
        self.write(BUF, &id.to_le_bytes());
        self.write(LEN, &8u32.to_le_bytes());
        self.try_call::<_, i32>(
            "datastore_insert_bsatn",
            (self.table as i32, BUF as i32, LEN as i32),
        )
    }

    fn start(&mut self) -> i32 {
        self.call::<_, i32>("procedure_start_mut_tx", OUT as i32)
    }

    fn commit(&mut self) -> i32 {
        self.call::<_, i32>("procedure_commit_mut_tx", ())
    }

    fn abort(&mut self) -> i32 {
        self.call::<_, i32>("procedure_abort_mut_tx", ())
    }

    /// `procedure_http_request` with `request` at `BUF` and an empty body.
    fn http(&mut self, request: &[u8]) -> wasmtime::Result<i32> {
        self.write(BUF, request);
        self.write(OUT, &[0xee; 8]);
        self.try_call::<_, i32>(
            "procedure_http_request",
            (BUF as i32, request.len() as i32, BUF as i32, 0, OUT as i32),
        )
    }

    /// Everything left in bytes source `source`.
    fn drain(&mut self, source: u32) -> Vec<u8> {
        self.write(LEN, &4096u32.to_le_bytes());
        let code = self.call::<_, i32>(
            "bytes_source_read",
            (source as i32, (BUF + 100) as i32, LEN as i32),
        );
        assert_eq!(code, -1, "the source holds more than 4096 bytes");
        let len = self.u32_at(LEN) as usize;
        self.read(BUF + 100, len)
    }

    fn committed_rows(&self) -> u64 {
        self.db
            .read()
            .unwrap()
            .row_count(TableId(self.table))
            .unwrap()
    }
}

/// BSATN `spacetimedb_lib::http::Request` for a GET of `uri`.
fn get_request(uri: &str) -> Vec<u8> {
    let mut bytes = vec![0]; // Method::Get
    bytes.extend_from_slice(&0u32.to_le_bytes()); // no headers
    bytes.push(1); // timeout: None
    bytes.extend_from_slice(&(uri.len() as u32).to_le_bytes());
    bytes.extend_from_slice(uri.as_bytes());
    bytes.push(2); // Version::Http11
    bytes
}

#[test]
fn procedure_transactions_follow_the_errno_protocol() {
    let mut h = Harness::new().in_procedure(HttpPolicy::default());
    // No implicit transaction.
    assert_eq!(h.table_id(), 2, "NOT_IN_TRANSACTION");
    assert_eq!(h.insert(1).unwrap(), 2);
    assert_eq!(h.commit(), 18, "TRANSACTION_NOT_ANONYMOUS");
    assert_eq!(h.abort(), 18);

    let before = super::wall_clock_micros();
    assert_eq!(h.start(), 0);
    let timestamp = i64::from_le_bytes(h.read(OUT, 8).try_into().unwrap());
    assert!(timestamp >= before && timestamp <= super::wall_clock_micros());
    assert_eq!(h.start(), 17, "WOULD_BLOCK_TRANSACTION");
    assert_eq!(h.http(&get_request("http://example.invalid/")).unwrap(), 17);
    assert_eq!(h.read(OUT, 8), [0xee; 8], "out untouched");
    let error = h
        .try_call::<_, i64>("procedure_sleep_until", 0i64)
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("WOULD_BLOCK_TRANSACTION"),
        "{error:#}"
    );

    assert_eq!(h.table_id(), 0);
    assert_eq!(h.insert(1).unwrap(), 0);
    assert_eq!(h.commit(), 0);
    assert_eq!(h.committed_rows(), 1);
    assert_eq!(h.commit(), 18, "nothing left to commit");

    assert_eq!(h.start(), 0);
    assert_eq!(h.insert(2).unwrap(), 0);
    assert_eq!(h.abort(), 0);
    assert_eq!(h.committed_rows(), 1);
    assert_eq!(h.abort(), 18);

    let commits = &h.store.data().procedure.as_ref().unwrap().commits;
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].tables[0].inserts.len(), 1);

    // Without a transaction sleeping works and returns the time after waking.
    let wake = super::wall_clock_micros() + 20_000;
    let woke = h.call::<_, i64>("procedure_sleep_until", wake);
    assert!(woke >= wake, "{woke} < {wake}");
}

#[test]
fn procedure_imports_outside_a_procedure() {
    let mut h = Harness::new();
    // A reducer's transaction: commit and abort refuse and leave it alone.
    h.store.data_mut().tx = Some(h.db.begin().unwrap());
    assert_eq!(h.commit(), 18);
    assert_eq!(h.abort(), 18);
    assert!(h.store.data().tx.is_some());
    assert_eq!(h.insert(5).unwrap(), 0);
    for error in [
        h.try_call::<_, i32>("procedure_start_mut_tx", OUT as i32)
            .unwrap_err(),
        h.try_call::<_, i64>("procedure_sleep_until", 0i64)
            .unwrap_err(),
        h.http(&get_request("http://example.invalid/")).unwrap_err(),
    ] {
        assert!(
            format!("{error:#}").contains("outside a procedure"),
            "{error:#}"
        );
    }
    h.store.data_mut().tx.take().unwrap().commit().unwrap();
    assert_eq!(h.committed_rows(), 1);
}

#[test]
fn http_errors_and_bad_requests() {
    let mut h = Harness::new().in_procedure(HttpPolicy::default());
    assert_eq!(h.http(&[0xff, 1, 2]).unwrap(), 3, "BSATN_DECODE_ERROR");
    assert_eq!(h.read(OUT, 8), [0xee; 8], "out untouched");

    assert_eq!(
        h.http(&get_request("http://127.0.0.1:9/?key=secret"))
            .unwrap(),
        21,
        "HTTP_ERROR"
    );
    let source = h.u32_at(OUT);
    assert_ne!(source, 0);
    assert_eq!(h.u32_at(OUT + 4), 0xeeee_eeee, "body slot untouched");
    let message: String = spacetimedb_lib::bsatn::from_slice(&h.drain(source)).unwrap();
    assert!(message.contains("egress policy"), "{message}");
    assert!(message.starts_with("GET http://127.0.0.1:9/"), "{message}");
    assert!(!message.contains("secret"), "{message}");

    assert_eq!(
        h.http(&get_request("file:///etc/passwd")).unwrap(),
        21,
        "only http and https"
    );
}

#[test]
fn views_record_reads_and_cannot_write() {
    let mut h = Harness::new();
    h.store.data_mut().tx = Some(h.db.begin().unwrap());
    h.store.data_mut().view_reads = Some(crate::instance::ViewReads::default());
    assert_eq!(
        h.call::<_, i32>("datastore_table_row_count", (h.table as i32, OUT as i32)),
        0
    );
    assert_eq!(
        h.store.data().view_reads,
        Some(crate::instance::ViewReads::of_tables([TableId(h.table)]))
    );
    let error = h.insert(1).unwrap_err();
    assert!(format!("{error:#}").contains("read-only"), "{error:#}");
    h.store.data_mut().tx.take().unwrap().rollback();
    assert_eq!(h.committed_rows(), 0);
}
