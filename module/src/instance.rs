//! Reducer calls in a transaction: the loaded module, its instances, and the
//! outcome of one call.
//!
//! Owns: [`HostedModule`] (compiled module + validated [`ModuleDef`] + a pool
//! of idle instances), [`ModuleInstance`] (one wasm store, described once,
//! reused across calls and discarded after a trap, module-abi §1 step 9),
//! [`HostedModule::call_reducer`] (argument type check, one transaction,
//! commit iff the reducer returns 0, §4.5 and §8.1),
//! [`HostedModule::create_database`] (every table and `init` in one
//! transaction, §8.7; its second half also serves `crate::update` when a
//! republish clears the data), and the budgets of a call ([`CallOptions`]).
//! Procedure calls live in `instance::procedure`
//! ([`HostedModule::call_procedure`]), HTTP handler calls in
//! `instance::http_handler` ([`HostedModule::call_http_handler`]), view evaluation in
//! `instance::view`, and the call
//! plumbing they share in `instance::guest_call`.
//! Does not own: what the imports do (`orrery_module::host`), storage semantics
//! (`storage`), scheduling or client connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_api::limits;
use spacetimedb_lib::{ConnectionId, Identity};
use spacetimedb_sats::ProductValue;
use storage::{ColId, Database, MutTx, TxDelta};
use wasmtime::{Instance, InstancePre, Store, StoreLimitsBuilder, Trap, TypedFunc};

use super::host::{
    HostEnv, HttpPolicy, ImmediateCall, LogRecord, SharedHostTables, LOG_LEVEL_ERROR,
    LOG_LEVEL_PANIC,
};
use super::host_tables::{HostTables, NoHostTables};
use super::{LoadError, Runtime};
use orrery_moduledef::{ModuleDef, ModuleDefError};

mod guest_call;
mod http_handler;
mod procedure;
mod view;

pub use http_handler::{HttpHandlerOutcome, HttpHandlerResult, HttpResponseParts};
pub use procedure::{ProcedureOutcome, ProcedureRef, ProcedureResult};
pub use view::{ViewKey, ViewOutcome, ViewReads, ViewRef, ViewResult};

/// Budgets and identity of the calls made on one hosted module.
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// Wasm fuel (≈ instructions) one reducer call may use.
    pub fuel_per_call: u64,
    /// Wall-clock limit of one reducer or view call (epoch deadline).
    pub deadline_per_call: Duration,
    /// Wall-clock limit of one procedure call, including the time it spends
    /// sleeping and waiting on HTTP (which burn no fuel); sleeps and request
    /// timeouts are cut to what is left of it.
    pub procedure_deadline: Duration,
    /// Wall-clock limit of one HTTP handler call, including its
    /// transactions and outbound requests.
    pub http_handler_deadline: Duration,
    /// What outbound HTTP procedures and HTTP handlers may do.
    pub http: HttpPolicy,
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes_max: usize,
    /// Largest argument payload (BSATN bytes) one call accepts; larger calls
    /// are refused before the module sees them.
    pub args_bytes_max: usize,
    /// What the `identity` import answers: the database identity.
    pub database_identity: Identity,
    /// The host's own tables in the database, hidden from the guest, and
    /// where `get_jwt` reads a client's token.
    pub host_tables: Arc<dyn HostTables>,
}

impl Default for CallOptions {
    fn default() -> CallOptions {
        CallOptions {
            // The abi-coverage checks need well under 1% of the default fuel.
            fuel_per_call: limits::FUEL_PER_CALL_DEFAULT,
            deadline_per_call: Duration::from_millis(limits::CALL_DEADLINE_MS_DEFAULT),
            procedure_deadline: Duration::from_millis(limits::PROCEDURE_DEADLINE_MS_DEFAULT),
            http_handler_deadline: Duration::from_millis(limits::HTTP_HANDLER_DEADLINE_MS_DEFAULT),
            http: HttpPolicy::default(),
            memory_bytes_max: limits::WASM_MEMORY_BYTES_DEFAULT as usize,
            args_bytes_max: ARGS_BYTES_MAX_DEFAULT,
            database_identity: Identity::ZERO,
            host_tables: Arc::new(NoHostTables),
        }
    }
}

