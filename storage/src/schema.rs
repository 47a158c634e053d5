//! Table schemas: columns typed by sats `ProductType`, the primary key, unique
//! constraints, indexes and sequences, and their validation.
//!
//! Owns: [`TableDef`] (what a caller asks for) and its validation into a
//! [`TableSchema`] (what the engine keeps, with index ids assigned).
//! Does not own: turning a module definition into a `TableDef` (the runtime
//! resolves type refs and names before it calls us), or storage of rows.
//!
//! Also owns the rules of an in-place schema change ([`TableSchema::check_alter`]):
//! what a migration may change without looking at the rows.
//!
//! Invariant: every column type in a [`TableSchema`] is fully resolved (no
//! `Ref`), every unique constraint is served by exactly one index with the same
//! columns, and every sequence sits on an integer column.

use spacetimedb_primitives::{ColId, IndexId, TableId};
use spacetimedb_sats::{AlgebraicType, ProductType};

use crate::error::SchemaError;

/// How an index is organised. Every kind serves point lookups; only `BTree`
/// and `Direct` serve range scans (as the module ABI requires).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexAlgorithm {
    BTree,
    Hash,
    Direct,
}

/// A table as a caller describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub name: String,
    /// Columns in order; every element must be named and fully resolved.
    pub columns: ProductType,
    pub primary_key: Option<ColId>,
    pub indexes: Vec<IndexDef>,
    pub unique_constraints: Vec<UniqueConstraintDef>,
    pub sequences: Vec<SequenceDef>,
    pub public: bool,
    pub is_event: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    pub name: String,
    pub algorithm: IndexAlgorithm,
    pub columns: Vec<ColId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UniqueConstraintDef {
    pub name: String,
    pub columns: Vec<ColId>,
}

/// An auto-increment sequence on one integer column. Values are handed out
/// only when an inserted row carries zero in that column.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceDef {
    pub name: String,
    pub column: ColId,
    pub start: Option<i128>,
    pub min_value: Option<i128>,
    pub max_value: Option<i128>,
    pub increment: i128,
}

