//! Host functions: what a module's imports do, and the per-instance host state.
//!
//! Owns: [`HostEnv`] (guest memory handle, bytes sinks, console timers, log
//! records) and the linking of every import in `runtime::abi::IMPORTS`.
//! Does not own: which imports exist (`runtime::abi`).
//!
//! Conventions (module-abi §2): pointers are offsets into the exported memory;
//! a range outside memory, a null out-pointer or invalid UTF-8 in a name traps
//! the call; conditions with an errno are returned, never trapped. Outside a
//! transaction (set-up and describe, the only calls made today) every
//! datastore import answers `NOT_IN_TRANSACTION` as the ABI prescribes.

use std::time::Instant;

use spacetimedb_primitives::errno;
use wasmtime::{bail, format_err};
use wasmtime::{Caller, Linker, Memory};

/// One log record written by a module through `console_log`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// 0 error, 1 warn, 2 info, 3 debug, 4 trace, 101 panic (the bindings' encoding).
    pub level: u8,
    pub target: String,
    pub filename: String,
    pub line: u32,
    pub message: String,
}

/// Per-instance host state.
#[derive(Default)]
pub(crate) struct HostEnv {
    pub(crate) memory: Option<Memory>,
    /// Handle `h` is `sinks[h - 1]`; `None` once taken.
    sinks: Vec<Option<Vec<u8>>>,
    timers: Vec<Option<(String, Instant)>>,
    pub(crate) logs: Vec<LogRecord>,
    /// The database identity the module asks for with `identity` (big-endian bytes reversed: BSATN u256).
    pub(crate) database_identity: [u8; 32],
}

/// Bound on log records kept per call, so a log flood cannot grow memory.
const LOG_RECORDS_PER_CALL_MAX: usize = 10_000;
/// Bound on the bytes a module may write into one sink (a description or an error message).
const SINK_BYTES_MAX: usize = 64 * 1024 * 1024;

impl HostEnv {
    pub(crate) fn new_sink(&mut self) -> u32 {
        self.sinks.push(Some(Vec::new()));
        self.sinks.len() as u32
    }

    pub(crate) fn take_sink(&mut self, handle: u32) -> Vec<u8> {
        self.sinks
            .get_mut(handle as usize - 1)
            .and_then(Option::take)
            .unwrap_or_default()
    }
}

