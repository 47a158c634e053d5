//! End-to-end tests of `ModuleDef::from_bsatn`: modules are built with the
//! upstream `RawModuleDefV10Builder`/`RawModuleDefV9Builder`, encoded with
//! BSATN, decoded and validated by us.
//!
//! Owns: the probe module of spec 6.6 ([`probe`]) and one test per
//! validation failure. Does not own: the unit tests of naming and type
//! resolution (at the bottom of `names.rs` and `types.rs`).

use spacetimedb_lib::db::raw_def::v10::{
    ExplicitNames, MethodOrAny, RawModuleDefV10, RawModuleDefV10Builder, RawModuleDefV10Section,
    RawTableDefV10, RawViewDefV10,
};
use spacetimedb_lib::db::raw_def::v9::{
    btree, direct, hash, Lifecycle as RawLifecycle, RawModuleDefV9Builder, TableAccess,
};
use spacetimedb_lib::http::Method as HttpMethod;
use spacetimedb_lib::{RawModuleDef, RawModuleDefV8};
use spacetimedb_primitives::{ColId, IndexId, TableId};
use spacetimedb_sats::{AlgebraicType, AlgebraicTypeRef, ProductType};
use storage::{IndexAlgorithm, IndexDef, SequenceDef, TableDef, UniqueConstraintDef};

use super::*;

fn r(i: u32) -> AlgebraicType {
    AlgebraicType::Ref(AlgebraicTypeRef(i))
}

fn identity() -> AlgebraicType {
    AlgebraicType::product([("__identity__", AlgebraicType::U256)])
}

fn timestamp() -> AlgebraicType {
    AlgebraicType::product([("__timestamp_micros_since_unix_epoch__", AlgebraicType::I64)])
}

fn schedule_at() -> AlgebraicType {
    AlgebraicType::sum([
        (
            "Interval",
            AlgebraicType::product([("__time_duration_micros__", AlgebraicType::I64)]),
        ),
        ("Time", timestamp()),
    ])
}

fn unit() -> ProductType {
    ProductType::unit()
}

/// The probe module of spec section 6.6 (without its unstable parts).
fn probe() -> RawModuleDefV10 {
    let mut b = RawModuleDefV10Builder::new();
    // Reducers first, in the guest's order (lexicographic).
    b.add_reducer(
        "add_person",
        ProductType::from([("name", AlgebraicType::String), ("age", AlgebraicType::U8)]),
    );
    b.add_reducer(
        "exercise",
        ProductType::from([("name", AlgebraicType::String)]),
    );
    b.add_reducer("fail_panics", unit());
    b.add_lifecycle_reducer(RawLifecycle::Init, "init", unit());
    b.add_reducer("kick", unit());
    b.add_lifecycle_reducer(RawLifecycle::OnConnect, "on_connect", unit());
    b.add_lifecycle_reducer(RawLifecycle::OnDisconnect, "on_disconnect", unit());
    b.add_reducer("tick", ProductType::from([("arg", r(8))]));
    let mut names = ExplicitNames::default();
    names.insert_table("counter", "CounterTable");
    b.add_explicit_names(names);

    let types = [
        (
            "ChatEvent",
            AlgebraicType::product([("from", identity()), ("text", AlgebraicType::String)]),
        ),
        (
            "Counter",
            AlgebraicType::product([
                ("key", AlgebraicType::U32),
                ("seq", AlgebraicType::I64),
                ("bucket", AlgebraicType::U16),
                ("slot", AlgebraicType::U8),
                (
                    "conn",
                    AlgebraicType::option(AlgebraicType::product([(
                        "__connection_id__",
                        AlgebraicType::U128,
                    )])),
                ),
            ]),
        ),
        (
            "ProcOut",
            AlgebraicType::product([("n", AlgebraicType::U64), ("at", timestamp())]),
        ),
        (
            "Person",
            AlgebraicType::product([
                ("id", AlgebraicType::U64),
                ("name", AlgebraicType::String),
                ("age", AlgebraicType::U8),
                ("owner", identity()),
                ("created", timestamp()),
                ("color", r(4)),
                ("nick", AlgebraicType::option(AlgebraicType::String)),
                ("tags", AlgebraicType::array(AlgebraicType::String)),
                ("pos", r(5)),
                ("shape", r(6)),
                (
                    "uid",
                    AlgebraicType::product([("__uuid__", AlgebraicType::U128)]),
                ),
            ]),
        ),
        (
            "Color",
            AlgebraicType::simple_enum(["Red", "Green", "Blue"].into_iter()),
        ),
        (
            "Point",
            AlgebraicType::product([("x", AlgebraicType::I32), ("y", AlgebraicType::I32)]),
        ),
        (
            "Shape",
            AlgebraicType::sum([
                ("Circle", AlgebraicType::U32),
                ("Rect", r(5)),
                ("Nothing", AlgebraicType::unit()),
            ]),
        ),
        (
            "ProcSchedule",
            AlgebraicType::product([
                ("scheduled_id", AlgebraicType::U64),
                ("scheduled_at", schedule_at()),
            ]),
        ),
        (
            "TickSchedule",
            AlgebraicType::product([
                ("scheduled_id", AlgebraicType::U64),
                ("scheduled_at", schedule_at()),
                ("note", AlgebraicType::String),
            ]),
        ),
    ];
    for (name, ty) in types {
        b.add_algebraic_type([], name, ty, true);
    }

    b.build_table("chat_event", AlgebraicTypeRef(0))
        .with_access(TableAccess::Public)
        .with_event(true)
        .finish();
    b.build_table("counter", AlgebraicTypeRef(1))
        .with_access(TableAccess::Private)
        .with_primary_key(0)
        .with_index(direct(3), "counter_slot_idx_direct", "slot")
        .with_index(btree(0), "counter_key_idx_btree", "key")
        .with_index(hash(2), "counter_bucket_idx_hash", "bucket")
        .with_unique_constraint(0)
        .with_unique_constraint(3)
        .with_column_sequence(1)
        .finish();
    b.build_table("person", AlgebraicTypeRef(3))
        .with_access(TableAccess::Public)
        .with_primary_key(0)
        .with_index(btree(0), "person_id_idx_btree", "id")
        .with_index(btree(1), "person_name_idx_btree", "name")
        .with_index(
            btree([ColId(2), ColId(1)]),
            "person_age_name_idx_btree",
            "by_age_and_name",
        )
        .with_index(btree(2), "person_age_idx_btree", "age")
        .with_unique_constraint(0)
        .with_unique_constraint(1)
        .with_column_sequence(0)
        .finish();
    for (name, ty) in [("proc_schedule", 7), ("tick_schedule", 8)] {
        b.build_table(name, AlgebraicTypeRef(ty))
            .with_access(TableAccess::Private)
            .with_auto_inc_primary_key(0)
            .with_index(
                btree(0),
                format!("{name}_scheduled_id_idx_btree"),
                "scheduled_id",
            )
            .finish();
    }
    b.add_procedure(
        "do_proc",
        ProductType::from([("n", AlgebraicType::U64)]),
        r(2),
    );
    b.add_procedure(
        "scheduled_proc",
        ProductType::from([("_arg", r(7))]),
        AlgebraicType::unit(),
    );
    b.add_view(
        "my_people",
        0,
        true,
        false,
        unit(),
        AlgebraicType::array(r(3)),
    );
    b.add_view("oldest", 0, true, true, unit(), AlgebraicType::option(r(3)));
    b.add_schedule("proc_schedule", 1, "scheduled_proc");
    b.add_schedule("tick_schedule", 1, "tick");
    b.finish()
}

