//! Hosting: tenant databases served by one host process.
//!
//! Owns: [`Host`] (the runtime, the bounded worker pool, the timer thread
//! and the snapshotter shared by every database of the process) and [`HostedDatabase`] (one
//! database: its storage, its current module, its serial lane, its schedule
//! timers and its connected clients). Every call for a database — client
//! reducer calls, connect and disconnect hooks, scheduled runs — goes through
//! the database's lane, so calls for one database run one at a time while
//! calls for different databases run in parallel (`hosting::pool`).
//! After every commit the database arms timers for schedule rows the
//! transaction inserted or updated (`hosting::scheduler`); when a database is
//! opened it re-arms every schedule row and runs the disconnect hook for
//! clients a crash left recorded.
//! Does not own: what one call does inside the module (`runtime`), storage
//! semantics (`storage`), the network protocol (later: the client API), or
//! placement of databases on hosts (control-plane).
//!
//! HTTP handler requests run like procedures, and the calls a module queues
//! with `volatile_nonatomic_schedule_immediate` run on the lane after the
//! call that queued them (`hosting::http_handlers`).
//!
//! Connected clients live in the system table [`CLIENT_TABLE`], written in
//! the same transaction as the connect hook (module-abi §8.7), so `get_jwt`
//! can read a client's JWT payload and a restart can tell who was connected.
//! The system table [`MODULE_TABLE`] names the module (by content hash) the
//! schema belongs to, written in the transaction that creates, migrates or
//! clears the database ([`recorded_module`] reads it).

mod http_handlers;
pub mod pool;
pub mod procedures;
mod restore;
pub mod scheduler;
mod sql;
pub mod stats;
mod views;

pub use restore::RestoredInPlace;
pub use sql::SqlOutcome;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, RwLock, Weak};
use std::time::Duration;

use spacetimedb_lib::{ConnectionId, Identity};
use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ArrayValue, ProductType};
use storage::{
    ColId, Database, IndexAlgorithm, IndexDef, IndexId, MutTx, Row, TableDef, TableId, TxDelta,
    UniqueConstraintDef,
};

use crate::clients::{with_origin, Clients};
use crate::logs::{LogLevel, LogOptions, ModuleLog};
use orrery_module::{
    CallOptions, CallResult, CallerContext, HostError, HostTables, HostedModule, ProcedureOutcome,
    ProcedureRef, ProcedureResult, ReducerOutcome, ReducerRef, Runtime, ViewOutcome,
};
use orrery_moduledef::{ScheduledFunction, Visibility};
use pool::{Lane, SubmitError, WorkerPool};
use procedures::{ProcedurePool, ProcedureSlots};
use scheduler::{next_on_grid, Firing, ScheduleAt, Scheduler, Timer};
use spacetimedb_sats::ProductValue;
use storage::clock::{Clock, SystemClock};

/// The system table of connected clients: `connection_id` (u128, primary
/// key), `identity` (32 little-endian bytes), `jwt_payload` (the JSON claims
/// the client presented, empty if none).
pub const CLIENT_TABLE: &str = "st_client";

/// The unique index of [`CLIENT_TABLE`] on `connection_id`.
pub const CLIENT_TABLE_INDEX: &str = "st_client_connection_id_idx_btree";

/// Table names starting with this are the host's; modules may not use them.
pub const SYSTEM_TABLE_PREFIX: &str = "st_";

/// The system table naming the module the schema belongs to: one row,
/// `module_hash` (the 32-byte BLAKE3 of the module's wasm,
/// `orrery_module::module_hash`). Databases created before it existed gain
/// it with their next update.
pub const MODULE_TABLE: &str = "st_module";

/// What the database's log says, before the clients are closed, when an
/// update disconnects every client (row-level security changed). The
/// reference writes these words; tooling and tests grep for them.
pub const DISCONNECTING_ALL_USERS: &str = "Disconnecting all users";

/// The host's tables as the module runtime sees them: every `st_*` table is
/// hidden from guests, `get_jwt` reads [`CLIENT_TABLE`], and the module with
/// hash `module_hash` is recorded in [`MODULE_TABLE`].
#[derive(Debug)]
struct SystemTables {
    module_hash: [u8; 32],
    /// The module's views, set once it is hosted: recorded in the `st_view*`
    /// tables with the module.
    views: std::sync::OnceLock<Vec<orrery_moduledef::ViewInfo>>,
}

impl HostTables for SystemTables {
    fn record_module(&self, tx: &mut MutTx) -> Result<(), String> {
        let table = match tx.table_id_from_name(MODULE_TABLE) {
            Some(table) => table,
            None => tx
                .create_table(module_table_def())
                .map_err(|e| format!("creating `{MODULE_TABLE}`: {e}"))?,
        };
        tx.clear(table)
            .map_err(|e| format!("clearing `{MODULE_TABLE}`: {e}"))?;
        tx.insert_row(
            table,
            vec![AlgebraicValue::Bytes(self.module_hash.to_vec().into())],
        )
        .map_err(|e| format!("writing `{MODULE_TABLE}`: {e}"))?;
        let views = self.views.get().map_or(&[][..], Vec::as_slice);
        views::record_view_tables(tx, views)
    }

    fn is_host_table(&self, name: &str) -> bool {
        name.starts_with(SYSTEM_TABLE_PREFIX)
    }

    fn jwt(&self, tx: &MutTx, connection: ConnectionId) -> Option<String> {
        let index = tx.index_id_from_name(CLIENT_TABLE_INDEX)?;
        let key = AlgebraicValue::U128(connection.to_u128().into());
        let row = tx.find_unique(index, &key).ok()??;
        match row.get(2) {
            Some(AlgebraicValue::String(payload)) if !payload.is_empty() => {
                Some(payload.to_string())
            }
            _ => None,
        }
    }
}

/// How long a due timer waits before retrying when its database's queue is full.
const OVERLOADED_RETRY: Duration = Duration::from_millis(100);

/// Sizes of the shared machinery.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Worker threads running calls (different databases in parallel).
    pub workers: usize,
    /// Calls one database may have waiting before new ones are refused
    /// (at most [`orrery_api::limits::LANE_QUEUED_JOBS_MAX`]).
    pub lane_queued_max: usize,
    /// How workers share themselves between databases (time slices, workers
    /// kept for quick databases).
    pub pool: pool::PoolPolicy,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            lane_queued_max: orrery_api::limits::LANE_QUEUED_JOBS_MAX,
            pool: pool::PoolPolicy::default(),
        }
    }
}

