//! The WebAssembly runtime: one wasmtime `Engine` per host process, module
//! compilation and checks, and the instance lifecycle of SpacetimeDB 2.10.1
//! modules (module-abi §1).
//!
//! Owns: [`Runtime`] and [`RuntimeConfig`] (engine configuration: Cranelift,
//! fuel metering, epoch interruption, the pooling instance allocator sized
//! from `orrery_api::limits`), [`Runtime::compile`] (through the compile
//! cache of `orrery_module::cache`), [`Runtime::load`] (compile, check imports and
//! exports, instantiate, run `__preinit__*` in byte order, `__setup__`,
//! describe once per instance), and [`LoadError`].
//! Does not own: the meaning of the module definition (`orrery_moduledef`),
//! storage (the `storage` crate), or the cache and artifact trust rule
//! themselves (`orrery_module::cache`).
//!
//! Reducer calls in a transaction live in `orrery_module::instance`
//! ([`Runtime::host`] → [`HostedModule`] → [`HostedModule::call_reducer`] /
//! [`HostedModule::create_database`] → [`CallResult`]); what the imports do,
//! including every datastore import against the call's `storage::MutTx`,
//! lives in `orrery_module::host`. Procedures ([`HostedModule::call_procedure`],
//! with their own transactions and outbound HTTP under an [`HttpPolicy`]),
//! HTTP handlers ([`HostedModule::call_http_handler`]) and views
//! ([`HostedModule::call_view`]) live beside reducers in
//! `orrery_module::instance`.

mod abi;
mod cache;
mod host;
mod host_tables;
mod instance;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orrery_api::limits;
use wasmtime::{
    Config, Engine, Instance, InstanceAllocationStrategy, InstancePre, Linker, Module, OptLevel,
    PoolConcurrencyLimitError, PoolingAllocationConfig, Store, TypedFunc,
};

pub use abi::AbiVersion;
use cache::CompileCache;
pub use cache::{module_hash, ArtifactDirError, CacheStats};
use host::HostEnv;
pub use host::{is_public, HttpPolicy, ImmediateCall, LogRecord, LOG_LEVEL_ERROR, LOG_LEVEL_PANIC};
pub use host_tables::{HostTables, NoHostTables};
pub(crate) use instance::instance_error;
pub use instance::{
    CallOptions, CallResult, CallerContext, HostError, HostedModule, HttpHandlerOutcome,
    HttpHandlerResult, HttpResponseParts, ModuleInstance, ProcedureOutcome, ProcedureRef,
    ProcedureResult, ReducerOutcome, ReducerRef, ViewKey, ViewOutcome, ViewReads, ViewRef,
    ViewResult, ARGS_BYTES_MAX_DEFAULT,
};

/// Wall-clock cap on instance set-up, enforced by epoch interruption.
const SETUP_WALL_CLOCK: Duration = Duration::from_millis(limits::MODULE_SETUP_MS_MAX);

/// How often the engine's epoch advances; deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a module could not be loaded. Every variant names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the module is not valid WebAssembly or failed to compile: {0}")]
    Compile(String),
    #[error("the module imports `{namespace}::{name}`, which this host does not provide")]
    UnknownImport { namespace: String, name: String },
    #[error(
        "the module needs ABI {major}.{minor}; this host implements {}.0 to {}.{}",
        abi::ABI_MAJOR,
        abi::ABI_MAJOR,
        abi::ABI_MINOR_MAX
    )]
    UnsupportedAbi { major: u32, minor: u32 },
    #[error("import `{name}` {reason}")]
    BadImport { name: String, reason: String },
    #[error("export `{name}` {reason}")]
    BadExport { name: String, reason: String },
    #[error("the module uses {feature}, which is not supported yet")]
    Unsupported { feature: String },
    #[error("instantiating the module failed: {0}")]
    Instantiate(String),
    #[error(
        "no free instance slot: {0} (the host's instance pool is full; \
         drop idle instances or raise `RuntimeConfig::pooled_instances`)"
    )]
    PoolExhausted(String),
    #[error("the module trapped in `{export}`: {message}")]
    Trap {
        export: String,
        message: String,
        logs: Vec<LogRecord>,
    },
    #[error("the module's `__setup__` failed: {0}")]
    Setup(String),
}

/// Why a [`Runtime`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the wasm engine could not be configured: {0}")]
    Engine(String),
    #[error("the epoch thread could not be started: {0}")]
    EpochThread(std::io::Error),
    #[error(transparent)]
    ArtifactDir(#[from] ArtifactDirError),
}