fn encode(def: RawModuleDefV10) -> Vec<u8> {
    spacetimedb_lib::bsatn::to_vec(&RawModuleDef::V10(def)).expect("encodes")
}

fn load(def: RawModuleDefV10) -> Result<ModuleDef, ModuleDefError> {
    ModuleDef::from_bsatn(&encode(def))
}

fn load_err(def: RawModuleDefV10) -> ModuleDefError {
    load(def).expect_err("module must be refused")
}

fn tables(def: &mut RawModuleDefV10) -> &mut Vec<RawTableDefV10> {
    def.sections
        .iter_mut()
        .find_map(|s| match s {
            RawModuleDefV10Section::Tables(t) => Some(t),
            _ => None,
        })
        .expect("probe has tables")
}

fn table<'a>(def: &'a mut RawModuleDefV10, name: &str) -> &'a mut RawTableDefV10 {
    tables(def)
        .iter_mut()
        .find(|t| &*t.source_name == name)
        .expect("probe table")
}

fn types(def: &mut RawModuleDefV10) -> &mut Vec<AlgebraicType> {
    def.sections
        .iter_mut()
        .find_map(|s| match s {
            RawModuleDefV10Section::Typespace(t) => Some(&mut t.types),
            _ => None,
        })
        .expect("probe has a typespace")
}

fn views(def: &mut RawModuleDefV10) -> &mut Vec<RawViewDefV10> {
    def.sections
        .iter_mut()
        .find_map(|s| match s {
            RawModuleDefV10Section::Views(v) => Some(v),
            _ => None,
        })
        .expect("probe has views")
}

fn seq(name: &str, column: u16) -> SequenceDef {
    SequenceDef {
        name: name.into(),
        column: ColId(column),
        start: None,
        min_value: None,
        max_value: None,
        increment: 1,
    }
}

fn index(name: &str, algorithm: IndexAlgorithm, cols: &[u16]) -> IndexDef {
    IndexDef {
        name: name.into(),
        algorithm,
        columns: cols.iter().map(|c| ColId(*c)).collect(),
    }
}

fn uniq(name: &str, col: u16) -> UniqueConstraintDef {
    UniqueConstraintDef {
        name: name.into(),
        columns: vec![ColId(col)],
    }
}

