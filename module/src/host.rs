//! Host functions: what a module's imports do, and the per-instance host state.
//!
//! Owns: [`HostEnv`] (guest memory handle, the open transaction of the
//! current call, bytes sources and sinks, row iterators, console timers, log
//! records) and the linking of every import in `orrery_module::abi::IMPORTS`,
//! including the datastore imports of module-abi §3.1, §3.5 and §3.6.
//! The procedure imports of §3.4 live in `orrery_module::host::procedure`, their
//! outbound HTTP and its egress policy in `orrery_module::host::http`. While a
//! view runs, [`HostEnv::view_reads`] records every table the read imports
//! touch (the view's read set) and the write imports trap (views are
//! read-only, §3.7).
//! Does not own: which imports exist (`orrery_module::abi`), opening, committing or
//! rolling back reducer and view transactions (`orrery_module::instance`), or
//! storage semantics (the `storage` crate).
//!
//! Conventions (module-abi §2): pointers are offsets into the exported memory;
//! a range outside memory, a null out-pointer or invalid UTF-8 in a name traps
//! the call; conditions with an errno are returned, never trapped. Without a
//! transaction (set-up and describe) every datastore import answers
//! `NOT_IN_TRANSACTION`. Handles (sources, iterators, sinks, timers) are
//! slab index + 1, so 0 is never valid; they live for one call.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use spacetimedb_lib::{ConnectionId, Identity};
use spacetimedb_primitives::errno;
use spacetimedb_sats::AlgebraicValue;
use storage::{ColId, IndexId, MutTx, TableId, TxError};
use wasmtime::{bail, format_err};
use wasmtime::{Caller, Linker, Memory, StoreLimits};

use crate::host_tables::{HostTables, NoHostTables};

/// One log record written by a module through `console_log`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// 0 error, 1 warn, 2 info, 3 debug, 4 trace, 101 panic (the bindings' encoding).
    pub level: u8,
    pub target: String,
    pub filename: String,
    pub line: u32,
    pub message: String,
    /// The reducer running when the record was written; empty during set-up.
    pub function: String,
    /// Host wall clock when the record was written, µs since the Unix epoch.
    pub timestamp_micros: i64,
}

impl LogRecord {
    /// A record written by the host itself (timer spans, notices).
    pub fn host(level: u8, message: String) -> LogRecord {
        LogRecord {
            level,
            target: String::new(),
            filename: String::new(),
            line: 0,
            message,
            function: String::new(),
            timestamp_micros: wall_clock_micros(),
        }
    }
}

/// Microseconds since the Unix epoch by the host's wall clock.
pub(crate) fn wall_clock_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The log level the bindings use for a panic message (sent just before a trap).
pub const LOG_LEVEL_PANIC: u8 = 101;

/// The log level of errors (the bindings' encoding).
pub const LOG_LEVEL_ERROR: u8 = 0;

/// A bytes source: the reducer arguments (or any host-provided bytes).
struct Source {
    bytes: Vec<u8>,
    read: usize,
}

/// A row iterator: the result materialised at open time into chunks of whole
/// BSATN rows (module-abi §3.1 `row_iter_bsatn_advance`).
struct RowIter {
    chunks: VecDeque<Vec<u8>>,
}

/// Chunks of whole rows are closed before they would exceed this size; a
/// single larger row is a chunk of its own.
pub(crate) const ROW_ITER_CHUNK_SIZE: usize = 32 * 1024;

/// Per-instance host state.
#[derive(Default)]
pub(crate) struct HostEnv {
    pub(crate) memory: Option<Memory>,
    /// The transaction of the running reducer call, if any.
    pub(crate) tx: Option<MutTx>,
    /// Table names the guest may send (source names and canonical names) →
    /// the storage (canonical) name.
    pub(crate) table_names: Arc<HashMap<String, String>>,
    /// Schedule tables by storage (canonical) name → their `ScheduleAt` column.
    pub(crate) schedule_at_cols: Arc<HashMap<String, ColId>>,
    /// The timestamp of the running call (µs since the Unix epoch).
    pub(crate) call_timestamp_micros: i64,
    /// Handle `h` is `sinks[h - 1]`; `None` once taken.
    sinks: Vec<Option<Vec<u8>>>,
    /// Handle `h` is `sources[h - 1]`; `None` once exhausted.
    sources: Vec<Option<Source>>,
    /// Handle `h` is `iters[h - 1]`; `None` once exhausted or closed.
    iters: Vec<Option<RowIter>>,
    timers: Vec<Option<(String, Instant)>>,
    pub(crate) logs: Vec<LogRecord>,
    /// Source name of the reducer being called, stamped on its log records.
    pub(crate) function: String,
    /// Records refused because the per-call bound was reached.
    pub(crate) logs_dropped: u64,
    /// The database identity the module asks for with `identity`.
    pub(crate) database_identity: Identity,
    /// Memory and table growth limits of the instance.
    pub(crate) limits: StoreLimits,
    /// Set while a procedure runs; the procedure imports need it.
    pub(crate) procedure: Option<procedure::ProcedureCall>,
    /// Set while a view runs: what it has read so far. Writes trap.
    pub(crate) view_reads: Option<crate::instance::ViewReads>,
    /// The host's own tables, which do not exist for the guest.
    pub(crate) host_tables: SharedHostTables,
    /// Calls queued by `volatile_nonatomic_schedule_immediate` during the
    /// running call, in order.
    pub(crate) immediate: Vec<ImmediateCall>,
}

