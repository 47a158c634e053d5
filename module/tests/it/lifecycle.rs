// Protects the all-or-nothing database creation of module-abi §8.7: the
// tables and the `init` reducer run in one transaction, so an `init` that
// returns an error or traps leaves no table behind, and one that returns 0
// commits the tables. Uses a WAT module that describes itself with a
// definition built by the upstream builder, so the outcome is exact.

use orrery_module::{ReducerOutcome, Runtime};
use spacetimedb_lib::db::raw_def::v10::RawModuleDefV10Builder;
use spacetimedb_lib::db::raw_def::v9::Lifecycle;
use spacetimedb_lib::RawModuleDef;
use spacetimedb_sats::{AlgebraicType, ProductType};
use storage::{Database, DbOptions};

use crate::harness::{options, NOW, OWNER};

/// One table `thing(id: u32)` and an `init` reducer.
fn description() -> Vec<u8> {
    let mut b = RawModuleDefV10Builder::new();
    b.build_table_with_new_type(
        "thing",
        ProductType::from([("id", AlgebraicType::U32)]),
        true,
    )
    .finish();
    b.add_lifecycle_reducer(Lifecycle::Init, "init", ProductType::unit());
    spacetimedb_lib::bsatn::to_vec(&RawModuleDef::V10(b.finish())).unwrap()
}

/// A module whose `__call_reducer__` runs `body` (which must leave an i32).
pub(crate) fn module(body: &str) -> Vec<u8> {
    let description = description();
    let escaped: String = description.iter().map(|b| format!("\\{b:02x}")).collect();
    let text = format!(
        r#"(module
            (import "spacetime_10.0" "bytes_sink_write" (func $sink_write (param i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 1024) "{escaped}")
            (data (i32.const 512) "init said no")
            (func (export "__describe_module__") (param $sink i32)
              (i32.store (i32.const 8) (i32.const {len}))
              (drop (call $sink_write (local.get $sink) (i32.const 1024) (i32.const 8))))
            (func (export "__call_reducer__")
              (param $id i32) (param i64 i64 i64 i64 i64 i64 i64) (param $args i32) (param $err i32)
              (result i32)
              {body}))"#,
        len = description.len()
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad test WAT: {e}"))
}

fn create(body: &str) -> (ReducerOutcome, Database) {
    let module = Runtime::new()
        .unwrap()
        .host(&module(body), options())
        .unwrap_or_else(|e| panic!("cannot host: {e}"));
    assert_eq!(module.def().lifecycle.init, Some(0));
    let db = Database::in_memory(DbOptions::default());
    let result = module.create_database(&db, OWNER, NOW);
    (result.outcome, db)
}

fn has_table(db: &Database) -> bool {
    db.read().unwrap().table_id_from_name("thing").is_some()
}

#[test]
fn init_success_commits_the_tables() {
    let (outcome, db) = create("(i32.const 0)");
    let ReducerOutcome::Committed { delta } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(delta.created_tables.len(), 1);
    assert!(has_table(&db));
}

#[test]
fn init_error_creates_nothing() {
    let (outcome, db) = create(
        r#"(i32.store (i32.const 16) (i32.const 12))
           (drop (call $sink_write (local.get $err) (i32.const 512) (i32.const 16)))
           (i32.const 1)"#,
    );
    match outcome {
        ReducerOutcome::Failed { message } => assert_eq!(message, "init said no"),
        other => panic!("{other:?}"),
    }
    assert!(!has_table(&db));
}

#[test]
fn init_trap_creates_nothing() {
    let (outcome, db) = create("(unreachable)");
    assert!(
        matches!(outcome, ReducerOutcome::Trapped { .. }),
        "{outcome:?}"
    );
    assert!(!has_table(&db));
}

#[test]
fn init_with_unexpected_code_creates_nothing() {
    let (outcome, db) = create("(i32.const 7)");
    assert!(
        matches!(outcome, ReducerOutcome::Internal { .. }),
        "{outcome:?}"
    );
    assert!(!has_table(&db));
}
