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
    "storage",
    "tenant-host",
    "billing",
    "control-plane",
    "tests/src",
];

/// The "may depend on" column of architecture.md, for workspace crates and
/// normal (and build) dependencies; dev-dependencies are free. `None` means
/// the crate may depend on any workspace crate.
const MAY_DEPEND_ON: &[(&str, Option<&[&str]>)] = &[
    ("orrery-api", Some(&[])),
    ("storage", Some(&["orrery-api"])),
    ("billing", Some(&["orrery-api"])),
    ("tenant-host", Some(&["storage", "billing", "orrery-api"])),
    ("control-plane", Some(&["storage", "billing", "orrery-api"])),
    ("orrery", None),
    ("loadgen", Some(&["tenant-host"])),
    ("tests", None),
];

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

// Protects the crate boundaries of architecture.md ("may depend on"): a crate
// that gains a normal dependency on a workspace crate outside its row fails
// here, and so does a new workspace crate without a row.
#[test]
fn crates_depend_only_on_what_architecture_allows() {
    let metadata = metadata::cargo_metadata();
    let member_ids: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("cargo metadata has workspace_members")
        .iter()
        .filter_map(|id| id.as_str())
        .collect();
    let members: Vec<&serde_json::Value> = metadata["packages"]
        .as_array()
        .expect("cargo metadata has packages")
        .iter()
        .filter(|package| {
            package["id"]
                .as_str()
                .is_some_and(|id| member_ids.contains(id))
        })
        .collect();
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
    for file in rust_files(&root.join("storage/src")) {
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