/// How the per-process engine is set up. [`RuntimeConfig::default`] is what
/// [`Runtime::new`] uses: pooling on, sized from `orrery_api::limits`, no
/// artifact directory.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Preallocate instances, memories and tables in a pool (fast
    /// instantiation, bounded virtual memory); `false` allocates on demand.
    pub pooling: bool,
    /// Instances (and memories, and tables) alive at once in the pool. At most
    /// [`limits::WASM_INSTANCES_POOLED_MAX`].
    pub pooled_instances: u32,
    /// Largest linear memory of any instance, in bytes; per-call budgets
    /// ([`CallOptions::memory_bytes_max`]) apply below it. At most
    /// [`limits::WASM_MEMORY_BYTES_MAX`], in whole wasm pages.
    pub memory_bytes_max: u64,
    /// Cranelift optimisation level. Part of the artifact fingerprint.
    pub opt_level: OptLevel,
    /// Bytes of compiled code the in-memory module cache keeps.
    pub module_cache_bytes: u64,
    /// Where precompiled artifacts are kept; `None` keeps none. Created (mode
    /// 0700) if missing; holds this host's artifact key, `host.key`.
    pub artifact_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            pooling: true,
            pooled_instances: limits::WASM_INSTANCES_POOLED_MAX,
            memory_bytes_max: limits::WASM_MEMORY_BYTES_MAX,
            opt_level: OptLevel::Speed,
            module_cache_bytes: limits::COMPILED_MODULES_CACHE_BYTES_DEFAULT,
            artifact_dir: None,
        }
    }
}

impl RuntimeConfig {
    /// The wasmtime configuration, with the settings above clamped to the
    /// hard limits.
    fn engine_config(&self) -> Config {
        let mut config = Config::new();
        config.strategy(wasmtime::Strategy::Cranelift);
        config.cranelift_opt_level(self.opt_level);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.memory_reservation(limits::WASM_MEMORY_RESERVATION_BYTES);
        config.memory_guard_size(limits::WASM_MEMORY_GUARD_BYTES);
        config.guard_before_linear_memory(true);
        if self.pooling {
            let instances = self.pooled_instances.min(limits::WASM_INSTANCES_POOLED_MAX);
            let mut pool = PoolingAllocationConfig::new();
            pool.total_core_instances(instances)
                .total_memories(instances)
                .total_tables(instances)
                .max_memories_per_module(1)
                .max_tables_per_module(1)
                .max_memory_size(self.memory_bytes_max() as usize)
                .table_elements(limits::WASM_TABLE_ELEMENTS_MAX as usize)
                .max_core_instance_size(limits::WASM_CORE_INSTANCE_BYTES_MAX as usize);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config
    }

    fn memory_bytes_max(&self) -> u64 {
        let bytes = self.memory_bytes_max.min(limits::WASM_MEMORY_BYTES_MAX);
        bytes - bytes % limits::WASM_PAGE_BYTES
    }

    /// Our settings that wasmtime's compatibility hash may not see.
    fn fingerprint_extra(&self) -> Vec<u8> {
        format!(
            "pooling={} instances={} memory={} opt={:?}",
            self.pooling,
            self.pooled_instances.min(limits::WASM_INSTANCES_POOLED_MAX),
            self.memory_bytes_max(),
            self.opt_level
        )
        .into_bytes()
    }
}

/// The per-process WebAssembly engine and its compile cache. Cheap to clone
/// and share: clones use the same engine, cache and counters.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    cache: Arc<CompileCache>,
    /// Every host import, defined once per runtime: building it costs more
    /// than instantiating a module with it.
    linker: Arc<Linker<HostEnv>>,
}

/// A compiled and checked module with its description bytes (BSATN `RawModuleDef`).
pub struct LoadedModule {
    pub module: Module,
    pub abi: AbiVersion,
    pub description: Vec<u8>,
    /// Log records the module wrote while being set up and described.
    pub logs: Vec<LogRecord>,
}

impl Runtime {
    /// A runtime with [`RuntimeConfig::default`].
    pub fn new() -> Result<Runtime, RuntimeError> {
        Runtime::with_config(RuntimeConfig::default())
    }

    /// Configures the engine, opens the artifact directory (creating its key
    /// on first use) and starts the thread that advances the engine's epoch.
    pub fn with_config(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&config.engine_config())
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = CompileCache::new(
            &engine,
            config.module_cache_bytes,
            config.artifact_dir.as_deref(),
            &config.fingerprint_extra(),
        )?;
        let mut linker = Linker::new(&engine);
        host::link(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                // Ends when the engine is dropped.
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(RuntimeError::EpochThread)?;
        Ok(Runtime {
            engine,
            cache: Arc::new(cache),
            linker: Arc::new(linker),
        })
    }

    /// The compiled module of `wasm`, compiled at most once per content hash
    /// ([`module_hash`]): from the in-memory cache, else from a precompiled
    /// artifact this host wrote, else compiled with Cranelift (and written
    /// as an artifact if an artifact directory is configured).
    pub fn compile(&self, wasm: &[u8]) -> Result<Module, LoadError> {
        self.cache.get_or_compile(&self.engine, wasm)
    }

    /// Compiles `wasm` with Cranelift, bypassing both caches (for
    /// benchmarks: the cost of a cold compile). Counts in
    /// [`CacheStats::compiles`].
    pub fn compile_uncached(&self, wasm: &[u8]) -> Result<Module, LoadError> {
        self.cache
            .compile_uncached(&self.engine, wasm)
            .map_err(LoadError::Compile)
    }

