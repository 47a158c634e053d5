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

/// Converts an identifier to snake_case. Our own rules:
///
/// 1. A name that contains no uppercase letter is returned unchanged
///    (`already_snake`, `person2`, `a__b`, `_private` stay as they are).
/// 2. Otherwise the name is split into words, and the words are lowercased and
///    joined with a single `_`:
///    * `_`, `-`, spaces and any other character that is not a letter or
///      digit separate words and are dropped;
///    * an uppercase letter after a lowercase letter or a digit starts a new
///      word (`MyTable` → `my_table`, `Vec3D` → `vec3_d`);
///    * in a run of uppercase letters followed by a lowercase letter, the last
///      uppercase letter starts the new word (`HTTPServer` → `http_server`,
///      `getHTTPResponse` → `get_http_response`);
///    * digits and lowercase letters continue the current word
///      (`Person2` → `person2`, `V2beta` → `v2beta`).
/// 3. Leading underscores of the original are kept (`_MyTable` → `_my_table`).
///
/// Letters are classified with Unicode `char::is_uppercase`/`is_lowercase`.
pub fn to_snake_case(name: &str) -> String {
    if !name.chars().any(char::is_uppercase) {
        return name.to_owned();
    }
    let leading = name.len() - name.trim_start_matches('_').len();
    let chars: Vec<char> = name[leading..].chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary =
                prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_is_lower);
            if boundary {
                words.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    format!("{}{}", "_".repeat(leading), words.join("_"))
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

    pub(crate) fn index(&self, source: &str) -> String {
        self.apply(&self.indexes, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the documented snake-case rules, including the examples the
    // brief names (Counter, MyTable, HTTPServer, person2, already_snake).
    #[test]
    fn snake_case_examples() {
        let cases = [
            ("Counter", "counter"),
            ("MyTable", "my_table"),
            ("HTTPServer", "http_server"),
            ("person2", "person2"),
            ("Person2", "person2"),
            ("already_snake", "already_snake"),
            ("a__b", "a__b"),
            ("_private", "_private"),
            ("_MyTable", "_my_table"),
            ("getHTTPResponse", "get_http_response"),
            ("Vec3D", "vec3_d"),
            ("V2beta", "v2beta"),
            ("My_Table", "my_table"),
            ("ID", "id"),
            ("userID", "user_id"),
            ("kebab-Case", "kebab_case"),
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
        let verbatim = Namer::new(CasePolicy::None, vec![]);
        assert_eq!(verbatim.table("MyTable"), "MyTable");
    }
}