/// Who a database is, for creating or opening it.
#[derive(Clone, Debug)]
pub struct DatabaseSpec {
    /// For thread names, logs and errors.
    pub name: String,
    /// The publisher's identity (little-endian bytes): `init`'s sender, and
    /// the one caller allowed to call private reducers.
    pub owner: Identity,
    /// Budgets of each call and the database identity.
    pub options: CallOptions,
    /// Where the module log lives (`module.log` in this directory); `None`
    /// keeps the log in memory only.
    pub log_dir: Option<std::path::PathBuf>,
    pub log_options: LogOptions,
}

impl DatabaseSpec {
    /// A spec with default budgets, log options and an in-memory log.
    pub fn new(name: impl Into<String>, owner: Identity, options: CallOptions) -> DatabaseSpec {
        DatabaseSpec {
            name: name.into(),
            owner,
            options,
            log_dir: None,
            log_options: LogOptions::default(),
        }
    }
}

/// Why a database could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("table name `{0}` is reserved for the host (names starting with `st_` are)")]
    ReservedName(String),
    #[error("the storage already holds a database; publish an update instead")]
    AlreadyExists,
    #[error("the storage holds no database created by this host (no `{CLIENT_TABLE}` table)")]
    NotCreated,
    #[error("the stored database has no table `{0}`, which the module declares")]
    MissingTable(String),
    #[error("creating the database failed: {}", describe(.outcome))]
    CreateFailed {
        /// Boxed: the outcome is large and errors travel far.
        outcome: Box<ReducerOutcome>,
        logs: Vec<orrery_module::LogRecord>,
    },
    #[error("storage error: {0}")]
    Storage(String),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("cannot open the module log: {0}")]
    Log(std::io::Error),
    #[error(transparent)]
    Update(#[from] orrery_module::update::UpdateError),
    #[error("{0}")]
    RowLevelSecurity(String),
}

/// Processes-wide hosting machinery.
pub struct Host {
    runtime: Runtime,
    pool: Arc<WorkerPool>,
    /// Procedures run here, off the lanes: they may sleep or wait on HTTP;
    /// their transactions serialise with everything else through the
    /// storage write lock.
    procedures: Arc<ProcedurePool>,
    scheduler: Arc<Scheduler>,
    /// Takes every database's snapshots on its policy, off the lanes.
    snapshotter: Arc<storage::Snapshotter>,
    /// The one clock of the hosting layer: call timestamps, timers, client
    /// records and the edge's server time all read it.
    clock: Arc<dyn Clock>,
    config: HostConfig,
    next_key: AtomicU64,
}

impl Host {
    pub fn new(runtime: Runtime, config: HostConfig) -> Host {
        Host::with_clock(runtime, config, Arc::new(SystemClock))
    }

