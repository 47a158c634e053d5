//! The bytes inside commit-log records and snapshot parts: how a transaction,
//! a table schema and a table's contents are encoded, and how replay applies them.
//!
//! Owns: the payload format described in docs/design/commitlog.md ("Payload")
//! and docs/design/snapshot.md ("Parts"), all little-endian with explicit widths.
//! Does not own: framing, checksums and segments (`storage::commitlog`), or
//! objects and manifests (`storage::snapshot`).
//!
//! Invariant: decoding never trusts a length beyond the bytes that remain, and
//! replay refuses a record that does not fit the state (a delete of an absent
//! row, an insert that breaks uniqueness) instead of guessing.

use std::sync::Arc;

use spacetimedb_primitives::{ColId, IndexId, TableId};
use spacetimedb_sats::buffer::BufReader;
use spacetimedb_sats::ProductType;

use crate::schema::{
    IndexAlgorithm, IndexSchema, SequenceSchema, TableSchema, UniqueConstraintDef,
};
use crate::state::State;
use crate::table::{SequenceState, Table};
use crate::tx::{SequenceReservation, TxDelta};
use crate::value::{self, Row};

/// Version 2 adds the commit time (i64 microseconds since the Unix epoch)
/// after the version byte; version 1 records are still read.
const TX_FORMAT_VERSION: u8 = 2;
const TX_FORMAT_VERSION_UNTIMED: u8 = 1;
const TABLE_PART_VERSION: u8 = 1;

const ENTRY_CREATE_TABLE: u8 = 1;
const ENTRY_DROP_TABLE: u8 = 2;
const ENTRY_SEQUENCE_RESERVE: u8 = 3;
const ENTRY_DELETES: u8 = 4;
const ENTRY_INSERTS: u8 = 5;
const ENTRY_ALTER_TABLE: u8 = 6;

/// Encodes one committed transaction. Entry order is the replay order:
/// dropped tables (so a table may be dropped and created again under the same
/// name), created tables, altered tables, sequence reservations, then per
/// table deletes before inserts (an update deletes a key before re-inserting
/// it). Every entry after the drops names a table present after the
/// transaction: the caller passes only reservations of such tables. A table is
/// altered before any write of its transaction (`MutTx::alter_table` refuses
/// otherwise), so its rows are at the new schema.
pub(crate) fn encode_tx(
    delta: &TxDelta,
    reservations: &[SequenceReservation],
    commit_micros: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(TX_FORMAT_VERSION);
    out.extend_from_slice(&commit_micros.to_le_bytes());
    let entries = delta.created_tables.len()
        + delta.altered_tables.len()
        + reservations.len()
        + delta
            .tables
            .iter()
            .map(|t| (!t.deletes.is_empty()) as usize + (!t.inserts.is_empty()) as usize)
            .sum::<usize>()
        + delta.dropped_tables.len();
    put_u32(&mut out, entries as u32);
    for table_id in &delta.dropped_tables {
        out.push(ENTRY_DROP_TABLE);
        put_u32(&mut out, table_id.0);
    }
    for schema in &delta.created_tables {
        out.push(ENTRY_CREATE_TABLE);
        encode_schema(schema, &mut out);
    }
    for altered in &delta.altered_tables {
        out.push(ENTRY_ALTER_TABLE);
        encode_schema(&altered.schema, &mut out);
        put_u32(&mut out, altered.added_defaults.len() as u32);
        value::encode_row(&altered.added_defaults, &mut out);
    }
    for reservation in reservations {
        out.push(ENTRY_SEQUENCE_RESERVE);
        put_u32(&mut out, reservation.table_id.0);
        put_u16(&mut out, reservation.sequence);
        out.extend_from_slice(&reservation.reserved_upto.to_le_bytes());
    }
    for table in &delta.tables {
        for (kind, rows) in [
            (ENTRY_DELETES, &table.deletes),
            (ENTRY_INSERTS, &table.inserts),
        ] {
            if rows.is_empty() {
                continue;
            }
            out.push(kind);
            put_u32(&mut out, table.table_id.0);
            put_u32(&mut out, rows.len() as u32);
            for row in rows {
                value::encode_row(row, &mut out);
            }
        }
    }
    out
}

/// When the transaction of a commit-log payload committed (microseconds
/// since the Unix epoch, from the database's clock); `None` for records
/// written before payloads carried it, or bytes that are no payload.
pub fn commit_micros(payload: &[u8]) -> Option<i64> {
    match payload {
        [TX_FORMAT_VERSION, time @ ..] if time.len() >= 8 => {
            Some(i64::from_le_bytes(time[..8].try_into().ok()?))
        }
        _ => None,
    }
}

