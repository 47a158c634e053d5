//! Applying a module update to a database: moving an existing database from
//! one module version to the next in one transaction.
//!
//! Owns: [`update_database`] (apply the automatic plan of
//! `orrery_moduledef::migrate::plan`, or clear the database and create it
//! anew with the new module's `init`), [`UpdateMode`], [`UpdateReport`] and
//! [`UpdateError`].
//! Does not own: deciding what may change (`orrery_moduledef::migrate`), how
//! a schema changes in place (`storage::MutTx::alter_table`), which tables
//! belong to the host (the caller's [`crate::HostTables`]), or who may publish.

use std::fmt;

use orrery_moduledef::migrate::{plan, MigrationPlan, MigrationStep};
use orrery_moduledef::ModuleDef;
use spacetimedb_lib::Identity;
use storage::{Database, TxDelta};

use crate::{CallResult, HostedModule, LogRecord, ReducerOutcome};

/// How to republish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Migrate the data if the plan is automatic; refuse otherwise.
    Migrate,
    /// Drop every table, create the new version's tables and run its `init`
    /// with `owner` as sender, all in one transaction.
    ClearData {
        owner: Identity,
        timestamp_micros: i64,
    },
}

/// What a successful republish did.
#[derive(Debug)]
pub struct UpdateReport {
    /// The plan from the old to the new definition (applied in `Migrate` mode,
    /// for information in `ClearData` mode).
    pub plan: MigrationPlan,
    /// The committed transaction.
    pub delta: TxDelta,
    /// What `init` logged (`ClearData` only).
    pub logs: Vec<LogRecord>,
}

/// Why a republish changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    Refused(MigrationPlan),
    #[error("migrating the database failed: {0}")]
    Storage(String),
    /// `ClearData`: creating the tables or `init` did not commit.
    #[error("creating the new database failed: {outcome:?}")]
    Create {
        outcome: Box<ReducerOutcome>,
        logs: Vec<LogRecord>,
    },
}

/// Moves `db`, created by a module with definition `old_def`, to the module
/// `new`, in one transaction: all of it commits or none of it does.
///
/// `Migrate` applies [`plan`] (`init` does not run) and fails with
/// [`UpdateError::Refused`] carrying the plan if it is not automatic.
/// `ClearData` drops every table of the module (the host's `st_*` tables
/// stay), then creates the new tables
/// and runs the new `init`, as a first publish would.
///
/// Either way the host's record of which module the schema belongs to
/// ([`crate::HostTables::record_module`] of `new`'s host tables) is written
/// in the same transaction.
///
/// After success only `new` may run reducers on `db`: instances of the old
/// module hold table and index ids that may no longer exist.
pub fn update_database(
    new: &HostedModule,
    old_def: &ModuleDef,
    db: &Database,
    mode: UpdateMode,
) -> Result<UpdateReport, UpdateError> {
    let plan = plan(old_def, new.def());
    match mode {
        UpdateMode::Migrate => {
            if !plan.is_automatic() {
                return Err(UpdateError::Refused(plan));
            }
            let delta = migrate(new.def(), &*new.options().host_tables, &plan, db)?;
            Ok(UpdateReport {
                plan,
                delta,
                logs: Vec::new(),
            })
        }
        UpdateMode::ClearData {
            owner,
            timestamp_micros,
        } => {
            let result = clear_and_create(new, db, owner, timestamp_micros);
            match result.outcome {
                ReducerOutcome::Committed { delta } => Ok(UpdateReport {
                    plan,
                    delta,
                    logs: result.logs,
                }),
                outcome => Err(UpdateError::Create {
                    outcome: Box::new(outcome),
                    logs: result.logs,
                }),
            }
        }
    }
}

/// Applies an automatic plan: alterations of existing tables first (so a new
/// table may reuse the name of a dropped index), then new tables.
fn migrate(
    new: &ModuleDef,
    host_tables: &dyn crate::HostTables,
    plan: &MigrationPlan,
    db: &Database,
) -> Result<TxDelta, UpdateError> {
    let storage_err = |e: &dyn fmt::Display| UpdateError::Storage(e.to_string());
    let mut tx = db.begin().map_err(|e| storage_err(&e))?;
    let mut altered: Vec<&str> = Vec::new();
    for step in &plan.steps {
        let table = match step {
            MigrationStep::AddTable { .. } => continue,
            // Every other step alters an existing table, all of its changes
            // at once (`MutTx::alter_table` checks what the rows allow).
            step => step.table(),
        };
        if altered.contains(&table) {
            continue;
        }
        altered.push(table);
        let info = new
            .tables
            .iter()
            .find(|t| t.def.name == table)
            .expect("plans name tables of the new definition");
        let defaults = plan
            .steps
            .iter()
            .find_map(|step| match step {
                MigrationStep::AddColumns {
                    table: t, defaults, ..
                } if t == table => Some(defaults.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let table_id = tx
            .table_id_from_name(table)
            .ok_or_else(|| UpdateError::Storage(format!("the database has no table `{table}`")))?;
        tx.alter_table(table_id, info.def.clone(), defaults)
            .map_err(|e| UpdateError::Storage(format!("altering table `{table}`: {e}")))?;
    }
    for step in &plan.steps {
        if let MigrationStep::AddTable { table } = step {
            let info = new
                .tables
                .iter()
                .find(|t| t.def.name == *table)
                .expect("plans name tables of the new definition");
            tx.create_table(info.def.clone())
                .map_err(|e| UpdateError::Storage(format!("creating table `{table}`: {e}")))?;
        }
    }
    host_tables
        .record_module(&mut tx)
        .map_err(|e| UpdateError::Storage(format!("recording the module: {e}")))?;
    tx.commit().map_err(|e| storage_err(&e))
}

/// Drops every table and creates the module's database in the same transaction.
fn clear_and_create(
    new: &HostedModule,
    db: &Database,
    owner: Identity,
    timestamp_micros: i64,
) -> CallResult {
    let instance = match new.take_instance() {
        Ok(instance) => instance,
        Err(e) => return CallResult::bare(crate::instance_error(e)),
    };
    let mut tx = match db.begin() {
        Ok(tx) => tx,
        Err(e) => {
            new.put_back(instance);
            return CallResult::bare(ReducerOutcome::Internal {
                message: format!("cannot open a transaction: {e}"),
            });
        }
    };
    // The host's own tables (`st_*`, e.g. connected clients) are not the
    // module's data and survive.
    let tables: Vec<_> = tx
        .table_ids()
        .filter(|&id| {
            tx.schema(id)
                .is_ok_and(|schema| !new.options().host_tables.is_host_table(&schema.name))
        })
        .collect();
    for table_id in tables {
        if let Err(e) = tx.drop_table(table_id) {
            tx.rollback();
            new.put_back(instance);
            return CallResult::bare(ReducerOutcome::Internal {
                message: format!("dropping table {table_id}: {e}"),
            });
        }
    }
    if let Err(e) = new.options().host_tables.record_module(&mut tx) {
        tx.rollback();
        new.put_back(instance);
        return CallResult::bare(ReducerOutcome::Internal {
            message: format!("recording the module: {e}"),
        });
    }
    new.create_in(instance, tx, owner, timestamp_micros)
}
