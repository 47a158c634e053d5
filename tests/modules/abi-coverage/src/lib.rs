//! Test module `abi-coverage`: touches every host import a SpacetimeDB 2.10.1
//! module can use without the `unstable` feature, and checks the answers.
//!
//! Each `check_*` reducer sets up its own rows (after clearing the tables it
//! uses), performs one kind of operation and compares the result with what a
//! correct host must return; on a mismatch it returns `Err("...")`, so a host
//! that gets the ABI wrong makes the reducer fail. `must_fail_*` reducers are
//! expected to fail on a correct host (the bindings panic on the errno).
//! The views, procedures and scheduled functions at the end cover the
//! remaining entry points (`__call_view__`, `__call_view_anon__`,
//! `__call_procedure__`) and imports (`procedure_*`, `get_jwt`, timers).

use std::ops::Bound;

use spacetimedb::rand::Rng;
use spacetimedb::{
    procedure, reducer, table, view, AnonymousViewContext, ConnectionId, Identity,
    ProcedureContext, ReducerContext, ScheduleAt, SpacetimeType, Table, TimeDuration, Timestamp,
    TryInsertError, ViewContext,
};

/// Returns `Err(format!(...))` from the enclosing function unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Fails unless `left == right`, naming the expression that differed.
macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{} == {} failed: {:?} != {:?}",
                stringify!($left),
                stringify!($right),
                left,
                right
            ));
        }
    }};
}

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

/// The main test table: auto-inc primary key, a unique string, a single-column
/// B-tree on a signed integer and on a string, a two-column B-tree, and
/// single- and two-column hash indexes.
#[table(
    accessor = item,
    public,
    index(accessor = by_grp_rank, btree(columns = [grp, rank])),
    index(accessor = by_bucket_flag, hash(columns = [bucket, flag]))
)]
#[derive(Clone, PartialEq)]
pub struct Item {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[unique]
    code: String,
    #[index(btree)]
    score: i32,
    #[index(btree)]
    tag: String,
    grp: u32,
    rank: u32,
    #[index(hash)]
    bucket: u16,
    flag: bool,
}

/// A unique column served by a direct index, and a private table.
#[table(accessor = slot, private)]
#[derive(Clone, PartialEq)]
pub struct Slot {
    #[unique]
    #[index(direct)]
    slot: u8,
    label: String,
}

/// A non-key auto-inc column of a signed type, and a table without a primary key.
#[table(accessor = counter)]
#[derive(Clone, PartialEq)]
pub struct Counter {
    #[auto_inc]
    seq: i64,
    name: String,
}

/// Rows big enough that one does not fit the guest's default 64 KiB row buffer.
#[table(accessor = blob)]
#[derive(Clone, PartialEq)]
pub struct Blob {
    #[primary_key]
    id: u32,
    data: Vec<u8>,
}

/// Rows owned by identities, read by the views.
#[table(accessor = note, public)]
#[derive(Clone, PartialEq)]
pub struct Note {
    #[primary_key]
    #[auto_inc]
    id: u64,
    #[index(btree)]
    owner: Identity,
    text: String,
}

/// Rows written by procedures inside `with_tx`.
#[table(accessor = proc_row, public)]
#[derive(Clone, PartialEq)]
pub struct ProcRow {
    #[primary_key]
    #[auto_inc]
    id: u64,
    value: u64,
}

/// Schedule of the `tick` reducer.
#[table(accessor = tick_schedule, scheduled(tick))]
pub struct TickSchedule {
    #[primary_key]
    #[auto_inc]
    scheduled_id: u64,
    scheduled_at: ScheduleAt,
    label: String,
}

/// Schedule of the `scheduled_proc` procedure.
#[table(accessor = proc_schedule, scheduled(scheduled_proc))]
pub struct ProcSchedule {
    #[primary_key]
    #[auto_inc]
    scheduled_id: u64,
    scheduled_at: ScheduleAt,
}

