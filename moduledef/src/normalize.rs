//! Flattening a decoded `RawModuleDef` (V10 or V9) into one version-neutral
//! shape ([`Flat`]) so that validation is written once.
//!
//! Owns: the section bookkeeping of V10 (any order, missing = empty, a
//! duplicated section refused), the V9 layout mapping (schedules inside tables,
//! lifecycle on reducers, procedures/views/defaults in misc exports), and the
//! refusal of unstable features (row-level security, HTTP handlers and routes,
//! submodules) with `ModuleDefError::Unsupported`.
//! Does not own: any semantic validation (see `build.rs`).
//! Entry points: [`flatten_v10`], [`flatten_v9`].

use spacetimedb_lib::db::raw_def::v10::{
    CaseConversionPolicy, ExplicitNameEntry, FunctionVisibility, MethodOrAny, RawModuleDefV10,
    RawModuleDefV10Section,
};
use spacetimedb_lib::db::raw_def::v9::{
    RawConstraintDataV9, RawIndexAlgorithm, RawMiscModuleExportV9, RawModuleDefV9, TableAccess,
};
use spacetimedb_primitives::{ColId, ColList};
use spacetimedb_sats::{AlgebraicType, AlgebraicTypeRef, ProductType, Typespace};

use super::error::{Lifecycle, ModuleDefError};
use super::names::{CasePolicy, NameKind};
use super::Visibility;

/// Index algorithm with its columns, as the module sent it.
#[derive(Debug, Clone)]
pub(crate) enum FlatAlgorithm {
    BTree(Vec<ColId>),
    Hash(Vec<ColId>),
    Direct(ColId),
}

