//! A blocking WebSocket client speaking the wire protocol, for tests: it
//! offers subprotocols, sends client messages and decodes server payloads
//! with `orrery_wire`.

use std::net::TcpStream;
use std::time::Duration;

use orrery_wire::framing::{decode_server_payload, encode_client_payload};
use orrery_wire::{ClientMessage, Protocol, ServerMessage};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

pub(crate) struct WsClient {
    pub(crate) socket: tungstenite::WebSocket<MaybeTlsStream<TcpStream>>,
    pub(crate) protocol: Protocol,
    /// The upgrade response's `spacetime-identity` header.
    pub(crate) identity_header: Option<String>,
}

/// How an upgrade went.
pub(crate) enum Upgrade {
    Open(Box<WsClient>),
    /// The server answered with this status instead of 101.
    Refused(u16, String),
}

/// Opens `url` (ws://…) offering `protocols` with optional extra headers.
pub(crate) fn open(url: &str, protocols: &str, headers: &[(&str, &str)]) -> Upgrade {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).unwrap(),
    );
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tungstenite::connect(request) {
        Ok((socket, response)) => {
            let chosen = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let protocol = Protocol::from_token(&chosen).expect("a known protocol echoed");
            if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
            }
            let identity_header = response
                .headers()
                .get("spacetime-identity")
                .map(|v| v.to_str().unwrap().to_owned());
            Upgrade::Open(Box::new(WsClient {
                socket,
                protocol,
                identity_header,
            }))
        }
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Upgrade::Refused(status, body)
        }
        Err(e) => panic!("websocket connect to {url} failed: {e}"),
    }
}

/// What the next frame was.
#[derive(Debug)]
pub(crate) enum Received {
    Messages(Vec<ServerMessage>),
    /// The payload's raw bytes when it was not decodable (or to check bytes).
    Closed(Option<(u16, String)>),
}

impl WsClient {
    pub(crate) fn send(&mut self, messages: &[ClientMessage]) {
        let payload = encode_client_payload(self.protocol, messages);
        self.socket.send(Message::Binary(payload.into())).unwrap();
    }

    pub(crate) fn send_raw(&mut self, message: Message) {
        self.socket.send(message).unwrap();
    }

    /// The next data payload, raw (with its compression tag).
    pub(crate) fn next_raw(&mut self) -> Result<Vec<u8>, Option<(u16, String)>> {
        loop {
            match self.socket.read() {
                Ok(Message::Binary(bytes)) => return Ok(bytes.to_vec()),
                Ok(Message::Close(frame)) => {
                    return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => return Err(None),
                Err(tungstenite::Error::Protocol(_)) | Err(tungstenite::Error::Io(_)) => {
                    return Err(None)
                }
                Err(e) => panic!("websocket read failed: {e}"),
            }
        }
    }

    /// The next frame's messages, or how the socket closed.
    pub(crate) fn next(&mut self) -> Received {
        match self.next_raw() {
            Ok(bytes) => Received::Messages(
                decode_server_payload(self.protocol, &bytes, 64 << 20)
                    .expect("server payload decodes"),
            ),
            Err(close) => Received::Closed(close),
        }
    }

    /// The next message (frames of several messages are split).
    pub(crate) fn message(&mut self, pending: &mut Vec<ServerMessage>) -> ServerMessage {
        while pending.is_empty() {
            match self.next() {
                Received::Messages(m) => pending.extend(m),
                Received::Closed(c) => panic!("socket closed while waiting: {c:?}"),
            }
        }
        pending.remove(0)
    }

    pub(crate) fn close(mut self) {
        let _ = self.socket.close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }));
        let _ = self.socket.flush();
    }
}
