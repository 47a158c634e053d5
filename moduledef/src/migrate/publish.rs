//! What a publish tells the publisher beyond the migration steps: whether the
//! update disconnects every client, and whether it is a major version
//! upgrade.
//!
//! Owns: [`disconnects_clients`] and [`major_version_upgrade`], the two
//! flags of a `pre_publish` answer (client-protocol §2.3.7), decided the way
//! the reference server decides them.
//! Does not own: disconnecting anyone (the host) or asking the publisher
//! (the CLI).

use std::collections::BTreeSet;

use crate::{DefVersion, ModuleDef};

/// True if updating `old` to `new` disconnects every connected client: the
/// set of row-level security rules changed (a rule added, removed or
/// rewritten; the order of the rules does not matter). Clients subscribed
/// under the old rules hold rows the new rules may hide, and only a fresh
/// subscription evaluates the new ones.
pub fn disconnects_clients(old: &ModuleDef, new: &ModuleDef) -> bool {
    let rules =
        |def: &ModuleDef| -> BTreeSet<String> { def.row_level_security.iter().cloned().collect() };
    rules(old) != rules(new)
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
    use spacetimedb_sats::{AlgebraicType, ProductType};

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

    #[test]
    fn only_v9_to_v10_is_a_major_version_upgrade() {
        assert!(major_version_upgrade(&v9(&[]), &v10(&[])));
        assert!(!major_version_upgrade(&v10(&[]), &v10(&[])));
        assert!(!major_version_upgrade(&v9(&[]), &v9(&[])));
        assert!(!major_version_upgrade(&v10(&[]), &v9(&[])));
    }
}
