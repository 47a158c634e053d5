// Protects the whole datastore ABI against a real 2.10.1 module: every
// `check_*` reducer of abi-coverage verifies its own results (write-back of
// generated columns, set semantics, unique violations as errnos, row
// iterators across chunks and with BUFFER_TOO_SMALL, point and range scans
// and deletes on B-tree, hash and direct indexes, value ordering, caller and
// argument passing) and must commit; every `must_fail_*` reducer must not;
// failed and panicking reducers roll their writes back.

use orrery_module::{CallerContext, HostedModule, ReducerOutcome};
use spacetimedb_lib::{ConnectionId, Identity, Timestamp};
use spacetimedb_sats::AlgebraicValue as V;
use storage::Database;

use crate::harness::{
    args, assert_committed, assert_failed, call, enc, hosted, options, rows, DATABASE, NOW,
};

/// A client identity distinct from the owner and the database.
const CLIENT: Identity = Identity::from_byte_array({
    let mut bytes = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        bytes[i] = i as u8 + 1;
        i += 1;
    }
    bytes
});

/// The arguments a `check_*` reducer needs, by name; `None` for the ones
/// without parameters.
fn check_args(name: &str, db: &Database) -> Option<Vec<u8>> {
    Some(match name {
        "check_many_rows" => enc(&3_000u32),
        "check_big_row" => enc(&100_000u32),
        "check_caller" => caller_args(Some(7), true),
        "check_args" => args_of_every_type(),
        "check_item_codes" => {
            let codes: Vec<String> = rows(db, "item")
                .iter()
                .map(|row| match &row[1] {
                    V::String(code) => code.to_string(),
                    other => panic!("code is {other:?}"),
                })
                .collect();
            enc(&codes)
        }
        "check_run_count" => args(&[enc("never"), enc(&0u64)]),
        _ => return None,
    })
}

/// `check_caller(expected_sender, expected_connection, expected_timestamp)`.
fn caller_args(connection: Option<u128>, with_timestamp: bool) -> Vec<u8> {
    let sender = CLIENT;
    let connection = connection.map(ConnectionId::from_u128);
    let timestamp = with_timestamp.then(|| Timestamp::from_micros_since_unix_epoch(NOW));
    args(&[enc(&sender), enc(&connection), enc(&timestamp)])
}

/// `check_args(250, i128::MIN + 1, "héllo", [1, 2, 3], None, Point { -3, 4 },
/// Shape::Rect(Point { 1, 2 }), true)`.
fn args_of_every_type() -> Vec<u8> {
    args(&[
        enc(&250u8),
        enc(&(i128::MIN + 1)),
        enc("héllo"),
        enc(&vec![1u32, 2, 3]),
        enc(&None::<String>),
        // Point { x: -3, y: 4 }: a product is its fields back to back.
        enc(&-3i32),
        enc(&4i32),
        // Shape::Rect is variant 1 of Circle | Rect | Empty.
        vec![1],
        enc(&1i32),
        enc(&2i32),
        enc(&true),
    ])
}

fn client(connection: Option<u128>) -> CallerContext {
    CallerContext {
        sender: CLIENT,
        connection_id: ConnectionId::from_u128(connection.unwrap_or(0)),
        timestamp_micros: NOW,
    }
}

fn call_as_client(
    module: &HostedModule,
    db: &Database,
    name: &str,
    args: &[u8],
    connection: Option<u128>,
) -> orrery_module::CallResult {
    module.call_reducer(db, name, client(connection), args)
}