    /// [`Host::new`] reading time from `clock` (tests pass a
    /// `ManualClock`).
    pub fn with_clock(runtime: Runtime, config: HostConfig, clock: Arc<dyn Clock>) -> Host {
        Host {
            runtime,
            pool: Arc::new(WorkerPool::with_policy(config.workers, config.pool)),
            procedures: Arc::new(ProcedurePool::default()),
            scheduler: Arc::new(Scheduler::start(clock.clone())),
            clock,
            snapshotter: storage::Snapshotter::start(orrery_api::limits::SNAPSHOT_THREADS_DEFAULT)
                .expect("spawning the snapshot thread"),
            config,
            next_key: AtomicU64::new(1),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The hosting layer's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// First publish: hosts `wasm`, then creates the host's system tables,
    /// every module table and runs `init` with the owner as sender, all in
    /// one transaction on the empty `storage`. Nothing is left behind if any
    /// step fails.
    pub fn create_database(
        &self,
        spec: DatabaseSpec,
        storage: Database,
        wasm: &[u8],
    ) -> Result<HostedDatabase, PublishError> {
        let module = self.host_module(wasm, &spec)?;
        {
            let state = storage
                .read()
                .map_err(|e| PublishError::Storage(e.to_string()))?;
            if state.table_ids().next().is_some() {
                return Err(PublishError::AlreadyExists);
            }
        }
        let created = module.create_database_with(
            &storage,
            spec.owner,
            self.clock.now_micros(),
            &[client_table_def()],
        );
        let delta = match created.outcome {
            ReducerOutcome::Committed { delta } => delta,
            outcome => {
                return Err(PublishError::CreateFailed {
                    outcome: Box::new(outcome),
                    logs: created.logs,
                })
            }
        };
        let database = self.assemble(spec, storage, module)?;
        // What `init` wrote belongs in the log like any call's output.
        database.shared.log.append(&created.logs);
        database.shared.after_commit(&delta);
        // Calls `init` queued with `volatile_nonatomic_schedule_immediate`
        // run after it, as they do after any call.
        database.shared.queue_immediate(&created.immediate);
        Ok(database)
    }

    /// Loads an existing database (after a restart or on another host):
    /// hosts `wasm`, checks the stored tables, re-arms every schedule row and
    /// runs the disconnect path for clients still recorded as connected.
    pub fn open_database(
        &self,
        spec: DatabaseSpec,
        storage: Database,
        wasm: &[u8],
    ) -> Result<HostedDatabase, PublishError> {
        let module = self.host_module(wasm, &spec)?;
        {
            let state = storage
                .read()
                .map_err(|e| PublishError::Storage(e.to_string()))?;
            if state.table_id_from_name(CLIENT_TABLE).is_none() {
                return Err(PublishError::NotCreated);
            }
            for table in &module.def().tables {
                if state.table_id_from_name(&table.def.name).is_none() {
                    return Err(PublishError::MissingTable(table.def.name.clone()));
                }
            }
        }
        let database = self.assemble(spec, storage, module)?;
        // Materialisations are caches: made again when a client reads them.
        database
            .shared
            .drop_view_tables()
            .map_err(PublishError::Storage)?;
        database.shared.rearm_all();
        let stale = database.shared.recorded_clients();
        if !stale.is_empty() {
            let shared = database.shared.clone();
            database.submit(move || {
                for (identity, connection_id) in stale {
                    shared.disconnect(identity, connection_id);
                }
            })?;
        }
        Ok(database)
    }

    /// Republishes: hosts the new module version and moves `database` to it
    /// in one transaction on the database's lane (no call of the database
    /// runs meanwhile): `UpdateMode::Migrate` applies the automatic plan or
    /// refuses with its blockers; `UpdateMode::ClearData` drops the module's
    /// tables and creates the new ones with `init`. On success the new
    /// version serves every later call (hot swap), timers are re-armed from
    /// the new schedule tables and materialised views are dropped; on
    /// failure the old version keeps serving and nothing changed.
    pub fn update_database(
        &self,
        database: &HostedDatabase,
        wasm: &[u8],
        options: CallOptions,
        mode: orrery_module::update::UpdateMode,
    ) -> Result<orrery_module::update::UpdateReport, PublishError> {
        let spec = DatabaseSpec::new(database.name(), database.shared.owner, options);
        let new = self.host_module(wasm, &spec)?;
        let shared = database.shared.clone();
        database.run(move || shared.update(new, mode))?
    }

    fn host_module(&self, wasm: &[u8], spec: &DatabaseSpec) -> Result<HostedModule, PublishError> {
        let mut options = spec.options.clone();
        let system = Arc::new(SystemTables {
            module_hash: orrery_module::module_hash(wasm),
            views: Default::default(),
        });
        options.host_tables = system.clone();
        let module = self.runtime.host(wasm, options)?;
        let _ = system.views.set(module.def().views.clone());
        if let Some(table) = module
            .def()
            .tables
            .iter()
            .find(|table| table.def.name.starts_with(SYSTEM_TABLE_PREFIX))
        {
            return Err(PublishError::ReservedName(table.def.name.clone()));
        }
        row_level_security(&module)?;
        Ok(module)
    }

    fn assemble(
        &self,
        spec: DatabaseSpec,
        storage: Database,
        module: HostedModule,
    ) -> Result<HostedDatabase, PublishError> {
        let schedules = schedule_slots(&storage, &module)?;
        let log = match &spec.log_dir {
            Some(dir) => {
                ModuleLog::open(dir, spec.log_options.clone()).map_err(PublishError::Log)?
            }
            None => ModuleLog::in_memory(spec.log_options.clone()),
        };
        log.append(module.load_logs());
        let clients = Clients::new(&storage);
        clients.set_rules(Arc::new(row_level_security(&module)?));
        clients.set_names(Arc::new(module_names(module.def())));
        storage.set_commit_observer(Some(clients.clone()));
        let shared = Arc::new_cyclic(|me: &Weak<DbShared>| DbShared {
            clients,
            stats: Default::default(),
            key: self.next_key.fetch_add(1, Ordering::Relaxed),
            me: me.clone(),
            name: spec.name,
            owner: spec.owner,
            storage,
            module: RwLock::new(Arc::new(module)),
            schedules: RwLock::new(Arc::new(schedules)),
            lane: self.pool.lane(
                self.config
                    .lane_queued_max
                    .min(orrery_api::limits::LANE_QUEUED_JOBS_MAX),
            ),
            pool: self.pool.clone(),
            procedures: self.procedures.clone(),
            scheduler: self.scheduler.clone(),
            clock: self.clock.clone(),
            log,
            views: std::sync::Mutex::new(views::ViewTables::default()),
            procedure_slots: ProcedureSlots::default(),
        });
        let maintainer = views::ViewMaintainer(Arc::downgrade(&shared));
        shared.storage.set_pre_commit(Some(Arc::new(maintainer)));
        shared.storage.set_snapshotter(
            Some(self.snapshotter.clone()),
            Some(snapshot_listener(shared.name.clone())),
        );
        Ok(HostedDatabase { shared })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.scheduler.shutdown();
        self.pool.shutdown();
        self.procedures.shutdown();
    }
}

/// One hosted database. Cheap to clone; the database is unloaded (its timers
/// cancelled, its background snapshots stopped) when the last clone is dropped.
#[derive(Clone)]
pub struct HostedDatabase {
    shared: Arc<DbShared>,
}

struct DbShared {
    /// Unique within the host; keys this database's timers.
    key: u64,
    me: Weak<DbShared>,
    name: String,
    owner: Identity,
    storage: Database,
    module: RwLock<Arc<HostedModule>>,
    /// Schedule tables by storage table id.
    schedules: RwLock<Arc<HashMap<TableId, ScheduleSlot>>>,
    lane: Arc<Lane>,
    pool: Arc<WorkerPool>,
    procedures: Arc<ProcedurePool>,
    scheduler: Arc<Scheduler>,
    clock: Arc<dyn Clock>,
    /// Every log record of every call, plus the host's notes on failures.
    log: ModuleLog,
    /// Materialised views, kept in storage tables and refreshed inside
    /// every transaction that writes a table they read.
    views: std::sync::Mutex<views::ViewTables>,
    /// Procedure calls of this database queued or running.
    procedure_slots: ProcedureSlots,
    /// Connected clients and their subscriptions; the storage's commit observer.
    clients: Arc<Clients>,
    /// Reducer calls by outcome, their durations and fuel (for `/metrics`).
    stats: stats::CallStats,
}

/// Logs each background snapshot of database `name`: a failure is a
/// warning (the database serves on; the policy asks again later).
fn snapshot_listener(name: String) -> storage::SnapshotListener {
    Arc::new(
        move |event: &storage::SnapshotEvent<'_>| match event.result {
            Ok(written) => tracing::info!(
                database = %name,
                offset = written.as_ref().map(|w| w.offset.0),
                bytes_written = written.as_ref().map_or(0, |w| w.bytes_written),
                took_ms = event.took.as_millis() as u64,
                segments_removed = event.stats.segments_removed,
                "snapshot taken"
            ),
            Err(error) => tracing::warn!(
                database = %name,
                error = %error,
                failures = event.stats.failed,
                "snapshot failed; the next one is asked for after another interval"
            ),
        },
    )
}

/// The module's row-level security, checked against its own tables.
fn row_level_security(
    module: &HostedModule,
) -> Result<orrery_query::sql::rls::Rules, PublishError> {
    let filters = &module.def().row_level_security;
    if filters.is_empty() {
        return Ok(Default::default());
    }
    let tables = ModuleTables::of(module)?;
    let names = module_names(module.def());
    let catalog = orrery_query::sql::Named {
        catalog: &tables,
        names: &names,
    };
    orrery_query::sql::rls::Rules::compile(filters, &catalog)
        .map_err(PublishError::RowLevelSecurity)
}

/// The accessor names of a module's tables, views and their columns.
pub(crate) fn module_names(def: &orrery_moduledef::ModuleDef) -> orrery_query::sql::Names {
    let mut names = orrery_query::sql::Names::default();
    for table in &def.tables {
        names.add(
            &table.canonical_name,
            &table.source_name,
            table.column_source_names.clone(),
        );
    }
    for view in &def.views {
        names.add(
            &view.canonical_name,
            &view.source_name,
            view.column_source_names.clone(),
        );
    }
    names
}

/// A module's tables as the SQL checker sees them, before they exist.
struct ModuleTables(HashMap<String, Arc<storage::TableSchema>>);

impl ModuleTables {
    fn of(module: &HostedModule) -> Result<ModuleTables, PublishError> {
        let mut tables = HashMap::new();
        for (i, table) in module.def().tables.iter().enumerate() {
            let schema = table
                .def
                .clone()
                .validate(TableId(i as u32), storage::IndexId(0))
                .map_err(|e| PublishError::RowLevelSecurity(e.to_string()))?;
            tables.insert(table.def.name.clone(), Arc::new(schema));
        }
        Ok(ModuleTables(tables))
    }
}

impl orrery_query::sql::Catalog for ModuleTables {
    fn table_schema(&self, name: &str) -> Option<Arc<storage::TableSchema>> {
        self.0.get(name).cloned()
    }
}

/// What a schedule table fires and where its columns are.
#[derive(Clone, Copy, Debug)]
struct ScheduleSlot {
    function: ScheduledFunction,
    id_col: ColId,
    at_col: ColId,
    /// The unique index on the schedule id column.
    id_index: IndexId,
}

impl ScheduleSlot {
    fn decode(&self, row: &Row) -> Option<(u64, ScheduleAt)> {
        let AlgebraicValue::U64(id) = row.get(self.id_col.idx())? else {
            return None;
        };
        Some((*id, ScheduleAt::from_value(row.get(self.at_col.idx())?)?))
    }
}

impl HostedDatabase {
    /// The host's clock, for timestamps this database's callers record.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn storage(&self) -> &Database {
        &self.shared.storage
    }

