// Protects reducer calls in a transaction on real 2.10.1 modules (module-abi
// §4.5, §8.1, §8.7): a database is created with its tables and `init` in one
// transaction; a reducer that returns 0 commits and its writes are visible;
// one that returns `Err` rolls back and reports its message; arguments are
// type-checked before the call; a durable database keeps committed rows
// across a reopen.

use orrery_module::ReducerOutcome;
use spacetimedb_sats::AlgebraicValue as V;
use storage::{Database, DbOptions, DbStorage};

use crate::harness::{
    args, assert_committed, assert_failed, call, caller, enc, host_with, hosted, options, rows,
    NOW, OWNER,
};

const INITIAL: i64 = 1_000_000;

fn balance(db: &Database, id: u64) -> i64 {
    let all = rows(db, "account");
    let row = all
        .iter()
        .find(|row| row[0] == V::U64(id))
        .unwrap_or_else(|| panic!("no account {id}"));
    match row[1] {
        V::I64(balance) => balance,
        ref other => panic!("balance is {other:?}"),
    }
}

fn transfer_args(from: u64, to: u64, amount: i64) -> Vec<u8> {
    args(&[enc(&from), enc(&to), enc(&amount)])
}

// Protects commit on success and rollback with the module's message on
// `Err`: balances move only when the transfer succeeds.
#[test]
fn bank_seed_and_transfer_commit_failures_roll_back() {
    let (module, db) = hosted("bank", options());
    let seeded = call(&module, &db, "seed", &enc(&100u64));
    assert_committed(&seeded, "seed(100)");
    let ReducerOutcome::Committed { delta } = &seeded.outcome else {
        unreachable!()
    };
    assert_eq!(delta.tables.len(), 1);
    assert_eq!(delta.tables[0].inserts.len(), 100);
    assert_eq!(rows(&db, "account").len(), 100);

    let moved = call(&module, &db, "transfer", &transfer_args(1, 2, 500));
    assert_committed(&moved, "transfer(1, 2, 500)");
    assert_eq!(balance(&db, 1), INITIAL - 500);
    assert_eq!(balance(&db, 2), INITIAL + 500);

    let too_much = call(&module, &db, "transfer", &transfer_args(1, 2, 10_000_000));
    assert_failed(
        &too_much,
        "insufficient funds in account 1: 999500 < 10000000",
    );
    assert_eq!(balance(&db, 1), INITIAL - 500);
    assert_eq!(balance(&db, 2), INITIAL + 500);

    let unknown = call(&module, &db, "transfer", &transfer_args(1, 999, 1));
    assert_failed(&unknown, "no account 999");
    let unknown = call(&module, &db, "transfer", &transfer_args(999, 1, 1));
    assert_failed(&unknown, "no account 999");
    assert_eq!(balance(&db, 1), INITIAL - 500);

    // The same instance keeps working after failures.
    let back = call(&module, &db, "transfer", &transfer_args(2, 1, 500));
    assert_committed(&back, "transfer(2, 1, 500)");
    assert_eq!(balance(&db, 1), INITIAL);
    assert_eq!(balance(&db, 2), INITIAL);
}

// Protects the host-side argument check (§4.5): bytes that do not decode
// at the parameter types, or carry trailing bytes, never reach the guest;
// unknown reducers are reported as such; reducers can be called by id.
#[test]
fn bank_bad_arguments_and_unknown_reducers_are_refused() {
    let (module, db) = hosted("bank", options());
    let short = call(&module, &db, "transfer", &[1, 2, 3]);
    assert!(
        matches!(short.outcome, ReducerOutcome::BadArguments { .. }),
        "{:?}",
        short.outcome
    );
    let mut long = transfer_args(1, 2, 3);
    long.push(0);
    let long = call(&module, &db, "transfer", &long);
    assert!(
        matches!(long.outcome, ReducerOutcome::BadArguments { .. }),
        "{:?}",
        long.outcome
    );
    let missing = call(&module, &db, "no_such_reducer", &[]);
    assert!(
        matches!(missing.outcome, ReducerOutcome::NoSuchReducer { .. }),
        "{:?}",
        missing.outcome
    );
    let missing = module.call_reducer(&db, 10_000usize, caller(OWNER), &[]);
    assert!(
        matches!(missing.outcome, ReducerOutcome::NoSuchReducer { .. }),
        "{:?}",
        missing.outcome
    );
    let (seed_id, _) = module.def().reducer("seed").unwrap();
    let by_id = module.call_reducer(&db, seed_id, caller(OWNER), &enc(&3u64));
    assert_committed(&by_id, "seed by id");
    assert_eq!(rows(&db, "account").len(), 3);
}

fn channel_id(db: &Database, name: &str) -> u64 {
    rows(db, "channel")
        .iter()
        .find(|row| row[1] == V::String(name.into()))
        .map(|row| match row[0] {
            V::U64(id) => id,
            ref other => panic!("channel id is {other:?}"),
        })
        .unwrap_or_else(|| panic!("no channel {name}"))
}