// Protects the main mapping: the probe of spec 6.6 decodes into the expected
// storage TableDefs (canonical names, explicit names, resolved nested refs,
// index/constraint/sequence names), reducer ids, lifecycle, schedules, views.
#[test]
fn probe_maps_to_expected_defs() {
    let m = load(probe()).expect("probe is valid");
    assert_eq!(m.version, DefVersion::V10);
    let names: Vec<_> = m
        .tables
        .iter()
        .map(|t| (&*t.source_name, &*t.canonical_name))
        .collect();
    assert_eq!(
        names,
        [
            ("chat_event", "chat_event"),
            ("counter", "CounterTable"),
            ("person", "person"),
            ("proc_schedule", "proc_schedule"),
            ("tick_schedule", "tick_schedule"),
        ]
    );

    let chat = &m.tables[0].def;
    assert!(chat.is_event && chat.public && chat.primary_key.is_none() && chat.indexes.is_empty());

    let counter = &m.tables[1];
    assert_eq!(
        counter.def,
        TableDef {
            name: "CounterTable".into(),
            columns: match &m.typespace.types[1] {
                AlgebraicType::Product(p) => p.clone(),
                other => panic!("not a product: {other:?}"),
            },
            primary_key: Some(ColId(0)),
            indexes: vec![
                index("counter_slot_idx_direct", IndexAlgorithm::Direct, &[3]),
                index("counter_key_idx_btree", IndexAlgorithm::BTree, &[0]),
                index("counter_bucket_idx_hash", IndexAlgorithm::Hash, &[2]),
            ],
            unique_constraints: vec![uniq("counter_key_key", 0), uniq("counter_slot_key", 3)],
            sequences: vec![seq("counter_seq_seq", 1)],
            public: false,
            is_event: false,
        }
    );
    assert_eq!(counter.indexes[0].accessor_name.as_deref(), Some("slot"));
    assert!(!counter.indexes[0].generated_name);

    let person = &m.tables[2];
    let point = AlgebraicType::product([("x", AlgebraicType::I32), ("y", AlgebraicType::I32)]);
    let cols = &person.def.columns.elements;
    assert_eq!(cols.len(), 11);
    assert_eq!(
        cols[5].algebraic_type,
        AlgebraicType::simple_enum(["Red", "Green", "Blue"].into_iter())
    );
    assert_eq!(cols[8].algebraic_type, point);
    assert_eq!(
        cols[9].algebraic_type,
        AlgebraicType::sum([
            ("Circle", AlgebraicType::U32),
            ("Rect", point.clone()),
            ("Nothing", AlgebraicType::unit()),
        ])
    );
    assert_eq!(
        person.def.indexes,
        vec![
            index("person_id_idx_btree", IndexAlgorithm::BTree, &[0]),
            index("person_name_idx_btree", IndexAlgorithm::BTree, &[1]),
            index("person_age_name_idx_btree", IndexAlgorithm::BTree, &[2, 1]),
            index("person_age_idx_btree", IndexAlgorithm::BTree, &[2]),
        ]
    );
    assert_eq!(
        person.indexes[2].accessor_name.as_deref(),
        Some("by_age_and_name")
    );
    assert_eq!(
        person.def.unique_constraints,
        vec![uniq("person_id_key", 0), uniq("person_name_key", 1)]
    );
    assert_eq!(person.def.sequences, vec![seq("person_id_seq", 0)]);
    assert!(person.def.public);

    // Reducer ids = positions; lifecycle bound and private.
    let reducer_names: Vec<_> = m.reducers.iter().map(|r| &*r.source_name).collect();
    assert_eq!(
        reducer_names,
        [
            "add_person",
            "exercise",
            "fail_panics",
            "init",
            "kick",
            "on_connect",
            "on_disconnect",
            "tick"
        ]
    );
    assert_eq!(
        m.lifecycle,
        LifecycleReducers {
            init: Some(3),
            on_connect: Some(5),
            on_disconnect: Some(6)
        }
    );
    assert_eq!(m.reducers[3].visibility, Visibility::Private);
    assert_eq!(m.reducers[3].lifecycle, Some(Lifecycle::Init));
    assert_eq!(m.reducers[0].visibility, Visibility::ClientCallable);
    // `tick` keeps its raw Ref(8) but also has the resolved row type.
    assert_eq!(m.reducers[7].raw_params.elements[0].algebraic_type, r(8));
    assert_eq!(
        m.reducers[7].params.elements[0].algebraic_type,
        AlgebraicType::Product(m.tables[4].def.columns.clone())
    );

    // Schedules.
    assert_eq!(
        m.schedules,
        vec![
            ScheduleInfo {
                source_name: None,
                table: 3,
                id_col: ColId(0),
                schedule_at_col: ColId(1),
                function: ScheduledFunction::Procedure(1),
            },
            ScheduleInfo {
                source_name: None,
                table: 4,
                id_col: ColId(0),
                schedule_at_col: ColId(1),
                function: ScheduledFunction::Reducer(7),
            },
        ]
    );
    assert_eq!(m.tables[3].schedule, Some(0));
    assert_eq!(m.tables[4].schedule, Some(1));
    assert_eq!(m.tables[2].schedule, None);

    // Procedures and views.
    assert_eq!(m.procedure("do_proc").map(|(id, _)| id), Some(0));
    assert_eq!(
        m.procedures[0].return_type,
        AlgebraicType::product([("n", AlgebraicType::U64), ("at", timestamp())])
    );
    assert_eq!(m.views.len(), 2);
    assert_eq!(m.views[0].returns, ViewReturn::Array);
    assert_eq!(m.views[1].returns, ViewReturn::Option);
    assert!(m.views[1].is_anonymous);
    assert_eq!(m.views[0].row_type, person.def.columns);
}

