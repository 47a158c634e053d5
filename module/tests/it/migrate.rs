// Protects republishing (`orrery_module::update`): `chat` published to a
// database on disk, used, then updated to `chat-v2` keeps every row (with the
// declared default in the new column), drops and adds indexes the new
// module's reducers use, creates the new tables, does not run `init`, and
// survives a reopen from disk. An incompatible update is refused and changes
// nothing; clearing the data wipes the tables and runs the new `init`.

use std::path::Path;

use orrery_module::update::{update_database, UpdateError, UpdateMode};
use orrery_module::{HostedModule, ReducerOutcome};
use orrery_moduledef::migrate::MigrationStep;
use spacetimedb_sats::AlgebraicValue;
use storage::{Database, DbOptions, DbStorage};

use crate::harness::{args, assert_committed, call, enc, host_with, options, rows, NOW, OWNER};

fn open(dir: &Path) -> Database {
    Database::open(DbStorage::dir(dir).unwrap(), DbOptions::default())
        .unwrap()
        .0
}

/// Publishes `chat` to a database in `dir` and posts two messages.
fn publish_chat(dir: &Path) -> (HostedModule, Database) {
    let chat = host_with("chat", options());
    let db = open(dir);
    assert_committed(&chat.create_database(&db, OWNER, NOW), "create chat");
    assert_committed(&call(&chat, &db, "set_name", &enc("ann")), "set_name");
    for text in ["hello", "again"] {
        let sent = call(&chat, &db, "send_message", &args(&[enc(&1u64), enc(text)]));
        assert_committed(&sent, "send_message");
    }
    (chat, db)
}

fn karma_of_users(db: &Database) -> Vec<AlgebraicValue> {
    rows(db, "user")
        .into_iter()
        .map(|row| {
            assert_eq!(row.len(), 4, "user rows have the new column: {row:?}");
            row[3].clone()
        })
        .collect()
}

