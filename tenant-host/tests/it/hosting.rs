//! The hosting layer: databases on a shared worker pool, schedule timers
//! (firing, repeating, cancelling, surviving a restart), connect and
//! disconnect hooks with the client table, `get_jwt`, private reducers, the
//! argument cap, isolation of the host's tables from modules, a misbehaving
//! database not stalling another, and databases with slow calls back to back
//! leaving a worker for a quick one.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_module::{CallOptions, CallerContext, ReducerOutcome, Runtime};
use spacetimedb_lib::{ConnectionId, Identity};
use spacetimedb_sats::AlgebraicValue as V;
use storage::{Database, DbOptions, DbStorage};
use tenant_host::hosting::{DatabaseSpec, Host, HostConfig, HostedDatabase, CLIENT_TABLE};

use crate::harness::{args, enc, options, rows, DATABASE, OWNER};
use crate::modules::module_bytes;

const ALICE: Identity = Identity::from_byte_array([0xa1; 32]);
const BOB: Identity = Identity::from_byte_array([0xb0; 32]);

fn host(workers: usize) -> Host {
    Host::new(
        Runtime::new().unwrap(),
        HostConfig {
            workers,
            ..HostConfig::default()
        },
    )
}

fn spec(name: &str, options: CallOptions) -> DatabaseSpec {
    DatabaseSpec::new(name, OWNER, options)
}

fn create(host: &Host, module: &str, storage: Database) -> HostedDatabase {
    host.create_database(spec(module, options()), storage, &module_bytes(module))
        .unwrap_or_else(|e| panic!("creating {module}: {e}"))
}

fn in_memory() -> Database {
    Database::in_memory(DbOptions::default())
}

