//! Transactions: one writer at a time, mutating the state in place with an undo log.
//!
//! Owns: insert (with sequences, set semantics and unique checks), delete by
//! value, by index point and by index range, update through a unique index,
//! clear, create, alter and drop table, rollback, and the [`TxDelta`] a commit
//! returns; and event tables, whose rows live only until their transaction ends.
//! Does not own: the write lock and the commit log (`storage::db`), or how a
//! delta is encoded (`storage::record`).
//!
//! Why in place: a reducer mostly reads its own writes and commits; applying
//! writes directly keeps every read a plain index lookup and makes commit cheap.
//! Rollback replays the undo log backwards, putting rows back into the slots
//! they left (slots freed by the running transaction are not reused before it
//! ends). Sequence counters are not rolled back: a value handed out is never
//! handed out again, and a rolled-back transaction that reserved a block of
//! values still writes that reservation to the commit log.
//!
//! Invariant: after any failed operation the state is exactly as before it.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ops::Deref;
use std::sync::Arc;

use parking_lot::lock_api::ArcRwLockWriteGuard;
use parking_lot::RawRwLock;

use orrery_api::TxOffset;
use smallvec::SmallVec;
use spacetimedb_primitives::{ColId, IndexId, TableId};
use spacetimedb_sats::{AlgebraicValue, ProductValue};

use crate::db::DbInner;
use crate::error::{CommitError, TxError};
use crate::schema::{TableDef, TableSchema};
use crate::state::State;
use crate::table::{RowId, Table};
use crate::value::{self, check_row, display_value, project_key, IndexRange, Row};

/// What an insert did.
#[derive(Clone, Debug, PartialEq)]
pub struct InsertOutcome {
    /// The row as stored, with generated sequence values filled in.
    pub row: Row,
    /// Columns whose zero was replaced by a sequence value, ascending.
    pub generated: SmallVec<[ColId; 2]>,
    /// False when an identical row was already present (a successful no-op).
    pub inserted: bool,
}

impl InsertOutcome {
    /// BSATN of the generated column values back to back, as the ABI writes
    /// them back to the module.
    pub fn generated_bsatn(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for col in &self.generated {
            value::encode_row(std::slice::from_ref(&self.row[col.idx()]), &mut out);
        }
        out
    }
}

/// The rows a committed transaction inserted and deleted, per table, in
/// table-id order; within a table, in the order the operations happened.
/// A row deleted and re-inserted in the same transaction appears in neither list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TxDelta {
    /// Offset of the commit-log record; `None` if the transaction changed nothing.
    pub offset: Option<TxOffset>,
    pub created_tables: Vec<Arc<TableSchema>>,
    /// Tables whose schema changed in place (see [`MutTx::alter_table`]); their
    /// rows were rewritten, which is not listed in `tables`.
    pub altered_tables: Vec<AlteredTable>,
    /// Rows inserted into event tables appear here as inserts although the
    /// committed state never holds them.
    pub tables: Vec<TableDelta>,
    pub dropped_tables: Vec<TableId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableDelta {
    pub table_id: TableId,
    pub schema: Arc<TableSchema>,
    pub inserts: Vec<Row>,
    pub deletes: Vec<Row>,
}

/// One in-place schema change of a committed transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct AlteredTable {
    pub previous: Arc<TableSchema>,
    pub schema: Arc<TableSchema>,
    /// The values every existing row got in the added columns, in column order.
    pub added_defaults: Vec<AlgebraicValue>,
}

impl TxDelta {
    pub fn is_empty(&self) -> bool {
        self.created_tables.is_empty()
            && self.altered_tables.is_empty()
            && self.tables.is_empty()
            && self.dropped_tables.is_empty()
    }
}

/// What [`MutTx::replace_rows`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Tables compared.
    pub tables: usize,
    pub deleted: u64,
    pub inserted: u64,
}

/// A reservation of sequence values that must reach the commit log.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SequenceReservation {
    pub(crate) table_id: TableId,
    pub(crate) sequence: u16,
    pub(crate) reserved_upto: i128,
}