/// A reducer call a module queued with `volatile_nonatomic_schedule_immediate`
/// (module-abi §3.1, §8.6): the host runs it after the call that queued it
/// has ended, as a transaction of its own, whether or not the queuing call
/// committed, with the database identity as sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmediateCall {
    /// The function name as the module sent it (unchecked).
    pub function: String,
    /// BSATN arguments as the module sent them (unchecked).
    pub args: Vec<u8>,
}

/// The host-table policy of an instance ([`NoHostTables`] until set).
#[derive(Clone, Debug)]
pub(crate) struct SharedHostTables(pub(crate) Arc<dyn HostTables>);

impl Default for SharedHostTables {
    fn default() -> SharedHostTables {
        SharedHostTables(Arc::new(NoHostTables))
    }
}

pub(crate) use orrery_api::limits::LOG_RECORDS_PER_CALL_MAX;
use orrery_api::limits::{GUEST_SINK_BYTES_MAX as SINK_BYTES_MAX, LOG_MESSAGE_BYTES_MAX};
use orrery_api::limits::{IMMEDIATE_ARGS_BYTES_PER_CALL_MAX, IMMEDIATE_CALLS_PER_CALL_MAX};

impl HostEnv {
    pub(crate) fn new_sink(&mut self) -> u32 {
        self.sinks.push(Some(Vec::new()));
        self.sinks.len() as u32
    }

    pub(crate) fn take_sink(&mut self, handle: u32) -> Vec<u8> {
        take_slot(&mut self.sinks, handle).unwrap_or_default()
    }

    /// A new bytes source holding `bytes`; its handle is never 0.
    pub(crate) fn new_source(&mut self, bytes: Vec<u8>) -> u32 {
        self.sources.push(Some(Source { bytes, read: 0 }));
        self.sources.len() as u32
    }

    /// Takes every sink not yet taken, in handle order.
    pub(crate) fn take_sinks(&mut self) -> Vec<Vec<u8>> {
        self.sinks.drain(..).flatten().collect()
    }

    /// Forgets every per-call handle (sources, sinks, iterators, timers)
    /// and the calls queued for after the call.
    pub(crate) fn end_call(&mut self) {
        self.immediate.clear();
        self.sinks.clear();
        self.sources.clear();
        self.iters.clear();
        self.timers.clear();
    }

    fn push_log(&mut self, mut record: LogRecord) {
        if self.logs.len() < LOG_RECORDS_PER_CALL_MAX {
            record.function.clone_from(&self.function);
            self.logs.push(record);
        } else {
            self.logs_dropped += 1;
        }
    }

    /// Resolves a table name the guest sent: its source name or canonical name.
    fn table_id(
        host: &dyn HostTables,
        tx: &MutTx,
        names: &HashMap<String, String>,
        name: &str,
    ) -> Option<TableId> {
        let canonical = names.get(name).map(String::as_str).unwrap_or(name);
        tx.table_id_from_name(canonical)
            .filter(|&id| !is_host_table(host, tx, id))
    }
}

/// A table id the guest sent. The host's own tables (`st_*`, such as the
/// client table with every client's JWT) do not exist for the guest: their
/// ids become an id no table has, so every import answers as for a missing
/// table.
fn guest_table(host: &dyn HostTables, tx: &storage::State, table: i32) -> TableId {
    let id = TableId(table as u32);
    if is_host_table(host, tx, id) {
        TableId(u32::MAX)
    } else {
        id
    }
}

/// An index id the guest sent; indexes of the host's tables do not exist
/// for the guest (see [`guest_table`]).
fn guest_index(host: &dyn HostTables, tx: &storage::State, index: i32) -> IndexId {
    let id = IndexId(index as u32);
    match tx.index_schema(id) {
        Ok((schema, _)) if is_host_table(host, tx, schema.table_id) => IndexId(u32::MAX),
        _ => id,
    }
}

fn is_host_table(host: &dyn HostTables, tx: &storage::State, id: TableId) -> bool {
    tx.schema(id)
        .is_ok_and(|schema| host.is_host_table(&schema.name))
}