fn on_disk(dir: &Path) -> Database {
    Database::open(DbStorage::dir(dir).unwrap(), DbOptions::default())
        .unwrap()
        .0
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn as_client(sender: Identity, connection: u128) -> CallerContext {
    CallerContext {
        sender,
        connection_id: ConnectionId::from_u128(connection),
        timestamp_micros: now(),
    }
}

fn call(
    db: &HostedDatabase,
    reducer: &str,
    caller: CallerContext,
    args: Vec<u8>,
) -> ReducerOutcome {
    db.call_reducer(reducer, caller, args).unwrap().outcome
}

/// The labels of `run_log` rows, in id order.
fn runs(db: &HostedDatabase) -> Vec<String> {
    rows(db.storage(), "run_log")
        .into_iter()
        .map(|row| match &row[1] {
            V::String(label) => label.to_string(),
            other => panic!("label is {other:?}"),
        })
        .collect()
}

fn count(labels: &[String], label: &str) -> usize {
    labels.iter().filter(|l| *l == label).count()
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        // sleep-ok: the pause of a poll with a deadline.
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_shot_schedule_fires_once_with_the_database_identity_and_is_deleted() {
    let host = host(2);
    let db = create(&host, "abi-coverage", in_memory());
    let before = now();
    let outcome = call(
        &db,
        "schedule_once",
        as_client(OWNER, 0),
        args(&[enc(&50_000i64), enc("once")]),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    eventually(Duration::from_secs(10), "the one-shot tick ran", || {
        count(&runs(&db), "once") == 1
    });
    // The row is deleted after the run, and nothing else fires for it.
    eventually(Duration::from_secs(5), "tick_schedule emptied", || {
        rows(db.storage(), "tick_schedule").is_empty()
    });
    // `schedule_once` also scheduled the procedure `scheduled_proc`, which
    // runs once on its own thread and commits its own transaction.
    eventually(
        Duration::from_secs(10),
        "the scheduled procedure ran",
        || count(&runs(&db), "scheduled_proc") == 1,
    );
    assert!(rows(db.storage(), "proc_schedule").is_empty());
    // Nothing is armed any more, and a later schedule runs (a barrier: a
    // second run of the first one would have come before it) without a
    // second run of the first.
    eventually(Duration::from_secs(10), "no timer pending", || {
        db.pending_timers() == 0
    });
    let outcome = call(
        &db,
        "schedule_once",
        as_client(OWNER, 0),
        args(&[enc(&50_000i64), enc("barrier")]),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    eventually(
        Duration::from_secs(10),
        "the barrier's tick and procedure ran",
        || {
            let labels = runs(&db);
            count(&labels, "barrier") == 1 && count(&labels, "scheduled_proc") == 2
        },
    );
    assert_eq!(count(&runs(&db), "once"), 1);
    assert_eq!(count(&runs(&db), "scheduled_proc"), 2);
    // It ran no earlier than due; `tick` itself refuses a connection id.
    let run = rows(db.storage(), "run_log")
        .into_iter()
        .find(|row| row[1] == V::String("once".into()))
        .unwrap();
    let V::Product(at) = &run[2] else {
        panic!("timestamp column is {:?}", run[2])
    };
    let V::I64(at) = at.elements[0] else { panic!() };
    assert!(
        at >= before + 50_000,
        "ran at {at}, due at {}",
        before + 50_000
    );
}

#[test]
fn repeating_schedule_runs_until_cancelled() {
    let host = host(2);
    let db = create(&host, "abi-coverage", in_memory());
    let outcome = call(
        &db,
        "schedule_repeating",
        as_client(OWNER, 0),
        args(&[enc(&20_000i64), enc("rep")]),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    eventually(Duration::from_secs(10), "three runs", || {
        count(&runs(&db), "rep") >= 3
    });
    assert_eq!(
        rows(db.storage(), "tick_schedule").len(),
        1,
        "the interval row stays"
    );
    let outcome = call(&db, "cancel_schedules", as_client(OWNER, 0), Vec::new());
    assert!(outcome.is_committed(), "{outcome:?}");
    let after_cancel = count(&runs(&db), "rep");
    // The timer is disarmed.
    eventually(
        Duration::from_secs(10),
        "the interval timer disarmed",
        || db.pending_timers() == 0,
    );
    // A barrier: a one-shot due five intervals later. Had the interval kept
    // running, its runs would have come before the barrier's.
    let outcome = call(
        &db,
        "schedule_once",
        as_client(OWNER, 0),
        args(&[enc(&100_000i64), enc("barrier")]),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    eventually(Duration::from_secs(10), "the barrier ran", || {
        count(&runs(&db), "barrier") == 1
    });
    // At most one run was already queued when the row went away.
    let settled = count(&runs(&db), "rep");
    assert!(
        settled <= after_cancel + 1,
        "{} runs after cancelling",
        settled - after_cancel
    );
}

#[test]
fn schedules_are_rearmed_when_a_database_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = host(2);
        let db = create(&host, "abi-coverage", on_disk(dir.path()));
        let outcome = call(
            &db,
            "schedule_once",
            as_client(OWNER, 0),
            args(&[enc(&4_000_000i64), enc("after-restart")]),
        );
        assert!(outcome.is_committed(), "{outcome:?}");
        assert!(db.pending_timers() >= 1);
        db.storage().flush().unwrap();
        // The host and database go away before the timer is due.
    }
    let host = host(2);
    let db = host
        .open_database(
            spec("abi-coverage", options()),
            on_disk(dir.path()),
            &module_bytes("abi-coverage"),
        )
        .unwrap();
    assert!(db.pending_timers() >= 1, "no timer re-armed on open");
    assert_eq!(count(&runs(&db), "after-restart"), 0);
    // Due 4 s after it was scheduled; the bound is for a loaded machine.
    eventually(Duration::from_secs(60), "the re-armed tick ran", || {
        count(&runs(&db), "after-restart") == 1
    });
}

#[test]
fn chat_init_arms_the_prune_schedule() {
    let host = host(1);
    let db = create(&host, "chat", in_memory());
    assert_eq!(rows(db.storage(), "prune_schedule").len(), 1);
    assert_eq!(db.pending_timers(), 1);
}

fn user_online(db: &HostedDatabase, who: Identity) -> Option<bool> {
    let identity = spacetimedb_sats::bsatn::to_vec(&who).unwrap();
    rows(db.storage(), "user").into_iter().find_map(|row| {
        let bytes = spacetimedb_sats::bsatn::to_vec(&row[0]).unwrap();
        (bytes == identity).then(|| row[2] == V::Bool(true))
    })
}

#[test]
fn connect_and_disconnect_run_the_hooks_and_keep_the_client_table() {
    let host = host(2);
    let db = create(&host, "chat", in_memory());
    let connected = db
        .client_connected(ALICE, ConnectionId::from_u128(1), None)
        .unwrap();
    assert!(connected.outcome.is_committed(), "{:?}", connected.outcome);
    assert_eq!(user_online(&db, ALICE), Some(true));
    assert_eq!(
        db.connected_clients(),
        vec![(ALICE, ConnectionId::from_u128(1))]
    );

    // The same connection id twice, and connection id 0, are refused.
    let again = db
        .client_connected(ALICE, ConnectionId::from_u128(1), None)
        .unwrap();
    assert!(
        matches!(again.outcome, ReducerOutcome::BadArguments { .. }),
        "{:?}",
        again.outcome
    );
    let zero = db.client_connected(BOB, ConnectionId::ZERO, None).unwrap();
    assert!(
        matches!(zero.outcome, ReducerOutcome::BadArguments { .. }),
        "{:?}",
        zero.outcome
    );

    let gone = db
        .client_disconnected(ALICE, ConnectionId::from_u128(1))
        .unwrap()
        .unwrap();
    assert!(gone.outcome.is_committed(), "{:?}", gone.outcome);
    assert_eq!(user_online(&db, ALICE), Some(false));
    assert!(db.connected_clients().is_empty());
    // Disconnecting an unknown connection does nothing.
    assert!(db
        .client_disconnected(ALICE, ConnectionId::from_u128(1))
        .unwrap()
        .is_none());
}

#[test]
fn a_connect_hook_error_refuses_the_client_and_records_nothing() {
    let host = host(2);
    let db = create(&host, "chat", in_memory());
    let named = call(&db, "set_name", as_client(BOB, 0), enc("banned"));
    assert!(named.is_committed(), "{named:?}");
    let refused = db
        .client_connected(BOB, ConnectionId::from_u128(9), None)
        .unwrap();
    match &refused.outcome {
        ReducerOutcome::Failed { message } => assert!(message.contains("is banned"), "{message}"),
        other => panic!("expected the hook's error, got {other:?}"),
    }
    assert!(db.connected_clients().is_empty());
    assert_eq!(user_online(&db, BOB), Some(false));
}

#[test]
fn clients_left_connected_by_a_crash_are_disconnected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = host(1);
        let db = create(&host, "chat", on_disk(dir.path()));
        let connected = db
            .client_connected(ALICE, ConnectionId::from_u128(5), None)
            .unwrap();
        assert!(connected.outcome.is_committed());
        db.storage().flush().unwrap();
    }
    let host = host(1);
    let db = host
        .open_database(
            spec("chat", options()),
            on_disk(dir.path()),
            &module_bytes("chat"),
        )
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the stale client is disconnected",
        || db.connected_clients().is_empty(),
    );
    assert_eq!(user_online(&db, ALICE), Some(false));
}

#[test]
fn get_jwt_reads_the_payload_recorded_at_connect() {
    let host = host(1);
    let db = create(&host, "abi-coverage", in_memory());
    let payload = r#"{"iss":"https://issuer.example","sub":"alice-sub","aud":"orrery","iat":1}"#;
    let connected = db
        .client_connected(ALICE, ConnectionId::from_u128(7), Some(payload.into()))
        .unwrap();
    assert!(connected.outcome.is_committed(), "{:?}", connected.outcome);
    let check = args(&[
        enc(&ALICE),
        enc(&Some(ConnectionId::from_u128(7))),
        enc(&None::<spacetimedb_lib::Timestamp>),
    ]);
    let result = db
        .call_reducer("check_caller", as_client(ALICE, 7), check)
        .unwrap();
    assert!(result.outcome.is_committed(), "{:?}", result.outcome);
    assert!(
        result
            .logs
            .iter()
            .any(|r| r.message == "caller JWT subject=alice-sub issuer=https://issuer.example"),
        "{:#?}",
        result.logs
    );
}

#[test]
fn modules_cannot_reach_the_host_tables() {
    let host = host(1);
    let db = create(&host, "hostile", in_memory());
    let marker = "SECRET-CLAIMS-8f3a";
    let payload = format!(r#"{{"iss":"i","sub":"{marker}"}}"#);
    let connected = db
        .client_connected(ALICE, ConnectionId::from_u128(42), Some(payload))
        .unwrap();
    assert!(connected.outcome.is_committed());
    let ok = call(&db, "ok", as_client(OWNER, 0), Vec::new());
    assert!(ok.is_committed());
    let probe = db
        .call_reducer(
            "probe_system_tables",
            as_client(OWNER, 0),
            args(&[enc(marker), enc(&42u128)]),
        )
        .unwrap();
    assert!(
        probe.outcome.is_committed(),
        "{:?}\n{:#?}",
        probe.outcome,
        probe.logs
    );
    assert!(
        probe
            .logs
            .iter()
            .any(|r| r.message == "probe could read 1 tables"),
        "{:#?}",
        probe.logs
    );
    // The record survived the delete attempts through every index id.
    assert_eq!(db.connected_clients().len(), 1);
    assert_eq!(rows(db.storage(), CLIENT_TABLE).len(), 1);
}

#[test]
fn private_reducers_are_for_the_owner_only() {
    let host = host(1);
    let db = create(&host, "chat", in_memory());
    let by_client = call(&db, "client_connected", as_client(ALICE, 3), Vec::new());
    assert!(
        matches!(by_client, ReducerOutcome::NotCallable { .. }),
        "{by_client:?}"
    );
    let missing = call(&db, "no_such_reducer", as_client(ALICE, 3), Vec::new());
    assert!(
        matches!(missing, ReducerOutcome::NoSuchReducer { .. }),
        "{missing:?}"
    );
}

#[test]
fn arguments_over_the_cap_are_refused_before_the_module_runs() {
    let host = host(1);
    let options = CallOptions {
        args_bytes_max: 64 * 1024,
        ..options()
    };
    let db = host
        .create_database(
            spec("hostile", options),
            in_memory(),
            &module_bytes("hostile"),
        )
        .unwrap();
    let big = call(
        &db,
        "huge_arg",
        as_client(OWNER, 0),
        enc(&vec![7u8; 100_000]),
    );
    match big {
        ReducerOutcome::ArgumentsTooLarge { bytes, limit } => {
            assert_eq!(limit, 64 * 1024);
            assert!(bytes > 100_000);
        }
        other => panic!("expected ArgumentsTooLarge, got {other:?}"),
    }
    let small = call(&db, "huge_arg", as_client(OWNER, 0), enc(&vec![7u8; 1000]));
    assert!(small.is_committed(), "{small:?}");
}

#[test]
fn a_spinning_database_does_not_stall_another() {
    let host = host(2);
    let slow_options = CallOptions {
        fuel_per_call: u64::MAX / 4,
        deadline_per_call: Duration::from_secs(4),
        ..options()
    };
    let slow = host
        .create_database(
            spec("slow", slow_options),
            in_memory(),
            &module_bytes("hostile"),
        )
        .unwrap();
    let fast = create(&host, "hostile", in_memory());
    let (done, spun) = std::sync::mpsc::channel();
    slow.submit_reducer(
        "spin".into(),
        as_client(OWNER, 0),
        Vec::new(),
        move |result| {
            done.send((Instant::now(), result.outcome)).unwrap();
        },
    )
    .unwrap();
    // A worker has taken the spin off the slow database's lane.
    eventually(Duration::from_secs(10), "the spin started", || {
        slow.queued_calls() == 0
    });
    for _ in 0..50 {
        let outcome = call(&fast, "ok", as_client(OWNER, 0), Vec::new());
        assert!(outcome.is_committed(), "{outcome:?}");
    }
    let fast_done = Instant::now();
    let (spin_done, outcome) = spun.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(matches!(outcome, ReducerOutcome::Timeout), "{outcome:?}");
    assert!(
        fast_done < spin_done,
        "the healthy database waited for the spinning one"
    );
    // The slow database serves again after its timeout.
    assert!(call(&slow, "ok", as_client(OWNER, 0), Vec::new()).is_committed());
}

// Protects issue 12's fairness between databases: two databases with slow
// calls back to back (each call spins to its deadline) on a 2-worker pool
// must not keep a third database's quick calls waiting. Before time slices a
// lane kept its worker for up to 64 jobs, so the quick calls waited until a
// slow database had drained its queue; with time slices alone each quick
// call still waited for a slow call to end; with a worker kept for quick
// lanes, the quick calls run beside the slow ones.
#[test]
fn slow_databases_back_to_back_leave_a_worker_for_a_quick_one() {
    const SLOW_CALLS: usize = 10;
    const QUICK_CALLS: usize = 12;
    let host = host(2);
    let slow_options = CallOptions {
        fuel_per_call: u64::MAX / 4,
        deadline_per_call: Duration::from_millis(200),
        ..options()
    };
    let slow: Vec<HostedDatabase> = ["slow-a", "slow-b"]
        .into_iter()
        .map(|name| {
            host.create_database(
                spec(name, slow_options.clone()),
                in_memory(),
                &module_bytes("hostile"),
            )
            .unwrap()
        })
        .collect();
    let quick = create(&host, "hostile", in_memory());
    let finished: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::default()).collect();
    let (done, all_done) = std::sync::mpsc::channel();
    for (db, finished) in slow.iter().zip(&finished) {
        for _ in 0..SLOW_CALLS {
            let finished = finished.clone();
            let done = done.clone();
            db.submit_reducer(
                "spin".into(),
                as_client(OWNER, 0),
                Vec::new(),
                move |result| {
                    finished.fetch_add(1, Ordering::SeqCst);
                    done.send(result.outcome).unwrap();
                },
            )
            .unwrap();
        }
    }
    let slow_done = || {
        finished
            .iter()
            .map(|f| f.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    let outcome = call(&quick, "ok", as_client(OWNER, 0), Vec::new());
    assert!(outcome.is_committed(), "{outcome:?}");
    let after_first = slow_done();
    for _ in 1..QUICK_CALLS {
        let outcome = call(&quick, "ok", as_client(OWNER, 0), Vec::new());
        assert!(outcome.is_committed(), "{outcome:?}");
    }
    let after_all = slow_done();
    let per_database: Vec<usize> = finished.iter().map(|f| f.load(Ordering::SeqCst)).collect();
    for _ in 0..2 * SLOW_CALLS {
        let outcome = all_done.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(matches!(outcome, ReducerOutcome::Timeout), "{outcome:?}");
    }
    assert!(
        per_database.iter().all(|&n| n < SLOW_CALLS),
        "the quick database waited until a slow one drained its queue: {per_database:?} of {SLOW_CALLS}"
    );
    assert!(
        after_all - after_first < QUICK_CALLS - 1,
        "each quick call waited for a slow call to end: {} slow calls ended during {} quick calls",
        after_all - after_first,
        QUICK_CALLS - 1
    );
}

#[test]
fn creating_over_an_existing_database_or_opening_an_empty_one_is_refused() {
    let host = host(1);
    let db = create(&host, "chat", in_memory());
    let storage = db.storage().clone();
    let again = host.create_database(spec("chat", options()), storage, &module_bytes("chat"));
    assert!(matches!(
        again,
        Err(tenant_host::hosting::PublishError::AlreadyExists)
    ));
    let empty = host.open_database(spec("chat", options()), in_memory(), &module_bytes("chat"));
    assert!(matches!(
        empty,
        Err(tenant_host::hosting::PublishError::NotCreated)
    ));
    let _ = DATABASE;
}

#[test]
fn module_logs_and_failures_reach_the_database_log_and_survive_a_restart() {
    use tenant_host::logs::{FollowEvent, LogLevel};
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let with_log = |name: &str| DatabaseSpec {
        log_dir: Some(logs.clone()),
        ..spec(name, options())
    };
    {
        let host = host(1);
        let db = host
            .create_database(
                with_log("hostile"),
                on_disk(&dir.path().join("db")),
                &module_bytes("hostile"),
            )
            .unwrap();
        let mut follow = db.log().follow(0);
        let trapped = call(&db, "trap", as_client(OWNER, 0), Vec::new());
        assert!(
            matches!(trapped, ReducerOutcome::Trapped { .. }),
            "{trapped:?}"
        );
        let tail = db.log().tail(10);
        let panic = tail
            .iter()
            .find(|e| e.level == LogLevel::Panic)
            .unwrap_or_else(|| panic!("no panic entry in {tail:#?}"));
        assert!(
            panic.message.contains("hostile: deliberate trap"),
            "{panic:?}"
        );
        assert_eq!(panic.function, "trap");
        assert!(
            tail.iter().any(|e| e.level == LogLevel::Error
                && e.function == "trap"
                && e.message.starts_with("trapped:")),
            "{tail:#?}"
        );
        // A follower sees the records of the call in order.
        let first = follow.recv_timeout(Duration::from_secs(5)).unwrap();
        match first {
            FollowEvent::Entry(entry) => assert_eq!(entry.level, LogLevel::Panic),
            other => panic!("{other:?}"),
        }
        let flood = call(&db, "log_flood", as_client(OWNER, 0), enc(&3u64));
        assert!(flood.is_committed(), "{flood:?}");
        db.storage().flush().unwrap();
    }
    let host = host(1);
    let db = host
        .open_database(
            with_log("hostile"),
            on_disk(&dir.path().join("db")),
            &module_bytes("hostile"),
        )
        .unwrap();
    let tail = db.log().tail(100);
    assert!(
        tail.iter()
            .any(|e| e.message.contains("hostile: deliberate trap")),
        "the tail after a restart lost earlier records: {tail:#?}"
    );
    assert!(
        tail.iter().filter(|e| e.function == "log_flood").count() >= 3,
        "{tail:#?}"
    );
}

#[test]
fn procedures_run_beside_the_lane_and_their_commits_are_followed_up() {
    use orrery_module::ProcedureOutcome;
    let host = host(1);
    let http = orrery_module::HttpPolicy {
        allow_private: true,
        ..Default::default()
    };
    let db = host
        .create_database(
            spec("abi-coverage", CallOptions { http, ..options() }),
            in_memory(),
            &module_bytes("abi-coverage"),
        )
        .unwrap();
    // A procedure blocked (here in an HTTP request the test holds open)
    // does not hold up reducer calls of its database on the one worker.
    let gate = HeldResponse::listen();
    let (done, returned) = std::sync::mpsc::sync_channel(1);
    db.submit_procedure(
        "proc_http_get".into(),
        as_client(OWNER, 0),
        enc(&gate.url()),
        move |r| done.send(r.outcome).unwrap(),
    )
    .unwrap();
    gate.wait_for_request();
    let outcome = call(
        &db,
        "add_note",
        as_client(ALICE, 0),
        enc("during the request"),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    assert!(
        returned.try_recv().is_err(),
        "the procedure returned while its request was held"
    );
    gate.release();
    let outcome = returned.recv_timeout(Duration::from_secs(30)).unwrap();
    let ProcedureOutcome::Returned { value } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        spacetimedb_sats::bsatn::from_slice::<String>(&value).unwrap(),
        "status 200 held"
    );

    let result = db
        .call_procedure("proc_with_tx", as_client(OWNER, 0), enc(&3u64))
        .unwrap();
    assert!(
        matches!(result.outcome, ProcedureOutcome::Returned { .. }),
        "{:?}",
        result.outcome
    );
    assert!(!result.commits.is_empty());
    let missing = db
        .call_procedure("no_such_procedure", as_client(OWNER, 0), Vec::new())
        .unwrap();
    assert!(matches!(
        missing.outcome,
        ProcedureOutcome::NoSuchProcedure { .. }
    ));
}

#[test]
fn any_procedure_name_is_answered_and_one_database_holds_a_bounded_share_of_the_pool() {
    // Issue 12: a NUL byte in a procedure name panicked when the call's own
    // thread was named after it. Names now only reach a lookup, and calls
    // run on the host's procedure pool, at most
    // PROCEDURES_RUNNING_COUNT_MAX queued or running per database.
    use orrery_api::limits::PROCEDURES_RUNNING_COUNT_MAX;
    use orrery_module::ProcedureOutcome;
    use tenant_host::hosting::pool::SubmitError;
    let host = host(1);
    let db = create(&host, "abi-coverage", in_memory());
    for name in ["a\0b", "\0", "procedure-\0-\u{7f}", ""] {
        let result = db
            .call_procedure(name, as_client(ALICE, 0), Vec::new())
            .unwrap_or_else(|e| panic!("{name:?} was not run: {e}"));
        assert!(
            matches!(&result.outcome, ProcedureOutcome::NoSuchProcedure { procedure } if procedure.contains(name)),
            "{name:?}: {:?}",
            result.outcome
        );
    }

    // A call's slot is given back when its job ends, just after its reply
    // was delivered: wait until the calls above gave theirs back.
    eventually(
        Duration::from_secs(30),
        "the slots of the calls above come back",
        || db.procedure_calls() == 0,
    );

    // Calls whose replies wait on a gate keep their slots.
    let (gate_tx, gate_rx) = std::sync::mpsc::sync_channel::<()>(0);
    let gate = std::sync::Arc::new(std::sync::Mutex::new(gate_rx));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let submit = |gate: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
        let done = done_tx.clone();
        db.submit_procedure(
            "no_such_procedure".into(),
            as_client(ALICE, 0),
            Vec::new(),
            move |result| {
                gate.lock().unwrap().recv().unwrap();
                done.send(result.outcome).unwrap();
            },
        )
    };
    for _ in 0..PROCEDURES_RUNNING_COUNT_MAX {
        submit(gate.clone()).expect("under the per-database cap");
    }
    assert!(
        matches!(submit(gate.clone()), Err(SubmitError::Overloaded(_))),
        "one call past the cap is refused"
    );
    // Another database is not held back by this one's share.
    let other = create(&host, "abi-coverage", in_memory());
    let result = other
        .call_procedure("proc_with_tx", as_client(OWNER, 0), enc(&1u64))
        .unwrap();
    assert!(
        matches!(result.outcome, ProcedureOutcome::Returned { .. }),
        "{:?}",
        result.outcome
    );
    for _ in 0..PROCEDURES_RUNNING_COUNT_MAX {
        gate_tx.send(()).unwrap();
        let outcome = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(matches!(outcome, ProcedureOutcome::NoSuchProcedure { .. }));
    }
    // Every slot comes back once its call ended.
    eventually(
        Duration::from_secs(30),
        "the procedure slots come back",
        || db.procedure_calls() == 0,
    );
    let gate_open = std::sync::Arc::new(std::sync::Mutex::new({
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(PROCEDURES_RUNNING_COUNT_MAX);
        for _ in 0..PROCEDURES_RUNNING_COUNT_MAX {
            tx.send(()).unwrap();
        }
        rx
    }));
    for _ in 0..PROCEDURES_RUNNING_COUNT_MAX {
        submit(gate_open.clone()).expect("the slots were given back");
    }
    for _ in 0..PROCEDURES_RUNNING_COUNT_MAX {
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
}

#[test]
fn materialised_views_follow_commits() {
    use spacetimedb_sats::ProductValue;
    fn texts(rows: &[ProductValue]) -> Vec<String> {
        let mut texts: Vec<String> = rows
            .iter()
            .map(|row| match &row.elements[2] {
                V::String(text) => text.to_string(),
                other => panic!("text is {other:?}"),
            })
            .collect();
        texts.sort();
        texts
    }
    let host = host(1);
    let db = create(&host, "abi-coverage", in_memory());
    assert!(call(&db, "add_note", as_client(ALICE, 0), enc("a1")).is_committed());
    let alice = db.view("my_notes", Some(ALICE)).unwrap().unwrap();
    assert_eq!(texts(&alice), ["a1"]);
    let bob = db.view("my_notes", Some(BOB)).unwrap().unwrap();
    assert!(bob.is_empty());
    assert_eq!(db.materialised_views(), 2);
    assert!(call(&db, "add_note", as_client(BOB, 0), enc("b1")).is_committed());
    assert!(call(&db, "add_note", as_client(ALICE, 0), enc("a2")).is_committed());
    assert_eq!(
        texts(&db.view("my_notes", Some(ALICE)).unwrap().unwrap()),
        ["a1", "a2"]
    );
    assert_eq!(
        texts(&db.view("my_notes", Some(BOB)).unwrap().unwrap()),
        ["b1"]
    );
    match db.view("my_notes", None).unwrap() {
        Err(orrery_module::ViewOutcome::NeedsSender { .. }) => {}
        other => panic!("a sender-aware view without a sender: {other:?}"),
    }
}

#[test]
fn republishing_hot_swaps_the_module_and_a_refused_update_changes_nothing() {
    use orrery_module::update::UpdateMode;
    let host = host(2);
    let db = create(&host, "chat", in_memory());
    assert!(db
        .client_connected(ALICE, ConnectionId::from_u128(1), None)
        .unwrap()
        .outcome
        .is_committed());
    let sent = call(
        &db,
        "send_message",
        as_client(ALICE, 1),
        args(&[enc(&1u64), enc("hi")]),
    );
    assert!(sent.is_committed(), "{sent:?}");
    // v1 has no `add_karma`.
    let before = call(&db, "add_karma", as_client(ALICE, 1), enc(&5u32));
    assert!(
        matches!(before, ReducerOutcome::NoSuchReducer { .. }),
        "{before:?}"
    );

    let report = host
        .update_database(
            &db,
            &module_bytes("chat-v2"),
            options(),
            UpdateMode::Migrate,
        )
        .unwrap_or_else(|e| panic!("chat → chat-v2: {e}"));
    assert!(report.plan.is_automatic());
    // The new version serves the next call, on the migrated rows; the
    // connected client and the schedule timer carried over.
    let karma = call(&db, "add_karma", as_client(ALICE, 1), enc(&5u32));
    assert!(karma.is_committed(), "{karma:?}");
    let mine = call(&db, "count_my_messages", as_client(ALICE, 1), enc(&1u64));
    assert!(mine.is_committed(), "{mine:?}");
    assert_eq!(db.connected_clients().len(), 1);
    assert_eq!(db.pending_timers(), 1);
    assert!(db
        .log()
        .tail(5)
        .iter()
        .any(|e| e.message.starts_with("module updated")));

    // Going back would drop tables and columns: refused, v2 keeps serving.
    let back = host.update_database(&db, &module_bytes("chat"), options(), UpdateMode::Migrate);
    match back {
        Err(tenant_host::hosting::PublishError::Update(e)) => {
            let text = e.to_string();
            assert!(text.contains("reaction"), "{text}");
        }
        other => panic!("the downgrade was not refused: {other:?}"),
    }
    assert!(call(&db, "add_karma", as_client(ALICE, 1), enc(&1u32)).is_committed());

    // Clearing the data replaces everything, runs init, keeps the clients.
    host.update_database(
        &db,
        &module_bytes("chat"),
        options(),
        UpdateMode::ClearData {
            owner: OWNER,
            timestamp_micros: now(),
        },
    )
    .unwrap();
    assert!(rows(db.storage(), "message").is_empty());
    assert_eq!(
        rows(db.storage(), "channel").len(),
        1,
        "init created `general` again"
    );
    assert_eq!(db.connected_clients().len(), 1);
    assert_eq!(db.pending_timers(), 1);
}

#[test]
fn chat_prunes_old_messages_when_its_schedule_fires_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = host(1);
        let db = create(&host, "chat", on_disk(dir.path()));
        let two_hours_ago = CallerContext {
            timestamp_micros: now() - 2 * 3_600_000_000,
            ..as_client(ALICE, 0)
        };
        for text in ["old 1", "old 2"] {
            let sent = call(
                &db,
                "send_message",
                two_hours_ago,
                args(&[enc(&1u64), enc(text)]),
            );
            assert!(sent.is_committed(), "{sent:?}");
        }
        let sent = call(
            &db,
            "send_message",
            as_client(ALICE, 0),
            args(&[enc(&1u64), enc("new")]),
        );
        assert!(sent.is_committed(), "{sent:?}");
        // Outside any module, make the minute-long prune interval 50 ms; only
        // re-arming from the table on open can notice.
        let storage = db.storage();
        let mut tx = storage.begin().unwrap();
        let table = tx.table_id_from_name("prune_schedule").unwrap();
        let row: Vec<V> = tx.scan(table).unwrap().next().unwrap().to_vec();
        let mut faster = row.clone();
        faster[1] = V::sum(0, V::product([V::I64(50_000)]));
        assert!(tx.delete_row(table, &row).unwrap());
        tx.insert_row(table, faster).unwrap();
        tx.commit().unwrap();
        storage.flush().unwrap();
    }
    let host = host(1);
    let db = host
        .open_database(
            spec("chat", options()),
            on_disk(dir.path()),
            &module_bytes("chat"),
        )
        .unwrap();
    eventually(Duration::from_secs(10), "old messages pruned", || {
        rows(db.storage(), "message").len() == 1
    });
    let left = rows(db.storage(), "message");
    assert_eq!(left[0][4], V::String("new".into()));
    assert!(db
        .log()
        .tail(50)
        .iter()
        .any(|e| e.function == "prune_messages" && e.message == "pruned 2 messages"));
}

/// A loopback HTTP server for one request, answered only when the test
/// says so: while it holds the response, the procedure that sent the
/// request is provably still running.
struct HeldResponse {
    port: u16,
    requested: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::SyncSender<()>,
}

impl HeldResponse {
    fn listen() -> HeldResponse {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (requested_tx, requested) = std::sync::mpsc::sync_channel(1);
        let (release, released) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            requested_tx.send(()).unwrap();
            // The test dropping its end also releases the response.
            let _ = released.recv();
            let mut stream = stream;
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nheld",
            );
        });
        HeldResponse {
            port,
            requested,
            release,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/held", self.port)
    }

    /// Waits until the request has arrived (its headers read).
    fn wait_for_request(&self) {
        self.requested
            .recv_timeout(Duration::from_secs(30))
            .expect("the procedure sent its request");
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }
}

