//! Name resolution and type checking of parsed SQL.
//!
//! Owns: the [`Catalog`] the checker reads table schemas from (implemented for
//! [`storage::State`]), visibility of private tables, resolving tables,
//! aliases and columns, typing literals and `:sender` against columns, and the
//! stricter subscription grammar of client-protocol.md §6.2 ([`Mode`]).
//! Does not own: parsing (`sql::parse`) or running queries (`sql::eval`).

use std::sync::Arc;

use spacetimedb_lib::Identity;
use spacetimedb_sats::{u256, AlgebraicType, AlgebraicValue, ProductValue};
use storage::{State, TableSchema};

use super::literal::{is_comparable, to_value, type_name};
use super::parse::{Delete, Insert, Update};
use super::view_tables;
use super::{CmpOp, ColRef, Expr, Operand, Projection, Select, SqlError, Statement, TableRef};

/// Where table schemas come from; tests build them without storage.
pub trait Catalog {
    /// The schema of the table named `name` (canonical name), public or not.
    fn table_schema(&self, name: &str) -> Option<Arc<TableSchema>>;

    /// The canonical name of the table or view whose accessor (the name in
    /// module source) is `name`, where the two differ (client-protocol §6.1:
    /// tables resolve by canonical name first, then by accessor).
    fn canonical_table(&self, _name: &str) -> Option<String> {
        None
    }

    /// The accessor names of the columns of table or view `table`
    /// (canonical name), parallel to its columns, where any differs.
    fn column_accessors(&self, _table: &str) -> Option<Arc<[String]>> {
        None
    }

    /// Rewrites the tables `statement` names by accessor to their canonical
    /// names (see [`Names::canonicalize`]); nothing without accessor names.
    fn canonicalize(&self, _statement: &mut Statement) {}
}

/// The accessor names a module declares beside its canonical ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    tables: std::collections::HashMap<String, String>,
    columns: std::collections::HashMap<String, Arc<[String]>>,
}

impl Names {
    /// Records table or view `canonical`, known in module source as
    /// `accessor`, whose columns are known there as `column_accessors`.
    pub fn add(&mut self, canonical: &str, accessor: &str, column_accessors: Vec<String>) {
        if canonical != accessor {
            self.tables
                .entry(accessor.to_owned())
                .or_insert_with(|| canonical.to_owned());
        }
        self.columns
            .insert(canonical.to_owned(), Arc::from(column_accessors));
    }

    /// The canonical name of the table or view known by accessor `name`,
    /// if `name` is not itself a canonical name.
    pub fn canonical_table(&self, name: &str) -> Option<&str> {
        if self.columns.contains_key(name) {
            return None;
        }
        self.tables.get(name).map(String::as_str)
    }

    /// Rewrites every table that `statement` names by its accessor to the
    /// canonical name, so that everything keyed by table (row-level
    /// security, view materialisation, result names) sees one name. In a
    /// SELECT the written name stays the table's alias, so qualified
    /// columns keep resolving.
    pub fn canonicalize(&self, statement: &mut Statement) {
        let rename = |name: &mut String| match self.canonical_table(name) {
            Some(canonical) => {
                *name = canonical.to_owned();
                true
            }
            None => false,
        };
        match statement {
            Statement::Select(select) => {
                let tables = std::iter::once(&mut select.from)
                    .chain(select.joins.iter_mut().map(|j| &mut j.table));
                for table in tables {
                    let written = table.name.clone();
                    if rename(&mut table.name) && table.alias.is_none() {
                        table.alias = Some(written);
                    }
                }
            }
            Statement::Insert(insert) => {
                rename(&mut insert.table);
            }
            Statement::Update(update) => {
                rename(&mut update.table);
            }
            Statement::Delete(delete) => {
                rename(&mut delete.table);
            }
        }
    }
}

/// A catalog that also knows the module's accessor names.
pub struct Named<'a, C: ?Sized> {
    pub catalog: &'a C,
    pub names: &'a Names,
}

impl<C: Catalog + ?Sized> Catalog for Named<'_, C> {
    fn table_schema(&self, name: &str) -> Option<Arc<TableSchema>> {
        self.catalog.table_schema(name)
    }

    fn canonical_table(&self, name: &str) -> Option<String> {
        self.names.canonical_table(name).map(str::to_owned)
    }

    fn column_accessors(&self, table: &str) -> Option<Arc<[String]>> {
        self.names.columns.get(table).cloned()
    }

    fn canonicalize(&self, statement: &mut Statement) {
        self.names.canonicalize(statement);
    }
}