#[derive(Debug, Clone)]
pub(crate) struct FlatIndex {
    pub(crate) source_name: Option<String>,
    pub(crate) accessor_name: Option<String>,
    pub(crate) algorithm: FlatAlgorithm,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatUnique {
    pub(crate) source_name: Option<String>,
    pub(crate) columns: Vec<ColId>,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatSequence {
    pub(crate) source_name: Option<String>,
    pub(crate) column: ColId,
    pub(crate) start: Option<i128>,
    pub(crate) min_value: Option<i128>,
    pub(crate) max_value: Option<i128>,
    pub(crate) increment: i128,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatTable {
    pub(crate) source_name: String,
    pub(crate) product_type_ref: AlgebraicTypeRef,
    pub(crate) primary_key: Vec<ColId>,
    pub(crate) indexes: Vec<FlatIndex>,
    pub(crate) uniques: Vec<FlatUnique>,
    pub(crate) sequences: Vec<FlatSequence>,
    pub(crate) public: bool,
    pub(crate) is_event: bool,
    pub(crate) default_values: Vec<(ColId, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatReducer {
    pub(crate) source_name: String,
    pub(crate) params: ProductType,
    pub(crate) visibility: Visibility,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatProcedure {
    pub(crate) source_name: String,
    pub(crate) params: ProductType,
    pub(crate) return_type: AlgebraicType,
    pub(crate) visibility: Visibility,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatView {
    pub(crate) source_name: String,
    pub(crate) index: u32,
    pub(crate) is_public: bool,
    pub(crate) is_anonymous: bool,
    pub(crate) params: ProductType,
    pub(crate) return_type: AlgebraicType,
}

#[derive(Debug, Clone)]
pub(crate) struct FlatSchedule {
    pub(crate) source_name: Option<String>,
    pub(crate) table_name: String,
    pub(crate) schedule_at_col: ColId,
    pub(crate) function_name: String,
}

/// A module definition, version-neutral, not yet validated.
#[derive(Debug, Clone)]
pub(crate) struct Flat {
    pub(crate) typespace: Typespace,
    pub(crate) tables: Vec<FlatTable>,
    pub(crate) reducers: Vec<FlatReducer>,
    pub(crate) procedures: Vec<FlatProcedure>,
    pub(crate) views: Vec<FlatView>,
    pub(crate) view_primary_keys: Vec<(String, Vec<String>)>,
    pub(crate) schedules: Vec<FlatSchedule>,
    pub(crate) lifecycles: Vec<(Lifecycle, String)>,
    pub(crate) case_policy: CasePolicy,
    pub(crate) explicit_names: Vec<(NameKind, String, String)>,
    /// Client visibility filters (SQL), unchecked.
    pub(crate) row_level_security: Vec<String>,
    /// HTTP handler names, in id order.
    pub(crate) http_handlers: Vec<String>,
    /// HTTP routes: (handler name, method, path), unchecked.
    pub(crate) http_routes: Vec<(String, MethodOrAny, String)>,
}

fn cols(list: &ColList) -> Vec<ColId> {
    list.iter().collect()
}

fn flat_algorithm(raw: &RawIndexAlgorithm) -> Result<FlatAlgorithm, ModuleDefError> {
    match raw {
        RawIndexAlgorithm::BTree { columns } => Ok(FlatAlgorithm::BTree(cols(columns))),
        RawIndexAlgorithm::Hash { columns } => Ok(FlatAlgorithm::Hash(cols(columns))),
        RawIndexAlgorithm::Direct { column } => Ok(FlatAlgorithm::Direct(*column)),
        #[allow(unreachable_patterns)]
        _ => Err(ModuleDefError::UnknownVariant {
            what: "index algorithm",
        }),
    }
}

fn flat_unique(
    source_name: Option<String>,
    data: &RawConstraintDataV9,
) -> Result<FlatUnique, ModuleDefError> {
    match data {
        RawConstraintDataV9::Unique(unique) => Ok(FlatUnique {
            source_name,
            columns: cols(&unique.columns),
        }),
        #[allow(unreachable_patterns)]
        _ => Err(ModuleDefError::UnknownVariant { what: "constraint" }),
    }
}

fn visibility(raw: &FunctionVisibility) -> Result<Visibility, ModuleDefError> {
    match raw {
        FunctionVisibility::Private => Ok(Visibility::Private),
        FunctionVisibility::ClientCallable => Ok(Visibility::ClientCallable),
        #[allow(unreachable_patterns)]
        _ => Err(ModuleDefError::UnknownVariant {
            what: "function visibility",
        }),
    }
}

fn lifecycle(
    raw: &spacetimedb_lib::db::raw_def::v9::Lifecycle,
) -> Result<Lifecycle, ModuleDefError> {
    Lifecycle::from_raw(raw).ok_or(ModuleDefError::UnknownVariant { what: "lifecycle" })
}

fn unsupported(feature: &str) -> ModuleDefError {
    ModuleDefError::Unsupported {
        feature: feature.to_owned(),
    }
}

/// Remembers which section kinds were seen, to refuse duplicates.
fn once(seen: &mut Vec<&'static str>, section: &'static str) -> Result<(), ModuleDefError> {
    if seen.contains(&section) {
        return Err(ModuleDefError::DuplicateSection { section });
    }
    seen.push(section);
    Ok(())
}

pub(crate) fn flatten_v10(def: RawModuleDefV10) -> Result<Flat, ModuleDefError> {
    let mut flat = Flat {
        typespace: Typespace::default(),
        tables: Vec::new(),
        reducers: Vec::new(),
        procedures: Vec::new(),
        views: Vec::new(),
        view_primary_keys: Vec::new(),
        schedules: Vec::new(),
        lifecycles: Vec::new(),
        case_policy: CasePolicy::SnakeCase,
        explicit_names: Vec::new(),
        row_level_security: Vec::new(),
        http_handlers: Vec::new(),
        http_routes: Vec::new(),
    };
    let mut seen = Vec::new();
    for section in def.sections {
        match section {
            RawModuleDefV10Section::Typespace(typespace) => {
                once(&mut seen, "Typespace")?;
                flat.typespace = typespace;
            }
            // Type names only matter for client code generation.
            RawModuleDefV10Section::Types(_) => once(&mut seen, "Types")?,
            RawModuleDefV10Section::Tables(tables) => {
                once(&mut seen, "Tables")?;
                for t in tables {
                    flat.tables.push(FlatTable {
                        source_name: t.source_name.to_string(),
                        product_type_ref: t.product_type_ref,
                        primary_key: cols(&t.primary_key),
                        indexes: t
                            .indexes
                            .iter()
                            .map(|i| {
                                Ok(FlatIndex {
                                    source_name: i.source_name.as_ref().map(|n| n.to_string()),
                                    accessor_name: i.accessor_name.as_ref().map(|n| n.to_string()),
                                    algorithm: flat_algorithm(&i.algorithm)?,
                                })
                            })
                            .collect::<Result<_, ModuleDefError>>()?,
                        uniques: t
                            .constraints
                            .iter()
                            .map(|c| {
                                flat_unique(c.source_name.as_ref().map(|n| n.to_string()), &c.data)
                            })
                            .collect::<Result<_, _>>()?,
                        sequences: t
                            .sequences
                            .iter()
                            .map(|s| FlatSequence {
                                source_name: s.source_name.as_ref().map(|n| n.to_string()),
                                column: s.column,
                                start: s.start,
                                min_value: s.min_value,
                                max_value: s.max_value,
                                increment: s.increment,
                            })
                            .collect(),
                        public: matches!(t.table_access, TableAccess::Public),
                        is_event: t.is_event,
                        default_values: t
                            .default_values
                            .iter()
                            .map(|d| (d.col_id, d.value.to_vec()))
                            .collect(),
                    });
                }
            }
            RawModuleDefV10Section::Reducers(reducers) => {
                once(&mut seen, "Reducers")?;
                for r in reducers {
                    flat.reducers.push(FlatReducer {
                        source_name: r.source_name.to_string(),
                        params: r.params,
                        visibility: visibility(&r.visibility)?,
                    });
                }
            }
            RawModuleDefV10Section::Procedures(procedures) => {
                once(&mut seen, "Procedures")?;
                for p in procedures {
                    flat.procedures.push(FlatProcedure {
                        source_name: p.source_name.to_string(),
                        params: p.params,
                        return_type: p.return_type,
                        visibility: visibility(&p.visibility)?,
                    });
                }
            }
            RawModuleDefV10Section::Views(views) => {
                once(&mut seen, "Views")?;
                for v in views {
                    flat.views.push(FlatView {
                        source_name: v.source_name.to_string(),
                        index: v.index,
                        is_public: v.is_public,
                        is_anonymous: v.is_anonymous,
                        params: v.params,
                        return_type: v.return_type,
                    });
                }
            }
            RawModuleDefV10Section::Schedules(schedules) => {
                once(&mut seen, "Schedules")?;
                for s in schedules {
                    flat.schedules.push(FlatSchedule {
                        source_name: s.source_name.map(|n| n.to_string()),
                        table_name: s.table_name.to_string(),
                        schedule_at_col: s.schedule_at_col,
                        function_name: s.function_name.to_string(),
                    });
                }
            }
            RawModuleDefV10Section::LifeCycleReducers(lifecycles) => {
                once(&mut seen, "LifeCycleReducers")?;
                for l in lifecycles {
                    flat.lifecycles
                        .push((lifecycle(&l.lifecycle_spec)?, l.function_name.to_string()));
                }
            }
            RawModuleDefV10Section::RowLevelSecurity(rls) => {
                once(&mut seen, "RowLevelSecurity")?;
                flat.row_level_security
                    .extend(rls.iter().map(|r| r.sql.to_string()));
            }
            RawModuleDefV10Section::CaseConversionPolicy(policy) => {
                once(&mut seen, "CaseConversionPolicy")?;
                flat.case_policy = match policy {
                    CaseConversionPolicy::None => CasePolicy::None,
                    CaseConversionPolicy::SnakeCase => CasePolicy::SnakeCase,
                    #[allow(unreachable_patterns)]
                    _ => {
                        return Err(ModuleDefError::UnknownVariant {
                            what: "case conversion policy",
                        })
                    }
                };
            }
            RawModuleDefV10Section::ExplicitNames(names) => {
                once(&mut seen, "ExplicitNames")?;
                for entry in names.into_entries() {
                    let (kind, mapping) = match entry {
                        ExplicitNameEntry::Table(m) => (NameKind::Table, m),
                        ExplicitNameEntry::Function(m) => (NameKind::Function, m),
                        ExplicitNameEntry::Index(m) => (NameKind::Index, m),
                        #[allow(unreachable_patterns)]
                        _ => {
                            return Err(ModuleDefError::UnknownVariant {
                                what: "explicit name entry",
                            })
                        }
                    };
                    flat.explicit_names.push((
                        kind,
                        mapping.source_name.to_string(),
                        mapping.canonical_name.to_string(),
                    ));
                }
            }
            RawModuleDefV10Section::HttpHandlers(handlers) => {
                once(&mut seen, "HttpHandlers")?;
                flat.http_handlers
                    .extend(handlers.iter().map(|h| h.source_name.to_string()));
            }
            RawModuleDefV10Section::HttpRoutes(routes) => {
                once(&mut seen, "HttpRoutes")?;
                flat.http_routes.extend(
                    routes
                        .into_iter()
                        .map(|r| (r.handler_function.to_string(), r.method, r.path.to_string())),
                );
            }
            RawModuleDefV10Section::ViewPrimaryKeys(keys) => {
                once(&mut seen, "ViewPrimaryKeys")?;
                for k in keys {
                    flat.view_primary_keys.push((
                        k.view_source_name.to_string(),
                        k.columns.iter().map(|c| c.to_string()).collect(),
                    ));
                }
            }
            RawModuleDefV10Section::Submodules(submodules) => {
                once(&mut seen, "Submodules")?;
                if !submodules.is_empty() {
                    return Err(unsupported("submodules"));
                }
            }
            #[allow(unreachable_patterns)]
            _ => {
                return Err(ModuleDefError::UnknownVariant {
                    what: "module definition section",
                })
            }
        }
    }
    Ok(flat)
}

/// V9 had no case conversion: its names are already the canonical ones.
pub(crate) fn flatten_v9(def: RawModuleDefV9) -> Result<Flat, ModuleDefError> {
    let mut flat = Flat {
        typespace: def.typespace,
        tables: Vec::new(),
        reducers: Vec::new(),
        procedures: Vec::new(),
        views: Vec::new(),
        view_primary_keys: Vec::new(),
        schedules: Vec::new(),
        lifecycles: Vec::new(),
        case_policy: CasePolicy::None,
        explicit_names: Vec::new(),
        row_level_security: def
            .row_level_security
            .iter()
            .map(|r| r.sql.to_string())
            .collect(),
        http_handlers: Vec::new(),
        http_routes: Vec::new(),
    };
    for t in def.tables {
        let source_name = t.name.to_string();
        if let Some(schedule) = &t.schedule {
            flat.schedules.push(FlatSchedule {
                source_name: schedule.name.as_ref().map(|n| n.to_string()),
                table_name: source_name.clone(),
                schedule_at_col: schedule.scheduled_at_column,
                function_name: schedule.reducer_name.to_string(),
            });
        }
        flat.tables.push(FlatTable {
            source_name,
            product_type_ref: t.product_type_ref,
            primary_key: cols(&t.primary_key),
            indexes: t
                .indexes
                .iter()
                .map(|i| {
                    Ok(FlatIndex {
                        source_name: i.name.as_ref().map(|n| n.to_string()),
                        accessor_name: i.accessor_name.as_ref().map(|n| n.to_string()),
                        algorithm: flat_algorithm(&i.algorithm)?,
                    })
                })
                .collect::<Result<_, ModuleDefError>>()?,
            uniques: t
                .constraints
                .iter()
                .map(|c| flat_unique(c.name.as_ref().map(|n| n.to_string()), &c.data))
                .collect::<Result<_, _>>()?,
            sequences: t
                .sequences
                .iter()
                .map(|s| FlatSequence {
                    source_name: s.name.as_ref().map(|n| n.to_string()),
                    column: s.column,
                    start: s.start,
                    min_value: s.min_value,
                    max_value: s.max_value,
                    increment: s.increment,
                })
                .collect(),
            public: matches!(t.table_access, TableAccess::Public),
            is_event: false,
            default_values: Vec::new(),
        });
    }
    for r in def.reducers {
        let name = r.name.to_string();
        let visibility = match &r.lifecycle {
            Some(l) => {
                flat.lifecycles.push((lifecycle(l)?, name.clone()));
                Visibility::Private
            }
            None => Visibility::ClientCallable,
        };
        flat.reducers.push(FlatReducer {
            source_name: name,
            params: r.params,
            visibility,
        });
    }
    for export in def.misc_exports {
        match export {
            RawMiscModuleExportV9::ColumnDefaultValue(d) => {
                let table = d.table.to_string();
                let Some(t) = flat.tables.iter_mut().find(|t| t.source_name == table) else {
                    return Err(ModuleDefError::DefaultValue {
                        table,
                        col: d.col_id.0,
                        reason: "the table does not exist".into(),
                    });
                };
                t.default_values.push((d.col_id, d.value.to_vec()));
            }
            RawMiscModuleExportV9::Procedure(p) => flat.procedures.push(FlatProcedure {
                source_name: p.name.to_string(),
                params: p.params,
                return_type: p.return_type,
                visibility: Visibility::ClientCallable,
            }),
            RawMiscModuleExportV9::View(v) => flat.views.push(FlatView {
                source_name: v.name.to_string(),
                index: v.index,
                is_public: v.is_public,
                is_anonymous: v.is_anonymous,
                params: v.params,
                return_type: v.return_type,
            }),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(ModuleDefError::UnknownVariant {
                    what: "V9 misc export",
                })
            }
        }
    }
    Ok(flat)
}
