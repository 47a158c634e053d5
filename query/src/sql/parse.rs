//! SQL text → our statement tree.
//!
//! Owns: tokenising and parsing with `sqlparser` (PostgreSQL dialect), then
//! walking its syntax tree into [`Statement`] and rejecting, with a message
//! naming the construct, everything outside client-protocol.md §6.
//! Does not own: names or types (`sql::check`).

use sqlparser::ast as sp;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use orrery_api::limits::{SQL_EXPR_DEPTH_MAX, SQL_JOINS_PER_QUERY_MAX, SQL_TEXT_BYTES_MAX};

use super::{LimitExceeded, SqlError};

/// A table in FROM/JOIN, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub name: String,
    pub alias: Option<String>,
}

impl TableRef {
    /// The name other clauses use for this table.
    pub fn visible_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// A column, optionally qualified by a table name or alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColRef {
    pub table: Option<String>,
    pub column: String,
}

/// A literal as written; its type comes from the column it meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// Integer or decimal text, sign included (`-12`, `1e3`, `0.5`).
    Number(String),
    /// A single-quoted string, `''` already unescaped.
    String(String),
    /// The hex digits of `X'…'` or `0x…`.
    Hex(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Column(ColRef),
    Literal(Literal),
    /// `:sender`, the caller's identity.
    Sender,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Cmp(Operand, CmpOp, Operand),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// A bare `TRUE` / `FALSE`.
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// `*`
    Star,
    /// `t.*`
    TableStar(String),
    /// `a, t.b AS c`
    Columns(Vec<(ColRef, Option<String>)>),
    /// `COUNT(*) AS name`
    Count(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub table: TableRef,
    /// `ON a.x = b.y`; `None` for a join without ON.
    pub on: Option<(ColRef, ColRef)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub projection: Projection,
    pub from: TableRef,
    pub joins: Vec<Join>,
    pub filter: Option<Expr>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub table: String,
    /// Empty when no column list was written.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Literal>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub table: String,
    pub assignments: Vec<(String, Literal)>,
    pub filter: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub table: String,
    pub filter: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Select(Select),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
}

impl Statement {
    /// INSERT, UPDATE or DELETE: only the database owner may run these.
    pub fn requires_owner(&self) -> bool {
        !matches!(self, Statement::Select(_))
    }
}

fn unsupported(what: impl std::fmt::Display) -> SqlError {
    SqlError(format!("unsupported SQL: {what}"))
}

/// Parses one statement of the §6 subset.
pub fn parse(sql: &str) -> Result<Statement, SqlError> {
    if sql.len() > SQL_TEXT_BYTES_MAX {
        return Err(SqlError::new(format!(
            "SQL is {} bytes long; the limit is {SQL_TEXT_BYTES_MAX}",
            sql.len()
        )));
    }
    if sql.trim().is_empty() {
        return Err(SqlError::new("empty SQL"));
    }
    let statements = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(SQL_EXPR_DEPTH_MAX + 10)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|e| SqlError(format!("SQL syntax error: {e}")))?;
    let mut statements = statements.into_iter();
    let (Some(statement), None) = (statements.next(), statements.next()) else {
        return Err(SqlError::new("expected exactly one SQL statement"));
    };
    match statement {
        sp::Statement::Query(query) => Ok(Statement::Select(select(*query)?)),
        sp::Statement::Insert(insert) => Ok(Statement::Insert(self::insert(insert)?)),
        sp::Statement::Update {
            table,
            assignments,
            from,
            selection,
            returning,
            or,
            limit,
        } => {
            if limit.is_some() {
                return Err(unsupported("UPDATE … LIMIT"));
            }
            if from.is_some() {
                return Err(unsupported("UPDATE … FROM"));
            }
            if returning.is_some() {
                return Err(unsupported("RETURNING"));
            }
            if or.is_some() {
                return Err(unsupported("UPDATE OR …"));
            }
            if !table.joins.is_empty() {
                return Err(unsupported("UPDATE of a join"));
            }
            let (target, alias) = table_factor(table.relation)?;
            if alias.is_some() {
                return Err(unsupported("an alias in UPDATE"));
            }
            let assignments = assignments
                .into_iter()
                .map(|a| {
                    let column = match a.target {
                        sp::AssignmentTarget::ColumnName(name) => {
                            let mut parts = object_name(name)?;
                            let column = parts.pop().unwrap_or_default();
                            if !parts.is_empty() && parts.join(".") != target {
                                return Err(SqlError(format!(
                                    "UPDATE may only set columns of `{target}`"
                                )));
                            }
                            column
                        }
                        sp::AssignmentTarget::Tuple(_) => {
                            return Err(unsupported("tuple assignment"))
                        }
                    };
                    Ok((column, literal(a.value)?))
                })
                .collect::<Result<_, _>>()?;
            let filter = selection.map(|e| expr(e, 0)).transpose()?;
            Ok(Statement::Update(Update {
                table: target,
                assignments,
                filter,
            }))
        }
        sp::Statement::Delete(delete) => Ok(Statement::Delete(self::delete(delete)?)),
        other => Err(unsupported(statement_kind(&other))),
    }
}