enum Undo {
    Insert {
        table_id: TableId,
        row_id: RowId,
    },
    Delete {
        table_id: TableId,
        row_id: RowId,
        row: Row,
        inserted_by: u64,
    },
    CreateTable {
        table_id: TableId,
    },
    DropTable {
        table: Box<Table>,
    },
    AlterTable {
        previous: Box<Table>,
        schema: Arc<TableSchema>,
        added_defaults: Vec<AlgebraicValue>,
    },
}

/// A write transaction. Reads see its own writes. Dropping it without
/// [`MutTx::commit`] rolls it back.
pub struct MutTx {
    state: ArcRwLockWriteGuard<RawRwLock, State>,
    db: Arc<DbInner>,
    tx_no: u64,
    undo: Vec<Undo>,
    touched: SmallVec<[TableId; 4]>,
    reservations: Vec<SequenceReservation>,
    done: bool,
}

impl Deref for MutTx {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl MutTx {
    pub(crate) fn new(mut state: ArcRwLockWriteGuard<RawRwLock, State>, db: Arc<DbInner>) -> MutTx {
        state.tx_counter += 1;
        let tx_no = state.tx_counter;
        MutTx {
            state,
            db,
            tx_no,
            undo: Vec::new(),
            touched: SmallVec::new(),
            reservations: Vec::new(),
            done: false,
        }
    }

    /// Creates a table; ids of the table and its indexes are assigned here.
    pub fn create_table(&mut self, def: TableDef) -> Result<TableId, TxError> {
        use crate::error::SchemaError;
        if self.state.table_names.contains_key(&def.name) {
            return Err(SchemaError::TableExists { name: def.name }.into());
        }
        if self.state.tables.len() >= orrery_api::limits::TABLES_PER_DATABASE_MAX as usize {
            return Err(SchemaError::TooManyTables {
                max: orrery_api::limits::TABLES_PER_DATABASE_MAX,
            }
            .into());
        }
        let table_id = TableId(self.state.next_table_id);
        let schema = def.validate(table_id, IndexId(self.state.next_index_id))?;
        if let Some(index) = schema
            .indexes
            .iter()
            .find(|index| self.state.index_names.contains_key(&index.name))
        {
            return Err(SchemaError::Invalid {
                table: schema.name.clone(),
                reason: format!(
                    "index name `{}` is already used by another table",
                    index.name
                ),
            }
            .into());
        }
        self.state.add_table(Table::new(Arc::new(schema)));
        self.undo.push(Undo::CreateTable { table_id });
        Ok(table_id)
    }

    /// Drops a table and all its rows.
    pub fn drop_table(&mut self, table_id: TableId) -> Result<(), TxError> {
        let table = self
            .state
            .remove_table(table_id)
            .ok_or(TxError::NoSuchTable(table_id))?;
        self.undo.push(Undo::DropTable {
            table: Box::new(table),
        });
        Ok(())
    }

