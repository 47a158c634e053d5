//! One table in memory: a slab of rows, its indexes, set semantics and sequences.
//!
//! Owns: row slots ([`RowId`]), index maintenance, uniqueness checks, the
//! full-row hash used for set semantics when no unique index exists, and the
//! sequence counters of the table's auto-increment columns.
//! Does not own: transactions (undo, deltas, commit are `storage::tx`), or
//! durability. Every method here leaves the table consistent on return.
//!
//! Invariant: every occupied slot is in every index exactly once; a free slot is
//! in none. Slots freed by the running transaction are not reused before it
//! ends, so an undo entry can put a row back into the very slot it left.

pub(crate) mod index;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use smallvec::SmallVec;
use spacetimedb_sats::AlgebraicValue;

use crate::schema::TableSchema;
use crate::value::{project_key, Row};
use index::Index;

/// Position of a row in its table's slab. Internal: never persisted.
pub(crate) type RowId = u32;

type FixedHasher = BuildHasherDefault<DefaultHasher>;

#[derive(Clone)]
struct Slot {
    row: Option<Row>,
    /// The transaction number that put the row here (see `Committed::tx_counter`).
    inserted_by: u64,
}

/// The counter of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SequenceState {
    /// The next value to hand out; `None` once the sequence is exhausted.
    pub(crate) next: Option<i128>,
    /// Values below this are covered by a reservation in the commit log, so a
    /// restart continues from here and never hands out a value twice.
    pub(crate) reserved_upto: i128,
}

#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) schema: Arc<TableSchema>,
    slots: Vec<Slot>,
    free: Vec<RowId>,
    pending_free: Vec<RowId>,
    len: usize,
    pub(crate) indexes: Vec<Index>,
    /// Full-row hash → rows, only for tables without a unique index; with one,
    /// an identical row is found through that index instead.
    row_set: Option<HashMap<u64, SmallVec<[RowId; 1]>, FixedHasher>>,
    pub(crate) sequences: Vec<SequenceState>,
}

impl Table {
    pub(crate) fn new(schema: Arc<TableSchema>) -> Table {
        let indexes = schema
            .indexes
            .iter()
            .map(|index| Index::new(&schema, index))
            .collect::<Vec<_>>();
        let row_set = (!indexes.iter().any(Index::is_unique)).then(HashMap::default);
        let sequences = schema
            .sequences
            .iter()
            .map(|seq| SequenceState {
                next: Some(seq.start),
                reserved_upto: seq.start,
            })
            .collect();
        Table {
            schema,
            slots: Vec::new(),
            free: Vec::new(),
            pending_free: Vec::new(),
            len: 0,
            indexes,
            row_set,
            sequences,
        }
    }

    /// A table holding `rows`, with its indexes built in bulk. Fails, naming
    /// the problem, if two rows are identical or share a unique key.
    pub(crate) fn load(schema: Arc<TableSchema>, rows: Vec<Row>) -> Result<Table, String> {
        let mut table = Table::new(schema);
        let count = RowId::try_from(rows.len()).map_err(|_| "more than 2^32 rows".to_string())?;
        for (position, index) in table.indexes.iter_mut().enumerate() {
            let entries = rows
                .iter()
                .zip(0..count)
                .map(|(row, id)| (project_key(row, &index.columns), id))
                .collect();
            index.build(entries).map_err(|key| {
                let constraint = table.schema.indexes[position]
                    .unique
                    .clone()
                    .unwrap_or_default();
                format!(
                    "two rows share key {} of unique constraint `{constraint}`",
                    crate::value::display_value(&key)
                )
            })?;
        }
        if let Some(set) = &mut table.row_set {
            for (row, id) in rows.iter().zip(0..count) {
                let ids = set.entry(row_hash(row)).or_default();
                if ids.iter().any(|other| rows[*other as usize] == *row) {
                    return Err("two identical rows".into());
                }
                ids.push(id);
            }
        }
        table.len = rows.len();
        table.slots = rows
            .into_iter()
            .map(|row| Slot {
                row: Some(row),
                inserted_by: 0,
            })
            .collect();
        Ok(table)
    }

