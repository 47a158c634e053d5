//! Validation of a flattened module definition and construction of the
//! host-side [`ModuleDef`] (module ABI spec 6.7, 8.6, 8.7, 8.10, 8.12).
//!
//! Owns: every publish-time check (columns, keys, indexes, sequences, name
//! uniqueness, schedules, lifecycle reducers, views), the generated names of
//! unnamed indexes/constraints/sequences, and the storage `TableDef`s —
//! including running storage's own `TableDef::validate` so that a table the
//! engine would refuse is refused here, with the engine's message.
//! Does not own: decoding or version mapping (`normalize.rs`), type-ref
//! resolution (`types.rs`), naming rules (`names.rs`).
//! Entry points: [`build`].

use std::collections::{BTreeMap, BTreeSet};

use spacetimedb_primitives::{ColId, IndexId, TableId};
use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::{IndexAlgorithm, IndexDef, SequenceDef, TableDef, UniqueConstraintDef};

use super::error::{Lifecycle, ModuleDefError, TypeError};
use super::names::Namer;
use super::normalize::{Flat, FlatAlgorithm, FlatTable};
use super::types::{
    describe, is_plain_enum, is_schedule_at, option_inner, resolve, resolve_product,
};
use super::{
    DefVersion, IndexInfo, LifecycleReducers, ModuleDef, ProcedureInfo, ReducerInfo, ScheduleInfo,
    ScheduledFunction, TableInfo, ViewInfo, ViewReturn,
};

fn type_err(owner: impl Into<String>) -> impl FnOnce(TypeError) -> ModuleDefError {
    let owner = owner.into();
    move |source| ModuleDefError::Type { owner, source }
}

fn is_integer(ty: &AlgebraicType) -> bool {
    matches!(
        ty,
        AlgebraicType::I8
            | AlgebraicType::U8
            | AlgebraicType::I16
            | AlgebraicType::U16
            | AlgebraicType::I32
            | AlgebraicType::U32
            | AlgebraicType::I64
            | AlgebraicType::U64
            | AlgebraicType::I128
            | AlgebraicType::U128
            | AlgebraicType::I256
            | AlgebraicType::U256
    )
}

fn is_unsigned(ty: &AlgebraicType) -> bool {
    matches!(
        ty,
        AlgebraicType::U8
            | AlgebraicType::U16
            | AlgebraicType::U32
            | AlgebraicType::U64
            | AlgebraicType::U128
            | AlgebraicType::U256
    )
}

