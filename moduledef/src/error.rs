//! Errors produced while decoding and validating a module definition.
//!
//! Owns: [`ModuleDefError`], the single error type of `crate`, and
//! [`TypeError`], the reason a type reference could not be resolved.
//! Does not own: storage's own `SchemaError` (carried as text inside
//! [`ModuleDefError::StorageRejected`]).
//! Entry points: returned by `ModuleDef::from_bsatn`.
//!
//! Every variant names the object at fault (table, index, reducer, ...) and
//! the reason, so a publish error can be shown to the module author as is.

use spacetimedb_lib::db::raw_def::v9::Lifecycle as RawLifecycle;

/// Why a type could not be resolved against the module's typespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("type reference Ref({reference}) is out of range (the typespace has {len} types)")]
    RefOutOfRange { reference: u32, len: usize },
    #[error(
        "type nesting deeper than {limit} levels while resolving Ref({reference}) \
         (a cyclic or absurdly deep type)"
    )]
    TooDeep { reference: u32, limit: usize },
}

/// A module definition that cannot be hosted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleDefError {
    #[error("module definition is not valid BSATN for RawModuleDef: {0}")]
    Decode(String),
    #[error("module definition version {version} is not supported (only V9 and V10 are)")]
    UnsupportedVersion { version: &'static str },
    #[error("{feature} is not supported yet")]
    Unsupported { feature: String },
    #[error("HTTP handler `{handler}` {reason}")]
    HttpHandler { handler: String, reason: String },
    #[error("HTTP route {method} `{path}`: {reason}")]
    HttpRoute {
        method: String,
        path: String,
        reason: String,
    },
    #[error("module definition has the `{section}` section more than once")]
    DuplicateSection { section: &'static str },
    #[error("module definition uses an unknown {what} variant")]
    UnknownVariant { what: &'static str },

    #[error("{owner}: {source}")]
    Type {
        owner: String,
        #[source]
        source: TypeError,
    },
    #[error("table `{table}`: its row type {found} is not a product type")]
    RowNotProduct { table: String, found: String },
    #[error("table `{table}`: column {col} has no name")]
    UnnamedColumn { table: String, col: usize },
    #[error("table `{table}`: column name `{column}` appears twice")]
    DuplicateColumn { table: String, column: String },
    #[error("table `{table}`: {what} names column {col} but the table has {count} columns")]
    ColumnOutOfRange {
        table: String,
        what: String,
        col: u16,
        count: usize,
    },
    #[error("table `{table}`: {what} has no columns")]
    EmptyColumnList { table: String, what: String },
    #[error("table `{table}`: {what} names column {col} twice")]
    RepeatedColumn {
        table: String,
        what: String,
        col: u16,
    },
    #[error("table `{table}`: sequence `{sequence}` is on column `{column}` of type {ty}, which is not an integer type")]
    SequenceNotInteger {
        table: String,
        sequence: String,
        column: String,
        ty: String,
    },
    #[error("table `{table}`: column `{column}` has more than one sequence")]
    DuplicateSequence { table: String, column: String },
    #[error(
        "table `{table}`: direct index `{index}` is on column `{column}` of type {ty}; {reason}"
    )]
    DirectIndexType {
        table: String,
        index: String,
        column: String,
        ty: String,
        reason: &'static str,
    },
    #[error("table `{table}`: direct index `{index}` on column `{column}` has no unique constraint on that column")]
    DirectIndexNotUnique {
        table: String,
        index: String,
        column: String,
    },
    #[error("table `{table}`: the primary key has {count} columns; at most one is supported")]
    PrimaryKeyMultiColumn { table: String, count: usize },
    #[error("table `{table}`: primary key column `{column}` has no unique constraint on exactly that column")]
    PrimaryKeyNotUnique { table: String, column: String },
    #[error("table `{table}`: default value for column {col}: {reason}")]
    DefaultValue {
        table: String,
        col: u16,
        reason: String,
    },
    #[error("two {kind}s are named `{name}`")]
    DuplicateName { kind: &'static str, name: String },
    #[error("index name `{index}` is used twice (tables `{first_table}` and `{second_table}`)")]
    DuplicateIndexName {
        index: String,
        first_table: String,
        second_table: String,
    },

    #[error("schedule for function `{function}` names table `{table}`, which does not exist")]
    ScheduleTableMissing { table: String, function: String },
    #[error("table `{table}` has more than one schedule")]
    DuplicateSchedule { table: String },
    #[error("schedule table `{table}`: {reason}")]
    ScheduleIdColumn { table: String, reason: String },
    #[error("schedule table `{table}`: column {col} must be a ScheduleAt: {reason}")]
    ScheduleAtColumn {
        table: String,
        col: u16,
        reason: String,
    },
    #[error("schedule table `{table}` names function `{function}`, which is neither a reducer nor a procedure")]
    ScheduledFunctionMissing { table: String, function: String },
    #[error("schedule table `{table}`: function `{function}` {reason}")]
    ScheduledFunctionSignature {
        table: String,
        function: String,
        reason: String,
    },

    #[error("lifecycle {lifecycle} names reducer `{function}`, which does not exist")]
    LifecycleReducerMissing {
        lifecycle: Lifecycle,
        function: String,
    },
    #[error("lifecycle {lifecycle} reducer `{function}` must take no arguments but takes {count}")]
    LifecycleHasParams {
        lifecycle: Lifecycle,
        function: String,
        count: usize,
    },
    #[error("lifecycle {lifecycle} is assigned twice (`{first}` and `{second}`)")]
    DuplicateLifecycle {
        lifecycle: Lifecycle,
        first: String,
        second: String,
    },

    #[error("view `{view}`: {reason}")]
    View { view: String, reason: String },

    #[error("table `{table}` is refused by the storage engine: {message}")]
    StorageRejected { table: String, message: String },
}

/// The three lifecycle events a reducer can be bound to.
/// (Our own copy: the upstream enum is `#[non_exhaustive]`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lifecycle {
    Init,
    OnConnect,
    OnDisconnect,
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lifecycle::Init => "Init",
            Lifecycle::OnConnect => "OnConnect",
            Lifecycle::OnDisconnect => "OnDisconnect",
        })
    }
}

impl Lifecycle {
    /// Maps the upstream enum; `None` for a variant added after 2.10.1.
    pub(crate) fn from_raw(raw: &RawLifecycle) -> Option<Lifecycle> {
        match raw {
            RawLifecycle::Init => Some(Lifecycle::Init),
            RawLifecycle::OnConnect => Some(Lifecycle::OnConnect),
            RawLifecycle::OnDisconnect => Some(Lifecycle::OnDisconnect),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}
