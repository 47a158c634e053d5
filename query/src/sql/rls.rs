//! Row-level security (client-protocol §5.6, module-abi §8.11): a module's
//! client visibility filters, checked when the module is published, and the
//! rewriting of a non-owner's query into the fragments whose union is what
//! that caller may see.
//!
//! Owns: [`Rules`] (filters by table, validated: each a subscription-grammar
//! query returning whole rows of one public table, no cycles between tables'
//! filters) and [`Rules::expand`], which replaces every reference to a
//! filtered table by each of its filters in turn: a single-table filter adds
//! its condition to the query; a join filter becomes the query itself (for a
//! single-table query), its lookup table filtered in turn. The result is a
//! bag union of fragments; a row that two filters admit is seen twice, and
//! deleted twice, so multiplicities stay consistent.
//! Does not own: who is owner (owners bypass RLS: callers skip `expand`),
//! compiling or evaluating the fragments (`sql::check`, `subs`, `sql::eval`).
//!
//! Refused with a clear error instead of guessed: a join filter on a table
//! that a join query reads (the fragment would need three tables).

use std::collections::{BTreeMap, BTreeSet};

use spacetimedb_lib::Identity;

use super::check::{check, BoundProjection, BoundStatement, Catalog, Mode};
use super::parse::{parse, ColRef, Expr, Operand, Projection, Select, Statement, TableRef};
use super::SqlError;

/// At most this many fragments per query (`limits::RLS_QUERY_FRAGMENTS_MAX`).
pub const FRAGMENTS_MAX: usize = orrery_api::limits::RLS_QUERY_FRAGMENTS_MAX;

/// The visibility filters of one module, by the canonical name of the table
/// they filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    by_table: BTreeMap<String, Vec<Select>>,
}

impl Rules {
    /// Parses and checks `filters` against the module's tables. Errors are
    /// for the publisher.
    pub fn compile<C: Catalog + ?Sized>(filters: &[String], catalog: &C) -> Result<Rules, String> {
        let mut by_table: BTreeMap<String, Vec<Select>> = BTreeMap::new();
        let mut reads: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for sql in filters {
            let bad = |why: String| format!("row-level security filter `{sql}`: {why}");
            let mut statement = parse(sql).map_err(|e| bad(e.0))?;
            catalog.canonicalize(&mut statement);
            let bound = check(
                &statement,
                catalog,
                Mode::Subscription,
                true,
                Identity::ZERO,
            )
            .map_err(|e| bad(e.0))?;
            let (Statement::Select(select), BoundStatement::Select(bound)) = (statement, bound)
            else {
                return Err(bad("a filter must be a SELECT".into()));
            };
            let BoundProjection::Table(returned) = bound.projection else {
                return Err(bad(
                    "a filter must return entire rows of one table (SELECT * or SELECT t.*)".into(),
                ));
            };
            if select.limit.is_some() {
                return Err(bad("a filter cannot have a LIMIT".into()));
            }
            let schema = &bound.tables[returned].schema;
            if !schema.public {
                return Err(bad(format!(
                    "`{}` is private; filters apply to public tables only",
                    schema.name
                )));
            }
            let table = schema.name.clone();
            reads.entry(table.clone()).or_default().extend(
                bound
                    .tables
                    .iter()
                    .map(|t| t.schema.name.clone())
                    .filter(|name| *name != table),
            );
            by_table.entry(table).or_default().push(select);
        }
        if let Some(cycle) = find_cycle(&reads) {
            return Err(format!(
                "row-level security filters form a cycle: {}",
                cycle.join(" → ")
            ));
        }
        Ok(Rules { by_table })
    }

    pub fn is_empty(&self) -> bool {
        self.by_table.is_empty()
    }

    /// True if a non-owner's `select` reads a filtered table.
    pub fn applies_to(&self, select: &Select) -> bool {
        tables(select).any(|t| self.by_table.contains_key(&t.name))
    }

    /// The fragments a non-owner's `select` becomes: their results' bag
    /// union is what the caller may see. `select` itself if no filtered
    /// table is read.
    pub fn expand(&self, select: &Select) -> Result<Vec<Select>, SqlError> {
        if !self.applies_to(select) {
            return Ok(vec![select.clone()]);
        }
        let mut done = Vec::new();
        let mut work = vec![(select.clone(), BTreeSet::<String>::new())];
        while let Some((query, secured)) = work.pop() {
            let next = tables(&query)
                .find(|t| {
                    self.by_table.contains_key(&t.name) && !secured.contains(t.visible_name())
                })
                .cloned();
            let Some(table) = next else {
                done.push(query);
                continue;
            };
            for filter in &self.by_table[&table.name] {
                let (fragment, visible) = apply(&query, &table, filter)?;
                let mut secured = secured.clone();
                secured.insert(visible);
                work.push((fragment, secured));
            }
            if done.len() + work.len() > FRAGMENTS_MAX {
                return Err(SqlError(format!(
                    "row-level security turns this query into more than {FRAGMENTS_MAX} parts"
                )));
            }
        }
        done.reverse();
        Ok(done)
    }
}