// Protects the contract with the storage engine: every TableDef we produce
// is accepted by `create_table`, all in one transaction, and the guest's
// index source names resolve.
#[test]
fn probe_tables_are_accepted_by_storage() {
    let m = load(probe()).expect("probe is valid");
    let db = storage::Database::in_memory(Default::default());
    let mut tx = db.begin().expect("begin");
    for t in &m.tables {
        tx.create_table(t.def.clone())
            .unwrap_or_else(|e| panic!("storage refused {}: {e}", t.source_name));
    }
    tx.commit().expect("commit");
    let read = db.read().expect("read");
    assert!(read.table_id_from_name("CounterTable").is_some());
    assert!(read
        .index_id_from_name("person_age_name_idx_btree")
        .is_some());
    assert!(read.index_id_from_name("counter_slot_idx_direct").is_some());
}

// Protects the naming policy: `CaseConversionPolicy::None` keeps names
// verbatim, SnakeCase converts, explicit function names override both.
#[test]
fn case_conversion_policy_and_explicit_function_names() {
    use spacetimedb_lib::db::raw_def::v10::CaseConversionPolicy;
    let mut b = RawModuleDefV10Builder::new();
    let ty = b.add_algebraic_type(
        [],
        "Row",
        AlgebraicType::product([("a", AlgebraicType::U8)]),
        true,
    );
    b.build_table("MyTable", ty).finish();
    b.add_reducer("DoThing", unit());
    b.add_reducer("otherThing", unit());
    let mut names = ExplicitNames::default();
    names.insert_function("otherThing", "Explicit");
    b.add_explicit_names(names);
    let m = load(b.finish()).expect("valid");
    assert_eq!(m.tables[0].canonical_name, "my_table");
    assert_eq!(m.tables[0].def.name, "my_table");
    assert_eq!(m.reducers[0].canonical_name, "do_thing");
    assert_eq!(m.reducers[1].canonical_name, "Explicit");
    // Callers may name a reducer either way.
    assert_eq!(m.reducer("DoThing").map(|(id, _)| id), Some(0));
    assert_eq!(m.reducer("do_thing").map(|(id, _)| id), Some(0));
    assert_eq!(m.reducer("Explicit").map(|(id, _)| id), Some(1));
    assert_eq!(m.reducer("explicit").map(|(id, _)| id), None);

    let mut b = RawModuleDefV10Builder::new();
    let ty = b.add_algebraic_type(
        [],
        "Row",
        AlgebraicType::product([("a", AlgebraicType::U8)]),
        true,
    );
    b.build_table("MyTable", ty).finish();
    b.set_case_conversion_policy(CaseConversionPolicy::None);
    let m = load(b.finish()).expect("valid");
    assert_eq!(m.tables[0].canonical_name, "MyTable");
}

// Protects generated names for indexes the module sent without a name.
#[test]
fn unnamed_index_gets_generated_name() {
    let mut def = probe();
    table(&mut def, "person").indexes[3].source_name = None;
    let m = load(def).expect("valid");
    let info = &m.tables[2].indexes[3];
    assert_eq!(info.name, "person_age_idx_btree");
    assert!(info.generated_name);
    assert_eq!(m.tables[2].def.indexes[3].name, "person_age_idx_btree");
}