    /// The module currently serving calls.
    pub fn module(&self) -> Arc<HostedModule> {
        self.shared.module()
    }

    /// The module log: what the module wrote and how calls failed.
    pub fn log(&self) -> &ModuleLog {
        &self.shared.log
    }

    /// Schedule timers pending for this database.
    pub fn pending_timers(&self) -> usize {
        self.shared.scheduler.pending(self.shared.key)
    }

    /// Calls waiting on this database's lane.
    pub fn queued_calls(&self) -> usize {
        self.shared.lane.queued()
    }

    /// Queues a client's reducer call; `reply` gets the result on a worker
    /// thread. Private reducers (lifecycle hooks among them) may only be
    /// called by the owner.
    pub fn submit_reducer(
        &self,
        reducer: String,
        caller: CallerContext,
        args: Vec<u8>,
        reply: impl FnOnce(CallResult) + Send + 'static,
    ) -> Result<(), SubmitError> {
        let shared = self.shared.clone();
        self.submit(move || reply(shared.client_call(&reducer, caller, &args)))
    }

    /// [`HostedDatabase::submit_reducer`] for request `request_id` of a
    /// connected client: if the call commits, the commit itself queues the
    /// caller's `ReducerResult` with its own update (see `clients`), and
    /// `reply` gets `delivered = true`.
    pub fn submit_reducer_from(
        &self,
        reducer: String,
        caller: CallerContext,
        request_id: u32,
        args: Vec<u8>,
        reply: impl FnOnce(CallResult, bool) + Send + 'static,
    ) -> Result<(), SubmitError> {
        let shared = self.shared.clone();
        let connection = caller.connection_id;
        self.submit(move || {
            let (result, delivered) =
                with_origin(connection, request_id, caller.timestamp_micros, || {
                    shared.client_call(&reducer, caller, &args)
                });
            reply(result, delivered)
        })
    }

    /// Runs `job` on this database's lane, after every call queued before it.
    pub fn submit_job(&self, job: impl FnOnce() + Send + 'static) -> Result<(), SubmitError> {
        self.submit(job)
    }

    /// Connected clients and their subscriptions.
    pub fn clients(&self) -> &Arc<Clients> {
        &self.shared.clients
    }

    /// Client and scheduled reducer calls so far: outcomes, durations, fuel.
    pub fn call_stats(&self) -> &stats::CallStats {
        &self.shared.stats
    }

    /// The owner's identity.
    pub fn owner(&self) -> Identity {
        self.shared.owner
    }

    /// [`HostedDatabase::submit_reducer`], waiting for the result.
    pub fn call_reducer(
        &self,
        reducer: &str,
        caller: CallerContext,
        args: Vec<u8>,
    ) -> Result<CallResult, SubmitError> {
        wait(|reply| self.submit_reducer(reducer.to_owned(), caller, args, reply))
    }

    /// Queues a client's procedure call on the host's procedure pool;
    /// `reply` gets the result on a thread of the pool. At most
    /// [`orrery_api::limits::PROCEDURES_RUNNING_COUNT_MAX`] are queued or
    /// running at once per database. Private procedures may only be called
    /// by the owner. Any name is safe here: it is looked up, never used to
    /// name a thread.
    pub fn submit_procedure(
        &self,
        procedure: String,
        caller: CallerContext,
        args: Vec<u8>,
        reply: impl FnOnce(ProcedureResult) + Send + 'static,
    ) -> Result<(), SubmitError> {
        let shared = self.shared.clone();
        self.shared
            .spawn_procedure(move || reply(shared.client_procedure(&procedure, caller, &args)))
    }

    /// Procedure calls of this database queued or running.
    pub fn procedure_calls(&self) -> usize {
        self.shared.procedure_slots.taken()
    }

    /// [`HostedDatabase::submit_procedure`], waiting for the result.
    pub fn call_procedure(
        &self,
        procedure: &str,
        caller: CallerContext,
        args: Vec<u8>,
    ) -> Result<ProcedureResult, SubmitError> {
        wait(|reply| self.submit_procedure(procedure.to_owned(), caller, args, reply))
    }

    /// The rows of `view` for `sender` (ignored by anonymous views), from the
    /// materialisation kept up to date after each commit; evaluated on the
    /// database's lane the first time it is asked for.
    pub fn view(
        &self,
        view: &str,
        sender: Option<Identity>,
    ) -> Result<Result<Vec<ProductValue>, ViewOutcome>, SubmitError> {
        let shared = self.shared.clone();
        let view = view.to_owned();
        self.run(move || shared.view_rows(&view, sender))
    }

    /// Views currently materialised.
    pub fn materialised_views(&self) -> usize {
        lock(&self.shared.views).len()
    }

    /// A client session begins: records the client (identity, connection id,
    /// JWT payload) and runs the module's `client_connected` hook in the same
    /// transaction. Unless the outcome is `Committed` the client must be
    /// refused; nothing was recorded.
    pub fn client_connected(
        &self,
        identity: Identity,
        connection_id: ConnectionId,
        jwt_payload: Option<String>,
    ) -> Result<CallResult, SubmitError> {
        let shared = self.shared.clone();
        self.run(move || shared.connect(identity, connection_id, jwt_payload))
    }