fn tables(select: &Select) -> impl Iterator<Item = &TableRef> {
    std::iter::once(&select.from).chain(select.joins.iter().map(|j| &j.table))
}

/// `query` with its reference `table` restricted by `filter`, and the name
/// the restricted table is visible under in the result.
fn apply(query: &Select, table: &TableRef, filter: &Select) -> Result<(Select, String), SqlError> {
    let filter_table = tables(filter)
        .find(|t| t.name == table.name)
        .expect("a filter reads the table it filters");
    if filter.joins.is_empty() {
        // `SELECT * FROM t WHERE c`: the query keeps its shape, and gains c.
        let mut fragment = query.clone();
        let condition = filter.filter.as_ref().map(|c| {
            requalify(
                c,
                &[filter_table.visible_name()],
                table.visible_name(),
                filter.joins.is_empty(),
            )
        });
        fragment.filter = conjoin(fragment.filter.take(), condition);
        return Ok((fragment, table.visible_name().to_owned()));
    }
    if !query.joins.is_empty() {
        return Err(SqlError(format!(
            "row-level security on `{}` uses a join, which a join query cannot combine with",
            table.name
        )));
    }
    // A join filter on the only table: the fragment is the filter's join,
    // with the query's condition on the filtered table.
    let visible = filter_table.visible_name().to_owned();
    let own_names = [query.from.visible_name(), query.from.name.as_str()];
    let condition = query
        .filter
        .as_ref()
        .map(|c| requalify(c, &own_names, &visible, true));
    let projection = match &query.projection {
        Projection::Star | Projection::TableStar(_) => Projection::TableStar(visible.clone()),
        Projection::Count(name) => Projection::Count(name.clone()),
        Projection::Columns(columns) => Projection::Columns(
            columns
                .iter()
                .map(|(c, alias)| (requalify_col(c, &own_names, &visible, true), alias.clone()))
                .collect(),
        ),
    };
    let fragment = Select {
        projection,
        from: filter.from.clone(),
        joins: filter.joins.clone(),
        filter: conjoin(filter.filter.clone(), condition),
        limit: query.limit,
    };
    Ok((fragment, visible))
}

fn conjoin(a: Option<Expr>, b: Option<Expr>) -> Option<Expr> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Expr::And(Box::new(a), Box::new(b))),
        (a, b) => a.or(b),
    }
}

/// `expr` with its columns of a table known as one of `from` (or
/// unqualified, if `bare`) qualified as `to`.
fn requalify(expr: &Expr, from: &[&str], to: &str, bare: bool) -> Expr {
    let operand = |o: &Operand| match o {
        Operand::Column(c) => Operand::Column(requalify_col(c, from, to, bare)),
        other => other.clone(),
    };
    match expr {
        Expr::Cmp(a, op, b) => Expr::Cmp(operand(a), *op, operand(b)),
        Expr::And(a, b) => Expr::And(
            Box::new(requalify(a, from, to, bare)),
            Box::new(requalify(b, from, to, bare)),
        ),
        Expr::Or(a, b) => Expr::Or(
            Box::new(requalify(a, from, to, bare)),
            Box::new(requalify(b, from, to, bare)),
        ),
        Expr::Bool(b) => Expr::Bool(*b),
    }
}

fn requalify_col(c: &ColRef, from: &[&str], to: &str, bare: bool) -> ColRef {
    let ours = match &c.table {
        None => bare,
        Some(t) => from.contains(&t.as_str()),
    };
    if !ours {
        return c.clone();
    }
    ColRef {
        table: Some(to.to_owned()),
        column: c.column.clone(),
    }
}

/// A cycle in "the filters of T read U", as table names, if there is one.
fn find_cycle(reads: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        table: &str,
        reads: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        finished: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|t| t == table) {
            let mut cycle = path[start..].to_vec();
            cycle.push(table.to_owned());
            return Some(cycle);
        }
        if finished.contains(table) {
            return None;
        }
        path.push(table.to_owned());
        for next in reads.get(table).into_iter().flatten() {
            if let Some(cycle) = visit(next, reads, path, finished) {
                return Some(cycle);
            }
        }
        path.pop();
        finished.insert(table.to_owned());
        None
    }
    let mut finished = BTreeSet::new();
    reads
        .keys()
        .find_map(|table| visit(table, reads, &mut Vec::new(), &mut finished))
}