    /// Changes the schema of a table in place, keeping its rows, its id and
    /// its sequence counters: indexes that serve no unique constraint may be
    /// added or dropped (kept ones keep their ids), columns may be added at the
    /// end with `added_defaults` as the value of every existing row, and
    /// visibility may change. Anything else fails; see
    /// [`TableSchema::check_alter`]. The table must not have been created,
    /// altered or written earlier in this transaction (writes after the
    /// alteration are fine).
    pub fn alter_table(
        &mut self,
        table_id: TableId,
        def: TableDef,
        added_defaults: Vec<AlgebraicValue>,
    ) -> Result<Arc<TableSchema>, TxError> {
        use crate::error::SchemaError;
        let old = self.state.table(table_id)?;
        let previous = old.schema.clone();
        let err = |reason: String| -> TxError {
            SchemaError::Invalid {
                table: previous.name.clone(),
                reason,
            }
            .into()
        };
        let used_here = self.undo.iter().any(|undo| match undo {
            Undo::Insert { table_id: t, .. }
            | Undo::Delete { table_id: t, .. }
            | Undo::CreateTable { table_id: t } => *t == table_id,
            Undo::AlterTable { schema, .. } => schema.table_id == table_id,
            Undo::DropTable { .. } => false,
        });
        if used_here {
            return Err(err(
                "cannot be altered after this transaction created, altered or wrote it".into(),
            ));
        }
        let mut schema = def.validate(table_id, IndexId(0))?;
        let mut next_index_id = self.state.next_index_id;
        for index in &mut schema.indexes {
            let kept = previous.indexes.iter().find(|old| {
                old.name == index.name
                    && old.columns == index.columns
                    && old.algorithm == index.algorithm
                    && old.unique == index.unique
            });
            index.index_id = match kept {
                Some(old) => old.index_id,
                None => {
                    next_index_id += 1;
                    IndexId(next_index_id - 1)
                }
            };
            let owner = self
                .state
                .index_names
                .get(&index.name)
                .and_then(|id| self.state.index_owner(*id));
            if owner.is_some_and(|(owner, _)| owner != table_id) {
                return Err(err(format!(
                    "index name `{}` is already used by another table",
                    index.name
                )));
            }
        }
        previous.check_alter(&schema, &added_defaults)?;
        let schema = Arc::new(schema);
        let altered = old.altered(schema.clone(), &added_defaults).map_err(err)?;
        let previous_table = self
            .state
            .remove_table(table_id)
            .expect("the table was found above");
        self.state.add_table(altered);
        self.undo.push(Undo::AlterTable {
            previous: Box::new(previous_table),
            schema: schema.clone(),
            added_defaults,
        });
        Ok(schema)
    }

    /// Inserts a row given as values; see [`MutTx::insert_row`].
    pub fn insert(
        &mut self,
        table_id: TableId,
        row: ProductValue,
    ) -> Result<InsertOutcome, TxError> {
        self.insert_row(table_id, row.elements.into_vec())
    }

    /// Decodes a row sent by a module (BSATN at the table's type) and inserts it.
    pub fn insert_bsatn(
        &mut self,
        table_id: TableId,
        bytes: &[u8],
    ) -> Result<InsertOutcome, TxError> {
        let schema = self.state.schema(table_id)?;
        let row = value::decode_row(schema, bytes)?;
        let fires = schema
            .sequences
            .iter()
            .any(|seq| value::integer_value(&row[seq.column.idx()]) == Some(0));
        if fires {
            return self.insert_row(table_id, row.to_vec());
        }
        // Decoded at the table's type: no type check, no copy.
        self.insert_checked(table_id, row, SmallVec::new())
    }

    /// Inserts a row: fills zero auto-increment columns from their sequences,
    /// then adds the row unless an identical one exists (set semantics), failing
    /// with [`TxError::UniqueViolation`] if another row holds one of its unique keys.
    pub fn insert_row(
        &mut self,
        table_id: TableId,
        mut values: Vec<AlgebraicValue>,
    ) -> Result<InsertOutcome, TxError> {
        check_row(&self.state.table(table_id)?.schema, &values)?;
        let generated = self.fill_sequences(table_id, &mut values)?;
        self.insert_checked(table_id, Arc::from(values), generated)
    }

    /// Inserts a type-checked row whose sequences have fired.
    fn insert_checked(
        &mut self,
        table_id: TableId,
        row: Row,
        generated: SmallVec<[ColId; 2]>,
    ) -> Result<InsertOutcome, TxError> {
        let table = self.state.table(table_id)?;
        match table.check_insert(&row) {
            Ok(None) => {}
            Ok(Some(existing)) => {
                let row = table.get(existing).expect("found rows are present").clone();
                return Ok(InsertOutcome {
                    row,
                    generated,
                    inserted: false,
                });
            }
            Err((position, key)) => return Err(unique_violation(table, position, &key)),
        }
        let tx_no = self.tx_no;
        let row_id = self.state.table_mut(table_id)?.insert(row.clone(), tx_no);
        self.undo.push(Undo::Insert { table_id, row_id });
        self.touch(table_id);
        Ok(InsertOutcome {
            row,
            generated,
            inserted: true,
        })
    }

