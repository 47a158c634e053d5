//! The in-memory state of one database and every read over it.
//!
//! Owns: the tables by id and name, the index-id directory, id allocation, and
//! reads: lookups by name, row counts, full scans, point and range scans (by
//! value or from ABI bytes). Both [`crate::MutTx`] (which mutates this state in
//! place and keeps an undo log) and [`crate::ReadTx`] read through [`State`].
//! Does not own: mutation rules (`storage::tx`) or durability (`storage::db`).
//!
//! Invariant: `index_owner` names exactly the indexes of the tables present.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use orrery_api::TxOffset;
use spacetimedb_primitives::{IndexId, TableId};
use spacetimedb_sats::AlgebraicValue;

use crate::error::TxError;
use crate::schema::{IndexAlgorithm, TableSchema};
use crate::table::index::{Index, RowIds};
use crate::table::Table;
use crate::value::{self, IndexRange, Row};

/// All tables of a database plus the counters that name new things.
#[derive(Clone, Default)]
pub struct State {
    pub(crate) tables: BTreeMap<TableId, Table>,
    pub(crate) table_names: HashMap<String, TableId>,
    pub(crate) index_names: HashMap<String, IndexId>,
    /// Index id → (table, position in `Table::indexes`); ids are small and dense.
    pub(crate) index_owner: Vec<Option<(TableId, usize)>>,
    pub(crate) next_table_id: u32,
    pub(crate) next_index_id: u32,
    /// Offset the next committed record will get.
    pub(crate) next_offset: TxOffset,
    /// Numbers transactions in memory, so a slot knows which one inserted it.
    pub(crate) tx_counter: u64,
}

/// An iterator over rows borrowed from the state.
pub type RowsRef<'a> = Box<dyn Iterator<Item = &'a Row> + 'a>;

impl State {
    pub(crate) fn empty() -> State {
        State {
            next_table_id: 1,
            next_index_id: 1,
            ..State::default()
        }
    }

    /// The offset of the last committed transaction, if any.
    pub fn last_offset(&self) -> Option<TxOffset> {
        self.next_offset.0.checked_sub(1).map(TxOffset)
    }

    pub fn table_id_from_name(&self, name: &str) -> Option<TableId> {
        self.table_names.get(name).copied()
    }

    pub fn index_id_from_name(&self, name: &str) -> Option<IndexId> {
        self.index_names.get(name).copied()
    }

