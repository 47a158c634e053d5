//! SQL for clients: the subset of client-protocol.md §6.
//!
//! Owns: parsing SQL text into our own statement tree ([`parse`]), resolving
//! and type-checking it against a [`Catalog`] in plain-SQL or subscription
//! mode ([`check`]), literal typing ([`literal`]), and evaluating one-off
//! SELECTs over a [`storage::State`] ([`eval`]), and executing INSERT, UPDATE
//! and DELETE in a write transaction ([`exec`]), and the names of the tables
//! that hold materialised views ([`view_tables`]; a view name resolves to the
//! caller's materialisation).
//! Also the module's row-level security rules and the rewriting of a
//! non-owner's query under them ([`rls`]).
//! Does not own: deciding who is owner, materialising views (hosting),
//! subscriptions and their deltas, or the HTTP/WebSocket replies (callers
//! decide who is owner).

pub mod check;
pub mod eval;
pub mod exec;
pub mod literal;
pub mod parse;
pub mod rls;
pub mod view_tables;

#[cfg(test)]
mod tests;

pub use crate::budget::{Budget, LimitExceeded, QueryLimits};
pub use check::{
    check, BoundExpr, BoundOperand, BoundProjection, BoundSelect, BoundStatement, BoundTable,
    Catalog, ColPos, Mode, Named, Names,
};
pub use eval::{eval_select, run_query, QueryResult};
pub use parse::{
    parse, CmpOp, ColRef, Expr, Join, Literal, Operand, Projection, Select, Statement, TableRef,
};

/// Any SQL failure: bad syntax, something unsupported, an unknown name or a
/// type mismatch. The text is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(pub String);

impl SqlError {
    pub(crate) fn new(message: impl Into<String>) -> SqlError {
        SqlError(message.into())
    }
}

impl From<LimitExceeded> for SqlError {
    fn from(e: LimitExceeded) -> SqlError {
        SqlError(e.to_string())
    }
}

/// Why a query produced no result: the SQL itself, or a limit it crossed
/// while being evaluated (which one, with its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
}

impl From<QueryError> for SqlError {
    fn from(e: QueryError) -> SqlError {
        match e {
            QueryError::Sql(e) => e,
            QueryError::Limit(e) => e.into(),
        }
    }
}