    /// Replaces the row whose key in the unique index `index_id` equals the new
    /// row's key. Fails with [`TxError::NoSuchRow`] if there is none.
    pub fn update(
        &mut self,
        table_id: TableId,
        index_id: IndexId,
        row: ProductValue,
    ) -> Result<InsertOutcome, TxError> {
        self.update_row(table_id, index_id, row.elements.into_vec())
    }

    /// Decodes a row sent by a module and updates through `index_id`.
    pub fn update_bsatn(
        &mut self,
        table_id: TableId,
        index_id: IndexId,
        bytes: &[u8],
    ) -> Result<InsertOutcome, TxError> {
        let row = value::decode_row(self.state.schema(table_id)?, bytes)?;
        self.update_row(table_id, index_id, row.to_vec())
    }

    pub fn update_row(
        &mut self,
        table_id: TableId,
        index_id: IndexId,
        mut values: Vec<AlgebraicValue>,
    ) -> Result<InsertOutcome, TxError> {
        let (owner, position) = self
            .state
            .index_owner(index_id)
            .ok_or(TxError::NoSuchIndex(index_id))?;
        if owner != table_id {
            return Err(TxError::NoSuchIndex(index_id));
        }
        {
            let table = self.state.table(table_id)?;
            if !table.indexes[position].is_unique() {
                return Err(TxError::IndexNotUnique {
                    index: table.indexes[position].name.clone(),
                });
            }
            check_row(&table.schema, &values)?;
        }
        let generated = self.fill_sequences(table_id, &mut values)?;
        let row: Row = Arc::from(values);
        let table = self.state.table(table_id)?;
        let index = &table.indexes[position];
        let key = project_key(&row, &index.columns);
        let Some(old_id) = index.get_unique(&key) else {
            return Err(TxError::NoSuchRow {
                table: table.schema.name.clone(),
                index: index.name.clone(),
            });
        };
        let old = table.get(old_id).expect("index entries point at rows");
        if **old == *row {
            return Ok(InsertOutcome {
                row: old.clone(),
                generated,
                inserted: false,
            });
        }
        if let Some((position, key)) = table.unique_conflict(&row, Some(old_id)) {
            return Err(unique_violation(table, position, &key));
        }
        self.remove(table_id, old_id);
        let tx_no = self.tx_no;
        let row_id = self.state.table_mut(table_id)?.insert(row.clone(), tx_no);
        self.undo.push(Undo::Insert { table_id, row_id });
        Ok(InsertOutcome {
            row,
            generated,
            inserted: true,
        })
    }

