//! Signed modules on `orrery start`: every published module is stored in
//! the object store under `<data-dir>/objects/modules/` with a manifest the
//! control plane signed, and the host runs a module only once that
//! manifest verifies and vouches for the bytes. A byte flipped in a stored
//! module or in its manifest makes the next start refuse that database
//! (with the reason, in the log, the answer and the metrics) while the
//! others serve; repairing the object brings it back with its data.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::{send, Orrery};

fn publish(o: &Orrery, name: &str, module: &str) {
    let (status, body) = send(
        ureq::put(&o.url(&format!("/v1/database/{name}?host_type=Wasm"))),
        Some(&modules::module_bytes(module)),
    );
    assert_eq!(status, 200, "publish {name}: {body}");
}

fn sql(o: &Orrery, name: &str, query: &str) -> (u16, String) {
    send(
        ureq::post(&o.url(&format!("/v1/database/{name}/sql"))),
        Some(query.as_bytes()),
    )
}

fn metrics(o: &Orrery) -> String {
    let (status, body) = send(ureq::get(&o.url("/metrics")), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// The stored object of `module`'s wasm (`wasm`) or manifest (`manifest`).
fn object(data: &Path, module: &str, kind: &str) -> PathBuf {
    let sha = orrery_api::manifest::to_hex(&orrery_api::manifest::sha256(&modules::module_bytes(
        module,
    )));
    data.join("objects")
        .join("modules")
        .join(format!("{sha}.{kind}"))
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Starts on `data`, expecting database `chat` refused for `because`.
fn start_refusing_chat(data: &Path, because: &str) {
    let o = Orrery::start(data);
    o.expect_error("refusing a module that is not signed");
    o.expect_error("database did not open");
    let (status, body) = sql(&o, "chat", "SELECT * FROM user");
    assert_eq!(status, 503, "a tampered module serves nothing: {body}");
    assert!(
        body.contains("not one the control plane signed"),
        "the answer says why: {body}"
    );
    let log = o.process.lines().join("\n");
    assert!(log.contains(because), "the log names {because:?}:\n{log}");
    let m = metrics(&o);
    assert!(m.contains("orrery_modules_refused_total 1"), "{m}");
    assert!(m.contains("reason=\"unverified_module\""), "{m}");
    // The other database is untouched.
    let (status, body) = sql(&o, "ledger", "SELECT * FROM account");
    assert_eq!(status, 200, "{body}");
    o.stop();
}

#[test]
fn a_tampered_module_or_manifest_is_refused_at_start_and_the_others_serve() {
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start(data.path());
    publish(&o, "chat", "chat");
    publish(&o, "ledger", "bank");
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/chat/call/set_name"))
            .set("Content-Type", "application/json"),
        Some(br#"["before"]"#),
    );
    assert_eq!(status, 200, "{body}");
    let m = metrics(&o);
    assert!(m.contains("orrery_modules_refused_total 0"), "{m}");
    o.stop();

    // Canary: the objects exist where the layout says, and an untouched
    // restart serves.
    let wasm = object(data.path(), "chat", "wasm");
    let manifest = object(data.path(), "chat", "manifest");
    assert!(wasm.is_file() && manifest.is_file(), "{}", wasm.display());
    let o = Orrery::start(data.path());
    let (status, body) = sql(&o, "chat", "SELECT * FROM user");
    assert_eq!(status, 200, "{body}");
    o.stop();

    // A byte of the stored module.
    let good = std::fs::read(&wasm).unwrap();
    flip_byte(&wasm, good.len() / 2);
    start_refusing_chat(data.path(), "do not match their manifest");
    std::fs::write(&wasm, &good).unwrap();

    // A byte of the manifest (inside its signed text).
    let good_manifest = std::fs::read(&manifest).unwrap();
    flip_byte(&manifest, 20);
    start_refusing_chat(data.path(), "module manifest");
    std::fs::write(&manifest, &good_manifest).unwrap();

    // Repaired: the database serves again with its data.
    let o = Orrery::start(data.path());
    let (status, body) = sql(&o, "chat", "SELECT * FROM user");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("before"), "{body}");
    o.stop();
}