/// Column names of a resolved row product: all named, no duplicates.
fn column_names(table: &str, row: &ProductType) -> Result<Vec<String>, ModuleDefError> {
    let mut names = Vec::with_capacity(row.elements.len());
    let mut seen = BTreeSet::new();
    for (col, element) in row.elements.iter().enumerate() {
        let Some(name) = element.name.as_deref() else {
            return Err(ModuleDefError::UnnamedColumn {
                table: table.to_owned(),
                col,
            });
        };
        if !seen.insert(name) {
            return Err(ModuleDefError::DuplicateColumn {
                table: table.to_owned(),
                column: name.to_owned(),
            });
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Column ids of `what` are non-empty, in range and not repeated.
fn check_cols(table: &str, what: &str, cols: &[ColId], count: usize) -> Result<(), ModuleDefError> {
    if cols.is_empty() {
        return Err(ModuleDefError::EmptyColumnList {
            table: table.to_owned(),
            what: what.to_owned(),
        });
    }
    let mut seen = BTreeSet::new();
    for col in cols {
        if col.idx() >= count {
            return Err(ModuleDefError::ColumnOutOfRange {
                table: table.to_owned(),
                what: what.to_owned(),
                col: col.0,
                count,
            });
        }
        if !seen.insert(*col) {
            return Err(ModuleDefError::RepeatedColumn {
                table: table.to_owned(),
                what: what.to_owned(),
                col: col.0,
            });
        }
    }
    Ok(())
}

fn joined(names: &[String], cols: &[ColId]) -> String {
    cols.iter()
        .map(|c| names[c.idx()].as_str())
        .collect::<Vec<_>>()
        .join("_")
}

/// Rejects a second occurrence of `name` within one namespace.
fn unique_name(
    seen: &mut BTreeSet<String>,
    kind: &'static str,
    name: &str,
) -> Result<(), ModuleDefError> {
    if !seen.insert(name.to_owned()) {
        return Err(ModuleDefError::DuplicateName {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Validates one table and builds its storage definition.
fn build_table(flat: &Flat, namer: &Namer, t: &FlatTable) -> Result<TableInfo, ModuleDefError> {
    let table = t.source_name.as_str();
    let row_ty = resolve(&flat.typespace, &AlgebraicType::Ref(t.product_type_ref))
        .map_err(type_err(format!("table `{table}` row type")))?;
    let AlgebraicType::Product(columns) = row_ty else {
        return Err(ModuleDefError::RowNotProduct {
            table: table.to_owned(),
            found: describe(&row_ty),
        });
    };
    let names = column_names(table, &columns)?;
    let count = names.len();
    let col_ty = |c: ColId| &columns.elements[c.idx()].algebraic_type;

    // Unique constraints.
    let mut unique_constraints = Vec::with_capacity(t.uniques.len());
    for u in &t.uniques {
        let what = match &u.source_name {
            Some(n) => format!("unique constraint `{n}`"),
            None => "a unique constraint".to_owned(),
        };
        check_cols(table, &what, &u.columns, count)?;
        let name = u
            .source_name
            .clone()
            .unwrap_or_else(|| format!("{table}_{}_key", joined(&names, &u.columns)));
        unique_constraints.push(UniqueConstraintDef {
            name,
            columns: u.columns.clone(),
        });
    }
    let has_unique = |cols: &[ColId]| unique_constraints.iter().any(|u| u.columns == cols);

    // Primary key: at most one column, always backed by a unique constraint.
    let primary_key = match t.primary_key.as_slice() {
        [] => None,
        [pk] => {
            check_cols(table, "the primary key", &[*pk], count)?;
            if !has_unique(&[*pk]) {
                return Err(ModuleDefError::PrimaryKeyNotUnique {
                    table: table.to_owned(),
                    column: names[pk.idx()].clone(),
                });
            }
            Some(*pk)
        }
        many => {
            return Err(ModuleDefError::PrimaryKeyMultiColumn {
                table: table.to_owned(),
                count: many.len(),
            })
        }
    };

    // Indexes. Storage names = the source names the guest looks up.
    let mut indexes = Vec::with_capacity(t.indexes.len());
    let mut index_infos = Vec::with_capacity(t.indexes.len());
    for i in &t.indexes {
        let (algorithm, cols, suffix) = match &i.algorithm {
            FlatAlgorithm::BTree(c) => (IndexAlgorithm::BTree, c.clone(), "btree"),
            FlatAlgorithm::Hash(c) => (IndexAlgorithm::Hash, c.clone(), "hash"),
            FlatAlgorithm::Direct(c) => (IndexAlgorithm::Direct, vec![*c], "direct"),
        };
        let what = match &i.source_name {
            Some(n) => format!("index `{n}`"),
            None => format!("an unnamed {suffix} index"),
        };
        check_cols(table, &what, &cols, count)?;
        let generated = i.source_name.is_none();
        let name = i
            .source_name
            .clone()
            .unwrap_or_else(|| format!("{table}_{}_idx_{suffix}", joined(&names, &cols)));
        if algorithm == IndexAlgorithm::Direct {
            let col = cols[0];
            let ty = col_ty(col);
            if !is_unsigned(ty) {
                return Err(ModuleDefError::DirectIndexType {
                    table: table.to_owned(),
                    index: name,
                    column: names[col.idx()].clone(),
                    ty: describe(ty),
                    reason: if is_plain_enum(ty) {
                        "direct indexes on plain enums are not supported yet"
                    } else {
                        "a direct index needs an unsigned integer column"
                    },
                });
            }
            if !has_unique(&[col]) {
                return Err(ModuleDefError::DirectIndexNotUnique {
                    table: table.to_owned(),
                    index: name,
                    column: names[col.idx()].clone(),
                });
            }
        }
        index_infos.push(IndexInfo {
            canonical_name: namer.index(&name),
            name: name.clone(),
            accessor_name: i.accessor_name.clone(),
            generated_name: generated,
        });
        indexes.push(IndexDef {
            name,
            algorithm,
            columns: cols,
        });
    }

    // Sequences: integer columns, one per column.
    let mut sequences = Vec::with_capacity(t.sequences.len());
    let mut sequence_cols = BTreeSet::new();
    for s in &t.sequences {
        let what = match &s.source_name {
            Some(n) => format!("sequence `{n}`"),
            None => "a sequence".to_owned(),
        };
        check_cols(table, &what, &[s.column], count)?;
        let column = names[s.column.idx()].clone();
        let name = s
            .source_name
            .clone()
            .unwrap_or_else(|| format!("{table}_{column}_seq"));
        if !is_integer(col_ty(s.column)) {
            return Err(ModuleDefError::SequenceNotInteger {
                table: table.to_owned(),
                sequence: name,
                column,
                ty: describe(col_ty(s.column)),
            });
        }
        if !sequence_cols.insert(s.column) {
            return Err(ModuleDefError::DuplicateSequence {
                table: table.to_owned(),
                column,
            });
        }
        sequences.push(SequenceDef {
            name,
            column: s.column,
            start: s.start,
            min_value: s.min_value,
            max_value: s.max_value,
            increment: s.increment,
        });
    }

    // Column defaults: in range and decodable at the column's type.
    for (col, bytes) in &t.default_values {
        let err = |reason: String| ModuleDefError::DefaultValue {
            table: table.to_owned(),
            col: col.0,
            reason,
        };
        if col.idx() >= count {
            return Err(err(format!("the table has {count} columns")));
        }
        let mut rest: &[u8] = bytes;
        AlgebraicValue::decode(col_ty(*col), &mut rest)
            .map_err(|e| err(format!("not a valid BSATN value of the column's type: {e}")))?;
        if !rest.is_empty() {
            return Err(err(format!(
                "{} trailing bytes after the value",
                rest.len()
            )));
        }
    }

    // Canonical column names (what SQL and clients see); the source names stay
    // in `TableInfo::column_source_names` for lookups by accessor.
    let mut columns = columns;
    let mut canonical_columns = BTreeSet::new();
    for element in columns.elements.iter_mut() {
        let source = element.name.as_deref().unwrap_or_default();
        let canonical = namer.column(source);
        if !canonical_columns.insert(canonical.clone()) {
            return Err(ModuleDefError::DuplicateColumn {
                table: table.to_owned(),
                column: canonical,
            });
        }
        element.name = Some(canonical.into());
    }
    let def = TableDef {
        name: namer.table(table),
        columns,
        primary_key,
        indexes,
        unique_constraints,
        sequences,
        public: t.public,
        is_event: t.is_event,
    };
    Ok(TableInfo {
        source_name: t.source_name.clone(),
        canonical_name: def.name.clone(),
        product_type_ref: t.product_type_ref,
        column_source_names: names,
        def,
        indexes: index_infos,
        schedule: None,
        default_values: t.default_values.clone(),
    })
}

/// Resolves a view's return type to its row product.
fn view_row(
    flat: &Flat,
    view: &str,
    ty: &AlgebraicType,
) -> Result<(ViewReturn, ProductType), ModuleDefError> {
    let resolved =
        resolve(&flat.typespace, ty).map_err(type_err(format!("view `{view}` return type")))?;
    let (returns, inner) = match &resolved {
        AlgebraicType::Array(array) => (ViewReturn::Array, &*array.elem_ty),
        // A query-builder view (`impl Query<T>`): the special product
        // `{ __query__: T }` (module-abi §4.7/§4.8, §8.12).
        AlgebraicType::Product(product)
            if product.elements.len() == 1
                && product.elements[0].name.as_deref() == Some(crate::QUERY_VIEW_RETURN_TAG) =>
        {
            (ViewReturn::Query, &product.elements[0].algebraic_type)
        }
        other => match option_inner(other) {
            Some(inner) => (ViewReturn::Option, inner),
            None => {
                return Err(ModuleDefError::View {
                    view: view.to_owned(),
                    reason: format!(
                        "return type {} is neither an array, an option nor a query",
                        describe(&resolved)
                    ),
                })
            }
        },
    };
    let AlgebraicType::Product(row) = inner else {
        return Err(ModuleDefError::View {
            view: view.to_owned(),
            reason: format!("row type {} is not a product type", describe(inner)),
        });
    };
    column_names(view, row).map_err(|e| ModuleDefError::View {
        view: view.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((returns, row.clone()))
}

/// Validates `flat` and builds the host-side definition.
pub(crate) fn build(flat: Flat, version: DefVersion) -> Result<ModuleDef, ModuleDefError> {
    super::types::check_typespace(&flat.typespace).map_err(|(i, e)| ModuleDefError::Type {
        owner: format!("typespace entry {i}"),
        source: e,
    })?;
    let namer = Namer::new(flat.case_policy, flat.explicit_names.clone());

    // Tables.
    let mut tables = Vec::with_capacity(flat.tables.len());
    let mut table_sources = BTreeSet::new();
    let mut table_canon = BTreeSet::new();
    let mut index_owner: BTreeMap<String, String> = BTreeMap::new();
    for t in &flat.tables {
        unique_name(&mut table_sources, "table", &t.source_name)?;
        let info = build_table(&flat, &namer, t)?;
        unique_name(&mut table_canon, "table", &info.canonical_name)?;
        let schema = info
            .def
            .clone()
            .validate(TableId(1), IndexId(1))
            .map_err(|e| ModuleDefError::StorageRejected {
                table: info.source_name.clone(),
                message: e.to_string(),
            })?;
        // Storage index names are global to the database.
        for index in &schema.indexes {
            if let Some(first) = index_owner.insert(index.name.clone(), info.source_name.clone()) {
                return Err(ModuleDefError::DuplicateIndexName {
                    index: index.name.clone(),
                    first_table: first,
                    second_table: info.source_name.clone(),
                });
            }
        }
        tables.push(info);
    }

    // Functions: reducers, procedures and views share one namespace.
    let mut fn_sources = BTreeSet::new();
    let mut fn_canon = BTreeSet::new();
    let mut reducers = Vec::with_capacity(flat.reducers.len());
    for r in &flat.reducers {
        unique_name(&mut fn_sources, "function", &r.source_name)?;
        let canonical_name = namer.function(&r.source_name);
        unique_name(&mut fn_canon, "function", &canonical_name)?;
        let params = resolve_product(&flat.typespace, &r.params)
            .map_err(type_err(format!("reducer `{}` parameters", r.source_name)))?;
        reducers.push(ReducerInfo {
            source_name: r.source_name.clone(),
            canonical_name,
            params,
            raw_params: r.params.clone(),
            visibility: r.visibility,
            lifecycle: None,
        });
    }
    let mut procedures = Vec::with_capacity(flat.procedures.len());
    for p in &flat.procedures {
        unique_name(&mut fn_sources, "function", &p.source_name)?;
        let canonical_name = namer.function(&p.source_name);
        unique_name(&mut fn_canon, "function", &canonical_name)?;
        let params = resolve_product(&flat.typespace, &p.params).map_err(type_err(format!(
            "procedure `{}` parameters",
            p.source_name
        )))?;
        let return_type = resolve(&flat.typespace, &p.return_type).map_err(type_err(format!(
            "procedure `{}` return type",
            p.source_name
        )))?;
        procedures.push(ProcedureInfo {
            source_name: p.source_name.clone(),
            canonical_name,
            params,
            raw_params: p.params.clone(),
            return_type,
            raw_return_type: p.return_type.clone(),
            visibility: p.visibility,
        });
    }

    // Views: materialised as tables, so their canonical names must not clash
    // with table names either.
    let mut views = Vec::with_capacity(flat.views.len());
    let mut view_ids = BTreeSet::new();
    for v in &flat.views {
        unique_name(&mut fn_sources, "function", &v.source_name)?;
        let canonical_name = namer.function(&v.source_name);
        unique_name(&mut fn_canon, "function", &canonical_name)?;
        unique_name(&mut table_canon, "table or view", &canonical_name)?;
        if !v.params.elements.is_empty() {
            return Err(ModuleDefError::Unsupported {
                feature: format!("views with parameters (view `{}`)", v.source_name),
            });
        }
        if !view_ids.insert((v.is_anonymous, v.index)) {
            return Err(ModuleDefError::View {
                view: v.source_name.clone(),
                reason: format!(
                    "{} view id {} is used twice",
                    if v.is_anonymous {
                        "anonymous"
                    } else {
                        "sender"
                    },
                    v.index
                ),
            });
        }
        let (returns, row_type) = view_row(&flat, &v.source_name, &v.return_type)?;
        // A query view over a table's row type has that table's primary key
        // (as the reference derives it; clients' code generation uses it).
        let source = match (returns, &v.return_type) {
            (ViewReturn::Query, AlgebraicType::Product(product)) => {
                match product.elements.first().map(|e| &e.algebraic_type) {
                    Some(AlgebraicType::Ref(r)) => tables
                        .iter()
                        .find(|t: &&TableInfo| t.product_type_ref == *r),
                    _ => None,
                }
            }
            _ => None,
        };
        let primary_key: Vec<ColId> = source.and_then(|t| t.def.primary_key).into_iter().collect();
        // The single columns the source table indexes: the view's table
        // indexes them too, so subscriptions may join on them.
        let indexed_columns: Vec<ColId> = source
            .map(|t| {
                let mut cols: Vec<ColId> = t
                    .def
                    .indexes
                    .iter()
                    .filter_map(|i| match i.columns.as_slice() {
                        [col] => Some(*col),
                        _ => None,
                    })
                    .collect();
                cols.sort();
                cols.dedup();
                cols
            })
            .unwrap_or_default();
        views.push(ViewInfo {
            source_name: v.source_name.clone(),
            canonical_name,
            id: v.index,
            is_public: v.is_public,
            is_anonymous: v.is_anonymous,
            column_source_names: row_type
                .elements
                .iter()
                .map(|e| e.name.as_deref().unwrap_or_default().to_owned())
                .collect(),
            returns,
            row_type,
            primary_key,
            indexed_columns,
        });
    }
    for (view, columns) in &flat.view_primary_keys {
        let Some(info) = views.iter_mut().find(|v| &v.source_name == view) else {
            return Err(ModuleDefError::View {
                view: view.clone(),
                reason: "has primary-key metadata but no such view exists".into(),
            });
        };
        info.primary_key.clear();
        for column in columns {
            let Some(pos) = info
                .row_type
                .elements
                .iter()
                .position(|e| e.name.as_deref() == Some(column.as_str()))
            else {
                return Err(ModuleDefError::View {
                    view: view.clone(),
                    reason: format!("primary-key column `{column}` is not a column of the view"),
                });
            };
            info.primary_key.push(ColId(pos as u16));
        }
    }
    // A view's columns are canonical names, like a table's.
    for view in &mut views {
        let mut seen = BTreeSet::new();
        for element in view.row_type.elements.iter_mut() {
            let Some(source) = element.name.as_deref() else {
                continue;
            };
            let canonical = namer.column(source);
            if !seen.insert(canonical.clone()) {
                return Err(ModuleDefError::View {
                    view: view.source_name.clone(),
                    reason: format!("two columns have the canonical name `{canonical}`"),
                });
            }
            element.name = Some(canonical.into());
        }
    }

    // Lifecycle reducers.
    let mut lifecycle = LifecycleReducers::default();
    for (spec, function) in &flat.lifecycles {
        let Some(id) = reducers.iter().position(|r| &r.source_name == function) else {
            return Err(ModuleDefError::LifecycleReducerMissing {
                lifecycle: *spec,
                function: function.clone(),
            });
        };
        let count = reducers[id].params.elements.len();
        if count != 0 {
            return Err(ModuleDefError::LifecycleHasParams {
                lifecycle: *spec,
                function: function.clone(),
                count,
            });
        }
        let slot = match spec {
            Lifecycle::Init => &mut lifecycle.init,
            Lifecycle::OnConnect => &mut lifecycle.on_connect,
            Lifecycle::OnDisconnect => &mut lifecycle.on_disconnect,
        };
        if let Some(first) = *slot {
            return Err(ModuleDefError::DuplicateLifecycle {
                lifecycle: *spec,
                first: reducers[first].source_name.clone(),
                second: function.clone(),
            });
        }
        *slot = Some(id);
        reducers[id].lifecycle = Some(*spec);
    }

    // Schedules.
    let mut schedules = Vec::with_capacity(flat.schedules.len());
    for s in &flat.schedules {
        let table_name = s.table_name.as_str();
        let Some(table_idx) = tables
            .iter()
            .position(|t| t.source_name == table_name)
            .or_else(|| tables.iter().position(|t| t.canonical_name == table_name))
        else {
            return Err(ModuleDefError::ScheduleTableMissing {
                table: table_name.to_owned(),
                function: s.function_name.clone(),
            });
        };
        let table = &mut tables[table_idx];
        let tname = table.source_name.clone();
        if table.schedule.is_some() {
            return Err(ModuleDefError::DuplicateSchedule { table: tname });
        }
        let columns = &table.def.columns;
        let Some(id_col) = table.def.primary_key else {
            return Err(ModuleDefError::ScheduleIdColumn {
                table: tname,
                reason: "has no primary key; a schedule table needs a u64 primary key".into(),
            });
        };
        let id_ty = &columns.elements[id_col.idx()].algebraic_type;
        if id_ty != &AlgebraicType::U64 {
            return Err(ModuleDefError::ScheduleIdColumn {
                table: tname,
                reason: format!("primary key column has type {}, not u64", describe(id_ty)),
            });
        }
        let at = s.schedule_at_col;
        let Some(at_elem) = columns.elements.get(at.idx()) else {
            return Err(ModuleDefError::ScheduleAtColumn {
                table: tname,
                col: at.0,
                reason: format!("the table has only {} columns", columns.elements.len()),
            });
        };
        if !is_schedule_at(&at_elem.algebraic_type) {
            return Err(ModuleDefError::ScheduleAtColumn {
                table: tname,
                col: at.0,
                reason: format!("its type is {}", describe(&at_elem.algebraic_type)),
            });
        }
        let (function, params) = if let Some(id) = reducers
            .iter()
            .position(|r| r.source_name == s.function_name)
        {
            (ScheduledFunction::Reducer(id), &reducers[id].params)
        } else if let Some(id) = procedures
            .iter()
            .position(|p| p.source_name == s.function_name)
        {
            (ScheduledFunction::Procedure(id), &procedures[id].params)
        } else {
            return Err(ModuleDefError::ScheduledFunctionMissing {
                table: tname,
                function: s.function_name.clone(),
            });
        };
        let signature_err = |reason: String| ModuleDefError::ScheduledFunctionSignature {
            table: tname.clone(),
            function: s.function_name.clone(),
            reason,
        };
        if params.elements.len() != 1 {
            return Err(signature_err(format!(
                "must take exactly one argument (a row of the table) but takes {}",
                params.elements.len()
            )));
        }
        let row = AlgebraicType::Product(columns.clone());
        if params.elements[0].algebraic_type != row {
            return Err(signature_err(format!(
                "takes an argument of type {}, not the table's row type",
                describe(&params.elements[0].algebraic_type)
            )));
        }
        table.schedule = Some(schedules.len());
        schedules.push(ScheduleInfo {
            source_name: s.source_name.clone(),
            table: table_idx,
            id_col,
            schedule_at_col: at,
            function,
        });
    }

    let (http_handlers, http_routes) = crate::http::build(flat.http_handlers, flat.http_routes)?;
    Ok(ModuleDef {
        version,
        http_handlers,
        http_routes,
        tables,
        reducers,
        procedures,
        views,
        schedules,
        lifecycle,
        row_level_security: flat.row_level_security,
        typespace: flat.typespace,
    })
}