    /// Makes the rows of every table `include` selects equal to those of
    /// the table of the same name in `target`, another copy of this
    /// database at an earlier point of its history (an in-place restore):
    /// rows `target` lacks are deleted, then rows only `target` holds are
    /// inserted exactly as they are. Sequences do not fire and keep their
    /// place, which in one history is above every value they gave out.
    /// Both sides must select the same tables with the same columns;
    /// otherwise nothing is changed and the answer is
    /// [`TxError::NotComparable`]. Event tables are skipped: they hold no
    /// rows between transactions.
    pub fn replace_rows(
        &mut self,
        target: &State,
        include: impl Fn(&TableSchema) -> bool,
    ) -> Result<Replaced, TxError> {
        let selected = |state: &State| -> Vec<(String, TableId)> {
            let mut tables: Vec<(String, TableId)> = state
                .table_ids()
                .filter_map(|id| state.schema(id).ok())
                .filter(|schema| !schema.is_event && include(schema))
                .map(|schema| (schema.name.clone(), schema.table_id))
                .collect();
            tables.sort();
            tables
        };
        let ours = selected(&self.state);
        let theirs = selected(target);
        let not_comparable = |table: &str, reason: &str| TxError::NotComparable {
            table: table.to_owned(),
            reason: reason.to_owned(),
        };
        for (name, _) in &ours {
            if !theirs.iter().any(|(n, _)| n == name) {
                return Err(not_comparable(name, "it did not exist at that point"));
            }
        }
        let mut pairs = Vec::with_capacity(theirs.len());
        for (name, their_id) in &theirs {
            let Some((_, our_id)) = ours.iter().find(|(n, _)| n == name) else {
                return Err(not_comparable(name, "it no longer exists"));
            };
            if self.state.schema(*our_id)?.columns != target.schema(*their_id)?.columns {
                return Err(not_comparable(name, "its columns changed since that point"));
            }
            pairs.push((*our_id, *their_id));
        }
        let mut replaced = Replaced {
            tables: pairs.len(),
            ..Replaced::default()
        };
        for (our_id, their_id) in pairs {
            let theirs = target.table(their_id)?;
            let gone: Vec<RowId> = self
                .state
                .table(our_id)?
                .rows()
                .filter(|(_, row)| theirs.find_same(row).is_none())
                .map(|(row_id, _)| row_id)
                .collect();
            replaced.deleted += gone.len() as u64;
            for row_id in gone {
                self.remove(our_id, row_id);
            }
            let ours = self.state.table(our_id)?;
            let back: Vec<Row> = theirs
                .rows()
                .filter(|(_, row)| ours.find_same(row).is_none())
                .map(|(_, row)| row.clone())
                .collect();
            for row in back {
                self.insert_checked(our_id, row, SmallVec::new())?;
                replaced.inserted += 1;
            }
        }
        Ok(replaced)
    }