fn errno(code: std::num::NonZeroU16) -> i32 {
    i32::from(code.get())
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

fn read_u32(memory: &[u8], ptr: i32) -> wasmtime::Result<u32> {
    if ptr == 0 {
        bail!("null pointer");
    }
    let bytes = &memory[range(memory, ptr, 4)?];
    Ok(u32::from_le_bytes(
        bytes.try_into().expect("range of 4 bytes"),
    ))
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

    // Datastore imports: no transaction exists during set-up and describe.
    linker.func_wrap(v0, "table_id_from_name", move |_: i32, _: i32, _: i32| {
        no_tx
    })?;
    linker.func_wrap(v0, "index_id_from_name", move |_: i32, _: i32, _: i32| {
        no_tx
    })?;
    linker.func_wrap(v0, "datastore_table_row_count", move |_: i32, _: i32| no_tx)?;
    linker.func_wrap(v0, "datastore_table_scan_bsatn", move |_: i32, _: i32| {
        no_tx
    })?;
    for name in [
        "datastore_index_scan_range_bsatn",
        "datastore_btree_scan_bsatn",
        "datastore_delete_by_index_scan_range_bsatn",
        "datastore_delete_by_btree_scan_bsatn",
    ] {
        linker.func_wrap(
            v0,
            name,
            move |_: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| no_tx,
        )?;
    }
    linker.func_wrap(
        v0,
        "datastore_delete_all_by_eq_bsatn",
        move |_: i32, _: i32, _: i32, _: i32| no_tx,
    )?;
    linker.func_wrap(v0, "row_iter_bsatn_advance", |_: i32, _: i32, _: i32| {
        errno(errno::NO_SUCH_ITER)
    })?;
    linker.func_wrap(v0, "row_iter_bsatn_close", |_: i32| {
        errno(errno::NO_SUCH_ITER)
    })?;
    linker.func_wrap(
        v0,
        "datastore_insert_bsatn",
        move |_: i32, _: i32, _: i32| no_tx,
    )?;
    linker.func_wrap(
        v0,
        "datastore_update_bsatn",
        move |_: i32, _: i32, _: i32, _: i32| no_tx,
    )?;
    linker.func_wrap(
        v0,
        "volatile_nonatomic_schedule_immediate",
        |_: i32, _: i32, _: i32, _: i32| -> wasmtime::Result<()> {
            bail!("volatile_nonatomic_schedule_immediate is not supported yet")
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
            let bytes = &memory[range(memory, ptr, len as i32)?];
            let Some(Some(buffer)) = (sink as u32 as usize)
                .checked_sub(1)
                .and_then(|i| env.sinks.get_mut(i))
            else {
                return Ok(errno(errno::NO_SUCH_BYTES));
            };
            if buffer.len() + bytes.len() > SINK_BYTES_MAX {
                return Ok(errno(errno::NO_SPACE));
            }
            buffer.extend_from_slice(bytes);
            Ok(0)
        },
    )?;
    linker.func_wrap(v0, "bytes_source_read", |_: i32, _: i32, _: i32| {
        errno(errno::NO_SUCH_BYTES)
    })?;
    linker.func_wrap(
        "spacetime_10.1",
        "bytes_source_remaining_length",
        |_: i32, _: i32| errno(errno::NO_SUCH_BYTES),
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
            };
            if env.logs.len() < LOG_RECORDS_PER_CALL_MAX {
                env.logs.push(record);
            }
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
            let Some((name, started)) = (id as u32 as usize)
                .checked_sub(1)
                .and_then(|i| env.timers.get_mut(i))
                .and_then(Option::take)
            else {
                return Ok(errno(errno::NO_SUCH_CONSOLE_TIMER));
            };
            if env.logs.len() < LOG_RECORDS_PER_CALL_MAX {
                let message = format!("Timing span {name:?}: {:?}", started.elapsed());
                env.logs.push(LogRecord {
                    level: 2,
                    target: String::new(),
                    filename: String::new(),
                    line: 0,
                    message,
                });
            }
            Ok(0)
        },
    )?;
    linker.func_wrap(
        v0,
        "identity",
        |mut caller: Caller<'_, HostEnv>, out: i32| -> wasmtime::Result<()> {
            let (memory, env) = memory(&mut caller)?;
            let identity = env.database_identity;
            write_bytes(memory, out, &identity)
        },
    )?;

    // Later minors.
    linker.func_wrap("spacetime_10.2", "get_jwt", move |_: i32, _: i32| no_tx)?;
    let v3 = "spacetime_10.3";
    let not_anonymous = errno(errno::TRANSACTION_NOT_ANONYMOUS);
    linker.func_wrap(
        v3,
        "procedure_sleep_until",
        |_: i64| -> wasmtime::Result<i64> { bail!("procedure_sleep_until outside a procedure") },
    )?;
    linker.func_wrap(
        v3,
        "procedure_start_mut_tx",
        |_: i32| -> wasmtime::Result<i32> { bail!("procedure_start_mut_tx outside a procedure") },
    )?;
    linker.func_wrap(v3, "procedure_commit_mut_tx", move || not_anonymous)?;
    linker.func_wrap(v3, "procedure_abort_mut_tx", move || not_anonymous)?;
    linker.func_wrap(
        v3,
        "procedure_http_request",
        |_: i32, _: i32, _: i32, _: i32, _: i32| -> wasmtime::Result<i32> {
            bail!("procedure_http_request outside a procedure")
        },
    )?;
    let v4 = "spacetime_10.4";
    linker.func_wrap(
        v4,
        "datastore_index_scan_point_bsatn",
        move |_: i32, _: i32, _: i32, _: i32| no_tx,
    )?;
    linker.func_wrap(
        v4,
        "datastore_delete_by_index_scan_point_bsatn",
        move |_: i32, _: i32, _: i32, _: i32| no_tx,
    )?;
    linker.func_wrap(
        "spacetime_10.5",
        "datastore_clear",
        move |_: i32, _: i32| no_tx,
    )?;
    Ok(())
}

/// Log text is shown, not parsed: invalid UTF-8 is replaced rather than trapped.
fn lossy(memory: &[u8], ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8_lossy(&memory[range(memory, ptr, len)?]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::abi::IMPORTS;

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