fn statement_kind(statement: &sp::Statement) -> String {
    let text = statement.to_string();
    let word: String = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    format!("`{word}` statements")
}

fn select(query: sp::Query) -> Result<Select, SqlError> {
    let sp::Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    if with.is_some() {
        return Err(unsupported("WITH"));
    }
    if order_by.is_some() {
        return Err(unsupported("ORDER BY"));
    }
    if fetch.is_some() {
        return Err(unsupported("FETCH"));
    }
    if !locks.is_empty() {
        return Err(unsupported("locking clauses"));
    }
    if for_clause.is_some() || settings.is_some() || format_clause.is_some() {
        return Err(unsupported("FOR/SETTINGS/FORMAT clauses"));
    }
    if !pipe_operators.is_empty() {
        return Err(unsupported("pipe operators"));
    }
    let limit = match limit_clause {
        None => None,
        Some(sp::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if offset.is_some() {
                return Err(unsupported("OFFSET"));
            }
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY"));
            }
            match limit {
                None => None,
                Some(e) => Some(limit_value(e)?),
            }
        }
        Some(sp::LimitClause::OffsetCommaLimit { .. }) => return Err(unsupported("OFFSET")),
    };
    let select = match *body {
        sp::SetExpr::Select(select) => *select,
        sp::SetExpr::Query(_) => return Err(unsupported("a parenthesised query")),
        sp::SetExpr::SetOperation { op, .. } => return Err(unsupported(op)),
        sp::SetExpr::Values(_) => return Err(unsupported("VALUES as a query")),
        _ => return Err(unsupported("this kind of query")),
    };
    let sp::Select {
        distinct,
        top,
        projection,
        exclude,
        into,
        from,
        lateral_views,
        prewhere,
        selection,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having,
        named_window,
        qualify,
        value_table_mode,
        connect_by,
        flavor,
        ..
    } = select;
    if distinct.is_some() {
        return Err(unsupported("DISTINCT"));
    }
    if top.is_some() {
        return Err(unsupported("TOP"));
    }
    if into.is_some() {
        return Err(unsupported("SELECT INTO"));
    }
    if exclude.is_some() {
        return Err(unsupported("EXCLUDE"));
    }
    if !lateral_views.is_empty() {
        return Err(unsupported("LATERAL VIEW"));
    }
    if prewhere.is_some() || qualify.is_some() || connect_by.is_some() {
        return Err(unsupported("PREWHERE/QUALIFY/CONNECT BY"));
    }
    match group_by {
        sp::GroupByExpr::Expressions(exprs, modifiers)
            if exprs.is_empty() && modifiers.is_empty() => {}
        _ => return Err(unsupported("GROUP BY")),
    }
    if having.is_some() {
        return Err(unsupported("HAVING"));
    }
    if !cluster_by.is_empty() || !distribute_by.is_empty() || !sort_by.is_empty() {
        return Err(unsupported("CLUSTER/DISTRIBUTE/SORT BY"));
    }
    if !named_window.is_empty() {
        return Err(unsupported("WINDOW"));
    }
    if value_table_mode.is_some() || flavor != sp::SelectFlavor::Standard {
        return Err(unsupported("this SELECT form"));
    }
    let mut from = from.into_iter();
    let (Some(twj), None) = (from.next(), from.next()) else {
        return Err(unsupported(
            "comma joins or a SELECT without exactly one FROM table (use JOIN … ON)",
        ));
    };
    let (name, alias) = table_factor(twj.relation)?;
    let from = TableRef { name, alias };
    if twj.joins.len() > SQL_JOINS_PER_QUERY_MAX {
        return Err(LimitExceeded::Joins {
            joins: twj.joins.len(),
            max: SQL_JOINS_PER_QUERY_MAX,
        }
        .into());
    }
    let joins = twj
        .joins
        .into_iter()
        .map(join)
        .collect::<Result<Vec<_>, _>>()?;
    let projection = self::projection(projection)?;
    let filter = selection.map(|e| expr(e, 0)).transpose()?;
    Ok(Select {
        projection,
        from,
        joins,
        filter,
        limit,
    })
}

