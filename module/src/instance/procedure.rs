//! Procedure calls (module-abi §4.6, §8.13): no implicit transaction, the
//! procedure opens, commits and aborts its own, and may sleep or make HTTP
//! requests in between.
//!
//! Owns: [`HostedModule::call_procedure`], [`ProcedureRef`],
//! [`ProcedureResult`] and [`ProcedureOutcome`].
//! Does not own: what the procedure imports do (`orrery_module::host::procedure`,
//! `orrery_module::host::http`), or what happens to the committed deltas
//! (schedules, subscriptions and view refresh belong to the caller).
//!
//! Budgets: a procedure gets the same fuel as a reducer
//! ([`CallOptions::fuel_per_call`]), since sleeping and waiting on HTTP burn
//! none, but its own, larger wall-clock cap
//! ([`CallOptions::procedure_deadline`]) that covers the time spent in
//! sleeps and requests: a sleep is cut at the cap, each request's timeout is
//! at most what is left of it, and once past it the epoch interrupt ends the
//! call ([`ProcedureOutcome::Timeout`]). A transaction still open when the
//! procedure returns or traps is rolled back; transactions it already
//! committed stay committed and are listed in [`ProcedureResult::commits`].

use spacetimedb_sats::{AlgebraicValue, ProductValue};
use storage::{Database, TxDelta};
use wasmtime::TypedFunc;

use super::guest_call::words;
use super::{CallOptions, CallReducerParams, CallerContext, Ended, HostedModule};
use crate::host::{ImmediateCall, LogRecord, ProcedureCall};

/// A procedure named by id (position in the module definition) or source name.
#[derive(Clone, Copy, Debug)]
pub enum ProcedureRef<'a> {
    Id(usize),
    Name(&'a str),
}

impl From<usize> for ProcedureRef<'_> {
    fn from(id: usize) -> Self {
        ProcedureRef::Id(id)
    }
}

impl<'a> From<&'a str> for ProcedureRef<'a> {
    fn from(name: &'a str) -> Self {
        ProcedureRef::Name(name)
    }
}

/// How a procedure call ended. Whatever the outcome, the transactions it
/// committed before ending stay committed ([`ProcedureResult::commits`]).
#[derive(Debug, PartialEq)]
pub enum ProcedureOutcome {
    /// Returned; `value` is the BSATN of the procedure's return type.
    Returned { value: Vec<u8> },
    /// Trapped (panic, wasm trap, host-import trap); instance discarded.
    Trapped { message: String },
    /// Used up its fuel; instance discarded.
    OutOfFuel,
    /// Ran past [`CallOptions::procedure_deadline`]; instance discarded.
    Timeout,
    /// The arguments do not decode at the procedure's parameter types; not called.
    BadArguments { message: String },
    /// No procedure with that id or name.
    NoSuchProcedure { procedure: String },
    /// Clients may not call this procedure (it is private); not called.
    NotCallable { procedure: String },
    /// The host could not run the call, or the guest broke the protocol
    /// (unexpected return code, undecodable return value).
    Internal { message: String },
}

/// A procedure call's outcome, logs, fuel and committed transactions.
#[derive(Debug)]
pub struct ProcedureResult {
    pub outcome: ProcedureOutcome,
    pub logs: Vec<LogRecord>,
    /// Fuel the call consumed.
    pub fuel_used: u64,
    /// The delta of every transaction the procedure committed, in commit
    /// order (including empty ones from read-only `with_tx` blocks).
    pub commits: Vec<TxDelta>,
    /// Calls queued with `volatile_nonatomic_schedule_immediate`, for the
    /// host to run after this call.
    pub immediate: Vec<ImmediateCall>,
}

impl ProcedureResult {
    fn bare(outcome: ProcedureOutcome) -> ProcedureResult {
        ProcedureResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 0,
            commits: Vec::new(),
            immediate: Vec::new(),
        }
    }
}

impl HostedModule {
    /// Resolves a procedure reference to its id.
    pub fn procedure_id(&self, procedure: ProcedureRef<'_>) -> Option<usize> {
        match procedure {
            ProcedureRef::Id(id) => (id < self.def.procedures.len()).then_some(id),
            ProcedureRef::Name(name) => self.def.procedure(name).map(|(id, _)| id),
        }
    }

