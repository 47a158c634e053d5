//! The module definition: decoding what a guest's `__describe_module__`
//! writes, validating it at publish time, and presenting it to the host.
//!
//! Owns: [`ModuleDef`] and its parts ([`TableInfo`], [`ReducerInfo`],
//! [`ProcedureInfo`], [`ViewInfo`], [`ScheduleInfo`], [`LifecycleReducers`]),
//! built from `RawModuleDef` V10 (what 2.10.1 modules emit) or V9 (older
//! modules); V8 is refused. Tables come out as ready-to-create
//! `storage::TableDef`s with every type ref resolved.
//! Does not own: running the guest, creating tables, the scheduler, or
//! argument decoding (callers use [`ModuleDef::typespace`] and the raw params).
//! Entry points: [`ModuleDef::from_bsatn`].
//!
//! Layout: `normalize` flattens V9/V10 into one shape, `types` resolves refs,
//! `names` computes canonical names, `build` validates and assembles, `error`
//! holds [`ModuleDefError`]. Validation rules: module ABI spec section 6.7;
//! our implementation, written from the spec only.

mod build;
mod error;
mod http;
mod names;
mod normalize;
mod types;

pub mod migrate;
pub mod v9;

use spacetimedb_lib::RawModuleDef;
use spacetimedb_primitives::ColId;
use spacetimedb_sats::{AlgebraicType, AlgebraicTypeRef, ProductType, Typespace};

pub use error::{Lifecycle, ModuleDefError, TypeError};
pub use http::{check_route_path, method_text, HttpHandlerInfo, HttpRouteInfo};
pub use names::{to_snake_case, CasePolicy};
pub use types::{is_schedule_at, option_inner, type_text, MAX_TYPE_DEPTH};

/// Which `RawModuleDef` version the module sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefVersion {
    V9,
    V10,
}

/// Who may call a reducer or procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Clients may call it by name.
    ClientCallable,
    /// Only the host (lifecycle events, owner/internal callers).
    Private,
}

/// A validated module definition.
#[derive(Debug, Clone)]
pub struct ModuleDef {
    pub version: DefVersion,
    /// In definition order.
    pub tables: Vec<TableInfo>,
    /// Position = reducer id passed to `__call_reducer__`.
    pub reducers: Vec<ReducerInfo>,
    /// Position = procedure id passed to `__call_procedure__`.
    pub procedures: Vec<ProcedureInfo>,
    pub views: Vec<ViewInfo>,
    pub schedules: Vec<ScheduleInfo>,
    pub lifecycle: LifecycleReducers,
    /// Client visibility filters, as SQL (checked against the tables when
    /// the module is hosted: `sql::rls`).
    pub row_level_security: Vec<String>,
    /// HTTP handlers; position = id passed to `__call_http_handler__`.
    pub http_handlers: Vec<HttpHandlerInfo>,
    /// HTTP routes, in definition order (`http`).
    pub http_routes: Vec<HttpRouteInfo>,
    /// The module's typespace, unresolved, for decoding arguments and
    /// return values whose types still contain refs.
    pub typespace: Typespace,
}

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// What the guest sends to `table_id_from_name`.
    pub source_name: String,
    /// What clients and SQL see; equals `def.name`.
    pub canonical_name: String,
    /// The row type's ref in [`ModuleDef::typespace`].
    pub product_type_ref: AlgebraicTypeRef,
    /// Column names as the module declares them (accessors), parallel to
    /// `def.columns`, whose names are the canonical ones.
    pub column_source_names: Vec<String>,
    /// Ready for `MutTx::create_table`: name = canonical name, fully resolved
    /// columns, index names = the source names the guest looks up.
    pub def: storage::TableDef,
    /// Parallel to `def.indexes`.
    pub indexes: Vec<IndexInfo>,
    /// Index into [`ModuleDef::schedules`] if this is a schedule table.
    pub schedule: Option<usize>,
    /// `#[default(...)]` values (BSATN at the column type), checked to decode.
    pub default_values: Vec<(ColId, Vec<u8>)>,
}

