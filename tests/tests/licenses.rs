//! Licence check over the resolved dependency tree of the whole workspace.
//!
//! SpacetimeDB publishes some crates under Apache-2.0 (sats, lib, primitives,
//! bindings) and the rest under the Business Source License (BSL 1.1). We may
//! use only the former; a feature flip such as `spacetimedb-lib/metrics_impls`
//! silently pulls BSL crates (spec/module-abi.md section 10). These tests read
//! `cargo metadata` and fail, naming the crate and the path by which it entered.

#[path = "common/metadata.rs"]
mod metadata;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde_json::Value;

/// SpacetimeDB crates known to be BSL-licensed. Their manifests only say
/// `license-file`, so the LICENSE scan below is the general rule and this
/// list is the backstop for a crate whose LICENSE file cannot be read.
const BSL_CRATES: &[&str] = &[
    "spacetimedb-core",
    "spacetimedb-schema",
    "spacetimedb-client-api-messages",
    "spacetimedb-sdk",
    "spacetimedb-standalone",
    "spacetimedb-cli",
    "spacetimedb-metrics",
    "spacetimedb-memory-usage",
    "spacetimedb-datastore",
    "spacetimedb-table",
    "spacetimedb-commitlog",
    "spacetimedb-durability",
    "spacetimedb-snapshot",
    "spacetimedb-paths",
    "spacetimedb-fs-utils",
    "spacetimedb-data-structures",
    "spacetimedb-expr",
    "spacetimedb-query",
    "spacetimedb-physical-plan",
    "spacetimedb-execution",
    "spacetimedb-vm",
    "spacetimedb-subscription",
    "spacetimedb-auth",
    "spacetimedb-client-api",
    "spacetimedb-codegen",
    "spacetimedb-jsonwebtoken",
];

/// The Apache-2.0 SpacetimeDB crates we use, pinned to the module ABI we target.
const PINNED_CRATES: &[&str] = &[
    "spacetimedb-sats",
    "spacetimedb-lib",
    "spacetimedb-primitives",
];
const PINNED_VERSION: &str = "2.10.1";

/// Features that pull BSL crates (`metrics_impls` → spacetimedb-metrics,
/// `memory-usage` → spacetimedb-memory-usage).
const FORBIDDEN_FEATURES: &[(&str, &str)] = &[
    ("spacetimedb-lib", "metrics_impls"),
    ("spacetimedb-sats", "metrics_impls"),
    ("spacetimedb-lib", "memory-usage"),
    ("spacetimedb-sats", "memory-usage"),
    ("spacetimedb-primitives", "memory-usage"),
];

// Protects: no BSL-licensed crate is ever built into Orrery, whatever feature
// or dependency someone adds.
#[test]
fn no_bsl_crate_in_resolved_tree() {
    let violations = bsl_violations(&metadata::cargo_metadata());
    assert!(
        violations.is_empty(),
        "BSL-licensed crates in the dependency tree (see spec/module-abi.md section 10):\n{}",
        violations.join("\n")
    );
}

