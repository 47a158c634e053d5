//! Shared by the tests of several crates: builds the real SpacetimeDB 2.10.1 test
//! modules of `tests/modules/` (listed in [`MODULES`]) for
//! `wasm32-unknown-unknown` and hands out their `.wasm` files.
//!
//! Included with `#[path = ".../tests/support/modules.rs"] mod modules;` (not a test
//! target of its own). Each name is built at most once per test process; test
//! processes building at the same time are serialised by cargo's own lock on
//! the target directory. Needs the `wasm32-unknown-unknown` rustup target
//! (`./scripts/test` installs it).

// Each including test binary uses only some of these functions.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The members of the modules workspace (`tests/modules/Cargo.toml`).
pub(crate) const MODULES: &[&str] = &[
    "chat",
    "chat-v2",
    "bank",
    "abi-coverage",
    "hostile",
    "rls",
    "rls-v2",
    "http-handlers",
    "query-views",
    "query-views-v2",
    "names",
    "migrate-v1",
    "migrate-v2",
];

const TARGET: &str = "wasm32-unknown-unknown";

/// The repository root: the nearest ancestor of the including crate that
/// holds `tests/modules/Cargo.toml` (this file is also included by crates
/// deeper than `tenant-host`, e.g. `platform/orrery`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| {
            dir.join("tests")
                .join("modules")
                .join("Cargo.toml")
                .is_file()
        })
        .expect("the including crate lives below the repository root")
        .to_path_buf()
}

/// `tests/modules/`, the separate Cargo workspace of the test modules.
pub(crate) fn modules_dir() -> PathBuf {
    repo_root().join("tests").join("modules")
}

/// The cargo running the tests (`CARGO`), so the modules build with the same
/// toolchain; plain `cargo` if the tests were started some other way.
fn cargo() -> OsString {
    std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(OsString::from))
        .unwrap_or_else(|| OsString::from("cargo"))
}

/// Names already built by this process.
fn built() -> &'static Mutex<BTreeSet<String>> {
    static BUILT: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    BUILT.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Builds test module `name` (release, wasm32) if this process has not yet,
/// and returns the path of its `.wasm`. Panics with cargo's output if the
/// build fails.
pub(crate) fn module_wasm(name: &str) -> PathBuf {
    assert!(
        MODULES.contains(&name),
        "unknown test module `{name}`; the modules are {MODULES:?}"
    );
    let dir = modules_dir();
    let target_dir = dir.join("target");
    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));

    // Holding the lock while cargo runs keeps this process's builds one at a
    // time; a poisoned lock only means another test panicked mid-build.
    let mut built = built().lock().unwrap_or_else(|poison| poison.into_inner());
    if built.contains(name) {
        return wasm;
    }
    let output = Command::new(cargo())
        .arg("build")
        .arg("--release")
        .arg("--locked")
        .args(["--target", TARGET])
        .args(["-p", name])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Settings meant for the host build must not leak into the wasm one.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {:?} to build test module `{name}`: {e}",
                cargo()
            )
        });
    if !output.status.success() {
        panic!(
            "building test module `{name}` failed ({}); if the target is missing, run \
             `rustup target add {TARGET}` (./scripts/test does)\n--- cargo stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(
        wasm.is_file(),
        "cargo built test module `{name}` but {} does not exist",
        wasm.display()
    );
    built.insert(name.to_string());
    wasm
}

/// The bytes of test module `name`, built if needed (see [`module_wasm`]).
pub(crate) fn module_bytes(name: &str) -> Vec<u8> {
    let path = module_wasm(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