/// Names of one index, parallel to `TableDef::indexes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// Storage name = the name the guest sends to `index_id_from_name`.
    pub name: String,
    pub canonical_name: String,
    /// The accessor in module code (`by_age_and_name`), if any.
    pub accessor_name: Option<String>,
    /// True if the module sent no name and we generated
    /// `{table}_{cols}_idx_{btree|hash|direct}`.
    pub generated_name: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReducerInfo {
    pub source_name: String,
    pub canonical_name: String,
    /// Parameters with every ref resolved.
    pub params: ProductType,
    /// Parameters as sent (may contain refs into [`ModuleDef::typespace`]).
    pub raw_params: ProductType,
    pub visibility: Visibility,
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcedureInfo {
    pub source_name: String,
    pub canonical_name: String,
    pub params: ProductType,
    pub raw_params: ProductType,
    /// Resolved return type.
    pub return_type: AlgebraicType,
    pub raw_return_type: AlgebraicType,
    pub visibility: Visibility,
}

/// The name of the one field of the product a query-builder view declares
/// as its return type (`spacetimedb::RawQuery<T>`).
pub const QUERY_VIEW_RETURN_TAG: &str = "__query__";

/// Whether a view returns `Vec<T>`, `Option<T>` or a query over `T` (the
/// query-builder form, whose rows the host computes by running the SQL the
/// view returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewReturn {
    Array,
    Option,
    Query,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViewInfo {
    pub source_name: String,
    pub canonical_name: String,
    /// The call id for `__call_view__` (sender views) or `__call_view_anon__`
    /// (anonymous views); the two count separately.
    pub id: u32,
    pub is_public: bool,
    pub is_anonymous: bool,
    pub returns: ViewReturn,
    /// The resolved row product (columns of the materialisation), with
    /// canonical column names.
    pub row_type: ProductType,
    /// Column names as the module declares them, parallel to `row_type`.
    pub column_source_names: Vec<String>,
    /// From the optional `ViewPrimaryKeys` section, or for a query view
    /// over a table's rows, that table's primary key.
    pub primary_key: Vec<ColId>,
    /// Columns the view's table indexes (single-column, non-unique): for a
    /// query view over a table's rows, the columns that table indexes.
    pub indexed_columns: Vec<ColId>,
}

/// The function a schedule table fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledFunction {
    /// Index into [`ModuleDef::reducers`].
    Reducer(usize),
    /// Index into [`ModuleDef::procedures`].
    Procedure(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    pub source_name: Option<String>,
    /// Index into [`ModuleDef::tables`].
    pub table: usize,
    /// The `u64` primary key = schedule id.
    pub id_col: ColId,
    /// The `ScheduleAt` column.
    pub schedule_at_col: ColId,
    pub function: ScheduledFunction,
}

/// Reducer ids bound to lifecycle events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleReducers {
    pub init: Option<usize>,
    pub on_connect: Option<usize>,
    pub on_disconnect: Option<usize>,
}

impl ModuleDef {
    /// Decodes and validates the bytes a module's `__describe_module__` wrote.
    pub fn from_bsatn(bytes: &[u8]) -> Result<ModuleDef, ModuleDefError> {
        let mut rest = bytes;
        let raw: RawModuleDef = spacetimedb_lib::bsatn::from_reader(&mut rest)
            .map_err(|e| ModuleDefError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ModuleDefError::Decode(format!(
                "{} trailing bytes after the definition",
                rest.len()
            )));
        }
        ModuleDef::from_raw(raw)
    }

    /// Validates an already decoded definition.
    pub fn from_raw(raw: RawModuleDef) -> Result<ModuleDef, ModuleDefError> {
        match raw {
            RawModuleDef::V10(def) => build::build(normalize::flatten_v10(def)?, DefVersion::V10),
            RawModuleDef::V9(def) => build::build(normalize::flatten_v9(def)?, DefVersion::V9),
            RawModuleDef::V8BackCompat(_) => {
                Err(ModuleDefError::UnsupportedVersion { version: "V8" })
            }
            #[allow(unreachable_patterns)]
            _ => Err(ModuleDefError::UnsupportedVersion { version: "unknown" }),
        }
    }

    /// The table the guest names `source_name`.
    pub fn table(&self, source_name: &str) -> Option<(usize, &TableInfo)> {
        self.tables
            .iter()
            .enumerate()
            .find(|(_, t)| t.source_name == source_name)
    }

    /// Reducer id and info by canonical name (what clients see, and what
    /// generated bindings send), else by source name (the accessor in module
    /// code, which the stock CLI's users type too).
    pub fn reducer(&self, name: &str) -> Option<(usize, &ReducerInfo)> {
        let mut all = self.reducers.iter().enumerate();
        all.clone()
            .find(|(_, r)| r.canonical_name == name)
            .or_else(|| all.find(|(_, r)| r.source_name == name))
    }

    /// Procedure id and info by canonical name, else by source name.
    pub fn procedure(&self, name: &str) -> Option<(usize, &ProcedureInfo)> {
        let mut all = self.procedures.iter().enumerate();
        all.clone()
            .find(|(_, p)| p.canonical_name == name)
            .or_else(|| all.find(|(_, p)| p.source_name == name))
    }
}

#[cfg(test)]
mod tests;
