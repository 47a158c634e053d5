//! Executing checked INSERT, UPDATE and DELETE statements in a write
//! transaction (client-protocol §6.3).
//!
//! Owns: applying a bound DML statement to a [`storage::MutTx`] and counting
//! what it changed.
//! Does not own: who may run DML (callers check ownership), the transaction's
//! commit, durability or what happens after the commit (`hosting`).

use spacetimedb_sats::AlgebraicValue;
use storage::{MutTx, Row, TableId, TableSchema};

use super::check::{BoundDelete, BoundInsert, BoundStatement, BoundUpdate};
use super::eval::matches;
use super::SqlError;

/// Rows a statement changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DmlStats {
    pub rows_inserted: u64,
    pub rows_deleted: u64,
    pub rows_updated: u64,
}

/// Runs a DML statement in `tx`. SELECT is refused: run it with `sql::eval`.
pub fn execute(tx: &mut MutTx, statement: &BoundStatement) -> Result<DmlStats, SqlError> {
    match statement {
        BoundStatement::Insert(insert) => execute_insert(tx, insert),
        BoundStatement::Update(update) => execute_update(tx, update),
        BoundStatement::Delete(delete) => execute_delete(tx, delete),
        BoundStatement::Select(_) => Err(SqlError::new("SELECT is not a DML statement")),
    }
}

fn table_id(tx: &MutTx, schema: &TableSchema) -> Result<TableId, SqlError> {
    tx.table_id_from_name(&schema.name)
        .ok_or_else(|| SqlError(format!("no such table `{}`", schema.name)))
}

fn storage_error(e: impl std::fmt::Display) -> SqlError {
    SqlError(e.to_string())
}

fn execute_insert(tx: &mut MutTx, insert: &BoundInsert) -> Result<DmlStats, SqlError> {
    let table = table_id(tx, &insert.table)?;
    let mut stats = DmlStats::default();
    for row in &insert.rows {
        let outcome = tx.insert(table, row.clone()).map_err(storage_error)?;
        if outcome.inserted {
            stats.rows_inserted += 1;
        }
    }
    Ok(stats)
}

/// The rows of `table` matching `filter`, copied out.
fn matching(
    tx: &MutTx,
    table: TableId,
    filter: Option<&super::BoundExpr>,
) -> Result<Vec<Row>, SqlError> {
    let rows = MutTx::collect(tx.scan(table).map_err(storage_error)?);
    Ok(rows
        .into_iter()
        .filter(|row| filter.is_none_or(|f| matches(f, &[row])))
        .collect())
}

fn execute_update(tx: &mut MutTx, update: &BoundUpdate) -> Result<DmlStats, SqlError> {
    let table = table_id(tx, &update.table)?;
    let old_rows = matching(tx, table, update.filter.as_ref())?;
    let mut new_rows = Vec::with_capacity(old_rows.len());
    for old in &old_rows {
        let mut values: Vec<AlgebraicValue> = old.to_vec();
        for (col, value) in &update.assignments {
            values[*col] = value.clone();
        }
        new_rows.push(values);
    }
    // Delete every old row first so an update may move values between rows
    // without tripping unique constraints halfway.
    for old in &old_rows {
        tx.delete_row(table, old).map_err(storage_error)?;
    }
    let mut stats = DmlStats::default();
    for values in new_rows {
        tx.insert_row(table, values).map_err(storage_error)?;
        stats.rows_updated += 1;
    }
    Ok(stats)
}

fn execute_delete(tx: &mut MutTx, delete: &BoundDelete) -> Result<DmlStats, SqlError> {
    let table = table_id(tx, &delete.table)?;
    let rows = matching(tx, table, delete.filter.as_ref())?;
    let mut stats = DmlStats::default();
    for row in &rows {
        if tx.delete_row(table, row).map_err(storage_error)? {
            stats.rows_deleted += 1;
        }
    }
    Ok(stats)
}
