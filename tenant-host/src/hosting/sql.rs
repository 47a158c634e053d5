//! SQL over HTTP for a hosted database (client-protocol §2.3.15, §6.3).
//!
//! Owns: [`HostedDatabase::run_sql`] — SELECTs against the committed state,
//! and INSERT/UPDATE/DELETE as one transaction on the database's lane, with
//! the usual after-commit work (timers, views).
//! Does not own: parsing, checking and evaluation (`orrery_query::sql`), the
//! connect/disconnect lifecycle around a request and durability waits (the
//! HTTP route does both).

use spacetimedb_lib::Identity;
use spacetimedb_sats::{AlgebraicValue, ProductType, ProductValue};
use storage::TxOffset;

use super::HostedDatabase;
use orrery_query::sql::check::{check, BoundProjection, BoundStatement, Mode};
use orrery_query::sql::exec::{execute, DmlStats};
use orrery_query::sql::rls::Rules;
use orrery_query::sql::{
    eval_select, parse, Budget, Named, Names, QueryError, QueryLimits, SqlError, Statement,
};

/// What one SQL statement produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlOutcome {
    /// Output columns (empty for DML).
    pub schema: ProductType,
    pub rows: Vec<ProductValue>,
    pub stats: DmlStats,
    /// Commit-log offset of a DML commit that changed something.
    pub offset: Option<TxOffset>,
}