impl Catalog for State {
    fn table_schema(&self, name: &str) -> Option<Arc<TableSchema>> {
        let id = self.table_id_from_name(name)?;
        self.schema(id).ok().cloned()
    }
}

impl Catalog for storage::ReadTx<'_> {
    fn table_schema(&self, name: &str) -> Option<Arc<TableSchema>> {
        let state: &State = self;
        state.table_schema(name)
    }
}

/// Which grammar applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/sql`: the superset of §6.3.
    Sql,
    /// Subscriptions, one-off queries over WebSocket and RLS filters (§6.2).
    Subscription,
}

/// A table of the query and the name other clauses use for it.
#[derive(Debug, Clone)]
pub struct BoundTable {
    pub name: String,
    pub schema: Arc<TableSchema>,
}

/// Column `col` of the query's table number `table` (FROM = 0, joins follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColPos {
    pub table: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BoundOperand {
    Column(ColPos),
    Value(AlgebraicValue),
}

/// A checked condition. In a comparison with one column and one value the
/// column is always on the left.
#[derive(Debug, Clone, PartialEq)]
pub enum BoundExpr {
    Cmp(BoundOperand, CmpOp, BoundOperand),
    And(Box<BoundExpr>, Box<BoundExpr>),
    Or(Box<BoundExpr>, Box<BoundExpr>),
    Const(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BoundProjection {
    /// Whole rows of one table.
    Table(usize),
    /// Columns with their output names.
    Columns(Vec<(ColPos, String)>),
    /// One u64 row, named.
    Count(String),
}

#[derive(Debug, Clone)]
pub struct BoundSelect {
    pub tables: Vec<BoundTable>,
    /// `on[i]` joins `tables[i + 1]`: (column of an earlier table, column of `tables[i + 1]`).
    pub on: Vec<Option<(ColPos, ColPos)>>,
    pub filter: Option<BoundExpr>,
    pub projection: BoundProjection,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct BoundInsert {
    pub table: Arc<TableSchema>,
    /// Full rows in column order.
    pub rows: Vec<ProductValue>,
}

#[derive(Debug, Clone)]
pub struct BoundUpdate {
    pub table: Arc<TableSchema>,
    pub assignments: Vec<(usize, AlgebraicValue)>,
    /// Columns refer to table 0.
    pub filter: Option<BoundExpr>,
}

#[derive(Debug, Clone)]
pub struct BoundDelete {
    pub table: Arc<TableSchema>,
    pub filter: Option<BoundExpr>,
}

#[derive(Debug, Clone)]
pub enum BoundStatement {
    Select(BoundSelect),
    Insert(BoundInsert),
    Update(BoundUpdate),
    Delete(BoundDelete),
}

struct Checker<'a, C: ?Sized> {
    catalog: &'a C,
    caller_is_owner: bool,
    sender: Identity,
    mode: Mode,
}

/// Resolves and types `statement`. Non-owners do not see private tables.
pub fn check<C: Catalog + ?Sized>(
    statement: &Statement,
    catalog: &C,
    mode: Mode,
    caller_is_owner: bool,
    sender: Identity,
) -> Result<BoundStatement, SqlError> {
    let checker = Checker {
        catalog,
        caller_is_owner,
        sender,
        mode,
    };
    match (statement, mode) {
        (Statement::Select(s), _) => checker.select(s).map(BoundStatement::Select),
        (_, Mode::Subscription) => Err(SqlError::new("subscriptions accept only SELECT queries")),
        (Statement::Insert(i), Mode::Sql) => checker.insert(i).map(BoundStatement::Insert),
        (Statement::Update(u), Mode::Sql) => checker.update(u).map(BoundStatement::Update),
        (Statement::Delete(d), Mode::Sql) => checker.delete(d).map(BoundStatement::Delete),
    }
}

fn column_name(schema: &TableSchema, col: usize) -> &str {
    schema.columns.elements[col]
        .name()
        .map_or("?", |n| n.as_ref())
}

fn has_single_column_index(schema: &TableSchema, col: usize) -> bool {
    schema
        .indexes
        .iter()
        .any(|i| i.columns.len() == 1 && i.columns[0].idx() == col)
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        same => same,
    }
}

impl<C: Catalog + ?Sized> Checker<'_, C> {
    /// A module table by name, else the view of that name as materialised
    /// for this caller (the host materialises views before checking).
    /// Names of view tables as such never resolve.
    fn table(&self, name: &str) -> Result<Arc<TableSchema>, SqlError> {
        let lookup = |name: &str| {
            self.catalog
                .table_schema(name)
                .or_else(|| self.catalog.table_schema(&view_tables::anonymous(name)))
                .or_else(|| {
                    let mine = view_tables::per_sender(name, self.sender);
                    self.catalog.table_schema(&mine)
                })
        };
        let found = match view_tables::is_view_table(name) {
            true => None,
            false => lookup(name).or_else(|| {
                self.catalog
                    .canonical_table(name)
                    .and_then(|canonical| lookup(&canonical))
            }),
        };
        match found {
            Some(schema) if schema.public || self.caller_is_owner => Ok(schema),
            _ => Err(SqlError(format!("no such table `{name}`"))),
        }
    }

