//! Hard ceilings, in one place, with units in their names.
//!
//! Plans (in `billing`) choose per-tenant values below these; the ceilings never
//! come from a database or a request. Relations between limits are checked at
//! compile time below.

// ---------------------------------------------------------------- storage and WebAssembly instances

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

/// Longest point-in-time history a database may keep in the object store,
/// in days (ten years); 0 keeps everything.
pub const RETENTION_DAYS_MAX: u32 = 3650;

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

/// Wasm fuel the set-up calls of one instance (`__preinit__*`, `__setup__`,
/// `__describe_module__`) may burn together: plenty for any real module,
/// finite for a hostile one.
pub const MODULE_SETUP_FUEL_MAX: u64 = 2_000_000_000;

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

// ---------------------------------------------------------------- relations between the limits above

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

// ---------------------------------------------------------------- procedures and function names

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

// ---------------------------------------------------------------- queries, subscriptions and lanes

/// SQL text longer than this is refused before parsing (client-protocol §6.1).
pub const SQL_TEXT_BYTES_MAX: usize = 50_000;

/// How deep WHERE expressions may nest (parentheses, AND, OR).
pub const SQL_EXPR_DEPTH_MAX: usize = 40;

/// Joins in one SELECT (tables after the first, `ON` or not), for everyone.
pub const SQL_JOINS_PER_QUERY_MAX: usize = 8;

/// Rows a non-owner's one-off query (`/sql` SELECT or WebSocket
/// `OneOffQuery`) may examine: every row a scan or an index lookup hands the
/// evaluator is charged as it is produced, so a cross product stops here
/// instead of after materialising. This also bounds how long the query holds
/// the database's read lock while writers wait.
pub const QUERY_ROWS_EXAMINED_MAX: u64 = 1_000_000;

/// Rows the database owner's one-off query may examine.
pub const QUERY_ROWS_EXAMINED_OWNER_MAX: u64 = 10_000_000;

/// Rows a non-owner's one-off query may return.
pub const QUERY_RESULT_ROWS_MAX: u64 = 100_000;

/// Rows the owner's one-off query may return.
pub const QUERY_RESULT_ROWS_OWNER_MAX: u64 = 1_000_000;

/// BSATN bytes of the rows a non-owner's one-off query may return.
pub const QUERY_RESULT_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// BSATN bytes of the rows the owner's one-off query may return.
pub const QUERY_RESULT_BYTES_OWNER_MAX: u64 = 64 * 1024 * 1024;

/// Wall time a non-owner's one-off query may take, in milliseconds (a
/// backstop for rows that are slow to compare; the rows budget usually ends
/// a costly query first).
pub const QUERY_WALL_TIME_MS_MAX: u64 = 1_000;

/// Wall time the owner's one-off query may take, in milliseconds.
pub const QUERY_WALL_TIME_OWNER_MS_MAX: u64 = 10_000;

/// Rows a subscription's initial evaluation may examine, for every caller:
/// whole-table subscriptions are ordinary, so this is the owner's budget.
pub const SUBSCRIPTION_INITIAL_ROWS_EXAMINED_MAX: u64 = QUERY_ROWS_EXAMINED_OWNER_MAX;

/// BSATN bytes of a subscription's initial rows, for every caller.
pub const SUBSCRIPTION_INITIAL_BYTES_MAX: u64 = QUERY_RESULT_BYTES_OWNER_MAX;

/// Wall time of a subscription's initial evaluation, in milliseconds.
pub const SUBSCRIPTION_INITIAL_WALL_TIME_MS_MAX: u64 = QUERY_WALL_TIME_OWNER_MS_MAX;

/// Calls one database may have waiting on its lane before new ones are
/// refused (the default of `HostConfig::lane_queued_max`, and its ceiling).
pub const LANE_QUEUED_JOBS_MAX: usize = 65_536;

/// Jobs a worker runs from one lane before letting other lanes go first.
pub const LANE_TURN_JOBS_MAX: usize = 64;

