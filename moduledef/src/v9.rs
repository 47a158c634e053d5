//! The V9 form of a V10 module definition, for clients that ask for
//! `GET /v1/database/:name/schema?version=9` (client-protocol §2).
//!
//! Owns: [`to_v9`], which re-expresses a validated V10 definition in the
//! `RawModuleDefV9` shape with every name in canonical form (V9 has no
//! case-conversion policy or explicit names: what it carries is what clients
//! see), and the list of what V9 cannot express.
//! Does not own: serving it (the edge) or validating it (done when the module
//! was published).
//!
//! Names, as the reference's validator computes them: tables, reducers,
//! procedures and views by their canonical names; columns and other product
//! fields in the typespace in snake_case, enum variants in camelCase and type
//! names in PascalCase (under the default policy; verbatim under `None`);
//! generated constraint, sequence and schedule names from the canonical table
//! and column names.

use convert_case::{Case, Casing};
use spacetimedb_lib::db::raw_def::v10::{CaseConversionPolicy, RawModuleDefV10};
use spacetimedb_lib::db::raw_def::v9::{
    Lifecycle as V9Lifecycle, RawColumnDefaultValueV9, RawConstraintDataV9, RawConstraintDefV9,
    RawIndexAlgorithm, RawIndexDefV9, RawMiscModuleExportV9, RawModuleDefV9, RawProcedureDefV9,
    RawReducerDefV9, RawRowLevelSecurityDefV9, RawScheduleDefV9, RawScopedTypeNameV9,
    RawSequenceDefV9, RawTableDefV9, RawTypeDefV9, RawUniqueConstraintDataV9, RawViewDefV9,
    TableAccess, TableType,
};
use spacetimedb_primitives::{ColId, ColList};
use spacetimedb_sats::{AlgebraicType, Typespace};
use storage::IndexAlgorithm;

use crate::error::Lifecycle;
use crate::{ModuleDef, ScheduledFunction, Visibility};

