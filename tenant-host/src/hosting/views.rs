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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Weak;

use spacetimedb_lib::Identity;
use spacetimedb_sats::{AlgebraicValue, ProductValue};
use storage::{MutTx, PreCommit, TableDef, TableId};

use super::{lock, DbShared, HostedDatabase};
use crate::logs::LogLevel;
use orrery_module::{HostedModule, ViewKey, ViewOutcome, ViewRef};
use orrery_query::sql::parse::Statement;
use orrery_query::sql::{
    check, eval_select, parse, view_tables, BoundProjection, Budget, Mode, QueryLimits,
};
use orrery_wire::messages::{QuerySetId, ServerMessage, UnsubscribeFlags};
use spacetimedb_lib::ConnectionId;

/// A view's rows and the tables its evaluation read, or why it failed.
type Evaluated = Result<(Vec<ProductValue>, BTreeSet<TableId>), ViewOutcome>;

/// One materialisation.
#[derive(Debug)]
struct Materialised {
    table: TableId,
    /// Tables the last evaluation read.
    reads: BTreeSet<TableId>,
}

/// The materialised views of one database.
#[derive(Debug, Default)]
pub(super) struct ViewTables {
    entries: BTreeMap<ViewKey, Materialised>,
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
        let touched = tx.touched_tables();
        let affected: Vec<ViewKey> = views
            .entries
            .iter()
            .filter(|(_, m)| touched.iter().any(|t| m.reads.contains(t)))
            .map(|(key, _)| *key)
            .collect();
        if affected.is_empty() {
            return (tx, Ok(()));
        }
        let module = db.module();
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
                let def = TableDef {
                    name,
                    columns: info.row_type.clone(),
                    primary_key: None,
                    indexes: Vec::new(),
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
    /// `table` hold its rows; returns the tables the evaluation read. A view
    /// that returns SQL has that query run on `tx`.
    fn refresh(
        &self,
        module: &HostedModule,
        tx: MutTx,
        key: ViewKey,
        table: TableId,
    ) -> (Result<BTreeSet<TableId>, ViewOutcome>, MutTx) {
        let (result, mut tx) = module.call_view_in_tx(tx, key.view, key.sender);
        self.log.append(&result.logs);
        let evaluated = match result.outcome {
            ViewOutcome::Rows { rows } => Ok((rows, result.reads)),
            ViewOutcome::NeedsSql { query } => {
                let sender = key.sender.unwrap_or(self.owner);
                run_view_query(&tx, &query, sender)
            }
            other => Err(other),
        };
        let refreshed = evaluated.and_then(|(rows, reads)| {
            sync_rows(&mut tx, table, rows)?;
            Ok(reads)
        });
        (refreshed, tx)
    }

    /// Drops every view table and forgets every materialisation (on load
    /// and after a module update: views may have changed).
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
    /// an unsubscribe, a disconnect, or a one-off read of a view).
    /// Anonymous views stay: one table serves every caller.
    pub(super) fn evict_unused_views(&self) {
        let any = lock(&self.views)
            .entries
            .keys()
            .any(|key| key.sender.is_some());
        if !any {
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

/// Runs the query of a query-builder view on `tx`: whole rows of one table.
fn run_view_query(tx: &MutTx, sql: &str, sender: Identity) -> Evaluated {
    let failed = |message: String| ViewOutcome::Failed {
        message: format!("the view's query `{sql}` failed: {message}"),
    };
    let statement = parse(sql).map_err(|e| failed(e.to_string()))?;
    let bound = check(&statement, &**tx, Mode::Sql, true, sender).map_err(|e| failed(e.0))?;
    let orrery_query::sql::BoundStatement::Select(select) = bound else {
        return Err(failed("it is not a SELECT".into()));
    };
    if !matches!(select.projection, BoundProjection::Table(_)) {
        return Err(failed("it must return whole rows of one table".into()));
    }
    let reads = select.tables.iter().map(|t| t.schema.table_id).collect();
    // The module's own query: the owner's limits.
    let mut budget = Budget::new(QueryLimits::OWNER);
    let result = eval_select(tx, &select, &mut budget).map_err(|e| failed(e.to_string()))?;
    Ok((result.rows, reads))
}

/// Makes the rows of view table `table` equal to `rows` (as a set: a view
/// table, like every table, holds each distinct row once), touching only
/// the rows that differ.
fn sync_rows(tx: &mut MutTx, table: TableId, rows: Vec<ProductValue>) -> Result<(), ViewOutcome> {
    let wanted: HashSet<Vec<AlgebraicValue>> = rows
        .into_iter()
        .map(|row| row.elements.into_vec())
        .collect();
    let current = MutTx::collect(tx.scan(table).map_err(internal)?);
    let mut present = HashSet::with_capacity(current.len());
    for row in current {
        if wanted.contains(&row[..]) {
            present.insert(row.to_vec());
        } else {
            tx.delete_row(table, &row).map_err(internal)?;
        }
    }
    for row in wanted {
        if !present.contains(&row) {
            tx.insert_row(table, row)
                .map_err(|e| ViewOutcome::Internal {
                    message: format!("a row of the view does not fit its table: {e}"),
                })?;
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
                    self.shared.evict_unused_views();
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
