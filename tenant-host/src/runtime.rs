//! The WebAssembly runtime: one wasmtime `Engine` per host process, module
//! compilation and checks, and the instance lifecycle of SpacetimeDB 2.10.1
//! modules (module-abi §1).
//!
//! Owns: [`Runtime`] (engine configuration: Cranelift, fuel metering, epoch
//! interruption), [`Runtime::load`] (compile, check imports and exports,
//! instantiate, run `__preinit__*` in byte order, `__setup__`, describe once
//! per instance), and [`LoadError`].
//! Does not own: the meaning of the module definition (`crate::moduledef`),
//! or storage (the `storage` crate).
//!
//! Reducer calls in a transaction live in `runtime::instance`
//! ([`Runtime::host`] → [`HostedModule`] → [`HostedModule::call_reducer`] /
//! [`HostedModule::create_database`] → [`CallResult`]); what the imports do,
//! including every datastore import against the call's `storage::MutTx`,
//! lives in `runtime::host`. Procedures, views and HTTP handlers are not
//! callable yet; their imports trap with a message saying so.

mod abi;
mod host;
mod instance;

use std::time::Duration;

use wasmtime::{Config, Engine, Instance, Linker, Module, Store, TypedFunc};

pub use abi::AbiVersion;
use host::HostEnv;
pub use host::{LogRecord, LOG_LEVEL_PANIC};
pub(crate) use instance::instance_error;
pub use instance::{
    CallOptions, CallResult, CallerContext, HostError, HostedModule, ModuleInstance,
    ReducerOutcome, ReducerRef,
};

/// Fuel for the set-up calls of an instance (preinit, setup, describe):
/// plenty for any real module, finite for a hostile one.
const SETUP_FUEL: u64 = 2_000_000_000;

/// Wall-clock cap on instance set-up, enforced by epoch interruption.
const SETUP_WALL_CLOCK: Duration = Duration::from_secs(10);

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
    #[error("the module trapped in `{export}`: {message}")]
    Trap {
        export: String,
        message: String,
        logs: Vec<LogRecord>,
    },
    #[error("the module's `__setup__` failed: {0}")]
    Setup(String),
}

/// The per-process WebAssembly engine. Cheap to share (`Engine` is an `Arc`).
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
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
    /// Configures the engine and starts the thread that advances its epoch.
    pub fn new() -> wasmtime::Result<Runtime> {
        let mut config = Config::new();
        config.strategy(wasmtime::Strategy::Cranelift);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
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
            })?;
        Ok(Runtime { engine })
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
        let module =
            Module::new(&self.engine, wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let abi = abi::check(&module)?;
        if module
            .imports()
            .any(|import| import.name() == "volatile_nonatomic_schedule_immediate")
        {
            return Err(LoadError::Unsupported {
                feature: "`volatile_nonatomic_schedule_immediate` (the `unstable` feature of the spacetimedb crate)".into(),
            });
        }
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
        let mut linker = Linker::new(&self.engine);
        host::link(&mut linker).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let mut store = Store::new(&self.engine, HostEnv::default());
        store.limiter(|env| &mut env.limits);
        store
            .set_fuel(SETUP_FUEL)
            .expect("fuel is enabled in the engine config");
        store.set_epoch_deadline(ticks(SETUP_WALL_CLOCK));
        let instance = linker
            .instantiate(&mut store, module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
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