/// Applies one record during recovery. `tx_no` marks inserted rows.
pub(crate) fn apply_tx(state: &mut State, bytes: &[u8], tx_no: u64) -> Result<(), String> {
    let mut reader = bytes;
    match get_u8(&mut reader)? {
        TX_FORMAT_VERSION => {
            get_u64(&mut reader)?; // the commit time
        }
        TX_FORMAT_VERSION_UNTIMED => {}
        version => return Err(format!("unknown transaction format version {version}")),
    }
    let entries = get_u32(&mut reader)?;
    let mut touched = Vec::new();
    for _ in 0..entries {
        match get_u8(&mut reader)? {
            ENTRY_CREATE_TABLE => {
                let schema = decode_schema(&mut reader)?;
                if state.tables.contains_key(&schema.table_id)
                    || state.table_names.contains_key(&schema.name)
                {
                    return Err(format!(
                        "table `{}` ({}) created twice",
                        schema.name, schema.table_id
                    ));
                }
                state.add_table(Table::new(Arc::new(schema)));
            }
            ENTRY_ALTER_TABLE => {
                let schema = decode_schema(&mut reader)?;
                let table_id = schema.table_id;
                let old = state.table(table_id).map_err(|e| e.to_string())?;
                let old_width = old.schema.columns.elements.len();
                let count = get_u32(&mut reader)? as usize;
                let added = schema
                    .columns
                    .elements
                    .get(old_width..)
                    .filter(|added| added.len() == count)
                    .ok_or_else(|| {
                        format!("alter of `{}`: {count} defaults do not fit", schema.name)
                    })?;
                let added = ProductType::new(added.to_vec().into_boxed_slice());
                let defaults = value::read_row(&added, &mut reader)
                    .map_err(|e| format!("defaults of `{}`: {e}", schema.name))?;
                old.schema
                    .check_alter(&schema, &defaults)
                    .map_err(|e| e.to_string())?;
                let altered = old.altered(Arc::new(schema), &defaults)?;
                state.remove_table(table_id);
                state.add_table(altered);
            }
            ENTRY_DROP_TABLE => {
                let table_id = TableId(get_u32(&mut reader)?);
                state
                    .remove_table(table_id)
                    .ok_or_else(|| format!("drop of absent table {table_id}"))?;
            }
            ENTRY_SEQUENCE_RESERVE => {
                let table_id = TableId(get_u32(&mut reader)?);
                let sequence = get_u16(&mut reader)? as usize;
                let upto = get_i128(&mut reader)?;
                let table = state.table_mut(table_id).map_err(|e| e.to_string())?;
                let max = table
                    .schema
                    .sequences
                    .get(sequence)
                    .ok_or_else(|| format!("table {table_id} has no sequence {sequence}"))?
                    .max_value;
                let counter = &mut table.sequences[sequence];
                counter.reserved_upto = counter.reserved_upto.max(upto);
                counter.next = Some(counter.reserved_upto).filter(|next| *next <= max);
            }
            kind @ (ENTRY_DELETES | ENTRY_INSERTS) => {
                let table_id = TableId(get_u32(&mut reader)?);
                let count = get_u32(&mut reader)?;
                let table = state.table_mut(table_id).map_err(|e| e.to_string())?;
                let schema = table.schema.clone();
                for _ in 0..count {
                    let row = value::read_row(&schema.columns, &mut reader)
                        .map_err(|e| format!("row of `{}`: {e}", schema.name))?;
                    if schema.is_event {
                        // Event rows were delivered, never committed.
                        if kind == ENTRY_DELETES {
                            return Err(format!("delete from event table `{}`", schema.name));
                        }
                        continue;
                    }
                    if kind == ENTRY_DELETES {
                        let row_id = table.find_same(&row).ok_or_else(|| {
                            format!("delete of a row absent from `{}`", schema.name)
                        })?;
                        table.remove(row_id);
                    } else {
                        if table.check_insert(&row) != Ok(None) {
                            return Err(format!(
                                "insert into `{}` conflicts with a present row",
                                schema.name
                            ));
                        }
                        table.insert(row, tx_no);
                    }
                }
                touched.push(table_id);
            }
            kind => return Err(format!("unknown entry kind {kind}")),
        }
    }
    if !reader.is_empty() {
        return Err(format!("{} trailing bytes", reader.len()));
    }
    for table_id in touched {
        if let Ok(table) = state.table_mut(table_id) {
            table.end_tx();
        }
    }
    Ok(())
}

