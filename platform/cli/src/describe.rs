//! `orrery describe`: a module definition for people. The overview lists
//! tables (access, typed columns with their keys), client-callable reducers
//! and procedures with typed parameters, views, and what only the host calls;
//! `describe DB table NAME` (or `reducer`, `procedure`, `view`) shows one
//! in detail, as the stock CLI's argument shape has it.

use std::fmt::Write as _;

use anyhow::bail;
use orrery_moduledef::{ScheduledFunction, TableInfo, Visibility};
use spacetimedb_sats::{AlgebraicType, ProductType};
use storage::schema::IndexAlgorithm;

use super::generate::Module;

/// How a type reads in a description: Rust-like, named types by their
/// declared names.
pub(crate) fn type_text(module: &Module, ty: &AlgebraicType) -> String {
    orrery_moduledef::type_text(ty, &|r| match module.type_names.get(&r.0) {
        Some((_, name)) => name.clone(),
        // Validation refused cyclic refs, so this ends.
        None => match module.def.typespace.get(r) {
            Some(t) => type_text(module, t),
            None => format!("<type {}>", r.0),
        },
    })
}

/// `a: T, b: U`.
fn params_text(module: &Module, params: &ProductType) -> String {
    let parts: Vec<String> = params
        .elements
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let name = e
                .name
                .as_deref()
                .map_or_else(|| format!("_{i}"), str::to_owned);
            format!("{name}: {}", type_text(module, &e.algebraic_type))
        })
        .collect();
    parts.join(", ")
}

/// A table's columns as declared (refs kept, so named types keep names).
fn table_columns<'a>(module: &'a Module, table: &'a TableInfo) -> &'a ProductType {
    match module.def.typespace.get(table.product_type_ref) {
        Some(AlgebraicType::Product(p)) if p.elements.len() == table.def.columns.elements.len() => {
            p
        }
        _ => &table.def.columns,
    }
}

/// What a column is besides its type: primary key, unique, auto-inc.
fn column_notes(table: &TableInfo, col: usize) -> Vec<&'static str> {
    let def = &table.def;
    let mut notes = Vec::new();
    if def.primary_key.is_some_and(|c| c.idx() == col) {
        notes.push("primary key");
    } else if def
        .unique_constraints
        .iter()
        .any(|u| u.columns.len() == 1 && u.columns[0].idx() == col)
    {
        notes.push("unique");
    }
    if def.sequences.iter().any(|s| s.column.idx() == col) {
        notes.push("auto-inc");
    }
    notes
}

fn access(public: bool) -> &'static str {
    if public {
        "public"
    } else {
        "private"
    }
}

/// Why only the host calls reducer `i`, if it does.
fn host_only(module: &Module, i: usize) -> Option<String> {
    let def = &module.def;
    let r = &def.reducers[i];
    if let Some(lifecycle) = &r.lifecycle {
        return Some(format!("lifecycle {lifecycle:?}"));
    }
    if def
        .schedules
        .iter()
        .any(|s| s.function == ScheduledFunction::Reducer(i))
    {
        return Some("scheduled".to_owned());
    }
    (r.visibility != Visibility::ClientCallable).then(|| "private".to_owned())
}

/// Why only the host calls procedure `i`, if it does.
fn host_only_procedure(module: &Module, i: usize) -> Option<String> {
    let def = &module.def;
    if def
        .schedules
        .iter()
        .any(|s| s.function == ScheduledFunction::Procedure(i))
    {
        return Some("scheduled".to_owned());
    }
    (def.procedures[i].visibility != Visibility::ClientCallable).then(|| "private".to_owned())
}

