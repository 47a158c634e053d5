//! The WebSocket clients: v2 connections to `/v1/database/NAME/subscribe`,
//! pipelined `transfer` callers, the fan-out subscribers and their writer.
//! Latencies are kept as microseconds (u32) per sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use orrery_wire::framing::{decode_server_payload, encode_client_payload};
use orrery_wire::messages::{QuerySetId, ReducerOutcome, TableUpdateRows};
use orrery_wire::{ClientMessage, Protocol, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::stats::{Rng, Zipf};

type Socket = WebSocketStream<TcpStream>;

const MAX_BODY: usize = 64 << 20;

/// The common time base of send stamps and receipts (one process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_micros() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// Opens a v2 WebSocket to database `db` on `addr` (no compression, Nagle
/// off) and waits for `InitialConnection`.
pub(crate) async fn connect(addr: &str, db: &str) -> anyhow::Result<Socket> {
    let url = format!("ws://{addr}/v1/database/{db}/subscribe?compression=None");
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(Protocol::V2_TOKEN),
    );
    let stream = TcpStream::connect(addr).await.context("tcp connect")?;
    stream.set_nodelay(true)?;
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("websocket upgrade")?;
    loop {
        match next_messages(&mut socket).await?.into_iter().next() {
            Some(ServerMessage::InitialConnection { .. }) => return Ok(socket),
            Some(_) => continue,
            None => bail!("closed before InitialConnection"),
        }
    }
}

/// The next server messages; empty when the socket closed.
async fn next_messages(socket: &mut Socket) -> anyhow::Result<Vec<ServerMessage>> {
    loop {
        match socket.next().await {
            None => return Ok(Vec::new()),
            Some(msg) => match msg? {
                Message::Binary(data) => {
                    return Ok(decode_server_payload(Protocol::V2, &data, MAX_BODY)?)
                }
                Message::Close(_) => return Ok(Vec::new()),
                _ => continue,
            },
        }
    }
}

fn payload(msg: ClientMessage) -> Message {
    Message::Binary(encode_client_payload(Protocol::V2, &[msg]).into())
}

/// How `transfer` picks accounts.
#[derive(Clone, Copy)]
pub(crate) enum Pick<'a> {
    Uniform(u64),
    Zipf(&'a Zipf),
}

impl Pick<'_> {
    fn draw(&self, rng: &mut Rng) -> u64 {
        match self {
            Pick::Uniform(n) => rng.uniform(*n),
            Pick::Zipf(z) => z.sample(rng),
        }
    }
}

/// What one transfer client measured inside the window.
#[derive(Default)]
pub(crate) struct CallStats {
    pub(crate) completed: u64,
    pub(crate) errors: u64,
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) first_error: Option<String>,
}

fn transfer_call(request_id: u32, rng: &mut Rng, pick: Pick<'_>) -> Message {
    let from = pick.draw(rng);
    let mut to = pick.draw(rng);
    while to == from {
        to = pick.draw(rng);
    }
    let mut args = Vec::with_capacity(24);
    args.extend_from_slice(&from.to_le_bytes());
    args.extend_from_slice(&to.to_le_bytes());
    args.extend_from_slice(&1i64.to_le_bytes());
    payload(ClientMessage::CallReducer {
        request_id,
        reducer: "transfer".into(),
        args,
    })
}

