//! Migration planning: what republishing a new module version over an
//! existing database would change.
//!
//! Owns: [`plan`] (compare two [`ModuleDef`]s table by table and list the
//! steps of an automatic migration and, with a precise message each, every
//! change that blocks one), [`MigrationPlan`] and [`MigrationStep`].
//! Does not own: applying a plan (`orrery_module::update`), how a schema
//! changes in place (`storage::MutTx::alter_table` decides what it accepts
//! and rebuilds the rows), or who may publish.
//!
//! Automatic: new tables, new or dropped indexes, columns added at the end of
//! a table with a default, a change of visibility. Everything else (a removed
//! table, a removed, reordered or retyped column, a column added without a
//! default, a changed primary key, unique constraint, sequence, schedule or
//! event flag) blocks the migration unless the caller clears the data.
//! `init` runs only when the data is cleared (module-abi §8.7).

use std::collections::BTreeSet;
use std::fmt;

use spacetimedb_sats::{AlgebraicType, AlgebraicValue};

use crate::{ModuleDef, ScheduledFunction, TableInfo};

mod publish;
pub use publish::{disconnects_clients, major_version_upgrade};

/// One step of an automatic migration. Tables are named by their canonical
/// (storage) name.
#[derive(Clone, Debug, PartialEq)]
pub enum MigrationStep {
    AddTable {
        table: String,
    },
    AddIndex {
        table: String,
        index: String,
    },
    DropIndex {
        table: String,
        index: String,
    },
    /// Columns appended to an existing table; every existing row gets the
    /// matching value of `defaults`.
    AddColumns {
        table: String,
        columns: Vec<String>,
        defaults: Vec<AlgebraicValue>,
    },
    /// Only the visibility of the table changes.
    ChangeAccess {
        table: String,
        public: bool,
    },
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationStep::AddTable { table } => write!(f, "add table `{table}`"),
            MigrationStep::AddIndex { table, index } => {
                write!(f, "table `{table}`: add index `{index}`")
            }
            MigrationStep::DropIndex { table, index } => {
                write!(f, "table `{table}`: drop index `{index}`")
            }
            MigrationStep::AddColumns { table, columns, .. } => write!(
                f,
                "table `{table}`: add column{} {} with defaults",
                if columns.len() == 1 { "" } else { "s" },
                columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            MigrationStep::ChangeAccess { table, public } => write!(
                f,
                "table `{table}`: make {}",
                if *public { "public" } else { "private" }
            ),
        }
    }
}

/// What republishing would do: the steps, and what blocks doing them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MigrationPlan {
    pub steps: Vec<MigrationStep>,
    /// Human-readable, one per blocking change, e.g.
    /// "table `user`: column `age` changed type from u32 to u64".
    pub blockers: Vec<String>,
}

impl MigrationPlan {
    /// True if the migration can run without clearing the data.
    pub fn is_automatic(&self) -> bool {
        self.blockers.is_empty()
    }
}

impl fmt::Display for MigrationPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_automatic() {
            if self.steps.is_empty() {
                return write!(f, "no schema changes");
            }
            write!(f, "automatic migration:")?;
            for step in &self.steps {
                write!(f, "\n  - {step}")?;
            }
            return Ok(());
        }
        write!(
            f,
            "the new version cannot be migrated automatically ({} blocking change{}; \
             publish with the data cleared instead):",
            self.blockers.len(),
            if self.blockers.len() == 1 { "" } else { "s" }
        )?;
        for blocker in &self.blockers {
            write!(f, "\n  - {blocker}")?;
        }
        Ok(())
    }
}

/// Compares `old` with `new` table by table (by canonical name).
pub fn plan(old: &ModuleDef, new: &ModuleDef) -> MigrationPlan {
    let mut plan = MigrationPlan::default();
    for old_table in &old.tables {
        let name = &old_table.def.name;
        match new.tables.iter().find(|t| t.def.name == *name) {
            Some(new_table) => plan_table(old, old_table, new, new_table, &mut plan),
            None => plan.blockers.push(format!("table `{name}` removed")),
        }
    }
    for new_table in &new.tables {
        if !old.tables.iter().any(|t| t.def.name == new_table.def.name) {
            plan.steps.push(MigrationStep::AddTable {
                table: new_table.def.name.clone(),
            });
        }
    }
    plan
}

