//! Storage engine of one tenant database: in-memory tables and indexes,
//! serializable transactions, a durable commit log, snapshots and recovery.
//!
//! Owns: everything a database keeps and how it survives a crash; the bytes
//! on the durable media (commit-log segments, snapshot blobs) are written and
//! read by the `durable` crate, re-exported here as [`commitlog`],
//! [`snapshot`] and [`clock`].
//! Does not own: WebAssembly, clients, or who owns a database; those live in
//! tenant-host and control-plane. Rows are sats `AlgebraicValue`s typed by a
//! table's `ProductType`, so module-defined types map one to one.
//!
//! Start with [`Database::open`] (or [`Database::in_memory`]), then
//! [`Database::begin`] → [`MutTx`] → [`MutTx::commit`] → [`TxDelta`], and
//! [`Database::wait_durable`]. Design notes: docs/design/commitlog.md and
//! docs/design/snapshot.md.
//!
//! Invariant: a transaction reported durable survives any crash; nothing of a
//! transaction that was not committed is ever visible after recovery.

mod db;
pub mod error;
mod record;
pub mod schema;
pub mod snapshotter;
mod state;
mod table;
mod tx;
pub mod value;

pub use db::{
    CommitObserver, Database, DbOptions, DbStorage, DurableElsewhere, PreCommit, ReadTx,
    RecoveryReport,
};
pub use error::{CommitError, OpenError, SchemaError, TakeSnapshotError, TxError};
pub use record::commit_micros as record_commit_micros;
pub use schema::{
    IndexAlgorithm, IndexDef, SequenceDef, TableDef, TableSchema, UniqueConstraintDef,
};
pub use snapshotter::{
    SnapshotEvent, SnapshotListener, SnapshotPolicy, SnapshotStats, Snapshotter,
};
pub use state::{RowsRef, State};
pub use tx::{AlteredTable, InsertOutcome, MutTx, Replaced, TableDelta, TxDelta};
pub use value::{IndexRange, Row};

// The durable media, re-exported so that a database's users name one crate.
pub use durable::{clock, commitlog, snapshot};
pub use orrery_api::TxOffset;
pub use spacetimedb_primitives::{ColId, IndexId, TableId};
