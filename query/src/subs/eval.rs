//! Evaluating compiled subscription queries: whole results and per-transaction deltas.
//!
//! Owns: access paths for initial results (an index point lookup for an
//! indexed `col = value` conjunct, else a scan; index lookups for join
//! partners), netting a table's delta into signed row counts, the signed join
//! delta `dL⋈R' + L'⋈dR − dL⋈dR` and turning signed counts per returned row
//! into inserts and deletes, and event-table rows; initial results are
//! charged to a [`Budget`] row by row.
//! Does not own: compiling queries or their keys (`subs`), or who receives
//! which rows.
//!
//! Partner lookups use the join column's index on the state after the
//! transaction. The checker requires indexes on join columns, so a scan
//! (filtered on the join column) only happens if the index disappeared or
//! for a join without `ON` (a cross product, where every row is a partner).

use std::collections::HashMap;

use spacetimedb_sats::AlgebraicValue;
use storage::{Row, State, TableDelta, TableId, TxDelta};

use super::{Plan, Query, QueryDelta, Side};
use crate::budget::{bsatn_len, Budget, LimitExceeded};
use crate::sql::eval::matches;
use crate::sql::{BoundExpr, BoundOperand, CmpOp, ColPos};

/// Test-only fault injection: `On` drops one delta row so tests can prove
/// the differential check catches it. The variant does not exist outside tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Canary {
    Off,
    #[cfg(test)]
    On,
}

fn passes(filter: &Option<BoundExpr>, tuple: &[&Row]) -> bool {
    filter.as_ref().is_none_or(|f| matches(f, tuple))
}

/// `col = value` conjuncts of `e` on table `table`.
fn point_candidates<'e>(
    e: &'e BoundExpr,
    table: usize,
    out: &mut Vec<(usize, &'e AlgebraicValue)>,
) {
    match e {
        BoundExpr::And(a, b) => {
            point_candidates(a, table, out);
            point_candidates(b, table, out);
        }
        BoundExpr::Cmp(
            BoundOperand::Column(ColPos { table: t, col }),
            CmpOp::Eq,
            BoundOperand::Value(v),
        ) if *t == table => out.push((*col, v)),
        _ => {}
    }
}

/// Rows of `table` that can satisfy `filter`: an index point lookup when the
/// filter pins an indexed column of this table, else every row.
fn candidates<'s>(
    state: &'s State,
    schema: &storage::TableSchema,
    table: usize,
    filter: &Option<BoundExpr>,
) -> Box<dyn Iterator<Item = &'s Row> + 's> {
    if let Some(f) = filter {
        let mut points = Vec::new();
        point_candidates(f, table, &mut points);
        for (col, v) in points {
            if let Some(index) = super::index_on(schema, col) {
                if let Ok(rows) = state.index_point(index, v) {
                    return rows;
                }
            }
        }
    }
    match state.scan(schema.table_id) {
        Ok(rows) => rows,
        Err(_) => Box::new(std::iter::empty()),
    }
}

/// Rows of `side` in `state` that join with `key` (every row without `ON`).
fn partners<'s>(
    state: &'s State,
    side: &Side,
    key: Option<&AlgebraicValue>,
) -> Box<dyn Iterator<Item = &'s Row> + 's> {
    let (Some(col), Some(key)) = (side.col, key) else {
        return match state.scan(side.schema.table_id) {
            Ok(rows) => rows,
            Err(_) => Box::new(std::iter::empty()),
        };
    };
    if let Some(index) = side.index {
        if let Ok(rows) = state.index_point(index, key) {
            return rows;
        }
    }
    // No usable index: scan, keeping the rows whose join column matches.
    match state.scan(side.schema.table_id) {
        Ok(rows) => {
            let key = key.clone();
            Box::new(rows.filter(move |r| r[col] == key))
        }
        Err(_) => Box::new(std::iter::empty()),
    }
}