    /// This table under a new schema (already checked by
    /// [`TableSchema::check_alter`]): every row gains `added_defaults` at the
    /// end and indexes are rebuilt, which fails if rows collide under a new
    /// unique constraint. A sequence kept (same name, column and bounds)
    /// keeps its counter; a new one starts afresh, and is refused if a row
    /// already holds a value in its range (so it can never hand out a value
    /// a row has). An event table must be empty.
    pub(crate) fn altered(
        &self,
        schema: Arc<TableSchema>,
        added_defaults: &[AlgebraicValue],
    ) -> Result<Table, String> {
        if schema.is_event && self.len > 0 {
            return Err(format!(
                "event table holds {} rows; its schema can change only while it is empty",
                self.len
            ));
        }
        for seq in &schema.sequences {
            let kept = self.schema.sequences.iter().any(|old| old == seq);
            if kept {
                continue;
            }
            let col = seq.column.idx();
            let taken = self.rows().find_map(|(_, row)| {
                let value = crate::value::integer_value(row.get(col)?)?;
                (seq.min_value..=seq.max_value)
                    .contains(&value)
                    .then_some(value)
            });
            if let Some(value) = taken {
                return Err(format!(
                    "cannot add sequence `{}`: column `{}` already holds {value}, inside the \
                     sequence's range [{}, {}]",
                    seq.name,
                    schema.column_name(seq.column),
                    seq.min_value,
                    seq.max_value
                ));
            }
        }
        let rows = self
            .rows()
            .map(|(_, row)| -> Row {
                if added_defaults.is_empty() {
                    row.clone()
                } else {
                    row.iter().chain(added_defaults).cloned().collect()
                }
            })
            .collect();
        let mut table = Table::load(schema.clone(), rows)?;
        for (new_pos, seq) in schema.sequences.iter().enumerate() {
            if let Some(old_pos) = self.schema.sequences.iter().position(|old| old == seq) {
                table.sequences[new_pos] = self.sequences[old_pos].clone();
            }
        }
        Ok(table)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, row_id: RowId) -> Option<&Row> {
        self.slots
            .get(row_id as usize)
            .and_then(|slot| slot.row.as_ref())
    }