fn limit_value(e: sp::Expr) -> Result<u64, SqlError> {
    match e {
        sp::Expr::Value(v) => match v.value {
            sp::Value::Number(n, _) => n
                .parse::<u64>()
                .map_err(|_| SqlError(format!("LIMIT must be a non-negative integer, not `{n}`"))),
            other => Err(SqlError(format!(
                "LIMIT must be an integer literal, not `{other}`"
            ))),
        },
        other => Err(SqlError(format!(
            "LIMIT must be an integer literal, not `{other}`"
        ))),
    }
}

fn ident(i: sp::Ident) -> String {
    i.value
}

fn object_name(name: sp::ObjectName) -> Result<Vec<String>, SqlError> {
    name.0
        .into_iter()
        .map(|part| match part {
            sp::ObjectNamePart::Identifier(i) => Ok(ident(i)),
            sp::ObjectNamePart::Function(_) => Err(unsupported("functions in names")),
        })
        .collect()
}

fn table_factor(factor: sp::TableFactor) -> Result<(String, Option<String>), SqlError> {
    match factor {
        sp::TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
        } => {
            if args.is_some() {
                return Err(unsupported("table functions"));
            }
            if !with_hints.is_empty()
                || version.is_some()
                || with_ordinality
                || !partitions.is_empty()
                || json_path.is_some()
                || sample.is_some()
                || !index_hints.is_empty()
            {
                return Err(unsupported("table modifiers"));
            }
            let alias = match alias {
                None => None,
                Some(a) if a.columns.is_empty() => Some(ident(a.name)),
                Some(_) => return Err(unsupported("alias column lists")),
            };
            Ok((object_name(name)?.join("."), alias))
        }
        sp::TableFactor::Derived { .. } => Err(unsupported("subqueries in FROM")),
        _ => Err(unsupported("this kind of FROM item")),
    }
}

fn join(j: sp::Join) -> Result<Join, SqlError> {
    let (name, alias) = table_factor(j.relation)?;
    let constraint = match j.join_operator {
        sp::JoinOperator::Join(c) | sp::JoinOperator::Inner(c) => c,
        other => {
            let text = format!("{other:?}");
            let kind = text.split('(').next().unwrap_or("this");
            return Err(unsupported(format!("{kind} joins (only inner JOIN … ON)")));
        }
    };
    let on = match constraint {
        sp::JoinConstraint::None => None,
        sp::JoinConstraint::On(e) => match e {
            sp::Expr::BinaryOp {
                left,
                op: sp::BinaryOperator::Eq,
                right,
            } => match (column(*left)?, column(*right)?) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => {
                    return Err(unsupported(
                        "ON conditions other than one `column = column` equality",
                    ))
                }
            },
            _ => {
                return Err(unsupported(
                    "ON conditions other than one `column = column` equality",
                ))
            }
        },
        sp::JoinConstraint::Using(_) => return Err(unsupported("JOIN … USING")),
        sp::JoinConstraint::Natural => return Err(unsupported("NATURAL JOIN")),
    };
    Ok(Join {
        table: TableRef { name, alias },
        on,
    })
}