fn join_key<'r>(side: &Side, row: &'r Row) -> Option<&'r AlgebraicValue> {
    side.col.map(|c| &row[c])
}

pub(super) fn initial(
    q: &Query,
    state: &State,
    budget: &mut Budget,
) -> Result<Vec<Row>, LimitExceeded> {
    if q.returned.is_event {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    match &q.plan {
        Plan::Single { filter } => {
            for r in candidates(state, &q.returned, 0, filter) {
                budget.examine()?;
                if passes(filter, &[r]) {
                    budget.emit(bsatn_len(r.iter()))?;
                    out.push(r.clone());
                }
            }
        }
        Plan::Join {
            sides,
            returned,
            filter,
        } => {
            // Drive from a side whose rows the filter pins through an index,
            // else from side 0; probe the other side by its join index.
            let pinned = |t: usize| {
                filter.as_ref().is_some_and(|f| {
                    let mut points = Vec::new();
                    point_candidates(f, t, &mut points);
                    points
                        .iter()
                        .any(|(c, _)| super::index_on(&sides[t].schema, *c).is_some())
                })
            };
            let driver = if !pinned(0) && pinned(1) { 1 } else { 0 };
            let other = 1 - driver;
            for d in candidates(state, &sides[driver].schema, driver, filter) {
                budget.examine()?;
                for p in partners(state, &sides[other], join_key(&sides[driver], d)) {
                    budget.examine()?;
                    let tuple: [&Row; 2] = if driver == 0 { [d, p] } else { [p, d] };
                    if passes(filter, &tuple) {
                        budget.emit(bsatn_len(tuple[*returned].iter()))?;
                        out.push(tuple[*returned].clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

fn table_delta(delta: &TxDelta, table_id: TableId) -> Option<&TableDelta> {
    delta.tables.iter().find(|t| t.table_id == table_id)
}

/// The table's change as signed counts: +1 per insert, −1 per delete, netted
/// per row so a row deleted and re-inserted identically disappears.
fn signed(td: Option<&TableDelta>) -> Vec<(&Row, i64)> {
    let Some(td) = td else {
        return Vec::new();
    };
    if td.deletes.is_empty() {
        return td.inserts.iter().map(|r| (r, 1)).collect();
    }
    if td.inserts.is_empty() {
        return td.deletes.iter().map(|r| (r, -1)).collect();
    }
    let mut net: HashMap<&Row, i64> = HashMap::with_capacity(td.inserts.len() + td.deletes.len());
    for r in &td.inserts {
        *net.entry(r).or_default() += 1;
    }
    for r in &td.deletes {
        *net.entry(r).or_default() -= 1;
    }
    // In operation order, each row once, so output order is deterministic.
    td.inserts
        .iter()
        .chain(&td.deletes)
        .filter_map(|r| net.remove(r).filter(|&n| n != 0).map(|n| (r, n)))
        .collect()
}

/// Signed counts per returned row, kept in first-seen order so output is
/// deterministic for a given delta and state.
#[derive(Default)]
struct Counts {
    slot: HashMap<Row, usize>,
    rows: Vec<(Row, i64)>,
}

impl Counts {
    fn add(&mut self, row: &Row, n: i64) {
        match self.slot.get(row) {
            Some(&i) => self.rows[i].1 += n,
            None => {
                self.slot.insert(row.clone(), self.rows.len());
                self.rows.push((row.clone(), n));
            }
        }
    }

    /// Positive counts become inserts, negative ones deletes, each repeated
    /// per unit of count.
    fn emit(self, out: &mut QueryDelta) {
        for (row, n) in self.rows {
            let target = if n > 0 {
                &mut out.inserts
            } else {
                &mut out.deletes
            };
            for _ in 1..n.unsigned_abs() {
                target.push(row.clone());
            }
            if n != 0 {
                target.push(row);
            }
        }
    }
}

pub(super) fn delta(q: &Query, delta: &TxDelta, after: &State, canary: Canary) -> QueryDelta {
    let mut out = QueryDelta::default();
    match &q.plan {
        Plan::Single { filter } => {
            let Some(td) = table_delta(delta, q.returned.table_id) else {
                return out;
            };
            if q.returned.is_event {
                out.events = td
                    .inserts
                    .iter()
                    .filter(|r| passes(filter, &[r]))
                    .cloned()
                    .collect();
            } else {
                let ins = td.inserts.iter().filter(|r| passes(filter, &[r]));
                let del = td.deletes.iter().filter(|r| passes(filter, &[r]));
                if td.inserts.is_empty() || td.deletes.is_empty() {
                    out.inserts = ins.cloned().collect();
                    out.deletes = del.cloned().collect();
                } else {
                    let mut counts = Counts::default();
                    for r in ins {
                        counts.add(r, 1);
                    }
                    for r in del {
                        counts.add(r, -1);
                    }
                    counts.emit(&mut out);
                }
            }
        }
        Plan::Join {
            sides,
            returned,
            filter,
        } => {
            if q.returned.is_event {
                // Event rows exist only in the delta: pair each with its
                // partners in the state after the transaction.
                let Some(td) = table_delta(delta, q.returned.table_id) else {
                    return out;
                };
                let r = *returned;
                let other = 1 - r;
                for e in &td.inserts {
                    for p in partners(after, &sides[other], join_key(&sides[r], e)) {
                        let tuple: [&Row; 2] = if r == 0 { [e, p] } else { [p, e] };
                        if passes(filter, &tuple) {
                            out.events.push(e.clone());
                        }
                    }
                }
            } else {
                join_delta(sides, *returned, filter, delta, after, &mut out);
            }
        }
    }
    #[cfg(test)]
    if canary == Canary::On && out.inserts.pop().is_none() {
        out.deletes.pop();
    }
    #[cfg(not(test))]
    let _ = canary;
    out
}

/// Δ(L⋈R) = dL⋈R' + L'⋈dR − dL⋈dR, with signed deltas and the after-state.
fn join_delta(
    sides: &[Side; 2],
    returned: usize,
    filter: &Option<BoundExpr>,
    delta: &TxDelta,
    after: &State,
    out: &mut QueryDelta,
) {
    let d = [
        signed(table_delta(delta, sides[0].schema.table_id)),
        signed(table_delta(delta, sides[1].schema.table_id)),
    ];
    if d[0].is_empty() && d[1].is_empty() {
        return;
    }
    let mut counts = Counts::default();
    let mut add = |tuple: [&Row; 2], n: i64| {
        if passes(filter, &tuple) {
            counts.add(tuple[returned], n);
        }
    };
    // dL⋈R'
    for &(l, n) in &d[0] {
        for r in partners(after, &sides[1], join_key(&sides[0], l)) {
            add([l, r], n);
        }
    }
    // L'⋈dR
    for &(r, n) in &d[1] {
        for l in partners(after, &sides[0], join_key(&sides[1], r)) {
            add([l, r], n);
        }
    }
    // −dL⋈dR, a small in-memory hash join on the join key.
    if !d[0].is_empty() && !d[1].is_empty() {
        match (sides[0].col, sides[1].col) {
            (Some(_), Some(_)) => {
                let mut by_key: HashMap<&AlgebraicValue, Vec<(&Row, i64)>> = HashMap::new();
                for &(r, n) in &d[1] {
                    if let Some(k) = join_key(&sides[1], r) {
                        by_key.entry(k).or_default().push((r, n));
                    }
                }
                for &(l, nl) in &d[0] {
                    let Some(k) = join_key(&sides[0], l) else {
                        continue;
                    };
                    for &(r, nr) in by_key.get(k).into_iter().flatten() {
                        add([l, r], -nl * nr);
                    }
                }
            }
            _ => {
                for &(l, nl) in &d[0] {
                    for &(r, nr) in &d[1] {
                        add([l, r], -nl * nr);
                    }
                }
            }
        }
    }
    counts.emit(out);
}
