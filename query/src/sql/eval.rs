//! Running checked one-off SELECTs over a database state.
//!
//! Owns: choosing access paths (an index point lookup for `col = value` on the
//! first table, index lookups on the joined side of `ON`, full scans
//! otherwise), join enumeration with bag semantics, filtering, projection,
//! COUNT and LIMIT, and the result's column types; every row a scan or a
//! lookup produces, and every result row, is charged to a [`Budget`].
//! Does not own: DML execution, subscriptions or incremental evaluation.

use spacetimedb_lib::Identity;
use spacetimedb_sats::{
    AlgebraicType, AlgebraicValue, ProductType, ProductTypeElement, ProductValue,
};
use storage::{IndexId, Row, State, TableSchema, TxError};

use super::check::{
    check, BoundExpr, BoundOperand, BoundProjection, BoundSelect, BoundStatement, ColPos, Mode,
};
use super::{parse, CmpOp, QueryError, SqlError};
use crate::budget::{bsatn_len, Budget, QueryLimits};

/// What a join walk hands every matching tuple: return false to stop.
type Emit<'e, 's> = dyn FnMut(&[&'s Row], &mut Budget) -> Result<bool, QueryError> + 'e;

/// The columns and rows of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub schema: ProductType,
    pub rows: Vec<ProductValue>,
}

/// Parses, checks (in `/sql` mode) and runs a SELECT under the one-off
/// limits of the caller ([`QueryLimits::one_off`]). DML is rejected here: it
/// needs a write transaction.
pub fn run_query(
    state: &State,
    sql: &str,
    caller_is_owner: bool,
    sender: Identity,
) -> Result<QueryResult, QueryError> {
    let statement = parse(sql)?;
    match check(&statement, state, Mode::Sql, caller_is_owner, sender)? {
        BoundStatement::Select(select) => eval_select(
            state,
            &select,
            &mut Budget::new(QueryLimits::one_off(caller_is_owner)),
        ),
        _ => Err(SqlError::new(
            "INSERT, UPDATE and DELETE need a write transaction; run_query runs SELECT only",
        )
        .into()),
    }
}

fn storage_error(e: TxError) -> SqlError {
    SqlError(format!("storage error: {e}"))
}

/// A single-column index on `col`, if the table has one.
fn index_on(schema: &TableSchema, col: usize) -> Option<IndexId> {
    schema
        .indexes
        .iter()
        .find(|i| i.columns.len() == 1 && i.columns[0].idx() == col)
        .map(|i| i.index_id)
}

/// `col = value` conjuncts of `e` on table 0.
fn point_candidates<'e>(e: &'e BoundExpr, out: &mut Vec<(usize, &'e AlgebraicValue)>) {
    match e {
        BoundExpr::And(a, b) => {
            point_candidates(a, out);
            point_candidates(b, out);
        }
        BoundExpr::Cmp(
            BoundOperand::Column(ColPos { table: 0, col }),
            CmpOp::Eq,
            BoundOperand::Value(v),
        ) => out.push((*col, v)),
        _ => {}
    }
}

fn value<'a>(operand: &'a BoundOperand, tuple: &[&'a Row]) -> &'a AlgebraicValue {
    match operand {
        BoundOperand::Column(pos) => &tuple[pos.table][pos.col],
        BoundOperand::Value(v) => v,
    }
}

/// Whether `tuple` (one row per table) satisfies `e`.
pub fn matches(e: &BoundExpr, tuple: &[&Row]) -> bool {
    match e {
        BoundExpr::Const(b) => *b,
        BoundExpr::And(a, b) => matches(a, tuple) && matches(b, tuple),
        BoundExpr::Or(a, b) => matches(a, tuple) || matches(b, tuple),
        BoundExpr::Cmp(a, op, b) => {
            let ordering = value(a, tuple).cmp(value(b, tuple));
            match op {
                CmpOp::Eq => ordering.is_eq(),
                CmpOp::Ne => ordering.is_ne(),
                CmpOp::Lt => ordering.is_lt(),
                CmpOp::Le => ordering.is_le(),
                CmpOp::Gt => ordering.is_gt(),
                CmpOp::Ge => ordering.is_ge(),
            }
        }
    }
}

struct Run<'s, 'q> {
    state: &'s State,
    q: &'q BoundSelect,
}

/// The rows a scan or an index lookup hands the evaluator for one table,
/// and, for a join column without an index, the key each must equal (the
/// scan examines, and is charged for, every row it reads).
struct Candidates<'s> {
    rows: Box<dyn Iterator<Item = &'s Row> + 's>,
    key: Option<(usize, &'s AlgebraicValue)>,
}

impl<'s> Run<'s, '_> {
    /// Candidate rows of table `i` given the rows chosen for tables before it.
    fn candidates(&self, i: usize, tuple: &[&'s Row]) -> Result<Candidates<'s>, SqlError> {
        let schema = &self.q.tables[i].schema;
        let table_id = schema.table_id;
        let all = |rows| Candidates { rows, key: None };
        if i == 0 {
            let mut points = Vec::new();
            if let Some(filter) = &self.q.filter {
                point_candidates(filter, &mut points);
            }
            for (col, v) in points {
                if let Some(index) = index_on(schema, col) {
                    return Ok(all(self
                        .state
                        .index_point(index, v)
                        .map_err(storage_error)?));
                }
            }
        } else if let Some((earlier, this)) = self.q.on[i - 1] {
            let partner: &'s Row = tuple[earlier.table];
            let key = &partner[earlier.col];
            return Ok(match index_on(schema, this.col) {
                Some(index) => all(self.state.index_point(index, key).map_err(storage_error)?),
                None => Candidates {
                    rows: self.state.scan(table_id).map_err(storage_error)?,
                    key: Some((this.col, key)),
                },
            });
        }
        Ok(all(self.state.scan(table_id).map_err(storage_error)?))
    }

    /// Calls `emit` for every matching tuple until it returns false,
    /// charging `budget` for every row the scans and lookups produce.
    fn walk(
        &self,
        tuple: &mut Vec<&'s Row>,
        budget: &mut Budget,
        emit: &mut Emit<'_, 's>,
    ) -> Result<bool, QueryError> {
        let i = tuple.len();
        if i == self.q.tables.len() {
            let keep = self.q.filter.as_ref().is_none_or(|f| matches(f, tuple));
            return if keep { emit(tuple, budget) } else { Ok(true) };
        }
        let Candidates { rows, key } = self.candidates(i, tuple)?;
        for row in rows {
            budget.examine()?;
            if let Some((col, key)) = key {
                if &row[col] != key {
                    continue;
                }
            }
            tuple.push(row);
            let go_on = self.walk(tuple, budget, emit)?;
            tuple.pop();
            if !go_on {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Runs a checked SELECT, charging `budget` as it goes: the first limit
/// crossed ends the evaluation with [`QueryError::Limit`] and no rows.
pub fn eval_select(
    state: &State,
    q: &BoundSelect,
    budget: &mut Budget,
) -> Result<QueryResult, QueryError> {
    let run = Run { state, q };
    let limit = q
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let column_type = |pos: ColPos| -> AlgebraicType {
        q.tables[pos.table].schema.columns.elements[pos.col]
            .algebraic_type
            .clone()
    };
    let mut rows = Vec::new();
    let schema = match &q.projection {
        BoundProjection::Count(name) => {
            let mut count = 0u64;
            run.walk(&mut Vec::new(), budget, &mut |_, _| {
                count += 1;
                Ok(true)
            })?;
            if limit > 0 {
                let row = vec![AlgebraicValue::U64(count)];
                budget.emit(bsatn_len(&row))?;
                rows.push(ProductValue::from(row));
            }
            ProductType::new(Box::new([ProductTypeElement::new_named(
                AlgebraicType::U64,
                name.clone(),
            )]))
        }
        BoundProjection::Table(t) => {
            if limit > 0 {
                run.walk(&mut Vec::new(), budget, &mut |tuple, budget| {
                    budget.emit(bsatn_len(tuple[*t].iter()))?;
                    rows.push(ProductValue::from(tuple[*t].to_vec()));
                    Ok(rows.len() < limit)
                })?;
            }
            q.tables[*t].schema.columns.clone()
        }
        BoundProjection::Columns(cols) => {
            if limit > 0 {
                run.walk(&mut Vec::new(), budget, &mut |tuple, budget| {
                    let row: Vec<AlgebraicValue> = cols
                        .iter()
                        .map(|(pos, _)| tuple[pos.table][pos.col].clone())
                        .collect();
                    budget.emit(bsatn_len(&row))?;
                    rows.push(ProductValue::from(row));
                    Ok(rows.len() < limit)
                })?;
            }
            ProductType::new(
                cols.iter()
                    .map(|(pos, name)| {
                        ProductTypeElement::new_named(column_type(*pos), name.clone())
                    })
                    .collect(),
            )
        }
    };
    Ok(QueryResult { schema, rows })
}