/// Job time, in microseconds, after which a worker ends a lane's turn (at
/// the end of the job that crossed it) and puts the lane at the back of the
/// ready queue: a lane's turn is a time slice as well as a job count. A job
/// itself is never preempted; its own deadline bounds it.
pub const LANE_TURN_MICROS_MAX: u64 = 5_000;

/// A job that ran at least this long, in microseconds, marks its lane slow
/// until the lane's next job runs quicker.
pub const LANE_SLOW_JOB_MICROS: u64 = 100_000;

/// Workers of a pool kept for lanes that are not slow: slow lanes together
/// hold at most `workers - POOL_WORKERS_RESERVED_FOR_QUICK_LANES` workers at
/// once (all of them in a one-worker pool), so a database with quick calls
/// finds a worker even while others run long calls back to back.
pub const POOL_WORKERS_RESERVED_FOR_QUICK_LANES: usize = 1;

// Whatever the caller, the owner's budgets are at least a non-owner's.
const _: () = assert!(QUERY_ROWS_EXAMINED_MAX <= QUERY_ROWS_EXAMINED_OWNER_MAX);
const _: () = assert!(QUERY_RESULT_ROWS_MAX <= QUERY_RESULT_ROWS_OWNER_MAX);
const _: () = assert!(QUERY_RESULT_BYTES_MAX <= QUERY_RESULT_BYTES_OWNER_MAX);
const _: () = assert!(QUERY_WALL_TIME_MS_MAX <= QUERY_WALL_TIME_OWNER_MS_MAX);
// Every returned row was examined, so a result-row cap above the examined cap
// could never trigger.
const _: () = assert!(QUERY_RESULT_ROWS_MAX <= QUERY_ROWS_EXAMINED_MAX);
const _: () = assert!(QUERY_RESULT_ROWS_OWNER_MAX <= QUERY_ROWS_EXAMINED_OWNER_MAX);
// The largest row a table accepts can always be returned on its own.
const _: () = assert!(ROW_BYTES_MAX <= QUERY_RESULT_BYTES_MAX);
const _: () = assert!(ROW_BYTES_MAX <= SUBSCRIPTION_INITIAL_BYTES_MAX);
// A slow job always ends its lane's turn, and a turn runs at least one job.
const _: () = assert!(LANE_TURN_MICROS_MAX < LANE_SLOW_JOB_MICROS);
const _: () = assert!(LANE_TURN_JOBS_MAX >= 1);
const _: () = assert!(LANE_TURN_JOBS_MAX <= LANE_QUEUED_JOBS_MAX);
// A pool keeps at least one worker for slow lanes whenever it has more
// workers than it reserves; reserving none would undo the fairness rule.
const _: () = assert!(POOL_WORKERS_RESERVED_FOR_QUICK_LANES >= 1);

// ---------------------------------------------------------------- request bodies
// Each route of the HTTP edge reads at most its limit and answers 413 past
// it, before buffering more (a `Content-Length` above the limit is refused
// unread).

/// A module upload (`POST /v1/database`, `PUT /v1/database/{name}`,
/// `pre_publish`): the wasm bytes.
pub const MODULE_BYTES_MAX: usize = 100 * 1024 * 1024;

/// The JSON arguments of an HTTP call (`POST …/call/{function}`). JSON is
/// larger than the BSATN the call becomes (a byte is up to four characters
/// of a JSON array), so this is four times the BSATN limit.
pub const CALL_BODY_BYTES_MAX: usize = 4 * CALL_ARGS_BYTES_DEFAULT as usize;

/// The SQL text of `POST …/sql`: the SQL limit itself, so longer text is
/// refused before it is read.
pub const SQL_BODY_BYTES_MAX: usize = SQL_TEXT_BYTES_MAX;

/// Every other route that reads a body (names), and the default of routes
/// that read none.
pub const SMALL_BODY_BYTES_MAX: usize = 64 * 1024;

// A module fits the compiled-module cache many times over.
const _: () = assert!(MODULE_BYTES_MAX as u64 * 4 <= COMPILED_MODULES_CACHE_BYTES_DEFAULT);
// A call's body is not a module's: uploads are the largest body there is.
const _: () = assert!(CALL_BODY_BYTES_MAX <= MODULE_BYTES_MAX);