    /// Tables in id order.
    pub fn table_ids(&self) -> impl Iterator<Item = TableId> + '_ {
        self.tables.keys().copied()
    }

    pub fn schema(&self, table_id: TableId) -> Result<&Arc<TableSchema>, TxError> {
        Ok(&self.table(table_id)?.schema)
    }

    /// The table that owns `index_id` and the index's schema.
    pub fn index_schema(
        &self,
        index_id: IndexId,
    ) -> Result<(&Arc<TableSchema>, &crate::schema::IndexSchema), TxError> {
        let (table, position) = self.index(index_id)?;
        Ok((&table.schema, &table.schema.indexes[position]))
    }

    pub fn row_count(&self, table_id: TableId) -> Result<u64, TxError> {
        Ok(self.table(table_id)?.len() as u64)
    }

    /// Every row of the table, in slot order (unspecified to callers).
    pub fn scan(&self, table_id: TableId) -> Result<RowsRef<'_>, TxError> {
        Ok(Box::new(self.table(table_id)?.rows().map(|(_, row)| row)))
    }

    /// Rows whose key in `index_id` equals `key` (a `Product` for multi-column indexes).
    pub fn index_point(
        &self,
        index_id: IndexId,
        key: &AlgebraicValue,
    ) -> Result<RowsRef<'_>, TxError> {
        let (table, position) = self.index(index_id)?;
        Ok(rows_of(table, table.indexes[position].point(key)))
    }

    /// Rows within an ABI-shaped range (`prefix`, then bounds on the next column).
    pub fn index_range(
        &self,
        index_id: IndexId,
        range: &IndexRange,
    ) -> Result<RowsRef<'_>, TxError> {
        let (table, position) = self.index(index_id)?;
        let index = &table.indexes[position];
        check_range_allowed(index, range)?;
        Ok(match value::key_bounds(range, index.columns.len()) {
            Some((start, end)) => rows_of(table, index.range(start, end)),
            None => Box::new(std::iter::empty()),
        })
    }

    /// The row whose key in the unique index `index_id` equals `key`, without
    /// allocating: for hot paths such as primary-key lookups.
    pub fn find_unique(
        &self,
        index_id: IndexId,
        key: &AlgebraicValue,
    ) -> Result<Option<&Row>, TxError> {
        let (table, position) = self.index(index_id)?;
        let index = &table.indexes[position];
        if !index.is_unique() {
            return Err(TxError::IndexNotUnique {
                index: index.name.clone(),
            });
        }
        Ok(index
            .get_unique(key)
            .map(|id| table.get(id).expect("index entries point at rows")))
    }

    /// Decodes a point key sent by a module and scans for it.
    pub fn index_point_bsatn(
        &self,
        index_id: IndexId,
        point: &[u8],
    ) -> Result<RowsRef<'_>, TxError> {
        let key = self.decode_point(index_id, point)?;
        self.index_point(index_id, &key)
    }

    /// Decodes an ABI range (prefix bytes, element count, BSATN bounds) and scans it.
    pub fn index_range_bsatn(
        &self,
        index_id: IndexId,
        prefix: &[u8],
        prefix_elems: usize,
        rstart: &[u8],
        rend: &[u8],
    ) -> Result<RowsRef<'_>, TxError> {
        let range = self.decode_range(index_id, prefix, prefix_elems, rstart, rend)?;
        self.index_range(index_id, &range)
    }

    pub fn decode_point(&self, index_id: IndexId, point: &[u8]) -> Result<AlgebraicValue, TxError> {
        let (table, position) = self.index(index_id)?;
        value::decode_point(&table.schema, &table.indexes[position].columns, point)
    }

    pub fn decode_range(
        &self,
        index_id: IndexId,
        prefix: &[u8],
        prefix_elems: usize,
        rstart: &[u8],
        rend: &[u8],
    ) -> Result<IndexRange, TxError> {
        let (table, position) = self.index(index_id)?;
        let index = &table.indexes[position];
        if index.algorithm == IndexAlgorithm::Hash {
            return Err(TxError::WrongIndexAlgorithm {
                index: index.name.clone(),
            });
        }
        value::decode_range(
            &table.schema,
            &index.columns,
            prefix,
            prefix_elems,
            rstart,
            rend,
        )
    }

    pub(crate) fn table(&self, table_id: TableId) -> Result<&Table, TxError> {
        self.tables
            .get(&table_id)
            .ok_or(TxError::NoSuchTable(table_id))
    }

    pub(crate) fn table_mut(&mut self, table_id: TableId) -> Result<&mut Table, TxError> {
        self.tables
            .get_mut(&table_id)
            .ok_or(TxError::NoSuchTable(table_id))
    }

    pub(crate) fn index_owner(&self, index_id: IndexId) -> Option<(TableId, usize)> {
        self.index_owner.get(index_id.idx()).copied().flatten()
    }

    pub(crate) fn index(&self, index_id: IndexId) -> Result<(&Table, usize), TxError> {
        let (table_id, position) = self
            .index_owner(index_id)
            .ok_or(TxError::NoSuchIndex(index_id))?;
        Ok((
            self.tables
                .get(&table_id)
                .expect("index_owner names present tables"),
            position,
        ))
    }

    /// Registers a table (already validated) under its id and names.
    pub(crate) fn add_table(&mut self, table: Table) {
        let schema = table.schema.clone();
        for (position, index) in schema.indexes.iter().enumerate() {
            let slot = index.index_id.idx();
            if self.index_owner.len() <= slot {
                self.index_owner.resize(slot + 1, None);
            }
            self.index_owner[slot] = Some((schema.table_id, position));
            self.index_names.insert(index.name.clone(), index.index_id);
            self.next_index_id = self.next_index_id.max(index.index_id.0 + 1);
        }
        self.table_names
            .insert(schema.name.clone(), schema.table_id);
        self.next_table_id = self.next_table_id.max(schema.table_id.0 + 1);
        let previous = self.tables.insert(schema.table_id, table);
        assert!(
            previous.is_none(),
            "table id {} registered twice",
            schema.table_id
        );
    }

    /// Unregisters a table and returns it whole.
    pub(crate) fn remove_table(&mut self, table_id: TableId) -> Option<Table> {
        let table = self.tables.remove(&table_id)?;
        for index in &table.schema.indexes {
            self.index_owner[index.index_id.idx()] = None;
            self.index_names.remove(&index.name);
        }
        self.table_names.remove(&table.schema.name);
        Some(table)
    }
}

fn rows_of<'a>(table: &'a Table, ids: RowIds<'a>) -> RowsRef<'a> {
    Box::new(ids.map(move |id| table.get(id).expect("index entries point at rows")))
}

/// Hash indexes serve points only; the prefix must leave a bound column.
fn check_range_allowed(index: &Index, range: &IndexRange) -> Result<(), TxError> {
    if index.algorithm == IndexAlgorithm::Hash {
        return Err(TxError::WrongIndexAlgorithm {
            index: index.name.clone(),
        });
    }
    if range.prefix.len() >= index.columns.len() {
        return Err(TxError::Decode {
            what: "range prefix",
            reason: format!(
                "{} prefix values for an index of {} columns",
                range.prefix.len(),
                index.columns.len()
            ),
        });
    }
    Ok(())
}
