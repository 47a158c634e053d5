//! Unit tests of [`plan`]: definitions built with the upstream
//! `RawModuleDefV10Builder`, validated by us, then compared.

use spacetimedb_lib::db::raw_def::v10::RawModuleDefV10Builder;
use spacetimedb_lib::db::raw_def::v9::{btree, hash, TableAccess};
use spacetimedb_lib::RawModuleDef;
use spacetimedb_primitives::ColId;
use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};

use super::*;
use crate::{ScheduleInfo, ScheduledFunction};

fn build(tables: impl FnOnce(&mut RawModuleDefV10Builder)) -> ModuleDef {
    let mut b = RawModuleDefV10Builder::new();
    b.add_reducer("noop", ProductType::unit());
    tables(&mut b);
    ModuleDef::from_raw(RawModuleDef::V10(b.finish())).expect("test definitions are valid")
}

/// user(id u64 auto-inc pk, name string, age u32; btree name),
/// message(id u64, text string), score(player u32 unique, points u64),
/// log(line string), item(a u8, b u8).
fn v1() -> ModuleDef {
    build(|b| {
        b.build_table_with_new_type(
            "user",
            ProductType::from([
                ("id", AlgebraicType::U64),
                ("name", AlgebraicType::String),
                ("age", AlgebraicType::U32),
            ]),
            true,
        )
        .with_auto_inc_primary_key(0)
        .with_index(btree(0), "user_id_idx_btree", "id")
        .with_index(btree(1), "user_name_idx_btree", "name")
        .finish();
        b.build_table_with_new_type(
            "message",
            ProductType::from([("id", AlgebraicType::U64), ("text", AlgebraicType::String)]),
            true,
        )
        .finish();
        b.build_table_with_new_type(
            "score",
            ProductType::from([
                ("player", AlgebraicType::U32),
                ("points", AlgebraicType::U64),
            ]),
            true,
        )
        .with_unique_constraint(0)
        .with_index(btree(0), "score_player_idx_btree", "player")
        .finish();
        b.build_table_with_new_type(
            "log",
            ProductType::from([("line", AlgebraicType::String)]),
            true,
        )
        .finish();
        b.build_table_with_new_type(
            "item",
            ProductType::from([("a", AlgebraicType::U8), ("b", AlgebraicType::U8)]),
            true,
        )
        .finish();
    })
}

#[test]
fn identical_definitions_need_no_steps() {
    let plan = plan(&v1(), &v1());
    assert!(plan.is_automatic());
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.to_string(), "no schema changes");
}

#[test]
fn compatible_changes_are_automatic_steps() {
    let new = build(|b| {
        b.build_table_with_new_type(
            "user",
            ProductType::from([
                ("id", AlgebraicType::U64),
                ("name", AlgebraicType::String),
                ("age", AlgebraicType::U32),
                ("karma", AlgebraicType::U32),
                ("bio", AlgebraicType::option(AlgebraicType::String)),
            ]),
            true,
        )
        .with_auto_inc_primary_key(0)
        .with_index(btree(0), "user_id_idx_btree", "id")
        .with_index(hash(2), "user_age_idx_hash", "age")
        .with_default_column_value(3, AlgebraicValue::U32(10))
        .with_default_column_value(4, AlgebraicValue::OptionNone())
        .finish();
        b.build_table_with_new_type(
            "message",
            ProductType::from([("id", AlgebraicType::U64), ("text", AlgebraicType::String)]),
            true,
        )
        .with_access(TableAccess::Private)
        .finish();
        b.build_table_with_new_type(
            "score",
            ProductType::from([
                ("player", AlgebraicType::U32),
                ("points", AlgebraicType::U64),
            ]),
            true,
        )
        .with_unique_constraint(0)
        .with_index(btree(0), "score_player_idx_btree", "player")
        .finish();
        b.build_table_with_new_type(
            "log",
            ProductType::from([("line", AlgebraicType::String)]),
            true,
        )
        .finish();
        b.build_table_with_new_type(
            "item",
            ProductType::from([("a", AlgebraicType::U8), ("b", AlgebraicType::U8)]),
            true,
        )
        .finish();
        b.build_table_with_new_type(
            "reaction",
            ProductType::from([("emoji", AlgebraicType::String)]),
            true,
        )
        .finish();
    });
    let plan = plan(&v1(), &new);
    assert!(plan.is_automatic(), "{plan}");
    let t = |s: &str| s.to_owned();
    assert_eq!(
        plan.steps,
        vec![
            MigrationStep::DropIndex {
                table: t("user"),
                index: t("user_name_idx_btree")
            },
            MigrationStep::AddIndex {
                table: t("user"),
                index: t("user_age_idx_hash")
            },
            MigrationStep::AddColumns {
                table: t("user"),
                columns: vec![t("karma"), t("bio")],
                defaults: vec![AlgebraicValue::U32(10), AlgebraicValue::OptionNone()],
            },
            MigrationStep::ChangeAccess {
                table: t("message"),
                public: false
            },
            MigrationStep::AddTable {
                table: t("reaction")
            },
        ]
    );
    let text = plan.to_string();
    assert!(
        text.contains("table `user`: add columns `karma`, `bio` with defaults"),
        "{text}"
    );
}

