//! What a publish tells the publisher beyond the migration steps: whether the
//! update disconnects every client, and whether it is a major version
//! upgrade.
//!
//! Owns: [`disconnect_reasons`] and [`major_version_upgrade`], the two
//! flags of a `pre_publish` answer (client-protocol §2.3.7), decided the way
//! the reference server decides them.
//! Does not own: disconnecting anyone (the host) or asking the publisher
//! (the CLI).

use std::collections::BTreeSet;

use super::MigrationStep;
use crate::{DefVersion, ModuleDef};

/// Why updating `old` to `new` disconnects every connected client, one
/// reason per cause; empty when it does not. The causes, as the reference
/// decides them: the set of row-level security rules changed (a rule added,
/// removed or rewritten; their order does not matter), because clients
/// subscribed under the old rules hold rows the new ones may hide; and a
/// step of the automatic migration that changes the shape of rows clients
/// decode ([`MigrationStep::breaks_clients`]: columns added to a table, an
/// event table's columns changed).
pub fn disconnect_reasons(old: &ModuleDef, new: &ModuleDef) -> Vec<String> {
    let rules =
        |def: &ModuleDef| -> BTreeSet<String> { def.row_level_security.iter().cloned().collect() };
    let mut reasons = Vec::new();
    if rules(old) != rules(new) {
        reasons.push("row-level security changed".to_owned());
    }
    reasons.extend(
        super::plan(old, new)
            .steps
            .iter()
            .filter(|step| step.breaks_clients())
            .map(|step| match step {
                MigrationStep::AddColumns { table, .. } => {
                    format!("table `{table}` gains columns")
                }
                other => format!("event table `{}` changes its columns", other.table()),
            }),
    );
    reasons
}

/// True if updating `old` to `new` disconnects every connected client
/// ([`disconnect_reasons`] is not empty).
pub fn disconnects_clients(old: &ModuleDef, new: &ModuleDef) -> bool {
    !disconnect_reasons(old, new).is_empty()
}

/// True if `new` is a module of the next major version of the bindings over
/// an `old` one of the previous: a `RawModuleDef::V9` module (what the 1.x
/// `spacetimedb` crate emits) replaced by a `V10` one (2.x). The reference
/// decides it by the definition's version alone, and so does this.
pub fn major_version_upgrade(old: &ModuleDef, new: &ModuleDef) -> bool {
    old.version == DefVersion::V9 && new.version == DefVersion::V10
}

#[cfg(test)]
mod tests {
    use spacetimedb_lib::db::raw_def::v10::RawModuleDefV10Builder;
    use spacetimedb_lib::db::raw_def::v9::{RawModuleDefV9Builder, TableAccess};
    use spacetimedb_lib::RawModuleDef;
    use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType, ProductTypeElement};

    use super::*;

    fn row() -> ProductType {
        ProductType::from([
            ("owner", AlgebraicType::U32),
            ("text", AlgebraicType::String),
        ])
    }

    fn v10(rules: &[&str]) -> ModuleDef {
        let mut b = RawModuleDefV10Builder::new();
        b.build_table_with_new_type("note", row(), true)
            .with_access(TableAccess::Public)
            .finish();
        for rule in rules {
            b.add_row_level_security(rule);
        }
        ModuleDef::from_raw(RawModuleDef::V10(b.finish())).unwrap()
    }

    fn v9(rules: &[&str]) -> ModuleDef {
        let mut b = RawModuleDefV9Builder::new();
        b.build_table_with_new_type("note", row(), true)
            .with_access(TableAccess::Public)
            .finish();
        for rule in rules {
            b.add_row_level_security(rule);
        }
        ModuleDef::from_raw(RawModuleDef::V9(b.finish())).unwrap()
    }

    const MINE: &str = "SELECT * FROM note WHERE owner = 1";
    const OTHERS: &str = "SELECT * FROM note WHERE owner = 2";

    #[test]
    fn a_changed_rule_set_disconnects_and_the_same_set_in_any_order_does_not() {
        assert!(!disconnects_clients(&v10(&[MINE]), &v10(&[MINE])));
        assert!(!disconnects_clients(
            &v10(&[MINE, OTHERS]),
            &v10(&[OTHERS, MINE])
        ));
        assert!(disconnects_clients(&v10(&[]), &v10(&[MINE])), "added");
        assert!(disconnects_clients(&v10(&[MINE]), &v10(&[])), "removed");
        assert!(
            disconnects_clients(&v10(&[MINE]), &v10(&[OTHERS])),
            "rewritten"
        );
    }

    /// `note` with an extra `tag` column (default 0) and an event table
    /// `ping` with the given columns.
    fn reshaped(tag: bool, ping: ProductType) -> ModuleDef {
        let mut b = RawModuleDefV10Builder::new();
        let mut note = row().elements.to_vec();
        if tag {
            note.push(ProductTypeElement::new_named(AlgebraicType::U8, "tag"));
        }
        let table = b
            .build_table_with_new_type("note", ProductType::from(note.into_boxed_slice()), true)
            .with_access(TableAccess::Public);
        let table = if tag {
            table.with_default_column_value(2, AlgebraicValue::U8(0))
        } else {
            table
        };
        table.finish();
        b.build_table_with_new_type("ping", ping, true)
            .with_event(true)
            .finish();
        ModuleDef::from_raw(RawModuleDef::V10(b.finish())).unwrap()
    }

    #[test]
    fn added_columns_and_reshaped_event_tables_disconnect_with_their_reason() {
        let one = || ProductType::from([("at", AlgebraicType::U64)]);
        let two = || ProductType::from([("at", AlgebraicType::U64), ("by", AlgebraicType::U32)]);
        assert!(disconnect_reasons(&reshaped(false, one()), &reshaped(false, one())).is_empty());
        assert_eq!(
            disconnect_reasons(&reshaped(false, one()), &reshaped(true, one())),
            ["table `note` gains columns"]
        );
        assert_eq!(
            disconnect_reasons(&reshaped(false, one()), &reshaped(false, two())),
            ["event table `ping` changes its columns"]
        );
        assert!(disconnects_clients(
            &reshaped(false, one()),
            &reshaped(true, two())
        ));
        assert_eq!(
            disconnect_reasons(&v10(&[]), &v10(&[MINE])),
            ["row-level security changed"]
        );
    }

    #[test]
    fn only_v9_to_v10_is_a_major_version_upgrade() {
        assert!(major_version_upgrade(&v9(&[]), &v10(&[])));
        assert!(!major_version_upgrade(&v10(&[]), &v10(&[])));
        assert!(!major_version_upgrade(&v9(&[]), &v9(&[])));
        assert!(!major_version_upgrade(&v10(&[]), &v9(&[])));
    }
}