#[test]
fn chat_updates_to_chat_v2_keeping_rows_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (chat, db) = publish_chat(dir.path());
    let v2 = host_with("chat-v2", options());
    let channels_before = rows(&db, "channel");
    let messages_before = rows(&db, "message");
    let schedule_before = rows(&db, "prune_schedule");

    let report = update_database(&v2, chat.def(), &db, UpdateMode::Migrate)
        .unwrap_or_else(|e| panic!("chat → chat-v2 refused: {e}"));
    let steps = &report.plan.steps;
    for expected in [
        MigrationStep::AddTable {
            table: "reaction".into(),
        },
        MigrationStep::AddTable {
            table: "notification".into(),
        },
        MigrationStep::AddColumns {
            table: "user".into(),
            columns: vec!["karma".into()],
            defaults: vec![AlgebraicValue::U32(10)],
        },
    ] {
        assert!(steps.contains(&expected), "{expected:?} missing: {steps:?}");
    }
    let index_steps = |add: bool| -> Vec<&str> {
        steps
            .iter()
            .filter_map(|step| match step {
                MigrationStep::AddIndex { table, index } if add && table == "message" => {
                    Some(index.as_str())
                }
                MigrationStep::DropIndex { table, index } if !add && table == "message" => {
                    Some(index.as_str())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(index_steps(true).len(), 1, "{steps:?}");
    assert!(index_steps(true)[0].contains("sender"), "{steps:?}");
    assert_eq!(index_steps(false).len(), 1, "{steps:?}");
    assert!(index_steps(false)[0].contains("channel_id"), "{steps:?}");
    assert_eq!(report.delta.altered_tables.len(), 2, "user and message");
    assert_eq!(report.delta.created_tables.len(), 2);

    let check = |db: &Database, karma: u32| {
        assert_eq!(karma_of_users(db), vec![AlgebraicValue::U32(karma)]);
        // `init` did not run again: one general channel, one schedule row.
        assert_eq!(rows(db, "channel"), channels_before);
        assert_eq!(rows(db, "prune_schedule"), schedule_before);
        assert_eq!(rows(db, "message"), messages_before);
        let read = db.read().unwrap();
        let index = &index_steps(true)[0];
        assert!(read.index_id_from_name(index).is_some());
        assert!(read.index_id_from_name(index_steps(false)[0]).is_none());
    };
    check(&db, 10);

    // The new version's reducers work on the migrated data.
    assert_committed(
        &call(&v2, &db, "count_my_messages", &enc(&2u64)),
        "count_my_messages through the new index",
    );
    assert_committed(&call(&v2, &db, "add_karma", &enc(&5u32)), "add_karma");
    let message_id = match &rows(&db, "message")[0][0] {
        AlgebraicValue::U64(id) => *id,
        other => panic!("message id {other:?}"),
    };
    let reacted = call(&v2, &db, "react", &args(&[enc(&message_id), enc("+1")]));
    let ReducerOutcome::Committed { delta } = &reacted.outcome else {
        panic!("react: {:?}", reacted.outcome);
    };
    let notification = delta
        .tables
        .iter()
        .find(|t| t.schema.name == "notification")
        .expect("the event row is delivered");
    assert_eq!(notification.inserts.len(), 1);
    assert!(
        rows(&db, "notification").is_empty(),
        "event rows never stay"
    );
    assert_eq!(rows(&db, "reaction").len(), 1);
    let sent = call(&v2, &db, "send_message", &args(&[enc(&1u64), enc("v2")]));
    assert_committed(&sent, "send_message on v2");
    db.flush().unwrap();
    drop(db);

    // Reopen from disk: same schema and rows; the new module still works.
    let db = open(dir.path());
    assert_eq!(karma_of_users(&db), vec![AlgebraicValue::U32(15)]);
    assert_eq!(rows(&db, "message").len(), 3);
    assert_eq!(rows(&db, "reaction").len(), 1);
    assert!(rows(&db, "notification").is_empty());
    assert_committed(
        &call(&v2, &db, "count_my_messages", &enc(&3u64)),
        "count_my_messages after reopen",
    );
    // And from a snapshot.
    db.take_snapshot().unwrap().expect("a snapshot");
    drop(db);
    let db = open(dir.path());
    assert_eq!(karma_of_users(&db), vec![AlgebraicValue::U32(15)]);
    assert_committed(
        &call(&v2, &db, "count_my_messages", &enc(&3u64)),
        "count_my_messages after a snapshot",
    );
}

#[test]
fn downgrade_is_refused_with_blockers_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (chat, db) = publish_chat(dir.path());
    let v2 = host_with("chat-v2", options());
    update_database(&v2, chat.def(), &db, UpdateMode::Migrate).unwrap();
    let users = rows(&db, "user");
    let offset = db.read().unwrap().last_offset();

    let refused = update_database(&chat, v2.def(), &db, UpdateMode::Migrate).unwrap_err();
    let UpdateError::Refused(plan) = &refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert!(!plan.is_automatic());
    for blocker in [
        "table `user`: column `karma` removed",
        "table `reaction` removed",
        "table `notification` removed",
    ] {
        assert!(
            plan.blockers.iter().any(|b| b == blocker),
            "{blocker:?} missing from {plan}"
        );
    }
    assert!(refused.to_string().contains("table `reaction` removed"));
    assert_eq!(rows(&db, "user"), users);
    assert_eq!(
        db.read().unwrap().last_offset(),
        offset,
        "nothing committed"
    );
}

#[test]
fn clear_data_wipes_the_tables_and_runs_init() {
    let dir = tempfile::tempdir().unwrap();
    let (chat, db) = publish_chat(dir.path());
    let v2 = host_with("chat-v2", options());
    let mode = UpdateMode::ClearData {
        owner: OWNER,
        timestamp_micros: NOW,
    };
    let report = update_database(&v2, chat.def(), &db, mode).unwrap();
    assert!(report.plan.is_automatic());
    assert!(rows(&db, "user").is_empty());
    assert!(rows(&db, "message").is_empty());
    // `init` of v2 ran: the general channel and the prune schedule.
    assert_eq!(rows(&db, "channel").len(), 1);
    assert_eq!(rows(&db, "prune_schedule").len(), 1);
    assert!(rows(&db, "reaction").is_empty());
    // The new schema is in place.
    assert_committed(&call(&v2, &db, "set_name", &enc("bob")), "set_name");
    assert_eq!(karma_of_users(&db), vec![AlgebraicValue::U32(10)]);
    drop(db);
    let db = open(dir.path());
    assert_eq!(karma_of_users(&db), vec![AlgebraicValue::U32(10)]);
    assert_eq!(rows(&db, "channel").len(), 1);
}

/// Hosts the WAT module of the lifecycle tests whose `init` traps.
fn trapping_init() -> HostedModule {
    orrery_module::Runtime::new()
        .unwrap()
        .host(&crate::lifecycle::module("(unreachable)"), options())
        .unwrap_or_else(|e| panic!("cannot host: {e}"))
}

#[test]
fn failed_first_publish_leaves_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let outcome = trapping_init().create_database(&db, OWNER, NOW).outcome;
    assert!(
        matches!(outcome, ReducerOutcome::Trapped { .. }),
        "{outcome:?}"
    );
    assert_eq!(db.read().unwrap().table_ids().count(), 0);
    db.flush().unwrap();
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.read().unwrap().table_ids().count(), 0);
    // The same database can then be published for real.
    let chat = host_with("chat", options());
    assert_committed(&chat.create_database(&db, OWNER, NOW), "create chat");
}

#[test]
fn clear_data_with_a_failing_init_keeps_the_old_database() {
    let dir = tempfile::tempdir().unwrap();
    let (chat, db) = publish_chat(dir.path());
    let users = rows(&db, "user");
    let messages = rows(&db, "message");
    let mode = UpdateMode::ClearData {
        owner: OWNER,
        timestamp_micros: NOW,
    };
    let failed = update_database(&trapping_init(), chat.def(), &db, mode).unwrap_err();
    assert!(
        matches!(&failed, UpdateError::Create { outcome, .. }
            if matches!(**outcome, ReducerOutcome::Trapped { .. })),
        "{failed:?}"
    );
    let check = |db: &Database| {
        assert_eq!(rows(db, "user"), users);
        assert_eq!(rows(db, "message"), messages);
        assert!(db.read().unwrap().table_id_from_name("thing").is_none());
    };
    check(&db);
    db.flush().unwrap();
    drop(db);
    check(&open(dir.path()));
}