    /// Deletes the row equal to `row`; false if absent.
    pub fn delete_row(
        &mut self,
        table_id: TableId,
        row: &[AlgebraicValue],
    ) -> Result<bool, TxError> {
        match self.state.table(table_id)?.find_same(row) {
            Some(row_id) => {
                self.remove(table_id, row_id);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Deletes every row of a BSATN array of rows that is present (module ABI
    /// `datastore_delete_all_by_eq_bsatn`); returns how many were deleted.
    pub fn delete_rows_bsatn(&mut self, table_id: TableId, bytes: &[u8]) -> Result<u32, TxError> {
        use spacetimedb_sats::buffer::BufReader;
        let schema = self.state.schema(table_id)?.clone();
        let mut reader = bytes;
        let count = reader.get_u32().map_err(|e| TxError::Decode {
            what: "row array",
            reason: e.to_string(),
        })?;
        let mut rows = Vec::with_capacity((count as usize).min(reader.len()));
        for _ in 0..count {
            let row = ProductValue::decode(&schema.columns, &mut reader).map_err(|e| {
                TxError::Decode {
                    what: "row array",
                    reason: e.to_string(),
                }
            })?;
            rows.push(row);
        }
        if !reader.is_empty() {
            return Err(TxError::Decode {
                what: "row array",
                reason: format!("{} trailing bytes", reader.len()),
            });
        }
        let mut deleted = 0;
        for row in rows {
            deleted += self.delete_row(table_id, &row.elements)? as u32;
        }
        Ok(deleted)
    }

    /// Deletes the rows whose key in `index_id` equals `key`.
    pub fn delete_by_point(
        &mut self,
        index_id: IndexId,
        key: &AlgebraicValue,
    ) -> Result<u32, TxError> {
        let (table, position) = self.state.index(index_id)?;
        let table_id = table.schema.table_id;
        let ids: Vec<RowId> = table.indexes[position].point(key).collect();
        self.remove_all(table_id, ids)
    }

    pub fn delete_by_point_bsatn(
        &mut self,
        index_id: IndexId,
        point: &[u8],
    ) -> Result<u32, TxError> {
        let key = self.state.decode_point(index_id, point)?;
        self.delete_by_point(index_id, &key)
    }

    /// Deletes exactly the rows [`State::index_range`] would return.
    pub fn delete_by_range(
        &mut self,
        index_id: IndexId,
        range: &IndexRange,
    ) -> Result<u32, TxError> {
        let (table, _) = self.state.index(index_id)?;
        let table_id = table.schema.table_id;
        let rows: Vec<Row> = self.state.index_range(index_id, range)?.cloned().collect();
        let table = self.state.table(table_id)?;
        let ids = rows
            .iter()
            .map(|row| table.find_same(row).expect("scanned rows are present"))
            .collect();
        self.remove_all(table_id, ids)
    }

    pub fn delete_by_range_bsatn(
        &mut self,
        index_id: IndexId,
        prefix: &[u8],
        prefix_elems: usize,
        rstart: &[u8],
        rend: &[u8],
    ) -> Result<u32, TxError> {
        let range = self
            .state
            .decode_range(index_id, prefix, prefix_elems, rstart, rend)?;
        self.delete_by_range(index_id, &range)
    }

    /// Deletes every row of the table; returns how many.
    pub fn clear(&mut self, table_id: TableId) -> Result<u64, TxError> {
        let ids: Vec<RowId> = self
            .state
            .table(table_id)?
            .rows()
            .map(|(id, _)| id)
            .collect();
        Ok(self.remove_all(table_id, ids)? as u64)
    }

    /// Rows of a scan copied out, so the caller may keep iterating while it
    /// deletes: later writes of this transaction do not affect the copy.
    pub fn collect(rows: crate::state::RowsRef<'_>) -> Vec<Row> {
        rows.cloned().collect()
    }

    /// Tables this transaction has written so far (inserts, deletes, schema
    /// changes), each once.
    pub fn touched_tables(&self) -> &[TableId] {
        &self.touched
    }

    /// The net changes this transaction has made so far (what its commit
    /// would report now), for a [`crate::PreCommit`] hook that needs the
    /// rows written, not only the tables.
    pub fn pending_delta(&self) -> TxDelta {
        self.delta()
    }

    /// Commits: runs the database's [`crate::PreCommit`] hook if this
    /// transaction wrote anything, writes the record to the commit log (if
    /// anything changed) and returns the delta. Durability is separate: wait
    /// on [`crate::Database::wait_durable`].
    pub fn commit(self) -> Result<TxDelta, CommitError> {
        let hook = match self.touched.is_empty() {
            true => None,
            false => self.db.pre_commit(),
        };
        let Some(hook) = hook else {
            return self.commit_now();
        };
        let (tx, verdict) = hook.before_commit(self);
        match verdict {
            Ok(()) => tx.commit_now(),
            Err(message) => {
                tx.rollback();
                Err(CommitError::Refused(message))
            }
        }
    }

    fn commit_now(mut self) -> Result<TxDelta, CommitError> {
        let mut delta = self.delta();
        if !delta.is_empty() || !self.live_reservations().is_empty() {
            let payload = self.payload(&delta);
            match self.db.append(&mut self.state, payload) {
                Ok(offset) => {
                    delta.offset = Some(offset);
                    self.drain_event_tables();
                }
                Err(error) => {
                    self.rollback_in_place();
                    self.done = true;
                    return Err(error);
                }
            }
        }
        self.finish();
        self.done = true;
        if let Some(observer) = self.db.observer() {
            observer.committed(&delta, &self.state);
        }
        Ok(delta)
    }

    /// Empties the event tables this transaction wrote: their rows were
    /// delivered in the delta and logged, but never join the committed state.
    fn drain_event_tables(&mut self) {
        for table_id in self.touched.clone() {
            let Ok(table) = self.state.table_mut(table_id) else {
                continue;
            };
            if !table.schema.is_event {
                continue;
            }
            let ids: Vec<RowId> = table.rows().map(|(id, _)| id).collect();
            for row_id in ids {
                table.remove(row_id);
            }
        }
    }

    /// Undoes every write. Sequence reservations made by this transaction still
    /// reach the commit log, so their values are never handed out again.
    pub fn rollback(mut self) {
        self.rollback_in_place();
        self.done = true;
    }

    fn rollback_in_place(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Insert { table_id, row_id } => {
                    self.state
                        .table_mut(table_id)
                        .expect("undo entries name present tables")
                        .remove(row_id);
                }
                Undo::Delete {
                    table_id,
                    row_id,
                    row,
                    inserted_by,
                } => {
                    self.state
                        .table_mut(table_id)
                        .expect("undo entries name present tables")
                        .restore(row_id, row, inserted_by);
                }
                Undo::CreateTable { table_id } => {
                    self.state
                        .remove_table(table_id)
                        .expect("undo of a create finds the table");
                }
                Undo::DropTable { table } => self.state.add_table(*table),
                Undo::AlterTable { previous, .. } => {
                    self.state
                        .remove_table(previous.schema.table_id)
                        .expect("undo of an alter finds the table");
                    self.state.add_table(*previous);
                }
            }
        }
        self.finish();
        if !self.live_reservations().is_empty() {
            let payload = self.payload(&TxDelta::default());
            // A failure here leaves the log failed; the database then refuses writes.
            let _ = self.db.append(&mut self.state, payload);
        }
    }

    /// The commit-log record; a database without a log gets offsets but no
    /// bytes. Reservations of tables that no longer exist (dropped, or created
    /// and rolled back, by this transaction) are left out: replay could not
    /// apply them, and nothing can draw from those sequences again.
    fn payload(&self, delta: &TxDelta) -> Vec<u8> {
        if self.db.has_log() {
            crate::record::encode_tx(delta, &self.live_reservations(), self.db.clock.now_micros())
        } else {
            Vec::new()
        }
    }

    fn live_reservations(&self) -> Vec<SequenceReservation> {
        self.reservations
            .iter()
            .filter(|r| self.state.tables.contains_key(&r.table_id))
            .cloned()
            .collect()
    }

    fn finish(&mut self) {
        for table_id in std::mem::take(&mut self.touched) {
            if let Ok(table) = self.state.table_mut(table_id) {
                table.end_tx();
            }
        }
        self.undo.clear();
    }

    /// Builds the delta from the undo log without consuming it, so a failed
    /// append can still roll back.
    fn delta(&self) -> TxDelta {
        let mut delta = TxDelta::default();
        let mut per_table: std::collections::BTreeMap<TableId, (Vec<Row>, Vec<Row>)> =
            Default::default();
        let mut created = Vec::new();
        for undo in &self.undo {
            match undo {
                Undo::Insert { table_id, row_id } => {
                    let Ok(table) = self.state.table(*table_id) else {
                        continue;
                    };
                    if let Some(row) = table.get(*row_id) {
                        if table.inserted_by(*row_id) == self.tx_no {
                            per_table.entry(*table_id).or_default().0.push(row.clone());
                        }
                    }
                }
                Undo::Delete {
                    table_id,
                    row,
                    inserted_by,
                    ..
                } => {
                    if *inserted_by != self.tx_no {
                        per_table.entry(*table_id).or_default().1.push(row.clone());
                    }
                }
                Undo::CreateTable { table_id } => created.push(*table_id),
                Undo::DropTable { table } => {
                    let table_id = table.schema.table_id;
                    if let Some(at) = created.iter().position(|id| *id == table_id) {
                        created.remove(at);
                    } else {
                        delta.dropped_tables.push(table_id);
                    }
                    per_table.remove(&table_id);
                    delta
                        .altered_tables
                        .retain(|altered| altered.schema.table_id != table_id);
                }
                Undo::AlterTable {
                    previous,
                    schema,
                    added_defaults,
                } => delta.altered_tables.push(AlteredTable {
                    previous: previous.schema.clone(),
                    schema: schema.clone(),
                    added_defaults: added_defaults.clone(),
                }),
            }
        }
        for table_id in created {
            if let Ok(table) = self.state.table(table_id) {
                delta.created_tables.push(table.schema.clone());
            }
        }
        for (table_id, (mut inserts, mut deletes)) in per_table {
            let Ok(table) = self.state.table(table_id) else {
                continue;
            };
            cancel_restored(&mut inserts, &mut deletes);
            if inserts.is_empty() && deletes.is_empty() {
                continue;
            }
            delta.tables.push(TableDelta {
                table_id,
                schema: table.schema.clone(),
                inserts,
                deletes,
            });
        }
        delta
    }

    fn touch(&mut self, table_id: TableId) {
        if !self.touched.contains(&table_id) {
            self.touched.push(table_id);
        }
    }

    fn remove(&mut self, table_id: TableId, row_id: RowId) {
        let table = self
            .state
            .table_mut(table_id)
            .expect("caller checked the table");
        let inserted_by = table.inserted_by(row_id);
        let row = table.remove(row_id);
        self.undo.push(Undo::Delete {
            table_id,
            row_id,
            row,
            inserted_by,
        });
        self.touch(table_id);
    }

    fn remove_all(&mut self, table_id: TableId, ids: Vec<RowId>) -> Result<u32, TxError> {
        let count = u32::try_from(ids.len()).expect("a table holds fewer than 2^32 rows");
        for row_id in ids {
            self.remove(table_id, row_id);
        }
        Ok(count)
    }

    /// Replaces zeros in auto-increment columns with sequence values.
    fn fill_sequences(
        &mut self,
        table_id: TableId,
        values: &mut [AlgebraicValue],
    ) -> Result<SmallVec<[ColId; 2]>, TxError> {
        let step = self.db.options.sequence_reserve_step;
        let table = self.state.table_mut(table_id)?;
        let mut generated = SmallVec::new();
        for (position, sequence) in table.schema.sequences.iter().enumerate() {
            let col = sequence.column;
            if value::integer_value(&values[col.idx()]) != Some(0) {
                continue;
            }
            let state = &mut table.sequences[position];
            let Some(next) = state.next.filter(|next| *next <= sequence.max_value) else {
                return Err(TxError::AutoIncOverflow {
                    table: table.schema.name.clone(),
                    sequence: sequence.name.clone(),
                    max: sequence.max_value,
                });
            };
            if next >= state.reserved_upto {
                let upto = next
                    .saturating_add(sequence.increment.saturating_mul(step))
                    .min(sequence.max_value.saturating_add(1));
                state.reserved_upto = upto.max(next.saturating_add(1));
                self.reservations.push(SequenceReservation {
                    table_id,
                    sequence: position as u16,
                    reserved_upto: state.reserved_upto,
                });
            }
            state.next = next.checked_add(sequence.increment);
            values[col.idx()] = value::integer_of_type(
                &table.schema.columns.elements[col.idx()].algebraic_type,
                next,
            );
            generated.push(col);
        }
        Ok(generated)
    }
}

impl Drop for MutTx {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::thread::panicking() {
            // The state may be half-changed: leave it to the poisoned lock and
            // make the database refuse further use until it is reopened.
            self.db.poison();
            return;
        }
        self.rollback_in_place();
    }
}

fn unique_violation(table: &Table, position: usize, key: &AlgebraicValue) -> TxError {
    TxError::UniqueViolation {
        table: table.schema.name.clone(),
        constraint: table.schema.indexes[position]
            .unique
            .clone()
            .expect("only unique indexes conflict"),
        key: display_value(key),
    }
}

/// Drops rows that were deleted and re-inserted with identical values: the
/// transaction restored them, so subscribers must see no change.
fn cancel_restored(inserts: &mut Vec<Row>, deletes: &mut Vec<Row>) {
    if inserts.is_empty() || deletes.is_empty() {
        return;
    }
    let mut deleted: HashMap<Row, usize, BuildHasherDefault<std::hash::DefaultHasher>> =
        HashMap::default();
    for (i, row) in deletes.iter().enumerate() {
        deleted.insert(row.clone(), i);
    }
    let mut cancelled = vec![false; deletes.len()];
    inserts.retain(|row| match deleted.remove(row) {
        Some(i) => {
            cancelled[i] = true;
            false
        }
        None => true,
    });
    let mut i = 0;
    deletes.retain(|_| {
        let keep = !cancelled[i];
        i += 1;
        keep
    });
}
