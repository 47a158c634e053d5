//! Shared by the repository checks in `tests/tests/`: where the workspace is,
//! and its `cargo metadata` as JSON.
//!
//! Included with `#[path]` (not a test target of its own, and not a `mod.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace root: the parent of the `tests` crate.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_path_buf()
}

/// `cargo metadata` over the whole workspace, with the resolve graph and all
/// features as the workspace's own manifests enable them.
///
/// Runs `--locked` so CI sees exactly the committed lockfile; if the lockfile
/// is stale (a dependency was just added locally), retries without it, since
/// `cargo test` itself would have refreshed it anyway.
pub(crate) fn cargo_metadata() -> Value {
    let locked = run_metadata(&["--locked"]);
    let output = match locked {
        Ok(output) => output,
        Err(_) => {
            run_metadata(&[]).unwrap_or_else(|stderr| panic!("cargo metadata failed:\n{stderr}"))
        }
    };
    serde_json::from_slice(&output).expect("cargo metadata prints JSON")
}

fn run_metadata(extra: &[&str]) -> Result<Vec<u8>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .args(extra)
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
