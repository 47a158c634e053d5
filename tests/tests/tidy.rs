//! Repository-wide tidy checks, run by plain `cargo test` (style.md C2, C3, C4, C14).
//!
//! Module headers, file naming, leftover debugging macros, the "may depend on"
//! column of architecture.md, and words the storage crate must never use.
//! Each check walks the tree as it is on disk, so files added later are covered
//! without touching this file.

#[path = "common/metadata.rs"]
mod metadata;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Folders whose Rust sources are crate code (headers, naming, forbidden macros).
const CRATE_DIRS: &[&str] = &[
    "platform",
    "durable",
    "storage",
    "wire",
    "moduledef",
    "module",
    "query",
    "tenant-host",
    "edge",
    "billing",
    "control-plane",
    "control-api",
    "objstore",
    "tests/src",
    // The fuzz targets: a Cargo workspace of its own, same conventions.
    "fuzz",
];

/// The "may depend on" column of architecture.md, for workspace crates and
/// normal (and build) dependencies; dev-dependencies are free. `None` means
/// the crate may depend on any workspace crate.
const MAY_DEPEND_ON: &[(&str, Option<&[&str]>)] = &[
    ("orrery-api", Some(&[])),
    ("durable", Some(&["orrery-api"])),
    ("storage", Some(&["durable", "orrery-api"])),
    ("billing", Some(&["orrery-api"])),
    ("orrery-wire", Some(&["orrery-api"])),
    ("orrery-moduledef", Some(&["storage", "orrery-api"])),
    (
        "orrery-module",
        Some(&["orrery-moduledef", "storage", "durable", "orrery-api"]),
    ),
    (
        "orrery-query",
        Some(&["orrery-wire", "storage", "orrery-api"]),
    ),
    (
        "tenant-host",
        Some(&[
            "orrery-module",
            "orrery-moduledef",
            "orrery-query",
            "orrery-wire",
            "storage",
            "durable",
            "billing",
            "orrery-objstore",
            "orrery-api",
        ]),
    ),
    (
        "orrery-edge",
        Some(&[
            "tenant-host",
            "orrery-module",
            "orrery-moduledef",
            "orrery-query",
            "orrery-wire",
            "storage",
            "durable",
            "orrery-objstore",
            "orrery-api",
        ]),
    ),
    (
        "orrery-cli",
        Some(&[
            "orrery-module",
            "orrery-moduledef",
            "orrery-wire",
            "storage",
            "durable",
            "orrery-objstore",
            "orrery-api",
        ]),
    ),
    (
        "control-plane",
        Some(&["storage", "billing", "orrery-objstore", "orrery-api"]),
    ),
    // Object stores and module artifacts: for the control plane, the host
    // and the CLI (and the orrery binary, which may depend on anything).
    ("orrery-objstore", Some(&["durable", "orrery-api"])),
    ("control-api", Some(&["control-plane", "orrery-api"])),
    ("orrery", None),
    ("loadgen", Some(&["orrery-wire"])),
    ("tests", None),
];

/// Module-level boundaries inside crates (style.md C2): no code under the
/// first path (a file or a folder, relative to the workspace root) may
/// contain any of the listed strings. Comments are not checked.
const NEVER_IMPORTS: &[(&str, &[&str], &str)] = &[
    (
        "durable/src/commitlog",
        &["crate::snapshot"],
        "the commit log knows nothing of snapshots",
    ),
    (
        "durable/src/snapshot",
        &["crate::commitlog"],
        "snapshots know nothing of the commit log",
    ),
    (
        "storage/src/table",
        &["crate::db", "crate::tx"],
        "tables and indexes know nothing of transactions or the database",
    ),
    (
        "storage/src/schema.rs",
        &["crate::db", "crate::tx", "crate::table"],
        "schemas are plain definitions",
    ),
    (
        "storage/src/value.rs",
        &["crate::db", "crate::tx", "crate::table"],
        "values know nothing of tables",
    ),
    (
        "module/src",
        &["st_client", "\"st_", "SYSTEM_TABLE_PREFIX", "CLIENT_TABLE"],
        "the module runtime knows nothing of the host's system tables: the host hands it a HostTables",
    ),
    (
        "query/src/sql",
        &["crate::subs"],
        "SQL sits below subscriptions",
    ),
    (
        "tenant-host/src/logs.rs",
        &["crate::hosting", "crate::clients", "crate::registry", "crate::metrics"],
        "module logs are a leaf of the hosting layer",
    ),
    (
        "tenant-host/src/clients.rs",
        &["crate::hosting", "crate::registry", "crate::metrics"],
        "clients sit below hosting",
    ),
    (
        "tenant-host/src/hosting",
        &["crate::registry", "crate::metrics"],
        "hosting sits below the registry and the metrics renderer",
    ),
];

