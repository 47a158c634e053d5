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
//! Automatic, as the reference decides: new tables, new or dropped indexes,
//! columns added at the end of a table with a default, a change of
//! visibility, enum variants appended to a column's type (the old variants
//! unchanged and the type's fixed layout the same), a sequence added,
//! changed or removed (the storage refuses a new one if a row already holds a
//! value in its range), a unique constraint added or removed (the storage
//! refuses one the rows violate), the primary key changed or removed, and
//! any change of an event table's columns (it holds no rows). Everything
//! else (a removed table, a removed, reordered or otherwise retyped column, a
//! column added without a default, a unique constraint whose columns change
//! under the same name, a changed schedule or event flag) blocks the
//! migration unless the caller clears the data.
//! `init` runs only when the data is cleared (module-abi §8.7).

use std::collections::BTreeSet;
use std::fmt;

use spacetimedb_sats::{AlgebraicType, AlgebraicValue};

use crate::{ModuleDef, ScheduledFunction, TableInfo};

mod publish;
pub use publish::{disconnect_reasons, disconnects_clients, major_version_upgrade};

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
    /// Column types widened in place (enum variants appended); every
    /// existing value stays valid.
    ChangeColumns {
        table: String,
        columns: Vec<String>,
    },
    /// The columns of an event table changed; it holds no rows.
    ReschemaEventTable {
        table: String,
    },
    /// The primary key changed (`None`: removed).
    ChangePrimaryKey {
        table: String,
        column: Option<String>,
    },
    AddConstraint {
        table: String,
        constraint: String,
    },
    RemoveConstraint {
        table: String,
        constraint: String,
    },
    /// A sequence added (or changed, as removed and added); refused when it
    /// is applied if a row already holds a value in its range.
    AddSequence {
        table: String,
        sequence: String,
        column: String,
    },
    RemoveSequence {
        table: String,
        sequence: String,
    },
}

impl MigrationStep {
    /// The table the step changes.
    pub fn table(&self) -> &str {
        match self {
            MigrationStep::AddTable { table }
            | MigrationStep::AddIndex { table, .. }
            | MigrationStep::DropIndex { table, .. }
            | MigrationStep::AddColumns { table, .. }
            | MigrationStep::ChangeAccess { table, .. }
            | MigrationStep::ChangeColumns { table, .. }
            | MigrationStep::ReschemaEventTable { table }
            | MigrationStep::ChangePrimaryKey { table, .. }
            | MigrationStep::AddConstraint { table, .. }
            | MigrationStep::RemoveConstraint { table, .. }
            | MigrationStep::AddSequence { table, .. }
            | MigrationStep::RemoveSequence { table, .. } => table,
        }
    }

