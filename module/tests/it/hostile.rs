// Protects the host from misbehaving modules (module-abi §1 step 9, §8.1,
// §8.9): an endless loop is stopped by fuel or the deadline, a panic, memory
// exhaustion and a stack overflow trap the call without hurting the host, a
// log flood is bounded, a 1 MiB argument works; after each, a fresh
// instance serves the next call and `ok` still commits.

use std::time::{Duration, Instant};

use orrery_module::{CallOptions, HostedModule, ReducerOutcome, LOG_LEVEL_PANIC};
use storage::Database;

use crate::harness::{assert_committed, call, enc, hosted, options, rows};

fn hostile_options() -> CallOptions {
    CallOptions {
        fuel_per_call: 1_000_000_000,
        deadline_per_call: Duration::from_secs(20),
        memory_bytes_max: 64 * 1024 * 1024,
        ..options()
    }
}

/// `ok` commits and adds one marker row, on a fresh instance if the
/// previous call poisoned its own.
fn assert_ok_still_works(module: &HostedModule, db: &Database, after: &str) {
    let before = rows(db, "marker").len();
    assert!(module.idle_instances() <= 1);
    assert_committed(&call(module, db, "ok", &[]), &format!("ok after {after}"));
    assert_eq!(rows(db, "marker").len(), before + 1);
}

#[test]
fn spin_runs_out_of_fuel_and_the_module_recovers() {
    let (module, db) = hosted("hostile", hostile_options());
    let started = Instant::now();
    let spun = call(&module, &db, "spin", &[]);
    assert!(
        matches!(
            spun.outcome,
            ReducerOutcome::OutOfFuel | ReducerOutcome::Timeout
        ),
        "{:?}",
        spun.outcome
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        module.idle_instances(),
        0,
        "the spinning instance was discarded"
    );
    assert_ok_still_works(&module, &db, "spin");
    assert_eq!(module.idle_instances(), 1, "the healthy instance is kept");
}

// Protects the wall-clock deadline separately from fuel.
#[test]
fn spin_hits_the_deadline_when_fuel_is_plentiful() {
    let (module, db) = hosted(
        "hostile",
        CallOptions {
            fuel_per_call: u64::MAX,
            deadline_per_call: Duration::from_millis(300),
            ..hostile_options()
        },
    );
    let started = Instant::now();
    let spun = call(&module, &db, "spin", &[]);
    assert!(
        matches!(spun.outcome, ReducerOutcome::Timeout),
        "{:?}",
        spun.outcome
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_ok_still_works(&module, &db, "spin with deadline");
}

#[test]
fn trap_reports_the_panic_message() {
    let (module, db) = hosted("hostile", hostile_options());
    let trapped = call(&module, &db, "trap", &[]);
    let ReducerOutcome::Trapped { message } = &trapped.outcome else {
        panic!("expected a trap: {:?}", trapped.outcome);
    };
    assert!(message.contains("hostile: deliberate trap"), "{message}");
    assert!(
        trapped
            .logs
            .iter()
            .any(|r| r.level == LOG_LEVEL_PANIC && r.message.contains("hostile: deliberate trap")),
        "{:#?}",
        trapped.logs
    );
    assert_ok_still_works(&module, &db, "trap");
}

#[test]
fn grow_memory_fails_within_the_memory_limit() {
    let (module, db) = hosted("hostile", hostile_options());
    let grown = call(&module, &db, "grow_memory", &[]);
    assert!(
        matches!(
            grown.outcome,
            ReducerOutcome::Trapped { .. } | ReducerOutcome::OutOfFuel
        ),
        "{:?}",
        grown.outcome
    );
    assert_ok_still_works(&module, &db, "grow_memory");
}

#[test]
fn deep_recursion_traps() {
    let (module, db) = hosted("hostile", hostile_options());
    let deep = call(&module, &db, "deep_recursion", &enc(&10_000_000u64));
    assert!(
        matches!(deep.outcome, ReducerOutcome::Trapped { .. }),
        "{:?}",
        deep.outcome
    );
    assert_ok_still_works(&module, &db, "deep_recursion");
    // Shallow recursion is fine.
    let shallow = call(&module, &db, "deep_recursion", &enc(&100u64));
    assert_committed(&shallow, "deep_recursion(100)");
}

#[test]
fn log_flood_is_bounded() {
    let (module, db) = hosted("hostile", hostile_options());
    let flood = call(&module, &db, "log_flood", &enc(&30_000u64));
    assert_committed(&flood, "log_flood(30000)");
    assert!(
        flood.logs.len() <= 10_001,
        "{} records kept",
        flood.logs.len()
    );
    let last = flood.logs.last().expect("records");
    assert!(last.message.contains("dropped"), "{}", last.message);
    assert_ok_still_works(&module, &db, "log_flood");
}

#[test]
fn huge_argument_is_delivered() {
    let (module, db) = hosted("hostile", hostile_options());
    let data = vec![0xabu8; 1 << 20];
    let huge = call(&module, &db, "huge_arg", &enc(&data));
    assert_committed(&huge, "huge_arg(1 MiB)");
    assert!(
        huge.logs
            .iter()
            .any(|r| r.message == format!("huge_arg received {} bytes", 1 << 20)),
        "{:#?}",
        huge.logs
    );
    assert_ok_still_works(&module, &db, "huge_arg");
}