    fn bind_table(&self, t: &TableRef, scope: &[BoundTable]) -> Result<BoundTable, SqlError> {
        let schema = self.table(&t.name)?;
        let name = t.visible_name().to_string();
        if scope.iter().any(|b| b.name == name) {
            return Err(SqlError(format!(
                "duplicate table name or alias `{name}` (give each table its own alias)"
            )));
        }
        Ok(BoundTable { name, schema })
    }

    fn column(&self, c: &ColRef, scope: &[BoundTable]) -> Result<ColPos, SqlError> {
        // By canonical name first, then by the accessor in module source.
        let find = |table: usize| {
            let schema = &scope[table].schema;
            schema
                .columns
                .elements
                .iter()
                .position(|e| e.has_name(&c.column))
                .or_else(|| {
                    let accessors = self
                        .catalog
                        .column_accessors(view_tables::client_name(&schema.name))?;
                    accessors.iter().position(|a| *a == c.column)
                })
                .map(|col| ColPos { table, col })
        };
        match &c.table {
            Some(t) => {
                let table = scope
                    .iter()
                    .position(|b| &b.name == t)
                    .ok_or_else(|| SqlError(format!("no table or alias `{t}` in this query")))?;
                find(table).ok_or_else(|| {
                    SqlError(format!(
                        "no such column `{}` in table `{}`",
                        c.column, scope[table].name
                    ))
                })
            }
            None => {
                if scope.len() > 1 && self.mode == Mode::Subscription {
                    return Err(SqlError(format!(
                        "column `{}` must be qualified with its table in a join",
                        c.column
                    )));
                }
                let mut found = (0..scope.len()).filter_map(find);
                match (found.next(), found.next()) {
                    (Some(pos), None) => Ok(pos),
                    (Some(_), Some(_)) => Err(SqlError(format!(
                        "column `{}` is ambiguous; qualify it with a table",
                        c.column
                    ))),
                    (None, _) if scope.len() == 1 => Err(SqlError(format!(
                        "no such column `{}` in table `{}`",
                        c.column, scope[0].name
                    ))),
                    (None, _) => Err(SqlError(format!(
                        "no such column `{}` in any table of this query",
                        c.column
                    ))),
                }
            }
        }
    }