    /// True if clients built against the old schema may no longer decode
    /// rows (the reference disconnects all clients for these).
    pub fn breaks_clients(&self) -> bool {
        matches!(
            self,
            MigrationStep::AddColumns { .. } | MigrationStep::ReschemaEventTable { .. }
        )
    }
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
            MigrationStep::ChangeColumns { table, columns } => write!(
                f,
                "table `{table}`: widen the type of {}",
                columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            MigrationStep::ReschemaEventTable { table } => {
                write!(f, "event table `{table}`: change its columns")
            }
            MigrationStep::ChangePrimaryKey { table, column } => match column {
                Some(column) => write!(f, "table `{table}`: make `{column}` the primary key"),
                None => write!(f, "table `{table}`: remove the primary key"),
            },
            MigrationStep::AddConstraint { table, constraint } => {
                write!(f, "table `{table}`: add unique constraint `{constraint}`")
            }
            MigrationStep::RemoveConstraint { table, constraint } => {
                write!(
                    f,
                    "table `{table}`: remove unique constraint `{constraint}`"
                )
            }
            MigrationStep::AddSequence {
                table,
                sequence,
                column,
            } => write!(
                f,
                "table `{table}`: add sequence `{sequence}` on `{column}`"
            ),
            MigrationStep::RemoveSequence { table, sequence } => {
                write!(f, "table `{table}`: remove sequence `{sequence}`")
            }
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

    /// True if a step breaks clients of the old schema
    /// ([`MigrationStep::breaks_clients`]).
    pub fn breaks_clients(&self) -> bool {
        self.steps.iter().any(MigrationStep::breaks_clients)
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
    if !plan.is_automatic() {
        // A blocked plan has nothing to apply.
        plan.steps.clear();
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
    let mut blockers: Vec<String> = Vec::new();
    let mut steps: Vec<MigrationStep> = Vec::new();
    let old_cols = &old.def.columns.elements;
    let new_cols = &new.def.columns.elements;
    let col_name = |cols: &[spacetimedb_sats::ProductTypeElement], i: usize| -> String {
        cols.get(i)
            .and_then(|c| c.name.as_deref())
            .unwrap_or("?")
            .to_owned()
    };
    let is_event = old.def.is_event;
    if old.def.is_event != new.def.is_event {
        blockers.push(if new.def.is_event {
            "became an event table".to_owned()
        } else {
            "is no longer an event table".to_owned()
        });
    }

    // Columns. An event table holds no rows: any change is a reschema.
    let mut event_columns_changed = false;
    let mut widened = Vec::new();
    for (i, old_col) in old_cols.iter().enumerate() {
        let name = col_name(old_cols, i);
        match new_cols
            .iter()
            .position(|c| c.name.as_deref() == Some(name.as_str()))
        {
            None if is_event => event_columns_changed = true,
            None => blockers.push(format!("column `{name}` removed")),
            Some(j) => {
                if j != i {
                    if is_event {
                        event_columns_changed = true;
                    } else {
                        blockers.push(format!(
                            "column `{name}` moved from position {i} to {j} (columns may only be added at the end)"
                        ));
                    }
                }
                let (old_ty, new_ty) = (&old_col.algebraic_type, &new_cols[j].algebraic_type);
                if old_ty != new_ty {
                    match upgradable(old_ty, new_ty) {
                        _ if is_event => event_columns_changed = true,
                        Ok(()) => widened.push(name.clone()),
                        Err(why) => blockers.push(format!(
                            "column `{name}` changed type from {} to {} ({why})",
                            type_name(old_ty),
                            type_name(new_ty)
                        )),
                    }
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
        if is_event {
            event_columns_changed = true;
            continue;
        }
        if j < old_cols.len() {
            blockers.push(format!(
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
            None => blockers.push(format!("column `{name}` added without a default")),
        }
    }

    // The primary key may change or go; its unique constraint comes and goes
    // with the constraints below.
    let old_pk = old.def.primary_key.map(|c| col_name(old_cols, c.idx()));
    let new_pk = new.def.primary_key.map(|c| col_name(new_cols, c.idx()));
    if old_pk != new_pk {
        steps.push(MigrationStep::ChangePrimaryKey {
            table: table.to_owned(),
            column: new_pk,
        });
    }

    // Unique constraints, by name: added or removed is automatic (the rows
    // are checked when it is applied); other columns under the same name
    // are not.
    let names = |cols: &[spacetimedb_sats::ProductTypeElement], ids: &[storage::ColId]| {
        ids.iter()
            .map(|c| col_name(cols, c.idx()))
            .collect::<Vec<_>>()
    };
    for constraint in &new.def.unique_constraints {
        match old
            .def
            .unique_constraints
            .iter()
            .find(|c| c.name == constraint.name)
        {
            None => steps.push(MigrationStep::AddConstraint {
                table: table.to_owned(),
                constraint: constraint.name.clone(),
            }),
            Some(before)
                if names(old_cols, &before.columns) != names(new_cols, &constraint.columns) =>
            {
                blockers.push(format!(
                    "unique constraint `{}` changed its columns",
                    constraint.name
                ))
            }
            Some(_) => {}
        }
    }
    for constraint in &old.def.unique_constraints {
        if !new
            .def
            .unique_constraints
            .iter()
            .any(|c| c.name == constraint.name)
        {
            steps.push(MigrationStep::RemoveConstraint {
                table: table.to_owned(),
                constraint: constraint.name.clone(),
            });
        }
    }

    // Sequences, by name: removed, added, or changed (removed and added).
    let same_sequence = |a: &storage::SequenceDef, b: &storage::SequenceDef| {
        col_name(old_cols, a.column.idx()) == col_name(new_cols, b.column.idx())
            && (a.start, a.min_value, a.max_value, a.increment)
                == (b.start, b.min_value, b.max_value, b.increment)
    };
    for sequence in &old.def.sequences {
        let kept = new.def.sequences.iter().find(|s| s.name == sequence.name);
        if !kept.is_some_and(|s| same_sequence(sequence, s)) {
            steps.push(MigrationStep::RemoveSequence {
                table: table.to_owned(),
                sequence: sequence.name.clone(),
            });
        }
    }
    for sequence in &new.def.sequences {
        let before = old.def.sequences.iter().find(|s| s.name == sequence.name);
        if !before.is_some_and(|s| same_sequence(s, sequence)) {
            steps.push(MigrationStep::AddSequence {
                table: table.to_owned(),
                sequence: sequence.name.clone(),
                column: col_name(new_cols, sequence.column.idx()),
            });
        }
    }

    let old_schedule = old.schedule.map(|s| schedule_text(old_def, s));
    let new_schedule = new.schedule.map(|s| schedule_text(new_def, s));
    if old_schedule != new_schedule {
        blockers.push(format!(
            "schedule changed from {} to {}",
            old_schedule.as_deref().unwrap_or("none"),
            new_schedule.as_deref().unwrap_or("none")
        ));
    }

    plan.blockers.extend(
        blockers
            .into_iter()
            .map(|message| format!("table `{table}`: {message}")),
    );
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
    plan.steps.extend(steps);
    if event_columns_changed {
        plan.steps.push(MigrationStep::ReschemaEventTable {
            table: table.to_owned(),
        });
    } else if !added.is_empty() {
        plan.steps.push(MigrationStep::AddColumns {
            table: table.to_owned(),
            columns: added,
            defaults,
        });
    }
    if !event_columns_changed && !widened.is_empty() {
        plan.steps.push(MigrationStep::ChangeColumns {
            table: table.to_owned(),
            columns: widened,
        });
    }
    if old.def.public != new.def.public {
        plan.steps.push(MigrationStep::ChangeAccess {
            table: table.to_owned(),
            public: new.def.public,
        });
    }
}

/// Whether a column of type `old` may become `new` keeping its rows, by the
/// reference's rule: sums keep their variants (names and upgradable payloads)
/// as a prefix of the new ones and keep the same fixed layout size and
/// alignment; products keep their field count and names with upgradable
/// fields; arrays upgradable elements; anything else unchanged.
fn upgradable(old: &AlgebraicType, new: &AlgebraicType) -> Result<(), String> {
    use spacetimedb_sats::layout::{HasLayout, SumTypeLayout};
    match (old, new) {
        (AlgebraicType::Sum(o), AlgebraicType::Sum(n)) => {
            if n.variants.len() < o.variants.len() {
                return Err("enum variants were removed".into());
            }
            for (i, (ov, nv)) in o.variants.iter().zip(n.variants.iter()).enumerate() {
                if ov.name != nv.name {
                    return Err(format!(
                        "variant {i} renamed from `{}` to `{}` (new variants go at the end)",
                        ov.name.as_deref().unwrap_or("?"),
                        nv.name.as_deref().unwrap_or("?")
                    ));
                }
                upgradable(&ov.algebraic_type, &nv.algebraic_type)?;
            }
            let (ol, nl) = (
                *SumTypeLayout::from(o.clone()).layout(),
                *SumTypeLayout::from(n.clone()).layout(),
            );
            if (ol.size, ol.align) != (nl.size, nl.align) {
                return Err(format!(
                    "the new variants change the enum's layout from {} to {} bytes (alignment {} to {})",
                    ol.size, nl.size, ol.align, nl.align
                ));
            }
            Ok(())
        }
        (AlgebraicType::Product(o), AlgebraicType::Product(n)) => {
            if o.elements.len() != n.elements.len() {
                return Err("a nested struct gained or lost fields".into());
            }
            for (oe, ne) in o.elements.iter().zip(n.elements.iter()) {
                if oe.name != ne.name {
                    return Err(format!(
                        "field `{}` renamed to `{}`",
                        oe.name.as_deref().unwrap_or("?"),
                        ne.name.as_deref().unwrap_or("?")
                    ));
                }
                upgradable(&oe.algebraic_type, &ne.algebraic_type)?;
            }
            Ok(())
        }
        (AlgebraicType::Array(o), AlgebraicType::Array(n)) => upgradable(&o.elem_ty, &n.elem_ty),
        (o, n) if o == n => Ok(()),
        _ => Err("only enum variants may be added".into()),
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
