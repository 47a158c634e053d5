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

/// Largest linear memory one WebAssembly instance may grow to, in bytes. The
/// host's instance pool sizes its memory slots to this; per-call budgets
/// choose a value at or below it.
pub const WASM_MEMORY_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Linear memory an instance may grow to when its plan says nothing else.
pub const WASM_MEMORY_BYTES_DEFAULT: u64 = 512 * 1024 * 1024;

/// Size of one WebAssembly page; linear memories grow in whole pages.
pub const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// Virtual address space reserved for each pooled linear memory, in bytes
/// (wasmtime's default on 64-bit hosts: all of a 32-bit address space, so
/// bounds checks are done by guard pages rather than by code).
pub const WASM_MEMORY_RESERVATION_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Guard region after each pooled linear memory, in bytes.
pub const WASM_MEMORY_GUARD_BYTES: u64 = 32 * 1024 * 1024;

/// WebAssembly instances alive at once in one host process: the size of the
/// instance pool (core instances, linear memories and tables alike).
/// Instantiating one more fails with an error until one is dropped.
pub const WASM_INSTANCES_POOLED_MAX: u32 = 1000;

/// Elements of one WebAssembly table (function references), per instance.
pub const WASM_TABLE_ELEMENTS_MAX: u32 = 32 * 1024;

/// Bytes of wasmtime's per-instance metadata (`VMContext`) one instance may
/// need; grows with the numbers of functions, globals and types of a module.
pub const WASM_CORE_INSTANCE_BYTES_MAX: u64 = 1024 * 1024;

/// Bytes of compiled code kept in the in-memory module cache by default.
pub const COMPILED_MODULES_CACHE_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;

const _: () = assert!(ROW_BYTES_MAX < COMMITLOG_RECORD_BYTES_MAX);
// A segment is sealed when it reaches its size, but one record may overshoot:
// the largest record must still be readable as one allocation.
const _: () = assert!(COMMITLOG_RECORD_BYTES_MAX <= u32::MAX as u64);

// A module must be able to hold the largest row it may write in its memory.
const _: () = assert!(ROW_BYTES_MAX < WASM_MEMORY_BYTES_DEFAULT);
const _: () = assert!(WASM_MEMORY_BYTES_DEFAULT <= WASM_MEMORY_BYTES_MAX);
// Memories grow in whole pages, so the caps are whole pages.
const _: () = assert!(WASM_MEMORY_BYTES_MAX.is_multiple_of(WASM_PAGE_BYTES));
const _: () = assert!(WASM_MEMORY_BYTES_DEFAULT.is_multiple_of(WASM_PAGE_BYTES));
// A pooled memory never grows past its reservation (wasmtime refuses a
// larger maximum), and a 32-bit memory cannot address more than 4 GiB.
const _: () = assert!(WASM_MEMORY_BYTES_MAX <= WASM_MEMORY_RESERVATION_BYTES);
const _: () = assert!(WASM_MEMORY_RESERVATION_BYTES <= 4 * 1024 * 1024 * 1024);
// The pool's memory slots (reservation plus a guard on each side) fit in an
// eighth of a 47-bit (128 TiB) user address space, leaving room for a few
// test processes and everything else the process maps.
const _: () = assert!(
    WASM_INSTANCES_POOLED_MAX as u64
        * (WASM_MEMORY_RESERVATION_BYTES + 2 * WASM_MEMORY_GUARD_BYTES)
        <= (128u64 << 40) / 8
);
// Table slots are pointer-sized and committed as an accessible mapping: keep
// the whole table pool under 1 GiB.
const _: () = assert!(
    WASM_INSTANCES_POOLED_MAX as u64 * WASM_TABLE_ELEMENTS_MAX as u64 * 8 <= 1024 * 1024 * 1024
);
// So is the metadata pool.
const _: () =
    assert!(WASM_INSTANCES_POOLED_MAX as u64 * WASM_CORE_INSTANCE_BYTES_MAX <= 1024 * 1024 * 1024);

// --- Snapshot policy (issue 12, "Nothing takes snapshots") ---

/// Committed transactions since the last snapshot after which a database
/// takes the next one in the background. A restart replays at most about
/// this many records (plus the ones committed while that snapshot ran).
pub const SNAPSHOT_EVERY_TXS_DEFAULT: u64 = 100_000;

/// Bytes of commit-log payload since the last snapshot after which a database
/// takes the next one, whichever of this and [`SNAPSHOT_EVERY_TXS_DEFAULT`]
/// comes first: it bounds replay time when records are large.
pub const SNAPSHOT_EVERY_LOG_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

/// Threads of one process that take background snapshots (shared by every
/// database; each encodes and writes one snapshot at a time).
pub const SNAPSHOT_THREADS_DEFAULT: usize = 1;

/// Databases waiting for a background snapshot thread; one more request is
/// dropped (and asked again by the database's next commit).
pub const SNAPSHOT_QUEUE_DATABASES_MAX: usize = 4096;

// A snapshot that cannot be kept could not be recovered from.
const _: () = assert!(SNAPSHOT_RETAIN_DEFAULT >= 1);
const _: () = assert!(SNAPSHOT_EVERY_TXS_DEFAULT > 0 && SNAPSHOT_EVERY_LOG_BYTES_DEFAULT > 0);
const _: () = assert!(SNAPSHOT_THREADS_DEFAULT >= 1 && SNAPSHOT_QUEUE_DATABASES_MAX >= 1);
// The log the kept snapshots need (one interval each) fits in one segment, so
// segment removal keeps the log on disk at about two segments.
const _: () = assert!(
    SNAPSHOT_EVERY_LOG_BYTES_DEFAULT * SNAPSHOT_RETAIN_DEFAULT as u64
        <= COMMITLOG_SEGMENT_BYTES_DEFAULT
);
