//! One call of a guest export other than `__call_reducer__`: resetting the
//! per-call host state, the argument source and the output sink, fuel and
//! the wall-clock deadline, and collecting what the call left behind.
//!
//! Owns: [`ModuleInstance::call_guest`] and [`GuestCall`], shared by
//! procedures (`instance::procedure`) and views (`instance::view`).
//! Does not own: the transaction or procedure state of the call (the caller
//! puts it into the store before and takes it out after), or what the output
//! means. Reducers keep their own path (`ModuleInstance::invoke`).

use std::time::Duration;

use wasmtime::{Store, TypedFunc, WasmParams};

use super::{Ended, ModuleInstance};
use crate::host::{HostEnv, LogRecord, LOG_RECORDS_PER_CALL_MAX};

/// What one guest call left behind.
pub(super) struct GuestCall {
    pub(super) ended: Ended,
    /// The bytes the guest wrote to the output sink.
    pub(super) output: Vec<u8>,
    pub(super) logs: Vec<LogRecord>,
    pub(super) fuel_used: u64,
    /// Calls queued with `volatile_nonatomic_schedule_immediate`.
    pub(super) immediate: Vec<crate::host::ImmediateCall>,
    /// The other sinks the call created, in handle order.
    pub(super) extra_sinks: Vec<Vec<u8>>,
}

/// An identity or connection id (little-endian bytes) as the i64 words of
/// module-abi §4.0.
pub(super) fn words<const N: usize>(bytes: &[u8]) -> [i64; N] {
    let mut out = [0i64; N];
    for (i, word) in out.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        *word = u64::from_le_bytes(w) as i64;
    }
    out
}

impl ModuleInstance {
    /// The typed export `name`, if the module has it with that signature.
    pub(super) fn export<P: WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> Option<TypedFunc<P, R>> {
        self.instance.get_typed_func(&mut self.store, name).ok()
    }

    /// Calls one export: `call(store, args_source, output_sink)` with fresh
    /// per-call handles, `fuel` and a deadline of `deadline` from now; logs
    /// are stamped with `function`.
    pub(super) fn call_guest(
        &mut self,
        function: &str,
        fuel: u64,
        deadline: Duration,
        args: &[u8],
        call: impl FnOnce(&mut Store<HostEnv>, u32, u32) -> wasmtime::Result<i32>,
    ) -> GuestCall {
        let env = self.store.data_mut();
        env.end_call();
        env.logs.clear();
        env.logs_dropped = 0;
        env.function.clear();
        env.function.push_str(function);
        // Empty arguments are passed as the invalid source 0 (§4.0).
        let args_source = if args.is_empty() {
            0
        } else {
            env.new_source(args.to_vec())
        };
        let sink = env.new_sink();
        let fuel_set = self.store.set_fuel(fuel).is_ok();
        self.store.set_epoch_deadline(crate::ticks(deadline));
        let result = call(&mut self.store, args_source, sink);
        let fuel_used = if fuel_set {
            fuel.saturating_sub(self.store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        let ended = match result {
            Ok(code) => Ended::Returned(code),
            Err(error) => Ended::from_error(error),
        };
        let env = self.store.data_mut();
        let output = env.take_sink(sink);
        let extra_sinks = env.take_sinks();
        let immediate = std::mem::take(&mut env.immediate);
        let mut logs = std::mem::take(&mut env.logs);
        if env.logs_dropped > 0 {
            let mut notice = LogRecord::host(
                1,
                format!(
                    "{} further log records of this call were dropped (limit {})",
                    env.logs_dropped, LOG_RECORDS_PER_CALL_MAX
                ),
            );
            notice.function.clone_from(&env.function);
            logs.push(notice);
            env.logs_dropped = 0;
        }
        env.end_call();
        env.function.clear();
        GuestCall {
            ended,
            output,
            logs,
            fuel_used,
            immediate,
            extra_sinks,
        }
    }
}
