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

// ---------------------------------------------------------------- calls

/// Wasm fuel (about one unit per instruction) one call may burn by default:
/// a few seconds of CPU.
pub const FUEL_PER_CALL_DEFAULT: u64 = 4_000_000_000;

/// Wall-clock limit of one reducer or view call by default, in ms.
pub const CALL_DEADLINE_MS_DEFAULT: u64 = 10_000;

/// Wall-clock limit of one procedure call by default (sleeps and HTTP waits
/// included), in ms.
pub const PROCEDURE_DEADLINE_MS_DEFAULT: u64 = 60_000;

/// Wall-clock limit of a module's set-up (`__preinit__*`, `__setup__`,
/// `__describe_module__`), in ms.
pub const MODULE_SETUP_MS_MAX: u64 = 10_000;

/// Largest argument payload (BSATN bytes) one call accepts by default.
pub const CALL_ARGS_BYTES_DEFAULT: u64 = 4 * 1024 * 1024;

/// Log records one call may write; later ones are counted and dropped.
pub const LOG_RECORDS_PER_CALL_MAX: usize = 10_000;

/// Bytes of one log message a module writes; longer ones are cut.
pub const LOG_MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// Bytes a module may write into one sink (its description, an error
/// message, a procedure's return value).
pub const GUEST_SINK_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Body of one outbound HTTP request of a procedure, in bytes.
pub const PROCEDURE_HTTP_REQUEST_BYTES_MAX: usize = 10 * 1024 * 1024;

/// Body of one outbound HTTP response a procedure receives, in bytes.
pub const PROCEDURE_HTTP_RESPONSE_BYTES_MAX: usize = 10 * 1024 * 1024;

/// Longest one outbound HTTP request of a procedure may take, in ms.
pub const PROCEDURE_HTTP_TIMEOUT_MS_MAX: u64 = 10_000;

// ---------------------------------------------------------------- module logs

/// Log entries a database keeps in memory for `logs` and followers.
pub const MODULE_LOG_RING_ENTRIES_MAX: usize = 10_000;

/// Bytes of log entries a database keeps in memory.
pub const MODULE_LOG_RING_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Bytes of one field of a log entry; longer ones are cut with a marker.
pub const MODULE_LOG_FIELD_BYTES_MAX: usize = 64 * 1024;

/// Bytes of `module.log` before it is rotated to `module.log.1`.
pub const MODULE_LOG_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Entries queued for one log follower before it is told it skipped some.
pub const MODULE_LOG_FOLLOW_ENTRIES_MAX: usize = 1024;

// ---------------------------------------------------------------- clients

/// Bytes of a client message payload the server accepts (one WebSocket
/// message, after decompression).
pub const WS_PAYLOAD_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Bytes queued for one client before it is disconnected as too slow.
pub const OUTBOX_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Messages queued for one client before it is disconnected as too slow.
pub const OUTBOX_MESSAGES_MAX: usize = 16_384;

/// Client messages of one connection accepted but not yet answered.
pub const WS_IN_FLIGHT_MESSAGES_MAX: usize = 16_384;

/// Interval between the server's WebSocket pings, in ms.
pub const WS_PING_INTERVAL_MS: u64 = 15_000;

/// Silence after which a WebSocket session ends, in ms.
pub const WS_IDLE_TIMEOUT_MS: u64 = 30_000;

/// Bytes of a bearer token the server reads; longer ones are refused unread.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;

// The largest call a client may send fits in one message, with room for the
// message's own fields.
const _: () = assert!((CALL_ARGS_BYTES_DEFAULT as usize) < WS_PAYLOAD_BYTES_MAX);
// A client that may send a full payload can be answered with one.
const _: () = assert!(WS_PAYLOAD_BYTES_MAX <= OUTBOX_BYTES_MAX);
// A connection can hold an answer to every message it may have in flight.
const _: () = assert!(WS_IN_FLIGHT_MESSAGES_MAX <= OUTBOX_MESSAGES_MAX);
// A silent client gets at least one ping before it is dropped.
const _: () = assert!(WS_PING_INTERVAL_MS < WS_IDLE_TIMEOUT_MS);
// One call's logs and messages fit in the ring that serves `logs`.
const _: () = assert!(LOG_RECORDS_PER_CALL_MAX <= MODULE_LOG_RING_ENTRIES_MAX);
const _: () = assert!(LOG_MESSAGE_BYTES_MAX <= MODULE_LOG_FIELD_BYTES_MAX);
const _: () = assert!(MODULE_LOG_FIELD_BYTES_MAX <= MODULE_LOG_RING_BYTES_MAX);
const _: () = assert!(MODULE_LOG_RING_BYTES_MAX as u64 <= MODULE_LOG_FILE_BYTES_MAX);
// A procedure's HTTP wait is part of its deadline, and a call's deadline
// is part of a procedure's.
const _: () = assert!(PROCEDURE_HTTP_TIMEOUT_MS_MAX <= PROCEDURE_DEADLINE_MS_DEFAULT);
const _: () = assert!(CALL_DEADLINE_MS_DEFAULT <= PROCEDURE_DEADLINE_MS_DEFAULT);
// What a procedure fetches must fit in the guest's memory.
const _: () = assert!((PROCEDURE_HTTP_RESPONSE_BYTES_MAX as u64) < WASM_MEMORY_BYTES_DEFAULT);
const _: () = assert!((GUEST_SINK_BYTES_MAX as u64) < WASM_MEMORY_BYTES_DEFAULT);

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

// --- Procedures on a bounded pool, and names at the edge (issue 12: fuzzing and the NUL-name crash) ---

/// Procedure calls one database may have queued or running at once; one
/// more is refused as overloaded.
pub const PROCEDURES_RUNNING_COUNT_MAX: usize = 16;

/// Threads of the host's procedure pool, shared by every database of the
/// process (started as needed, kept once started). Procedures may sleep or
/// wait on HTTP, so this is well above the core count.
pub const PROCEDURE_THREADS_COUNT_MAX: usize = 64;

/// Procedure calls waiting for a thread of the pool, across the process;
/// one more is refused as overloaded.
pub const PROCEDURES_QUEUED_COUNT_MAX: usize = 4096;

/// Longest reducer or procedure name a client may send, in bytes; longer
/// names are refused before any lookup.
pub const FUNCTION_NAME_BYTES_MAX: usize = 1024;

// One database cannot take more than a quarter of the procedure threads.
const _: () = assert!(PROCEDURES_RUNNING_COUNT_MAX * 4 <= PROCEDURE_THREADS_COUNT_MAX);
// A full queue holds every database's share many times over.
const _: () = assert!(PROCEDURE_THREADS_COUNT_MAX <= PROCEDURES_QUEUED_COUNT_MAX);