/// Adds `table`, read whole, to the running view's read set, if a view is
/// running.
fn note_read(reads: &mut Option<crate::instance::ViewReads>, table: TableId) {
    if let Some(reads) = reads {
        reads.tables.insert(table);
    }
}

/// Adds the table owning `index` to the running view's read set: a range
/// scan counts as reading the whole table (as the reference records it).
fn note_index_read(reads: &mut Option<crate::instance::ViewReads>, tx: &MutTx, index: IndexId) {
    if reads.is_some() {
        if let Ok((schema, _)) = tx.index_schema(index) {
            note_read(reads, schema.table_id);
        }
    }
}

/// Adds the key of a point scan of `index` to the running view's read set:
/// the view depends only on the rows with that key in the index's columns.
/// A point that does not decode is recorded as a read of the whole table.
fn note_point_read(
    reads: &mut Option<crate::instance::ViewReads>,
    tx: &MutTx,
    index: IndexId,
    point: &[u8],
) {
    let Some(set) = reads else {
        return;
    };
    let Ok((schema, index_schema)) = tx.index_schema(index) else {
        return;
    };
    let table = schema.table_id;
    match tx.decode_point(index, point) {
        Ok(key) => {
            set.keys.insert((table, index_schema.columns.clone(), key));
        }
        Err(_) => {
            set.tables.insert(table);
        }
    }
}

/// Traps a write import called by a view (module-abi §3.7).
fn refuse_write_in_view(env: &HostEnv) -> wasmtime::Result<()> {
    if env.view_reads.is_some() {
        bail!("a view tried to write to the database; views are read-only");
    }
    Ok(())
}

/// The longest delay a schedule row may ask for: 2^36 − 1 milliseconds
/// (≈ 2.18 years), the limit modules were tested against (module-abi §8.6).
const SCHEDULE_DELAY_MICROS_MAX: i128 = ((1 << 36) - 1) * 1000;

/// Whether inserting `row` into `table` must fail with
/// `SCHEDULE_AT_DELAY_TOO_LONG`: the table is a schedule table and the row's
/// `ScheduleAt` lies too far after `now = max(call timestamp, wall clock)`.
/// Rows that do not decode are left to the insert, which reports them.
fn schedule_delay_too_long(
    tx: &MutTx,
    schedule_at_cols: &HashMap<String, ColId>,
    call_timestamp_micros: i64,
    table: TableId,
    row: &[u8],
) -> bool {
    let Ok(schema) = tx.schema(table) else {
        return false;
    };
    let Some(col) = schedule_at_cols.get(&schema.name) else {
        return false;
    };
    let Ok(row) = storage::value::decode_row(schema, row) else {
        return false;
    };
    let Some(AlgebraicValue::Sum(at)) = row.get(col.idx()) else {
        return false;
    };
    let AlgebraicValue::Product(inner) = &*at.value else {
        return false;
    };
    let Some(AlgebraicValue::I64(micros)) = inner.elements.first() else {
        return false;
    };
    let now = i128::from(wall_clock_micros().max(call_timestamp_micros));
    let delay = match at.tag {
        0 => i128::from(*micros).abs(),
        1 => i128::from(*micros) - now,
        _ => return false,
    };
    delay >= SCHEDULE_DELAY_MICROS_MAX
}

/// The live object behind a handle (handles are slot index + 1; 0 is never valid).
fn slot<T>(slots: &mut [Option<T>], handle: impl Into<u32>) -> Option<&mut T> {
    (handle.into() as usize)
        .checked_sub(1)
        .and_then(|i| slots.get_mut(i))
        .and_then(Option::as_mut)
}

/// Takes the object behind a handle out of its slot, destroying the handle.
fn take_slot<T>(slots: &mut [Option<T>], handle: impl Into<u32>) -> Option<T> {
    (handle.into() as usize)
        .checked_sub(1)
        .and_then(|i| slots.get_mut(i))
        .and_then(Option::take)
}

fn errno(code: std::num::NonZeroU16) -> i32 {
    i32::from(code.get())
}

/// The errno of a failed storage operation (module-abi §2.1). A schema error
/// cannot come from a datastore import: it is a host bug and traps the call.
fn tx_errno(error: TxError) -> wasmtime::Result<i32> {
    Ok(errno(match error {
        TxError::NoSuchTable(_) => errno::NO_SUCH_TABLE,
        TxError::NoSuchIndex(_) => errno::NO_SUCH_INDEX,
        TxError::WrongIndexAlgorithm { .. } => errno::WRONG_INDEX_ALGO,
        TxError::Decode { .. } | TxError::RowType { .. } => errno::BSATN_DECODE_ERROR,
        TxError::UniqueViolation { .. } => errno::UNIQUE_ALREADY_EXISTS,
        TxError::AutoIncOverflow { .. } => errno::AUTO_INC_OVERFLOW,
        TxError::IndexNotUnique { .. } => errno::INDEX_NOT_UNIQUE,
        TxError::NoSuchRow { .. } => errno::NO_SUCH_ROW,
        other => bail!("host error in a datastore call: {other}"),
    }))
}