/// Default cap on one call's arguments.
pub const ARGS_BYTES_MAX_DEFAULT: usize = limits::CALL_ARGS_BYTES_DEFAULT as usize;

/// Who calls and when (module-abi §4.0, §8.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallerContext {
    /// The caller's identity.
    pub sender: Identity,
    /// The caller's connection; [`ConnectionId::ZERO`] = no connection.
    pub connection_id: ConnectionId,
    /// Microseconds since the Unix epoch.
    pub timestamp_micros: i64,
}

/// How a reducer call ended. Only `Committed` changed the database.
#[derive(Debug)]
pub enum ReducerOutcome {
    /// Returned 0; the transaction committed.
    Committed { delta: TxDelta },
    /// Returned an error (code 1) with this message; rolled back.
    Failed { message: String },
    /// Trapped (panic, wasm trap, host-import trap); rolled back, instance discarded.
    Trapped { message: String },
    /// Used up its fuel; rolled back, instance discarded.
    OutOfFuel,
    /// Ran past its wall-clock deadline; rolled back, instance discarded.
    Timeout,
    /// The arguments do not decode at the reducer's parameter types; not called.
    BadArguments { message: String },
    /// The arguments are larger than [`CallOptions::args_bytes_max`]; not called.
    ArgumentsTooLarge { bytes: usize, limit: usize },
    /// Clients may not call this reducer (a lifecycle or other private
    /// reducer); not called.
    NotCallable { reducer: String },
    /// No reducer with that id or name.
    NoSuchReducer { reducer: String },
    /// The host could not run or commit the call (the database refuses
    /// writes, an instance could not be created, an unexpected return code).
    Internal { message: String },
}

impl ReducerOutcome {
    pub fn is_committed(&self) -> bool {
        matches!(self, ReducerOutcome::Committed { .. })
    }
}

/// A call's outcome with everything the module logged during it.
#[derive(Debug)]
pub struct CallResult {
    pub outcome: ReducerOutcome,
    pub logs: Vec<LogRecord>,
    /// Fuel the call consumed.
    pub fuel_used: u64,
    /// Calls the reducer queued with `volatile_nonatomic_schedule_immediate`,
    /// for the host to run after this call, whatever its outcome.
    pub immediate: Vec<ImmediateCall>,
}

/// A reducer named by id (position in the module definition) or source name.
#[derive(Clone, Copy, Debug)]
pub enum ReducerRef<'a> {
    Id(usize),
    Name(&'a str),
}

impl From<usize> for ReducerRef<'_> {
    fn from(id: usize) -> Self {
        ReducerRef::Id(id)
    }
}

impl<'a> From<&'a str> for ReducerRef<'a> {
    fn from(name: &'a str) -> Self {
        ReducerRef::Name(name)
    }
}

/// Why a module could not be hosted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the module definition is invalid: {0}")]
    Def(#[from] ModuleDefError),
}

/// A compiled, described and validated module, ready to run reducers.
pub struct HostedModule {
    runtime: Runtime,
    /// The compiled module with its imports resolved once, for every instance.
    pre: InstancePre<HostEnv>,
    def: Arc<ModuleDef>,
    options: CallOptions,
    /// Source and canonical table names → storage (canonical) name.
    table_names: Arc<HashMap<String, String>>,
    /// Schedule tables (storage name) → their `ScheduleAt` column.
    schedule_at_cols: Arc<HashMap<String, ColId>>,
    /// Healthy instances between calls.
    idle: Mutex<Vec<ModuleInstance>>,
    /// Log records of loading (preinit and describe of the first instance).
    load_logs: Vec<LogRecord>,
    /// The BSATN `RawModuleDef` the module described itself with, as it
    /// produced it (served by the `/schema` route).
    description: Arc<[u8]>,
}

/// One instance: its own store and memory, already described.
pub struct ModuleInstance {
    store: Store<HostEnv>,
    /// For the exports other than `__call_reducer__`.
    instance: Instance,
    call_reducer: TypedFunc<CallReducerParams, i32>,
}

/// `__call_reducer__(id, sender_0..3, conn_id_0..1, timestamp, args, error_sink)`.
type CallReducerParams = (i32, i64, i64, i64, i64, i64, i64, i64, i32, i32);

/// How the guest call itself ended, before commit or rollback.
enum Ended {
    Returned(i32),
    Trapped(GuestTrap),
    OutOfFuel,
    Timeout,
}