impl HostedDatabase {
    /// Runs one SQL statement for `sender`. Non-owners see public tables only
    /// and may not write; an owner writes only if `caller_may_write` (an
    /// owner with a read-only token may not). A SELECT runs under the caller's one-off limits
    /// ([`QueryLimits::one_off`]); crossing one is [`QueryError::Limit`].
    pub fn run_sql(
        &self,
        sql: &str,
        sender: Identity,
        caller_is_owner: bool,
        caller_may_write: bool,
    ) -> Result<SqlOutcome, QueryError> {
        let names = self.clients().names();
        let mut statement = parse(sql)?;
        names.canonicalize(&mut statement);
        if !super::views::named_views(&self.module(), &statement).is_empty() {
            // Views are materialised on the lane, where nothing drops them
            // before the query has read them.
            let shared = self.shared.clone();
            let sql = sql.to_owned();
            return self
                .run(move || {
                    let created = shared
                        .materialise_views_for(&[&sql], sender)
                        .map_err(|outcome| SqlError(super::views::describe(&outcome)))?;
                    let rules = shared.clients.rules();
                    let result = select(
                        &shared.storage,
                        &statement,
                        sender,
                        caller_is_owner,
                        &rules,
                        &names,
                    );
                    if created {
                        shared.evict_idle_views_over_limit();
                    }
                    result?.ok_or_else(|| SqlError("views cannot be written".into()).into())
                })
                .map_err(|e| SqlError(e.to_string()))?;
        }
        let rules = self.clients().rules();
        if let Some(outcome) = select(
            self.storage(),
            &statement,
            sender,
            caller_is_owner,
            &rules,
            &names,
        )? {
            return Ok(outcome);
        }
        if !caller_is_owner {
            return Err(SqlError(
                "only the database owner may run INSERT, UPDATE or DELETE".into(),
            )
            .into());
        }
        if !caller_may_write {
            return Err(SqlError(
                "INSERT, UPDATE and DELETE need a token with the deploy scope or more".into(),
            )
            .into());
        }
        let shared = self.shared.clone();
        self.run(move || {
            let mut tx = shared
                .storage
                .begin()
                .map_err(|e| SqlError(e.to_string()))?;
            let catalog = Named {
                catalog: &*tx,
                names: &names,
            };
            let bound = match check(&statement, &catalog, Mode::Sql, true, sender)
                .and_then(refuse_system_tables)
            {
                Ok(bound) => bound,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            let stats = match execute(&mut tx, &bound) {
                Ok(stats) => stats,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            let delta = tx.commit().map_err(|e| SqlError(e.to_string()))?;
            shared.after_commit(&delta);
            Ok(SqlOutcome {
                schema: ProductType::new(Box::new([])),
                rows: Vec::new(),
                stats,
                offset: delta.offset,
            })
        })
        .map_err(|e| SqlError(e.to_string()))?
        .map_err(QueryError::from)
    }
}

/// Runs `statement` if it is a SELECT (after checking it whatever it is),
/// under the caller's one-off limits, charged while evaluating under the
/// read lock (which is what bounds how long writers wait for it).
/// A non-owner's SELECT of a table with row-level security runs as the
/// bag union of its fragments, all charged to one budget: rows concatenated
/// (a count summed), each fragment asked only for the rows the LIMIT still
/// wants.
fn select(
    storage: &storage::Database,
    statement: &Statement,
    sender: Identity,
    caller_is_owner: bool,
    rules: &Rules,
    names: &Names,
) -> Result<Option<SqlOutcome>, QueryError> {
    let state = storage.read().map_err(|e| SqlError(e.to_string()))?;
    let catalog = Named {
        catalog: &*state,
        names,
    };
    let bound = check(statement, &catalog, Mode::Sql, caller_is_owner, sender)?;
    let BoundStatement::Select(bound) = &bound else {
        return Ok(None);
    };
    let outcome = |result: orrery_query::sql::QueryResult| SqlOutcome {
        schema: result.schema,
        rows: result.rows,
        stats: DmlStats::default(),
        offset: None,
    };
    let Statement::Select(written) = statement else {
        return Ok(None);
    };
    let mut budget = Budget::new(QueryLimits::one_off(caller_is_owner));
    if caller_is_owner || !rules.applies_to(written) {
        return Ok(Some(outcome(eval_select(&state, bound, &mut budget)?)));
    }
    let counting = matches!(bound.projection, BoundProjection::Count(_));
    let mut schema = None;
    let mut rows: Vec<ProductValue> = Vec::new();
    let mut count = 0u64;
    for fragment in rules.expand(&written_without_limit(written))? {
        let mut fragment = fragment;
        if !counting {
            // Without ORDER BY any rows satisfy a LIMIT: take the first ones.
            fragment.limit = written
                .limit
                .map(|limit| limit.saturating_sub(rows.len() as u64));
        }
        let fragment = Statement::Select(fragment);
        let BoundStatement::Select(fragment) =
            check(&fragment, &catalog, Mode::Sql, caller_is_owner, sender)?
        else {
            unreachable!("a fragment of a SELECT is a SELECT");
        };
        let result = eval_select(&state, &fragment, &mut budget)?;
        if counting {
            count += result.rows.iter().map(count_of).sum::<u64>();
        } else {
            rows.extend(result.rows);
        }
        schema.get_or_insert(result.schema);
    }
    if counting {
        rows = vec![ProductValue::from(vec![AlgebraicValue::U64(count)])];
    }
    if let Some(limit) = written.limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(Some(SqlOutcome {
        schema: schema.expect("row-level security yields at least one fragment"),
        rows,
        stats: DmlStats::default(),
        offset: None,
    }))
}

fn written_without_limit(written: &orrery_query::sql::Select) -> orrery_query::sql::Select {
    let mut unlimited = written.clone();
    unlimited.limit = None;
    unlimited
}

fn count_of(row: &ProductValue) -> u64 {
    match row.elements.first() {
        Some(AlgebraicValue::U64(n)) => *n,
        _ => 0,
    }
}

/// The host's own tables (`st_*`) are read-only to SQL.
fn refuse_system_tables(bound: BoundStatement) -> Result<BoundStatement, SqlError> {
    let table = match &bound {
        BoundStatement::Insert(i) => &i.table.name,
        BoundStatement::Update(u) => &u.table.name,
        BoundStatement::Delete(d) => &d.table.name,
        BoundStatement::Select(_) => return Ok(bound),
    };
    if table.starts_with(super::SYSTEM_TABLE_PREFIX) {
        return Err(SqlError(format!(
            "`{table}` is a system table; it cannot be changed with SQL"
        )));
    }
    Ok(bound)
}