// Protects the version gate: V9 modules are mapped to the same result
// (schedule inside the table, lifecycle on the reducer), V8 is refused.
#[test]
fn v9_is_accepted_and_v8_refused() {
    let mut b = RawModuleDefV9Builder::new();
    let sched = b.add_algebraic_type(
        [],
        "TickSchedule",
        AlgebraicType::product([
            ("scheduled_id", AlgebraicType::U64),
            ("scheduled_at", schedule_at()),
        ]),
        true,
    );
    b.build_table("tick_schedule", sched)
        .with_access(TableAccess::Private)
        .with_auto_inc_primary_key(0)
        .with_index(btree(0), "scheduled_id")
        .with_schedule("tick", 1)
        .finish();
    b.add_reducer("init", unit(), Some(RawLifecycle::Init));
    b.add_reducer(
        "tick",
        ProductType::from([("arg", AlgebraicType::Ref(sched))]),
        None,
    );
    let bytes = spacetimedb_lib::bsatn::to_vec(&RawModuleDef::V9(b.finish())).expect("encodes");
    let m = ModuleDef::from_bsatn(&bytes).expect("V9 accepted");
    assert_eq!(m.version, DefVersion::V9);
    assert_eq!(m.tables[0].canonical_name, "tick_schedule");
    assert_eq!(m.tables[0].def.primary_key, Some(ColId(0)));
    assert_eq!(m.tables[0].def.indexes.len(), 1);
    assert!(!m.tables[0].def.public);
    assert_eq!(m.lifecycle.init, Some(0));
    assert_eq!(m.reducers[0].visibility, Visibility::Private);
    assert_eq!(m.reducers[1].visibility, Visibility::ClientCallable);
    assert_eq!(m.schedules[0].function, ScheduledFunction::Reducer(1));
    let db = storage::Database::in_memory(Default::default());
    let mut tx = db.begin().expect("begin");
    tx.create_table(m.tables[0].def.clone())
        .expect("storage accepts V9 table");
    tx.commit().expect("commit");

    let bytes =
        spacetimedb_lib::bsatn::to_vec(&RawModuleDef::V8BackCompat(RawModuleDefV8::default()))
            .expect("encodes");
    let err = ModuleDef::from_bsatn(&bytes).unwrap_err();
    assert_eq!(err, ModuleDefError::UnsupportedVersion { version: "V8" });
    assert!(err.to_string().contains("not supported"));
}

// Protects against panics on hostile bytes: garbage, empty, truncated and an
// unknown version tag and trailing bytes are all decode errors.
#[test]
fn garbage_bytes_are_decode_errors() {
    let good = encode(probe());
    for bytes in [
        &b""[..],
        &[0xff, 0x00, 0x01][..],
        &[0x03][..],
        &good[..good.len() / 2],
    ] {
        let err = ModuleDef::from_bsatn(bytes).unwrap_err();
        assert!(
            matches!(err, ModuleDefError::Decode(_)),
            "{bytes:?} gave {err:?}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        ModuleDef::from_bsatn(&trailing),
        Err(ModuleDefError::Decode(m)) if m.contains("trailing")
    ));
}

// Protects the refusal of view parameters with a distinct error.
#[test]
fn view_parameters_are_unsupported() {
    let mut def = probe();
    views(&mut def)[0].params = ProductType::from([("x", AlgebraicType::U8)]);
    assert!(matches!(load_err(def), ModuleDefError::Unsupported { .. }));
}

fn with_http(routes: &[(&str, MethodOrAny, &str)]) -> RawModuleDefV10 {
    let mut def = probe();
    let mut b = RawModuleDefV10Builder::new();
    b.add_http_handler("hello");
    b.add_http_handler("echo");
    for (handler, method, path) in routes {
        b.add_http_route(handler.to_string(), method.clone(), path.to_string());
    }
    def.sections.extend(b.finish().sections);
    def
}

// Protects: the HttpHandlers and HttpRoutes sections decode into handler ids
// (positions) and routes, and a request matches exactly one route by exact
// path and by method (or any method).
#[test]
fn http_handlers_and_routes_decode_and_match() {
    let get = MethodOrAny::Method(HttpMethod::Get);
    let post = MethodOrAny::Method(HttpMethod::Post);
    let def = load(with_http(&[
        ("hello", get.clone(), ""),
        ("echo", get.clone(), "/"),
        ("hello", post, "/a/b-c_d~e/9"),
        ("echo", MethodOrAny::Any, "/any"),
        ("echo", get, "/a/b-c_d~e/9/"),
    ]))
    .expect("valid routes");
    let names: Vec<_> = def
        .http_handlers
        .iter()
        .map(|h| h.source_name.as_str())
        .collect();
    assert_eq!(names, ["hello", "echo"]);
    assert_eq!(def.http_routes.len(), 5);
    assert_eq!(def.http_routes[2].method, Some(HttpMethod::Post));
    assert_eq!(def.http_routes[3].method, None);
    assert_eq!(def.http_route(&HttpMethod::Get, ""), Some(0));
    assert_eq!(def.http_route(&HttpMethod::Get, "/"), Some(1));
    assert_eq!(def.http_route(&HttpMethod::Post, "/a/b-c_d~e/9"), Some(0));
    assert_eq!(def.http_route(&HttpMethod::Get, "/a/b-c_d~e/9/"), Some(1));
    // Exact paths and methods only.
    assert_eq!(def.http_route(&HttpMethod::Get, "/a/b-c_d~e/9"), None);
    assert_eq!(def.http_route(&HttpMethod::Post, "/"), None);
    assert_eq!(def.http_route(&HttpMethod::Get, "//"), None);
    assert_eq!(def.http_route(&HttpMethod::Get, "/any/"), None);
    for method in [
        HttpMethod::Put,
        HttpMethod::Delete,
        HttpMethod::Extension("PURGE".into()),
    ] {
        assert_eq!(def.http_route(&method, "/any"), Some(1));
    }
    // A module without the sections has no routes.
    assert!(load(probe()).unwrap().http_routes.is_empty());
}