// Protects: the SpacetimeDB crates we do use stay at the ABI version we target
// and without the features that would pull BSL code.
#[test]
fn spacetimedb_crates_pinned_without_bsl_features() {
    let violations = pin_violations(&metadata::cargo_metadata());
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

// Protects the checks above from going blind: a synthetic tree with each kind
// of offence must be caught, and Boost's `BSL-1.0` (ryu) must not be.
#[test]
fn checker_catches_each_kind_of_offence() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("licenses-canary");
    let metrics_dir = dir.join("spacetimedb-metrics");
    let sats_dir = dir.join("spacetimedb-sats");
    std::fs::create_dir_all(&metrics_dir).expect("create canary dir");
    std::fs::create_dir_all(&sats_dir).expect("create canary dir");
    std::fs::write(
        metrics_dir.join("LICENSE"),
        "Business Source License 1.1\n\nLicensor: Clockwork Laboratories, Inc.\n",
    )
    .expect("write canary licence");
    std::fs::write(
        sats_dir.join("LICENSE"),
        "Apache License\nVersion 2.0, January 2004\n",
    )
    .expect("write canary licence");
    let manifest = |dir: &Path| dir.join("Cargo.toml").to_string_lossy().into_owned();

    let package = |name: &str, version: &str, license: Value, manifest_path: String| {
        serde_json::json!({
            "id": format!("{name}@{version}"),
            "name": name,
            "version": version,
            "license": license,
            "license_file": if license.is_null() { Value::from("LICENSE") } else { Value::Null },
            "manifest_path": manifest_path,
        })
    };
    let node = |id: &str, deps: &[&str], features: &[&str]| {
        serde_json::json!({
            "id": id,
            "deps": deps.iter().map(|pkg| serde_json::json!({ "pkg": pkg })).collect::<Vec<_>>(),
            "features": features,
        })
    };
    let nowhere = || "/nonexistent/Cargo.toml".to_owned();
    let metadata = serde_json::json!({
        "workspace_members": ["orrery@0.1.0"],
        "packages": [
            package("orrery", "0.1.0", "Apache-2.0".into(), nowhere()),
            package("storage", "0.1.0", "Apache-2.0".into(), nowhere()),
            package("spacetimedb-lib", "2.14.0", Value::Null, manifest(&sats_dir)),
            package("spacetimedb-sats", "2.10.1", Value::Null, manifest(&sats_dir)),
            package("spacetimedb-metrics", "2.10.1", Value::Null, manifest(&metrics_dir)),
            package("spacetimedb-vm", "2.10.1", Value::Null, nowhere()),
            package("some-busl-crate", "1.0.0", "BUSL-1.1".into(), nowhere()),
            package("ryu", "1.0.0", "Apache-2.0 OR BSL-1.0".into(), nowhere()),
        ],
        "resolve": { "nodes": [
            node("orrery@0.1.0", &["storage@0.1.0", "ryu@1.0.0"], &[]),
            node("storage@0.1.0", &["spacetimedb-lib@2.14.0", "spacetimedb-sats@2.10.1", "some-busl-crate@1.0.0"], &[]),
            node("spacetimedb-lib@2.14.0", &["spacetimedb-metrics@2.10.1", "spacetimedb-vm@2.10.1"], &["metrics_impls", "serde"]),
            node("spacetimedb-sats@2.10.1", &[], &[]),
            node("spacetimedb-metrics@2.10.1", &[], &[]),
            node("spacetimedb-vm@2.10.1", &[], &[]),
            node("some-busl-crate@1.0.0", &[], &[]),
            node("ryu@1.0.0", &[], &[]),
        ]},
    });

    let bsl = bsl_violations(&metadata).join("\n");
    assert!(
        bsl.contains("spacetimedb-metrics 2.10.1: LICENSE file is the Business Source License")
            && bsl.contains("orrery -> storage -> spacetimedb-lib -> spacetimedb-metrics"),
        "{bsl}"
    );
    // Unreadable LICENSE: caught both as unverifiable and by the deny list.
    assert!(
        bsl.contains(
            "spacetimedb-vm 2.10.1: no readable LICENSE file, licence unknown, known BSL crate"
        ),
        "{bsl}"
    );
    assert!(
        bsl.contains("some-busl-crate 1.0.0: licence field `BUSL-1.1`"),
        "{bsl}"
    );
    assert!(
        !bsl.contains("ryu"),
        "Boost's BSL-1.0 is not the Business Source License:\n{bsl}"
    );
    assert!(!bsl.contains("spacetimedb-sats"), "{bsl}");
    assert_eq!(bsl.lines().count(), 3, "{bsl}");

    let pins = pin_violations(&metadata).join("\n");
    assert!(
        pins.contains("spacetimedb-lib resolves to 2.14.0"),
        "{pins}"
    );
    assert!(
        pins.contains("spacetimedb-lib has feature `metrics_impls`"),
        "{pins}"
    );
    assert_eq!(pins.lines().count(), 2, "{pins}");
}

/// One line per offending package: name, version, why, and how it entered.
fn bsl_violations(metadata: &Value) -> Vec<String> {
    let graph = Graph::new(metadata);
    let mut violations = Vec::new();
    for (id, package) in &graph.packages {
        let name = str_field(package, "name");
        let version = str_field(package, "version");
        let reasons = bsl_reasons(package);
        if !reasons.is_empty() {
            violations.push(format!(
                "{name} {version}: {}; enters via {}",
                reasons.join(", "),
                graph.path_to(id)
            ));
        }
    }
    violations
}

/// Why a package counts as BSL-licensed; empty if it does not.
fn bsl_reasons(package: &Value) -> Vec<String> {
    let mut reasons = Vec::new();
    let name = str_field(package, "name");
    if let Some(license) = package["license"].as_str() {
        if license_expression_mentions_bsl(license) {
            reasons.push(format!("licence field `{license}`"));
        }
    }
    if name.starts_with("spacetimedb-") {
        match read_license_file(package) {
            Some(text) if text.contains("Business Source License") => {
                reasons.push("LICENSE file is the Business Source License".to_owned());
            }
            Some(_) => {}
            None if package["license"].is_null() => {
                reasons.push("no readable LICENSE file, licence unknown".to_owned());
            }
            None => {}
        }
    }
    if BSL_CRATES.contains(&name) {
        reasons.push("known BSL crate".to_owned());
    }
    reasons
}

