//! Hard ceilings, in one place, with units in their names.
//!
//! Plans (in `billing`) choose per-tenant values below these; the ceilings never
//! come from a database or a request. Relations between limits are checked at
//! compile time below.

/// Largest row a table accepts, in BSATN bytes.
pub const ROW_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Largest commit-log record (one transaction) in bytes.
pub const COMMITLOG_RECORD_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Size at which the commit log seals a segment and starts the next one.
pub const COMMITLOG_SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Transactions queued for the group-commit thread before appenders wait.
pub const COMMITLOG_QUEUE_TXS_MAX: usize = 64 * 1024;

/// Snapshots kept per database by default (older ones are deleted).
pub const SNAPSHOT_RETAIN_DEFAULT: usize = 3;

/// Tables per database.
pub const TABLES_PER_DATABASE_MAX: u32 = 4096;

/// Indexes per table.
pub const INDEXES_PER_TABLE_MAX: u32 = 64;

const _: () = assert!(ROW_BYTES_MAX < COMMITLOG_RECORD_BYTES_MAX);
// A segment is sealed when it reaches its size, but one record may overshoot:
// the largest record must still be readable as one allocation.
const _: () = assert!(COMMITLOG_RECORD_BYTES_MAX <= u32::MAX as u64);