    /// A client session ended: runs `client_disconnected` and removes the
    /// record (the record goes even if the hook fails). Returns `None` if the
    /// client was not recorded.
    pub fn client_disconnected(
        &self,
        identity: Identity,
        connection_id: ConnectionId,
    ) -> Result<Option<CallResult>, SubmitError> {
        let shared = self.shared.clone();
        self.run(move || shared.disconnect(identity, connection_id))
    }

    /// Clients recorded as connected: (identity, connection id).
    pub fn connected_clients(&self) -> Vec<(Identity, ConnectionId)> {
        self.shared.recorded_clients()
    }

    /// Runs `job` on this database's lane.
    fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), SubmitError> {
        self.shared.pool.submit(&self.shared.lane, Box::new(job))
    }

    /// Runs `job` on this database's lane and waits for its result.
    fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, SubmitError> {
        wait(|reply| self.submit(move || reply(job())))
    }
}

/// Submits work with a `reply` callback and waits for the reply. The pool
/// runs every queued job (a panicking job is caught, dropping its reply), so
/// the wait only fails if the job panicked.
fn wait<R: Send + 'static>(
    submit: impl FnOnce(Box<dyn FnOnce(R) + Send>) -> Result<(), SubmitError>,
) -> Result<R, SubmitError> {
    let (tx, rx) = mpsc::sync_channel(1);
    submit(Box::new(move |result| {
        let _ = tx.send(result);
    }))?;
    Ok(rx
        .recv()
        .expect("the job panicked before answering (see the lane's panic count)"))
}

impl Drop for DbShared {
    fn drop(&mut self) {
        self.storage.set_commit_observer(None);
        self.storage.set_pre_commit(None);
        // Waits for a background snapshot in progress: once unloaded, the
        // database's files may be reopened or deleted.
        self.storage.set_snapshotter(None, None);
        self.clients.shutdown();
        self.scheduler.cancel_database(self.key);
    }
}

impl DbShared {
    fn module(&self) -> Arc<HostedModule> {
        self.module
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn schedules(&self) -> Arc<HashMap<TableId, ScheduleSlot>> {
        self.schedules
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn identity(&self, module: &HostedModule) -> Identity {
        module.options().database_identity
    }

    /// A reducer call from a client (or the owner), counted in `stats`.
    fn client_call(&self, reducer: &str, caller: CallerContext, args: &[u8]) -> CallResult {
        let started = std::time::Instant::now();
        let result = self.client_call_uncounted(reducer, caller, args);
        self.stats.record(&result, started.elapsed());
        result
    }

    fn client_call_uncounted(
        &self,
        reducer: &str,
        caller: CallerContext,
        args: &[u8],
    ) -> CallResult {
        let module = self.module();
        let Some(id) = module.reducer_id(ReducerRef::Name(reducer)) else {
            return bare(ReducerOutcome::NoSuchReducer {
                reducer: reducer.to_owned(),
            });
        };
        if module.def().reducers[id].visibility == Visibility::Private
            && caller.sender != self.owner
        {
            return bare(ReducerOutcome::NotCallable {
                reducer: reducer.to_owned(),
            });
        }
        let result = module.call_reducer(&self.storage, ReducerRef::Id(id), caller, args);
        self.finish(reducer, &result);
        result
    }

    /// Moves the database to `new` (on the lane) and swaps it in.
    fn update(
        &self,
        new: HostedModule,
        mode: orrery_module::update::UpdateMode,
    ) -> Result<orrery_module::update::UpdateReport, PublishError> {
        let old = self.module();
        let new = Arc::new(new);
        // A migration keeps the materialisations of the views the new module
        // still has and re-evaluates them with it inside the migration's
        // transaction (a view that fails refuses the update; subscribers
        // keep their subscriptions); clearing the database drops them all
        // (their subscribers reconnect, see `Clients`).
        let saved = match mode {
            orrery_module::update::UpdateMode::Migrate => {
                Some(self.views_before_update(&old, &new))
            }
            orrery_module::update::UpdateMode::ClearData { .. } => {
                lock(&self.views).clear();
                None
            }
        };
        let result = orrery_module::update::update_database(&new, old.def(), &self.storage, mode);
        match saved {
            Some(saved) => self.views_after_update(saved, result.is_ok()),
            None => {
                if let Err(e) = self.drop_view_tables() {
                    self.log
                        .append_host(LogLevel::Warn, "", format!("dropping view tables: {e}"));
                }
            }
        }
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                self.log
                    .append_host(LogLevel::Warn, "", format!("update refused: {e}"));
                return Err(e.into());
            }
        };
        self.log.append(&report.logs);
        self.clients.set_names(Arc::new(module_names(new.def())));
        let rules = row_level_security(&new)?;
        if rules != *self.clients.rules() {
            self.clients.set_rules(Arc::new(rules));
        }
        let reasons = orrery_moduledef::migrate::disconnect_reasons(old.def(), new.def());
        if !reasons.is_empty() {
            // Clients subscribed under the old rules or decoding the old
            // rows reconnect (§5.9); the log says so first, in the words
            // the reference uses.
            self.log
                .append_host(LogLevel::Info, "", DISCONNECTING_ALL_USERS);
            self.clients.close_all(
                crate::clients::CLOSE_GOING_AWAY,
                &format!("module exited: {}", reasons.join("; ")),
            );
        }
        let schedules = schedule_slots(&self.storage, &new)?;
        *self
            .module
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = new;
        *self
            .schedules
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(schedules);
        self.scheduler.cancel_database(self.key);
        self.rearm_all();
        self.log.append_host(
            LogLevel::Info,
            "",
            format!(
                "module updated ({} migration steps)",
                report.plan.steps.len()
            ),
        );
        Ok(report)
    }

    /// A procedure call from a client (or the owner, or a schedule).
    fn client_procedure(
        &self,
        procedure: &str,
        caller: CallerContext,
        args: &[u8],
    ) -> ProcedureResult {
        let module = self.module();
        let refused = |outcome| {
            let result = bare_procedure(outcome);
            self.stats.record_procedure(&result, Duration::ZERO);
            result
        };
        let Some(id) = module.procedure_id(ProcedureRef::Name(procedure)) else {
            return refused(ProcedureOutcome::NoSuchProcedure {
                procedure: procedure.to_owned(),
            });
        };
        if module.def().procedures[id].visibility == Visibility::Private
            && caller.sender != self.owner
        {
            return refused(ProcedureOutcome::NotCallable {
                procedure: procedure.to_owned(),
            });
        }
        self.procedure(&module, id, caller, args)
    }