// Protects `init` inside the creating transaction (§8.7) and auto-inc
// write-back through a real module: init's channel exists with a generated
// id; send_message inserts a message with a generated id and the caller's
// timestamp; empty text fails with the module's message and changes nothing.
#[test]
fn chat_init_creates_general_and_messages_get_generated_ids() {
    let (module, db) = hosted("chat", options());
    let general = channel_id(&db, "general");
    assert_ne!(general, 0, "the auto-inc id was generated");
    assert_eq!(
        rows(&db, "prune_schedule").len(),
        1,
        "init scheduled pruning"
    );

    let sent = call(
        &module,
        &db,
        "send_message",
        &args(&[enc(&general), enc("hello")]),
    );
    assert_committed(&sent, "send_message");
    let messages = rows(&db, "message");
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_ne!(message[0], V::U64(0), "message id generated");
    assert_eq!(message[1], V::U64(general));
    assert_eq!(message[4], V::String("hello".into()));

    let second = call(
        &module,
        &db,
        "send_message",
        &args(&[enc(&general), enc("again")]),
    );
    assert_committed(&second, "second send_message");
    let ids: Vec<_> = rows(&db, "message").iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);

    let empty = call(
        &module,
        &db,
        "send_message",
        &args(&[enc(&general), enc("")]),
    );
    assert_failed(&empty, "message text must not be empty");
    let nowhere = call(
        &module,
        &db,
        "send_message",
        &args(&[enc(&9_999u64), enc("hi")]),
    );
    assert_failed(&nowhere, "no channel 9999");
    assert_eq!(rows(&db, "message").len(), 2);

    let created = call(&module, &db, "create_channel", &enc("random"));
    assert_committed(&created, "create_channel");
    let taken = call(&module, &db, "create_channel", &enc("random"));
    assert!(
        matches!(taken.outcome, ReducerOutcome::Failed { .. }),
        "a taken name fails through try_insert: {:?}",
        taken.outcome
    );
    assert_ne!(channel_id(&db, "random"), general);
}

// Protects the all-or-nothing creation (§8.7): a module whose `init` fails
// leaves no table behind. bank has no init, so creation always commits.
#[test]
fn create_database_without_init_commits_the_tables() {
    let module = host_with("bank", options());
    let db = Database::in_memory(DbOptions::default());
    let created = module.create_database(&db, OWNER, NOW);
    assert_committed(&created, "create bank");
    assert!(rows(&db, "account").is_empty());
    // Creating twice fails (the tables exist) and changes nothing.
    let again = module.create_database(&db, OWNER, NOW);
    assert!(
        matches!(again.outcome, ReducerOutcome::Internal { .. }),
        "{:?}",
        again.outcome
    );
}

// Protects durability end to end: rows committed by reducers on a database
// in a directory survive closing and reopening it, and a newly hosted module
// keeps working on the reopened database.
#[test]
fn durable_database_keeps_reducer_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, _) =
            Database::open(DbStorage::dir(dir.path()).unwrap(), DbOptions::default()).unwrap();
        let module = host_with("bank", options());
        assert_committed(&module.create_database(&db, OWNER, NOW), "create");
        assert_committed(&call(&module, &db, "seed", &enc(&5u64)), "seed(5)");
        assert_committed(
            &call(&module, &db, "transfer", &transfer_args(1, 5, 42)),
            "transfer",
        );
        db.flush().unwrap();
    }
    let (db, report) =
        Database::open(DbStorage::dir(dir.path()).unwrap(), DbOptions::default()).unwrap();
    assert!(report.records_replayed >= 3, "{report:?}");
    assert_eq!(rows(&db, "account").len(), 5);
    assert_eq!(balance(&db, 1), INITIAL - 42);
    assert_eq!(balance(&db, 5), INITIAL + 42);
    let module = host_with("bank", options());
    assert_committed(
        &call(&module, &db, "transfer", &transfer_args(5, 1, 42)),
        "transfer after reopen",
    );
    assert_eq!(balance(&db, 1), INITIAL);
}

// Protects concurrent use of one hosted module: calls from several threads
// each get an instance (the pool grows as needed), transactions serialise,
// and money is conserved across many transfers.
#[test]
fn concurrent_transfers_serialise_and_conserve_balances() {
    let (module, db) = hosted("bank", options());
    assert_committed(&call(&module, &db, "seed", &enc(&4u64)), "seed(4)");
    std::thread::scope(|scope| {
        for thread in 0..3u64 {
            let (module, db) = (&module, &db);
            scope.spawn(move || {
                for i in 0..20u64 {
                    let from = 1 + (thread + i) % 4;
                    let to = 1 + (thread + i + 1) % 4;
                    let result = call(module, db, "transfer", &transfer_args(from, to, 7));
                    assert_committed(&result, "concurrent transfer");
                }
            });
        }
    });
    let total: i64 = (1..=4).map(|id| balance(&db, id)).sum();
    assert_eq!(total, 4 * INITIAL);
}
