//! A database's HTTP handlers (module-abi §4.9, §8.14) and the calls its
//! module queues with `volatile_nonatomic_schedule_immediate` (§3.1, §8.6).
//!
//! Owns: [`HostedDatabase::submit_http_handler`] and
//! [`HostedDatabase::call_http_handler`] (a request, routed by method and
//! exact path, runs on the host's procedure pool under one of the
//! database's procedure slots, like a procedure: it may wait on its own
//! transactions and outbound HTTP without holding the lane), and the
//! dispatch of queued immediate calls: each becomes a job of its own on the
//! database's lane, so it runs after the call that queued it has ended
//! (committed or not), as its own transaction, with the database identity
//! as sender and connection id 0. An unknown name or bad arguments are
//! logged to the module's log, never a crash.
//! Does not own: matching routes (`orrery_moduledef`), running the guest
//! (`orrery_module`), or the HTTP server (`orrery_edge`).

use std::sync::Arc;

use spacetimedb_lib::http::Request;
use spacetimedb_lib::ConnectionId;

use super::pool::SubmitError;
use super::{wait, DbShared, HostedDatabase};
use crate::logs::LogLevel;
use orrery_module::{
    CallerContext, HttpHandlerOutcome, HttpHandlerResult, ImmediateCall, ProcedureRef, ReducerRef,
};

impl HostedDatabase {
    /// Queues a request for the HTTP handler routed at `path` (below the
    /// route prefix: `""`, `"/"` or `"/…"`) for `request.method`, on the
    /// host's procedure pool; `reply` gets the result on a thread of the
    /// pool. The route is resolved against the module serving when the call
    /// runs: no route is [`HttpHandlerOutcome::NoSuchHandler`].
    pub fn submit_http_handler(
        &self,
        path: String,
        request: Request,
        body: Vec<u8>,
        reply: impl FnOnce(HttpHandlerResult) + Send + 'static,
    ) -> Result<(), SubmitError> {
        let shared = self.shared.clone();
        self.shared.spawn_procedure(move || {
            reply(shared.http_handler(&path, &request, &body));
        })
    }

    /// [`HostedDatabase::submit_http_handler`], waiting for the result.
    pub fn call_http_handler(
        &self,
        path: &str,
        request: Request,
        body: Vec<u8>,
    ) -> Result<HttpHandlerResult, SubmitError> {
        wait(|reply| self.submit_http_handler(path.to_owned(), request, body, reply))
    }
}

impl DbShared {
    /// Routes and runs one request (on the calling thread), then does the
    /// after-work of each transaction the handler committed.
    fn http_handler(&self, path: &str, request: &Request, body: &[u8]) -> HttpHandlerResult {
        let module = self.module();
        let Some(handler) = module.def().http_route(&request.method, path) else {
            let result = HttpHandlerResult {
                outcome: HttpHandlerOutcome::NoSuchHandler {
                    handler: usize::MAX,
                },
                logs: Vec::new(),
                fuel_used: 0,
                commits: Vec::new(),
                immediate: Vec::new(),
            };
            self.stats
                .record_http_handler(&result, std::time::Duration::ZERO);
            return result;
        };
        let name = module.def().http_handlers[handler].source_name.clone();
        let now = self.clock.now_micros();
        let started = std::time::Instant::now();
        let result = module.call_http_handler(&self.storage, handler, request, body, now);
        self.stats.record_http_handler(&result, started.elapsed());
        self.log.append(&result.logs);
        for delta in &result.commits {
            self.after_commit(delta);
        }
        let note = match &result.outcome {
            HttpHandlerOutcome::Trapped { message } => Some(format!("trapped: {message}")),
            HttpHandlerOutcome::OutOfFuel => Some("ran out of fuel".into()),
            HttpHandlerOutcome::Timeout => Some("ran past its deadline".into()),
            HttpHandlerOutcome::Internal { message } => Some(format!("host error: {message}")),
            HttpHandlerOutcome::Responded(_) | HttpHandlerOutcome::NoSuchHandler { .. } => None,
        };
        if let Some(note) = note {
            self.log.append_host(LogLevel::Error, &name, note);
        }
        self.queue_immediate(&result.immediate);
        result
    }

    /// Queues each call a finished call queued with
    /// `volatile_nonatomic_schedule_immediate`, in order, on the lane.
    pub(super) fn queue_immediate(&self, calls: &[ImmediateCall]) {
        if calls.is_empty() {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        for call in calls {
            let runner = me.clone();
            let call = call.clone();
            let function = call.function.clone();
            let queued = self
                .pool
                .submit(&self.lane, Box::new(move || runner.run_immediate(call)));
            if let Err(e) = queued {
                self.log.append_host(
                    LogLevel::Error,
                    &function,
                    format!("volatile_nonatomic_schedule_immediate: the call was dropped: {e}"),
                );
            }
        }
    }

    /// Runs one queued immediate call (on the lane): a reducer in its own
    /// transaction, or a procedure on the procedure pool.
    fn run_immediate(self: Arc<Self>, call: ImmediateCall) {
        let module = self.module();
        let caller = CallerContext {
            sender: self.identity(&module),
            connection_id: ConnectionId::ZERO,
            timestamp_micros: self.clock.now_micros(),
        };
        if let Some(id) = module.reducer_id(ReducerRef::Name(&call.function)) {
            let started = std::time::Instant::now();
            let result = module.call_reducer(&self.storage, ReducerRef::Id(id), caller, &call.args);
            self.stats.record(&result, started.elapsed());
            let name = module.def().reducers[id].source_name.clone();
            self.finish(&name, &result);
        } else if let Some(id) = module.procedure_id(ProcedureRef::Name(&call.function)) {
            let me = self.clone();
            let spawned = self.spawn_procedure(move || {
                me.procedure(&module, id, caller, &call.args);
            });
            if let Err(e) = spawned {
                self.log.append_host(
                    LogLevel::Error,
                    "",
                    format!("volatile_nonatomic_schedule_immediate: the call was dropped: {e}"),
                );
            }
        } else {
            self.log.append_host(
                LogLevel::Error,
                "",
                format!(
                    "volatile_nonatomic_schedule_immediate: the module has no reducer or \
                     procedure named {:?}; the call was dropped",
                    call.function
                ),
            );
        }
    }
}
