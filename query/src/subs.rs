//! Incremental evaluation of subscription queries (client-protocol.md §5, §6.2).
//!
//! Owns: compiling subscription SQL into a [`Query`] (via `sql::parse` and
//! `sql::check` in [`Mode::Subscription`]), the sharing key of a query
//! ([`QueryKey`]), a query's whole current result ([`Query::initial`]), the
//! change of that result caused by one committed transaction
//! ([`Query::delta`], computed from the transaction's [`TxDelta`] and the
//! state after it, never by re-running the query), the `SELECT * FROM *`
//! expansion ([`expand_select_all`]) and the canonical BSATN row lists
//! clients receive ([`encode_rows`]).
//! Does not own: query sets, connections, per-client bookkeeping of held rows,
//! message assembly or ordering, threads or I/O, row-level security and views
//! (callers build those on top), or parsing and type checking (`sql`).
//!
//! Invariant: for any sequence of transactions,
//! `initial(before) + Σ inserts − Σ deletes == initial(after)` as multisets,
//! and a delta never deletes a row the result did not hold before.

mod eval;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use spacetimedb_lib::Identity;
use storage::{IndexId, Row, State, TableId, TableSchema, TxDelta};

use crate::budget::{Budget, LimitExceeded, QueryLimits};
use crate::sql::parse::{Expr, Operand};
use crate::sql::rls::Rules;
use crate::sql::{
    check, parse, view_tables, BoundExpr, BoundProjection, BoundStatement, Catalog, Mode, SqlError,
    Statement,
};
use orrery_wire::messages::{BsatnRowList, RowSizeHint};

/// What identifies a query's result: two subscriptions with equal keys have
/// identical results at all times (for one database and schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryKey {
    /// The query text, trimmed.
    text: Arc<str>,
    /// The caller, when the query mentions `:sender`.
    sender: Option<Identity>,
    /// Whether the caller's owner-ness changes what the query sees. Without
    /// row-level security it never does for a query that compiled (private
    /// tables do not compile for non-owners), so this is set only for owners
    /// reading a private table, which keeps the key honest once RLS arrives.
    owner_view: bool,
}

impl QueryKey {
    /// The trimmed query text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// One side of a join: the table and the single-column index on its join
/// column (if any; the subscription checker requires one, so `None` only
/// happens for a join without `ON`, which is a cross product).
#[derive(Debug, Clone)]
struct Side {
    schema: Arc<TableSchema>,
    /// Join column, `None` for a join without `ON`.
    col: Option<usize>,
    index: Option<IndexId>,
}

#[derive(Debug, Clone)]
enum Plan {
    /// `SELECT * FROM t [WHERE …]`.
    Single { filter: Option<BoundExpr> },
    /// Two tables; the filter's `ColPos.table` indexes `sides`.
    Join {
        sides: [Side; 2],
        /// Which side's rows the query returns.
        returned: usize,
        filter: Option<BoundExpr>,
    },
}

/// A compiled subscription query (subscription grammar, §6.2).
#[derive(Debug, Clone)]
pub struct Query {
    returned: Arc<TableSchema>,
    reads: Vec<TableId>,
    depends_on_sender: bool,
    key: QueryKey,
    plan: Plan,
}

/// How one committed transaction changed a query's result. `inserts` and
/// `deletes` are rows of the returned table, each repeated per copy (bag
/// semantics); they never share a row. `events` holds event-table rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryDelta {
    pub inserts: Vec<Row>,
    pub deletes: Vec<Row>,
    pub events: Vec<Row>,
}

impl QueryDelta {
    pub fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.deletes.is_empty() && self.events.is_empty()
    }
}

fn mentions_sender(e: &Expr) -> bool {
    match e {
        Expr::Cmp(a, _, b) => matches!(a, Operand::Sender) || matches!(b, Operand::Sender),
        Expr::And(a, b) | Expr::Or(a, b) => mentions_sender(a) || mentions_sender(b),
        Expr::Bool(_) => false,
    }
}

/// A single-column index on `col`, preferring a unique one.
pub(crate) fn index_on(schema: &TableSchema, col: usize) -> Option<IndexId> {
    let mut candidates = schema
        .indexes
        .iter()
        .filter(|i| i.columns.len() == 1 && i.columns[0].idx() == col);
    let first = candidates.next()?;
    if first.unique.is_some() {
        return Some(first.index_id);
    }
    Some(
        candidates
            .find(|i| i.unique.is_some())
            .map_or(first.index_id, |i| i.index_id),
    )
}

