//! Typed errors of the storage engine, one enum per family of operations.
//!
//! Owns: [`SchemaError`], [`TxError`], [`CommitError`], [`OpenError`], [`TakeSnapshotError`].
//! Each variant carries the names and ids needed to debug it; none wraps an
//! opaque catch-all. The commit-log and snapshot modules define their own.

use spacetimedb_primitives::{IndexId, TableId};

use crate::commitlog;
use crate::snapshot;

/// A table definition that cannot be created.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("table `{table}`: {reason}")]
    Invalid { table: String, reason: String },
    #[error("a table named `{name}` already exists")]
    TableExists { name: String },
    #[error("too many tables: at most {max}")]
    TooManyTables { max: u32 },
}

/// A failed operation inside a transaction. The transaction stays usable:
/// the failed operation left no effect.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TxError {
    #[error("no table with id {0}")]
    NoSuchTable(TableId),
    #[error("no index with id {0}")]
    NoSuchIndex(IndexId),
    #[error("index `{index}` is a hash index and cannot serve a range scan")]
    WrongIndexAlgorithm { index: String },
    #[error("could not decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("row does not match table `{table}`: {reason}")]
    RowType { table: String, reason: String },
    #[error(
        "unique constraint `{constraint}` on table `{table}` violated: a row with key {key} exists"
    )]
    UniqueViolation {
        table: String,
        constraint: String,
        key: String,
    },
    #[error("sequence `{sequence}` of table `{table}` is exhausted (maximum {max})")]
    AutoIncOverflow {
        table: String,
        sequence: String,
        max: i128,
    },
    #[error("index `{index}` is not unique")]
    IndexNotUnique { index: String },
    #[error("table `{table}` has no row with that key in index `{index}`")]
    NoSuchRow { table: String, index: String },
    /// Two copies of a database whose tables differ (an in-place restore
    /// across a schema change).
    #[error("table `{table}` cannot be restored in place: {reason}")]
    NotComparable { table: String, reason: String },
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// Why a database refuses to start a write transaction or to commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A write or fsync of the commit log failed earlier. The database refuses
    /// writes until it is reopened from its durable state (never retry an fsync).
    #[error("database refuses writes after a commit-log failure; reopen it: {0}")]
    LogFailed(String),
    /// A panic inside the engine left the in-memory state suspect.
    #[error("database is poisoned by an earlier panic; reopen it")]
    Poisoned,
    /// The pre-commit hook refused the transaction, which was rolled back.
    #[error("the transaction was rolled back before commit: {0}")]
    Refused(String),
}

/// Why a database could not be opened (recovered).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("commit log: {0}")]
    CommitLog(#[from] commitlog::OpenError),
    /// Boxed: snapshot errors carry two hashes and would bloat every `Result`.
    #[error("snapshot store: {0}")]
    Snapshot(Box<snapshot::SnapshotError>),
    #[error("commit-log record at offset {offset} is unreadable: {reason}")]
    Record { offset: u64, reason: String },
    #[error("the commit log starts at offset {log_start} but recovery needs offset {needed} (no snapshot covers the gap)")]
    Gap { needed: u64, log_start: u64 },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a snapshot could not be taken. The database keeps serving either way.
#[derive(Debug, thiserror::Error)]
pub enum TakeSnapshotError {
    #[error(transparent)]
    Snapshot(Box<snapshot::SnapshotError>),
    #[error("offset {offset} never became durable: {reason}")]
    NotDurable { offset: u64, reason: String },
    #[error("dropping old commit-log segments: {0}")]
    Log(String),
}

impl From<snapshot::SnapshotError> for OpenError {
    fn from(error: snapshot::SnapshotError) -> OpenError {
        OpenError::Snapshot(Box::new(error))
    }
}

impl From<snapshot::SnapshotError> for TakeSnapshotError {
    fn from(error: snapshot::SnapshotError) -> TakeSnapshotError {
        TakeSnapshotError::Snapshot(Box::new(error))
    }
}