/// `def` (validated from `raw`) in the V9 shape, or every part of it that
/// V9 cannot express, one message each.
pub fn to_v9(raw: &RawModuleDefV10, def: &ModuleDef) -> Result<RawModuleDefV9, Vec<String>> {
    let mut missing = Vec::new();
    let convert = !matches!(raw.case_conversion_policy(), CaseConversionPolicy::None);
    for table in &def.tables {
        if table.def.is_event {
            missing.push(format!(
                "table `{}` is an event table (V9 has no event tables)",
                table.canonical_name
            ));
        }
    }
    for reducer in &def.reducers {
        if reducer.visibility == Visibility::Private && reducer.lifecycle.is_none() {
            missing.push(format!(
                "reducer `{}` is private (V9 has no reducer visibility)",
                reducer.canonical_name
            ));
        }
    }
    for procedure in &def.procedures {
        if procedure.visibility == Visibility::Private {
            missing.push(format!(
                "procedure `{}` is private (V9 has no procedure visibility)",
                procedure.canonical_name
            ));
        }
    }
    if raw.http_handlers().is_some_and(|h| !h.is_empty())
        || raw.http_routes().is_some_and(|r| !r.is_empty())
    {
        missing.push("the module has HTTP handlers (V9 has none)".to_owned());
    }
    if raw.view_primary_keys().is_some_and(|k| !k.is_empty()) {
        missing.push("the module declares view primary keys (V9 has none)".to_owned());
    }
    if !missing.is_empty() {
        return Err(missing);
    }

    let mut typespace = def.typespace.clone();
    if convert {
        convert_typespace(&mut typespace);
    }

    let function_name = |function: ScheduledFunction| match function {
        ScheduledFunction::Reducer(id) => def.reducers[id].canonical_name.clone(),
        ScheduledFunction::Procedure(id) => def.procedures[id].canonical_name.clone(),
    };
    let mut misc_exports = Vec::new();
    let tables = def
        .tables
        .iter()
        .map(|table| {
            let name = table.canonical_name.as_str();
            let columns = |cols: &[ColId]| {
                cols.iter()
                    .map(|c| {
                        table.def.columns.elements[c.idx()]
                            .name
                            .as_deref()
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .collect::<Vec<_>>()
                    .join("_")
            };
            let col_list = |cols: &[ColId]| cols.iter().copied().collect::<ColList>();
            for (col, value) in &table.default_values {
                misc_exports.push(RawMiscModuleExportV9::ColumnDefaultValue(
                    RawColumnDefaultValueV9 {
                        table: name.to_owned().into(),
                        col_id: *col,
                        value: value.clone().into_boxed_slice(),
                    },
                ));
            }
            RawTableDefV9 {
                name: name.to_owned().into(),
                product_type_ref: table.product_type_ref,
                primary_key: table
                    .def
                    .primary_key
                    .map(ColList::from)
                    .unwrap_or_else(ColList::empty),
                indexes: table
                    .def
                    .indexes
                    .iter()
                    .zip(&table.indexes)
                    .map(|(index, info)| RawIndexDefV9 {
                        name: Some(info.canonical_name.clone().into()),
                        accessor_name: info.accessor_name.clone().map(Into::into),
                        algorithm: match index.algorithm {
                            IndexAlgorithm::BTree => RawIndexAlgorithm::BTree {
                                columns: col_list(&index.columns),
                            },
                            IndexAlgorithm::Hash => RawIndexAlgorithm::Hash {
                                columns: col_list(&index.columns),
                            },
                            IndexAlgorithm::Direct => RawIndexAlgorithm::Direct {
                                column: index.columns[0],
                            },
                        },
                    })
                    .collect(),
                constraints: table
                    .def
                    .unique_constraints
                    .iter()
                    .map(|u| RawConstraintDefV9 {
                        name: Some(format!("{name}_{}_key", columns(&u.columns)).into()),
                        data: RawConstraintDataV9::Unique(RawUniqueConstraintDataV9 {
                            columns: col_list(&u.columns),
                        }),
                    })
                    .collect(),
                sequences: table
                    .def
                    .sequences
                    .iter()
                    .map(|s| RawSequenceDefV9 {
                        name: Some(format!("{name}_{}_seq", columns(&[s.column])).into()),
                        column: s.column,
                        start: s.start,
                        min_value: s.min_value,
                        max_value: s.max_value,
                        increment: s.increment,
                    })
                    .collect(),
                schedule: table.schedule.map(|s| {
                    let schedule = &def.schedules[s];
                    RawScheduleDefV9 {
                        name: Some(format!("{name}_sched").into()),
                        reducer_name: function_name(schedule.function).into(),
                        scheduled_at_column: schedule.schedule_at_col,
                    }
                }),
                table_type: TableType::User,
                table_access: if table.def.public {
                    TableAccess::Public
                } else {
                    TableAccess::Private
                },
            }
        })
        .collect();

    let reducers = def
        .reducers
        .iter()
        .map(|r| RawReducerDefV9 {
            name: r.canonical_name.clone().into(),
            params: r.raw_params.clone(),
            lifecycle: r.lifecycle.map(|l| match l {
                Lifecycle::Init => V9Lifecycle::Init,
                Lifecycle::OnConnect => V9Lifecycle::OnConnect,
                Lifecycle::OnDisconnect => V9Lifecycle::OnDisconnect,
            }),
        })
        .collect();
    for p in &def.procedures {
        misc_exports.push(RawMiscModuleExportV9::Procedure(RawProcedureDefV9 {
            name: p.canonical_name.clone().into(),
            params: p.raw_params.clone(),
            return_type: p.raw_return_type.clone(),
        }));
    }
    let raw_views = raw.views().cloned().unwrap_or_default();
    for v in &def.views {
        let Some(raw_view) = raw_views.iter().find(|r| *r.source_name == *v.source_name) else {
            continue;
        };
        misc_exports.push(RawMiscModuleExportV9::View(RawViewDefV9 {
            name: v.canonical_name.clone().into(),
            index: v.id,
            is_public: v.is_public,
            is_anonymous: v.is_anonymous,
            params: raw_view.params.clone(),
            return_type: raw_view.return_type.clone(),
        }));
    }

    let types = raw
        .types()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let name = t.source_name.source_name.to_string();
            RawTypeDefV9 {
                name: RawScopedTypeNameV9 {
                    scope: t.source_name.scope.clone(),
                    name: if convert {
                        name.to_case(Case::Pascal).into()
                    } else {
                        name.into()
                    },
                },
                ty: t.ty,
                custom_ordering: t.custom_ordering,
            }
        })
        .collect();

    Ok(RawModuleDefV9 {
        typespace,
        tables,
        reducers,
        types,
        misc_exports,
        row_level_security: def
            .row_level_security
            .iter()
            .map(|sql| RawRowLevelSecurityDefV9 {
                sql: sql.clone().into_boxed_str(),
            })
            .collect(),
    })
}

/// Product field names to snake_case and sum variant names to camelCase,
/// everywhere but inside the special types (identity, timestamp, options…),
/// whose names are part of their encoding.
fn convert_typespace(typespace: &mut Typespace) {
    for ty in typespace.types.iter_mut() {
        convert_type(ty);
    }
}

fn convert_type(ty: &mut AlgebraicType) {
    if ty.is_special() {
        return;
    }
    match ty {
        AlgebraicType::Product(product) => {
            for element in product.elements.iter_mut() {
                if let Some(name) = element.name.as_deref() {
                    element.name = Some(name.to_case(Case::Snake).into());
                }
                convert_type(&mut element.algebraic_type);
            }
        }
        AlgebraicType::Sum(sum) => {
            for variant in sum.variants.iter_mut() {
                if let Some(name) = variant.name.as_deref() {
                    variant.name = Some(name.to_case(Case::Camel).into());
                }
                convert_type(&mut variant.algebraic_type);
            }
        }
        AlgebraicType::Array(array) => convert_type(&mut array.elem_ty),
        _ => {}
    }
}