fn plan_table(
    old_def: &ModuleDef,
    old: &TableInfo,
    new_def: &ModuleDef,
    new: &TableInfo,
    plan: &mut MigrationPlan,
) {
    let table = old.def.name.as_str();
    let blockers_before = plan.blockers.len();
    let mut block = |message: String| plan.blockers.push(format!("table `{table}`: {message}"));
    let old_cols = &old.def.columns.elements;
    let new_cols = &new.def.columns.elements;
    let col_name = |cols: &[spacetimedb_sats::ProductTypeElement], i: usize| -> String {
        cols.get(i)
            .and_then(|c| c.name.as_deref())
            .unwrap_or("?")
            .to_owned()
    };

    // Columns: the old ones unchanged and in place, new ones at the end with a default.
    for (i, old_col) in old_cols.iter().enumerate() {
        let name = col_name(old_cols, i);
        match new_cols
            .iter()
            .position(|c| c.name.as_deref() == Some(name.as_str()))
        {
            None => block(format!("column `{name}` removed")),
            Some(j) => {
                if j != i {
                    block(format!(
                        "column `{name}` moved from position {i} to {j} (columns may only be added at the end)"
                    ));
                }
                if new_cols[j].algebraic_type != old_col.algebraic_type {
                    block(format!(
                        "column `{name}` changed type from {} to {}",
                        type_name(&old_col.algebraic_type),
                        type_name(&new_cols[j].algebraic_type)
                    ));
                }
            }
        }
    }
    let mut added = Vec::new();
    let mut defaults = Vec::new();
    for (j, new_col) in new_cols.iter().enumerate() {
        let name = col_name(new_cols, j);
        if old_cols
            .iter()
            .any(|c| c.name.as_deref() == Some(name.as_str()))
        {
            continue;
        }
        if j < old_cols.len() {
            block(format!(
                "column `{name}` added at position {j}, before existing columns (new columns go at the end)"
            ));
            continue;
        }
        let default = new
            .default_values
            .iter()
            .find(|(col, _)| col.idx() == j)
            .and_then(|(_, bytes)| {
                AlgebraicValue::decode(&new_col.algebraic_type, &mut bytes.as_slice()).ok()
            });
        match default {
            Some(value) => {
                added.push(name);
                defaults.push(value);
            }
            None => block(format!("column `{name}` added without a default")),
        }
    }

    // Keys, constraints and sequences, compared by column names.
    let names = |cols: &[spacetimedb_sats::ProductTypeElement], ids: &[storage::ColId]| {
        ids.iter()
            .map(|c| col_name(cols, c.idx()))
            .collect::<Vec<_>>()
    };
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let old_pk = old.def.primary_key.map(|c| col_name(old_cols, c.idx()));
    let new_pk = new.def.primary_key.map(|c| col_name(new_cols, c.idx()));
    match (&old_pk, &new_pk) {
        (Some(a), Some(b)) if a != b => block(format!("primary key changed from `{a}` to `{b}`")),
        (Some(a), None) => block(format!("primary key `{a}` removed")),
        (None, Some(b)) => block(format!("primary key `{b}` added")),
        _ => {}
    }
    let old_unique: Vec<(String, Vec<String>)> = old
        .def
        .unique_constraints
        .iter()
        .map(|c| (c.name.clone(), names(old_cols, &c.columns)))
        .collect();
    let new_unique: Vec<(String, Vec<String>)> = new
        .def
        .unique_constraints
        .iter()
        .map(|c| (c.name.clone(), names(new_cols, &c.columns)))
        .collect();
    for (name, cols) in &new_unique {
        match old_unique.iter().find(|(_, c)| c == cols) {
            None => block(format!("unique constraint on ({}) added", list(cols))),
            Some((old_name, _)) if old_name != name => block(format!(
                "unique constraint on ({}) renamed from `{old_name}` to `{name}`",
                list(cols)
            )),
            Some(_) => {}
        }
    }
    for (_, cols) in &old_unique {
        if !new_unique.iter().any(|(_, c)| c == cols) {
            block(format!("unique constraint on ({}) removed", list(cols)));
        }
    }
    if old.def.sequences.len() != new.def.sequences.len()
        || old
            .def
            .sequences
            .iter()
            .zip(&new.def.sequences)
            .any(|(a, b)| {
                col_name(old_cols, a.column.idx()) != col_name(new_cols, b.column.idx())
                    || (
                        a.name.as_str(),
                        a.start,
                        a.min_value,
                        a.max_value,
                        a.increment,
                    ) != (
                        b.name.as_str(),
                        b.start,
                        b.min_value,
                        b.max_value,
                        b.increment,
                    )
            })
    {
        let describe = |cols: &[spacetimedb_sats::ProductTypeElement],
                        seqs: &[storage::SequenceDef]| {
            if seqs.is_empty() {
                return "none".to_owned();
            }
            seqs.iter()
                .map(|s| format!("`{}` on `{}`", s.name, col_name(cols, s.column.idx())))
                .collect::<Vec<_>>()
                .join(", ")
        };
        block(format!(
            "sequences changed from {} to {}",
            describe(old_cols, &old.def.sequences),
            describe(new_cols, &new.def.sequences)
        ));
    }
    if old.def.is_event != new.def.is_event {
        block(if new.def.is_event {
            "became an event table".to_owned()
        } else {
            "is no longer an event table".to_owned()
        });
    }
    let old_schedule = old.schedule.map(|s| schedule_text(old_def, s));
    let new_schedule = new.schedule.map(|s| schedule_text(new_def, s));
    if old_schedule != new_schedule {
        block(format!(
            "schedule changed from {} to {}",
            old_schedule.as_deref().unwrap_or("none"),
            new_schedule.as_deref().unwrap_or("none")
        ));
    }

    if plan.blockers.len() > blockers_before {
        return;
    }
    // Indexes, by name and shape.
    let shape = |info: &TableInfo, i: usize| {
        let index = &info.def.indexes[i];
        (
            index.name.clone(),
            format!("{:?}", index.algorithm),
            names(&info.def.columns.elements, &index.columns),
        )
    };
    let old_indexes: BTreeSet<_> = (0..old.def.indexes.len()).map(|i| shape(old, i)).collect();
    let new_indexes: BTreeSet<_> = (0..new.def.indexes.len()).map(|i| shape(new, i)).collect();
    for (index, ..) in old_indexes.difference(&new_indexes) {
        plan.steps.push(MigrationStep::DropIndex {
            table: table.to_owned(),
            index: index.clone(),
        });
    }
    for (index, ..) in new_indexes.difference(&old_indexes) {
        plan.steps.push(MigrationStep::AddIndex {
            table: table.to_owned(),
            index: index.clone(),
        });
    }
    if !added.is_empty() {
        plan.steps.push(MigrationStep::AddColumns {
            table: table.to_owned(),
            columns: added,
            defaults,
        });
    }
    if old.def.public != new.def.public {
        plan.steps.push(MigrationStep::ChangeAccess {
            table: table.to_owned(),
            public: new.def.public,
        });
    }
}