/// A validated table schema, as stored in the commit log and snapshots.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub table_id: TableId,
    pub name: String,
    pub columns: ProductType,
    pub primary_key: Option<ColId>,
    pub indexes: Vec<IndexSchema>,
    pub unique_constraints: Vec<UniqueConstraintDef>,
    pub sequences: Vec<SequenceSchema>,
    pub public: bool,
    pub is_event: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexSchema {
    pub index_id: IndexId,
    pub name: String,
    pub algorithm: IndexAlgorithm,
    pub columns: Vec<ColId>,
    /// Name of the unique constraint this index enforces, if any.
    pub unique: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SequenceSchema {
    pub name: String,
    pub column: ColId,
    pub start: i128,
    pub min_value: i128,
    pub max_value: i128,
    pub increment: i128,
}

impl TableSchema {
    /// The type of column `col`.
    pub fn column_type(&self, col: ColId) -> &AlgebraicType {
        &self.columns.elements[col.idx()].algebraic_type
    }

    /// Column name, for error messages and clients.
    pub fn column_name(&self, col: ColId) -> &str {
        self.columns.elements[col.idx()]
            .name
            .as_deref()
            .unwrap_or("?")
    }

    pub fn index(&self, index_id: IndexId) -> Option<(usize, &IndexSchema)> {
        self.indexes
            .iter()
            .enumerate()
            .find(|(_, index)| index.index_id == index_id)
    }
}

impl TableSchema {
    /// Checks that `new` may replace `self` in place, without looking at the
    /// rows: same table id, name and event flag; for a table that keeps rows,
    /// the old columns as a prefix of the new ones, each with its name and a
    /// type that accepts every value of the old one ([`type_widens`]: enum
    /// variants appended), and one default per added column (of its type).
    /// An event table holds no rows, so its columns may change freely.
    /// Indexes, the primary key, unique constraints and sequences may change;
    /// what depends on the rows (uniqueness, a new sequence's range) is
    /// checked when the rows are carried over (`Table::altered`).
    pub fn check_alter(
        &self,
        new: &TableSchema,
        added_defaults: &[spacetimedb_sats::AlgebraicValue],
    ) -> Result<(), SchemaError> {
        let err = |reason: String| SchemaError::Invalid {
            table: self.name.clone(),
            reason,
        };
        if new.table_id != self.table_id || new.name != self.name {
            return Err(err(format!(
                "cannot become table `{}` ({})",
                new.name, new.table_id
            )));
        }
        if new.is_event != self.is_event {
            return Err(err("the event flag changed".into()));
        }
        if self.is_event {
            if !added_defaults.is_empty() {
                return Err(err(
                    "an event table holds no rows, so added columns need no defaults".into(),
                ));
            }
            return Ok(());
        }
        let old_cols = &self.columns.elements;
        let new_cols = &new.columns.elements;
        if new_cols.len() < old_cols.len() {
            return Err(err(format!(
                "{} columns cannot become {}",
                old_cols.len(),
                new_cols.len()
            )));
        }
        for (i, (old, new)) in old_cols.iter().zip(new_cols.iter()).enumerate() {
            if old.name != new.name || !type_widens(&old.algebraic_type, &new.algebraic_type) {
                return Err(err(format!(
                    "column {i} (`{}`) changed name or type",
                    old.name.as_deref().unwrap_or("?")
                )));
            }
        }
        let added = &new_cols[old_cols.len()..];
        if added.len() != added_defaults.len() {
            return Err(err(format!(
                "{} columns added with {} default values",
                added.len(),
                added_defaults.len()
            )));
        }
        for (column, default) in added.iter().zip(added_defaults) {
            if !crate::value::value_has_type(default, &column.algebraic_type) {
                return Err(err(format!(
                    "the default of added column `{}` is not a {:?}",
                    column.name.as_deref().unwrap_or("?"),
                    column.algebraic_type
                )));
            }
        }
        Ok(())
    }
}

/// True if every value of type `old` is also a value of type `new`: the same
/// type, or sums whose variants are those of `old` (same names, each payload
/// widening) followed by new ones, products with the same fields (names and
/// widening types) and arrays of widening elements.
pub fn type_widens(old: &AlgebraicType, new: &AlgebraicType) -> bool {
    match (old, new) {
        (AlgebraicType::Sum(old), AlgebraicType::Sum(new)) => {
            old.variants.len() <= new.variants.len()
                && old.variants.iter().zip(new.variants.iter()).all(|(o, n)| {
                    o.name == n.name && type_widens(&o.algebraic_type, &n.algebraic_type)
                })
        }
        (AlgebraicType::Product(old), AlgebraicType::Product(new)) => {
            old.elements.len() == new.elements.len()
                && old.elements.iter().zip(new.elements.iter()).all(|(o, n)| {
                    o.name == n.name && type_widens(&o.algebraic_type, &n.algebraic_type)
                })
        }
        (AlgebraicType::Array(old), AlgebraicType::Array(new)) => {
            type_widens(&old.elem_ty, &new.elem_ty)
        }
        (old, new) => old == new,
    }
}

impl TableDef {
    /// Validates the definition and assigns index ids starting at `first_index_id`.
    /// A unique constraint without an index of the same columns gets a B-tree
    /// index named after the constraint, so every constraint is enforced by one index.
    pub fn validate(
        self,
        table_id: TableId,
        first_index_id: IndexId,
    ) -> Result<TableSchema, SchemaError> {
        let table = self.name.clone();
        let err = |reason: String| SchemaError::Invalid {
            table: table.clone(),
            reason,
        };
        if self.name.is_empty() {
            return Err(err("table name is empty".into()));
        }
        let column_count = self.columns.elements.len();
        if column_count > u16::MAX as usize {
            return Err(err(format!(
                "{column_count} columns; at most {} allowed",
                u16::MAX
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, element) in self.columns.elements.iter().enumerate() {
            let Some(name) = element.name.as_deref() else {
                return Err(err(format!("column {i} has no name")));
            };
            if !seen.insert(name) {
                return Err(err(format!("column name `{name}` appears twice")));
            }
            if let Some(path) = unresolved_ref(&element.algebraic_type) {
                return Err(err(format!(
                    "column `{name}` has an unresolved type reference {path}"
                )));
            }
        }
        let check_cols = |what: &str, cols: &[ColId]| -> Result<(), SchemaError> {
            if cols.is_empty() {
                return Err(err(format!("{what} has no columns")));
            }
            let mut seen = std::collections::BTreeSet::new();
            for col in cols {
                if col.idx() >= column_count {
                    return Err(err(format!(
                        "{what} names column {} but the table has {column_count}",
                        col.0
                    )));
                }
                if !seen.insert(*col) {
                    return Err(err(format!("{what} names column {} twice", col.0)));
                }
            }
            Ok(())
        };

        let mut names = std::collections::BTreeSet::new();
        let mut indexes = Vec::with_capacity(self.indexes.len());
        for (i, def) in self.indexes.into_iter().enumerate() {
            check_cols(&format!("index `{}`", def.name), &def.columns)?;
            if def.name.is_empty() || !names.insert(def.name.clone()) {
                return Err(err(format!(
                    "index name `{}` is empty or not unique",
                    def.name
                )));
            }
            if def.algorithm == IndexAlgorithm::Direct {
                if def.columns.len() != 1 {
                    return Err(err(format!(
                        "direct index `{}` must have exactly one column",
                        def.name
                    )));
                }
                if !is_unsigned_integer(&self.columns.elements[def.columns[0].idx()].algebraic_type)
                {
                    return Err(err(format!(
                        "direct index `{}` needs an unsigned integer column",
                        def.name
                    )));
                }
            }
            let index_id = IndexId(first_index_id.0 + i as u32);
            indexes.push(IndexSchema {
                index_id,
                name: def.name,
                algorithm: def.algorithm,
                columns: def.columns,
                unique: None,
            });
        }

        let mut constraint_names = std::collections::BTreeSet::new();
        for constraint in &self.unique_constraints {
            check_cols(
                &format!("unique constraint `{}`", constraint.name),
                &constraint.columns,
            )?;
            if constraint.name.is_empty() || !constraint_names.insert(constraint.name.clone()) {
                return Err(err(format!(
                    "constraint name `{}` is empty or not unique",
                    constraint.name
                )));
            }
            let served = indexes
                .iter_mut()
                .find(|index| index.columns == constraint.columns && index.unique.is_none());
            match served {
                Some(index) => index.unique = Some(constraint.name.clone()),
                None => {
                    let name = format!("{}_unique_idx", constraint.name);
                    if !names.insert(name.clone()) {
                        return Err(err(format!("index name `{name}` for constraint clashes")));
                    }
                    let index_id = IndexId(first_index_id.0 + indexes.len() as u32);
                    indexes.push(IndexSchema {
                        index_id,
                        name,
                        algorithm: IndexAlgorithm::BTree,
                        columns: constraint.columns.clone(),
                        unique: Some(constraint.name.clone()),
                    });
                }
            }
        }
        if indexes.len() > orrery_api::limits::INDEXES_PER_TABLE_MAX as usize {
            return Err(err(format!(
                "{} indexes; at most {}",
                indexes.len(),
                orrery_api::limits::INDEXES_PER_TABLE_MAX
            )));
        }
        if let Some(pk) = self.primary_key {
            check_cols("primary key", &[pk])?;
            if !self.unique_constraints.iter().any(|c| c.columns == [pk]) {
                return Err(err(format!(
                    "primary key column {} has no unique constraint",
                    pk.0
                )));
            }
        }

        let mut sequences = Vec::with_capacity(self.sequences.len());
        let mut sequence_cols = std::collections::BTreeSet::new();
        for def in self.sequences {
            check_cols(&format!("sequence `{}`", def.name), &[def.column])?;
            if !sequence_cols.insert(def.column) {
                return Err(err(format!("column {} has two sequences", def.column.0)));
            }
            let ty = &self.columns.elements[def.column.idx()].algebraic_type;
            let Some((type_min, type_max)) = integer_range(ty) else {
                return Err(err(format!(
                    "sequence `{}` is on a non-integer column",
                    def.name
                )));
            };
            if def.increment <= 0 {
                return Err(err(format!(
                    "sequence `{}`: increment {} is not supported (must be positive)",
                    def.name, def.increment
                )));
            }
            let min_value = def.min_value.unwrap_or(1).max(type_min);
            let max_value = def.max_value.unwrap_or(i128::MAX).min(type_max);
            let start = def.start.unwrap_or(min_value);
            if min_value > max_value || start < min_value || start > max_value {
                return Err(err(format!(
                    "sequence `{}`: start {start} outside [{min_value}, {max_value}]",
                    def.name
                )));
            }
            // Zero means "generate", so a sequence must never hand out zero.
            if min_value <= 0 && max_value >= 0 {
                return Err(err(format!(
                    "sequence `{}`: its range [{min_value}, {max_value}] contains 0",
                    def.name
                )));
            }
            sequences.push(SequenceSchema {
                name: def.name,
                column: def.column,
                start,
                min_value,
                max_value,
                increment: def.increment,
            });
        }

        Ok(TableSchema {
            table_id,
            name: self.name,
            columns: self.columns,
            primary_key: self.primary_key,
            indexes,
            unique_constraints: self.unique_constraints,
            sequences,
            public: self.public,
            is_event: self.is_event,
        })
    }
}

/// The inclusive value range of an integer type, clamped to `i128`.
pub(crate) fn integer_range(ty: &AlgebraicType) -> Option<(i128, i128)> {
    Some(match ty {
        AlgebraicType::I8 => (i8::MIN as i128, i8::MAX as i128),
        AlgebraicType::U8 => (0, u8::MAX as i128),
        AlgebraicType::I16 => (i16::MIN as i128, i16::MAX as i128),
        AlgebraicType::U16 => (0, u16::MAX as i128),
        AlgebraicType::I32 => (i32::MIN as i128, i32::MAX as i128),
        AlgebraicType::U32 => (0, u32::MAX as i128),
        AlgebraicType::I64 => (i64::MIN as i128, i64::MAX as i128),
        AlgebraicType::U64 => (0, u64::MAX as i128),
        AlgebraicType::I128 | AlgebraicType::I256 => (i128::MIN, i128::MAX),
        AlgebraicType::U128 | AlgebraicType::U256 => (0, i128::MAX),
        _ => return None,
    })
}

fn is_unsigned_integer(ty: &AlgebraicType) -> bool {
    matches!(
        ty,
        AlgebraicType::U8
            | AlgebraicType::U16
            | AlgebraicType::U32
            | AlgebraicType::U64
            | AlgebraicType::U128
            | AlgebraicType::U256
    )
}

/// Finds a `Ref` anywhere inside `ty`; returns a short description of where.
fn unresolved_ref(ty: &AlgebraicType) -> Option<String> {
    match ty {
        AlgebraicType::Ref(r) => Some(format!("Ref({})", r.0)),
        AlgebraicType::Sum(sum) => sum
            .variants
            .iter()
            .find_map(|v| unresolved_ref(&v.algebraic_type)),
        AlgebraicType::Product(product) => product
            .elements
            .iter()
            .find_map(|e| unresolved_ref(&e.algebraic_type)),
        AlgebraicType::Array(array) => unresolved_ref(&array.elem_ty),
        _ => None,
    }
}
