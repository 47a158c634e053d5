//! Views as tables (client-protocol §5.7, module-abi §8.12): materialising a
//! view into a storage table when a client first reads it, and keeping every
//! materialisation current inside each transaction that changes what it read.
//!
//! Owns: [`ViewTables`] (which view × sender is materialised in which storage
//! table, and what the last evaluation read), materialising the views a query
//! mentions ([`DbShared::materialise_views_for`]), the pre-commit hook that
//! re-evaluates affected views in the committing transaction
//! ([`ViewMaintainer`]), dropping the materialisations nobody subscribes to
//! any more, and dropping them all when the module changes.
//! Does not own: calling the view in the module (`runtime`), the table names
//! (`sql::view_tables`), resolving a view name for a caller (`sql::check`), or
//! deltas to subscribers: a view table is a storage table, so its changes
//! reach subscribers through the ordinary commit path, in the same
//! transaction update as the writes that caused them.
//!
//! Lock order: the storage write lock, then [`ViewTables`]. The hook runs with
//! the write lock held; everything else takes the write lock (begins a
//! transaction) before locking the registry.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};

use spacetimedb_lib::Identity;
use spacetimedb_sats::{AlgebraicValue, ProductValue};
use storage::{MutTx, PreCommit, TableDef, TableId};

use super::{lock, DbShared, HostedDatabase};
use crate::logs::LogLevel;
use orrery_module::{HostedModule, ViewKey, ViewOutcome, ViewReads, ViewRef};
use orrery_query::sql::parse::Statement;
use orrery_query::sql::{
    check, eval_select, parse, view_tables, BoundProjection, Budget, Mode, Named, Names,
    QueryLimits,
};
use orrery_wire::messages::{QuerySetId, ServerMessage, UnsubscribeFlags};
use spacetimedb_lib::ConnectionId;

/// A view's rows and what its evaluation read, or why it failed.
type Evaluated = Result<(Vec<ProductValue>, ViewReads), ViewOutcome>;

/// One materialisation.
#[derive(Debug, Clone)]
struct Materialised {
    table: TableId,
    /// What the last evaluation read.
    reads: ViewReads,
}

/// The materialised views of one database.
#[derive(Default)]
pub(super) struct ViewTables {
    entries: BTreeMap<ViewKey, Materialised>,
    /// Set while a module update migrates the database: the new module. The
    /// hook then re-evaluates every materialisation with it inside the
    /// migration's transaction, so a view that fails refuses the update.
    migrating: Option<Arc<HostedModule>>,
}

impl ViewTables {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets every materialisation (their tables stay until dropped).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The materialisations of one database before a module update, to put
/// back if the update fails.
pub(super) struct SavedViews(BTreeMap<ViewKey, Materialised>);

/// The storage-side hook: installed on the database's storage, holding the
/// database weakly (the storage is owned by it).
pub(super) struct ViewMaintainer(pub(super) Weak<DbShared>);

impl PreCommit for ViewMaintainer {
    fn before_commit(&self, mut tx: MutTx) -> (MutTx, Result<(), String>) {
        let Some(db) = self.0.upgrade() else {
            return (tx, Ok(()));
        };
        let mut views = lock(&db.views);
        if views.entries.is_empty() {
            return (tx, Ok(()));
        }
        let (module, affected) = match views.migrating.clone() {
            // A module update: every materialisation, with the new module.
            Some(new) => (new, views.entries.keys().copied().collect()),
            None => (db.module(), stale_views(&views, &tx)),
        };
        if affected.is_empty() {
            return (tx, Ok(()));
        }
        for key in affected {
            let table = views.entries[&key].table;
            let (refreshed, back) = db.refresh(&module, tx, key, table);
            tx = back;
            match refreshed {
                Ok(reads) => {
                    if let Some(entry) = views.entries.get_mut(&key) {
                        entry.reads = reads;
                    }
                }
                Err(outcome) => {
                    let name = &module.def().views[key.view].canonical_name;
                    let message = format!("view `{name}` failed: {}", describe(&outcome));
                    db.log.append_host(LogLevel::Error, name, &message);
                    return (tx, Err(message));
                }
            }
        }
        (tx, Ok(()))
    }
}

impl DbShared {
    /// Materialises, for `sender`, every view that the queries in `sql`
    /// name in FROM or JOIN. Texts
    /// that do not parse are skipped: the checker reports them. Returns
    /// whether a new materialisation was made.
    pub(super) fn materialise_views_for(
        &self,
        sql: &[&str],
        sender: Identity,
    ) -> Result<bool, ViewOutcome> {
        let module = self.module();
        let mut wanted = Vec::new();
        for text in sql {
            if let Ok(statement) = parse(text) {
                wanted.extend(named_views(&module, &statement));
            }
        }
        if wanted.is_empty() {
            return Ok(false);
        }
        let mut created = false;
        for view in wanted {
            created |= self.materialise(&module, view, sender)?;
        }
        Ok(created)
    }