/// Encodes rows into chunks of whole rows, each at most
/// [`ROW_ITER_CHUNK_SIZE`] bytes unless a single row is larger.
fn chunk_rows<'a>(rows: impl Iterator<Item = &'a storage::Row>) -> VecDeque<Vec<u8>> {
    // Rows are encoded straight into the chunk (no per-row buffer); a row
    // that overflows a non-empty chunk moves to the next one. A point lookup
    // of a small row, the common case, costs one chunk and one deque allocation.
    let mut chunks = VecDeque::new();
    let mut chunk = Vec::new();
    for row in rows {
        let start = chunk.len();
        chunk.reserve(64);
        storage::value::encode_row(row, &mut chunk);
        if start > 0 && chunk.len() > ROW_ITER_CHUNK_SIZE {
            let overflow = chunk.split_off(start);
            chunks.push_back(std::mem::replace(&mut chunk, overflow));
        }
    }
    if !chunk.is_empty() {
        chunks.push_back(chunk);
    }
    chunks
}

/// Registers an iterator; returns its handle (never 0).
fn open_iter(iters: &mut Vec<Option<RowIter>>, chunks: VecDeque<Vec<u8>>) -> u32 {
    iters.push(Some(RowIter { chunks }));
    iters.len() as u32
}

/// The guest memory and the host state, borrowed together.
fn memory<'a>(
    caller: &'a mut Caller<'_, HostEnv>,
) -> wasmtime::Result<(&'a mut [u8], &'a mut HostEnv)> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| format_err!("host function called before memory was bound"))?;
    Ok(memory.data_and_store_mut(caller))
}

fn range(memory: &[u8], ptr: i32, len: i32) -> wasmtime::Result<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or_else(|| format_err!("pointer range overflows"))?;
    if end > memory.len() {
        bail!(
            "range {start}..{end} is outside guest memory of {} bytes",
            memory.len()
        );
    }
    Ok(start..end)
}