// Protects the publish-time refusal of bad route paths, overlapping routes,
// routes to undeclared handlers and duplicate handler names, each with an
// error that names the route and the reason.
#[test]
fn bad_http_routes_are_refused_with_clear_errors() {
    for path in [
        "no-slash",
        "/Upper",
        "/caf\u{e9}",
        "/q?x",
        "/a b",
        "/per%20",
        "/colon:",
        "/dot.",
    ] {
        let err = load_err(with_http(&[("hello", MethodOrAny::Any, path)]));
        assert!(
            matches!(&err, ModuleDefError::HttpRoute { path: p, .. } if p == path),
            "{path}: {err}"
        );
        assert!(err.to_string().contains("route path"), "{err}");
    }
    let get = || MethodOrAny::Method(HttpMethod::Get);
    let err = load_err(with_http(&[("hello", get(), "/x"), ("echo", get(), "/x")]));
    assert_eq!(
        err.to_string(),
        "HTTP route GET `/x`: overlaps the route GET `/x` to `hello`"
    );
    let err = load_err(with_http(&[
        ("hello", MethodOrAny::Any, "/x"),
        ("echo", get(), "/x"),
    ]));
    assert!(err.to_string().contains("overlaps"), "{err}");
    // Different methods, or paths differing in a trailing slash, do not overlap.
    load(with_http(&[
        ("hello", get(), "/x"),
        ("echo", MethodOrAny::Method(HttpMethod::Post), "/x"),
        ("echo", get(), "/x/"),
    ]))
    .expect("distinct routes");
    let err = load_err(with_http(&[("nobody", get(), "/x")]));
    assert!(
        err.to_string()
            .contains("`nobody`, which the module does not declare"),
        "{err}"
    );
    let mut def = with_http(&[]);
    for s in &mut def.sections {
        if let RawModuleDefV10Section::HttpHandlers(h) = s {
            h.push(h[0].clone());
        }
    }
    let err = load_err(def);
    assert_eq!(err.to_string(), "HTTP handler `hello` is declared twice");
}

// Protects: row-level security filters reach the definition as written
// (they are checked against the tables when the module is hosted).
#[test]
fn row_level_security_filters_are_kept() {
    let mut def = probe();
    let mut b = RawModuleDefV10Builder::new();
    b.add_row_level_security("SELECT * FROM person WHERE owner = :sender");
    def.sections.extend(b.finish().sections);
    let loaded = load(def).unwrap();
    assert_eq!(
        loaded.row_level_security,
        ["SELECT * FROM person WHERE owner = :sender"]
    );
}

// Protects: a section sent twice is refused rather than silently merged
// (reducer ids would become ambiguous).
#[test]
fn duplicate_section_refused() {
    let mut def = probe();
    def.sections
        .push(RawModuleDefV10Section::Reducers(Vec::new()));
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateSection {
            section: "Reducers"
        }
    );
}

// Protects the table-shape checks: row ref in range, row is a product,
// columns named and unique, nested refs not cyclic.
#[test]
fn table_row_type_errors() {
    let mut def = probe();
    table(&mut def, "chat_event").product_type_ref = AlgebraicTypeRef(99);
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::Type { owner, source: TypeError::RefOutOfRange { reference: 99, .. } } if owner.contains("chat_event")),
        "{err:?}"
    );

    let mut def = probe();
    table(&mut def, "chat_event").product_type_ref = AlgebraicTypeRef(4);
    assert!(
        matches!(load_err(def), ModuleDefError::RowNotProduct { table, .. } if table == "chat_event")
    );

    let mut def = probe();
    types(&mut def)[0] = AlgebraicType::Product(ProductType::new(
        vec![spacetimedb_sats::ProductTypeElement::new(
            AlgebraicType::U8,
            None,
        )]
        .into_boxed_slice(),
    ));
    assert_eq!(
        load_err(def),
        ModuleDefError::UnnamedColumn {
            table: "chat_event".into(),
            col: 0
        }
    );

    let mut def = probe();
    types(&mut def)[0] =
        AlgebraicType::product([("a", AlgebraicType::U8), ("a", AlgebraicType::U16)]);
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateColumn {
            table: "chat_event".into(),
            column: "a".into()
        }
    );

    // Point (5) made to refer to Shape (6), which refers back to Point.
    let mut def = probe();
    types(&mut def)[5] = AlgebraicType::product([("x", r(6))]);
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::Type { owner, source: TypeError::TooDeep { .. } } if owner.contains("person")),
        "{err:?}"
    );
    assert!(err.to_string().contains("cyclic"), "{err}");
}

// Protects column-list checks of indexes, constraints, the primary key and
// sequences.
#[test]
fn column_reference_errors() {
    let mut def = probe();
    table(&mut def, "person").indexes[0].algorithm = btree(42);
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::ColumnOutOfRange { table, what, col: 42, count: 11 } if table == "person" && what.contains("person_id_idx_btree")),
        "{err:?}"
    );

    let mut def = probe();
    table(&mut def, "person").indexes[2].algorithm = btree([ColId(1), ColId(1)]);
    assert!(matches!(
        load_err(def),
        ModuleDefError::RepeatedColumn { col: 1, .. }
    ));

    let mut def = probe();
    table(&mut def, "person").primary_key = [ColId(0), ColId(1)].into_iter().collect();
    assert_eq!(
        load_err(def),
        ModuleDefError::PrimaryKeyMultiColumn {
            table: "person".into(),
            count: 2
        }
    );

    let mut def = probe();
    table(&mut def, "person").sequences[0].column = ColId(20);
    assert!(matches!(
        load_err(def),
        ModuleDefError::ColumnOutOfRange { col: 20, .. }
    ));
}