#[test]
fn incompatible_plan_lists_every_blocker() {
    let mut new = build(|b| {
        b.build_table_with_new_type(
            "user",
            ProductType::from([
                ("id", AlgebraicType::U64),
                ("name", AlgebraicType::String),
                ("age", AlgebraicType::U64),
                ("x", AlgebraicType::Bool),
            ]),
            true,
        )
        .with_primary_key(0)
        .with_unique_constraint(0)
        .with_index(btree(0), "user_id_idx_btree", "id")
        .finish();
        b.build_table_with_new_type(
            "score",
            ProductType::from([
                ("player", AlgebraicType::U32),
                ("points", AlgebraicType::U64),
            ]),
            true,
        )
        .with_unique_constraint(0)
        .with_unique_constraint(1)
        .with_primary_key(0)
        .with_index(btree(0), "score_player_idx_btree", "player")
        .with_index(btree(1), "score_points_idx_btree", "points")
        .finish();
        b.build_table_with_new_type(
            "log",
            ProductType::from([("line", AlgebraicType::String)]),
            true,
        )
        .with_event(true)
        .finish();
        b.build_table_with_new_type(
            "item",
            ProductType::from([("b", AlgebraicType::U8), ("a", AlgebraicType::U8)]),
            true,
        )
        .finish();
    });
    let old = v1();
    // Make `item` a schedule table in the new version only (id `b`, at `a`).
    let (item, _) = new.table("item").unwrap();
    new.schedules.push(ScheduleInfo {
        source_name: None,
        table: item,
        id_col: ColId(0),
        schedule_at_col: ColId(1),
        function: ScheduledFunction::Reducer(0),
    });
    new.tables[item].schedule = Some(new.schedules.len() - 1);

    let plan = plan(&old, &new);
    assert!(!plan.is_automatic());
    assert!(plan.steps.is_empty(), "no steps when blocked: {plan:?}");
    let expected = [
        "table `user`: column `age` changed type from u32 to u64 (only enum variants may be added)",
        "table `user`: column `x` added without a default",
        "table `message` removed",
        "table `log`: became an event table",
        "table `item`: column `a` moved from position 0 to 1 (columns may only be added at the end)",
        "table `item`: column `b` moved from position 1 to 0 (columns may only be added at the end)",
        "table `item`: schedule changed from none to reducer `noop` (id `b`, at `a`)",
    ];
    assert_eq!(plan.blockers, expected, "{plan}");
    let text = plan.to_string();
    assert!(
        text.starts_with("the new version cannot be migrated automatically (7 blocking changes")
    );
    assert!(text.contains("\n  - table `message` removed"));
}