    /// Materialises view `view` for `sender` unless it is already; returns
    /// whether it made a new materialisation.
    fn materialise(
        &self,
        module: &HostedModule,
        view: usize,
        sender: Identity,
    ) -> Result<bool, ViewOutcome> {
        let info = &module.def().views[view];
        let key = ViewKey {
            view,
            sender: (!info.is_anonymous).then_some(sender),
        };
        if lock(&self.views).entries.contains_key(&key) {
            return Ok(false);
        }
        let name = match info.is_anonymous {
            true => view_tables::anonymous(&info.canonical_name),
            false => view_tables::per_sender(&info.canonical_name, sender),
        };
        let mut tx = self.storage.begin().map_err(internal)?;
        // Holding the write lock, the registry cannot change under us.
        let mut views = lock(&self.views);
        if views.entries.contains_key(&key) {
            tx.rollback();
            return Ok(false);
        }
        let table = match tx.table_id_from_name(&name) {
            Some(table) => table,
            None => {
                let mut indexed = info.indexed_columns.clone();
                indexed.extend(info.primary_key.iter().copied());
                indexed.sort();
                indexed.dedup();
                // Non-unique: a view's rows need not keep its source's keys
                // unique. Joins in subscriptions need them.
                let indexes = indexed
                    .into_iter()
                    .map(|col| storage::IndexDef {
                        name: format!("{name}_{}_idx_btree", col.idx()),
                        algorithm: storage::IndexAlgorithm::BTree,
                        columns: vec![col],
                    })
                    .collect();
                let def = TableDef {
                    name,
                    columns: info.row_type.clone(),
                    primary_key: None,
                    indexes,
                    unique_constraints: Vec::new(),
                    sequences: Vec::new(),
                    public: info.is_public,
                    is_event: false,
                };
                match tx.create_table(def) {
                    Ok(table) => table,
                    Err(e) => {
                        tx.rollback();
                        return Err(internal(e));
                    }
                }
            }
        };
        let (refreshed, tx) = self.refresh(module, tx, key, table);
        let reads = match refreshed {
            Ok(reads) => reads,
            Err(outcome) => {
                tx.rollback();
                return Err(outcome);
            }
        };
        // Registered before the commit, under the write lock, so no later
        // transaction can miss it; the hook leaves it alone in this commit
        // (the only table written is the view's own).
        views.entries.insert(key, Materialised { table, reads });
        drop(views);
        if let Err(e) = tx.commit() {
            lock(&self.views).entries.remove(&key);
            return Err(internal(e));
        }
        Ok(true)
    }