/// A guest call that trapped: what callers are told, and the full error with
/// the wasm backtrace, which only the owner's log receives.
struct GuestTrap {
    summary: String,
    detail: String,
}

impl Ended {
    /// How a failed guest call ended.
    fn from_error(error: wasmtime::Error) -> Ended {
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Ended::OutOfFuel,
            Some(Trap::Interrupt) => Ended::Timeout,
            Some(trap) => Ended::Trapped(GuestTrap {
                summary: trap.to_string(),
                detail: format!("{error:#}"),
            }),
            None => Ended::Trapped(GuestTrap {
                summary: error.root_cause().to_string(),
                detail: format!("{error:#}"),
            }),
        }
    }
}

impl GuestTrap {
    /// The message a caller gets (the module's panic message if it wrote
    /// one, else the kind of trap, never the backtrace), after appending
    /// the full error to `logs` for the owner.
    fn report(self, logs: &mut Vec<LogRecord>) -> String {
        let function = logs
            .iter()
            .rev()
            .map(|record| record.function.clone())
            .find(|function| !function.is_empty())
            .unwrap_or_default();
        let message = match panic_message(logs) {
            Some(panic) => format!("the module panicked: {panic}"),
            None => format!("the module trapped: {}", self.summary),
        };
        let mut record = LogRecord::host(LOG_LEVEL_ERROR, self.detail);
        record.function = function;
        logs.push(record);
        message
    }
}

impl Runtime {
    /// Loads `wasm`, validates its definition and keeps the first instance
    /// for the first call.
    pub fn host(&self, wasm: &[u8], options: CallOptions) -> Result<HostedModule, HostError> {
        let (loaded, store, instance) = self.load_with_instance(wasm)?;
        let def = ModuleDef::from_bsatn(&loaded.description)?;
        let mut table_names = HashMap::new();
        for table in &def.tables {
            table_names.insert(table.canonical_name.clone(), table.def.name.clone());
            table_names.insert(table.source_name.clone(), table.def.name.clone());
        }
        let schedule_at_cols = def
            .schedules
            .iter()
            .filter_map(|schedule| {
                let table = def.tables.get(schedule.table)?;
                Some((table.def.name.clone(), schedule.schedule_at_col))
            })
            .collect();
        let pre = self.instance_pre(&loaded.module)?;
        let hosted = HostedModule {
            schedule_at_cols: Arc::new(schedule_at_cols),
            runtime: self.clone(),
            pre,
            def: Arc::new(def),
            options,
            table_names: Arc::new(table_names),
            idle: Mutex::new(Vec::new()),
            load_logs: loaded.logs,
            description: Arc::from(loaded.description),
        };
        let first = hosted.adopt(store, instance)?;
        hosted.put_back(first);
        Ok(hosted)
    }
}

impl HostedModule {
    pub fn def(&self) -> &ModuleDef {
        &self.def
    }

    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The BSATN `RawModuleDef` exactly as `__describe_module__` wrote it.
    pub fn raw_description(&self) -> &[u8] {
        &self.description
    }

    /// What the module logged while it was loaded and described.
    pub fn load_logs(&self) -> &[LogRecord] {
        &self.load_logs
    }

    /// A fresh instance: instantiated, preinits run, described (the
    /// description is discarded: the first one is the module's).
    pub fn instantiate(&self) -> Result<ModuleInstance, LoadError> {
        let (mut store, instance) = self.runtime.instantiate_pre(&self.pre)?;
        super::describe(&mut store, &instance)?;
        store.data_mut().logs.clear();
        self.adopt(store, instance)
    }

    fn adopt(
        &self,
        mut store: Store<HostEnv>,
        instance: Instance,
    ) -> Result<ModuleInstance, LoadError> {
        let env = store.data_mut();
        env.table_names = self.table_names.clone();
        env.schedule_at_cols = self.schedule_at_cols.clone();
        env.database_identity = self.options.database_identity;
        env.host_tables = SharedHostTables(self.options.host_tables.clone());
        env.limits = StoreLimitsBuilder::new()
            .memory_size(self.options.memory_bytes_max)
            .build();
        env.end_call();
        env.logs.clear();
        let call_reducer = instance
            .get_typed_func(&mut store, "__call_reducer__")
            .map_err(|e| LoadError::BadExport {
                name: "__call_reducer__".into(),
                reason: format!("{e:#}"),
            })?;
        Ok(ModuleInstance {
            store,
            instance,
            call_reducer,
        })
    }

