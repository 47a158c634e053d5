//! The WebSocket session of one client (client-protocol §4).
//!
//! Owns: what happens on an upgraded socket — the connect hook (a refusal
//! closes the socket without a message), `InitialConnection` first, decoding
//! client payloads and dispatching each message in arrival order to the
//! database's lane, writing the connection's [`Outbox`] to the socket (held
//! back until durable for `confirmed` sessions), keep-alive pings and the
//! idle timeout, the in-flight request cap, closing with a code and a reason,
//! and the disconnect hook when the session ends.
//! The per-message half, without the socket, is [`Dispatcher`]: decode one
//! payload, refuse malformed function names with a reply, dispatch each
//! message; the fuzz targets (`fuzz/`) drive it directly.
//! Does not own: the upgrade request (route, credentials, negotiation: the
//! database routes), subscriptions and commit fan-out (`clients`), message
//! bytes (`wire`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use spacetimedb_lib::{ConnectionId, Identity, TimeDuration, Timestamp};

use orrery_api::limits::{self, FUNCTION_NAME_BYTES_MAX};
use orrery_module::{CallResult, CallerContext, ProcedureOutcome, ProcedureResult, ReducerOutcome};
use orrery_wire::compression::{self, Compression};
use orrery_wire::framing::{decode_client_payload, payload_runs, Protocol};
use orrery_wire::messages::{ProcedureStatus, ReducerOutcome as WireOutcome};
use orrery_wire::negotiate::Negotiated;
use orrery_wire::{ClientMessage, ServerMessage};
use tenant_host::clients::{Outbox, Outgoing, OUTBOX_BYTES_MAX, OUTBOX_MESSAGES_MAX};
use tenant_host::hosting::HostedDatabase;

/// Limits and timers of WebSocket sessions.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// A Ping is sent after this long without one.
    pub ping_interval: Duration,
    /// A session that received nothing (data or control) for this long is dropped.
    pub idle_timeout: Duration,
    /// Client requests queued or running at once before the session is
    /// closed with 1013.
    pub in_flight_max: usize,
    pub outbox_bytes_max: usize,
    pub outbox_messages_max: usize,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            ping_interval: Duration::from_millis(limits::WS_PING_INTERVAL_MS),
            idle_timeout: Duration::from_millis(limits::WS_IDLE_TIMEOUT_MS),
            in_flight_max: limits::WS_IN_FLIGHT_MESSAGES_MAX,
            outbox_bytes_max: OUTBOX_BYTES_MAX,
            outbox_messages_max: OUTBOX_MESSAGES_MAX,
        }
    }
}

/// Who is on the socket and how it talks.
pub struct Session {
    pub database: HostedDatabase,
    pub identity: Identity,
    pub connection_id: ConnectionId,
    /// The token the session authenticated with (or the freshly minted one);
    /// echoed in `InitialConnection`.
    pub token: String,
    /// The JWT claims as JSON, for the module's `get_jwt`.
    pub jwt_payload: Option<String>,
    /// Whether the session sees the database as its owner (private tables):
    /// the owner's identity with the right to read (`access::owner_may`).
    pub owner: bool,
    pub negotiated: Negotiated,
}