/// One table's contents for a snapshot: schema, sequence reservations, rows
/// sorted by value so that equal tables give equal bytes (and deduplicate).
pub(crate) fn encode_table_part(
    schema: &TableSchema,
    reserved: &[i128],
    rows: &mut [Row],
) -> Vec<u8> {
    rows.sort_unstable();
    let mut out = Vec::with_capacity(64 + rows.len() * 16);
    out.push(TABLE_PART_VERSION);
    encode_schema(schema, &mut out);
    put_u32(&mut out, reserved.len() as u32);
    for upto in reserved {
        out.extend_from_slice(&upto.to_le_bytes());
    }
    put_u64(&mut out, rows.len() as u64);
    for row in rows.iter() {
        value::encode_row(row, &mut out);
    }
    out
}

/// Rebuilds a table (rows, indexes, sequences) from its snapshot part.
pub(crate) fn decode_table_part(bytes: &[u8]) -> Result<Table, String> {
    let mut reader = bytes;
    let version = get_u8(&mut reader)?;
    if version != TABLE_PART_VERSION {
        return Err(format!("unknown table part version {version}"));
    }
    let schema = Arc::new(decode_schema(&mut reader)?);
    let reservations = get_u32(&mut reader)? as usize;
    if reservations != schema.sequences.len() {
        return Err(format!(
            "{reservations} sequence states for {} sequences",
            schema.sequences.len()
        ));
    }
    let mut sequences = Vec::with_capacity(reservations);
    for sequence in &schema.sequences {
        let upto = get_i128(&mut reader)?;
        let next = Some(upto).filter(|next| *next <= sequence.max_value);
        sequences.push(SequenceState {
            next,
            reserved_upto: upto,
        });
    }
    let count = get_u64(&mut reader)?;
    // Never preallocate more than the bytes left could hold.
    let mut rows = Vec::with_capacity((count as usize).min(reader.len()));
    for _ in 0..count {
        let row = value::read_row(&schema.columns, &mut reader)
            .map_err(|e| format!("row of `{}`: {e}", schema.name))?;
        rows.push(row);
    }
    if !reader.is_empty() {
        return Err(format!("{} trailing bytes", reader.len()));
    }
    let mut table = Table::load(schema.clone(), rows)
        .map_err(|e| format!("snapshot of `{}`: {e}", schema.name))?;
    table.sequences = sequences;
    Ok(table)
}