impl Query {
    /// Parses and checks `sql` in [`Mode::Subscription`] for this caller.
    /// Errors carry a client-facing text.
    pub fn compile<C: Catalog + ?Sized>(
        state: &C,
        sql: &str,
        caller_is_owner: bool,
        sender: Identity,
    ) -> Result<Query, SqlError> {
        let text = sql.trim();
        let mut statement = parse(text)?;
        state.canonicalize(&mut statement);
        Query::compile_statement(state, &statement, text, caller_is_owner, sender)
    }

    /// [`Query::compile`] under row-level security: for a non-owner whose
    /// query reads a filtered table, the fragments whose results' bag union
    /// the caller may see (each shared like any query); else one query.
    pub fn compile_secured<C: Catalog + ?Sized>(
        state: &C,
        sql: &str,
        caller_is_owner: bool,
        sender: Identity,
        rules: &Rules,
    ) -> Result<Vec<Query>, SqlError> {
        let text = sql.trim();
        let mut statement = parse(text)?;
        state.canonicalize(&mut statement);
        let select = match &statement {
            Statement::Select(select) if !caller_is_owner && rules.applies_to(select) => select,
            _ => {
                let query =
                    Query::compile_statement(state, &statement, text, caller_is_owner, sender)?;
                return Ok(vec![query]);
            }
        };
        // Errors name the query as written, not a fragment.
        check(
            &statement,
            state,
            Mode::Subscription,
            caller_is_owner,
            sender,
        )?;
        rules
            .expand(select)?
            .into_iter()
            .enumerate()
            .map(|(i, fragment)| {
                // Not SQL: a key no client text can equal.
                let key = format!("{text}\u{0}row-level security fragment {i}");
                let fragment = Statement::Select(fragment);
                Query::compile_statement(state, &fragment, &key, caller_is_owner, sender)
            })
            .collect()
    }

    fn compile_statement<C: Catalog + ?Sized>(
        state: &C,
        statement: &Statement,
        text: &str,
        caller_is_owner: bool,
        sender: Identity,
    ) -> Result<Query, SqlError> {
        let bound = check(
            statement,
            state,
            Mode::Subscription,
            caller_is_owner,
            sender,
        )?;
        let (Statement::Select(select), BoundStatement::Select(bound)) = (statement, bound) else {
            return Err(SqlError("subscriptions accept only SELECT queries".into()));
        };
        let BoundProjection::Table(returned) = bound.projection else {
            return Err(SqlError(
                "subscriptions must return entire rows of a single table (SELECT * or SELECT t.*)"
                    .into(),
            ));
        };
        // A sender-aware view resolves to the caller's own materialisation.
        let depends_on_sender = select.filter.as_ref().is_some_and(mentions_sender)
            || bound
                .tables
                .iter()
                .any(|t| view_tables::is_per_sender(&t.schema.name));
        let mut reads: Vec<TableId> = bound.tables.iter().map(|t| t.schema.table_id).collect();
        reads.dedup();
        let returned_schema = bound.tables[returned].schema.clone();
        let plan = match bound.tables.len() {
            1 => Plan::Single {
                filter: bound.filter,
            },
            2 => {
                if bound.tables[1 - returned].schema.is_event {
                    return Err(SqlError(
                        "an event table cannot be the lookup side of a subscription join".into(),
                    ));
                }
                let on = bound.on.first().copied().flatten();
                let side = |t: usize, col: Option<usize>| {
                    let schema = bound.tables[t].schema.clone();
                    let index = col.and_then(|c| index_on(&schema, c));
                    Side { schema, col, index }
                };
                Plan::Join {
                    sides: [
                        side(0, on.map(|(a, _)| a.col)),
                        side(1, on.map(|(_, b)| b.col)),
                    ],
                    returned,
                    filter: bound.filter,
                }
            }
            _ => return Err(SqlError("subscriptions may join at most two tables".into())),
        };
        let owner_view = caller_is_owner && bound.tables.iter().any(|t| !t.schema.public);
        let key = QueryKey {
            text: Arc::from(text),
            sender: depends_on_sender.then_some(sender),
            owner_view,
        };
        Ok(Query {
            returned: returned_schema,
            reads,
            depends_on_sender,
            key,
            plan,
        })
    }

    /// The table whose rows the query returns (its canonical name goes on the wire).
    pub fn returned_table(&self) -> &Arc<TableSchema> {
        &self.returned
    }

    /// Table ids whose changes can change the result (1 or 2, no repeats).
    pub fn reads(&self) -> &[TableId] {
        &self.reads
    }

    /// True if the result depends on the caller (`:sender` appears).
    pub fn depends_on_sender(&self) -> bool {
        self.depends_on_sender
    }

    /// The sharing key (see [`QueryKey`]).
    pub fn key(&self) -> &QueryKey {
        &self.key
    }

    /// Whether the returned table is an event table (results only ever in
    /// [`QueryDelta::events`]).
    pub fn is_event(&self) -> bool {
        self.returned.is_event
    }