    /// Runs procedure `id` (on the calling thread) and does the after-work
    /// of each transaction it committed.
    fn procedure(
        &self,
        module: &HostedModule,
        id: usize,
        caller: CallerContext,
        args: &[u8],
    ) -> ProcedureResult {
        let name = &module.def().procedures[id].source_name;
        let limit = module.options().args_bytes_max;
        if args.len() > limit {
            let result = bare_procedure(ProcedureOutcome::BadArguments {
                message: format!(
                    "the arguments are {} bytes; the limit is {limit}",
                    args.len()
                ),
            });
            self.stats.record_procedure(&result, Duration::ZERO);
            self.log.append_host(
                LogLevel::Warn,
                name,
                "refused: arguments over the size limit",
            );
            return result;
        }
        let started = std::time::Instant::now();
        let result = module.call_procedure(&self.storage, ProcedureRef::Id(id), caller, args);
        self.stats.record_procedure(&result, started.elapsed());
        self.log.append(&result.logs);
        for delta in &result.commits {
            self.after_commit(delta);
        }
        if let Some((level, note)) = procedure_failure_note(&result.outcome) {
            self.log.append_host(level, name, note);
        }
        self.queue_immediate(&result.immediate);
        result
    }

    /// Queues `job` on the host's procedure pool, holding one of this
    /// database's procedure slots until it has run (or was dropped).
    fn spawn_procedure(&self, job: impl FnOnce() + Send + 'static) -> Result<(), SubmitError> {
        let slot = self.procedure_slots.take()?;
        self.procedures.submit(Box::new(move || {
            let _slot = slot;
            job();
        }))
    }

    /// Work after every call of `function`: log what the module wrote and
    /// why the call failed, if it did; arm timers for what it committed.
    fn finish(&self, function: &str, result: &CallResult) {
        self.log.append(&result.logs);
        if let ReducerOutcome::Committed { delta } = &result.outcome {
            self.after_commit(delta);
        } else if let Some((level, note)) = failure_note(&result.outcome) {
            self.log.append_host(level, function, note);
        }
        self.queue_immediate(&result.immediate);
    }

    /// Arms timers for schedule rows a committed transaction inserted (or
    /// updated), and cancels those of rows it deleted.
    fn after_commit(&self, delta: &TxDelta) {
        let schedules = self.schedules();
        if schedules.is_empty() {
            return;
        }
        let now = self.clock.now_micros();
        for table in &delta.tables {
            let Some(slot) = schedules.get(&table.table_id) else {
                continue;
            };
            let mut armed = HashSet::new();
            for row in &table.inserts {
                if let Some((id, at)) = slot.decode(row) {
                    armed.insert(id);
                    self.arm(table.table_id, id, at.first_due(now), at);
                }
            }
            for row in &table.deletes {
                if let Some((id, _)) = slot.decode(row) {
                    if !armed.contains(&id) {
                        self.scheduler.cancel(self.key, table.table_id, id);
                    }
                }
            }
        }
    }

    fn arm(&self, table: TableId, schedule_id: u64, due_micros: i64, at: ScheduleAt) {
        let me: Weak<dyn Firing> = self.me.clone();
        self.scheduler.arm(
            self.key,
            me,
            Timer {
                table,
                schedule_id,
                due_micros,
                at,
            },
        );
    }

    /// Arms a timer for every row of every schedule table (on load).
    fn rearm_all(&self) {
        let schedules = self.schedules();
        let Ok(state) = self.storage.read() else {
            return;
        };
        let now = self.clock.now_micros();
        for (&table, slot) in schedules.iter() {
            let Ok(rows) = state.scan(table) else {
                continue;
            };
            for row in rows {
                if let Some((id, at)) = slot.decode(row) {
                    self.arm(table, id, at.first_due(now), at);
                }
            }
        }
    }

    /// Runs a due timer, on the lane: re-reads the row, calls its function
    /// with the row as argument, then deletes a one-shot row or re-arms an
    /// interval (module-abi §8.6).
    fn run_timer(&self, timer: Timer) {
        let Some(slot) = self.schedules().get(&timer.table).copied() else {
            return;
        };
        let key = AlgebraicValue::U64(timer.schedule_id);
        let row = match self.storage.read() {
            Ok(state) => state
                .find_unique(slot.id_index, &key)
                .ok()
                .flatten()
                .cloned(),
            Err(_) => None,
        };
        // Deleted, or changed since the timer was armed (its new timer is pending).
        let Some(row) = row else { return };
        if slot.decode(&row).map(|(_, at)| at) != Some(timer.at) {
            return;
        }
        let module = self.module();
        let caller = CallerContext {
            sender: self.identity(&module),
            connection_id: ConnectionId::ZERO,
            timestamp_micros: timer.due_micros.max(self.clock.now_micros()),
        };
        let mut args = Vec::new();
        storage::value::encode_row(&row, &mut args);
        match slot.function {
            ScheduledFunction::Reducer(id) => {
                let started = std::time::Instant::now();
                let result = module.call_reducer(&self.storage, ReducerRef::Id(id), caller, &args);
                self.stats.record(&result, started.elapsed());
                self.finish(&module.def().reducers[id].source_name, &result);
                self.settle(&slot, timer);
            }
            ScheduledFunction::Procedure(id) => {
                // Procedures are never retried: settle the row first, then
                // run the procedure off the lane.
                self.settle(&slot, timer);
                let me = self.me.upgrade().expect("a firing database is alive");
                let name = module.def().procedures[id].source_name.clone();
                if let Err(e) = self.spawn_procedure(move || {
                    me.procedure(&module, id, caller, &args);
                }) {
                    self.log.append_host(
                        LogLevel::Error,
                        &name,
                        format!("scheduled run dropped: {e}"),
                    );
                }
            }
        }
    }

    /// After a run: deletes the row if it is still the same one-shot row, or
    /// re-arms it on its interval grid if it is still the same interval row.
    fn settle(&self, slot: &ScheduleSlot, timer: Timer) {
        let Ok(mut tx) = self.storage.begin() else {
            return;
        };
        let key = AlgebraicValue::U64(timer.schedule_id);
        let row = tx.find_unique(slot.id_index, &key).ok().flatten().cloned();
        let current = row
            .as_ref()
            .and_then(|row| slot.decode(row))
            .map(|(_, at)| at);
        match (row, current) {
            (Some(row), Some(at @ ScheduleAt::Time { .. })) if at == timer.at => {
                if tx.delete_row(timer.table, &row).is_ok() {
                    if let Ok(delta) = tx.commit() {
                        self.after_commit(&delta);
                    }
                } else {
                    tx.rollback();
                }
            }
            (Some(_), Some(at @ ScheduleAt::Interval { micros })) if at == timer.at => {
                tx.rollback();
                let next = next_on_grid(timer.due_micros, micros, self.clock.now_micros());
                self.arm(timer.table, timer.schedule_id, next, at);
            }
            _ => tx.rollback(),
        }
    }