    /// The rows of `view` for `sender` (ignored by anonymous views),
    /// materialising it first if needed.
    pub(super) fn view_rows(
        &self,
        view: &str,
        sender: Option<Identity>,
    ) -> Result<Vec<ProductValue>, ViewOutcome> {
        let module = self.module();
        let Some(index) = module.view_index(ViewRef::Name(view)) else {
            return Err(ViewOutcome::NoSuchView { view: view.into() });
        };
        let info = &module.def().views[index];
        if !info.is_anonymous && sender.is_none() {
            return Err(ViewOutcome::NeedsSender {
                view: info.source_name.clone(),
            });
        }
        let caller = sender.unwrap_or(self.owner);
        self.materialise(&module, index, caller)?;
        let key = ViewKey {
            view: index,
            sender: (!info.is_anonymous).then_some(caller),
        };
        let table = lock(&self.views)
            .entries
            .get(&key)
            .map(|m| m.table)
            .ok_or_else(|| internal("the view was dropped meanwhile"))?;
        let state = self.storage.read().map_err(internal)?;
        let rows = state.scan(table).map_err(internal)?;
        Ok(rows.map(|row| ProductValue::from(row.to_vec())).collect())
    }

    /// Evaluates one materialisation inside `tx` and makes view table
    /// `table` hold its rows; returns what the evaluation read. A view
    /// that returns SQL (a query-builder view) has that query run on `tx`
    /// by the SQL engine.
    fn refresh(
        &self,
        module: &HostedModule,
        tx: MutTx,
        key: ViewKey,
        table: TableId,
    ) -> (Result<ViewReads, ViewOutcome>, MutTx) {
        let (result, mut tx) = module.call_view_in_tx(tx, key.view, key.sender);
        self.log.append(&result.logs);
        self.stats.record_view_evaluation();
        let evaluated = match result.outcome {
            ViewOutcome::Rows { rows } => Ok((rows, result.reads)),
            ViewOutcome::NeedsSql { query } => {
                let sender = key.sender.unwrap_or(self.owner);
                let row_type = &module.def().views[key.view].row_type;
                // The query builder writes the module's source names; resolve
                // them by the module being evaluated (the new one during a
                // migration).
                let names = super::module_names(module.def());
                run_view_query(&tx, &query, sender, row_type, &names)
            }
            other => Err(other),
        };
        let refreshed = evaluated.and_then(|(rows, reads)| {
            sync_rows(&mut tx, table, rows)?;
            Ok(reads)
        });
        (refreshed, tx)
    }

    /// Before a module update migrates the database to `new`: keeps the
    /// materialisations of the views `new` still has with the same name and
    /// columns (renumbered to `new`'s views) and has the hook re-evaluate
    /// them all with `new` inside the migration's transaction, so their
    /// subscribers keep their subscriptions and see the migrated rows, and a
    /// view that fails or traps refuses the update. Returns what to put back
    /// if the update fails ([`DbShared::views_after_update`]).
    pub(super) fn views_before_update(
        &self,
        old: &HostedModule,
        new: &Arc<HostedModule>,
    ) -> SavedViews {
        let mut views = lock(&self.views);
        let saved = std::mem::take(&mut views.entries);
        for (key, m) in &saved {
            let before = &old.def().views[key.view];
            let Some(index) = new.def().views.iter().position(|v| {
                v.canonical_name == before.canonical_name
                    && v.is_anonymous == before.is_anonymous
                    && v.row_type == before.row_type
            }) else {
                continue;
            };
            let key = ViewKey {
                view: index,
                sender: key.sender,
            };
            views.entries.insert(key, m.clone());
        }
        views.migrating = Some(new.clone());
        SavedViews(saved)
    }

    /// After the migration: if it committed, drops the tables of the
    /// materialisations the new module no longer has; if it failed, puts
    /// the old materialisations back (the migration's transaction rolled
    /// back, so their tables still hold the old module's rows).
    pub(super) fn views_after_update(&self, saved: SavedViews, committed: bool) {
        let mut views = lock(&self.views);
        views.migrating = None;
        if !committed {
            views.entries = saved.0;
            return;
        }
        let kept: HashSet<TableId> = views.entries.values().map(|m| m.table).collect();
        let orphans: Vec<TableId> = saved
            .0
            .values()
            .map(|m| m.table)
            .filter(|t| !kept.contains(t))
            .collect();
        drop(views);
        if orphans.is_empty() {
            return;
        }
        let Ok(mut tx) = self.storage.begin() else {
            return;
        };
        for table in orphans {
            if let Err(e) = tx.drop_table(table) {
                self.log.append_host(
                    LogLevel::Warn,
                    "",
                    format!("dropping a view table after an update: {e}"),
                );
            }
        }
        if let Err(e) = tx.commit() {
            self.log.append_host(
                LogLevel::Warn,
                "",
                format!("dropping view tables after an update: {e}"),
            );
        }
    }