/// Most lines a crate's `src/` may hold (style.md C2: a crate has one job;
/// a bigger one is two jobs or needs its tests moved to `tests/`).
const CRATE_SRC_LINES_MAX: usize = 8_000;

/// Pairs of external crates no library crate may depend on together: each
/// pair is two jobs (the module runtime, the HTTP edge, the SQL engine).
const EXCLUSIVE_DEPENDENCIES: &[(&str, &str)] = &[("wasmtime", "axum"), ("wasmtime", "sqlparser")];

/// Words `storage` must not use in code: it knows nothing of WebAssembly,
/// clients, tenants or accounts (architecture.md, "Arrows point one way").
const STORAGE_FORBIDDEN_WORDS: &[&str] = &["wasmtime", "websocket", "tenant", "account"];

// Protects the module headers of style.md C3: every non-test source file opens
// with a `//!` line that says what it owns. Crate `tests/` folders and files
// named `tests.rs` are test code and skipped; `benches/` and `examples/` are
// checked, since they are programs someone will open to learn the crate.
#[test]
fn every_source_file_opens_with_a_module_header() {
    let root = metadata::workspace_root();
    let mut missing = Vec::new();
    for dir in CRATE_DIRS {
        for file in rust_files(&root.join(dir)) {
            if is_test_file(&root, &file) {
                continue;
            }
            let text = read(&file);
            if !text
                .lines()
                .next()
                .is_some_and(|line| line.starts_with("//!"))
            {
                missing.push(relative(&root, &file));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these files must begin with a `//!` header saying what the module owns (style.md C3):\n{}",
        missing.join("\n")
    );
}

// Protects the file naming rule of style.md C4: `foo.rs` plus `foo/`, never
// `foo/mod.rs`, anywhere in the repository.
#[test]
fn no_mod_rs_files() {
    let root = metadata::workspace_root();
    let offenders: Vec<String> = rust_files(&root)
        .into_iter()
        .filter(|file| file.file_name().is_some_and(|name| name == "mod.rs"))
        .map(|file| relative(&root, &file))
        .collect();
    assert!(
        offenders.is_empty(),
        "rename to `<module>.rs` next to the `<module>/` folder:\n{}",
        offenders.join("\n")
    );
}

// Protects against debugging leftovers: no dbg macro call in any Rust file of
// the repository (comments may mention it). Use `tracing` instead.
#[test]
fn no_dbg_macro() {
    let root = metadata::workspace_root();
    // Built from pieces so this file does not match itself.
    let needle = concat!("dbg", "!(");
    let mut offenders = Vec::new();
    for file in rust_files(&root) {
        for (number, line) in read(&file).lines().enumerate() {
            if code_part(line).contains(needle) {
                offenders.push(format!(
                    "{}:{}: {}",
                    relative(&root, &file),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "remove debugging macros:\n{}",
        offenders.join("\n")
    );
}

// Protects DEVELOPERS.md's "no sleeps (wait on a condition)": a sleep in
// test code is a wait on a duration that stands in for a condition, flaky on
// a loaded machine and slow on an idle one. The few that are not (the pause
// of a polling loop with a deadline, or a sleep that is the behaviour under
// test) say so with a `sleep-ok:` comment on one of the three lines before.
// Test files are scanned whole; other sources from their first
// `#[cfg(test)]` line on (unit tests sit at the bottom of their file).
#[test]
fn test_code_does_not_sleep_for_a_condition() {
    let root = metadata::workspace_root();
    // Built from pieces so this file does not match itself.
    let needle = concat!("sleep", "(");
    let marker = concat!("sleep", "-ok:");
    let mut offenders = Vec::new();
    for dir in CRATE_DIRS {
        for file in rust_files(&root.join(dir)) {
            let text = read(&file);
            let lines: Vec<&str> = text.lines().collect();
            let first_test_line = if is_test_file(&root, &file) {
                0
            } else {
                match first_cfg_test_line(&lines) {
                    Some(number) => number,
                    None => continue,
                }
            };
            for (number, line) in lines.iter().enumerate().skip(first_test_line) {
                if !code_part(line).contains(needle) {
                    continue;
                }
                let justified = lines[number.saturating_sub(3)..number]
                    .iter()
                    .any(|before| before.contains(marker));
                if !justified {
                    offenders.push(format!(
                        "{}:{}: {}",
                        relative(&root, &file),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "wait on a condition (poll with a deadline, a channel, a barrier) instead, \
         or say why this sleep is not a wait in a `sleep-ok:` comment above it:\n{}",
        offenders.join("\n")
    );
}

// Protects the crate boundaries of architecture.md ("may depend on"): a crate
// that gains a normal dependency on a workspace crate outside its row fails
// here, and so does a new workspace crate without a row.
#[test]
fn crates_depend_only_on_what_architecture_allows() {
    let metadata = metadata::cargo_metadata();
    let members = workspace_members(&metadata);
    let member_names: BTreeSet<&str> = members
        .iter()
        .filter_map(|package| package["name"].as_str())
        .collect();

    let mut violations = Vec::new();
    for package in &members {
        let name = package["name"].as_str().expect("package has a name");
        let Some((_, allowed)) = MAY_DEPEND_ON
            .iter()
            .find(|(crate_name, _)| *crate_name == name)
        else {
            violations.push(format!(
                "workspace crate `{name}` has no row: add it to the workspace table of \
                 architecture.md and to MAY_DEPEND_ON in tests/tests/tidy.rs"
            ));
            continue;
        };
        let Some(allowed) = allowed else { continue };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().expect("dependency has a name");
            let is_dev = dep["kind"].as_str() == Some("dev");
            if !is_dev && member_names.contains(dep_name) && !allowed.contains(&dep_name) {
                violations.push(format!(
                    "`{name}` depends on `{dep_name}`, but may depend only on {allowed:?}"
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "crate boundaries of architecture.md broken (dev-dependencies are free):\n{}",
        violations.join("\n")
    );
}

// Protects the module-level boundaries of ARCHITECTURE.md (NEVER_IMPORTS):
// a file that reaches across one fails with the line and the reason.
#[test]
fn modules_never_import_across_their_boundaries() {
    let root = metadata::workspace_root();
    let mut offenders = Vec::new();
    for (scope, forbidden, reason) in NEVER_IMPORTS {
        let path = root.join(scope);
        let mut files = rust_files(&path);
        let single = path.with_extension("rs");
        if path.is_file() {
            files.push(path.clone());
        } else if single.is_file() && !scope.ends_with(".rs") {
            // `foo` covers `foo.rs` and `foo/`.
            files.push(single);
        }
        assert!(
            !files.is_empty(),
            "NEVER_IMPORTS scope `{scope}` matches no file"
        );
        for file in files {
            for (number, line) in read(&file).lines().enumerate() {
                let code = code_part(line);
                for needle in *forbidden {
                    if code.contains(needle) {
                        offenders.push(format!(
                            "{}:{}: `{needle}` ({reason})",
                            relative(&root, &file),
                            number + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "module boundaries broken:\n{}",
        offenders.join("\n")
    );
}

// Protects "a crate has one job": no workspace crate's `src/` grows past
// CRATE_SRC_LINES_MAX lines (unit tests included) without being split.
#[test]
fn no_crate_source_tree_is_too_large() {
    let metadata = metadata::cargo_metadata();
    let mut offenders = Vec::new();
    for package in workspace_members(&metadata) {
        let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
        let src = manifest
            .parent()
            .expect("manifest has a folder")
            .join("src");
        let lines: usize = rust_files(&src)
            .iter()
            .map(|file| read(file).lines().count())
            .sum();
        if lines > CRATE_SRC_LINES_MAX {
            offenders.push(format!(
                "{}: {lines} lines in src/",
                package["name"].as_str().expect("package has a name")
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "crates over {CRATE_SRC_LINES_MAX} lines of src/ (split along a real seam, or move tests to tests/):\n{}",
        offenders.join("\n")
    );
}

// Protects the dependency sets of ARCHITECTURE.md: no library crate links
// two jobs' engines at once (the module runtime with the HTTP edge or the
// SQL parser). Binaries compose and are exempt.
#[test]
fn no_library_crate_mixes_exclusive_dependencies() {
    let metadata = metadata::cargo_metadata();
    let mut offenders = Vec::new();
    for package in workspace_members(&metadata) {
        let is_library = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "lib"))
            });
        if !is_library {
            continue;
        }
        let normal: BTreeSet<&str> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|dep| dep["kind"].as_str() != Some("dev"))
            .filter_map(|dep| dep["name"].as_str())
            .collect();
        for (a, b) in EXCLUSIVE_DEPENDENCIES {
            if normal.contains(a) && normal.contains(b) {
                offenders.push(format!(
                    "{} depends on both `{a}` and `{b}`",
                    package["name"].as_str().expect("package has a name")
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The packages of the workspace in `cargo metadata`.
fn workspace_members(metadata: &serde_json::Value) -> Vec<&serde_json::Value> {
    let member_ids: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("cargo metadata has workspace_members")
        .iter()
        .filter_map(|id| id.as_str())
        .collect();
    metadata["packages"]
        .as_array()
        .expect("cargo metadata has packages")
        .iter()
        .filter(|package| {
            package["id"]
                .as_str()
                .is_some_and(|id| member_ids.contains(id))
        })
        .collect()
}

/// The words of every identifier-like token on a line, lowercased, split at
/// `_` and at lower-to-upper case changes (`TenantId` → `tenant`, `id`), so
/// that "accounted" is not mistaken for "account".
fn identifier_words(code: &str) -> Vec<String> {
    let mut words = Vec::new();
    for token in code.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        for part in token.split('_') {
            let mut word = String::new();
            let mut previous_lower = false;
            for c in part.chars() {
                if c.is_ascii_uppercase() && previous_lower && !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
                word.push(c.to_ascii_lowercase());
            }
            if !word.is_empty() {
                words.push(word);
            }
        }
    }
    words
}

// Protects the storage boundary (style.md C2): nothing in storage/src mentions
// WebAssembly runtimes, WebSockets, tenants or accounts in code. Comments are
// not checked, so a header may say what storage does *not* own.
#[test]
fn storage_code_never_mentions_upper_layers() {
    let root = metadata::workspace_root();
    let mut offenders = Vec::new();
    for file in [root.join("storage/src"), root.join("durable/src")]
        .iter()
        .flat_map(|dir| rust_files(dir))
    {
        for (number, line) in read(&file).lines().enumerate() {
            let words = identifier_words(code_part(line));
            for word in STORAGE_FORBIDDEN_WORDS {
                if words
                    .iter()
                    .any(|w| w == word || w.strip_suffix('s') == Some(word))
                {
                    offenders.push(format!(
                        "{}:{}: `{word}` in {}",
                        relative(&root, &file),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "storage knows nothing of {STORAGE_FORBIDDEN_WORDS:?} (architecture.md):\n{}",
        offenders.join("\n")
    );
}

/// All `.rs` files under `dir`, sorted, skipping build output, dependencies
/// and hidden folders.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read directory entry").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Test code: anything under a `tests/` folder of a crate (but not the `tests`
/// crate's own `src/`), and files named `tests.rs`.
fn is_test_file(root: &Path, file: &Path) -> bool {
    let relative = file
        .strip_prefix(root)
        .expect("file is under the workspace root");
    let mut components = relative.components().map(|c| c.as_os_str());
    let first = components.next();
    let in_test_dir = relative
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .skip(usize::from(first == Some("tests".as_ref())))
        .any(|component| component.as_os_str() == "tests");
    in_test_dir || file.file_name().is_some_and(|name| name == "tests.rs")
}

/// The index of the first line that is a `#[cfg(test)]` attribute.
fn first_cfg_test_line(lines: &[&str]) -> Option<usize> {
    lines
        .iter()
        .position(|line| code_part(line).trim() == "#[cfg(test)]")
}

// Protects the sleep rule's reach into unit tests: scanning starts at the
// first `#[cfg(test)]` attribute, not before, and not at a comment naming it.
#[test]
fn unit_tests_start_at_the_first_cfg_test_attribute() {
    let lines = [
        "fn main() {}",
        "// #[cfg(test)] in a comment",
        "    #[cfg(test)]",
        "mod tests {}",
    ];
    assert_eq!(first_cfg_test_line(&lines), Some(2));
    assert_eq!(first_cfg_test_line(&lines[..2]), None);
}

/// The part of a line that is code: empty for `//` and `/*` comment lines,
/// the text before a trailing `//` comment otherwise. Approximate (a `//`
/// inside a string literal ends the code early), which only makes checks laxer.
fn code_part(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") || trimmed.starts_with("/*") {
        return "";
    }
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}