/// One row per scheduled run of `tick` or `scheduled_proc`.
#[table(accessor = run_log, public)]
#[derive(Clone, PartialEq)]
pub struct RunLog {
    #[primary_key]
    #[auto_inc]
    id: u64,
    label: String,
    at: Timestamp,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn item(code: &str, score: i32, tag: &str, grp: u32, rank: u32, bucket: u16, flag: bool) -> Item {
    Item {
        id: 0,
        code: code.to_string(),
        score,
        tag: tag.to_string(),
        grp,
        rank,
        bucket,
        flag,
    }
}

/// Empties `item` and inserts a fixed set of rows; returns them with their ids.
///
/// scores: -100, -1, 0, 1, 5, 100; tags: "", "a", "ab", "b", "ba", "c";
/// (grp, rank): (1,1) (1,2) (1,3) (2,1) (2,2) (3,0); buckets: 7 7 7 8 8 9.
fn fixture(ctx: &ReducerContext) -> Result<Vec<Item>, String> {
    ctx.db.item().clear();
    ensure_eq!(ctx.db.item().count(), 0);
    let rows = [
        item("m1", 5, "b", 1, 1, 7, true),
        item("m2", -1, "a", 1, 2, 7, false),
        item("m3", 100, "ab", 1, 3, 7, true),
        item("m4", 0, "", 2, 1, 8, false),
        item("m5", -100, "c", 2, 2, 8, true),
        item("m6", 1, "ba", 3, 0, 9, false),
    ];
    Ok(rows
        .into_iter()
        .map(|row| ctx.db.item().insert(row))
        .collect())
}

/// The sorted `code`s of some rows, for order-independent comparison.
fn codes(rows: impl Iterator<Item = Item>) -> Vec<String> {
    let mut codes: Vec<String> = rows.map(|row| row.code).collect();
    codes.sort();
    codes
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Table-level operations
// ---------------------------------------------------------------------------

/// `insert` returns the row, `count` and `iter` see every inserted row.
#[reducer]
pub fn check_insert_count_iter(ctx: &ReducerContext) -> Result<(), String> {
    let inserted = fixture(ctx)?;
    ensure_eq!(ctx.db.item().count(), 6);
    let mut seen: Vec<Item> = ctx.db.item().iter().collect();
    seen.sort_by_key(|row| row.id);
    let mut expected = inserted.clone();
    expected.sort_by_key(|row| row.id);
    ensure!(
        seen == expected,
        "iter returned different rows than were inserted"
    );
    Ok(())
}

/// Auto-inc write-back: a 0 in an auto-inc column is replaced by a fresh,
/// increasing value in the returned row and in the stored row; a non-zero
/// value is kept. Covers a `u64` primary key and a non-key `i64` column.
#[reducer]
pub fn check_auto_inc(ctx: &ReducerContext) -> Result<(), String> {
    ctx.db.item().clear();
    let first = ctx.db.item().insert(item("a1", 0, "", 0, 0, 0, false));
    let second = ctx.db.item().insert(item("a2", 0, "", 0, 0, 0, false));
    ensure!(
        first.id != 0,
        "auto-inc id was not written back: {}",
        first.id
    );
    ensure!(
        second.id > first.id,
        "ids not increasing: {} then {}",
        first.id,
        second.id
    );
    let stored = ctx.db.item().id().find(second.id);
    ensure!(
        stored.as_ref() == Some(&second),
        "stored row differs from returned row"
    );

    let mut explicit = item("a3", 0, "", 0, 0, 0, false);
    explicit.id = second.id + 1_000_000;
    let kept = ctx.db.item().insert(explicit.clone());
    ensure_eq!(kept.id, explicit.id);

    ctx.db.counter().clear();
    let c1 = ctx.db.counter().insert(Counter {
        seq: 0,
        name: "c1".into(),
    });
    let c2 = ctx.db.counter().insert(Counter {
        seq: 0,
        name: "c2".into(),
    });
    ensure!(c1.seq > 0, "i64 auto-inc not written back: {}", c1.seq);
    ensure!(
        c2.seq > c1.seq,
        "i64 sequence not increasing: {} then {}",
        c1.seq,
        c2.seq
    );
    let c3 = ctx.db.counter().insert(Counter {
        seq: -5,
        name: "c3".into(),
    });
    ensure_eq!(c3.seq, -5);
    let mut names: Vec<(i64, String)> = ctx.db.counter().iter().map(|c| (c.seq, c.name)).collect();
    names.sort();
    ensure_eq!(
        names,
        vec![
            (-5, "c3".to_string()),
            (c1.seq, "c1".to_string()),
            (c2.seq, "c2".to_string())
        ]
    );
    Ok(())
}

/// `try_insert` reports unique violations on the primary key and on a
/// `#[unique]` column as `Err(UniqueConstraintViolation)` without changing the
/// table; inserting an exact duplicate row is an `Ok` no-op (set semantics).
#[reducer]
pub fn check_unique_violation(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    let mut same_code = item("m1", 42, "z", 9, 9, 1, false);
    same_code.id = 999_999;
    match ctx.db.item().try_insert(same_code) {
        Err(TryInsertError::UniqueConstraintViolation(_)) => {}
        Err(TryInsertError::AutoIncOverflow(_)) => {
            return Err("unique code: got AutoIncOverflow".into())
        }
        Ok(_) => return Err("duplicate unique code was accepted".into()),
    }
    let mut same_id = item("fresh", 42, "z", 9, 9, 1, false);
    same_id.id = rows[0].id;
    match ctx.db.item().try_insert(same_id) {
        Err(TryInsertError::UniqueConstraintViolation(_)) => {}
        Err(TryInsertError::AutoIncOverflow(_)) => {
            return Err("duplicate pk: got AutoIncOverflow".into())
        }
        Ok(_) => return Err("duplicate primary key was accepted".into()),
    }
    ensure_eq!(ctx.db.item().count(), 6);
    let again = ctx
        .db
        .item()
        .try_insert(rows[2].clone())
        .map_err(|e| e.to_string())?;
    ensure!(again == rows[2], "re-inserting an identical row changed it");
    ensure_eq!(ctx.db.item().count(), 6);

    ctx.db.slot().clear();
    ctx.db.slot().insert(Slot {
        slot: 3,
        label: "x".into(),
    });
    match ctx.db.slot().try_insert(Slot {
        slot: 3,
        label: "y".into(),
    }) {
        Err(TryInsertError::UniqueConstraintViolation(_)) => {}
        _ => return Err("duplicate direct-index key was accepted".into()),
    }
    Ok(())
}

/// `insert` (not `try_insert`) of a duplicate key panics in the bindings.
#[reducer]
pub fn must_fail_insert_duplicate(ctx: &ReducerContext) {
    let rows = fixture(ctx).expect("fixture");
    let mut dup = item("m1", 0, "", 0, 0, 0, false);
    dup.id = rows[5].id + 1_000;
    ctx.db.item().insert(dup);
}

/// Updating through a primary key whose row does not exist panics.
#[reducer]
pub fn must_fail_update_missing_row(ctx: &ReducerContext) {
    ctx.db.item().clear();
    let mut ghost = item("ghost", 0, "", 0, 0, 0, false);
    ghost.id = 4242;
    ctx.db.item().id().update(ghost);
}

/// `count` reflects inserts and deletes of the current transaction.
#[reducer]
pub fn check_count(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    ensure_eq!(ctx.db.item().count(), 6);
    ctx.db.item().id().delete(rows[0].id);
    ensure_eq!(ctx.db.item().count(), 5);
    ctx.db.item().insert(item("n7", 7, "", 0, 0, 0, false));
    ensure_eq!(ctx.db.item().count(), 6);
    ensure_eq!(ctx.db.item().iter().count(), 6);
    Ok(())
}

/// `clear` returns the number of rows removed and leaves the table empty.
#[reducer]
pub fn check_clear(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    ensure_eq!(ctx.db.item().clear(), 6);
    ensure_eq!(ctx.db.item().count(), 0);
    ensure_eq!(ctx.db.item().iter().count(), 0);
    ensure_eq!(ctx.db.item().clear(), 0);
    ensure!(
        ctx.db.item().code().find("m1".to_string()).is_none(),
        "index still finds a cleared row"
    );
    Ok(())
}

/// `Table::delete(row)` deletes by value: true once, then false; a row that
/// differs in any column is not deleted.
#[reducer]
pub fn check_delete_by_value(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    let mut different = rows[1].clone();
    different.score += 1;
    ensure!(
        !ctx.db.item().delete(different),
        "deleted a row that differs in `score`"
    );
    ensure_eq!(ctx.db.item().count(), 6);
    ensure!(
        ctx.db.item().delete(rows[1].clone()),
        "delete of a present row returned false"
    );
    ensure!(
        !ctx.db.item().delete(rows[1].clone()),
        "second delete of the same row returned true"
    );
    ensure_eq!(ctx.db.item().count(), 5);
    ensure!(
        ctx.db.item().id().find(rows[1].id).is_none(),
        "deleted row still found by pk"
    );

    ctx.db.counter().clear();
    let c = ctx.db.counter().insert(Counter {
        seq: 0,
        name: "by value".into(),
    });
    ensure!(
        ctx.db.counter().delete(c),
        "delete by value in a table without a key failed"
    );
    ensure_eq!(ctx.db.counter().count(), 0);
    Ok(())
}

/// Deleting rows while iterating: the iterator is a snapshot taken when it was
/// opened, so every row is visited exactly once and rows inserted meanwhile
/// are not visited.
#[reducer]
pub fn check_delete_while_iterating(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    let mut visited = Vec::new();
    for row in ctx.db.item().iter() {
        ensure!(
            ctx.db.item().id().delete(row.id),
            "row {} vanished during iteration",
            row.id
        );
        ctx.db
            .item()
            .insert(item(&format!("new-{}", row.code), 0, "", 0, 0, 0, false));
        visited.push(row.code);
    }
    visited.sort();
    ensure_eq!(visited, codes(rows.into_iter()));
    ensure_eq!(ctx.db.item().count(), 6);
    ensure!(
        ctx.db.item().iter().all(|row| row.code.starts_with("new-")),
        "an old row survived"
    );
    Ok(())
}

/// Many rows: iteration spans several buffer chunks.
#[reducer]
pub fn check_many_rows(ctx: &ReducerContext, n: u32) -> Result<(), String> {
    ctx.db.item().clear();
    for i in 0..n {
        ctx.db.item().insert(item(
            &format!("row-{i:06}"),
            i as i32,
            "many",
            i % 10,
            i,
            (i % 5) as u16,
            false,
        ));
    }
    ensure_eq!(ctx.db.item().count(), u64::from(n));
    let mut scores: Vec<i32> = ctx.db.item().iter().map(|row| row.score).collect();
    scores.sort();
    ensure!(
        scores == (0..n as i32).collect::<Vec<_>>(),
        "iteration lost or duplicated rows"
    );
    ensure_eq!(ctx.db.item().tag().filter("many").count(), n as usize);
    ensure_eq!(ctx.db.item().clear(), u64::from(n));
    Ok(())
}

/// A row larger than the guest's 64 KiB iteration buffer (the host must
/// answer BUFFER_TOO_SMALL with the needed size, and the guest retries).
#[reducer]
pub fn check_big_row(ctx: &ReducerContext, size: u32) -> Result<(), String> {
    ctx.db.blob().clear();
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    ctx.db.blob().insert(Blob {
        id: 1,
        data: data.clone(),
    });
    ctx.db.blob().insert(Blob {
        id: 2,
        data: vec![7; 10],
    });
    let found = ctx.db.blob().id().find(1).ok_or("big row not found")?;
    ensure!(
        found.data == data,
        "big row came back different ({} bytes)",
        found.data.len()
    );
    let mut all: Vec<Blob> = ctx.db.blob().iter().collect();
    all.sort_by_key(|blob| blob.id);
    ensure_eq!(all.len(), 2);
    ensure!(
        all[0].data == data && all[1].data == vec![7; 10],
        "iterated blobs differ"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Unique columns
// ---------------------------------------------------------------------------

/// `find` on the primary key and on a unique string column; a missing key
/// gives `None`.
#[reducer]
pub fn check_unique_find(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    for row in &rows {
        ensure!(
            ctx.db.item().id().find(row.id).as_ref() == Some(row),
            "find by id {} failed",
            row.id
        );
        ensure!(
            ctx.db.item().code().find(&row.code).as_ref() == Some(row),
            "find by code {} failed",
            row.code
        );
    }
    ensure!(
        ctx.db.item().id().find(u64::MAX).is_none(),
        "found a missing id"
    );
    ensure!(
        ctx.db.item().code().find("nope".to_string()).is_none(),
        "found a missing code"
    );
    ensure!(
        ctx.db.item().code().find("m".to_string()).is_none(),
        "prefix of a code matched"
    );
    Ok(())
}

/// `update` through the primary key replaces the row in place (indexes follow).
#[reducer]
pub fn check_update_by_pk(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    let mut changed = rows[0].clone();
    changed.code = "renamed".into();
    changed.score = 77;
    let updated = ctx.db.item().id().update(changed.clone());
    ensure!(updated == changed, "update returned a different row");
    ensure_eq!(ctx.db.item().count(), 6);
    ensure!(
        ctx.db.item().id().find(rows[0].id) == Some(changed),
        "find after update differs"
    );
    ensure!(
        ctx.db.item().code().find("m1".to_string()).is_none(),
        "old unique value still indexed"
    );
    ensure_eq!(codes(ctx.db.item().score().filter(77)), strs(&["renamed"]));
    ensure_eq!(ctx.db.item().score().filter(5).count(), 0);
    Ok(())
}

/// Deleting through unique columns (primary key, unique string, direct index).
#[reducer]
pub fn check_unique_delete(ctx: &ReducerContext) -> Result<(), String> {
    let rows = fixture(ctx)?;
    ensure!(
        ctx.db.item().id().delete(rows[0].id),
        "delete by id returned false"
    );
    ensure!(
        !ctx.db.item().id().delete(rows[0].id),
        "second delete by id returned true"
    );
    ensure!(
        ctx.db.item().code().delete("m2".to_string()),
        "delete by code returned false"
    );
    ensure!(
        !ctx.db.item().code().delete("m2".to_string()),
        "second delete by code returned true"
    );
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m3", "m4", "m5", "m6"]));
    Ok(())
}

/// A unique `u8` column served by a direct index: find, range scan, delete.
#[reducer]
pub fn check_direct_index(ctx: &ReducerContext) -> Result<(), String> {
    ctx.db.slot().clear();
    for slot in [0u8, 3, 4, 200, 255] {
        ctx.db.slot().insert(Slot {
            slot,
            label: format!("s{slot}"),
        });
    }
    ensure_eq!(
        ctx.db.slot().slot().find(200u8).map(|s| s.label),
        Some("s200".to_string())
    );
    ensure!(
        ctx.db.slot().slot().find(1u8).is_none(),
        "found an empty slot"
    );
    ensure!(
        ctx.db.slot().slot().delete(255u8),
        "delete of slot 255 returned false"
    );
    ensure!(
        !ctx.db.slot().slot().delete(255u8),
        "second delete of slot 255 returned true"
    );
    ensure_eq!(ctx.db.slot().count(), 4);
    Ok(())
}

// ---------------------------------------------------------------------------
// B-tree indexes: point and range scans
// ---------------------------------------------------------------------------

/// Point scans on single-column B-trees (integer and string) and on a
/// two-column B-tree (full key and one-column prefix).
#[reducer]
pub fn check_point_scans(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    ctx.db.item().insert(item("m7", 5, "b", 1, 9, 7, false));
    ensure_eq!(codes(ctx.db.item().score().filter(5)), strs(&["m1", "m7"]));
    ensure_eq!(codes(ctx.db.item().score().filter(-100)), strs(&["m5"]));
    ensure_eq!(ctx.db.item().score().filter(6).count(), 0);
    ensure_eq!(codes(ctx.db.item().tag().filter("b")), strs(&["m1", "m7"]));
    ensure_eq!(codes(ctx.db.item().tag().filter("")), strs(&["m4"]));
    ensure_eq!(ctx.db.item().tag().filter("bb").count(), 0);
    ensure_eq!(
        codes(ctx.db.item().by_grp_rank().filter((1u32, 2u32))),
        strs(&["m2"])
    );
    ensure_eq!(
        codes(ctx.db.item().by_grp_rank().filter((2u32, 9u32))),
        Vec::<String>::new()
    );
    ensure_eq!(
        codes(ctx.db.item().by_grp_rank().filter(1u32)),
        strs(&["m1", "m2", "m3", "m7"])
    );
    ensure_eq!(
        codes(ctx.db.item().by_grp_rank().filter((3u32,))),
        strs(&["m6"])
    );
    Ok(())
}

/// Range scans with every bound kind (included, excluded, unbounded) on a
/// signed integer column: the host must order by value, not by bytes
/// (-1 is `ff ff ff ff` little-endian, yet sorts below 0).
#[reducer]
pub fn check_range_bounds(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    let idx = ctx.db.item().score();
    // scores: m5=-100, m2=-1, m4=0, m6=1, m1=5, m3=100
    ensure_eq!(codes(idx.filter(-1..5)), strs(&["m2", "m4", "m6"]));
    ensure_eq!(codes(idx.filter(-1..=5)), strs(&["m1", "m2", "m4", "m6"]));
    ensure_eq!(codes(idx.filter(0..)), strs(&["m1", "m3", "m4", "m6"]));
    ensure_eq!(codes(idx.filter(..0)), strs(&["m2", "m5"]));
    ensure_eq!(codes(idx.filter(..=0)), strs(&["m2", "m4", "m5"]));
    ensure_eq!(
        codes(idx.filter((Bound::Excluded(-100), Bound::Excluded(100)))),
        strs(&["m1", "m2", "m4", "m6"])
    );
    ensure_eq!(
        codes(idx.filter((Bound::Excluded(-1), Bound::Included(1)))),
        strs(&["m4", "m6"])
    );
    ensure_eq!(
        codes(idx.filter((Bound::Included(1), Bound::Unbounded))),
        strs(&["m1", "m3", "m6"])
    );
    ensure_eq!(
        codes(idx.filter((Bound::Unbounded, Bound::Excluded(-1)))),
        strs(&["m5"])
    );
    ensure_eq!(
        codes(idx.filter((Bound::<i32>::Unbounded, Bound::Unbounded))),
        strs(&["m1", "m2", "m3", "m4", "m5", "m6"])
    );
    ensure_eq!(
        codes(idx.filter(i32::MIN..=i32::MAX)),
        strs(&["m1", "m2", "m3", "m4", "m5", "m6"])
    );
    // Empty and inverted ranges select nothing.
    ensure_eq!(idx.filter(5..5).count(), 0);
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = idx.filter(5..-5).count();
    ensure_eq!(inverted, 0);
    ensure_eq!(
        idx.filter((Bound::Excluded(0), Bound::Excluded(1))).count(),
        0
    );
    Ok(())
}

/// Range scans on a string B-tree: lexicographic order of the text, not of
/// the length-prefixed BSATN bytes. (Range bounds on strings must be `&str`:
/// the bindings implement `FilterableValue` for `&str`/`&String`, not `String`.)
#[reducer]
pub fn check_string_ranges(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    let idx = ctx.db.item().tag();
    // tags: m4="", m2="a", m3="ab", m1="b", m6="ba", m5="c"
    ensure_eq!(codes(idx.filter("a".."b")), strs(&["m2", "m3"]));
    ensure_eq!(codes(idx.filter("ab"..)), strs(&["m1", "m3", "m5", "m6"]));
    ensure_eq!(codes(idx.filter(..="a")), strs(&["m2", "m4"]));
    ensure_eq!(
        codes(idx.filter((Bound::Excluded("b"), Bound::Unbounded))),
        strs(&["m5", "m6"])
    );
    Ok(())
}

/// Range scans on a two-column B-tree: a point prefix followed by a range on
/// the second column, and a range on the first column alone.
#[reducer]
pub fn check_multi_column_ranges(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    let idx = ctx.db.item().by_grp_rank();
    // (grp, rank): m1=(1,1) m2=(1,2) m3=(1,3) m4=(2,1) m5=(2,2) m6=(3,0)
    ensure_eq!(codes(idx.filter((1u32, 2u32..))), strs(&["m2", "m3"]));
    ensure_eq!(codes(idx.filter((1u32, ..2u32))), strs(&["m1"]));
    ensure_eq!(codes(idx.filter((1u32, 1u32..=2u32))), strs(&["m1", "m2"]));
    ensure_eq!(
        codes(idx.filter((2u32, (Bound::Excluded(1u32), Bound::Unbounded)))),
        strs(&["m5"])
    );
    ensure_eq!(codes(idx.filter(2u32..)), strs(&["m4", "m5", "m6"]));
    ensure_eq!(codes(idx.filter(..2u32)), strs(&["m1", "m2", "m3"]));
    ensure_eq!(
        codes(idx.filter(1u32..=2u32)),
        strs(&["m1", "m2", "m3", "m4", "m5"])
    );
    ensure_eq!(idx.filter((3u32, 1u32..)).count(), 0);
    Ok(())
}

/// Deleting through a B-tree range returns the number removed and removes
/// exactly the rows the same range would scan.
#[reducer]
pub fn check_range_delete(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    ensure_eq!(ctx.db.item().score().delete(-1..=1), 3);
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m1", "m3", "m5"]));
    ensure_eq!(ctx.db.item().score().delete(-1..=1), 0);
    ensure_eq!(
        ctx.db
            .item()
            .score()
            .delete((Bound::Excluded(5), Bound::Unbounded)),
        1
    );
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m1", "m5"]));

    fixture(ctx)?;
    ensure_eq!(ctx.db.item().by_grp_rank().delete((1u32, 2u32..)), 2);
    ensure_eq!(ctx.db.item().by_grp_rank().delete(2u32..), 3);
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m1"]));
    Ok(())
}

/// Deleting through a B-tree point: single column, full two-column key and a
/// one-column prefix of the two-column index.
#[reducer]
pub fn check_point_delete(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    ctx.db.item().insert(item("m7", 5, "q", 4, 4, 1, false));
    ensure_eq!(ctx.db.item().score().delete(5), 2);
    ensure_eq!(ctx.db.item().score().delete(5), 0);
    ensure_eq!(ctx.db.item().tag().delete("c"), 1);
    ensure_eq!(ctx.db.item().by_grp_rank().delete((1u32, 2u32)), 1);
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m3", "m4", "m6"]));
    ensure_eq!(ctx.db.item().by_grp_rank().delete(1u32), 1);
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m4", "m6"]));
    Ok(())
}

// ---------------------------------------------------------------------------
// Hash indexes
// ---------------------------------------------------------------------------

/// Point scans and point deletes on single- and two-column hash indexes.
#[reducer]
pub fn check_hash_index(ctx: &ReducerContext) -> Result<(), String> {
    fixture(ctx)?;
    // (bucket, flag): m1=(7,t) m2=(7,f) m3=(7,t) m4=(8,f) m5=(8,t) m6=(9,f)
    ensure_eq!(
        codes(ctx.db.item().bucket().filter(7u16)),
        strs(&["m1", "m2", "m3"])
    );
    ensure_eq!(ctx.db.item().bucket().filter(10u16).count(), 0);
    ensure_eq!(
        codes(ctx.db.item().by_bucket_flag().filter((7u16, true))),
        strs(&["m1", "m3"])
    );
    ensure_eq!(
        codes(ctx.db.item().by_bucket_flag().filter((8u16, true))),
        strs(&["m5"])
    );
    ensure_eq!(ctx.db.item().by_bucket_flag().delete((7u16, true)), 2);
    ensure_eq!(ctx.db.item().bucket().delete(8u16), 2);
    ensure_eq!(ctx.db.item().bucket().delete(8u16), 0);
    ensure_eq!(codes(ctx.db.item().iter()), strs(&["m2", "m6"]));
    Ok(())
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// Inserts a row then fails: the host must roll the insert back.
#[reducer]
pub fn insert_then_fail(ctx: &ReducerContext, code: String) -> Result<(), String> {
    ctx.db
        .item()
        .insert(item(&code, 0, "rollback", 0, 0, 0, false));
    Err(format!("deliberate failure after inserting {code}"))
}

/// Inserts a row then panics: the host must roll the insert back.
#[reducer]
pub fn insert_then_panic(ctx: &ReducerContext, code: String) {
    ctx.db
        .item()
        .insert(item(&code, 0, "rollback", 0, 0, 0, false));
    panic!("deliberate panic after inserting {code}");
}

/// Inserts one row that later calls can look for.
#[reducer]
pub fn insert_item(ctx: &ReducerContext, code: String, score: i32) {
    ctx.db.item().insert(item(&code, score, "", 0, 0, 0, false));
}

/// Fails unless exactly the given codes are in `item`.
#[reducer]
pub fn check_item_codes(ctx: &ReducerContext, expected: Vec<String>) -> Result<(), String> {
    let mut expected = expected;
    expected.sort();
    ensure_eq!(codes(ctx.db.item().iter()), expected);
    Ok(())
}

// ---------------------------------------------------------------------------
// Context: caller, time, identity, randomness, logging
// ---------------------------------------------------------------------------

/// The caller, connection id and timestamp the host passed match the
/// expectations; `database_identity` (the `identity` import) is stable and
/// differs from the caller; `sender_auth` reads the JWT (`get_jwt`).
#[reducer]
pub fn check_caller(
    ctx: &ReducerContext,
    expected_sender: Identity,
    expected_connection: Option<ConnectionId>,
    expected_timestamp: Option<Timestamp>,
) -> Result<(), String> {
    ensure_eq!(ctx.sender(), expected_sender);
    ensure_eq!(ctx.connection_id(), expected_connection);
    if let Some(timestamp) = expected_timestamp {
        ensure_eq!(ctx.timestamp, timestamp);
    }
    let db = ctx.database_identity();
    ensure_eq!(db, ctx.database_identity());
    ensure!(
        db != expected_sender,
        "database identity equals the caller's"
    );
    let auth = ctx.sender_auth();
    if expected_connection.is_none() {
        ensure!(auth.jwt().is_none(), "a call without connection has a JWT");
    } else if let Some(jwt) = auth.jwt() {
        log::info!(
            "caller JWT subject={} issuer={}",
            jwt.subject(),
            jwt.issuer()
        );
    }
    Ok(())
}

/// Logs at every level, then times a block with a console timer.
#[reducer]
pub fn check_logging(_ctx: &ReducerContext) {
    log::trace!("abi-coverage trace");
    log::debug!("abi-coverage debug");
    log::info!("abi-coverage info");
    log::warn!("abi-coverage warn");
    log::error!("abi-coverage error");
    log::info!("multi\nline\nmessage with unicode: λ ✓");
    let stopwatch = spacetimedb::log_stopwatch::LogStopwatch::new("abi-coverage stopwatch");
    let mut sum = 0u64;
    for i in 0..1000u64 {
        sum = std::hint::black_box(sum + i);
    }
    stopwatch.end();
    log::info!("sum={sum}");
}

/// `ctx.random`, `ctx.rng()` and UUIDs v4/v7 from the seeded RNG.
#[reducer]
pub fn check_rng(ctx: &ReducerContext) -> Result<(), String> {
    let a: u64 = ctx.random();
    let b: u64 = ctx.random();
    ensure!(a != b, "two random u64 were equal: {a}");
    let roll: u32 = ctx.rng().gen_range(1..=6);
    ensure!((1..=6).contains(&roll), "gen_range out of range: {roll}");
    let v4 = ctx.new_uuid_v4().map_err(|e| e.to_string())?;
    ensure!(
        v4.get_version() == Some(spacetimedb::sats::uuid::Version::V4),
        "not a v4 uuid: {v4}"
    );
    let first = ctx.new_uuid_v7().map_err(|e| e.to_string())?;
    let second = ctx.new_uuid_v7().map_err(|e| e.to_string())?;
    ensure!(
        first.get_version() == Some(spacetimedb::sats::uuid::Version::V7),
        "not a v7 uuid: {first}"
    );
    ensure!(
        second > first,
        "v7 uuids not increasing: {first} then {second}"
    );
    log::info!("random {a} {b} roll={roll} v4={v4} v7={first}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

/// A composite argument type.
#[derive(SpacetimeType, Clone, PartialEq, Debug)]
pub struct Point {
    x: i32,
    y: i32,
}

/// A data-carrying enum argument type.
#[derive(SpacetimeType, Clone, PartialEq, Debug)]
pub enum Shape {
    Circle(u32),
    Rect(Point),
    Empty,
}

/// Decodes arguments of many types (sent by the test with known values) and
/// checks them: catches a host that truncates or garbles the argument bytes.
#[reducer]
#[allow(clippy::too_many_arguments)]
pub fn check_args(
    _ctx: &ReducerContext,
    small: u8,
    big: i128,
    text: String,
    list: Vec<u32>,
    maybe: Option<String>,
    point: Point,
    shape: Shape,
    flag: bool,
) -> Result<(), String> {
    ensure_eq!(small, 250u8);
    ensure_eq!(
        big,
        -170_141_183_460_469_231_731_687_303_715_884_105_728i128 + 1
    );
    ensure_eq!(text, "héllo".to_string());
    ensure_eq!(list, vec![1u32, 2, 3]);
    ensure_eq!(maybe, None::<String>);
    ensure_eq!(point, Point { x: -3, y: 4 });
    ensure_eq!(shape, Shape::Rect(Point { x: 1, y: 2 }));
    ensure!(flag, "flag was false");
    Ok(())
}

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------

/// Adds a note owned by the caller.
#[reducer]
pub fn add_note(ctx: &ReducerContext, text: String) {
    ctx.db.note().insert(Note {
        id: 0,
        owner: ctx.sender(),
        text,
    });
}

/// Deletes note `id`; only its owner may.
#[reducer]
pub fn delete_note(ctx: &ReducerContext, id: u64) -> Result<(), String> {
    match ctx.db.note().id().find(id) {
        Some(note) if note.owner == ctx.sender() => {
            ctx.db.note().id().delete(id);
            Ok(())
        }
        Some(_) => Err(format!("note {id} is not yours")),
        None => Err(format!("no note {id}")),
    }
}

/// Replaces the text of note `id`; only its owner may.
#[reducer]
pub fn edit_note(ctx: &ReducerContext, id: u64, text: String) -> Result<(), String> {
    match ctx.db.note().id().find(id) {
        Some(note) if note.owner == ctx.sender() => {
            ctx.db.note().id().update(Note { text, ..note });
            Ok(())
        }
        Some(_) => Err(format!("note {id} is not yours")),
        None => Err(format!("no note {id}")),
    }
}

/// Hands note `id` to `to`: it leaves the caller's `my_notes` and joins the
/// receiver's. Only its owner may.
#[reducer]
pub fn give_note(ctx: &ReducerContext, id: u64, to: Identity) -> Result<(), String> {
    match ctx.db.note().id().find(id) {
        Some(note) if note.owner == ctx.sender() => {
            ctx.db.note().id().update(Note { owner: to, ..note });
            Ok(())
        }
        Some(_) => Err(format!("note {id} is not yours")),
        None => Err(format!("no note {id}")),
    }
}

/// Sender-aware view: the caller's notes.
#[view(accessor = my_notes, public)]
pub fn my_notes(ctx: &ViewContext) -> Vec<Note> {
    ctx.db.note().owner().filter(ctx.sender()).collect()
}

/// The number of notes, as a one-row view result.
#[derive(SpacetimeType)]
pub struct NoteCount {
    count: u64,
}

/// Anonymous view: how many notes exist.
#[view(accessor = note_count, public)]
pub fn note_count(ctx: &AnonymousViewContext) -> Option<NoteCount> {
    Some(NoteCount {
        count: ctx.db.note().count(),
    })
}

// ---------------------------------------------------------------------------
// Procedures
// ---------------------------------------------------------------------------

/// Inserts `n` rows in one committed transaction, then tries to insert more in
/// a transaction that returns `Err` (must be rolled back), and returns the
/// number of `proc_row` rows seen in a final transaction.
#[procedure]
pub fn proc_with_tx(ctx: &mut ProcedureContext, n: u64) -> u64 {
    let before = ctx.with_tx(|tx| tx.db.proc_row().count());
    ctx.with_tx(|tx| {
        for value in 0..n {
            tx.db.proc_row().insert(ProcRow { id: 0, value });
        }
    });
    let failed: Result<(), String> = ctx.try_with_tx(|tx| {
        tx.db.proc_row().insert(ProcRow {
            id: 0,
            value: u64::MAX,
        });
        Err("roll this back".to_string())
    });
    assert!(failed.is_err(), "try_with_tx lost the error");
    let after = ctx.with_tx(|tx| tx.db.proc_row().count());
    assert_eq!(
        after,
        before + n,
        "committed {n} rows but the count went {before} -> {after}"
    );
    let stray = ctx.with_tx(|tx| {
        tx.db
            .proc_row()
            .iter()
            .filter(|row| row.value == u64::MAX)
            .count()
    });
    assert_eq!(stray, 0, "the aborted transaction's row is visible");
    after
}

/// The result of `proc_sleep`.
#[derive(SpacetimeType)]
pub struct SleepResult {
    started: Timestamp,
    woke: Timestamp,
}

/// Sleeps until `micros` after the call's timestamp (`procedure_sleep_until`).
#[procedure]
pub fn proc_sleep(ctx: &mut ProcedureContext, micros: i64) -> SleepResult {
    let started = ctx.timestamp;
    ctx.sleep_until(started + TimeDuration::from_micros(micros));
    SleepResult {
        started,
        woke: ctx.timestamp,
    }
}

/// GETs `uri` (`procedure_http_request`); returns `"status <code> <body>"` or
/// `"error <message>"`.
#[procedure]
pub fn proc_http_get(ctx: &mut ProcedureContext, uri: String) -> String {
    match ctx.http.get(uri) {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.into_body().into_string_lossy();
            format!("status {status} {body}")
        }
        Err(error) => format!("error {error}"),
    }
}

/// A procedure returning UUIDs from its own RNG, and the caller.
#[procedure]
pub fn proc_identity(ctx: &mut ProcedureContext) -> Identity {
    let uuid = ctx.new_uuid_v7().expect("uuid v7");
    log::info!(
        "procedure uuid {uuid}, database {}",
        ctx.database_identity()
    );
    ctx.sender()
}

/// Inserts `n` rows inside `with_tx`, then panics before the transaction
/// commits: a correct host rolls the rows back.
#[procedure]
pub fn proc_panic_in_tx(ctx: &mut ProcedureContext, n: u64) {
    ctx.with_tx(|tx| {
        for value in 0..n {
            tx.db.proc_row().insert(ProcRow { id: 0, value });
        }
        panic!("proc_panic_in_tx panics inside its transaction");
    });
}

// ---------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------

/// Schedules `tick` once, `delay_micros` after now, and `scheduled_proc` once.
#[reducer]
pub fn schedule_once(ctx: &ReducerContext, delay_micros: i64, label: String) {
    let at = ctx.timestamp + TimeDuration::from_micros(delay_micros);
    ctx.db.tick_schedule().insert(TickSchedule {
        scheduled_id: 0,
        scheduled_at: at.into(),
        label,
    });
    ctx.db.proc_schedule().insert(ProcSchedule {
        scheduled_id: 0,
        scheduled_at: at.into(),
    });
}

/// Schedules `tick` repeatedly every `interval_micros`.
#[reducer]
pub fn schedule_repeating(ctx: &ReducerContext, interval_micros: i64, label: String) {
    ctx.db.tick_schedule().insert(TickSchedule {
        scheduled_id: 0,
        scheduled_at: TimeDuration::from_micros(interval_micros).into(),
        label,
    });
}

/// Removes every schedule.
#[reducer]
pub fn cancel_schedules(ctx: &ReducerContext) {
    ctx.db.tick_schedule().clear();
    ctx.db.proc_schedule().clear();
}

/// Scheduled reducer: records the run; fails unless the host called it as
/// the database itself, without a connection.
#[reducer]
pub fn tick(ctx: &ReducerContext, schedule: TickSchedule) -> Result<(), String> {
    ensure!(
        ctx.connection_id().is_none(),
        "a scheduled call has a connection id"
    );
    ensure_eq!(ctx.sender(), ctx.database_identity());
    ctx.db.run_log().insert(RunLog {
        id: 0,
        label: schedule.label,
        at: ctx.timestamp,
    });
    Ok(())
}

/// Scheduled procedure: records the run in a transaction.
#[procedure]
pub fn scheduled_proc(ctx: &mut ProcedureContext, _schedule: ProcSchedule) {
    let at = ctx.timestamp;
    ctx.with_tx(|tx| {
        tx.db.run_log().insert(RunLog {
            id: 0,
            label: "scheduled_proc".to_string(),
            at,
        });
    });
}

/// Fails unless `run_log` has exactly `expected` rows labelled `label`.
#[reducer]
pub fn check_run_count(ctx: &ReducerContext, label: String, expected: u64) -> Result<(), String> {
    let runs = ctx
        .db
        .run_log()
        .iter()
        .filter(|run| run.label == label)
        .count() as u64;
    ensure_eq!(runs, expected);
    Ok(())
}