/// A column reference, or `None` if `e` is not one.
fn column(e: sp::Expr) -> Result<Option<ColRef>, SqlError> {
    Ok(match e {
        sp::Expr::Identifier(i) => Some(ColRef {
            table: None,
            column: ident(i),
        }),
        sp::Expr::CompoundIdentifier(parts) => {
            let mut parts: Vec<String> = parts.into_iter().map(ident).collect();
            let column = parts.pop().unwrap_or_default();
            Some(ColRef {
                table: Some(parts.join(".")),
                column,
            })
        }
        // `user.id`: the parser reads the keyword USER as a call of a
        // function without parentheses, then a field access on it.
        sp::Expr::CompoundFieldAccess { root, access_chain } => {
            let (sp::Expr::Function(f), [sp::AccessExpr::Dot(sp::Expr::Identifier(c))]) =
                (*root, access_chain.as_slice())
            else {
                return Ok(None);
            };
            let bare = matches!(f.args, sp::FunctionArguments::None)
                && f.parameters == sp::FunctionArguments::None
                && f.filter.is_none()
                && f.over.is_none()
                && f.within_group.is_empty();
            match (bare, f.name.0.as_slice()) {
                (true, [sp::ObjectNamePart::Identifier(table)]) => Some(ColRef {
                    table: Some(ident(table.clone())),
                    column: ident(c.clone()),
                }),
                _ => None,
            }
        }
        _ => None,
    })
}

fn projection(items: Vec<sp::SelectItem>) -> Result<Projection, SqlError> {
    let mut columns = Vec::new();
    let count = items.len();
    for item in items {
        let (e, alias) = match item {
            sp::SelectItem::Wildcard(opts) => {
                wildcard_options(&opts)?;
                if count != 1 {
                    return Err(unsupported("mixing `*` with other projections"));
                }
                return Ok(Projection::Star);
            }
            sp::SelectItem::QualifiedWildcard(kind, opts) => {
                wildcard_options(&opts)?;
                if count != 1 {
                    return Err(unsupported("mixing `t.*` with other projections"));
                }
                return match kind {
                    sp::SelectItemQualifiedWildcardKind::ObjectName(name) => {
                        Ok(Projection::TableStar(object_name(name)?.join(".")))
                    }
                    sp::SelectItemQualifiedWildcardKind::Expr(_) => {
                        Err(unsupported("expression wildcards"))
                    }
                };
            }
            sp::SelectItem::UnnamedExpr(e) => (e, None),
            sp::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(ident(alias))),
        };
        if let sp::Expr::Function(f) = &e {
            if is_count_star(f) {
                if count != 1 {
                    return Err(unsupported("COUNT(*) with other projections"));
                }
                return match alias {
                    Some(alias) => Ok(Projection::Count(alias)),
                    None => Err(SqlError::new("COUNT(*) needs an alias: COUNT(*) AS name")),
                };
            }
            return Err(unsupported(format!(
                "function `{}` (only COUNT(*) AS name)",
                f.name
            )));
        }
        let text = e.to_string();
        match column(e)? {
            Some(c) => columns.push((c, alias)),
            None => return Err(unsupported(format!("projection `{text}`"))),
        }
    }
    Ok(Projection::Columns(columns))
}

fn wildcard_options(opts: &sp::WildcardAdditionalOptions) -> Result<(), SqlError> {
    if opts.opt_ilike.is_some()
        || opts.opt_exclude.is_some()
        || opts.opt_except.is_some()
        || opts.opt_replace.is_some()
        || opts.opt_rename.is_some()
    {
        return Err(unsupported("wildcard options"));
    }
    Ok(())
}

