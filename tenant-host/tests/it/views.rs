// Protects view evaluation and materialisation against the real abi-coverage
// module: the sender-aware `my_notes` answers per caller, the anonymous
// `note_count` once for everyone, each evaluation records the tables it read
// and changes nothing, and the view cache re-evaluates exactly the entries
// whose read set a commit touched.

use spacetimedb_sats::{AlgebraicValue as V, ProductValue};
use storage::Database;
use tenant_host::runtime::{HostedModule, ReducerOutcome, ViewCache, ViewOutcome, ViewResult};

use crate::harness::{assert_committed, caller, enc, hosted, options, rows, OWNER};

const ALICE: [u8; 32] = [0xa1; 32];
const BOB: [u8; 32] = [0xb0; 32];

fn add_note(module: &HostedModule, db: &Database, owner: [u8; 32], text: &str) -> storage::TxDelta {
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
        alice.reads.iter().copied().collect::<Vec<_>>(),
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
        anyone.reads.iter().copied().collect::<Vec<_>>(),
        [note_table(&db)]
    );
    assert_eq!(rows(&db, "note").len(), 2);
    assert!(matches!(
        module.call_view(&db, "no_such_view", None).outcome,
        ViewOutcome::NoSuchView { .. }
    ));
}

#[test]
fn the_cache_refreshes_only_entries_a_commit_touched() {
    let (module, db) = hosted("abi-coverage", options());
    add_note(&module, &db, ALICE, "a1");
    add_note(&module, &db, BOB, "b1");

    let mut cache = ViewCache::new();
    let alice = ViewCache::key(&module, "my_notes", Some(ALICE)).unwrap();
    let bob = ViewCache::key(&module, "my_notes", Some(BOB)).unwrap();
    let total = ViewCache::key(&module, "note_count", Some(ALICE)).unwrap();
    assert_eq!(
        total.sender, None,
        "anonymous views are keyed without a sender"
    );
    let entry = cache
        .materialise(&module, &db, "my_notes", Some(ALICE))
        .unwrap();
    assert_eq!(texts(&entry.rows), ["a1"]);
    cache
        .materialise(&module, &db, "my_notes", Some(BOB))
        .unwrap();
    let entry = cache.materialise(&module, &db, "note_count", None).unwrap();
    assert_eq!(count(&entry.rows), 2);
    assert_eq!(cache.len(), 3);

    // A commit to a table no view read refreshes nothing.
    let item = module.call_reducer(
        &db,
        "insert_item",
        caller(OWNER),
        &[enc("unrelated"), enc(&1i32)].concat(),
    );
    assert_committed(&item, "insert_item");
    let ReducerOutcome::Committed { delta } = item.outcome else {
        unreachable!()
    };
    assert!(cache.affected_by(&delta).is_empty());
    let report = cache.refresh(&module, &db, &delta);
    assert!(report.refreshed.is_empty() && report.failed.is_empty());

    // A new note of Alice's touches `note`: every entry is re-evaluated, and
    // only Alice's notes and the count change.
    let delta = add_note(&module, &db, ALICE, "a2");
    let mut report = cache.refresh(&module, &db, &delta);
    report.refreshed.sort();
    let mut expected = vec![(alice, true), (bob, false), (total, true)];
    expected.sort();
    assert_eq!(report.refreshed, expected);
    assert!(report.failed.is_empty());
    assert_eq!(texts(&cache.get(&alice).unwrap().rows), ["a1", "a2"]);
    assert_eq!(texts(&cache.get(&bob).unwrap().rows), ["b1"]);
    assert_eq!(count(&cache.get(&total).unwrap().rows), 3);

    // A procedure's commits refresh the cache the same way.
    cache.remove(&bob);
    let proc = module.call_procedure(&db, "proc_with_tx", caller(OWNER), &enc(&1u64));
    for delta in &proc.commits {
        let report = cache.refresh(&module, &db, delta);
        assert!(report.refreshed.is_empty(), "proc_row is read by no view");
    }
    assert_eq!(cache.len(), 2);
}
