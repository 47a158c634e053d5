//! HTTP handler calls (module-abi §4.9, §8.14): like a procedure, no
//! implicit transaction (the handler opens, commits and aborts its own with
//! `with_tx`) and policed outbound HTTP, but the input is a request (BSATN
//! `spacetimedb_lib::http::Request` plus the raw body) and the output a
//! response (BSATN `Response` in one sink, the raw body in another).
//!
//! Owns: [`HostedModule::call_http_handler`], [`HttpHandlerResult`],
//! [`HttpHandlerOutcome`] and [`HttpResponseParts`].
//! Does not own: routing a request to a handler (`ModuleDef::http_route`),
//! the HTTP server (`orrery_edge`), or what happens to the committed deltas
//! and queued calls (the caller's).
//!
//! Budgets: the same fuel as a reducer ([`CallOptions::fuel_per_call`]) and
//! a wall-clock cap of its own ([`CallOptions::http_handler_deadline`]) that
//! covers its transactions and outbound requests; a handler past either is
//! stopped, its open transaction rolled back, its instance discarded.

use spacetimedb_lib::http::{Request, Response};
use storage::{Database, TxDelta};

use super::procedure::end_own_transactions;
use super::{CallOptions, Ended, HostedModule};
use crate::host::{ImmediateCall, LogRecord, ProcedureCall};

/// The response a handler returned, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponseParts {
    pub code: u16,
    /// Header names and raw values, in the order the handler set them.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// How a handler call ended. Whatever the outcome, the transactions it
/// committed before ending stay committed ([`HttpHandlerResult::commits`]).
#[derive(Debug, PartialEq)]
pub enum HttpHandlerOutcome {
    Responded(HttpResponseParts),
    /// Trapped (panic, wasm trap, host-import trap); instance discarded.
    Trapped {
        message: String,
    },
    /// Used up its fuel; instance discarded.
    OutOfFuel,
    /// Ran past [`CallOptions::http_handler_deadline`]; instance discarded.
    Timeout,
    /// No handler with that id.
    NoSuchHandler {
        handler: usize,
    },
    /// The host could not run the call, or the guest broke the protocol
    /// (unexpected return code, undecodable response).
    Internal {
        message: String,
    },
}

/// A handler call's outcome, logs, fuel, committed transactions and queued calls.
#[derive(Debug)]
pub struct HttpHandlerResult {
    pub outcome: HttpHandlerOutcome,
    pub logs: Vec<LogRecord>,
    pub fuel_used: u64,
    /// The delta of every transaction the handler committed, in commit order.
    pub commits: Vec<TxDelta>,
    /// Calls queued with `volatile_nonatomic_schedule_immediate`.
    pub immediate: Vec<ImmediateCall>,
}

impl HttpHandlerResult {
    fn bare(outcome: HttpHandlerOutcome) -> HttpHandlerResult {
        HttpHandlerResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 0,
            commits: Vec::new(),
            immediate: Vec::new(),
        }
    }
}

/// The export's signature: id, timestamp, request source, body source,
/// response sink, response body sink → code.
type HttpHandlerParams = (i32, i64, i32, i32, i32, i32);

impl HostedModule {
    /// Runs HTTP handler `handler` (its position in the definition) on
    /// `request` and `body`, without a transaction: the handler may open its
    /// own on `db` and make outbound requests under [`CallOptions::http`].
    /// Blocks the calling thread for as long as the handler runs, at most
    /// [`CallOptions::http_handler_deadline`].
    pub fn call_http_handler(
        &self,
        db: &Database,
        handler: usize,
        request: &Request,
        body: &[u8],
        timestamp_micros: i64,
    ) -> HttpHandlerResult {
        let Some(info) = self.def.http_handlers.get(handler) else {
            return HttpHandlerResult::bare(HttpHandlerOutcome::NoSuchHandler { handler });
        };
        let request_bytes = match spacetimedb_lib::bsatn::to_vec(request) {
            Ok(bytes) => bytes,
            Err(e) => {
                return HttpHandlerResult::bare(HttpHandlerOutcome::Internal {
                    message: format!("the request does not encode: {e}"),
                })
            }
        };
        let mut instance = match self.take_instance() {
            Ok(instance) => instance,
            Err(e) => {
                return HttpHandlerResult::bare(HttpHandlerOutcome::Internal {
                    message: format!("cannot create an instance: {e}"),
                })
            }
        };
        let Some(func) = instance.export::<HttpHandlerParams, i32>("__call_http_handler__") else {
            self.put_back(instance);
            return HttpHandlerResult::bare(HttpHandlerOutcome::Internal {
                message: "the module does not export `__call_http_handler__` with the expected \
                          signature"
                    .into(),
            });
        };
        let options: &CallOptions = &self.options;
        {
            let env = instance.store.data_mut();
            env.tx = None;
            env.call_timestamp_micros = timestamp_micros;
            env.procedure = Some(ProcedureCall {
                db: db.clone(),
                deadline: std::time::Instant::now() + options.http_handler_deadline,
                http: options.http.clone(),
                commits: Vec::new(),
            });
        }
        let call = instance.call_guest(
            &info.source_name,
            options.fuel_per_call,
            options.http_handler_deadline,
            &request_bytes,
            |store, request_source, response_sink| {
                let env = store.data_mut();
                // An empty body is the invalid source 0 (§4.9).
                let body_source = if body.is_empty() {
                    0
                } else {
                    env.new_source(body.to_vec())
                };
                let body_sink = env.new_sink();
                func.call(
                    store,
                    (
                        handler as i32,
                        timestamp_micros,
                        request_source as i32,
                        body_source as i32,
                        response_sink as i32,
                        body_sink as i32,
                    ),
                )
            },
        );
        let mut logs = call.logs;
        let commits = end_own_transactions(instance.store.data_mut(), &info.source_name, &mut logs);
        let healthy = matches!(call.ended, Ended::Returned(0));
        let outcome = match call.ended {
            Ended::Returned(0) => {
                let body = call.extra_sinks.into_iter().next().unwrap_or_default();
                match decode_response(&call.output, body) {
                    Ok(response) => HttpHandlerOutcome::Responded(response),
                    Err(message) => HttpHandlerOutcome::Internal {
                        message: format!("the response of `{}` {message}", info.source_name),
                    },
                }
            }
            Ended::Returned(code) => HttpHandlerOutcome::Internal {
                message: format!("the HTTP handler returned the unexpected code {code}"),
            },
            Ended::Trapped(trap) => HttpHandlerOutcome::Trapped {
                message: trap.report(&mut logs),
            },
            Ended::OutOfFuel => HttpHandlerOutcome::OutOfFuel,
            Ended::Timeout => HttpHandlerOutcome::Timeout,
        };
        if healthy {
            self.put_back(instance);
        }
        HttpHandlerResult {
            outcome,
            logs,
            fuel_used: call.fuel_used,
            commits,
            immediate: call.immediate,
        }
    }
}

/// Decodes the response sink (BSATN `Response`, exactly) and pairs it with
/// the body; the status must be a valid HTTP status code.
fn decode_response(bytes: &[u8], body: Vec<u8>) -> Result<HttpResponseParts, String> {
    let response: Response =
        spacetimedb_lib::bsatn::from_slice(bytes).map_err(|e| format!("does not decode: {e}"))?;
    if !(100..=999).contains(&response.code) {
        return Err(format!("has the invalid status code {}", response.code));
    }
    Ok(HttpResponseParts {
        code: response.code,
        headers: response
            .headers
            .into_iter()
            .map(|(name, value)| (name.into_string(), value.into_vec()))
            .collect(),
        body,
    })
}