    /// Creates one more instance and keeps it idle, so a later call does not
    /// pay for instantiation and description.
    pub fn prewarm(&self) -> Result<(), LoadError> {
        let instance = self.instantiate()?;
        self.put_back(instance);
        Ok(())
    }

    /// Instances idle between calls.
    pub fn idle_instances(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    pub(crate) fn take_instance(&self) -> Result<ModuleInstance, LoadError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .pop();
        match idle {
            Some(instance) => Ok(instance),
            None => self.instantiate(),
        }
    }

    pub(crate) fn put_back(&self, instance: ModuleInstance) {
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(instance);
    }

    /// Resolves a reducer reference to its id.
    pub fn reducer_id(&self, reducer: ReducerRef<'_>) -> Option<usize> {
        match reducer {
            ReducerRef::Id(id) => (id < self.def.reducers.len()).then_some(id),
            ReducerRef::Name(name) => self.def.reducer(name).map(|(id, _)| id),
        }
    }

    /// Runs one reducer in its own transaction: type-checks `args` (BSATN of
    /// the parameter product), opens a transaction on `db`, calls the guest,
    /// commits iff it returned 0 and rolls back otherwise.
    pub fn call_reducer<'a>(
        &self,
        db: &Database,
        reducer: impl Into<ReducerRef<'a>>,
        caller: CallerContext,
        args: &[u8],
    ) -> CallResult {
        let reducer = reducer.into();
        let Some(id) = self.reducer_id(reducer) else {
            return CallResult::bare(ReducerOutcome::NoSuchReducer {
                reducer: format!("{reducer:?}"),
            });
        };
        if let Err(outcome) = self.check_args(id, args) {
            return CallResult::bare(outcome);
        }
        // The instance is ready before the write lock is taken, so creating
        // one never delays other writers.
        let instance = match self.take_instance() {
            Ok(instance) => instance,
            Err(e) => return CallResult::bare(instance_error(e)),
        };
        let tx = match db.begin() {
            Ok(tx) => tx,
            Err(e) => {
                self.put_back(instance);
                return CallResult::bare(ReducerOutcome::Internal {
                    message: format!("cannot open a transaction: {e}"),
                });
            }
        };
        self.run_and_finish(instance, tx, id, caller, args)
    }

    /// Creates the module's database in `db`: every table, then the `init`
    /// reducer (if any) with `owner` as sender and no connection, all in one
    /// transaction. Unless the outcome is `Committed`, nothing was created.
    pub fn create_database(
        &self,
        db: &Database,
        owner: Identity,
        timestamp_micros: i64,
    ) -> CallResult {
        self.create_database_with(db, owner, timestamp_micros, &[])
    }

    /// [`HostedModule::create_database`], also creating the host's own
    /// `system_tables` first, in the same transaction.
    pub fn create_database_with(
        &self,
        db: &Database,
        owner: Identity,
        timestamp_micros: i64,
        system_tables: &[storage::TableDef],
    ) -> CallResult {
        let instance = match self.take_instance() {
            Ok(instance) => instance,
            Err(e) => return CallResult::bare(instance_error(e)),
        };
        let mut tx = match db.begin() {
            Ok(tx) => tx,
            Err(e) => {
                self.put_back(instance);
                return CallResult::bare(ReducerOutcome::Internal {
                    message: format!("cannot open a transaction: {e}"),
                });
            }
        };
        for table in system_tables {
            if let Err(e) = tx.create_table(table.clone()) {
                tx.rollback();
                self.put_back(instance);
                return CallResult::bare(ReducerOutcome::Internal {
                    message: format!("creating system table `{}`: {e}", table.name),
                });
            }
        }
        if let Err(e) = self.options.host_tables.record_module(&mut tx) {
            tx.rollback();
            self.put_back(instance);
            return CallResult::bare(ReducerOutcome::Internal {
                message: format!("recording the module: {e}"),
            });
        }
        self.create_in(instance, tx, owner, timestamp_micros)
    }

    /// The second half of [`HostedModule::create_database`], in a transaction
    /// the caller opened (and may already have used, e.g. to drop the tables
    /// of a cleared database): creates every table, runs `init`, and commits
    /// iff it succeeds; otherwise rolls everything in `tx` back.
    pub(crate) fn create_in(
        &self,
        instance: ModuleInstance,
        mut tx: MutTx,
        owner: Identity,
        timestamp_micros: i64,
    ) -> CallResult {
        for table in &self.def.tables {
            if let Err(e) = tx.create_table(table.def.clone()) {
                tx.rollback();
                self.put_back(instance);
                return CallResult::bare(ReducerOutcome::Internal {
                    message: format!("creating table `{}`: {e}", table.canonical_name),
                });
            }
        }
        let caller = CallerContext {
            sender: owner,
            connection_id: ConnectionId::ZERO,
            timestamp_micros,
        };
        match self.def.lifecycle.init {
            Some(init) => self.run_and_finish(instance, tx, init, caller, &[]),
            None => {
                self.put_back(instance);
                CallResult::bare(commit(tx))
            }
        }
    }

    /// Checks `args` against the size cap, then decodes them at reducer
    /// `id`'s parameter product, exactly: what every reducer call does
    /// before the guest runs (public for the fuzz targets). `id` must be a
    /// reducer of this module.
    pub fn check_args(&self, id: usize, args: &[u8]) -> Result<(), ReducerOutcome> {
        if args.len() > self.options.args_bytes_max {
            return Err(ReducerOutcome::ArgumentsTooLarge {
                bytes: args.len(),
                limit: self.options.args_bytes_max,
            });
        }
        let params = &self.def.reducers[id].params;
        let name = &self.def.reducers[id].source_name;
        let mut reader = args;
        if let Err(e) = ProductValue::decode(params, &mut reader) {
            return Err(ReducerOutcome::BadArguments {
                message: format!("arguments of `{name}` do not decode: {e}"),
            });
        }
        if !reader.is_empty() {
            return Err(ReducerOutcome::BadArguments {
                message: format!("arguments of `{name}` have {} trailing bytes", reader.len()),
            });
        }
        Ok(())
    }

    /// Decodes `args` at procedure `id`'s parameter product, exactly: what
    /// every procedure call does before the guest runs (public for the fuzz
    /// targets). `id` must be a procedure of this module.
    pub fn check_procedure_args(&self, id: usize, args: &[u8]) -> Result<(), String> {
        procedure::check_product(&self.def.procedures[id].params, args)
    }

    /// Runs reducer `id` inside `tx`, a transaction the caller opened and
    /// may already have written to (the connect hook records the client
    /// first). Commits iff the reducer returns 0; otherwise everything in
    /// `tx` is rolled back.
    pub fn call_reducer_in(
        &self,
        tx: MutTx,
        id: usize,
        caller: CallerContext,
        args: &[u8],
    ) -> CallResult {
        if let Err(outcome) = self.check_args(id, args) {
            tx.rollback();
            return CallResult::bare(outcome);
        }
        let instance = match self.take_instance() {
            Ok(instance) => instance,
            Err(e) => {
                tx.rollback();
                return CallResult::bare(instance_error(e));
            }
        };
        self.run_and_finish(instance, tx, id, caller, args)
    }

    /// Calls reducer `id` inside `tx` on a healthy instance; commits on 0,
    /// rolls back otherwise; discards the instance unless it returned.
    fn run_and_finish(
        &self,
        mut instance: ModuleInstance,
        tx: MutTx,
        id: usize,
        caller: CallerContext,
        args: &[u8],
    ) -> CallResult {
        instance
            .store
            .data_mut()
            .function
            .clone_from(&self.def.reducers[id].source_name);
        let (ended, tx, error_message, mut logs, fuel_used, immediate) =
            instance.invoke(&self.options, tx, id, caller, args);
        instance.store.data_mut().function.clear();
        // Only an instance that returned 0 or 1 is known to be healthy.
        let healthy = matches!(ended, Ended::Returned(0 | 1));
        let outcome = match (ended, tx) {
            (Ended::Returned(0), Some(tx)) => commit(tx),
            (ended, tx) => {
                if let Some(tx) = tx {
                    tx.rollback();
                }
                match ended {
                    Ended::Returned(0) => ReducerOutcome::Internal {
                        message: "the transaction was lost during the call".into(),
                    },
                    Ended::Returned(1) => ReducerOutcome::Failed {
                        message: error_message,
                    },
                    Ended::Returned(code) => ReducerOutcome::Internal {
                        message: format!("the reducer returned the unexpected code {code}"),
                    },
                    Ended::Trapped(trap) => ReducerOutcome::Trapped {
                        message: trap.report(&mut logs),
                    },
                    Ended::OutOfFuel => ReducerOutcome::OutOfFuel,
                    Ended::Timeout => ReducerOutcome::Timeout,
                }
            }
        };
        if healthy {
            self.put_back(instance);
        } else {
            drop(instance);
        }
        CallResult {
            outcome,
            logs,
            fuel_used,
            immediate,
        }
    }
}