/// The whole module in a few lines per item.
pub(crate) fn overview(database: &str, module: &Module) -> String {
    let def = &module.def;
    let mut out = format!("Database {database}\n");
    let _ = writeln!(out, "Tables ({}):", def.tables.len());
    for table in &def.tables {
        let columns = table_columns(module, table);
        let cols: Vec<String> = columns
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let name = e.name.as_deref().unwrap_or("_");
                let notes = column_notes(table, i);
                let ty = type_text(module, &e.algebraic_type);
                if notes.is_empty() {
                    format!("{name}: {ty}")
                } else {
                    format!("{name}: {ty} [{}]", notes.join(", "))
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "  {} ({})  {}",
            table.canonical_name,
            access(table.def.public),
            cols.join(", ")
        );
    }
    let mut callable = Vec::new();
    let mut host = Vec::new();
    for (i, r) in def.reducers.iter().enumerate() {
        match host_only(module, i) {
            Some(why) => host.push(format!("{} ({why})", r.canonical_name)),
            None => callable.push(r),
        }
    }
    let _ = writeln!(out, "Reducers ({}):", callable.len());
    for r in callable {
        let _ = writeln!(
            out,
            "  {}({})",
            r.canonical_name,
            params_text(module, &r.raw_params)
        );
    }
    let mut procedures = Vec::new();
    for (i, p) in def.procedures.iter().enumerate() {
        match host_only_procedure(module, i) {
            Some(why) => host.push(format!("{} (procedure, {why})", p.canonical_name)),
            None => procedures.push(p),
        }
    }
    if !procedures.is_empty() {
        let _ = writeln!(out, "Procedures ({}):", procedures.len());
        for p in procedures {
            let _ = writeln!(
                out,
                "  {}({}) -> {}",
                p.canonical_name,
                params_text(module, &p.raw_params),
                type_text(module, &p.raw_return_type)
            );
        }
    }
    if !def.views.is_empty() {
        let _ = writeln!(out, "Views ({}):", def.views.len());
        for v in &def.views {
            let returns = module
                .view_returns
                .get(&v.source_name)
                .map(|t| type_text(module, t))
                .unwrap_or_else(|| format!("{{ {} }}", params_text(module, &v.row_type)));
            let caller = if v.is_anonymous {
                "same for everyone"
            } else {
                "per caller"
            };
            let _ = writeln!(
                out,
                "  {} -> {returns} ({}, {caller})",
                v.canonical_name,
                access(v.is_public)
            );
        }
    }
    if !def.http_routes.is_empty() {
        let _ = writeln!(
            out,
            "HTTP routes ({}), under /v1/database/{database}/route:",
            def.http_routes.len()
        );
        for r in &def.http_routes {
            let path = if r.path.is_empty() {
                "(the prefix itself)"
            } else {
                &r.path
            };
            let _ = writeln!(
                out,
                "  {} {path} -> {}",
                orrery_moduledef::method_text(r.method.as_ref()),
                def.http_handlers[r.handler].source_name
            );
        }
    }
    if !host.is_empty() {
        let _ = writeln!(out, "Only the host calls: {}", host.join(", "));
    }
    out
}