/// The guest bytes at `ptr[..len]`.
fn slice(memory: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&[u8]> {
    Ok(&memory[range(memory, ptr, len)?])
}

/// A name the guest sent; invalid UTF-8 traps (module-abi §2).
fn name(memory: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&str> {
    std::str::from_utf8(slice(memory, ptr, len)?)
        .map_err(|e| format_err!("a name passed to the host is not UTF-8: {e}"))
}

fn read_u32(memory: &[u8], ptr: i32) -> wasmtime::Result<u32> {
    if ptr == 0 {
        bail!("null pointer");
    }
    let bytes = &memory[range(memory, ptr, 4)?];
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(word))
}

fn write_bytes(memory: &mut [u8], ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    if ptr == 0 {
        bail!("null pointer");
    }
    let range = range(memory, ptr, bytes.len() as i32)?;
    memory[range].copy_from_slice(bytes);
    Ok(())
}

/// Links every import of the catalogue. Names must match `abi::IMPORTS`
/// (checked by a unit test).
pub(crate) fn link(linker: &mut Linker<HostEnv>) -> wasmtime::Result<()> {
    let v0 = "spacetime_10.0";
    let no_tx = errno(errno::NOT_IN_TRANSACTION);

    // Name lookups.
    linker.func_wrap(
        v0,
        "table_id_from_name",
        move |mut caller: Caller<'_, HostEnv>,
              ptr: i32,
              len: i32,
              out: i32|
              -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(tx) = env.tx.as_ref() else {
                return Ok(no_tx);
            };
            let found = HostEnv::table_id(
                &*env.host_tables.0,
                tx,
                &env.table_names,
                name(memory, ptr, len)?,
            );
            match found {
                Some(id) => write_bytes(memory, out, &id.0.to_le_bytes()).map(|()| 0),
                None => Ok(errno(errno::NO_SUCH_TABLE)),
            }
        },
    )?;
    linker.func_wrap(
        v0,
        "index_id_from_name",
        move |mut caller: Caller<'_, HostEnv>,
              ptr: i32,
              len: i32,
              out: i32|
              -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(tx) = env.tx.as_ref() else {
                return Ok(no_tx);
            };
            let index = tx
                .index_id_from_name(name(memory, ptr, len)?)
                .filter(|&id| guest_index(&*env.host_tables.0, tx, id.0 as i32) == id);
            match index {
                Some(id) => write_bytes(memory, out, &id.0.to_le_bytes()).map(|()| 0),
                None => Ok(errno(errno::NO_SUCH_INDEX)),
            }
        },
    )?;

    // Reads.
    linker.func_wrap(
        v0,
        "datastore_table_row_count",
        move |mut caller: Caller<'_, HostEnv>, table: i32, out: i32| -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(tx) = env.tx.as_ref() else {
                return Ok(no_tx);
            };
            let table = guest_table(&*env.host_tables.0, tx, table);
            note_read(&mut env.view_reads, table);
            match tx.row_count(table) {
                Ok(count) => write_bytes(memory, out, &count.to_le_bytes()).map(|()| 0),
                Err(e) => tx_errno(e),
            }
        },
    )?;
    linker.func_wrap(
        v0,
        "datastore_table_scan_bsatn",
        move |mut caller: Caller<'_, HostEnv>, table: i32, out: i32| -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(tx) = env.tx.as_ref() else {
                return Ok(no_tx);
            };
            let table = guest_table(&*env.host_tables.0, tx, table);
            note_read(&mut env.view_reads, table);
            match tx.scan(table) {
                Ok(rows) => {
                    let handle = open_iter(&mut env.iters, chunk_rows(rows));
                    write_bytes(memory, out, &handle.to_le_bytes()).map(|()| 0)
                }
                Err(e) => tx_errno(e),
            }
        },
    )?;
    for (name, delete) in [
        ("datastore_index_scan_range_bsatn", false),
        ("datastore_btree_scan_bsatn", false),
        ("datastore_delete_by_index_scan_range_bsatn", true),
        ("datastore_delete_by_btree_scan_bsatn", true),
    ] {
        linker.func_wrap(
            v0,
            name,
            move |mut caller: Caller<'_, HostEnv>,
                  index: i32,
                  prefix_ptr: i32,
                  prefix_len: i32,
                  prefix_elems: i32,
                  rstart_ptr: i32,
                  rstart_len: i32,
                  rend_ptr: i32,
                  rend_len: i32,
                  out: i32|
                  -> wasmtime::Result<i32> {
                let (memory, env) = memory(&mut caller)?;
                let Ok(prefix_elems) = u16::try_from(prefix_elems as u32) else {
                    bail!("prefix_elems {prefix_elems} is not a column count");
                };
                if env.tx.is_none() {
                    return Ok(no_tx);
                }
                let prefix = if prefix_elems == 0 {
                    &[][..]
                } else {
                    slice(memory, prefix_ptr, prefix_len)?
                };
                let rstart = slice(memory, rstart_ptr, rstart_len)?;
                let rend = slice(memory, rend_ptr, rend_len)?;
                if delete {
                    refuse_write_in_view(env)?;
                }
                let tx = env.tx.as_mut().expect("checked above");
                let index = guest_index(&*env.host_tables.0, tx, index);
                note_index_read(&mut env.view_reads, tx, index);
                let elems = usize::from(prefix_elems);
                let written = if delete {
                    match tx.delete_by_range_bsatn(index, prefix, elems, rstart, rend) {
                        Ok(count) => count.to_le_bytes(),
                        Err(e) => return tx_errno(e),
                    }
                } else {
                    match tx.index_range_bsatn(index, prefix, elems, rstart, rend) {
                        Ok(rows) => open_iter(&mut env.iters, chunk_rows(rows)).to_le_bytes(),
                        Err(e) => return tx_errno(e),
                    }
                };
                write_bytes(memory, out, &written).map(|()| 0)
            },
        )?;
    }
    let v4 = "spacetime_10.4";
    for (name, delete) in [
        ("datastore_index_scan_point_bsatn", false),
        ("datastore_delete_by_index_scan_point_bsatn", true),
    ] {
        linker.func_wrap(
            v4,
            name,
            move |mut caller: Caller<'_, HostEnv>,
                  index: i32,
                  ptr: i32,
                  len: i32,
                  out: i32|
                  -> wasmtime::Result<i32> {
                let (memory, env) = memory(&mut caller)?;
                if env.tx.is_none() {
                    return Ok(no_tx);
                }
                let point = slice(memory, ptr, len)?;
                if delete {
                    refuse_write_in_view(env)?;
                }
                let tx = env.tx.as_mut().expect("checked above");
                let index = guest_index(&*env.host_tables.0, tx, index);
                note_point_read(&mut env.view_reads, tx, index, point);
                let written = if delete {
                    match tx.delete_by_point_bsatn(index, point) {
                        Ok(count) => count.to_le_bytes(),
                        Err(e) => return tx_errno(e),
                    }
                } else {
                    match tx.index_point_bsatn(index, point) {
                        Ok(rows) => open_iter(&mut env.iters, chunk_rows(rows)).to_le_bytes(),
                        Err(e) => return tx_errno(e),
                    }
                };
                write_bytes(memory, out, &written).map(|()| 0)
            },
        )?;
    }

    // Row iterators.
    linker.func_wrap(
        v0,
        "row_iter_bsatn_advance",
        |mut caller: Caller<'_, HostEnv>,
         iter: i32,
         buffer_ptr: i32,
         len_ptr: i32|
         -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(state) = slot(&mut env.iters, iter as u32) else {
                return Ok(errno(errno::NO_SUCH_ITER));
            };
            let capacity = read_u32(memory, len_ptr)? as usize;
            let mut written = 0usize;
            while let Some(chunk) = state.chunks.front() {
                if written + chunk.len() > capacity {
                    break;
                }
                let at = (buffer_ptr as u32 as usize)
                    .checked_add(written)
                    .ok_or_else(|| format_err!("buffer pointer overflows"))?;
                write_bytes(memory, at as i32, chunk)?;
                written += chunk.len();
                state.chunks.pop_front();
            }
            match state.chunks.front() {
                None => {
                    take_slot(&mut env.iters, iter as u32);
                    write_bytes(memory, len_ptr, &(written as u32).to_le_bytes())?;
                    Ok(-1)
                }
                Some(next) if written == 0 => {
                    let needed = next.len() as u32;
                    write_bytes(memory, len_ptr, &needed.to_le_bytes())?;
                    Ok(errno(errno::BUFFER_TOO_SMALL))
                }
                Some(_) => {
                    write_bytes(memory, len_ptr, &(written as u32).to_le_bytes())?;
                    Ok(0)
                }
            }
        },
    )?;
    linker.func_wrap(
        v0,
        "row_iter_bsatn_close",
        |mut caller: Caller<'_, HostEnv>, iter: i32| -> i32 {
            let env = caller.data_mut();
            match take_slot(&mut env.iters, iter as u32) {
                Some(_) => 0,
                None => errno(errno::NO_SUCH_ITER),
            }
        },
    )?;

    // Writes.
    linker.func_wrap(
        v0,
        "datastore_insert_bsatn",
        |caller: Caller<'_, HostEnv>, table: i32, row_ptr: i32, len_ptr: i32| {
            write_row(caller, table, row_ptr, len_ptr, |_, tx, table, row| {
                tx.insert_bsatn(table, row)
            })
        },
    )?;
    linker.func_wrap(
        v0,
        "datastore_update_bsatn",
        |caller: Caller<'_, HostEnv>, table: i32, index: i32, row_ptr: i32, len_ptr: i32| {
            write_row(caller, table, row_ptr, len_ptr, |host, tx, table, row| {
                tx.update_bsatn(table, guest_index(host, tx, index), row)
            })
        },
    )?;
    linker.func_wrap(
        v0,
        "datastore_delete_all_by_eq_bsatn",
        move |mut caller: Caller<'_, HostEnv>,
              table: i32,
              ptr: i32,
              len: i32,
              out: i32|
              -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            if env.tx.is_none() {
                return Ok(no_tx);
            }
            let rows = slice(memory, ptr, len)?;
            refuse_write_in_view(env)?;
            let tx = env.tx.as_mut().expect("checked above");
            match tx.delete_rows_bsatn(guest_table(&*env.host_tables.0, tx, table), rows) {
                Ok(count) => write_bytes(memory, out, &count.to_le_bytes()).map(|()| 0),
                Err(e) => tx_errno(e),
            }
        },
    )?;
    linker.func_wrap(
        "spacetime_10.5",
        "datastore_clear",
        move |mut caller: Caller<'_, HostEnv>, table: i32, out: i32| -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            if env.tx.is_none() {
                return Ok(no_tx);
            }
            refuse_write_in_view(env)?;
            let tx = env.tx.as_mut().expect("checked above");
            match tx.clear(guest_table(&*env.host_tables.0, tx, table)) {
                Ok(count) => write_bytes(memory, out, &count.to_le_bytes()).map(|()| 0),
                Err(e) => tx_errno(e),
            }
        },
    )?;
    linker.func_wrap(
        v0,
        "volatile_nonatomic_schedule_immediate",
        |mut caller: Caller<'_, HostEnv>,
         name_ptr: i32,
         name_len: i32,
         args_ptr: i32,
         args_len: i32|
         -> wasmtime::Result<()> {
            let (memory, env) = memory(&mut caller)?;
            let function = name(memory, name_ptr, name_len)?.to_owned();
            let args = slice(memory, args_ptr, args_len)?;
            if env.view_reads.is_some() {
                bail!("a view may not schedule calls (module-abi §3.7)");
            }
            if env.immediate.len() >= IMMEDIATE_CALLS_PER_CALL_MAX {
                bail!(
                    "the call queued more than {IMMEDIATE_CALLS_PER_CALL_MAX} \
                     volatile_nonatomic_schedule_immediate calls"
                );
            }
            let queued: usize = env.immediate.iter().map(|c| c.args.len()).sum();
            if queued + args.len() > IMMEDIATE_ARGS_BYTES_PER_CALL_MAX {
                bail!(
                    "the calls queued with volatile_nonatomic_schedule_immediate \
                     exceed {IMMEDIATE_ARGS_BYTES_PER_CALL_MAX} bytes of arguments"
                );
            }
            let args = args.to_vec();
            env.immediate.push(ImmediateCall { function, args });
            Ok(())
        },
    )?;

    // Bytes sinks and sources.
    linker.func_wrap(
        v0,
        "bytes_sink_write",
        |mut caller: Caller<'_, HostEnv>,
         sink: i32,
         ptr: i32,
         len_ptr: i32|
         -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let len = read_u32(memory, len_ptr)?;
            let bytes = slice(memory, ptr, len as i32)?;
            let Some(buffer) = slot(&mut env.sinks, sink as u32) else {
                return Ok(errno(errno::NO_SUCH_BYTES));
            };
            if buffer.len() + bytes.len() > SINK_BYTES_MAX {
                return Ok(errno(errno::NO_SPACE));
            }
            buffer.extend_from_slice(bytes);
            Ok(0)
        },
    )?;
    linker.func_wrap(
        v0,
        "bytes_source_read",
        |mut caller: Caller<'_, HostEnv>,
         source: i32,
         buffer_ptr: i32,
         len_ptr: i32|
         -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(state) = slot(&mut env.sources, source as u32) else {
                return Ok(errno(errno::NO_SUCH_BYTES));
            };
            let capacity = read_u32(memory, len_ptr)? as usize;
            let remaining = &state.bytes[state.read..];
            let n = capacity.min(remaining.len());
            write_bytes(memory, buffer_ptr, &remaining[..n])?;
            write_bytes(memory, len_ptr, &(n as u32).to_le_bytes())?;
            state.read += n;
            if state.read == state.bytes.len() {
                take_slot(&mut env.sources, source as u32);
                Ok(-1)
            } else {
                Ok(0)
            }
        },
    )?;
    linker.func_wrap(
        "spacetime_10.1",
        "bytes_source_remaining_length",
        |mut caller: Caller<'_, HostEnv>, source: i32, out: i32| -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let Some(state) = slot(&mut env.sources, source as u32) else {
                return Ok(errno(errno::NO_SUCH_BYTES));
            };
            let remaining = (state.bytes.len() - state.read) as u32;
            write_bytes(memory, out, &remaining.to_le_bytes()).map(|()| 0)
        },
    )?;

    // Logging and timers.
    linker.func_wrap(
        v0,
        "console_log",
        |mut caller: Caller<'_, HostEnv>,
         level: i32,
         target_ptr: i32,
         target_len: i32,
         file_ptr: i32,
         file_len: i32,
         line: i32,
         message_ptr: i32,
         message_len: i32|
         -> wasmtime::Result<()> {
            let (memory, env) = memory(&mut caller)?;
            if env.logs.len() >= LOG_RECORDS_PER_CALL_MAX {
                env.logs_dropped += 1;
                return Ok(());
            }
            // A null target or file means "none" in the bindings.
            let optional = |ptr: i32, len: i32| {
                if ptr == 0 {
                    Ok(String::new())
                } else {
                    lossy(memory, ptr, len)
                }
            };
            let record = LogRecord {
                level: level as u8,
                target: optional(target_ptr, target_len)?,
                filename: optional(file_ptr, file_len)?,
                line: line as u32,
                message: lossy(memory, message_ptr, message_len)?,
                function: String::new(),
                timestamp_micros: wall_clock_micros(),
            };
            env.push_log(record);
            Ok(())
        },
    )?;
    linker.func_wrap(
        v0,
        "console_timer_start",
        |mut caller: Caller<'_, HostEnv>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let name = lossy(memory, ptr, len)?;
            env.timers.push(Some((name, Instant::now())));
            Ok(env.timers.len() as i32)
        },
    )?;
    linker.func_wrap(
        v0,
        "console_timer_end",
        |mut caller: Caller<'_, HostEnv>, id: i32| -> wasmtime::Result<i32> {
            let env = caller.data_mut();
            let Some((name, started)) = take_slot(&mut env.timers, id as u32) else {
                return Ok(errno(errno::NO_SUCH_CONSOLE_TIMER));
            };
            let message = format!("Timing span {name:?}: {:?}", started.elapsed());
            env.push_log(LogRecord::host(2, message));
            Ok(0)
        },
    )?;
    linker.func_wrap(
        v0,
        "identity",
        |mut caller: Caller<'_, HostEnv>, out: i32| -> wasmtime::Result<()> {
            let (memory, env) = memory(&mut caller)?;
            // Little-endian bytes of the u256, BSATN order (module-abi §3.3).
            let identity = env.database_identity.to_byte_array();
            write_bytes(memory, out, &identity)
        },
    )?;

    // Later minors.
    linker.func_wrap(
        "spacetime_10.2",
        "get_jwt",
        move |mut caller: Caller<'_, HostEnv>,
              connection_ptr: i32,
              out: i32|
              -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let connection: [u8; 16] = slice(memory, connection_ptr, 16)?
                .try_into()
                .expect("16 bytes");
            let Some(tx) = env.tx.as_ref() else {
                return Ok(no_tx);
            };
            // Source 0 = "no JWT for this connection" (§3.3).
            let connection = ConnectionId::from_le_byte_array(connection);
            let source = match env.host_tables.0.jwt(tx, connection) {
                Some(payload) => env.new_source(payload.into_bytes()),
                None => 0,
            };
            write_bytes(memory, out, &source.to_le_bytes()).map(|()| 0)
        },
    )?;
    procedure::link(linker)?;
    Ok(())
}