impl ModuleInstance {
    /// Runs `__call_reducer__` with `tx` in the store; returns how it ended,
    /// the transaction back, the error sink's text, the logs and fuel used.
    fn invoke(
        &mut self,
        options: &CallOptions,
        tx: MutTx,
        id: usize,
        caller: CallerContext,
        args: &[u8],
    ) -> (
        Ended,
        Option<MutTx>,
        String,
        Vec<LogRecord>,
        u64,
        Vec<ImmediateCall>,
    ) {
        let env = self.store.data_mut();
        env.end_call();
        env.logs.clear();
        env.logs_dropped = 0;
        env.tx = Some(tx);
        env.call_timestamp_micros = caller.timestamp_micros;
        // Empty arguments are passed as the invalid source 0 (§4.0).
        let args_source = if args.is_empty() {
            0
        } else {
            env.new_source(args.to_vec())
        };
        let error_sink = env.new_sink();

        let word = |bytes: &[u8], i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            u64::from_le_bytes(w) as i64
        };
        let s = &caller.sender.to_byte_array();
        let c = &caller.connection_id.as_le_byte_array();
        let params = (
            id as i32,
            word(s, 0),
            word(s, 1),
            word(s, 2),
            word(s, 3),
            word(c, 0),
            word(c, 1),
            caller.timestamp_micros,
            args_source as i32,
            error_sink as i32,
        );

