//! The procedure imports of `spacetime_10.3` (module-abi §3.4, §8.13):
//! the procedure's own transactions, sleeping, and outbound HTTP.
//!
//! Owns: [`ProcedureCall`] (the per-call state a running procedure needs:
//! its database, wall-clock deadline, HTTP policy and the deltas of the
//! transactions it committed) and the linking of `procedure_sleep_until`,
//! `procedure_start_mut_tx`, `procedure_commit_mut_tx`,
//! `procedure_abort_mut_tx` and `procedure_http_request`.
//! Does not own: the HTTP client and egress policy (`orrery_module::host::http`),
//! calling the procedure or rolling back a transaction left open at its end
//! (`orrery_module::instance::procedure`).
//!
//! Outside a procedure (reducers, views, set-up) sleeping, starting a
//! transaction and HTTP trap; commit and abort answer
//! `TRANSACTION_NOT_ANONYMOUS`. Sleeping and HTTP while the procedure holds
//! a transaction would block every other writer: HTTP answers
//! `WOULD_BLOCK_TRANSACTION`, and sleeping (whose return value is a time,
//! not an errno) traps with that name, as the spec prescribes. A sleep that
//! would wake after the call's deadline sleeps until the deadline and then
//! ends the call as timed out (an epoch interrupt trap).

use std::time::Instant;

use spacetimedb_lib::http::Request;
use spacetimedb_primitives::errno;
use storage::{Database, TxDelta};
use wasmtime::{bail, Caller, Linker};

use super::http::{self, HttpPolicy};
use super::{
    errno as code, memory, range, slice, wall_clock_micros, write_bytes, HostEnv, LogRecord,
};

/// What a running procedure needs beyond the common host state.
pub(crate) struct ProcedureCall {
    /// The database its transactions open on.
    pub(crate) db: Database,
    /// When the call's wall-clock cap runs out.
    pub(crate) deadline: Instant,
    pub(crate) http: HttpPolicy,
    /// Deltas of the transactions it committed, in order.
    pub(crate) commits: Vec<TxDelta>,
}

impl ProcedureCall {
    fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

pub(super) fn link(linker: &mut Linker<HostEnv>) -> wasmtime::Result<()> {
    let v3 = "spacetime_10.3";
    let not_anonymous = code(errno::TRANSACTION_NOT_ANONYMOUS);
    let would_block = code(errno::WOULD_BLOCK_TRANSACTION);

    linker.func_wrap(
        v3,
        "procedure_sleep_until",
        |caller: Caller<'_, HostEnv>, wake_at: i64| -> wasmtime::Result<i64> {
            let env = caller.data();
            let Some(call) = env.procedure.as_ref() else {
                bail!("procedure_sleep_until called outside a procedure");
            };
            if env.tx.is_some() {
                bail!(
                    "procedure_sleep_until called while holding a transaction \
                     (WOULD_BLOCK_TRANSACTION): sleeping would block every other writer"
                );
            }
            let now = wall_clock_micros();
            if wake_at > now {
                let wanted = std::time::Duration::from_micros((wake_at - now) as u64);
                let remaining = call.remaining();
                if wanted > remaining {
                    // Waking after the deadline is not allowed: sleep out
                    // the call's time and end it as timed out.
                    std::thread::sleep(remaining);
                    return Err(wasmtime::Error::new(wasmtime::Trap::Interrupt));
                }
                std::thread::sleep(wanted);
            }
            Ok(wall_clock_micros())
        },
    )?;
    linker.func_wrap(
        v3,
        "procedure_start_mut_tx",
        move |mut caller: Caller<'_, HostEnv>, out: i32| -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            range(memory, out, 8)?;
            let Some(call) = env.procedure.as_ref() else {
                bail!("procedure_start_mut_tx called outside a procedure");
            };
            if env.tx.is_some() {
                return Ok(would_block);
            }
            let tx = match call.db.begin() {
                Ok(tx) => tx,
                Err(e) => bail!("procedure_start_mut_tx: cannot open a transaction: {e}"),
            };
            let timestamp = wall_clock_micros();
            env.call_timestamp_micros = timestamp;
            env.tx = Some(tx);
            write_bytes(memory, out, &timestamp.to_le_bytes()).map(|()| 0)
        },
    )?;
    linker.func_wrap(
        v3,
        "procedure_commit_mut_tx",
        move |mut caller: Caller<'_, HostEnv>| -> i32 {
            let env = caller.data_mut();
            // A reducer's transaction is not the procedure's to commit.
            if env.procedure.is_none() {
                return not_anonymous;
            }
            let Some(tx) = env.tx.take() else {
                return not_anonymous;
            };
            match tx.commit() {
                Ok(delta) => {
                    if let Some(call) = env.procedure.as_mut() {
                        call.commits.push(delta);
                    }
                    0
                }
                Err(e) => {
                    env.push_log(LogRecord::host(
                        1,
                        format!("the procedure's transaction failed to commit: {e}"),
                    ));
                    code(errno::HOST_CALL_FAILURE)
                }
            }
        },
    )?;
    linker.func_wrap(
        v3,
        "procedure_abort_mut_tx",
        move |mut caller: Caller<'_, HostEnv>| -> i32 {
            let env = caller.data_mut();
            if env.procedure.is_none() {
                return not_anonymous;
            }
            match env.tx.take() {
                Some(tx) => {
                    tx.rollback();
                    0
                }
                None => not_anonymous,
            }
        },
    )?;
    linker.func_wrap(
        v3,
        "procedure_http_request",
        move |mut caller: Caller<'_, HostEnv>,
              request_ptr: i32,
              request_len: i32,
              body_ptr: i32,
              body_len: i32,
              out: i32|
              -> wasmtime::Result<i32> {
            let (memory, env) = memory(&mut caller)?;
            let request_bytes = slice(memory, request_ptr, request_len)?.to_vec();
            let body = slice(memory, body_ptr, body_len)?.to_vec();
            range(memory, out, 8)?;
            if out == 0 {
                bail!("null pointer");
            }
            let Some(call) = env.procedure.as_ref() else {
                bail!("procedure_http_request called outside a procedure");
            };
            if env.tx.is_some() {
                return Ok(would_block);
            }
            let Ok(request) = spacetimedb_lib::bsatn::from_slice::<Request>(&request_bytes) else {
                return Ok(code(errno::BSATN_DECODE_ERROR));
            };
            let result = http::perform(&call.http, call.remaining(), request, &body);
            match result {
                Ok((response, body)) => {
                    let metadata = spacetimedb_lib::bsatn::to_vec(&response)
                        .map_err(|e| wasmtime::format_err!("encoding a response: {e}"))?;
                    let response_source = env.new_source(metadata);
                    let body_source = if body.is_empty() {
                        0
                    } else {
                        env.new_source(body)
                    };
                    let mut handles = [0u8; 8];
                    handles[..4].copy_from_slice(&response_source.to_le_bytes());
                    handles[4..].copy_from_slice(&body_source.to_le_bytes());
                    write_bytes(memory, out, &handles).map(|()| 0)
                }
                Err(message) => {
                    let encoded = spacetimedb_lib::bsatn::to_vec(&message)
                        .map_err(|e| wasmtime::format_err!("encoding an error: {e}"))?;
                    let source = env.new_source(encoded);
                    write_bytes(memory, out, &source.to_le_bytes())?;
                    Ok(code(errno::HTTP_ERROR))
                }
            }
        },
    )?;
    Ok(())
}