    fn col_type<'s>(&self, pos: ColPos, scope: &'s [BoundTable]) -> &'s AlgebraicType {
        &scope[pos.table].schema.columns.elements[pos.col].algebraic_type
    }

    fn sender_value(&self, ty: &AlgebraicType) -> Result<AlgebraicValue, SqlError> {
        let bytes = self.sender.to_byte_array();
        if ty.is_identity() {
            Ok(AlgebraicValue::product([AlgebraicValue::U256(Box::new(
                u256::from_le_bytes(bytes),
            ))]))
        } else if ty.is_bytes() {
            Ok(AlgebraicValue::Bytes(bytes.to_vec().into()))
        } else {
            Err(SqlError(format!(
                "`:sender` can only be compared with Identity or bytes columns, not {}",
                type_name(ty)
            )))
        }
    }

    fn operand_value(
        &self,
        operand: &Operand,
        ty: &AlgebraicType,
    ) -> Result<AlgebraicValue, SqlError> {
        match operand {
            Operand::Literal(lit) => to_value(lit, ty),
            Operand::Sender => self.sender_value(ty),
            Operand::Column(_) => unreachable!("callers pass literals and :sender only"),
        }
    }

    fn expr(&self, e: &Expr, scope: &[BoundTable]) -> Result<BoundExpr, SqlError> {
        Ok(match e {
            Expr::Bool(b) => BoundExpr::Const(*b),
            Expr::And(a, b) => BoundExpr::And(
                Box::new(self.expr(a, scope)?),
                Box::new(self.expr(b, scope)?),
            ),
            Expr::Or(a, b) => BoundExpr::Or(
                Box::new(self.expr(a, scope)?),
                Box::new(self.expr(b, scope)?),
            ),
            Expr::Cmp(left, op, right) => match (left, right) {
                (Operand::Column(a), Operand::Column(b)) => {
                    let (a, b) = (self.column(a, scope)?, self.column(b, scope)?);
                    let (ta, tb) = (self.col_type(a, scope), self.col_type(b, scope));
                    if ta != tb {
                        return Err(SqlError(format!(
                            "cannot compare {} with {}",
                            type_name(ta),
                            type_name(tb)
                        )));
                    }
                    if !is_comparable(ta) {
                        return Err(SqlError(format!(
                            "values of type {} cannot be compared",
                            type_name(ta)
                        )));
                    }
                    BoundExpr::Cmp(BoundOperand::Column(a), *op, BoundOperand::Column(b))
                }
                (Operand::Column(c), other) | (other, Operand::Column(c)) => {
                    let pos = self.column(c, scope)?;
                    let value = self.operand_value(other, self.col_type(pos, scope))?;
                    let op = if matches!(left, Operand::Column(_)) {
                        *op
                    } else {
                        flip(*op)
                    };
                    BoundExpr::Cmp(BoundOperand::Column(pos), op, BoundOperand::Value(value))
                }
                _ => {
                    return Err(SqlError::new(
                        "a comparison needs at least one column (comparing two literals is not supported)",
                    ))
                }
            },
        })
    }

    fn select(&self, s: &Select) -> Result<BoundSelect, SqlError> {
        let subscription = self.mode == Mode::Subscription;
        if subscription {
            if s.limit.is_some() {
                return Err(SqlError::new("subscriptions do not support LIMIT"));
            }
            if s.joins.len() > 1 {
                return Err(SqlError::new("subscriptions may join at most two tables"));
            }
        }
        let mut tables = vec![self.bind_table(&s.from, &[])?];
        let mut on = Vec::new();
        for join in &s.joins {
            let bound = self.bind_table(&join.table, &tables)?;
            tables.push(bound);
            let new = tables.len() - 1;
            let Some((a, b)) = &join.on else {
                on.push(None);
                continue;
            };
            let (a, b) = (self.column(a, &tables)?, self.column(b, &tables)?);
            let (earlier, this) = match (a.table == new, b.table == new) {
                (false, true) => (a, b),
                (true, false) => (b, a),
                _ => {
                    return Err(SqlError(format!(
                        "the ON condition of the join with `{}` must compare one of its columns with a column of an earlier table",
                        tables[new].name
                    )))
                }
            };
            let (te, tt) = (
                self.col_type(earlier, &tables),
                self.col_type(this, &tables),
            );
            if te != tt || !is_comparable(te) {
                return Err(SqlError(format!(
                    "cannot join on {} = {}",
                    type_name(te),
                    type_name(tt)
                )));
            }
            if subscription
                && !(has_single_column_index(&tables[earlier.table].schema, earlier.col)
                    && has_single_column_index(&tables[this.table].schema, this.col))
            {
                return Err(SqlError::new(
                    "Subscriptions require indexes on join columns",
                ));
            }
            on.push(Some((earlier, this)));
        }
        let projection = match &s.projection {
            Projection::Star if tables.len() == 1 => BoundProjection::Table(0),
            Projection::Star if subscription => {
                return Err(SqlError::new(
                    "with a join, say which table's rows to return: SELECT t.* …",
                ))
            }
            Projection::Star => BoundProjection::Columns(
                tables
                    .iter()
                    .enumerate()
                    .flat_map(|(table, t)| {
                        (0..t.schema.columns.elements.len()).map(move |col| {
                            (ColPos { table, col }, column_name(&t.schema, col).to_string())
                        })
                    })
                    .collect(),
            ),
            Projection::TableStar(name) => BoundProjection::Table(
                tables
                    .iter()
                    .position(|t| &t.name == name)
                    .ok_or_else(|| SqlError(format!("no table or alias `{name}` in this query")))?,
            ),
            Projection::Columns(_) | Projection::Count(_) if subscription => {
                return Err(SqlError::new(
                    "subscriptions must return entire rows of a single table (SELECT * or SELECT t.*)",
                ))
            }
            Projection::Columns(cols) => BoundProjection::Columns(
                cols.iter()
                    .map(|(c, alias)| {
                        let pos = self.column(c, &tables)?;
                        // Unaliased, a column is named canonically, however written.
                        let name = alias.clone().unwrap_or_else(|| {
                            column_name(&tables[pos.table].schema, pos.col).to_string()
                        });
                        Ok((pos, name))
                    })
                    .collect::<Result<_, SqlError>>()?,
            ),
            Projection::Count(alias) => BoundProjection::Count(alias.clone()),
        };
        if subscription && tables.len() == 2 {
            if let BoundProjection::Table(returned) = projection {
                let lookup = &tables[1 - returned].schema;
                if lookup.is_event {
                    return Err(SqlError::new(
                        "an event table cannot be the lookup side of a subscription join",
                    ));
                }
            }
        }
        let filter = s
            .filter
            .as_ref()
            .map(|e| self.expr(e, &tables))
            .transpose()?;
        Ok(BoundSelect {
            tables,
            on,
            filter,
            projection,
            limit: s.limit,
        })
    }

    /// The one table of an INSERT, UPDATE or DELETE; views are read-only.
    fn single(&self, name: &str) -> Result<Vec<BoundTable>, SqlError> {
        let schema = self.table(name)?;
        if view_tables::is_view_table(&schema.name) {
            return Err(SqlError(format!(
                "`{name}` is a view; views cannot be written"
            )));
        }
        Ok(vec![BoundTable {
            name: name.to_string(),
            schema,
        }])
    }

    fn insert(&self, i: &Insert) -> Result<BoundInsert, SqlError> {
        let scope = self.single(&i.table)?;
        let schema = scope[0].schema.clone();
        let n = schema.columns.elements.len();
        let order: Vec<usize> = if i.columns.is_empty() {
            (0..n).collect()
        } else {
            let mut seen = vec![false; n];
            let order = i
                .columns
                .iter()
                .map(|c| {
                    let pos = self.column(
                        &ColRef {
                            table: None,
                            column: c.clone(),
                        },
                        &scope,
                    )?;
                    if std::mem::replace(&mut seen[pos.col], true) {
                        return Err(SqlError(format!("column `{c}` is listed twice")));
                    }
                    Ok(pos.col)
                })
                .collect::<Result<Vec<_>, SqlError>>()?;
            if let Some(missing) = seen.iter().position(|s| !s) {
                return Err(SqlError(format!(
                    "INSERT must give a value for every column; `{}` is missing",
                    column_name(&schema, missing)
                )));
            }
            order
        };
        let rows = i
            .rows
            .iter()
            .map(|row| {
                if row.len() != order.len() {
                    return Err(SqlError(format!(
                        "INSERT row has {} values for {} columns",
                        row.len(),
                        order.len()
                    )));
                }
                let mut values = vec![AlgebraicValue::Bool(false); n];
                for (lit, &col) in row.iter().zip(&order) {
                    values[col] = to_value(lit, &schema.columns.elements[col].algebraic_type)
                        .map_err(|e| {
                            SqlError(format!("column `{}`: {e}", column_name(&schema, col)))
                        })?;
                }
                Ok(ProductValue::from(values))
            })
            .collect::<Result<_, SqlError>>()?;
        Ok(BoundInsert {
            table: schema,
            rows,
        })
    }

    fn update(&self, u: &Update) -> Result<BoundUpdate, SqlError> {
        let scope = self.single(&u.table)?;
        let assignments = u
            .assignments
            .iter()
            .map(|(c, lit)| {
                let pos = self.column(
                    &ColRef {
                        table: None,
                        column: c.clone(),
                    },
                    &scope,
                )?;
                let value = to_value(lit, self.col_type(pos, &scope))
                    .map_err(|e| SqlError(format!("column `{c}`: {e}")))?;
                Ok((pos.col, value))
            })
            .collect::<Result<_, SqlError>>()?;
        let filter = u
            .filter
            .as_ref()
            .map(|e| self.expr(e, &scope))
            .transpose()?;
        Ok(BoundUpdate {
            table: scope[0].schema.clone(),
            assignments,
            filter,
        })
    }

    fn delete(&self, d: &Delete) -> Result<BoundDelete, SqlError> {
        let scope = self.single(&d.table)?;
        let filter = d
            .filter
            .as_ref()
            .map(|e| self.expr(e, &scope))
            .transpose()?;
        Ok(BoundDelete {
            table: scope[0].schema.clone(),
            filter,
        })
    }
}
