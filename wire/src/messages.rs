//! The v2 message schema (shared by the v2 and v3 subprotocols) and its BSATN.
//!
//! Owns: `ClientMessage`, `ServerMessage` and their nested types exactly as
//! spec/client-protocol.md §4.5–§4.6 lists them (fields in order, tag =
//! variant index), `encode` to canonical bytes and strict `decode` (unknown
//! tags, truncation, trailing bytes and non-zero call flags are errors).
//! Does not own: payload framing or compression (`framing`), and what a
//! message means to a database.

use spacetimedb_lib::{ConnectionId, Identity, TimeDuration, Timestamp};

use super::bsatn::{put_bytes, put_str, put_u32, put_vec, DecodeError, Reader};

/// A client-chosen id of a subscribed query set; encodes as a bare u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuerySetId {
    pub id: u32,
}

/// Flags of `Unsubscribe`. Both SDKs always send `SendDroppedRows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeFlags {
    Default = 0,
    SendDroppedRows = 1,
}

/// Client → server (spec §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Subscribe {
        request_id: u32,
        query_set_id: QuerySetId,
        query_strings: Vec<String>,
    },
    Unsubscribe {
        request_id: u32,
        query_set_id: QuerySetId,
        flags: UnsubscribeFlags,
    },
    OneOffQuery {
        request_id: u32,
        query_string: String,
    },
    /// `flags` on the wire must be 0 and is therefore not stored.
    CallReducer {
        request_id: u32,
        reducer: String,
        args: Vec<u8>,
    },
    /// `flags` on the wire must be 0 and is therefore not stored.
    CallProcedure {
        request_id: u32,
        procedure: String,
        args: Vec<u8>,
    },
}

/// Rows of one table, BSATN back to back (spec §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsatnRowList {
    pub size_hint: RowSizeHint,
    pub rows_data: Vec<u8>,
}