fn is_count_star(f: &sp::Function) -> bool {
    let name_ok = f.name.0.len() == 1
        && f.name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case("count"));
    let args_ok = match &f.args {
        sp::FunctionArguments::List(list) => {
            list.duplicate_treatment.is_none()
                && list.clauses.is_empty()
                && matches!(
                    list.args.as_slice(),
                    [sp::FunctionArg::Unnamed(sp::FunctionArgExpr::Wildcard)]
                )
        }
        _ => false,
    };
    name_ok
        && args_ok
        && f.filter.is_none()
        && f.over.is_none()
        && f.within_group.is_empty()
        && matches!(f.parameters, sp::FunctionArguments::None)
}

fn expr(e: sp::Expr, depth: usize) -> Result<Expr, SqlError> {
    if depth > SQL_EXPR_DEPTH_MAX {
        return Err(SqlError(format!(
            "expression nested deeper than {SQL_EXPR_DEPTH_MAX} levels"
        )));
    }
    match e {
        sp::Expr::Nested(inner) => expr(*inner, depth + 1),
        sp::Expr::BinaryOp { left, op, right } => {
            let cmp = match op {
                sp::BinaryOperator::And => {
                    return Ok(Expr::And(
                        Box::new(expr(*left, depth + 1)?),
                        Box::new(expr(*right, depth + 1)?),
                    ))
                }
                sp::BinaryOperator::Or => {
                    return Ok(Expr::Or(
                        Box::new(expr(*left, depth + 1)?),
                        Box::new(expr(*right, depth + 1)?),
                    ))
                }
                sp::BinaryOperator::Eq => CmpOp::Eq,
                sp::BinaryOperator::NotEq => CmpOp::Ne,
                sp::BinaryOperator::Lt => CmpOp::Lt,
                sp::BinaryOperator::LtEq => CmpOp::Le,
                sp::BinaryOperator::Gt => CmpOp::Gt,
                sp::BinaryOperator::GtEq => CmpOp::Ge,
                other => return Err(unsupported(format!("operator `{other}`"))),
            };
            Ok(Expr::Cmp(operand(*left)?, cmp, operand(*right)?))
        }
        sp::Expr::Value(v) if matches!(v.value, sp::Value::Boolean(_)) => match v.value {
            sp::Value::Boolean(b) => Ok(Expr::Bool(b)),
            _ => unreachable!("matched above"),
        },
        other => Err(unsupported(describe(&other))),
    }
}

fn describe(e: &sp::Expr) -> String {
    match e {
        sp::Expr::UnaryOp {
            op: sp::UnaryOperator::Not,
            ..
        } => "NOT".into(),
        sp::Expr::IsNull(_) | sp::Expr::IsNotNull(_) => "IS [NOT] NULL".into(),
        sp::Expr::InList { .. } | sp::Expr::InSubquery { .. } => "IN".into(),
        sp::Expr::Like { .. } | sp::Expr::ILike { .. } => "LIKE".into(),
        sp::Expr::Between { .. } => "BETWEEN".into(),
        sp::Expr::Function(_) => "function calls".into(),
        sp::Expr::Cast { .. } => "casts".into(),
        sp::Expr::Value(v) if v.value == sp::Value::Null => "NULL".into(),
        other => {
            let text = other.to_string();
            let short: String = text.chars().take(60).collect();
            format!("expression `{short}` as a condition")
        }
    }
}

fn operand(e: sp::Expr) -> Result<Operand, SqlError> {
    match e {
        sp::Expr::Value(sp::ValueWithSpan {
            value: sp::Value::Placeholder(p),
            ..
        }) => {
            if p == ":sender" {
                Ok(Operand::Sender)
            } else {
                Err(unsupported(format!("parameter `{p}` (only :sender)")))
            }
        }
        sp::Expr::Nested(inner) => operand(*inner),
        e @ (sp::Expr::Identifier(_)
        | sp::Expr::CompoundIdentifier(_)
        | sp::Expr::CompoundFieldAccess { .. }) => match column(e)? {
            Some(c) => Ok(Operand::Column(c)),
            None => Err(unsupported("this operand")),
        },
        other => literal(other).map(Operand::Literal),
    }
}