/// True if an SPDX expression names the Business Source License (`BUSL-1.1`,
/// or the informal `BSL`/`BSL-1.1`). `BSL-1.0` is the Boost Software License,
/// which is permissive (ryu is `Apache-2.0 OR BSL-1.0`), so it does not count.
fn license_expression_mentions_bsl(expression: &str) -> bool {
    let upper = expression.to_ascii_uppercase();
    if upper.contains("BUSINESS SOURCE") {
        return true;
    }
    upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '+'))
        .any(|token| token.starts_with("BUSL") || (token.starts_with("BSL") && token != "BSL-1.0"))
}

/// The text of the package's licence file: `license_file` if the manifest names
/// one, else the usual `LICENSE*` names next to its Cargo.toml.
fn read_license_file(package: &Value) -> Option<String> {
    let manifest_dir = Path::new(package["manifest_path"].as_str()?).parent()?;
    let mut candidates = Vec::new();
    if let Some(file) = package["license_file"].as_str() {
        candidates.push(manifest_dir.join(file));
    }
    for file in ["LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE"] {
        candidates.push(manifest_dir.join(file));
    }
    candidates
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
}

/// Version pins and forbidden features of the Apache-2.0 SpacetimeDB crates.
fn pin_violations(metadata: &Value) -> Vec<String> {
    let graph = Graph::new(metadata);
    let mut violations = Vec::new();
    for (id, package) in &graph.packages {
        let name = str_field(package, "name");
        let version = str_field(package, "version");
        if PINNED_CRATES.contains(&name) && version != PINNED_VERSION {
            violations.push(format!(
                "{name} resolves to {version}, expected exactly {PINNED_VERSION} (the module ABI we target); enters via {}",
                graph.path_to(id)
            ));
        }
        let features = graph
            .features
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (crate_name, feature) in FORBIDDEN_FEATURES {
            if name == *crate_name && features.iter().any(|f| f == feature) {
                violations.push(format!(
                    "{name} has feature `{feature}` enabled, which pulls BSL crates; enters via {}",
                    graph.path_to(id)
                ));
            }
        }
    }
    violations
}

/// The resolved graph: packages by id, edges, enabled features, roots.
struct Graph<'a> {
    packages: BTreeMap<&'a str, &'a Value>,
    deps: BTreeMap<&'a str, Vec<&'a str>>,
    features: BTreeMap<&'a str, Vec<String>>,
    roots: Vec<&'a str>,
}

impl<'a> Graph<'a> {
    fn new(metadata: &'a Value) -> Graph<'a> {
        let nodes = metadata["resolve"]["nodes"]
            .as_array()
            .expect("cargo metadata has resolve.nodes");
        let resolved: Vec<&str> = nodes.iter().map(|node| str_field(node, "id")).collect();
        let packages = metadata["packages"]
            .as_array()
            .expect("cargo metadata has packages")
            .iter()
            .filter(|package| resolved.contains(&str_field(package, "id")))
            .map(|package| (str_field(package, "id"), package))
            .collect();
        let deps = nodes
            .iter()
            .map(|node| {
                let targets = node["deps"]
                    .as_array()
                    .map(|deps| deps.iter().map(|dep| str_field(dep, "pkg")).collect())
                    .unwrap_or_default();
                (str_field(node, "id"), targets)
            })
            .collect();
        let features = nodes
            .iter()
            .map(|node| {
                let features = node["features"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|f| f.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                (str_field(node, "id"), features)
            })
            .collect();
        let roots = metadata["workspace_members"]
            .as_array()
            .expect("cargo metadata has workspace_members")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        Graph {
            packages,
            deps,
            features,
            roots,
        }
    }

    /// Shortest path of crate names from a workspace member to `target`.
    fn path_to(&self, target: &str) -> String {
        let mut parent: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut queue = VecDeque::new();
        for root in &self.roots {
            parent.insert(root, None);
            queue.push_back(*root);
        }
        while let Some(id) = queue.pop_front() {
            if id == target {
                let mut names = vec![self.name(id)];
                let mut at = id;
                while let Some(Some(up)) = parent.get(at) {
                    names.push(self.name(up));
                    at = up;
                }
                names.reverse();
                return names.join(" -> ");
            }
            for next in self.deps.get(id).into_iter().flatten() {
                if !parent.contains_key(next) {
                    parent.insert(next, Some(id));
                    queue.push_back(next);
                }
            }
        }
        format!("{} (no path from a workspace member)", self.name(target))
    }

    fn name(&self, id: &'a str) -> &'a str {
        self.packages
            .get(id)
            .map_or(id, |package| str_field(package, "name"))
    }
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("cargo metadata: `{field}` is a string in {value}"))
}