/// One client: keeps `window` `transfer` calls in flight on `socket` until
/// `end`, counting completions and latencies received in `[start, end)`.
pub(crate) async fn transfer_client(
    mut socket: Socket,
    seed: u64,
    pick: Pick<'_>,
    window: usize,
    start: Instant,
    end: Instant,
) -> anyhow::Result<CallStats> {
    let mut rng = Rng::new(seed);
    let mut stats = CallStats::default();
    // Send instants by request id; ids are recycled through `free`.
    let mut sent: Vec<Option<Instant>> = vec![None; window];
    let mut free: Vec<u32> = (0..window as u32).rev().collect();
    let mut in_flight = 0usize;
    loop {
        let now = Instant::now();
        if now < end {
            let mut queued = false;
            while let Some(id) = free.pop() {
                sent[id as usize] = Some(Instant::now());
                socket.feed(transfer_call(id, &mut rng, pick)).await?;
                in_flight += 1;
                queued = true;
            }
            if queued {
                socket.flush().await?;
            }
        } else if in_flight == 0 {
            break;
        }
        let wait = if now < end {
            end - now + Duration::from_secs(5)
        } else {
            Duration::from_secs(5)
        };
        let messages = match tokio::time::timeout(wait, next_messages(&mut socket)).await {
            Ok(result) => result?,
            Err(_) => bail!("{in_flight} calls unanswered for 5 s"),
        };
        if messages.is_empty() {
            bail!("the server closed a transfer connection");
        }
        let received = Instant::now();
        for msg in messages {
            if let ServerMessage::ReducerResult {
                request_id, result, ..
            } = msg
            {
                let Some(at) = sent.get_mut(request_id as usize).and_then(Option::take) else {
                    continue;
                };
                free.push(request_id);
                in_flight -= 1;
                if received >= start && received < end {
                    stats.completed += 1;
                    stats
                        .latencies_us
                        .push((received - at).as_micros().min(u128::from(u32::MAX)) as u32);
                    match result {
                        ReducerOutcome::Ok(_) | ReducerOutcome::OkEmpty => {}
                        ReducerOutcome::Err(e) => {
                            stats.errors += 1;
                            stats
                                .first_error
                                .get_or_insert_with(|| String::from_utf8_lossy(&e).into_owned());
                        }
                        ReducerOutcome::InternalError(e) => {
                            stats.errors += 1;
                            stats.first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// Subscribes `socket` to `query` and waits for `SubscribeApplied`.
pub(crate) async fn subscribe(socket: &mut Socket, query: &str) -> anyhow::Result<()> {
    socket
        .send(payload(ClientMessage::Subscribe {
            request_id: 1,
            query_set_id: QuerySetId { id: 1 },
            query_strings: vec![query.to_owned()],
        }))
        .await?;
    loop {
        let messages = next_messages(socket).await?;
        if messages.is_empty() {
            bail!("closed before SubscribeApplied");
        }
        for msg in messages {
            match msg {
                ServerMessage::SubscribeApplied { .. } => return Ok(()),
                ServerMessage::SubscriptionError { error, .. } => bail!("subscription: {error}"),
                _ => {}
            }
        }
    }
}

/// What one subscriber received.
#[derive(Default)]
pub(crate) struct FanoutStats {
    /// `TransactionUpdate` messages received in `[start, end)`.
    pub(crate) deltas_in_window: u64,
    /// Every `TransactionUpdate` received until the subscriber stopped.
    pub(crate) deltas_total: u64,
    pub(crate) latencies_us: Vec<u32>,
}

/// The send stamp in a chat `message` row: id u64, channel_id u64, sender
/// (32 bytes), sent (i64), then text (u32 length, UTF-8) holding the writer's
/// send time in microseconds since [`epoch`].
fn stamp_of_row(row: &[u8]) -> Option<u64> {
    let text = row.get(60..)?;
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Reads `TransactionUpdate`s until `stop`, counting and timing them.
pub(crate) async fn subscriber(
    mut socket: Socket,
    start: Instant,
    end: Instant,
    stop: Instant,
) -> anyhow::Result<FanoutStats> {
    let mut stats = FanoutStats::default();
    loop {
        let messages = match tokio::time::timeout_at(stop.into(), next_messages(&mut socket)).await
        {
            Ok(result) => result?,
            Err(_) => break,
        };
        if messages.is_empty() {
            bail!("the server closed a subscriber");
        }
        let received = Instant::now();
        let now_us = now_micros();
        for msg in messages {
            let ServerMessage::TransactionUpdate(update) = msg else {
                continue;
            };
            stats.deltas_total += 1;
            if received >= start && received < end {
                stats.deltas_in_window += 1;
            }
            for set in &update.query_sets {
                for table in &set.tables {
                    for rows in &table.rows {
                        let TableUpdateRows::PersistentTable { inserts, .. } = rows else {
                            continue;
                        };
                        for row in inserts.rows().unwrap_or_default() {
                            if let Some(sent) = stamp_of_row(row) {
                                let us = now_us.saturating_sub(sent);
                                stats.latencies_us.push(us.min(u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// The writer: `send_message(1, <send stamp>)` at `rate` calls/s until
/// `end`, at most `window` unanswered. Returns (calls sent, failed calls).
pub(crate) async fn writer(
    mut socket: Socket,
    rate: f64,
    window: usize,
    end: Instant,
) -> anyhow::Result<(u64, u64)> {
    let sent_calls = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next_send = Instant::now();
    let mut in_flight = 0usize;
    let mut request_id = 0u32;
    let mut failed = 0u64;
    loop {
        let now = Instant::now();
        if now >= end && in_flight == 0 {
            break;
        }
        if now >= next_send && now < end && in_flight < window {
            request_id = request_id.wrapping_add(1);
            let text = now_micros().to_string();
            let mut args = Vec::with_capacity(12 + text.len());
            args.extend_from_slice(&1u64.to_le_bytes());
            args.extend_from_slice(&(text.len() as u32).to_le_bytes());
            args.extend_from_slice(text.as_bytes());
            socket
                .send(payload(ClientMessage::CallReducer {
                    request_id,
                    reducer: "send_message".into(),
                    args,
                }))
                .await?;
            in_flight += 1;
            sent_calls.fetch_add(1, Ordering::Relaxed);
            next_send += interval;
            continue;
        }
        // Wait for an answer or the next send slot, whichever is first.
        let deadline = if in_flight < window && now < end {
            next_send
        } else {
            now + Duration::from_secs(5)
        };
        match tokio::time::timeout_at(deadline.into(), next_messages(&mut socket)).await {
            Err(_) if in_flight >= window || now >= end => {
                bail!("writer: {in_flight} calls unanswered for 5 s")
            }
            Err(_) => {}
            Ok(messages) => {
                let messages = messages?;
                if messages.is_empty() {
                    bail!("the server closed the writer");
                }
                for msg in messages {
                    if let ServerMessage::ReducerResult { result, .. } = msg {
                        in_flight -= 1;
                        if !matches!(result, ReducerOutcome::Ok(_) | ReducerOutcome::OkEmpty) {
                            failed += 1;
                        }
                    }
                }
            }
        }
    }
    Ok((sent_calls.load(Ordering::Relaxed), failed))
}