fn literal(e: sp::Expr) -> Result<Literal, SqlError> {
    match e {
        sp::Expr::Value(v) => match v.value {
            sp::Value::Number(n, _) => Ok(Literal::Number(n)),
            sp::Value::SingleQuotedString(s) => Ok(Literal::String(s)),
            sp::Value::HexStringLiteral(h) => Ok(Literal::Hex(h)),
            sp::Value::Boolean(b) => Ok(Literal::Bool(b)),
            sp::Value::Null => Err(unsupported("NULL")),
            other => Err(unsupported(format!("literal `{other}`"))),
        },
        sp::Expr::UnaryOp { op, expr } => {
            let sign = match op {
                sp::UnaryOperator::Minus => "-",
                sp::UnaryOperator::Plus => "",
                sp::UnaryOperator::Not => return Err(unsupported("NOT")),
                other => return Err(unsupported(format!("operator `{other}`"))),
            };
            match *expr {
                sp::Expr::Value(sp::ValueWithSpan {
                    value: sp::Value::Number(n, _),
                    ..
                }) if !n.starts_with('-') && !n.starts_with('+') => {
                    Ok(Literal::Number(format!("{sign}{n}")))
                }
                _ => Err(unsupported("a sign on anything but a number")),
            }
        }
        other => Err(unsupported(describe(&other))),
    }
}

fn insert(insert: sp::Insert) -> Result<Insert, SqlError> {
    let sp::Insert {
        or,
        ignore,
        table,
        table_alias,
        columns,
        overwrite,
        source,
        assignments,
        partitioned,
        after_columns,
        on,
        returning,
        replace_into,
        priority,
        insert_alias,
        settings,
        format_clause,
        ..
    } = insert;
    if or.is_some()
        || ignore
        || table_alias.is_some()
        || overwrite
        || !assignments.is_empty()
        || partitioned.is_some()
        || !after_columns.is_empty()
        || on.is_some()
        || returning.is_some()
        || replace_into
        || priority.is_some()
        || insert_alias.is_some()
        || settings.is_some()
        || format_clause.is_some()
    {
        return Err(unsupported(
            "INSERT options (only INSERT INTO t [(cols)] VALUES (…))",
        ));
    }
    let table = match table {
        sp::TableObject::TableName(name) => object_name(name)?.join("."),
        _ => return Err(unsupported("INSERT into a table function")),
    };
    let Some(source) = source else {
        return Err(unsupported("INSERT without VALUES"));
    };
    let source = *source;
    if source.with.is_some() || source.order_by.is_some() || source.limit_clause.is_some() {
        return Err(unsupported("INSERT … VALUES with clauses"));
    }
    let rows = match *source.body {
        sp::SetExpr::Values(values) => values
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(literal).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(unsupported("INSERT … SELECT (only VALUES)")),
    };
    Ok(Insert {
        table,
        columns: columns.into_iter().map(ident).collect(),
        rows,
    })
}

fn delete(delete: sp::Delete) -> Result<Delete, SqlError> {
    let sp::Delete {
        tables,
        from,
        using,
        selection,
        returning,
        order_by,
        limit,
    } = delete;
    if !tables.is_empty() || using.is_some() || returning.is_some() || !order_by.is_empty() {
        return Err(unsupported("DELETE options (only DELETE FROM t [WHERE …])"));
    }
    if limit.is_some() {
        return Err(unsupported("DELETE … LIMIT"));
    }
    let from = match from {
        sp::FromTable::WithFromKeyword(f) | sp::FromTable::WithoutKeyword(f) => f,
    };
    let mut from = from.into_iter();
    let (Some(twj), None) = (from.next(), from.next()) else {
        return Err(unsupported("DELETE from several tables"));
    };
    if !twj.joins.is_empty() {
        return Err(unsupported("DELETE with a join"));
    }
    let (table, alias) = table_factor(twj.relation)?;
    if alias.is_some() {
        return Err(unsupported("an alias in DELETE"));
    }
    let filter = selection.map(|e| expr(e, 0)).transpose()?;
    Ok(Delete { table, filter })
}
