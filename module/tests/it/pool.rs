// Protects the pooling instance allocator: a full pool makes instantiation
// fail with a clear error (never a panic) and frees up again when instances
// are dropped; the pool's memory size caps linear memory even when a call's
// own budget is larger, so a memory bomb fails only its own call.

use orrery_module::{CallOptions, LoadError, ReducerOutcome, Runtime, RuntimeConfig};
use storage::{Database, DbOptions};

use crate::harness::{assert_committed, call, options, rows, NOW, OWNER};
use crate::modules::module_bytes;

fn small_pool(instances: u32) -> Runtime {
    Runtime::with_config(RuntimeConfig {
        pooled_instances: instances,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

#[test]
fn full_pool_is_a_clear_error_and_frees_up_again() {
    let runtime = small_pool(2);
    let wasm = module_bytes("bank");
    let module = runtime.host(&wasm, options()).unwrap();
    module.prewarm().unwrap();
    assert_eq!(module.idle_instances(), 2);
    let error = module.prewarm().unwrap_err();
    assert!(matches!(error, LoadError::PoolExhausted(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("pool is full"), "{message}");
    assert!(message.contains("limit of 2"), "{message}");

    // Hosting a second module needs a slot too.
    let Err(error) = runtime.host(&module_bytes("chat"), options()) else {
        panic!("hosting with a full pool succeeded");
    };
    assert!(error.to_string().contains("pool is full"), "{error}");

    drop(module);
    let module = runtime.host(&wasm, options()).unwrap();
    let db = Database::in_memory(DbOptions::default());
    assert_committed(&module.create_database(&db, OWNER, NOW), "create_database");
}

#[test]
fn pool_memory_size_caps_growth_beyond_the_call_budget() {
    let runtime = Runtime::with_config(RuntimeConfig {
        memory_bytes_max: 64 * 1024 * 1024,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let generous = CallOptions {
        fuel_per_call: 1_000_000_000,
        memory_bytes_max: 1024 * 1024 * 1024,
        ..options()
    };
    let module = runtime.host(&module_bytes("hostile"), generous).unwrap();
    let db = Database::in_memory(DbOptions::default());
    assert_committed(&module.create_database(&db, OWNER, NOW), "create_database");
    let grown = call(&module, &db, "grow_memory", &[]);
    assert!(
        matches!(
            grown.outcome,
            ReducerOutcome::Trapped { .. } | ReducerOutcome::OutOfFuel
        ),
        "{:?}",
        grown.outcome
    );
    // The module logs how much it holds after each MiB: it stopped below the
    // pool's 64 MiB, far from the call's own 1 GiB budget.
    let held: Vec<u64> = grown
        .logs
        .iter()
        .filter_map(|record| record.message.strip_prefix("holding "))
        .filter_map(|rest| rest.strip_suffix(" MiB")?.parse().ok())
        .collect();
    let most = held
        .iter()
        .copied()
        .max()
        .expect("grow_memory logged its progress");
    assert!((32..64).contains(&most), "held {most} MiB");
    assert_committed(&call(&module, &db, "ok", &[]), "ok after grow_memory");
    assert_eq!(rows(&db, "marker").len(), 1);
}