#[test]
fn removed_and_reordered_columns_block() {
    let new = build(|b| {
        b.build_table_with_new_type(
            "user",
            ProductType::from([("id", AlgebraicType::U64), ("name", AlgebraicType::String)]),
            true,
        )
        .with_auto_inc_primary_key(0)
        .with_index(btree(0), "user_id_idx_btree", "id")
        .finish();
        b.build_table_with_new_type(
            "message",
            ProductType::from([("id", AlgebraicType::U64), ("text", AlgebraicType::String)]),
            true,
        )
        .finish();
        b.build_table_with_new_type(
            "score",
            ProductType::from([
                ("player", AlgebraicType::U32),
                ("points", AlgebraicType::U64),
            ]),
            true,
        )
        .finish();
        b.build_table_with_new_type(
            "log",
            ProductType::from([
                ("when", AlgebraicType::U64),
                ("line", AlgebraicType::String),
            ]),
            true,
        )
        .with_default_column_value(0, AlgebraicValue::U64(0))
        .finish();
        b.build_table_with_new_type(
            "item",
            ProductType::from([("a", AlgebraicType::U8), ("b", AlgebraicType::U8)]),
            true,
        )
        .finish();
    });
    let plan = plan(&v1(), &new);
    assert_eq!(
        plan.blockers,
        [
            "table `user`: column `age` removed",
            "table `log`: column `line` moved from position 0 to 1 (columns may only be added at the end)",
            "table `log`: column `when` added at position 0, before existing columns (new columns go at the end)",
        ],
        "{plan}"
    );
}

/// A one-table definition: `t(id u32, color <color>)`, with `keys` applied.
fn colored(
    color: AlgebraicType,
    keys: impl FnOnce(
        spacetimedb_lib::db::raw_def::v10::RawTableDefBuilderV10<'_>,
    ) -> spacetimedb_lib::db::raw_def::v10::RawTableDefBuilderV10<'_>,
) -> ModuleDef {
    build(|b| {
        let table = b.build_table_with_new_type(
            "t",
            ProductType::from([("id", AlgebraicType::U32), ("color", color)]),
            true,
        );
        keys(table).finish();
    })
}