/// Serves one upgraded socket until either side ends the session.
pub async fn run(mut socket: WebSocket, session: Session, config: WsConfig) {
    let db = session.database.clone();
    let identity = session.identity;
    let connection_id = session.connection_id;
    let payload = session.jwt_payload.clone();
    let connect_db = db.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        connect_db.client_connected(identity, connection_id, payload)
    })
    .await;
    let accepted = matches!(&accepted, Ok(Ok(result)) if result.outcome.is_committed());
    if !accepted {
        // Refused (or the database could not run the hook): close without a
        // message, as the reference does (client-protocol §4.3).
        return;
    }
    let outbox = Outbox::new(config.outbox_bytes_max, config.outbox_messages_max);
    outbox.push_message(&ServerMessage::InitialConnection {
        identity,
        connection_id,
        token: session.token.clone(),
    });
    let clients = db.clients().clone();
    clients.connect(connection_id, identity, session.owner, outbox.clone());
    let mut durable = clients.durable();
    let confirmed = session.negotiated.confirmed;
    let compression = session.negotiated.compression;
    let protocol = session.negotiated.protocol;
    let dispatcher = Dispatcher::new(session, outbox.clone(), config.in_flight_max);
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;

    let close: Option<(u16, String)> = loop {
        tokio::select! {
            batch = outbox.next_batch() => match batch {
                Ok(items) => {
                    if confirmed {
                        // Offsets only grow: waiting for the last one covers all.
                        if let Some(offset) = items.iter().filter_map(|i| i.offset).max() {
                            if durable.wait_for(|d| *d > offset.0).await.is_err() {
                                break None;
                            }
                        }
                    }
                    // Every payload of the batch is written, then flushed
                    // once: one write to the socket for a burst of replies.
                    let mut failed = false;
                    for bytes in payloads(protocol, compression, &items) {
                        if socket.feed(Message::Binary(bytes)).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed || socket.flush().await.is_err() {
                        break None;
                    }
                }
                Err(closed) => break Some((closed.code, closed.reason)),
            },
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break None };
                last_heard = Instant::now();
                match message {
                    Message::Binary(bytes) => {
                        if let Err(close) = dispatcher.payload(&bytes) {
                            break Some(close);
                        }
                    }
                    Message::Text(_) => {
                        break Some((1011, "text frames are not part of the protocol; send binary BSATN".into()))
                    }
                    Message::Close(_) => break None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= config.idle_timeout {
                    break Some((1000, "idle timeout: nothing received".into()));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    clients.disconnect(connection_id);
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: truncate_reason(reason).into(),
        };
        if let Err(e) = socket.send(Message::Close(Some(frame))).await {
            // The peer is already gone: the session is over either way.
            tracing::debug!(error = %e, code, "close frame not sent");
        }
        // Give the client a moment to answer the close; one that does not
        // answer in time is closed all the same when the socket drops.
        let answered = tokio::time::timeout(Duration::from_millis(250), async {
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        if answered.is_err() {
            tracing::debug!(code, "the client did not answer the close in time");
        }
    }
    drop(socket);
    let teardown = tokio::task::spawn_blocking(move || {
        match db.client_disconnected(identity, connection_id) {
            Ok(Some(result)) if !result.outcome.is_committed() => {
                // The module's hook failed; the host still removed the client
                // record, and the failure is in the module's log.
                tracing::debug!(outcome = ?result.outcome, "client_disconnected hook failed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = %e,
                %connection_id,
                "client_disconnected could not run; the client record stays until the next open"
            ),
        }
        // On the lane, where subscribing materialises views.
        let evicting = db.clone();
        if let Err(e) = db.submit_job(move || evicting.drop_unused_views()) {
            // Unused views are dropped again after the next unsubscribe or open.
            tracing::debug!(error = %e, "dropping unused views deferred");
        }
    })
    .await;
    if let Err(e) = teardown {
        tracing::error!(error = %e, %connection_id, "WebSocket teardown panicked");
    }
}

/// The per-message half of a session, without the socket: decodes the
/// client's payloads and hands each message, in order, to the database.
/// [`run`] drives one per socket; tests and fuzz targets drive one directly
/// (with an [`Outbox`] they read themselves).
pub struct Dispatcher {
    session: Session,
    outbox: Arc<Outbox>,
    in_flight: Arc<AtomicUsize>,
    in_flight_max: usize,
}

impl Dispatcher {
    /// Dispatches for `session`, replying into `outbox`; at most
    /// `in_flight_max` requests queued or running before the outbox is
    /// closed with 1013.
    pub fn new(session: Session, outbox: Arc<Outbox>, in_flight_max: usize) -> Dispatcher {
        Dispatcher {
            session,
            outbox,
            in_flight: Arc::new(AtomicUsize::new(0)),
            in_flight_max,
        }
    }

    /// Decodes one binary payload (its messages in the session's protocol)
    /// and dispatches each message. A payload that does not decode ends the
    /// session: `Err((1011, reason))`, nothing of it dispatched. Every other
    /// outcome, refusals included, is a reply in the outbox.
    pub fn payload(&self, bytes: &[u8]) -> Result<(), (u16, String)> {
        let messages = decode_client_payload(self.session.negotiated.protocol, bytes)
            .map_err(|e| (1011, format!("cannot decode the message: {e}")))?;
        for message in messages {
            if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.in_flight_max {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                self.outbox.close(1013, "too many requests");
                break;
            }
            dispatch(&self.session, &self.outbox, &self.in_flight, message);
        }
        Ok(())
    }

    /// Requests dispatched whose reply is not yet queued.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn session(&self) -> &Session {
        &self.session
    }
}

/// Why a client's reducer or procedure name cannot name any function: empty,
/// longer than [`FUNCTION_NAME_BYTES_MAX`], or holding a control character
/// (NUL among them). Such a name is answered with this text and never
/// reaches the database. `what` is "reducer" or "procedure".
pub fn invalid_function_name(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("invalid {what} name: the name is empty"));
    }
    if name.len() > FUNCTION_NAME_BYTES_MAX {
        return Some(format!(
            "invalid {what} name: {} bytes, the limit is {FUNCTION_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    let (at, c) = name.char_indices().find(|(_, c)| c.is_control())?;
    Some(format!(
        "invalid {what} name {:?}: names may not contain control characters \
         (U+{:04X} at byte {at})",
        truncate_reason(name.to_owned()),
        c as u32
    ))
}

/// Close reasons are limited to 123 bytes on the wire.
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

/// Hands one client message to the database: every kind goes through the
/// lane (procedures to their own threads), so replies come in request order.
fn dispatch(
    session: &Session,
    outbox: &Arc<Outbox>,
    in_flight: &Arc<AtomicUsize>,
    message: ClientMessage,
) {
    let db = &session.database;
    let connection = session.connection_id;
    let done = {
        let in_flight = in_flight.clone();
        move || {
            in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    };
    let overloaded = |what: &str| format!("the database is overloaded; {what} was not run");
    // Runs `job` on the database's lane; if the lane refuses it, `refused`
    // is the reply instead.
    let on_lane = |job: Box<dyn FnOnce(&HostedDatabase) + Send>, refused: ServerMessage| {
        let job_db = db.clone();
        let in_flight_done = in_flight.clone();
        let submitted = db.submit_job(move || {
            job(&job_db);
            in_flight_done.fetch_sub(1, Ordering::AcqRel);
        });
        if submitted.is_err() {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            outbox.push_message(&refused);
        }
    };
    match message {
        ClientMessage::Subscribe {
            request_id,
            query_set_id,
            query_strings,
        } => on_lane(
            Box::new(move |db| db.subscribe(connection, request_id, query_set_id, &query_strings)),
            ServerMessage::SubscriptionError {
                request_id: Some(request_id),
                query_set_id,
                error: overloaded("the subscription"),
            },
        ),
        ClientMessage::Unsubscribe {
            request_id,
            query_set_id,
            flags,
        } => on_lane(
            Box::new(move |db| db.unsubscribe(connection, request_id, query_set_id, flags)),
            ServerMessage::SubscriptionError {
                request_id: Some(request_id),
                query_set_id,
                error: overloaded("the unsubscribe"),
            },
        ),
        ClientMessage::OneOffQuery {
            request_id,
            query_string,
        } => on_lane(
            Box::new(move |db| db.one_off(connection, request_id, &query_string)),
            ServerMessage::OneOffQueryResult {
                request_id,
                result: Err(overloaded("the query")),
            },
        ),
        ClientMessage::CallReducer {
            request_id,
            reducer,
            args,
        } => {
            let timestamp = db.clock().now_micros();
            if let Some(error) = invalid_function_name("reducer", &reducer) {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                outbox.push_message(&ServerMessage::ReducerResult {
                    request_id,
                    timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                    result: WireOutcome::InternalError(error),
                });
                return;
            }
            let caller = caller(session, timestamp);
            let reply_box = outbox.clone();
            let name = reducer.clone();
            let submitted = db.submit_reducer_from(
                reducer,
                caller,
                request_id,
                args,
                move |result, delivered| {
                    if !delivered {
                        reply_box.push_message(&ServerMessage::ReducerResult {
                            request_id,
                            timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                            result: reducer_outcome(&name, &result),
                        });
                    }
                    done();
                },
            );
            if submitted.is_err() {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                outbox.push_message(&ServerMessage::ReducerResult {
                    request_id,
                    timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                    result: WireOutcome::InternalError(overloaded("the reducer")),
                });
            }
        }
        ClientMessage::CallProcedure {
            request_id,
            procedure,
            args,
        } => {
            let started = Instant::now();
            let timestamp = db.clock().now_micros();
            if let Some(error) = invalid_function_name("procedure", &procedure) {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                outbox.push_message(&ServerMessage::ProcedureResult {
                    status: ProcedureStatus::InternalError(error),
                    timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                    total_host_execution_duration: TimeDuration::from_micros(0),
                    request_id,
                });
                return;
            }
            let caller = caller(session, timestamp);
            let reply_box = outbox.clone();
            let submitted = db.submit_procedure(procedure, caller, args, move |result| {
                reply_box.push_message(&ServerMessage::ProcedureResult {
                    status: procedure_status(result),
                    timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                    total_host_execution_duration: TimeDuration::from_micros(
                        started.elapsed().as_micros() as i64,
                    ),
                    request_id,
                });
                done();
            });
            if let Err(e) = submitted {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                outbox.push_message(&ServerMessage::ProcedureResult {
                    status: ProcedureStatus::InternalError(format!(
                        "the procedure was not run: {e}"
                    )),
                    timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                    total_host_execution_duration: TimeDuration::from_micros(0),
                    request_id,
                });
            }
        }
    }
}

/// The session's identity and connection calling at `timestamp_micros`.
fn caller(session: &Session, timestamp_micros: i64) -> CallerContext {
    CallerContext {
        sender: session.identity,
        connection_id: session.connection_id,
        timestamp_micros,
    }
}

/// BSATN of a string: u32 length, then the bytes.
fn bsatn_string(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + s.len());
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

/// The wire outcome of a reducer call that did not deliver its own result
/// (client-protocol §4.7).
pub fn reducer_outcome(reducer: &str, result: &CallResult) -> WireOutcome {
    match &result.outcome {
        ReducerOutcome::Committed { .. } => WireOutcome::OkEmpty,
        ReducerOutcome::Failed { message } => WireOutcome::Err(bsatn_string(message)),
        ReducerOutcome::Trapped { message } => {
            WireOutcome::InternalError(format!("the reducer panicked: {message}"))
        }
        ReducerOutcome::OutOfFuel => WireOutcome::InternalError("reducer ran out of energy".into()),
        ReducerOutcome::Timeout => {
            WireOutcome::InternalError("the reducer ran past its time limit".into())
        }
        ReducerOutcome::BadArguments { message } => WireOutcome::InternalError(format!(
            "invalid arguments for reducer {reducer}: {message}"
        )),
        ReducerOutcome::ArgumentsTooLarge { bytes, limit } => WireOutcome::InternalError(format!(
            "invalid arguments for reducer {reducer}: {bytes} bytes exceed the limit of {limit}"
        )),
        ReducerOutcome::NotCallable { reducer } => WireOutcome::InternalError(format!(
            "reducer {reducer} cannot be called by clients (lifecycle or private)"
        )),
        ReducerOutcome::NoSuchReducer { reducer } => {
            WireOutcome::InternalError(format!("no such reducer: {reducer}"))
        }
        ReducerOutcome::Internal { message } => WireOutcome::InternalError(message.clone()),
    }
}

fn procedure_status(result: ProcedureResult) -> ProcedureStatus {
    match result.outcome {
        ProcedureOutcome::Returned { value } => ProcedureStatus::Returned(value),
        ProcedureOutcome::Trapped { message } => {
            ProcedureStatus::InternalError(format!("the procedure panicked: {message}"))
        }
        ProcedureOutcome::OutOfFuel => {
            ProcedureStatus::InternalError("procedure ran out of energy".into())
        }
        ProcedureOutcome::Timeout => {
            ProcedureStatus::InternalError("the procedure ran past its time limit".into())
        }
        ProcedureOutcome::BadArguments { message } => {
            ProcedureStatus::InternalError(format!("invalid arguments: {message}"))
        }
        ProcedureOutcome::NoSuchProcedure { procedure } => {
            ProcedureStatus::InternalError(format!("no such procedure: {procedure}"))
        }
        ProcedureOutcome::NotCallable { procedure } => ProcedureStatus::InternalError(format!(
            "procedure {procedure} cannot be called by clients"
        )),
        ProcedureOutcome::Internal { message } => ProcedureStatus::InternalError(message),
    }
}

/// The WebSocket payloads of a batch of queued messages, grouped as
/// [`payload_runs`] says. A message alone keeps its cached payload (shared
/// by every connection that got the same frame); a v3 run is one payload.
fn payloads(protocol: Protocol, compression: Compression, items: &[Outgoing]) -> Vec<Bytes> {
    let sizes: Vec<usize> = items.iter().map(|i| i.frame.body().len()).collect();
    payload_runs(protocol, &sizes)
        .into_iter()
        .map(|run| match &items[run] {
            [one] => one.frame.payload(compression),
            many => {
                let body: Vec<u8> = many.iter().flat_map(|i| i.frame.body()).copied().collect();
                Bytes::from(compression::encode_payload(&body, compression))
            }
        })
        .collect()
}

/// `GET /v1/database/{name_or_identity}/subscribe`: checks the upgrade
/// (database, subprotocol, query parameters, connection id) and hands the
/// socket to [`run`]. Credentials were settled by the database routes'
/// get-or-mint layer.
pub(crate) async fn subscribe(
    axum::extract::State(state): axum::extract::State<Arc<super::ApiState>>,
    axum::Extension(caller): axum::Extension<super::database::Caller>,
    axum::extract::Path(name_or_identity): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
    upgrade: axum::extract::WebSocketUpgrade,
) -> axum::response::Response {
    use crate::error::{fail, ErrorCode};

    let entry = match super::database::resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let offered = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let negotiated = match orrery_wire::negotiate::negotiate(offered, &pairs) {
        Ok(n) => n,
        Err(e) => return fail(ErrorCode::InvalidRequest, e.to_string()),
    };
    let connection_id = match pairs.iter().find(|(k, _)| *k == "connection_id") {
        Some((_, hex)) => match ConnectionId::from_hex(hex) {
            Ok(id) if id.to_u128() != 0 => id,
            Ok(_) => {
                return fail(
                    ErrorCode::InvalidRequest,
                    "Invalid connection ID: the all-zero id is reserved",
                )
            }
            Err(_) => {
                return fail(
                    ErrorCode::InvalidRequest,
                    format!("Invalid connection ID: {hex:?} is not 32 hex digits"),
                )
            }
        },
        None => crate::database::connection_id(),
    };
    let session = Session {
        database: entry.database().clone(),
        identity: caller.identity(),
        connection_id,
        token: caller.token.clone(),
        jwt_payload: Some(caller.claims.payload.clone()),
        owner: caller.is_owner(&state.access, &entry),
        negotiated,
    };
    let config = state.ws.clone();
    upgrade
        .protocols([negotiated.protocol.token()])
        .max_message_size(limits::WS_PAYLOAD_BYTES_MAX)
        .on_upgrade(move |socket| run(socket, session, config))
}

#[cfg(test)]
mod tests {
    //! Function names a client may send: anything a module can declare, and
    //! nothing empty, oversized or holding a control character.

    use super::*;

    #[test]
    fn function_names_with_control_characters_or_out_of_bounds_are_invalid() {
        for name in ["send_message", "sendMessage", "café", "a-b.c"] {
            assert_eq!(invalid_function_name("reducer", name), None, "{name}");
        }
        let error = invalid_function_name("procedure", "a\0b").expect("NUL is refused");
        assert!(
            error.contains("procedure") && error.contains("U+0000 at byte 1"),
            "{error}"
        );
        assert!(invalid_function_name("reducer", "tab\there").is_some());
        assert!(invalid_function_name("reducer", "del\u{7f}").is_some());
        assert!(invalid_function_name("reducer", "").is_some());
        let long = "n".repeat(FUNCTION_NAME_BYTES_MAX);
        assert_eq!(invalid_function_name("reducer", &long), None);
        let longer = "n".repeat(FUNCTION_NAME_BYTES_MAX + 1);
        assert!(invalid_function_name("reducer", &longer).is_some());
    }
}
