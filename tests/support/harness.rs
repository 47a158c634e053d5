//! Shared by the reducer-call tests: hosting a test module with a fresh
//! database, encoding arguments, reading rows back, and readable assertions
//! on outcomes. Owns no test of its own.

#![allow(dead_code)]

use orrery_module::{
    CallOptions, CallResult, CallerContext, HostedModule, ReducerOutcome, Runtime,
};
use spacetimedb_lib::{ConnectionId, Identity};
use spacetimedb_sats::{AlgebraicValue, Serialize};
use storage::{Database, DbOptions};

use crate::modules::module_bytes;

/// The owner who publishes the test databases.
pub(crate) const OWNER: Identity = Identity::from_byte_array([0x11; 32]);
/// The database identity the `identity` import answers.
pub(crate) const DATABASE: Identity = Identity::from_byte_array([0xdb; 32]);
/// A fixed call time: 2026-01-01T00:00:00Z in microseconds.
pub(crate) const NOW: i64 = 1_767_225_600_000_000;

pub(crate) fn options() -> CallOptions {
    CallOptions {
        database_identity: DATABASE,
        ..CallOptions::default()
    }
}

/// Hosts test module `name` with `options`.
pub(crate) fn host_with(name: &str, options: CallOptions) -> HostedModule {
    Runtime::new()
        .unwrap()
        .host(&module_bytes(name), options)
        .unwrap_or_else(|e| panic!("module {name} cannot be hosted: {e}"))
}

/// Hosts test module `name` and creates its database in memory (tables and `init`).
pub(crate) fn hosted(name: &str, options: CallOptions) -> (HostedModule, Database) {
    let module = host_with(name, options);
    let db = Database::in_memory(DbOptions::default());
    let created = module.create_database(&db, OWNER, NOW);
    assert_committed(&created, &format!("create_database({name})"));
    (module, db)
}

/// A caller without a connection.
pub(crate) fn caller(sender: Identity) -> CallerContext {
    CallerContext {
        sender,
        connection_id: ConnectionId::ZERO,
        timestamp_micros: NOW,
    }
}

/// BSATN of one value.
pub(crate) fn enc<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    spacetimedb_sats::bsatn::to_vec(value).expect("test values encode")
}

/// The argument product: the BSATN of each argument, back to back.
pub(crate) fn args(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Calls reducer `name` as the owner without a connection.
pub(crate) fn call(module: &HostedModule, db: &Database, name: &str, args: &[u8]) -> CallResult {
    module.call_reducer(db, name, caller(OWNER), args)
}

pub(crate) fn assert_committed(result: &CallResult, what: &str) {
    assert!(
        result.outcome.is_committed(),
        "{what} did not commit: {:?}\nlogs: {:#?}",
        result.outcome,
        result.logs
    );
}

/// Asserts the call failed with exactly `message` (the reducer's `Err`).
pub(crate) fn assert_failed(result: &CallResult, message: &str) {
    match &result.outcome {
        ReducerOutcome::Failed { message: got } => assert_eq!(got, message),
        other => panic!("expected Failed({message:?}), got {other:?}"),
    }
}

/// Every row of the table with canonical name `table`, sorted.
pub(crate) fn rows(db: &Database, table: &str) -> Vec<Vec<AlgebraicValue>> {
    let read = db.read().unwrap();
    let id = read
        .table_id_from_name(table)
        .unwrap_or_else(|| panic!("no table {table}"));
    let mut rows: Vec<Vec<AlgebraicValue>> =
        read.scan(id).unwrap().map(|row| row.to_vec()).collect();
    rows.sort();
    rows
}