    /// Loads the artifact of the module with content hash `hash` from the
    /// artifact directory, bypassing the in-memory cache (for benchmarks: the
    /// cost of a warm start). `None` if no artifact directory is configured,
    /// there is no artifact, or it fails verification (then counted in
    /// [`CacheStats::artifact_rejects`]). A hit counts in
    /// [`CacheStats::artifact_hits`].
    pub fn load_artifact(&self, hash: &[u8; 32]) -> Option<Module> {
        self.cache.load_artifact(&self.engine, hash)
    }

    /// The file the artifact of `hash` is (or would be) kept in, if an
    /// artifact directory is configured.
    pub fn artifact_path(&self, hash: &[u8; 32]) -> Option<PathBuf> {
        self.cache.artifact_path(hash)
    }

    /// Which paths compiles took so far (shared by all clones).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `wasm`, checks its imports and exports, instantiates it, runs
    /// its set-up exports in the prescribed order and returns its description.
    pub fn load(&self, wasm: &[u8]) -> Result<LoadedModule, LoadError> {
        self.load_with_instance(wasm).map(|(loaded, _, _)| loaded)
    }

    /// [`Runtime::load`], also returning the described instance.
    fn load_with_instance(
        &self,
        wasm: &[u8],
    ) -> Result<(LoadedModule, Store<HostEnv>, Instance), LoadError> {
        let module = self.compile(wasm)?;
        let abi = abi::check(&module)?;
        let (mut store, instance) = self.instantiate(&module)?;
        let description = describe(&mut store, &instance)?;
        let logs = std::mem::take(&mut store.data_mut().logs);
        Ok((
            LoadedModule {
                module,
                abi,
                description,
                logs,
            },
            store,
            instance,
        ))
    }

    fn instantiate(&self, module: &Module) -> Result<(Store<HostEnv>, Instance), LoadError> {
        let pre = self.instance_pre(module)?;
        self.instantiate_pre(&pre)
    }

    /// `module` with its imports resolved against the host's linker, ready
    /// to instantiate many times.
    fn instance_pre(&self, module: &Module) -> Result<InstancePre<HostEnv>, LoadError> {
        self.linker
            .instantiate_pre(module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))
    }

    /// A new store with the set-up budgets and an instance of `pre` in it,
    /// its memory bound for the host imports.
    fn instantiate_pre(
        &self,
        pre: &InstancePre<HostEnv>,
    ) -> Result<(Store<HostEnv>, Instance), LoadError> {
        let mut store = Store::new(&self.engine, HostEnv::default());
        store.limiter(|env| &mut env.limits);
        store
            .set_fuel(limits::MODULE_SETUP_FUEL_MAX)
            .expect("fuel is enabled in the engine config");
        store.set_epoch_deadline(ticks(SETUP_WALL_CLOCK));
        let instance = pre.instantiate(&mut store).map_err(|e| match e
            .downcast_ref::<PoolConcurrencyLimitError>()
        {
            Some(full) => LoadError::PoolExhausted(full.to_string()),
            None => LoadError::Instantiate(format!("{e:#}")),
        })?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .expect("checked by abi::check");
        store.data_mut().memory = Some(memory);
        Ok((store, instance))
    }
}

fn ticks(duration: Duration) -> u64 {
    (duration.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Runs `__preinit__*` in ascending byte order of their names, `__setup__` if
/// present, then `__describe_module__` once; returns the description bytes.
fn describe(store: &mut Store<HostEnv>, instance: &Instance) -> Result<Vec<u8>, LoadError> {
    let mut preinits: Vec<String> = instance
        .exports(&mut *store)
        .map(|export| export.name().to_owned())
        .filter(|name| name.starts_with("__preinit__"))
        .collect();
    preinits.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in preinits {
        let func: TypedFunc<(), ()> = instance
            .get_typed_func(&mut *store, &name)
            .expect("checked by abi::check");
        func.call(&mut *store, ())
            .map_err(|e| trap(store, &name, e))?;
    }
    if let Ok(setup) = instance.get_typed_func::<i32, i32>(&mut *store, "__setup__") {
        let sink = store.data_mut().new_sink();
        let code = setup
            .call(&mut *store, sink as i32)
            .map_err(|e| trap(store, "__setup__", e))?;
        let message = store.data_mut().take_sink(sink);
        if code != 0 {
            return Err(LoadError::Setup(
                String::from_utf8_lossy(&message).into_owned(),
            ));
        }
    }
    let describe: TypedFunc<i32, ()> = instance
        .get_typed_func(&mut *store, "__describe_module__")
        .expect("checked by abi::check");
    let sink = store.data_mut().new_sink();
    describe
        .call(&mut *store, sink as i32)
        .map_err(|e| trap(store, "__describe_module__", e))?;
    Ok(store.data_mut().take_sink(sink))
}

fn trap(store: &mut Store<HostEnv>, export: &str, error: wasmtime::Error) -> LoadError {
    LoadError::Trap {
        export: export.to_owned(),
        message: format!("{error:#}"),
        logs: std::mem::take(&mut store.data_mut().logs),
    }
}