    fn connect(
        &self,
        identity: Identity,
        connection_id: ConnectionId,
        jwt_payload: Option<String>,
    ) -> CallResult {
        if connection_id == ConnectionId::ZERO {
            return bare(ReducerOutcome::BadArguments {
                message: "connection id 0 means \"no connection\" and cannot be connected".into(),
            });
        }
        let mut tx = match self.storage.begin() {
            Ok(tx) => tx,
            Err(e) => return internal(format!("cannot open a transaction: {e}")),
        };
        let Some(table) = tx.table_id_from_name(CLIENT_TABLE) else {
            tx.rollback();
            return internal(format!("the `{CLIENT_TABLE}` table is missing"));
        };
        let key = AlgebraicValue::U128(connection_id.to_u128().into());
        let recorded = tx
            .index_id_from_name(CLIENT_TABLE_INDEX)
            .and_then(|index| tx.find_unique(index, &key).ok().flatten())
            .is_some();
        if recorded {
            tx.rollback();
            return bare(ReducerOutcome::BadArguments {
                message: "this connection id is already connected".into(),
            });
        }
        let record = vec![
            AlgebraicValue::U128(connection_id.to_u128().into()),
            AlgebraicValue::Bytes(identity.to_byte_array().to_vec().into()),
            AlgebraicValue::String(jwt_payload.unwrap_or_default().into()),
        ];
        match tx.insert_row(table, record) {
            Ok(_) => {}
            Err(storage::TxError::UniqueViolation { .. }) => {
                tx.rollback();
                return bare(ReducerOutcome::BadArguments {
                    message: "this connection id is already connected".into(),
                });
            }
            Err(e) => {
                tx.rollback();
                return internal(format!("recording the client: {e}"));
            }
        }
        let module = self.module();
        let caller = CallerContext {
            sender: identity,
            connection_id,
            timestamp_micros: self.clock.now_micros(),
        };
        let result = run_hook(&module, module.def().lifecycle.on_connect, tx, caller);
        self.finish("client_connected", &result);
        result
    }

    fn disconnect(&self, identity: Identity, connection_id: ConnectionId) -> Option<CallResult> {
        let mut tx = self.storage.begin().ok()?;
        let Some(removed) = remove_client(&mut tx, connection_id) else {
            tx.rollback();
            return None;
        };
        if !removed {
            tx.rollback();
            return None;
        }
        let module = self.module();
        let caller = CallerContext {
            sender: identity,
            connection_id,
            timestamp_micros: self.clock.now_micros(),
        };
        let result = run_hook(&module, module.def().lifecycle.on_disconnect, tx, caller);
        self.finish("client_disconnected", &result);
        if !result.outcome.is_committed() {
            // The hook failed: the record goes anyway, on its own.
            if let Ok(mut tx) = self.storage.begin() {
                match remove_client(&mut tx, connection_id) {
                    Some(true) => {
                        if let Ok(delta) = tx.commit() {
                            self.after_commit(&delta);
                        }
                    }
                    _ => tx.rollback(),
                }
            }
        }
        Some(result)
    }

    /// Every client recorded as connected: (identity, connection id).
    fn recorded_clients(&self) -> Vec<(Identity, ConnectionId)> {
        let Ok(state) = self.storage.read() else {
            return Vec::new();
        };
        let Some(table) = state.table_id_from_name(CLIENT_TABLE) else {
            return Vec::new();
        };
        let Ok(rows) = state.scan(table) else {
            return Vec::new();
        };
        rows.filter_map(|row| match (row.first(), row.get(1)) {
            (
                Some(AlgebraicValue::U128(connection)),
                Some(AlgebraicValue::Array(ArrayValue::U8(identity))),
            ) => {
                let identity: [u8; 32] = identity.as_ref().try_into().ok()?;
                Some((
                    Identity::from_byte_array(identity),
                    ConnectionId::from_u128(connection.0),
                ))
            }
            _ => None,
        })
        .collect()
    }
}

impl Firing for DbShared {
    fn fire(self: Arc<Self>, timer: Timer) {
        let me = self.clone();
        let submitted = self
            .pool
            .submit(&self.lane, Box::new(move || me.run_timer(timer)));
        if let Err(SubmitError::Overloaded(_)) = submitted {
            // Not lost: try again shortly.
            let retry = self
                .clock
                .now_micros()
                .saturating_add(OVERLOADED_RETRY.as_micros() as i64);
            self.arm(timer.table, timer.schedule_id, retry, timer.at);
        }
    }
}

/// Runs lifecycle reducer `hook` (if the module has one) inside `tx`, which
/// already holds the host's bookkeeping, and commits iff it succeeds; with no
/// hook, just commits.
fn run_hook(
    module: &HostedModule,
    hook: Option<usize>,
    tx: storage::MutTx,
    caller: CallerContext,
) -> CallResult {
    match hook {
        Some(id) => module.call_reducer_in(tx, id, caller, &[]),
        None => match tx.commit() {
            Ok(delta) => bare(ReducerOutcome::Committed { delta }),
            Err(e) => internal(format!("commit failed: {e}")),
        },
    }
}

/// Deletes the client record of `connection_id`: `Some(true)` if it existed,
/// `Some(false)` if not, `None` if the table is missing.
fn remove_client(tx: &mut storage::MutTx, connection_id: ConnectionId) -> Option<bool> {
    let index = tx.index_id_from_name(CLIENT_TABLE_INDEX)?;
    let key = AlgebraicValue::U128(connection_id.to_u128().into());
    let count = tx.delete_by_point(index, &key).ok()?;
    Some(count > 0)
}

/// The definition of [`MODULE_TABLE`].
fn module_table_def() -> TableDef {
    TableDef {
        name: MODULE_TABLE.into(),
        columns: ProductType::from([("module_hash", AlgebraicType::bytes())]),
        primary_key: None,
        indexes: Vec::new(),
        unique_constraints: Vec::new(),
        sequences: Vec::new(),
        public: false,
        is_event: false,
    }
}