// ---------------------------------------------------------------- snapshots

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

/// How often, in `local` durability mode, a host ships the records that
/// became durable since the last ship to the object store: the most a lost
/// host can lose (issue 15 asks for at most one second).
pub const SHIP_INTERVAL_MS_DEFAULT: u64 = 500;

/// Largest log piece shipped as one object, in bytes of records (one record
/// larger than this still ships whole, in a piece of its own).
pub const SHIP_PIECE_BYTES_MAX: usize = 16 * 1024 * 1024;

const _: () = assert!(SHIP_INTERVAL_MS_DEFAULT > 0 && SHIP_INTERVAL_MS_DEFAULT <= 1000);
const _: () = assert!(SHIP_PIECE_BYTES_MAX as u64 <= COMMITLOG_SEGMENT_BYTES_DEFAULT);

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

// ---------------------------------------------------------------- schedules

/// Longest the timer thread sleeps before reading the host's clock again,
/// in milliseconds: a wall clock stepped forward fires the timers now due
/// within this.
pub const SCHEDULER_CLOCK_RECHECK_MS: u64 = 1_000;

// Rechecking is not a busy loop.
const _: () = assert!(SCHEDULER_CLOCK_RECHECK_MS >= 10);

// ---------------------------------------------------------------- module descriptions and row-level security

/// Nesting of a module's types while they are resolved (references followed
/// plus structural levels). Real modules nest a handful of levels; a cyclic
/// type hits this quickly and the module is refused.
pub const MODULE_TYPE_DEPTH_MAX: usize = 64;

/// Parts one query may become once row-level security filters are applied
/// (filters multiply across the tables of a join); past this the query is
/// refused.
pub const RLS_QUERY_FRAGMENTS_MAX: usize = 64;

// Depth is counted per level; a depth of zero would refuse every type.
const _: () = assert!(MODULE_TYPE_DEPTH_MAX >= 8);
const _: () = assert!(RLS_QUERY_FRAGMENTS_MAX >= 1);

// ---------------------------------------------------------------- HTTP handlers and scheduled-immediate calls

/// The request body of one call of a module's HTTP handler
/// (`ANY …/route/…`), in bytes: a `Content-Length` above it is refused
/// unread with 413, a body without one is read up to it.
pub const HTTP_HANDLER_REQUEST_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Wall-clock limit of one HTTP handler call by default (its transactions
/// and outbound requests included), in ms; a handler past it is stopped and
/// answered with 530 `call_timeout`.
pub const HTTP_HANDLER_DEADLINE_MS_DEFAULT: u64 = 30_000;

/// Calls one reducer, procedure or handler call may queue with
/// `volatile_nonatomic_schedule_immediate`; one more traps the call.
pub const IMMEDIATE_CALLS_PER_CALL_MAX: usize = 1024;

/// Argument bytes, summed, of the calls one call may queue with
/// `volatile_nonatomic_schedule_immediate`; more traps the call.
pub const IMMEDIATE_ARGS_BYTES_PER_CALL_MAX: usize = 16 * 1024 * 1024;

// A handler's body is no larger than a module upload; a handler may take
// as long as a procedure at most.
const _: () = assert!(HTTP_HANDLER_REQUEST_BODY_BYTES_MAX <= MODULE_BYTES_MAX);
const _: () = assert!(HTTP_HANDLER_DEADLINE_MS_DEFAULT <= PROCEDURE_DEADLINE_MS_DEFAULT);
const _: () = assert!(IMMEDIATE_CALLS_PER_CALL_MAX <= LANE_QUEUED_JOBS_MAX);

// ---------------------------------------------------------------- views

/// Per-caller view materialisations that no subscription reads, kept after
/// a one-off query or SQL read them (so the next read by the same caller
/// does not evaluate the view again, as the reference keeps them), per
/// database, in materialisations (each one a table); past this they are
/// dropped.
pub const VIEW_IDLE_MATERIALISATIONS_MAX: usize = 256;

// Each materialisation is a table of the database.
const _: () = assert!(VIEW_IDLE_MATERIALISATIONS_MAX < TABLES_PER_DATABASE_MAX as usize / 2);