/// How to split `rows_data` into rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowSizeHint {
    /// Every row has this many bytes (never 0).
    FixedSize(u16),
    /// Start offset of each row.
    RowOffsets(Vec<u64>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleTableRows {
    pub table: String,
    pub rows: BsatnRowList,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryRows {
    pub tables: Vec<SingleTableRows>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableUpdateRows {
    /// Inserts first, then deletes.
    PersistentTable {
        inserts: BsatnRowList,
        deletes: BsatnRowList,
    },
    EventTable {
        events: BsatnRowList,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUpdate {
    pub table_name: String,
    pub rows: Vec<TableUpdateRows>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySetUpdate {
    pub query_set_id: QuerySetId,
    pub tables: Vec<TableUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionUpdate {
    pub query_sets: Vec<QuerySetUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReducerOk {
    /// Must be empty (the Rust SDK asserts it).
    pub ret_value: Vec<u8>,
    pub transaction_update: TransactionUpdate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReducerOutcome {
    Ok(ReducerOk),
    OkEmpty,
    /// BSATN of the user error (a String).
    Err(Vec<u8>),
    InternalError(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcedureStatus {
    /// BSATN of the return value.
    Returned(Vec<u8>),
    InternalError(String),
}

/// Server → client (spec §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    InitialConnection {
        identity: Identity,
        connection_id: ConnectionId,
        token: String,
    },
    SubscribeApplied {
        request_id: u32,
        query_set_id: QuerySetId,
        rows: QueryRows,
    },
    UnsubscribeApplied {
        request_id: u32,
        query_set_id: QuerySetId,
        rows: Option<QueryRows>,
    },
    SubscriptionError {
        request_id: Option<u32>,
        query_set_id: QuerySetId,
        error: String,
    },
    TransactionUpdate(TransactionUpdate),
    OneOffQueryResult {
        request_id: u32,
        result: Result<QueryRows, String>,
    },
    ReducerResult {
        request_id: u32,
        timestamp: Timestamp,
        result: ReducerOutcome,
    },
    ProcedureResult {
        status: ProcedureStatus,
        timestamp: Timestamp,
        total_host_execution_duration: TimeDuration,
        request_id: u32,
    },
}

// ---------------------------------------------------------------- encoding

impl ClientMessage {
    /// Canonical BSATN bytes of one message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        self.encode_into(&mut w);
        w
    }

    pub fn encode_into(&self, w: &mut Vec<u8>) {
        match self {
            ClientMessage::Subscribe {
                request_id,
                query_set_id,
                query_strings,
            } => {
                w.push(0);
                put_u32(w, *request_id);
                put_u32(w, query_set_id.id);
                put_vec(w, query_strings, |w, s| put_str(w, s));
            }
            ClientMessage::Unsubscribe {
                request_id,
                query_set_id,
                flags,
            } => {
                w.push(1);
                put_u32(w, *request_id);
                put_u32(w, query_set_id.id);
                w.push(*flags as u8);
            }
            ClientMessage::OneOffQuery {
                request_id,
                query_string,
            } => {
                w.push(2);
                put_u32(w, *request_id);
                put_str(w, query_string);
            }
            ClientMessage::CallReducer {
                request_id,
                reducer: name,
                args,
            }
            | ClientMessage::CallProcedure {
                request_id,
                procedure: name,
                args,
            } => {
                w.push(if matches!(self, ClientMessage::CallReducer { .. }) {
                    3
                } else {
                    4
                });
                put_u32(w, *request_id);
                w.push(0);
                put_str(w, name);
                put_bytes(w, args);
            }
        }
    }

    /// Decodes exactly one message; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let msg = Self::decode_from(&mut r)?;
        r.finish("ClientMessage")?;
        Ok(msg)
    }

    /// Decodes one message from the reader, leaving the rest.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.tag("ClientMessage", 5)? {
            0 => ClientMessage::Subscribe {
                request_id: r.u32()?,
                query_set_id: QuerySetId { id: r.u32()? },
                query_strings: r.vec("query_strings", 4, Reader::string)?,
            },
            1 => ClientMessage::Unsubscribe {
                request_id: r.u32()?,
                query_set_id: QuerySetId { id: r.u32()? },
                flags: match r.tag("UnsubscribeFlags", 2)? {
                    0 => UnsubscribeFlags::Default,
                    _ => UnsubscribeFlags::SendDroppedRows,
                },
            },
            2 => ClientMessage::OneOffQuery {
                request_id: r.u32()?,
                query_string: r.string()?,
            },
            tag => {
                let request_id = r.u32()?;
                let flags = r.u8()?;
                if flags != 0 {
                    return Err(DecodeError::NonZeroFlags(flags));
                }
                let name = r.string()?;
                let args = r.byte_vec()?;
                if tag == 3 {
                    ClientMessage::CallReducer {
                        request_id,
                        reducer: name,
                        args,
                    }
                } else {
                    ClientMessage::CallProcedure {
                        request_id,
                        procedure: name,
                        args,
                    }
                }
            }
        })
    }
}

impl BsatnRowList {
    /// Builds a row list the way the reference does: `FixedSize(n)` when all
    /// rows have the same non-zero size n ≤ 65535, else `RowOffsets`; an
    /// empty list is `RowOffsets([])`.
    pub fn from_rows<R: AsRef<[u8]>>(rows: &[R]) -> Self {
        let rows_data: Vec<u8> = rows
            .iter()
            .flat_map(|r| r.as_ref().iter().copied())
            .collect();
        let first = rows.first().map(|r| r.as_ref().len());
        let fixed = first.filter(|&n| {
            n > 0 && n <= usize::from(u16::MAX) && rows.iter().all(|r| r.as_ref().len() == n)
        });
        let size_hint = match fixed {
            Some(n) => RowSizeHint::FixedSize(n as u16),
            None => {
                let mut offsets = Vec::with_capacity(rows.len());
                let mut at = 0u64;
                for row in rows {
                    offsets.push(at);
                    at += row.as_ref().len() as u64;
                }
                RowSizeHint::RowOffsets(offsets)
            }
        };
        BsatnRowList {
            size_hint,
            rows_data,
        }
    }

    /// An empty list: `RowOffsets([])`, never `FixedSize(0)`.
    pub fn empty() -> Self {
        Self::from_rows::<&[u8]>(&[])
    }

    /// Splits `rows_data` by the size hint, as the Rust SDK does. Errors on a
    /// hint that does not fit the data (`FixedSize(0)`, a size that does not
    /// divide the data, offsets out of order or out of range).
    pub fn rows(&self) -> Result<Vec<&[u8]>, String> {
        let data = &self.rows_data[..];
        match &self.size_hint {
            RowSizeHint::FixedSize(0) => Err("FixedSize(0)".into()),
            RowSizeHint::FixedSize(n) => {
                let n = usize::from(*n);
                if !data.len().is_multiple_of(n) {
                    return Err(format!("{} data bytes are not rows of {n}", data.len()));
                }
                Ok(data.chunks(n).collect())
            }
            RowSizeHint::RowOffsets(offsets) => {
                let mut out = Vec::with_capacity(offsets.len());
                for (i, &start) in offsets.iter().enumerate() {
                    let end = offsets.get(i + 1).copied().unwrap_or(data.len() as u64);
                    if start > end || end > data.len() as u64 || (i == 0 && start != 0) {
                        return Err(format!("bad row offsets {offsets:?}"));
                    }
                    out.push(&data[start as usize..end as usize]);
                }
                if offsets.is_empty() && !data.is_empty() {
                    return Err("data bytes without row offsets".into());
                }
                Ok(out)
            }
        }
    }

    fn encode_into(&self, w: &mut Vec<u8>) {
        match &self.size_hint {
            RowSizeHint::FixedSize(n) => {
                w.push(0);
                w.extend_from_slice(&n.to_le_bytes());
            }
            RowSizeHint::RowOffsets(offsets) => {
                w.push(1);
                put_vec(w, offsets, |w, o| w.extend_from_slice(&o.to_le_bytes()));
            }
        }
        put_bytes(w, &self.rows_data);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let size_hint = match r.tag("RowSizeHint", 2)? {
            0 => RowSizeHint::FixedSize(r.u16()?),
            _ => RowSizeHint::RowOffsets(r.vec("row_offsets", 8, Reader::u64)?),
        };
        Ok(BsatnRowList {
            size_hint,
            rows_data: r.byte_vec()?,
        })
    }
}

impl QueryRows {
    fn encode_into(&self, w: &mut Vec<u8>) {
        put_vec(w, &self.tables, |w, t| {
            put_str(w, &t.table);
            t.rows.encode_into(w);
        });
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // table name (4) + row list (1 + 2 + 4 at least)
        let tables = r.vec("tables", 11, |r| {
            Ok(SingleTableRows {
                table: r.string()?,
                rows: BsatnRowList::decode_from(r)?,
            })
        })?;
        Ok(QueryRows { tables })
    }
}

impl TransactionUpdate {
    fn encode_into(&self, w: &mut Vec<u8>) {
        put_vec(w, &self.query_sets, |w, qs| {
            put_u32(w, qs.query_set_id.id);
            put_vec(w, &qs.tables, |w, t| {
                put_str(w, &t.table_name);
                put_vec(w, &t.rows, |w, rows| match rows {
                    TableUpdateRows::PersistentTable { inserts, deletes } => {
                        w.push(0);
                        inserts.encode_into(w);
                        deletes.encode_into(w);
                    }
                    TableUpdateRows::EventTable { events } => {
                        w.push(1);
                        events.encode_into(w);
                    }
                });
            });
        });
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let query_sets = r.vec("query_sets", 8, |r| {
            Ok(QuerySetUpdate {
                query_set_id: QuerySetId { id: r.u32()? },
                tables: r.vec("tables", 8, |r| {
                    Ok(TableUpdate {
                        table_name: r.string()?,
                        rows: r.vec("rows", 8, |r| {
                            Ok(match r.tag("TableUpdateRows", 2)? {
                                0 => TableUpdateRows::PersistentTable {
                                    inserts: BsatnRowList::decode_from(r)?,
                                    deletes: BsatnRowList::decode_from(r)?,
                                },
                                _ => TableUpdateRows::EventTable {
                                    events: BsatnRowList::decode_from(r)?,
                                },
                            })
                        })?,
                    })
                })?,
            })
        })?;
        Ok(TransactionUpdate { query_sets })
    }
}

impl ServerMessage {
    /// Canonical BSATN bytes of one message (no compression tag).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        self.encode_into(&mut w);
        w
    }

    pub fn encode_into(&self, w: &mut Vec<u8>) {
        match self {
            ServerMessage::InitialConnection {
                identity,
                connection_id,
                token,
            } => {
                w.push(0);
                w.extend_from_slice(&identity.to_byte_array());
                w.extend_from_slice(&connection_id.as_le_byte_array());
                put_str(w, token);
            }
            ServerMessage::SubscribeApplied {
                request_id,
                query_set_id,
                rows,
            } => {
                w.push(1);
                put_u32(w, *request_id);
                put_u32(w, query_set_id.id);
                rows.encode_into(w);
            }
            ServerMessage::UnsubscribeApplied {
                request_id,
                query_set_id,
                rows,
            } => {
                w.push(2);
                put_u32(w, *request_id);
                put_u32(w, query_set_id.id);
                match rows {
                    Some(rows) => {
                        w.push(0);
                        rows.encode_into(w);
                    }
                    None => w.push(1),
                }
            }
            ServerMessage::SubscriptionError {
                request_id,
                query_set_id,
                error,
            } => {
                w.push(3);
                match request_id {
                    Some(id) => {
                        w.push(0);
                        put_u32(w, *id);
                    }
                    None => w.push(1),
                }
                put_u32(w, query_set_id.id);
                put_str(w, error);
            }
            ServerMessage::TransactionUpdate(update) => {
                w.push(4);
                update.encode_into(w);
            }
            ServerMessage::OneOffQueryResult { request_id, result } => {
                w.push(5);
                put_u32(w, *request_id);
                match result {
                    Ok(rows) => {
                        w.push(0);
                        rows.encode_into(w);
                    }
                    Err(e) => {
                        w.push(1);
                        put_str(w, e);
                    }
                }
            }
            ServerMessage::ReducerResult {
                request_id,
                timestamp,
                result,
            } => {
                w.push(6);
                put_u32(w, *request_id);
                w.extend_from_slice(&timestamp.to_micros_since_unix_epoch().to_le_bytes());
                match result {
                    ReducerOutcome::Ok(ok) => {
                        w.push(0);
                        put_bytes(w, &ok.ret_value);
                        ok.transaction_update.encode_into(w);
                    }
                    ReducerOutcome::OkEmpty => w.push(1),
                    ReducerOutcome::Err(bytes) => {
                        w.push(2);
                        put_bytes(w, bytes);
                    }
                    ReducerOutcome::InternalError(e) => {
                        w.push(3);
                        put_str(w, e);
                    }
                }
            }
            ServerMessage::ProcedureResult {
                status,
                timestamp,
                total_host_execution_duration,
                request_id,
            } => {
                w.push(7);
                match status {
                    ProcedureStatus::Returned(bytes) => {
                        w.push(0);
                        put_bytes(w, bytes);
                    }
                    ProcedureStatus::InternalError(e) => {
                        w.push(1);
                        put_str(w, e);
                    }
                }
                w.extend_from_slice(&timestamp.to_micros_since_unix_epoch().to_le_bytes());
                w.extend_from_slice(&total_host_execution_duration.to_micros().to_le_bytes());
                put_u32(w, *request_id);
            }
        }
    }

    /// Decodes exactly one message; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let msg = Self::decode_from(&mut r)?;
        r.finish("ServerMessage")?;
        Ok(msg)
    }

    /// Decodes one message from the reader, leaving the rest.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.tag("ServerMessage", 8)? {
            0 => ServerMessage::InitialConnection {
                identity: Identity::from_byte_array(r.bytes32()?),
                connection_id: ConnectionId::from_le_byte_array(r.bytes16()?),
                token: r.string()?,
            },
            1 => ServerMessage::SubscribeApplied {
                request_id: r.u32()?,
                query_set_id: QuerySetId { id: r.u32()? },
                rows: QueryRows::decode_from(r)?,
            },
            2 => ServerMessage::UnsubscribeApplied {
                request_id: r.u32()?,
                query_set_id: QuerySetId { id: r.u32()? },
                rows: match r.tag("Option<QueryRows>", 2)? {
                    0 => Some(QueryRows::decode_from(r)?),
                    _ => None,
                },
            },
            3 => ServerMessage::SubscriptionError {
                request_id: match r.tag("Option<u32>", 2)? {
                    0 => Some(r.u32()?),
                    _ => None,
                },
                query_set_id: QuerySetId { id: r.u32()? },
                error: r.string()?,
            },
            4 => ServerMessage::TransactionUpdate(TransactionUpdate::decode_from(r)?),
            5 => ServerMessage::OneOffQueryResult {
                request_id: r.u32()?,
                result: match r.tag("Result<QueryRows, String>", 2)? {
                    0 => Ok(QueryRows::decode_from(r)?),
                    _ => Err(r.string()?),
                },
            },
            6 => ServerMessage::ReducerResult {
                request_id: r.u32()?,
                timestamp: Timestamp::from_micros_since_unix_epoch(r.i64()?),
                result: match r.tag("ReducerOutcome", 4)? {
                    0 => ReducerOutcome::Ok(ReducerOk {
                        ret_value: r.byte_vec()?,
                        transaction_update: TransactionUpdate::decode_from(r)?,
                    }),
                    1 => ReducerOutcome::OkEmpty,
                    2 => ReducerOutcome::Err(r.byte_vec()?),
                    _ => ReducerOutcome::InternalError(r.string()?),
                },
            },
            _ => ServerMessage::ProcedureResult {
                status: match r.tag("ProcedureStatus", 2)? {
                    0 => ProcedureStatus::Returned(r.byte_vec()?),
                    _ => ProcedureStatus::InternalError(r.string()?),
                },
                timestamp: Timestamp::from_micros_since_unix_epoch(r.i64()?),
                total_host_execution_duration: TimeDuration::from_micros(r.i64()?),
                request_id: r.u32()?,
            },
        })
    }
}