fn encode_schema(schema: &TableSchema, out: &mut Vec<u8>) {
    put_u32(out, schema.table_id.0);
    put_str(out, &schema.name);
    let columns = spacetimedb_sats::bsatn::to_vec(&schema.columns).expect("product types encode");
    put_bytes(out, &columns);
    match schema.primary_key {
        Some(col) => {
            out.push(1);
            put_u16(out, col.0);
        }
        None => out.push(0),
    }
    put_u32(out, schema.indexes.len() as u32);
    for index in &schema.indexes {
        put_u32(out, index.index_id.0);
        put_str(out, &index.name);
        out.push(match index.algorithm {
            IndexAlgorithm::BTree => 0,
            IndexAlgorithm::Hash => 1,
            IndexAlgorithm::Direct => 2,
        });
        put_cols(out, &index.columns);
        match &index.unique {
            Some(name) => {
                out.push(1);
                put_str(out, name);
            }
            None => out.push(0),
        }
    }
    put_u32(out, schema.unique_constraints.len() as u32);
    for constraint in &schema.unique_constraints {
        put_str(out, &constraint.name);
        put_cols(out, &constraint.columns);
    }
    put_u32(out, schema.sequences.len() as u32);
    for sequence in &schema.sequences {
        put_str(out, &sequence.name);
        put_u16(out, sequence.column.0);
        for n in [
            sequence.start,
            sequence.min_value,
            sequence.max_value,
            sequence.increment,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out.push(schema.public as u8);
    out.push(schema.is_event as u8);
}

fn decode_schema(reader: &mut &[u8]) -> Result<TableSchema, String> {
    let table_id = TableId(get_u32(reader)?);
    let name = get_str(reader)?;
    let mut columns_bytes = get_bytes(reader)?;
    let columns = ProductType::decode(&mut columns_bytes)
        .map_err(|e| format!("column types of `{name}`: {e}"))?;
    let column_count = columns.elements.len();
    let col = |c: u16| -> Result<ColId, String> {
        if (c as usize) < column_count {
            Ok(ColId(c))
        } else {
            Err(format!("column {c} out of range in `{name}`"))
        }
    };
    let primary_key = match get_u8(reader)? {
        0 => None,
        _ => Some(col(get_u16(reader)?)?),
    };
    let mut indexes = Vec::new();
    for _ in 0..get_count(reader)? {
        let index_id = IndexId(get_u32(reader)?);
        let index_name = get_str(reader)?;
        let algorithm = match get_u8(reader)? {
            0 => IndexAlgorithm::BTree,
            1 => IndexAlgorithm::Hash,
            2 => IndexAlgorithm::Direct,
            other => return Err(format!("unknown index algorithm {other}")),
        };
        let columns = get_cols(reader)?
            .into_iter()
            .map(|c| col(c.0))
            .collect::<Result<Vec<_>, _>>()?;
        let unique = match get_u8(reader)? {
            0 => None,
            _ => Some(get_str(reader)?),
        };
        indexes.push(IndexSchema {
            index_id,
            name: index_name,
            algorithm,
            columns,
            unique,
        });
    }
    let mut unique_constraints = Vec::new();
    for _ in 0..get_count(reader)? {
        let constraint_name = get_str(reader)?;
        let columns = get_cols(reader)?
            .into_iter()
            .map(|c| col(c.0))
            .collect::<Result<Vec<_>, _>>()?;
        unique_constraints.push(UniqueConstraintDef {
            name: constraint_name,
            columns,
        });
    }
    let mut sequences = Vec::new();
    for _ in 0..get_count(reader)? {
        let sequence_name = get_str(reader)?;
        let column = col(get_u16(reader)?)?;
        let start = get_i128(reader)?;
        let min_value = get_i128(reader)?;
        let max_value = get_i128(reader)?;
        let increment = get_i128(reader)?;
        sequences.push(SequenceSchema {
            name: sequence_name,
            column,
            start,
            min_value,
            max_value,
            increment,
        });
    }
    let public = get_u8(reader)? != 0;
    let is_event = get_u8(reader)? != 0;
    Ok(TableSchema {
        table_id,
        name,
        columns,
        primary_key,
        indexes,
        unique_constraints,
        sequences,
        public,
        is_event,
    })
}

fn put_u16(out: &mut Vec<u8>, n: u16) {
    out.extend_from_slice(&n.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(
        out,
        u32::try_from(bytes.len()).expect("schema parts are far below 4 GiB"),
    );
    out.extend_from_slice(bytes);
}
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}
fn put_cols(out: &mut Vec<u8>, cols: &[ColId]) {
    put_u32(out, cols.len() as u32);
    for col in cols {
        put_u16(out, col.0);
    }
}

fn short<T>(r: Result<T, spacetimedb_sats::buffer::DecodeError>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}
fn get_u8(reader: &mut &[u8]) -> Result<u8, String> {
    short(reader.get_u8())
}
fn get_u16(reader: &mut &[u8]) -> Result<u16, String> {
    short(reader.get_u16())
}
fn get_u32(reader: &mut &[u8]) -> Result<u32, String> {
    short(reader.get_u32())
}
fn get_u64(reader: &mut &[u8]) -> Result<u64, String> {
    short(reader.get_u64())
}
fn get_i128(reader: &mut &[u8]) -> Result<i128, String> {
    short(reader.get_i128())
}
/// A count of items that each take at least one byte: never more than remain.
fn get_count(reader: &mut &[u8]) -> Result<u32, String> {
    let n = get_u32(reader)?;
    if n as usize > reader.len() {
        return Err(format!("count {n} exceeds the {} bytes left", reader.len()));
    }
    Ok(n)
}
fn get_bytes<'a>(reader: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = get_u32(reader)? as usize;
    if len > reader.len() {
        return Err(format!(
            "length {len} exceeds the {} bytes left",
            reader.len()
        ));
    }
    let (bytes, rest) = reader.split_at(len);
    *reader = rest;
    Ok(bytes)
}
fn get_str(reader: &mut &[u8]) -> Result<String, String> {
    let bytes = get_bytes(reader)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| "name is not UTF-8".to_string())
}
fn get_cols(reader: &mut &[u8]) -> Result<Vec<ColId>, String> {
    let n = get_count(reader)?;
    (0..n).map(|_| get_u16(reader).map(ColId)).collect()
}

const META_VERSION: u8 = 1;

/// The snapshot's `meta` part: id counters that rows alone cannot tell.
pub(crate) fn encode_meta(state: &State) -> Vec<u8> {
    let mut out = vec![META_VERSION];
    put_u32(&mut out, state.next_table_id);
    put_u32(&mut out, state.next_index_id);
    out
}

/// Returns `(next_table_id, next_index_id)`.
pub(crate) fn decode_meta(bytes: &[u8]) -> Result<(u32, u32), String> {
    let mut reader = bytes;
    let version = get_u8(&mut reader)?;
    if version != META_VERSION {
        return Err(format!("unknown meta version {version}"));
    }
    let ids = (get_u32(&mut reader)?, get_u32(&mut reader)?);
    if !reader.is_empty() {
        return Err(format!("{} trailing bytes in meta", reader.len()));
    }
    Ok(ids)
}
