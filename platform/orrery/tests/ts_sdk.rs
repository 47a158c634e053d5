//! The stock TypeScript SDK (npm `spacetimedb@2.10.1`) as a real client of
//! `orrery start`: publishes the chat module and runs tests/ts/chat.test.ts
//! (connect, subscribe, reducers, two clients, errors, reconnect with the
//! saved token) with Node. `./scripts/test` installs the npm packages first
//! (`npm ci` in tests/ts).

#[path = "../../../tenant-host/tests/support/modules.rs"]
mod modules;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["start", "--listen-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        assert!(Instant::now() < deadline, "orrery start did not start");
        let line = lines
            .next()
            .expect("orrery start printed its banner")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split(';').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
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
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        output.status.success(),
        "the TypeScript SDK test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("PASS: all"), "{stdout}");
}