    /// True if `delta` altered or dropped a table this query reads: its
    /// [`Query::delta`] cannot be trusted and the caller should drop the
    /// subscription (or recompile and resubscribe).
    pub fn invalidated_by(&self, delta: &TxDelta) -> bool {
        delta
            .altered_tables
            .iter()
            .any(|a| self.reads.contains(&a.schema.table_id))
            || delta.dropped_tables.iter().any(|t| self.reads.contains(t))
    }

    /// The whole current result, bag semantics (a joined row once per
    /// matching partner). Always empty for event tables. Unbounded: for a
    /// result already delivered once (dropped rows); new subscriptions and
    /// one-off queries use [`Query::initial_bounded`].
    pub fn initial(&self, state: &State) -> Vec<Row> {
        let mut unbounded = Budget::new(QueryLimits {
            rows_examined_max: u64::MAX,
            result_rows_max: u64::MAX,
            result_bytes_max: u64::MAX,
            wall_time_max: Duration::MAX,
        });
        eval::initial(self, state, &mut unbounded).expect("an unbounded budget is never exceeded")
    }

    /// [`Query::initial`], charged to `budget`: the first limit crossed
    /// ends the evaluation, so a cross product stops early.
    pub fn initial_bounded(
        &self,
        state: &State,
        budget: &mut Budget,
    ) -> Result<Vec<Row>, LimitExceeded> {
        eval::initial(self, state, budget)
    }

    /// The change of the result caused by one committed transaction, from
    /// `delta` and the state after it (`after`) only.
    pub fn delta(&self, delta: &TxDelta, after: &State) -> QueryDelta {
        eval::delta(self, delta, after, eval::Canary::Off)
    }
}

fn skip_ws(s: &str) -> &str {
    s.trim_start()
}

fn keyword<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    head.eq_ignore_ascii_case(word).then(|| &s[word.len()..])
}

fn is_select_all(sql: &str) -> bool {
    let s = skip_ws(sql);
    let Some(s) = keyword(s, "select") else {
        return false;
    };
    let Some(s) = skip_ws(s).strip_prefix('*') else {
        return false;
    };
    let Some(s) = keyword(skip_ws(s), "from") else {
        return false;
    };
    let Some(s) = skip_ws(s).strip_prefix('*') else {
        return false;
    };
    let s = skip_ws(s);
    let s = s.strip_prefix(';').map_or(s, skip_ws);
    s.is_empty()
}

/// Quotes a table name as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `SELECT * FROM *` (case-insensitive, whitespace tolerant, the whole
/// string, an optional trailing `;`) → one `SELECT * FROM "<t>"` per table the
/// caller may read, in table-id order: non-owners see public tables only, and
/// host tables (names starting with `st_`) and views are never included. `None` if
/// `sql` is not that query.
pub fn expand_select_all(sql: &str, state: &State, caller_is_owner: bool) -> Option<Vec<String>> {
    if !is_select_all(sql) {
        return None;
    }
    Some(
        state
            .table_ids()
            .filter_map(|id| state.schema(id).ok())
            .filter(|s| {
                (s.public || caller_is_owner)
                    && !s.name.starts_with("st_")
                    && !view_tables::is_view_table(&s.name)
            })
            .map(|s| format!("SELECT * FROM {}", quote_ident(&s.name)))
            .collect(),
    )
}

/// The canonical BSATN row list of `rows` (rows of `schema`): the rows'
/// BSATN back to back; `FixedSize(n)` when every row has the same non-zero
/// size n ≤ 65535, else `RowOffsets`; an empty list is `RowOffsets([])`.
pub fn encode_rows(rows: &[Row], schema: &TableSchema) -> BsatnRowList {
    debug_assert!(rows
        .iter()
        .all(|r| r.len() == schema.columns.elements.len()));
    let mut rows_data = Vec::new();
    let mut offsets = Vec::with_capacity(rows.len());
    for row in rows {
        offsets.push(rows_data.len() as u64);
        storage::value::encode_row(row, &mut rows_data);
    }
    let size = |i: usize| {
        let end = offsets
            .get(i + 1)
            .copied()
            .unwrap_or(rows_data.len() as u64);
        end - offsets[i]
    };
    let fixed = match rows.len() {
        0 => None,
        n => {
            let first = size(0);
            (first > 0 && first <= u64::from(u16::MAX) && (1..n).all(|i| size(i) == first))
                .then_some(first as u16)
        }
    };
    let size_hint = match fixed {
        Some(n) => RowSizeHint::FixedSize(n),
        None => RowSizeHint::RowOffsets(offsets),
    };
    BsatnRowList {
        size_hint,
        rows_data,
    }
}
