//! `orrery subscribe`: a WebSocket client of the server's subscribe route
//! (v2 BSATN, no compression, messages through `orrery_wire`) that
//! prints each transaction's changes as one JSON line:
//! `{"<table>": {"inserts": [row…], "deletes": [row…]}}`, rows as objects
//! keyed by column name. Rows are decoded with the module's own types,
//! fetched from the server's schema route.

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use orrery_moduledef::ModuleDef;
use orrery_wire::framing::{decode_server_payload, encode_client_payload, Protocol};
use orrery_wire::messages::{BsatnRowList, QuerySetId, TableUpdateRows};
use orrery_wire::{ClientMessage, ServerMessage};
use serde_json::{Map, Value};
use spacetimedb_lib::ser::serde::SerializeWrapper;
use spacetimedb_sats::{ProductType, ProductValue};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::stream::MaybeTlsStream;

/// When to stop.
pub(crate) struct Until {
    pub(crate) count: Option<u64>,
    pub(crate) duration: Option<Duration>,
}

/// Column names and types of every table and view clients can read.
fn row_types(schema: Value) -> anyhow::Result<HashMap<String, ProductType>> {
    let def = ModuleDef::from_raw(super::generate::from_schema_json(schema)?)
        .map_err(|e| anyhow!("the server's schema is not a valid module: {e}"))?;
    let mut types: HashMap<String, ProductType> = def
        .tables
        .iter()
        .map(|t| (t.canonical_name.clone(), t.def.columns.clone()))
        .collect();
    for view in &def.views {
        types.insert(view.canonical_name.clone(), view.row_type.clone());
    }
    Ok(types)
}

/// Rows of a row list as JSON objects.
fn rows(list: &BsatnRowList, ty: Option<&ProductType>) -> anyhow::Result<Vec<Value>> {
    let Some(ty) = ty else {
        bail!("rows of a table the schema does not have");
    };
    let mut out = Vec::new();
    let mut data = &list.rows_data[..];
    while !data.is_empty() {
        let row = ProductValue::decode(ty, &mut data)
            .map_err(|e| anyhow!("a row does not decode: {e}"))?;
        let values = serde_json::to_value(SerializeWrapper::from_ref(&row))?;
        let mut object = Map::new();
        for (i, value) in values.as_array().into_iter().flatten().enumerate() {
            let name = ty.elements[i]
                .name()
                .map_or_else(|| format!("column{i}"), |n| n.to_string());
            object.insert(name, value.clone());
        }
        out.push(Value::Object(object));
    }
    Ok(out)
}

/// Subscribes to `queries` on `url` (`http://…`) and prints updates.
pub(crate) fn run(
    url: &str,
    database: &str,
    token: &str,
    schema: Value,
    queries: Vec<String>,
    until: Until,
) -> anyhow::Result<()> {
    let types = row_types(schema)?;
    let ws_url = format!(
        "{}/v1/database/{}/subscribe?compression=None",
        url.replacen("http", "ws", 1),
        super::segment(database)
    );
    let mut request = ws_url.as_str().into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(Protocol::V2_TOKEN),
    );
    headers.insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let (mut socket, _) = tungstenite::connect(request).map_err(|e| match e {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            anyhow!(
                "the server refused the subscription: {} {}",
                response.status(),
                body.trim()
            )
        }
        e => anyhow!("cannot connect to {ws_url}: {e}"),
    })?;
    let deadline = until.duration.map(|d| Instant::now() + d);
    let send = |socket: &mut tungstenite::WebSocket<MaybeTlsStream<TcpStream>>,
                message: ClientMessage|
     -> anyhow::Result<()> {
        let payload = encode_client_payload(Protocol::V2, &[message]);
        socket.send(tungstenite::Message::Binary(payload.into()))?;
        Ok(())
    };
    send(
        &mut socket,
        ClientMessage::Subscribe {
            request_id: 1,
            query_set_id: QuerySetId { id: 1 },
            query_strings: queries,
        },
    )?;
    let mut seen = 0u64;
    if until.count == Some(0) {
        return Ok(());
    }
    loop {
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                return Ok(());
            }
            stream.set_read_timeout(timeout)?;
        }
        let message = match socket.read() {
            Ok(tungstenite::Message::Binary(bytes)) => bytes,
            Ok(tungstenite::Message::Close(frame)) => {
                let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason));
                bail!(
                    "the server closed the subscription: {}",
                    why.unwrap_or_default()
                );
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(());
            }
            Err(e) => bail!("the subscription broke off: {e}"),
        };
        for message in decode_server_payload(Protocol::V2, &message, 256 << 20)? {
            match message {
                ServerMessage::SubscribeApplied { rows: initial, .. } => {
                    let n: usize = initial
                        .tables
                        .iter()
                        .map(|t| rows(&t.rows, types.get(&t.table)).map(|r| r.len()))
                        .sum::<anyhow::Result<usize>>()?;
                    eprintln!("Subscribed: {n} rows now match.");
                }
                ServerMessage::SubscriptionError { error, .. } => {
                    bail!("the subscription was refused: {error}")
                }
                ServerMessage::TransactionUpdate(update) => {
                    let mut line = Map::new();
                    for set in &update.query_sets {
                        for table in &set.tables {
                            let ty = types.get(&table.table_name);
                            let entry = line.entry(table.table_name.clone()).or_insert_with(
                                || serde_json::json!({"inserts": [], "deletes": []}),
                            );
                            for update_rows in &table.rows {
                                let (ins, del) = match update_rows {
                                    TableUpdateRows::PersistentTable { inserts, deletes } => {
                                        (rows(inserts, ty)?, rows(deletes, ty)?)
                                    }
                                    TableUpdateRows::EventTable { events } => {
                                        (rows(events, ty)?, Vec::new())
                                    }
                                };
                                let target = entry.as_object_mut().expect("an object");
                                push_all(target, "inserts", ins);
                                push_all(target, "deletes", del);
                            }
                        }
                    }
                    println!("{}", Value::Object(line));
                    seen += 1;
                    if until.count.is_some_and(|n| seen >= n) {
                        let _ = socket.close(None);
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }
}

fn push_all(object: &mut Map<String, Value>, key: &str, values: Vec<Value>) {
    if let Some(Value::Array(list)) = object.get_mut(key) {
        list.extend(values);
    }
}
