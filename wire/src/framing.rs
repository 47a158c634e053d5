//! WebSocket payload framing per subprotocol version (spec §4.1, §4.4).
//!
//! Owns: the subprotocol tokens, turning outgoing `ServerMessage`s into
//! binary payloads (v2: one message each; v3: coalesced up to ~512 KiB of
//! uncompressed body, a larger single message alone, never empty) and
//! decoding incoming client payloads (v2: exactly one message; v3: one or
//! more back to back; empty or trailing garbage is an error; ≤ 32 MiB).
//! Does not own: the compression codecs (`compression`) or message bytes
//! (`messages`).

use super::bsatn::{DecodeError, Reader};
use super::compression::{self, Compression};
use super::messages::{ClientMessage, ServerMessage};

/// Largest client payload accepted (after decompression).
pub const MAX_INCOMING_PAYLOAD: usize = orrery_api::limits::WS_PAYLOAD_BYTES_MAX;

/// Uncompressed size at which a v3 batch is cut (a single larger message
/// goes alone).
pub const MAX_V3_BATCH: usize = 512 * 1024;

/// A WebSocket subprotocol we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// `v2.bsatn.spacetimedb`: one message per payload.
    V2,
    /// `v3.bsatn.spacetimedb`: one or more messages per payload.
    V3,
}

impl Protocol {
    pub const V2_TOKEN: &'static str = "v2.bsatn.spacetimedb";
    pub const V3_TOKEN: &'static str = "v3.bsatn.spacetimedb";

    /// The `Sec-WebSocket-Protocol` token to echo.
    pub fn token(self) -> &'static str {
        match self {
            Protocol::V2 => Self::V2_TOKEN,
            Protocol::V3 => Self::V3_TOKEN,
        }
    }

    pub fn from_token(token: &str) -> Option<Self> {
        match token {
            Self::V2_TOKEN => Some(Protocol::V2),
            Self::V3_TOKEN => Some(Protocol::V3),
            _ => None,
        }
    }
}

/// Encodes outgoing messages into binary payloads, each starting with the
/// compression tag. v2 yields one payload per message; v3 coalesces
/// consecutive messages while the uncompressed body stays ≤ [`MAX_V3_BATCH`].
pub fn encode_server_payloads(
    protocol: Protocol,
    compression: Compression,
    messages: &[ServerMessage],
) -> Vec<Vec<u8>> {
    let bodies: Vec<Vec<u8>> = messages.iter().map(ServerMessage::encode).collect();
    let sizes: Vec<usize> = bodies.iter().map(Vec::len).collect();
    payload_runs(protocol, &sizes)
        .into_iter()
        .map(|run| compression::encode_payload(&bodies[run].concat(), compression))
        .collect()
}

/// How consecutive encoded messages of these sizes are grouped into
/// payloads: v2 one each; v3 runs whose total stays ≤ [`MAX_V3_BATCH`] (a
/// larger message alone). Ranges index `sizes`, in order, covering all.
pub fn payload_runs(protocol: Protocol, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let cut = match protocol {
            Protocol::V2 => i > start,
            Protocol::V3 => i > start && total + size > MAX_V3_BATCH,
        };
        if cut {
            runs.push(start..i);
            start = i;
            total = 0;
        }
        total += size;
    }
    if start < sizes.len() {
        runs.push(start..sizes.len());
    }
    runs
}

/// Decodes one incoming binary payload (no tag byte) into its messages.
pub fn decode_client_payload(
    protocol: Protocol,
    payload: &[u8],
) -> Result<Vec<ClientMessage>, DecodeError> {
    if payload.len() > MAX_INCOMING_PAYLOAD {
        return Err(DecodeError::TooLarge {
            len: payload.len(),
            limit: MAX_INCOMING_PAYLOAD,
        });
    }
    if payload.is_empty() {
        return Err(DecodeError::EmptyPayload);
    }
    match protocol {
        Protocol::V2 => Ok(vec![ClientMessage::decode(payload)?]),
        Protocol::V3 => {
            let mut r = Reader::new(payload);
            let mut out = Vec::new();
            while !r.is_empty() {
                out.push(ClientMessage::decode_from(&mut r)?);
            }
            Ok(out)
        }
    }
}

/// Encodes client messages into one payload (v2: exactly one message).
/// The client side, for tests and tools.
pub fn encode_client_payload(protocol: Protocol, messages: &[ClientMessage]) -> Vec<u8> {
    assert!(
        protocol == Protocol::V3 || messages.len() == 1,
        "a v2 payload holds exactly one message"
    );
    let mut out = Vec::new();
    for msg in messages {
        msg.encode_into(&mut out);
    }
    out
}

/// Decodes a server payload (tag byte, maybe compressed body) into its
/// messages, bounding the decompressed body by `max_body`. The client side,
/// for tests and tools.
pub fn decode_server_payload(
    protocol: Protocol,
    payload: &[u8],
    max_body: usize,
) -> Result<Vec<ServerMessage>, DecodeError> {
    let body = compression::decode_payload(payload, max_body)?;
    if body.is_empty() {
        return Err(DecodeError::EmptyPayload);
    }
    match protocol {
        Protocol::V2 => Ok(vec![ServerMessage::decode(&body)?]),
        Protocol::V3 => {
            let mut r = Reader::new(&body);
            let mut out = Vec::new();
            while !r.is_empty() {
                out.push(ServerMessage::decode_from(&mut r)?);
            }
            Ok(out)
        }
    }
}
