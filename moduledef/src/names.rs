//! Canonical names (module ABI spec section 6.4).
//!
//! Owns: our own snake-case conversion ([`to_snake_case`]) and [`Namer`],
//! which turns a `source_name` into a canonical name under the module's
//! case-conversion policy and its explicit-name overrides.
//! Does not own: deciding which names must be unique (see `build.rs`), nor
//! the names the guest sends to `table_id_from_name`/`index_id_from_name`
//! (those are always source names and are never converted).
//! Entry points: [`to_snake_case`], [`Namer::table`], [`Namer::function`],
//! [`Namer::index`].

use std::collections::HashMap;

/// The case-conversion policy (our copy; the upstream enum is `#[non_exhaustive]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasePolicy {
    /// Canonical name = source name, verbatim.
    None,
    /// Canonical name = [`to_snake_case`] of the source name (the default).
    SnakeCase,
}

/// Converts an identifier to snake_case exactly as the stock CLI's module
/// validator does, so the canonical names we serve match the ones it computes
/// from our `/schema` (client-protocol.md §10 item 20): `convert_case` 0.6's
/// `Case::Snake` with its default word boundaries.
///
/// Words are split at `_`, `-` and spaces (which are dropped, so leading,
/// trailing and doubled underscores disappear), between a lowercase letter
/// and an uppercase one, between letters and digits in either direction, and
/// before the last capital of an acronym followed by a lowercase letter;
/// the words are lowercased and joined with one `_`. Examples: `add_u8` →
/// `add_u_8`, `t1` → `t_1`, `HTTPServer` → `http_server`, `playerID2` →
/// `player_id_2`, `_private` → `private`.
pub fn to_snake_case(name: &str) -> String {
    use convert_case::{Case, Casing};
    name.to_case(Case::Snake)
}

/// Applies the policy and the explicit overrides.
#[derive(Debug, Clone)]
pub(crate) struct Namer {
    policy: CasePolicy,
    tables: HashMap<String, String>,
    functions: HashMap<String, String>,
    indexes: HashMap<String, String>,
}

/// Which kind of object an explicit name applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    Table,
    Function,
    Index,
}

impl Namer {
    /// `explicit` entries override the policy; a later entry for the same
    /// source name wins. Entries naming unknown objects are ignored.
    pub(crate) fn new(policy: CasePolicy, explicit: Vec<(NameKind, String, String)>) -> Namer {
        let mut namer = Namer {
            policy,
            tables: HashMap::new(),
            functions: HashMap::new(),
            indexes: HashMap::new(),
        };
        for (kind, source, canonical) in explicit {
            let map = match kind {
                NameKind::Table => &mut namer.tables,
                NameKind::Function => &mut namer.functions,
                NameKind::Index => &mut namer.indexes,
            };
            map.insert(source, canonical);
        }
        namer
    }

    fn apply(&self, map: &HashMap<String, String>, source: &str) -> String {
        if let Some(explicit) = map.get(source) {
            return explicit.clone();
        }
        match self.policy {
            CasePolicy::None => source.to_owned(),
            CasePolicy::SnakeCase => to_snake_case(source),
        }
    }

    pub(crate) fn table(&self, source: &str) -> String {
        self.apply(&self.tables, source)
    }

    /// Reducers, procedures and views.
    pub(crate) fn function(&self, source: &str) -> String {
        self.apply(&self.functions, source)
    }

    /// Columns: the policy only (explicit names do not cover columns).
    pub(crate) fn column(&self, source: &str) -> String {
        match self.policy {
            CasePolicy::None => source.to_owned(),
            CasePolicy::SnakeCase => to_snake_case(source),
        }
    }

    pub(crate) fn index(&self, source: &str) -> String {
        self.apply(&self.indexes, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects canonical names matching the stock CLI's validator
    // (convert_case 0.6 `Case::Snake`): digits start words, acronyms split
    // before their last capital, separators and leading/trailing underscores
    // disappear. These are the names clients and SQL see.
    #[test]
    fn snake_case_examples() {
        let cases = [
            ("add_u8", "add_u_8"),
            ("t1", "t_1"),
            ("u8", "u_8"),
            ("HTTPServer", "http_server"),
            ("playerID2", "player_id_2"),
            ("already_snake", "already_snake"),
            ("_private", "private"),
            ("trailing_", "trailing"),
            ("__both__", "both"),
            ("a__b", "a_b"),
            ("Counter", "counter"),
            ("MyTable", "my_table"),
            ("_MyTable", "my_table"),
            ("person2", "person_2"),
            ("Person2", "person_2"),
            ("getHTTPResponse", "get_http_response"),
            ("Vec3D", "vec_3_d"),
            ("V2beta", "v_2_beta"),
            ("My_Table", "my_table"),
            ("ID", "id"),
            ("userID", "user_id"),
            ("kebab-Case", "kebab_case"),
            ("fruitName", "fruit_name"),
            ("BasketId", "basket_id"),
        ];
        for (input, expected) in cases {
            assert_eq!(to_snake_case(input), expected, "input {input:?}");
        }
    }

    // Protects precedence: explicit names beat the policy, per kind, and the
    // `None` policy keeps names verbatim.
    #[test]
    fn explicit_names_override_policy() {
        let namer = Namer::new(
            CasePolicy::SnakeCase,
            vec![
                (NameKind::Table, "counter".into(), "CounterTable".into()),
                (NameKind::Function, "DoIt".into(), "doIt".into()),
            ],
        );
        assert_eq!(namer.table("counter"), "CounterTable");
        assert_eq!(namer.table("MyTable"), "my_table");
        assert_eq!(namer.function("DoIt"), "doIt");
        assert_eq!(namer.function("counter"), "counter");
        assert_eq!(namer.index("DoIt"), "do_it");
        assert_eq!(namer.column("playerID2"), "player_id_2");
        let verbatim = Namer::new(CasePolicy::None, vec![]);
        assert_eq!(verbatim.table("MyTable"), "MyTable");
    }
}