fn schedule_text(def: &ModuleDef, schedule: usize) -> String {
    let Some(info) = def.schedules.get(schedule) else {
        return "an unknown schedule".to_owned();
    };
    let function = match info.function {
        ScheduledFunction::Reducer(id) => def
            .reducers
            .get(id)
            .map(|r| format!("reducer `{}`", r.source_name)),
        ScheduledFunction::Procedure(id) => def
            .procedures
            .get(id)
            .map(|p| format!("procedure `{}`", p.source_name)),
    };
    let table = &def.tables[info.table].def;
    let col = |c: storage::ColId| {
        table.columns.elements[c.idx()]
            .name
            .clone()
            .unwrap_or_default()
    };
    format!(
        "{} (id `{}`, at `{}`)",
        function.unwrap_or_else(|| "an unknown function".to_owned()),
        col(info.id_col),
        col(info.schedule_at_col)
    )
}

/// A short name of a column type for messages: `u32`, `string`,
/// `Option<u64>`, `Vec<string>`, `Identity`, `{ a: u8, b: bool }`
/// ([`crate::type_text`]; columns have no refs left).
pub fn type_name(ty: &AlgebraicType) -> String {
    crate::type_text(ty, &|r| format!("ref {}", r.0))
}

#[cfg(test)]
mod tests;