// Protects the hosting layer's one clock: timers fall due by the host's
// clock (here a manual one), not by the machine's.
#[test]
fn timers_fall_due_by_the_hosts_clock() {
    use storage::clock::{Clock, ManualClock};
    let clock = ManualClock::new(now());
    let host = Host::with_clock(
        Runtime::new().unwrap(),
        HostConfig {
            workers: 2,
            ..HostConfig::default()
        },
        Arc::new(clock.clone()),
    );
    let db = create(&host, "abi-coverage", in_memory());
    let hour = 3_600_000_000i64;
    let caller = || CallerContext {
        sender: OWNER,
        connection_id: ConnectionId::from_u128(0),
        timestamp_micros: clock.now_micros(),
    };
    let outcome = call(
        &db,
        "schedule_once",
        caller(),
        args(&[enc(&hour), enc("in-an-hour")]),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    // A barrier: a timer due now runs, so the scheduler is running, while
    // the one due in an hour of the host's clock has not.
    let outcome = call(
        &db,
        "schedule_once",
        caller(),
        args(&[enc(&0i64), enc("now")]),
    );
    assert!(outcome.is_committed(), "{outcome:?}");
    eventually(Duration::from_secs(30), "the timer due now ran", || {
        count(&runs(&db), "now") == 1
    });
    assert_eq!(count(&runs(&db), "in-an-hour"), 0);

    clock.advance(hour + 1);
    eventually(
        Duration::from_secs(30),
        "the timer ran once its hour passed",
        || count(&runs(&db), "in-an-hour") == 1,
    );
}