/// Writes the generated column values over the start of the guest's row
/// buffer and their length to `len_ptr` (module-abi §3.1 write-back).
/// Insert and update share their protocol (module-abi §3.1): read the row at
/// `row_ptr[..*len_ptr]`, refuse schedule rows due too far ahead, apply, and
/// write back the generated columns.
fn write_row(
    mut caller: Caller<'_, HostEnv>,
    table: i32,
    row_ptr: i32,
    len_ptr: i32,
    apply: impl FnOnce(
        &dyn HostTables,
        &mut MutTx,
        TableId,
        &[u8],
    ) -> Result<storage::InsertOutcome, TxError>,
) -> wasmtime::Result<i32> {
    let (memory, env) = memory(&mut caller)?;
    refuse_write_in_view(env)?;
    let Some(tx) = env.tx.as_mut() else {
        return Ok(errno(errno::NOT_IN_TRANSACTION));
    };
    let len = read_u32(memory, len_ptr)?;
    let row = slice(memory, row_ptr, len as i32)?;
    let table = guest_table(&*env.host_tables.0, tx, table);
    if schedule_delay_too_long(
        tx,
        &env.schedule_at_cols,
        env.call_timestamp_micros,
        table,
        row,
    ) {
        return Ok(errno(errno::SCHEDULE_AT_DELAY_TOO_LONG));
    }
    match apply(&*env.host_tables.0, tx, table, row) {
        Ok(outcome) => write_back(memory, row_ptr, len_ptr, &outcome.generated_bsatn()),
        Err(e) => tx_errno(e),
    }
}