    /// Runs one procedure: type-checks `args` (BSATN of the parameter
    /// product) and calls the guest without a transaction. The procedure may
    /// open its own transactions on `db`, sleep and make HTTP requests under
    /// [`CallOptions::http`]. Blocks the calling thread for as long as the
    /// procedure runs, at most [`CallOptions::procedure_deadline`].
    pub fn call_procedure<'a>(
        &self,
        db: &Database,
        procedure: impl Into<ProcedureRef<'a>>,
        caller: CallerContext,
        args: &[u8],
    ) -> ProcedureResult {
        let procedure = procedure.into();
        let Some(id) = self.procedure_id(procedure) else {
            return ProcedureResult::bare(ProcedureOutcome::NoSuchProcedure {
                procedure: format!("{procedure:?}"),
            });
        };
        let info = &self.def.procedures[id];
        if let Err(message) = check_product(&info.params, args) {
            return ProcedureResult::bare(ProcedureOutcome::BadArguments {
                message: format!("arguments of `{}` {message}", info.source_name),
            });
        }
        let mut instance = match self.take_instance() {
            Ok(instance) => instance,
            Err(e) => {
                return ProcedureResult::bare(ProcedureOutcome::Internal {
                    message: format!("cannot create an instance: {e}"),
                })
            }
        };
        let Some(func) = instance.export::<CallReducerParams, i32>("__call_procedure__") else {
            self.put_back(instance);
            return ProcedureResult::bare(ProcedureOutcome::Internal {
                message:
                    "the module does not export `__call_procedure__` with the expected signature"
                        .into(),
            });
        };
        let options: &CallOptions = &self.options;
        {
            let env = instance.store.data_mut();
            env.tx = None;
            env.call_timestamp_micros = caller.timestamp_micros;
            env.procedure = Some(ProcedureCall {
                db: db.clone(),
                deadline: std::time::Instant::now() + options.procedure_deadline,
                http: options.http.clone(),
                commits: Vec::new(),
            });
        }
        let call = instance.call_guest(
            &info.source_name,
            options.fuel_per_call,
            options.procedure_deadline,
            args,
            |store, args_source, sink| {
                let [s0, s1, s2, s3] = words::<4>(&caller.sender.to_byte_array());
                let [c0, c1] = words::<2>(&caller.connection_id.as_le_byte_array());
                call_export(
                    &func,
                    store,
                    (
                        id as i32,
                        s0,
                        s1,
                        s2,
                        s3,
                        c0,
                        c1,
                        caller.timestamp_micros,
                        args_source as i32,
                        sink as i32,
                    ),
                )
            },
        );
        let mut logs = call.logs;
        let commits = end_own_transactions(instance.store.data_mut(), &info.source_name, &mut logs);
        let healthy = matches!(call.ended, Ended::Returned(0));
        let outcome = match call.ended {
            Ended::Returned(0) => match check_value(&info.return_type, &call.output) {
                Ok(()) => ProcedureOutcome::Returned { value: call.output },
                Err(message) => ProcedureOutcome::Internal {
                    message: format!("the return value of `{}` {message}", info.source_name),
                },
            },
            Ended::Returned(code) => ProcedureOutcome::Internal {
                message: format!("the procedure returned the unexpected code {code}"),
            },
            Ended::Trapped(trap) => ProcedureOutcome::Trapped {
                message: trap.report(&mut logs),
            },
            Ended::OutOfFuel => ProcedureOutcome::OutOfFuel,
            Ended::Timeout => ProcedureOutcome::Timeout,
        };
        if healthy {
            self.put_back(instance);
        }
        ProcedureResult {
            outcome,
            logs,
            fuel_used: call.fuel_used,
            commits,
            immediate: call.immediate,
        }
    }
}

fn call_export(
    func: &TypedFunc<CallReducerParams, i32>,
    store: &mut wasmtime::Store<crate::host::HostEnv>,
    params: CallReducerParams,
) -> wasmtime::Result<i32> {
    func.call(store, params)
}

/// Decodes `bytes` exactly at the product `ty`.
pub(super) fn check_product(
    ty: &spacetimedb_sats::ProductType,
    bytes: &[u8],
) -> Result<(), String> {
    let mut reader = bytes;
    ProductValue::decode(ty, &mut reader).map_err(|e| format!("do not decode: {e}"))?;
    if !reader.is_empty() {
        return Err(format!("have {} trailing bytes", reader.len()));
    }
    Ok(())
}

/// Decodes `bytes` exactly at `ty`.
fn check_value(ty: &spacetimedb_sats::AlgebraicType, bytes: &[u8]) -> Result<(), String> {
    let mut reader = bytes;
    AlgebraicValue::decode(ty, &mut reader).map_err(|e| format!("does not decode: {e}"))?;
    if !reader.is_empty() {
        return Err(format!("has {} trailing bytes", reader.len()));
    }
    Ok(())
}

/// After a procedure or HTTP handler ended: rolls back the transaction it
/// left open (with a notice in `logs`) and returns the ones it committed.
pub(super) fn end_own_transactions(
    env: &mut crate::host::HostEnv,
    function: &str,
    logs: &mut Vec<LogRecord>,
) -> Vec<TxDelta> {
    if let Some(tx) = env.tx.take() {
        tx.rollback();
        let mut notice = LogRecord::host(
            0,
            format!("aborting the transaction `{function}` left open when it ended"),
        );
        notice.function = function.to_owned();
        logs.push(notice);
    }
    env.procedure
        .take()
        .map(|call| call.commits)
        .unwrap_or_default()
}