    pub(crate) fn inserted_by(&self, row_id: RowId) -> u64 {
        self.slots[row_id as usize].inserted_by
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = (RowId, &Row)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.row.as_ref().map(|row| (i as RowId, row)))
    }

    /// The row equal to `row` (all columns), if present.
    pub(crate) fn find_same(&self, row: &[AlgebraicValue]) -> Option<RowId> {
        if let Some(index) = self.indexes.iter().find(|index| index.is_unique()) {
            let key = project_key(row, &index.columns);
            let row_id = index.get_unique(&key)?;
            let existing = self
                .get(row_id)
                .expect("index entries point at occupied slots");
            return (**existing == *row).then_some(row_id);
        }
        let set = self
            .row_set
            .as_ref()
            .expect("tables without a unique index keep a row set");
        set.get(&row_hash(row))?
            .iter()
            .copied()
            .find(|row_id| self.get(*row_id).is_some_and(|existing| **existing == *row))
    }

    /// One probe per unique index before an insert: `Ok(Some(id))` if an
    /// identical row is present (set semantics), `Err((index, key))` if another
    /// row holds one of `row`'s unique keys, `Ok(None)` if `row` may be inserted.
    pub(crate) fn check_insert(
        &self,
        row: &[AlgebraicValue],
    ) -> Result<Option<RowId>, (usize, AlgebraicValue)> {
        let mut uniques = self
            .indexes
            .iter()
            .enumerate()
            .filter(|(_, index)| index.is_unique());
        let Some((first, index)) = uniques.next() else {
            return Ok(self.find_same(row));
        };
        let key = project_key(row, &index.columns);
        if let Some(existing) = index.get_unique(&key) {
            // Identical rows share every key, so the first unique index decides.
            let present = self
                .get(existing)
                .expect("index entries point at occupied slots");
            return if **present == *row {
                Ok(Some(existing))
            } else {
                Err((first, key))
            };
        }
        for (i, index) in uniques {
            let key = project_key(row, &index.columns);
            if index.get_unique(&key).is_some() {
                return Err((i, key));
            }
        }
        Ok(None)
    }

    /// The first unique index that already holds `row`'s key in a row other than
    /// `ignoring`, with that key.
    pub(crate) fn unique_conflict(
        &self,
        row: &[AlgebraicValue],
        ignoring: Option<RowId>,
    ) -> Option<(usize, AlgebraicValue)> {
        self.indexes
            .iter()
            .enumerate()
            .filter(|(_, index)| index.is_unique())
            .find_map(|(i, index)| {
                let key = project_key(row, &index.columns);
                match index.get_unique(&key) {
                    Some(existing) if Some(existing) != ignoring => Some((i, key)),
                    _ => None,
                }
            })
    }

    /// Puts `row` into a free slot and every index. The caller has checked uniqueness.
    pub(crate) fn insert(&mut self, row: Row, tx_no: u64) -> RowId {
        let row_id = match self.free.pop() {
            Some(row_id) => row_id,
            None => {
                let row_id =
                    RowId::try_from(self.slots.len()).expect("a table holds fewer than 2^32 rows");
                self.slots.push(Slot {
                    row: None,
                    inserted_by: 0,
                });
                row_id
            }
        };
        self.place(row_id, row, tx_no);
        row_id
    }

    /// Puts `row` back into the slot it was deleted from (undo of a delete).
    pub(crate) fn restore(&mut self, row_id: RowId, row: Row, inserted_by: u64) {
        assert!(
            self.slots[row_id as usize].row.is_none(),
            "restoring into an occupied slot"
        );
        self.place(row_id, row, inserted_by);
    }

    fn place(&mut self, row_id: RowId, row: Row, inserted_by: u64) {
        for index in &mut self.indexes {
            index.insert(project_key(&row, &index.columns), row_id);
        }
        if let Some(set) = &mut self.row_set {
            set.entry(row_hash(&row)).or_default().push(row_id);
        }
        let slot = &mut self.slots[row_id as usize];
        assert!(slot.row.is_none(), "placing a row into an occupied slot");
        slot.row = Some(row);
        slot.inserted_by = inserted_by;
        self.len += 1;
    }

    /// Removes the row in `row_id` from the slab and every index. The slot is
    /// reusable only after [`Table::end_tx`].
    pub(crate) fn remove(&mut self, row_id: RowId) -> Row {
        let row = self.slots[row_id as usize]
            .row
            .take()
            .expect("removing an occupied slot");
        for index in &mut self.indexes {
            let removed = index.remove(&project_key(&row, &index.columns), row_id);
            assert!(
                removed,
                "index `{}` lacked an entry for a present row",
                index.name
            );
        }
        if let Some(set) = &mut self.row_set {
            let hash = row_hash(&row);
            let ids = set.get_mut(&hash).expect("row set holds every present row");
            let at = ids
                .iter()
                .position(|id| *id == row_id)
                .expect("row set holds every present row");
            ids.swap_remove(at);
            if ids.is_empty() {
                set.remove(&hash);
            }
        }
        self.len -= 1;
        self.pending_free.push(row_id);
        row
    }

    /// Makes slots freed by the finished transaction reusable. A rollback may
    /// have put rows back into some of them; those stay taken.
    pub(crate) fn end_tx(&mut self) {
        let slots = &self.slots;
        self.pending_free
            .retain(|row_id| slots[*row_id as usize].row.is_none());
        // A slot emptied, refilled by a rollback and emptied again is listed twice.
        self.pending_free.sort_unstable();
        self.pending_free.dedup();
        self.free.append(&mut self.pending_free);
    }
}

fn row_hash(row: &[AlgebraicValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    row.hash(&mut hasher);
    hasher.finish()
}