// Protects: a primary key needs a unique constraint on exactly its column.
#[test]
fn primary_key_without_unique_refused() {
    let mut def = probe();
    table(&mut def, "person").constraints.remove(0);
    let err = load_err(def);
    assert_eq!(
        err,
        ModuleDefError::PrimaryKeyNotUnique {
            table: "person".into(),
            column: "id".into()
        }
    );
    assert!(err.to_string().contains("person") && err.to_string().contains("`id`"));
}

// Protects: sequences only on integer columns, one per column.
#[test]
fn sequence_errors() {
    let mut def = probe();
    table(&mut def, "person").sequences[0].column = ColId(1);
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::SequenceNotInteger { table, column, .. } if table == "person" && column == "name"),
        "{err:?}"
    );

    let mut def = probe();
    let s = table(&mut def, "person").sequences[0].clone();
    table(&mut def, "person").sequences.push(s);
    assert!(matches!(
        load_err(def),
        ModuleDefError::DuplicateSequence { .. }
    ));
}

// Protects: direct indexes need an unsigned integer column with a unique
// constraint.
#[test]
fn direct_index_errors() {
    let mut def = probe();
    table(&mut def, "counter").indexes[0].algorithm = direct(1);
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::DirectIndexType { table, column, .. } if table == "counter" && column == "seq"),
        "{err:?}"
    );

    let mut def = probe();
    table(&mut def, "counter").indexes[2].algorithm = direct(2);
    assert_eq!(
        load_err(def),
        ModuleDefError::DirectIndexNotUnique {
            table: "counter".into(),
            index: "counter_bucket_idx_hash".into(),
            column: "bucket".into()
        }
    );
}

// Protects the rule that anything storage would refuse is refused at
// publish, with storage's message (here: a sequence whose range contains 0).
#[test]
fn storage_refusal_surfaces_at_publish() {
    let mut def = probe();
    table(&mut def, "person").sequences[0].min_value = Some(0);
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::StorageRejected { table, message } if table == "person" && message.contains("contains 0")),
        "{err:?}"
    );
}

// Protects name uniqueness: tables (source and canonical), functions, and
// index names, which storage keeps per database.
#[test]
fn duplicate_names_refused() {
    let mut def = probe();
    table(&mut def, "tick_schedule").source_name = "proc_schedule".into();
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateName {
            kind: "table",
            name: "proc_schedule".into()
        }
    );

    // Two source names, one canonical name.
    let mut def = probe();
    let mut names = ExplicitNames::default();
    names.insert_table("person", "CounterTable");
    let mut b = RawModuleDefV10Builder::new();
    b.add_explicit_names(names);
    for s in &mut def.sections {
        if let RawModuleDefV10Section::ExplicitNames(n) = s {
            n.merge(match b.finish().sections.pop() {
                Some(RawModuleDefV10Section::ExplicitNames(extra)) => extra,
                _ => unreachable!("builder made one ExplicitNames section"),
            });
            break;
        }
    }
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateName {
            kind: "table",
            name: "CounterTable".into()
        }
    );

    let mut def = probe();
    let mut b = RawModuleDefV10Builder::new();
    b.add_procedure("kick", unit(), AlgebraicType::unit());
    for s in &mut def.sections {
        if let RawModuleDefV10Section::Procedures(p) = s {
            p.extend(b.finish().procedures().cloned().unwrap_or_default());
            break;
        }
    }
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateName {
            kind: "function",
            name: "kick".into()
        }
    );

    let mut def = probe();
    table(&mut def, "tick_schedule").indexes[0].source_name = Some("person_id_idx_btree".into());
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateIndexName {
            index: "person_id_idx_btree".into(),
            first_table: "person".into(),
            second_table: "tick_schedule".into()
        }
    );
}