    /// Drops every view table and forgets every materialisation (on load,
    /// and after an update that clears the database).
    pub(super) fn drop_view_tables(&self) -> Result<(), String> {
        let mut tx = self.storage.begin().map_err(|e| e.to_string())?;
        lock(&self.views).clear();
        let tables: Vec<TableId> = tx
            .table_ids()
            .filter(|&id| {
                tx.schema(id)
                    .is_ok_and(|schema| view_tables::is_view_table(&schema.name))
            })
            .collect();
        if tables.is_empty() {
            tx.rollback();
            return Ok(());
        }
        for table in tables {
            if let Err(e) = tx.drop_table(table) {
                tx.rollback();
                return Err(e.to_string());
            }
        }
        tx.commit().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Drops the per-sender materialisations no subscription reads (after
    /// an unsubscribe or a disconnect).
    /// Anonymous views stay: one table serves every caller.
    pub(super) fn evict_unused_views(&self) {
        self.evict_unused_views_beyond(0);
    }

    /// After a one-off read made a materialisation: it stays, so the same
    /// caller's next read does not evaluate the view again (the reference
    /// keeps it too), unless more than
    /// [`orrery_api::limits::VIEW_IDLE_MATERIALISATIONS_MAX`] per-sender
    /// materialisations have no subscriber; then those are dropped.
    pub(super) fn evict_idle_views_over_limit(&self) {
        self.evict_unused_views_beyond(orrery_api::limits::VIEW_IDLE_MATERIALISATIONS_MAX);
    }

    /// Drops the per-sender materialisations no subscription reads if there
    /// are more than `keep` of them.
    fn evict_unused_views_beyond(&self, keep: usize) {
        let idle = lock(&self.views)
            .entries
            .iter()
            .filter(|(key, m)| key.sender.is_some() && !self.clients.reads_table(m.table))
            .count();
        if idle <= keep || idle == 0 {
            return;
        }
        let Ok(mut tx) = self.storage.begin() else {
            return;
        };
        let mut views = lock(&self.views);
        let unused: Vec<(ViewKey, TableId)> = views
            .entries
            .iter()
            .filter(|(key, m)| key.sender.is_some() && !self.clients.reads_table(m.table))
            .map(|(key, m)| (*key, m.table))
            .collect();
        if unused.is_empty() {
            tx.rollback();
            return;
        }
        for (key, table) in &unused {
            if tx.drop_table(*table).is_ok() {
                views.entries.remove(key);
            }
        }
        drop(views);
        // If this fails the tables stay without entries: nothing refreshes
        // them, and a later materialisation re-syncs the table it finds.
        let _ = tx.commit();
    }
}

/// Positions of the module's views that `statement` reads (in FROM or JOIN).
pub(super) fn named_views(module: &HostedModule, statement: &Statement) -> Vec<usize> {
    let Statement::Select(select) = statement else {
        return Vec::new();
    };
    let views = &module.def().views;
    if views.is_empty() {
        return Vec::new();
    }
    // A module table of the same name wins, as in `sql::check`.
    let tables = &module.def().tables;
    std::iter::once(&select.from)
        .chain(select.joins.iter().map(|j| &j.table))
        .filter(|table| !tables.iter().any(|t| t.canonical_name == table.name))
        .filter_map(|table| {
            views
                .iter()
                .position(|v| v.canonical_name == table.name)
                .or_else(|| views.iter().position(|v| v.source_name == table.name))
        })
        .collect()
}

/// The materialisations whose last evaluation read something `tx` has
/// written. The reference's rule, followed here: a view that scanned a
/// table (or ranged over an index, or counted rows) is stale after any
/// write to that table; a view that looked keys up in an index (a point
/// scan: `find`, or `filter` with one value) is stale only after a write
/// (insert or delete, so an update counts with its old and new row) of a
/// row with one of those keys in that index's columns. So a view is
/// evaluated once per transaction that changes what it read, and never
/// for writes to other keys.
fn stale_views(views: &ViewTables, tx: &MutTx) -> Vec<ViewKey> {
    let touched = tx.touched_tables();
    let mut affected = Vec::new();
    let mut by_key = Vec::new();
    for (key, m) in &views.entries {
        if touched.iter().any(|t| m.reads.tables.contains(t)) {
            affected.push(*key);
        } else if m.reads.keys.iter().any(|(t, _, _)| touched.contains(t)) {
            by_key.push((*key, &m.reads));
        }
    }
    if by_key.is_empty() {
        return affected;
    }
    let delta = tx.pending_delta();
    for (key, reads) in by_key {
        let hit = delta.tables.iter().any(|table| {
            table
                .inserts
                .iter()
                .chain(&table.deletes)
                .any(|row| reads.affected_by(table.table_id, &row[..]))
        });
        if hit {
            affected.push(key);
        }
    }
    affected.sort();
    affected
}

/// Runs the query of a query-builder view on `tx`: whole rows of one
/// table, whose columns must be the view's (`row_type`). The view read
/// every table the query names.
fn run_view_query(
    tx: &MutTx,
    sql: &str,
    sender: Identity,
    row_type: &spacetimedb_sats::ProductType,
    names: &Names,
) -> Evaluated {
    let failed = |message: String| ViewOutcome::Failed {
        message: format!("the view's query `{sql}` failed: {message}"),
    };
    let mut statement = parse(sql).map_err(|e| failed(e.to_string()))?;
    names.canonicalize(&mut statement);
    let catalog = Named {
        catalog: &**tx,
        names,
    };
    let bound = check(&statement, &catalog, Mode::Sql, true, sender).map_err(|e| failed(e.0))?;
    let orrery_query::sql::BoundStatement::Select(select) = bound else {
        return Err(failed("it is not a SELECT".into()));
    };
    let BoundProjection::Table(returned) = select.projection else {
        return Err(failed("it must return whole rows of one table".into()));
    };
    let columns = &select.tables[returned].schema.columns;
    let same_types = columns.elements.len() == row_type.elements.len()
        && columns
            .elements
            .iter()
            .zip(row_type.elements.iter())
            .all(|(a, b)| a.algebraic_type == b.algebraic_type);
    if !same_types {
        return Err(failed(format!(
            "it returns rows of table `{}`, whose columns are not the view's",
            select.tables[returned].schema.name
        )));
    }
    let reads = ViewReads::of_tables(select.tables.iter().map(|t| t.schema.table_id));
    // The module's own query: the owner's limits.
    let mut budget = Budget::new(QueryLimits::OWNER);
    let result = eval_select(tx, &select, &mut budget).map_err(|e| failed(e.to_string()))?;
    Ok((result.rows, reads))
}

/// Makes the rows of view table `table` equal to `rows` (as a set: a view
/// table, like every table, holds each distinct row once), touching only
/// the rows that differ.
///
/// Order: rows that stay keep their place and new rows are inserted in
/// the order the view returned them, so `SELECT *` over a fresh
/// materialisation lists the rows in the view's order. This is the
/// reference's order: it deletes the materialisation's rows and inserts the
/// new ones in order, and a row deleted and inserted again in one
/// transaction keeps its committed place there too.
fn sync_rows(tx: &mut MutTx, table: TableId, rows: Vec<ProductValue>) -> Result<(), ViewOutcome> {
    let mut seen = HashSet::with_capacity(rows.len());
    let ordered: Vec<Vec<AlgebraicValue>> = rows
        .into_iter()
        .map(|row| row.elements.into_vec())
        .filter(|row| seen.insert(row.clone()))
        .collect();
    let wanted = seen;
    let current = MutTx::collect(tx.scan(table).map_err(internal)?);
    let mut present = HashSet::with_capacity(current.len());
    for row in current {
        if wanted.contains(&row[..]) {
            present.insert(row.to_vec());
        } else {
            tx.delete_row(table, &row).map_err(internal)?;
        }
    }
    for row in ordered {
        if !present.contains(&row) {
            tx.insert_row(table, row)
                .map_err(|e| ViewOutcome::Internal {
                    message: format!("a row of the view does not fit its table: {e}"),
                })?;
        }
    }
    Ok(())
}

/// Writes the `st_view*` system tables (the reference's names and columns)
/// for `views`, the module's views, in the transaction that records the
/// module (creation, migration, clearing): `st_view` (`view_id` = position
/// in the module's views, `view_name`, `table_id` = `none`: materialisations
/// are made per reader, not at publish, `is_public`, `is_anonymous`),
/// `st_view_column` (`view_id`, `col_pos`, `col_name`, `col_type` = the
/// column type's BSATN) and `st_view_param` (views take no parameters, so
/// empty). `st_view_sub` and `st_view_arg` exist with the reference's
/// columns but stay empty: materialisations live in the host's memory.
pub(super) fn record_view_tables(
    tx: &mut MutTx,
    views: &[orrery_moduledef::ViewInfo],
) -> Result<(), String> {
    use spacetimedb_sats::{AlgebraicType as T, ProductType};
    let tables: [(&str, ProductType); 5] = [
        (
            "st_view",
            ProductType::from([
                ("view_id", T::U32),
                ("view_name", T::String),
                ("table_id", T::option(T::U32)),
                ("is_public", T::Bool),
                ("is_anonymous", T::Bool),
            ]),
        ),
        (
            "st_view_column",
            ProductType::from([
                ("view_id", T::U32),
                ("col_pos", T::U16),
                ("col_name", T::String),
                ("col_type", T::bytes()),
            ]),
        ),
        (
            "st_view_param",
            ProductType::from([
                ("view_id", T::U32),
                ("param_pos", T::U16),
                ("param_name", T::String),
                ("param_type", T::bytes()),
            ]),
        ),
        (
            "st_view_sub",
            ProductType::from([
                ("view_id", T::U32),
                ("arg_id", T::U64),
                ("identity", T::U256),
                ("num_subscribers", T::U64),
                ("has_subscribers", T::Bool),
                ("last_called", T::I64),
            ]),
        ),
        (
            "st_view_arg",
            ProductType::from([("id", T::U64), ("bytes", T::bytes())]),
        ),
    ];
    let mut ids = Vec::with_capacity(tables.len());
    for (name, columns) in tables {
        let id = match tx.table_id_from_name(name) {
            Some(id) => id,
            None => tx
                .create_table(TableDef {
                    name: name.into(),
                    columns,
                    primary_key: None,
                    indexes: Vec::new(),
                    unique_constraints: Vec::new(),
                    sequences: Vec::new(),
                    public: false,
                    is_event: false,
                })
                .map_err(|e| format!("creating `{name}`: {e}"))?,
        };
        tx.clear(id)
            .map_err(|e| format!("clearing `{name}`: {e}"))?;
        ids.push(id);
    }
    let write = |tx: &mut MutTx, table: TableId, row: Vec<AlgebraicValue>| {
        tx.insert_row(table, row)
            .map(|_| ())
            .map_err(|e| format!("writing the view tables: {e}"))
    };
    for (position, view) in views.iter().enumerate() {
        let view_id = AlgebraicValue::U32(position as u32);
        write(
            tx,
            ids[0],
            vec![
                view_id.clone(),
                AlgebraicValue::String(view.canonical_name.clone().into()),
                AlgebraicValue::OptionNone(),
                AlgebraicValue::Bool(view.is_public),
                AlgebraicValue::Bool(view.is_anonymous),
            ],
        )?;
        for (pos, column) in view.row_type.elements.iter().enumerate() {
            let ty = spacetimedb_sats::bsatn::to_vec(&column.algebraic_type)
                .map_err(|e| format!("encoding a view column's type: {e}"))?;
            write(
                tx,
                ids[1],
                vec![
                    view_id.clone(),
                    AlgebraicValue::U16(pos as u16),
                    AlgebraicValue::String(column.name.as_deref().unwrap_or_default().into()),
                    AlgebraicValue::Bytes(ty.into()),
                ],
            )?;
        }
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> ViewOutcome {
    ViewOutcome::Internal {
        message: e.to_string(),
    }
}

/// A view outcome for a client or a log line.
pub(super) fn describe(outcome: &ViewOutcome) -> String {
    match outcome {
        ViewOutcome::Rows { rows } => format!("{} rows", rows.len()),
        ViewOutcome::NeedsSql { query } => format!("needs SQL `{query}`"),
        ViewOutcome::Failed { message } => format!("the view failed: {message}"),
        ViewOutcome::Trapped { message } => format!("the view trapped: {message}"),
        ViewOutcome::OutOfFuel => "the view ran out of fuel".into(),
        ViewOutcome::Timeout => "the view ran out of time".into(),
        ViewOutcome::NeedsSender { view } => format!("view `{view}` needs a caller"),
        ViewOutcome::NoSuchView { view } => format!("no such view {view}"),
        ViewOutcome::Internal { message } => message.clone(),
    }
}

impl HostedDatabase {
    /// Handles `Subscribe` for `connection`: materialises the views the
    /// queries name for the connection's identity, then subscribes (see
    /// [`crate::clients::Clients::subscribe`]). A view that fails refuses the subscription.
    /// Call on the database's lane.
    pub fn subscribe(
        &self,
        connection: ConnectionId,
        request_id: u32,
        set: QuerySetId,
        queries: &[String],
    ) {
        let clients = self.clients();
        let Some(identity) = clients.identity_of(connection) else {
            return;
        };
        let texts: Vec<&str> = queries.iter().map(String::as_str).collect();
        match self.shared.materialise_views_for(&texts, identity) {
            Ok(_) => clients.subscribe(self.storage(), connection, request_id, set, queries),
            Err(outcome) => clients.refuse(connection, request_id, set, &describe(&outcome)),
        }
    }

    /// Handles `Unsubscribe` (see [`crate::clients::Clients::unsubscribe`]) and drops the
    /// caller's view materialisations nobody reads any more. On the lane.
    pub fn unsubscribe(
        &self,
        connection: ConnectionId,
        request_id: u32,
        set: QuerySetId,
        flags: UnsubscribeFlags,
    ) {
        self.clients()
            .unsubscribe(self.storage(), connection, request_id, set, flags);
        self.shared.evict_unused_views();
    }

    /// Handles `OneOffQuery` (see [`crate::clients::Clients::one_off`]), materialising the
    /// views it names first. On the lane.
    pub fn one_off(&self, connection: ConnectionId, request_id: u32, sql: &str) {
        let clients = self.clients();
        let Some(identity) = clients.identity_of(connection) else {
            return;
        };
        match self.shared.materialise_views_for(&[sql], identity) {
            Ok(created) => {
                clients.one_off(self.storage(), connection, request_id, sql);
                if created {
                    self.shared.evict_idle_views_over_limit();
                }
            }
            Err(outcome) => {
                if let Some(outbox) = clients.outbox(connection) {
                    outbox.push_message(&ServerMessage::OneOffQueryResult {
                        request_id,
                        result: Err(describe(&outcome)),
                    });
                }
            }
        }
    }

    /// Drops the per-sender view materialisations no subscription reads
    /// (after a connection closed). Takes the write lock: not on an async
    /// task.
    pub fn drop_unused_views(&self) {
        self.shared.evict_unused_views();
    }
}