fn rgb(names: &[&'static str]) -> AlgebraicType {
    AlgebraicType::simple_enum(names.iter().copied())
}

// Protects the reference's rule for enum columns: variants may only be
// appended (same names, same layout); removing, renaming or reordering them,
// or a payload that changes the layout, blocks.
#[test]
fn enum_variants_may_only_be_appended() {
    let old = colored(rgb(&["Red", "Green"]), |t| t);
    let appended = plan(&old, &colored(rgb(&["Red", "Green", "Blue"]), |t| t));
    assert!(appended.is_automatic(), "{appended}");
    assert_eq!(
        appended.steps,
        [MigrationStep::ChangeColumns {
            table: "t".into(),
            columns: vec!["color".into()]
        }]
    );
    let option = |inner| AlgebraicType::option(inner);
    let nested = plan(
        &colored(option(rgb(&["Red"])), |t| t),
        &colored(option(rgb(&["Red", "Blue"])), |t| t),
    );
    assert!(nested.is_automatic(), "inside an Option: {nested}");

    for (new, why) in [
        (rgb(&["Red"]), "enum variants were removed"),
        (
            rgb(&["Green", "Red", "Blue"]),
            "variant 0 renamed from `Red` to `Green` (new variants go at the end)",
        ),
        (rgb(&["Red", "Verde", "Blue"]), "variant 1 renamed"),
        (
            AlgebraicType::sum([
                ("Red", AlgebraicType::unit()),
                ("Green", AlgebraicType::unit()),
                ("Rgb", AlgebraicType::U64),
            ]),
            "change the enum's layout from 1 to 16 bytes",
        ),
        (AlgebraicType::U8, "only enum variants may be added"),
    ] {
        let refused = plan(&old, &colored(new, |t| t));
        assert!(!refused.is_automatic(), "{why}");
        assert!(
            refused.blockers[0].starts_with("table `t`: column `color` changed type")
                && refused.blockers[0].contains(why),
            "{refused}"
        );
    }
}

// Protects the reference's automatic key, constraint and sequence changes:
// a primary key removed or added, a unique constraint added or removed and
// a sequence added, changed or removed are steps (the rows are checked when
// applied); a unique constraint whose columns change under its name blocks.
#[test]
fn keys_constraints_and_sequences_change_automatically() {
    let base = || rgb(&["Red"]);
    let pk = colored(base(), |t| t.with_primary_key(0).with_unique_constraint(0));
    let plain = colored(base(), |t| t);
    let t = |s: &str| s.to_owned();
    let removed = plan(&pk, &plain);
    assert!(removed.is_automatic(), "{removed}");
    assert_eq!(
        removed.steps,
        [
            MigrationStep::ChangePrimaryKey {
                table: t("t"),
                column: None
            },
            MigrationStep::RemoveConstraint {
                table: t("t"),
                constraint: t("t_id_key")
            },
        ]
    );
    assert!(removed.to_string().contains("remove the primary key"));
    let added = plan(&plain, &pk);
    assert!(added.is_automatic(), "{added}");
    assert!(added.steps.contains(&MigrationStep::AddConstraint {
        table: t("t"),
        constraint: t("t_id_key")
    }));

    let sequence = plan(&plain, &colored(base(), |t| t.with_column_sequence(0)));
    assert!(sequence.is_automatic(), "{sequence}");
    assert_eq!(
        sequence.steps,
        [MigrationStep::AddSequence {
            table: t("t"),
            sequence: t("t_id_seq"),
            column: t("id")
        }]
    );
    let dropped = plan(&colored(base(), |t| t.with_column_sequence(0)), &plain);
    assert_eq!(
        dropped.steps,
        [MigrationStep::RemoveSequence {
            table: t("t"),
            sequence: t("t_id_seq")
        }]
    );

    // Same constraint name, other columns.
    let mut moved = colored(base(), |t| t.with_unique_constraint(0));
    let other = colored(base(), |t| t.with_unique_constraint(1));
    moved.tables[0].def.unique_constraints[0].name = "t_key".into();
    let mut other = other;
    other.tables[0].def.unique_constraints[0].name = "t_key".into();
    let refused = plan(&moved, &other);
    assert_eq!(
        refused.blockers,
        ["table `t`: unique constraint `t_key` changed its columns"]
    );
}

// Protects event tables: they hold no rows, so any change of their columns
// is one automatic reschema step, flagged as breaking clients.
#[test]
fn event_table_columns_change_freely() {
    let event = |cols: ProductType| {
        build(|b| {
            b.build_table_with_new_type("ev", cols, true)
                .with_event(true)
                .finish();
        })
    };
    let old = event(ProductType::from([("text", AlgebraicType::String)]));
    let new = event(ProductType::from([
        ("seq", AlgebraicType::U64),
        ("body", AlgebraicType::U32),
    ]));
    let changed = plan(&old, &new);
    assert!(changed.is_automatic(), "{changed}");
    assert_eq!(
        changed.steps,
        [MigrationStep::ReschemaEventTable { table: "ev".into() }]
    );
    assert!(changed.breaks_clients());
    assert!(plan(&old, &old).steps.is_empty());
}

#[test]
fn type_names_are_short() {
    assert_eq!(type_name(&AlgebraicType::U32), "u32");
    assert_eq!(
        type_name(&AlgebraicType::option(AlgebraicType::String)),
        "Option<string>"
    );
    assert_eq!(type_name(&AlgebraicType::array(AlgebraicType::U8)), "bytes");
    assert_eq!(
        type_name(&AlgebraicType::array(AlgebraicType::I64)),
        "Vec<i64>"
    );
    assert_eq!(
        type_name(&AlgebraicType::product([(
            "__identity__",
            AlgebraicType::U256
        )])),
        "Identity"
    );
    assert_eq!(
        type_name(&AlgebraicType::product([
            ("a", AlgebraicType::U8),
            ("b", AlgebraicType::Bool)
        ])),
        "{ a: u8, b: bool }"
    );
    assert_eq!(
        type_name(&AlgebraicType::simple_enum(["A", "B"].into_iter())),
        "A | B"
    );
    assert_eq!(
        type_name(&AlgebraicType::sum([
            ("Circle", AlgebraicType::U32),
            ("Empty", AlgebraicType::unit())
        ])),
        "Circle(u32) | Empty"
    );
}
