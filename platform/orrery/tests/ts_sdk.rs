//! The stock TypeScript SDK (npm `spacetimedb@2.10.1`) as a real client of
//! `orrery start`: publishes the chat module and runs tests/ts/chat.test.ts
//! (connect, subscribe, reducers, two clients, errors, reconnect with the
//! saved token) with Node. `./scripts/test` installs the npm packages first
//! (`npm ci` in tests/ts).

#[path = "../../../tenant-host/tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn stock_typescript_sdk_drives_the_chat_module() {
    let ts_dir = repo_root().join("tests/ts");
    assert!(
        ts_dir.join("node_modules/spacetimedb").is_dir(),
        "the npm packages are missing: run `npm ci` in {} (./scripts/test does)",
        ts_dir.display()
    );
    let wasm = modules::module_bytes("chat");
    let data = tempfile::tempdir().unwrap();
    let mut server = support::Orrery::start(data.path());
    let addr = server.addr.clone();
    let base = format!("http://{addr}");

    let minted: serde_json::Value = serde_json::from_str(
        &ureq::post(&format!("{base}/v1/identity"))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let token = minted["token"].as_str().unwrap();
    let response = ureq::put(&format!("{base}/v1/database/ts-chat?host_type=Wasm"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(&wasm)
        .unwrap();
    assert_eq!(response.status(), 200);

    let output = Command::new("npx")
        .args(["--no-install", "tsx", "chat.test.ts"])
        .current_dir(&ts_dir)
        .env("ORRERY_URL", &base)
        .env("ORRERY_DB", "ts-chat")
        .env("ORRERY_OWNER_TOKEN", token)
        .output()
        .expect("run npx (Node 20 and npm must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = server.child.kill();
    let _ = server.child.wait();
    assert!(
        output.status.success(),
        "the TypeScript SDK test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("PASS: all"), "{stdout}");
}