        let fuel_set = self.store.set_fuel(options.fuel_per_call).is_ok();
        self.store
            .set_epoch_deadline(super::ticks(options.deadline_per_call));
        let result = self.call_reducer.call(&mut self.store, params);
        let fuel_used = if fuel_set {
            options
                .fuel_per_call
                .saturating_sub(self.store.get_fuel().unwrap_or(0))
        } else {
            0
        };

        let ended = match result {
            Ok(code) => Ended::Returned(code),
            Err(error) => Ended::from_error(error),
        };
        let env = self.store.data_mut();
        let tx = env.tx.take();
        let message = String::from_utf8_lossy(&env.take_sink(error_sink)).into_owned();
        let mut logs = std::mem::take(&mut env.logs);
        if env.logs_dropped > 0 {
            let mut notice = LogRecord::host(
                1,
                format!(
                    "{} further log records of this call were dropped (limit {})",
                    env.logs_dropped,
                    super::host::LOG_RECORDS_PER_CALL_MAX
                ),
            );
            notice.function.clone_from(&env.function);
            logs.push(notice);
            env.logs_dropped = 0;
        }
        let immediate = std::mem::take(&mut env.immediate);
        env.end_call();
        (ended, tx, message, logs, fuel_used, immediate)
    }
}

impl CallResult {
    pub(crate) fn bare(outcome: ReducerOutcome) -> CallResult {
        CallResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 0,
            immediate: Vec::new(),
        }
    }
}

pub(crate) fn instance_error(error: LoadError) -> ReducerOutcome {
    ReducerOutcome::Internal {
        message: format!("cannot create an instance: {error}"),
    }
}

fn commit(tx: MutTx) -> ReducerOutcome {
    match tx.commit() {
        Ok(delta) => ReducerOutcome::Committed { delta },
        Err(e) => ReducerOutcome::Internal {
            message: format!("commit failed: {e}"),
        },
    }
}

/// The message of the last panic record, if the module panicked.
fn panic_message(logs: &[LogRecord]) -> Option<&str> {
    logs.iter()
        .rev()
        .find(|record| record.level == LOG_LEVEL_PANIC)
        .map(|record| record.message.as_str())
}