fn write_back(
    memory: &mut [u8],
    row_ptr: i32,
    len_ptr: i32,
    bytes: &[u8],
) -> wasmtime::Result<i32> {
    if !bytes.is_empty() {
        write_bytes(memory, row_ptr, bytes)?;
    }
    write_bytes(memory, len_ptr, &(bytes.len() as u32).to_le_bytes())?;
    Ok(0)
}

/// Log text is shown, not parsed: invalid UTF-8 is replaced rather than
/// trapped, and very long messages are cut.
fn lossy(memory: &[u8], ptr: i32, len: i32) -> wasmtime::Result<String> {
    let bytes = slice(memory, ptr, len)?;
    let bytes = &bytes[..bytes.len().min(LOG_MESSAGE_BYTES_MAX)];
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

mod http;
mod procedure;

pub use http::{is_public, HttpPolicy};
pub(crate) use procedure::ProcedureCall;

#[cfg(test)]
mod abi_tests;
#[cfg(test)]
mod procedure_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::IMPORTS;

    // Protects the catalogue and the linker from drifting apart: every import
    // of the catalogue is linked, with the catalogue's signature.
    #[test]
    fn every_catalogued_import_is_linked_with_its_signature() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        link(&mut linker).unwrap();
        let mut store = wasmtime::Store::new(&engine, HostEnv::default());
        for import in IMPORTS {
            let item = linker
                .get(&mut store, &import.namespace(), import.name)
                .unwrap_or_else(|_| {
                    panic!("{}::{} is not linked", import.namespace(), import.name)
                });
            let func = item.into_func().expect("a function");
            assert!(
                wasmtime::FuncType::eq(&func.ty(&store), &import.func_type(&engine)),
                "{} has the wrong signature",
                import.name
            );
        }
        assert_eq!(IMPORTS.len(), 30);
    }
}