#[test]
fn every_check_reducer_commits_and_must_fail_reducers_do_not() {
    let (module, db) = hosted("abi-coverage", options());
    let names: Vec<(String, bool)> = module
        .def()
        .reducers
        .iter()
        .map(|r| (r.source_name.clone(), r.params.elements.is_empty()))
        .collect();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, no_params) in &names {
        if !name.starts_with("check_") {
            continue;
        }
        let args = match check_args(name, &db) {
            Some(args) => args,
            None if *no_params => Vec::new(),
            None => panic!("{name} takes arguments the test does not know; add them"),
        };
        let result = call_as_client(&module, &db, name, &args, Some(7));
        checked += 1;
        if !result.outcome.is_committed() {
            failures.push(format!(
                "{name}: {:?} (logs: {:?})",
                result.outcome,
                result.logs.iter().map(|r| &r.message).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failed checks:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 25, "only {checked} check reducers found");

    let mut must_fail = 0;
    for (name, no_params) in &names {
        if !name.starts_with("must_fail_") {
            continue;
        }
        assert!(no_params, "{name} takes arguments");
        let before = rows(&db, "item");
        let result = call(&module, &db, name, &[]);
        must_fail += 1;
        assert!(
            matches!(result.outcome, ReducerOutcome::Trapped { .. }),
            "{name} must trap (the bindings panic on the errno): {:?}",
            result.outcome
        );
        assert_eq!(rows(&db, "item"), before, "{name} left writes behind");
        // A fresh instance serves the next call.
        assert_committed(&call(&module, &db, "check_clear", &[]), "after must_fail");
    }
    assert!(must_fail >= 2, "only {must_fail} must_fail reducers found");
}

// Protects the caller context (§4.0, §8.8): sender split into LE words,
// connection id (zero = none), timestamp, the database identity, and
// `get_jwt` answering "no JWT".
#[test]
fn caller_connection_and_timestamp_reach_the_module() {
    let (module, db) = hosted("abi-coverage", options());
    for connection in [None, Some(1), Some(u128::MAX - 5)] {
        let result = call_as_client(
            &module,
            &db,
            "check_caller",
            &caller_args(connection, true),
            connection,
        );
        assert_committed(&result, &format!("check_caller({connection:?})"));
    }
    // A wrong expectation fails in the guest, proving it compares.
    let wrong = call_as_client(
        &module,
        &db,
        "check_caller",
        &caller_args(Some(8), true),
        Some(7),
    );
    assert!(
        matches!(wrong.outcome, ReducerOutcome::Failed { .. }),
        "{:?}",
        wrong.outcome
    );
    assert_ne!(DATABASE, CLIENT);
}

// Protects rollback of a reducer's own writes: after `Err` and after a panic
// nothing the reducer inserted remains; the panic message reaches the
// outcome or the logs; committed writes are seen by later calls.
#[test]
fn failed_and_panicking_reducers_leave_nothing_behind() {
    let (module, db) = hosted("abi-coverage", options());
    assert_committed(
        &call(
            &module,
            &db,
            "insert_item",
            &args(&[enc("keep"), enc(&1i32)]),
        ),
        "insert_item",
    );
    assert_failed(
        &call(&module, &db, "insert_then_fail", &enc("gone")),
        "deliberate failure after inserting gone",
    );
    let panicked = call(&module, &db, "insert_then_panic", &enc("gone2"));
    match &panicked.outcome {
        ReducerOutcome::Trapped { message } => assert!(
            message.contains("deliberate panic after inserting gone2")
                || panicked
                    .logs
                    .iter()
                    .any(|r| r.message.contains("deliberate panic after inserting gone2")),
            "{message}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_committed(
        &call(
            &module,
            &db,
            "check_item_codes",
            &enc(&vec!["keep".to_string()]),
        ),
        "check_item_codes([keep])",
    );
    let codes: Vec<_> = rows(&db, "item").iter().map(|r| r[1].clone()).collect();
    assert_eq!(codes, vec![V::String("keep".into())]);
    assert_committed(&call(&module, &db, "add_note", &enc("n")), "add_note");
    assert_eq!(rows(&db, "note").len(), 1);
}

// Protects the logging imports: every level arrives with its text, and the
// console timer produces an info record.
#[test]
fn logging_and_timers_are_recorded() {
    let (module, db) = hosted("abi-coverage", options());
    let result = call(&module, &db, "check_logging", &[]);
    assert_committed(&result, "check_logging");
    assert!(
        result.logs.iter().all(|r| r.function == "check_logging"),
        "records name the reducer: {:#?}",
        result.logs
    );
    assert!(result.logs.iter().all(|r| r.timestamp_micros > 0));
    let levels: Vec<u8> = result.logs.iter().map(|r| r.level).collect();
    for level in 0..=4u8 {
        assert!(levels.contains(&level), "level {level} missing: {levels:?}");
    }
    assert!(
        result
            .logs
            .iter()
            .any(|r| r.message.contains("abi-coverage stopwatch")),
        "{:#?}",
        result.logs
    );
    assert!(result
        .logs
        .iter()
        .any(|r| r.message == "multi\nline\nmessage with unicode: λ ✓"));
}

// Protects SCHEDULE_AT_DELAY_TOO_LONG (module-abi §8.6): schedule rows due
// within ~2.18 years are accepted (one-shot and interval); farther ones make
// the insert fail, which the bindings turn into a panic, rolling back.
#[test]
fn schedule_rows_too_far_ahead_are_refused() {
    let (module, db) = hosted("abi-coverage", options());
    const YEAR_MICROS: i64 = 365 * 24 * 3_600 * 1_000_000;
    let soon = call(
        &module,
        &db,
        "schedule_once",
        &args(&[enc(&1_000_000i64), enc("soon")]),
    );
    assert_committed(&soon, "schedule_once(1 s)");
    let repeating = call(
        &module,
        &db,
        "schedule_repeating",
        &args(&[enc(&(2 * YEAR_MICROS)), enc("every two years")]),
    );
    assert_committed(&repeating, "schedule_repeating(2 years)");
    assert_eq!(rows(&db, "tick_schedule").len(), 2);

    for (reducer, delay) in [
        ("schedule_once", 10 * YEAR_MICROS),
        ("schedule_repeating", -10 * YEAR_MICROS),
    ] {
        let far = call(&module, &db, reducer, &args(&[enc(&delay), enc("far")]));
        assert!(
            matches!(far.outcome, ReducerOutcome::Trapped { .. }),
            "{reducer}({delay}): {:?}",
            far.outcome
        );
    }
    assert_eq!(rows(&db, "tick_schedule").len(), 2);
    assert_committed(&call(&module, &db, "cancel_schedules", &[]), "cancel");
    assert!(rows(&db, "tick_schedule").is_empty());
}
