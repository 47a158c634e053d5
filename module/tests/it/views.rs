// Protects view evaluation and materialisation against the real abi-coverage
// module: the sender-aware `my_notes` answers per caller, the anonymous
// `note_count` once for everyone, and each evaluation records the tables it
// read and changes nothing. (Materialisation: hosting.rs, ws_views.rs.)

use orrery_module::{HostedModule, ReducerOutcome, ViewOutcome, ViewResult};
use spacetimedb_lib::Identity;
use spacetimedb_sats::{AlgebraicValue as V, ProductValue};
use storage::Database;

use crate::harness::{assert_committed, caller, enc, hosted, options, rows, OWNER};

const ALICE: Identity = Identity::from_byte_array([0xa1; 32]);
const BOB: Identity = Identity::from_byte_array([0xb0; 32]);

fn add_note(module: &HostedModule, db: &Database, owner: Identity, text: &str) -> storage::TxDelta {
    let result = module.call_reducer(db, "add_note", caller(owner), &enc(text));
    assert_committed(&result, "add_note");
    match result.outcome {
        ReducerOutcome::Committed { delta } => delta,
        _ => unreachable!(),
    }
}

fn view_rows(result: &ViewResult) -> &[ProductValue] {
    match &result.outcome {
        ViewOutcome::Rows { rows } => rows,
        other => panic!(
            "the view did not return rows: {other:?}\nlogs: {:#?}",
            result.logs
        ),
    }
}

/// The `text` column of `my_notes` rows (`Note { id, owner, text }`), sorted.
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

/// The single `count` of `note_count` (`Option<NoteCount { count: u64 }>`).
fn count(rows: &[ProductValue]) -> u64 {
    assert_eq!(rows.len(), 1, "{rows:?}");
    match rows[0].elements[0] {
        V::U64(count) => count,
        ref other => panic!("count is {other:?}"),
    }
}

fn note_table(db: &Database) -> storage::TableId {
    db.read().unwrap().table_id_from_name("note").unwrap()
}

#[test]
fn sender_aware_views_answer_per_caller() {
    let (module, db) = hosted("abi-coverage", options());
    add_note(&module, &db, ALICE, "a1");
    add_note(&module, &db, BOB, "b1");
    add_note(&module, &db, BOB, "b2");

    let alice = module.call_view(&db, "my_notes", Some(ALICE));
    assert_eq!(texts(view_rows(&alice)), ["a1"]);
    let bob = module.call_view(&db, "my_notes", Some(BOB));
    assert_eq!(texts(view_rows(&bob)), ["b1", "b2"]);
    let owner = module.call_view(&db, "my_notes", Some(OWNER));
    assert!(view_rows(&owner).is_empty());
    assert_eq!(
        alice.reads.all_tables().into_iter().collect::<Vec<_>>(),
        [note_table(&db)]
    );
    assert_eq!(
        module.call_view(&db, "my_notes", None).outcome,
        ViewOutcome::NeedsSender {
            view: "my_notes".into()
        }
    );
}

#[test]
fn anonymous_views_ignore_the_sender_and_change_nothing() {
    let (module, db) = hosted("abi-coverage", options());
    let empty = module.call_view(&db, "note_count", None);
    assert_eq!(count(view_rows(&empty)), 0);
    add_note(&module, &db, ALICE, "a1");
    add_note(&module, &db, BOB, "b1");
    let anyone = module.call_view(&db, "note_count", None);
    assert_eq!(count(view_rows(&anyone)), 2);
    let alice = module.call_view(&db, "note_count", Some(ALICE));
    assert_eq!(count(view_rows(&alice)), 2);
    assert_eq!(
        anyone.reads.all_tables().into_iter().collect::<Vec<_>>(),
        [note_table(&db)]
    );
    assert_eq!(rows(&db, "note").len(), 2);
    assert!(matches!(
        module.call_view(&db, "no_such_view", None).outcome,
        ViewOutcome::NoSuchView { .. }
    ));
}