/// One table, reducer, procedure or view in detail.
pub(crate) fn entity(module: &Module, kind: &str, name: &str) -> anyhow::Result<String> {
    let def = &module.def;
    let mut out = String::new();
    match kind {
        "table" => {
            let (_, table) = lookup(&def.tables, "table", name, |t| {
                [&t.source_name, &t.canonical_name]
            })?;
            let _ = writeln!(
                out,
                "Table {} ({})",
                table.canonical_name,
                access(table.def.public)
            );
            if table.def.is_event {
                let _ = writeln!(out, "Event table: rows reach subscribers, then vanish");
            }
            if let Some(s) = table.schedule {
                let target = match def.schedules[s].function {
                    ScheduledFunction::Reducer(r) => &def.reducers[r].canonical_name,
                    ScheduledFunction::Procedure(p) => &def.procedures[p].canonical_name,
                };
                let _ = writeln!(out, "Schedule table: each row calls {target}");
            }
            let columns = table_columns(module, table);
            let width = columns
                .elements
                .iter()
                .map(|e| e.name.as_deref().unwrap_or("_").len())
                .max()
                .unwrap_or(0);
            let _ = writeln!(out, "Columns:");
            for (i, e) in columns.elements.iter().enumerate() {
                let name = e.name.as_deref().unwrap_or("_");
                let notes = column_notes(table, i).join(", ");
                let line = format!(
                    "  {name:width$}  {}  {notes}",
                    type_text(module, &e.algebraic_type)
                );
                let _ = writeln!(out, "{}", line.trim_end());
            }
            if !table.def.indexes.is_empty() {
                let _ = writeln!(out, "Indexes:");
                for (index, info) in table.def.indexes.iter().zip(&table.indexes) {
                    let algorithm = match index.algorithm {
                        IndexAlgorithm::BTree => "btree",
                        IndexAlgorithm::Hash => "hash",
                        IndexAlgorithm::Direct => "direct",
                    };
                    let cols: Vec<&str> = index
                        .columns
                        .iter()
                        .map(|c| {
                            table.def.columns.elements[c.idx()]
                                .name
                                .as_deref()
                                .unwrap_or("_")
                        })
                        .collect();
                    let _ = writeln!(
                        out,
                        "  {}  {algorithm} ({})",
                        info.canonical_name,
                        cols.join(", ")
                    );
                }
            }
        }
        "reducer" => {
            let (i, r) = lookup(&def.reducers, "reducer", name, |r| {
                [&r.source_name, &r.canonical_name]
            })?;
            let why = host_only(module, i);
            function_detail(
                &mut out,
                module,
                "Reducer",
                &r.canonical_name,
                why,
                &r.raw_params,
            );
        }
        "procedure" => {
            let (i, p) = lookup(&def.procedures, "procedure", name, |p| {
                [&p.source_name, &p.canonical_name]
            })?;
            let why = host_only_procedure(module, i);
            function_detail(
                &mut out,
                module,
                "Procedure",
                &p.canonical_name,
                why,
                &p.raw_params,
            );
            let _ = writeln!(out, "Returns: {}", type_text(module, &p.raw_return_type));
        }
        "view" => {
            let (_, v) = lookup(&def.views, "view", name, |v| {
                [&v.source_name, &v.canonical_name]
            })?;
            let caller = if v.is_anonymous {
                "same for everyone"
            } else {
                "per caller"
            };
            let _ = writeln!(
                out,
                "View {} ({}, {caller})",
                v.canonical_name,
                access(v.is_public)
            );
            let _ = writeln!(out, "Row: {}", params_text(module, &v.row_type));
        }
        other => bail!("cannot describe a `{other}`: say table, reducer, procedure or view"),
    }
    Ok(out)
}

/// The position and item of the `kind` called `name` (its source or its
/// canonical name), or the error saying there is none.
fn lookup<'a, T>(
    items: &'a [T],
    kind: &str,
    name: &str,
    names: impl Fn(&T) -> [&String; 2],
) -> anyhow::Result<(usize, &'a T)> {
    match items
        .iter()
        .enumerate()
        .find(|(_, item)| names(item).iter().any(|n| *n == name))
    {
        Some(found) => Ok(found),
        None => bail!("no {kind} `{name}` (`orrery describe DB` lists them)"),
    }
}

/// `Reducer NAME (who may call it)` and its parameters, one per line.
fn function_detail(
    out: &mut String,
    module: &Module,
    what: &str,
    name: &str,
    host_only: Option<String>,
    params: &ProductType,
) {
    let who = host_only.map_or_else(
        || "clients may call it".to_owned(),
        |why| format!("host only: {why}"),
    );
    let _ = writeln!(out, "{what} {name} ({who})");
    params_detail(out, module, params);
}

fn params_detail(out: &mut String, module: &Module, params: &ProductType) {
    if params.elements.is_empty() {
        let _ = writeln!(out, "No parameters");
        return;
    }
    let _ = writeln!(out, "Parameters:");
    for (i, e) in params.elements.iter().enumerate() {
        let name = e
            .name
            .as_deref()
            .map_or_else(|| format!("_{i}"), str::to_owned);
        let _ = writeln!(out, "  {name}: {}", type_text(module, &e.algebraic_type));
    }
}