// Protects the schedule-table rules of spec 6.7 / 8.6.
#[test]
fn schedule_errors() {
    fn schedules(
        def: &mut RawModuleDefV10,
    ) -> &mut Vec<spacetimedb_lib::db::raw_def::v10::RawScheduleDefV10> {
        def.sections
            .iter_mut()
            .find_map(|s| match s {
                RawModuleDefV10Section::Schedules(v) => Some(v),
                _ => None,
            })
            .expect("probe has schedules")
    }

    let mut def = probe();
    schedules(&mut def)[1].table_name = "nope".into();
    assert!(
        matches!(load_err(def), ModuleDefError::ScheduleTableMissing { table, .. } if table == "nope")
    );

    let mut def = probe();
    schedules(&mut def)[1].function_name = "missing".into();
    assert!(
        matches!(load_err(def), ModuleDefError::ScheduledFunctionMissing { function, .. } if function == "missing")
    );

    // Wrong argument: `exercise(name: String)`.
    let mut def = probe();
    schedules(&mut def)[1].function_name = "exercise".into();
    let err = load_err(def);
    assert!(
        matches!(&err, ModuleDefError::ScheduledFunctionSignature { table, function, .. } if table == "tick_schedule" && function == "exercise"),
        "{err:?}"
    );
    // Wrong argument count: `kick()`.
    let mut def = probe();
    schedules(&mut def)[1].function_name = "kick".into();
    assert!(load_err(def).to_string().contains("exactly one argument"));

    // ScheduleAt column index pointing at the id column.
    let mut def = probe();
    schedules(&mut def)[1].schedule_at_col = ColId(0);
    assert!(matches!(
        load_err(def),
        ModuleDefError::ScheduleAtColumn { col: 0, .. }
    ));
    let mut def = probe();
    schedules(&mut def)[1].schedule_at_col = ColId(9);
    assert!(matches!(
        load_err(def),
        ModuleDefError::ScheduleAtColumn { col: 9, .. }
    ));

    // Primary key not u64 (the sequence stays valid on u32).
    let mut def = probe();
    types(&mut def)[8] = AlgebraicType::product([
        ("scheduled_id", AlgebraicType::U32),
        ("scheduled_at", schedule_at()),
        ("note", AlgebraicType::String),
    ]);
    assert!(
        matches!(load_err(def), ModuleDefError::ScheduleIdColumn { table, reason } if table == "tick_schedule" && reason.contains("u64"))
    );

    // No primary key at all.
    let mut def = probe();
    table(&mut def, "tick_schedule").primary_key = Default::default();
    assert!(matches!(
        load_err(def),
        ModuleDefError::ScheduleIdColumn { .. }
    ));

    // Two schedules for one table.
    let mut def = probe();
    let again = schedules(&mut def)[1].clone();
    schedules(&mut def).push(again);
    assert!(matches!(
        load_err(def),
        ModuleDefError::DuplicateSchedule { .. }
    ));
}

// Protects the lifecycle rules of spec 6.7 / 8.7.
#[test]
fn lifecycle_errors() {
    use spacetimedb_lib::db::raw_def::v10::RawLifeCycleReducerDefV10;
    fn lifecycles(def: &mut RawModuleDefV10) -> &mut Vec<RawLifeCycleReducerDefV10> {
        def.sections
            .iter_mut()
            .find_map(|s| match s {
                RawModuleDefV10Section::LifeCycleReducers(v) => Some(v),
                _ => None,
            })
            .expect("probe has lifecycle reducers")
    }

    let mut def = probe();
    lifecycles(&mut def)[0].function_name = "gone".into();
    assert!(matches!(
        load_err(def),
        ModuleDefError::LifecycleReducerMissing {
            lifecycle: Lifecycle::Init,
            ..
        }
    ));

    let mut def = probe();
    lifecycles(&mut def)[0].function_name = "exercise".into();
    assert_eq!(
        load_err(def),
        ModuleDefError::LifecycleHasParams {
            lifecycle: Lifecycle::Init,
            function: "exercise".into(),
            count: 1
        }
    );

    let mut def = probe();
    lifecycles(&mut def)[1].lifecycle_spec = RawLifecycle::Init;
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateLifecycle {
            lifecycle: Lifecycle::Init,
            first: "init".into(),
            second: "on_connect".into()
        }
    );
}

// Protects the view return-type rules of spec 8.12.
#[test]
fn view_errors() {
    let mut def = probe();
    views(&mut def)[0].return_type = AlgebraicType::U32;
    assert!(
        matches!(load_err(def), ModuleDefError::View { view, reason } if view == "my_people" && reason.contains("neither"))
    );

    let mut def = probe();
    views(&mut def)[1].return_type = AlgebraicType::option(AlgebraicType::String);
    assert!(
        matches!(load_err(def), ModuleDefError::View { view, reason } if view == "oldest" && reason.contains("not a product"))
    );

    let mut def = probe();
    views(&mut def)[1].is_anonymous = false;
    assert!(
        matches!(load_err(def), ModuleDefError::View { reason, .. } if reason.contains("used twice"))
    );

    // A view's backing table may not take a table's name.
    let mut def = probe();
    views(&mut def)[0].source_name = "person".into();
    assert_eq!(
        load_err(def),
        ModuleDefError::DuplicateName {
            kind: "table or view",
            name: "person".into()
        }
    );
}

// Protects: the ids given to storage are irrelevant to validation — the same
// defs validate with any starting ids (we validate with TableId(1)/IndexId(1)).
#[test]
fn defs_validate_with_other_ids() {
    let m = load(probe()).expect("valid");
    for t in &m.tables {
        t.def
            .clone()
            .validate(TableId(77), IndexId(1000))
            .expect("valid anywhere");
    }
}