/// The hash of the module `storage`'s schema belongs to, as recorded in
/// [`MODULE_TABLE`] by the last transaction that created, migrated or
/// cleared it; `None` for a database that has no record yet (created before
/// the table existed and not updated since).
pub fn recorded_module(storage: &Database) -> Result<Option<[u8; 32]>, PublishError> {
    let state = storage
        .read()
        .map_err(|e| PublishError::Storage(e.to_string()))?;
    let Some(table) = state.table_id_from_name(MODULE_TABLE) else {
        return Ok(None);
    };
    let rows: Vec<Row> = state
        .scan(table)
        .map_err(|e| PublishError::Storage(e.to_string()))?
        .cloned()
        .collect();
    match rows.as_slice() {
        [] => Ok(None),
        [row] => match row.first() {
            Some(AlgebraicValue::Array(ArrayValue::U8(bytes))) => {
                let hash: [u8; 32] = bytes.as_ref().try_into().map_err(|_| {
                    PublishError::Storage(format!(
                        "`{MODULE_TABLE}` holds a hash of {} bytes, not 32",
                        bytes.len()
                    ))
                })?;
                Ok(Some(hash))
            }
            other => Err(PublishError::Storage(format!(
                "`{MODULE_TABLE}` holds {other:?}, not a module hash"
            ))),
        },
        more => Err(PublishError::Storage(format!(
            "`{MODULE_TABLE}` holds {} rows, not one",
            more.len()
        ))),
    }
}

/// The definition of [`CLIENT_TABLE`].
fn client_table_def() -> TableDef {
    TableDef {
        name: CLIENT_TABLE.into(),
        columns: ProductType::from([
            ("connection_id", AlgebraicType::U128),
            ("identity", AlgebraicType::bytes()),
            ("jwt_payload", AlgebraicType::String),
        ]),
        primary_key: Some(ColId(0)),
        indexes: vec![IndexDef {
            name: CLIENT_TABLE_INDEX.into(),
            algorithm: IndexAlgorithm::BTree,
            columns: vec![ColId(0)],
        }],
        unique_constraints: vec![UniqueConstraintDef {
            name: "st_client_connection_id_key".into(),
            columns: vec![ColId(0)],
        }],
        sequences: Vec::new(),
        public: false,
        is_event: false,
    }
}

/// Resolves each schedule of the module to its storage table and the unique
/// index on its schedule id.
fn schedule_slots(
    storage: &Database,
    module: &HostedModule,
) -> Result<HashMap<TableId, ScheduleSlot>, PublishError> {
    let state = storage
        .read()
        .map_err(|e| PublishError::Storage(e.to_string()))?;
    let def = module.def();
    let mut slots = HashMap::new();
    for schedule in &def.schedules {
        let table = &def.tables[schedule.table];
        let Some(table_id) = state.table_id_from_name(&table.def.name) else {
            continue;
        };
        let schema = state
            .schema(table_id)
            .map_err(|e| PublishError::Storage(e.to_string()))?;
        let Some(index) = schema
            .indexes
            .iter()
            .find(|index| index.unique.is_some() && index.columns == [schedule.id_col])
        else {
            return Err(PublishError::Storage(format!(
                "schedule table `{}` has no unique index on its schedule id",
                table.def.name
            )));
        };
        slots.insert(
            table_id,
            ScheduleSlot {
                function: schedule.function,
                id_col: schedule.id_col,
                at_col: schedule.schedule_at_col,
                id_index: index.index_id,
            },
        );
    }
    Ok(slots)
}

fn bare(outcome: ReducerOutcome) -> CallResult {
    CallResult {
        outcome,
        logs: Vec::new(),
        fuel_used: 0,
        immediate: Vec::new(),
    }
}

fn internal(message: String) -> CallResult {
    bare(ReducerOutcome::Internal { message })
}

/// What the log says about a call that did not commit. A reducer's own
/// `Err` is the module's business: it is noted at info level.
fn failure_note(outcome: &ReducerOutcome) -> Option<(LogLevel, String)> {
    Some(match outcome {
        ReducerOutcome::Committed { .. } => return None,
        ReducerOutcome::Failed { message } => {
            (LogLevel::Info, format!("returned an error: {message}"))
        }
        ReducerOutcome::Trapped { message } => (LogLevel::Error, format!("trapped: {message}")),
        ReducerOutcome::OutOfFuel => (
            LogLevel::Error,
            "ran out of fuel and was rolled back".into(),
        ),
        ReducerOutcome::Timeout => (
            LogLevel::Error,
            "ran past its deadline and was rolled back".into(),
        ),
        ReducerOutcome::BadArguments { message } => (LogLevel::Warn, format!("refused: {message}")),
        ReducerOutcome::ArgumentsTooLarge { bytes, limit } => (
            LogLevel::Warn,
            format!("refused: the arguments are {bytes} bytes, the limit is {limit}"),
        ),
        ReducerOutcome::NotCallable { reducer } => (
            LogLevel::Warn,
            format!("refused: `{reducer}` is private and the caller is not the owner"),
        ),
        ReducerOutcome::NoSuchReducer { reducer } => {
            (LogLevel::Warn, format!("refused: no reducer `{reducer}`"))
        }
        ReducerOutcome::Internal { message } => (LogLevel::Error, format!("host error: {message}")),
    })
}

fn bare_procedure(outcome: ProcedureOutcome) -> ProcedureResult {
    ProcedureResult {
        outcome,
        logs: Vec::new(),
        fuel_used: 0,
        commits: Vec::new(),
        immediate: Vec::new(),
    }
}

fn procedure_failure_note(outcome: &ProcedureOutcome) -> Option<(LogLevel, String)> {
    Some(match outcome {
        ProcedureOutcome::Returned { .. } => return None,
        ProcedureOutcome::Trapped { message } => (LogLevel::Error, format!("trapped: {message}")),
        ProcedureOutcome::OutOfFuel => (LogLevel::Error, "ran out of fuel".into()),
        ProcedureOutcome::Timeout => (LogLevel::Error, "ran past its deadline".into()),
        ProcedureOutcome::BadArguments { message } => {
            (LogLevel::Warn, format!("refused: {message}"))
        }
        ProcedureOutcome::NoSuchProcedure { procedure } => (
            LogLevel::Warn,
            format!("refused: no procedure `{procedure}`"),
        ),
        ProcedureOutcome::NotCallable { procedure } => (
            LogLevel::Warn,
            format!("refused: `{procedure}` is private and the caller is not the owner"),
        ),
        ProcedureOutcome::Internal { message } => {
            (LogLevel::Error, format!("host error: {message}"))
        }
    })
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn describe(outcome: &ReducerOutcome) -> String {
    match outcome {
        ReducerOutcome::Failed { message } => format!("init failed: {message}"),
        ReducerOutcome::Trapped { message } => format!("init trapped: {message}"),
        ReducerOutcome::OutOfFuel => "init ran out of fuel".into(),
        ReducerOutcome::Timeout => "init ran past its deadline".into(),
        other => format!("{other:?}"),
    }
}
