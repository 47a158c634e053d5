//! End-to-end test of `orrery start` as a real process.

// Protects the run command of the README: `orrery start --data-dir DIR`
// recovers every database found in the data directory (here one written by
// the storage engine directly), reports it, serves the client API on the
// address it prints, and stops cleanly on SIGTERM.

#[path = "support/process.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spacetimedb_sats::{AlgebraicType, AlgebraicValue, ProductType};
use storage::{
    ColId, Database, DbOptions, DbStorage, IndexAlgorithm, IndexDef, TableDef, UniqueConstraintDef,
};

#[test]
fn start_recovers_databases_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let db_dir = data.path().join("databases").join("shop");
    std::fs::create_dir_all(&db_dir).unwrap();
    {
        let (db, _) =
            Database::open(DbStorage::dir(&db_dir).unwrap(), DbOptions::default()).unwrap();
        let mut tx = db.begin().unwrap();
        let table = tx
            .create_table(TableDef {
                name: "orders".into(),
                columns: ProductType::from([("id", AlgebraicType::U64)]),
                primary_key: Some(ColId(0)),
                indexes: vec![IndexDef {
                    name: "orders_id_idx_btree".into(),
                    algorithm: IndexAlgorithm::BTree,
                    columns: vec![ColId(0)],
                }],
                unique_constraints: vec![UniqueConstraintDef {
                    name: "orders_id_key".into(),
                    columns: vec![ColId(0)],
                }],
                sequences: vec![],
                public: true,
                is_event: false,
            })
            .unwrap();
        for id in 1..=5u64 {
            tx.insert_row(table, vec![AlgebraicValue::U64(id)]).unwrap();
        }
        tx.commit().unwrap();
        db.flush().unwrap();
    }

    let server = support::Orrery::start(data.path());
    let lines = server.process.lines();
    let recovered = lines
        .iter()
        .find(|l| l.contains("database recovered"))
        .expect("the database was reported");
    assert!(
        recovered.contains("shop") && recovered.contains("last_offset=Some(0)"),
        "{recovered}"
    );

    // The client API answers on the address it printed.
    let addr = &server.addr;
    let response = http_get(addr, "/v1/ping");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = http_get(addr, "/v1/identity/public-key");
    assert!(
        response.contains("-----BEGIN PUBLIC KEY-----"),
        "{response}"
    );
    assert!(data.path().join("keys").join("id_ecdsa.pk8").is_file());

    // SIGTERM: a clean exit that says so, and no ERROR on the way.
    server.stop();
}

/// A plain HTTP/1.1 GET over a fresh connection; the whole response as text.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

// Protects `--log-format json` (one JSON object per stdout line, the message
// at top level) and `GET /metrics` on the started process.
#[test]
fn start_logs_json_and_serves_metrics() {
    let data = tempfile::tempdir().unwrap();
    // As by default (no --dev), so every line of a clean start is INFO.
    let server = support::Orrery::start_closed(data.path(), &["--log-format", "json"]);
    let lines = server.process.lines();
    let mut banner = None;
    for line in &lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(json["level"], "INFO", "{line}");
        let message = json["message"].as_str().unwrap_or_default().to_owned();
        if message.contains("orrery started") {
            assert_eq!(json["databases"], 0, "{line}");
            banner = Some(message);
            break;
        }
    }
    let banner = banner.expect("the banner is a JSON line");
    let addr = &support::listen_addr(&banner);
    let response = http_get(addr, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{response}"
    );
    assert!(response.contains("\norrery_databases 0\n"), "{response}");
    server.stop();
}

// Protects the ERROR check itself: a child that logs an ERROR the test did
// not declare makes the handle's drop fail, a declared one does not, and
// the child is gone after the drop.
#[test]
fn the_error_check_catches_an_unexpected_error_line() {
    let script = "echo '2026-01-01T00:00:00.000000Z  INFO started'; \
                  echo '2026-01-01T00:00:00.000001Z ERROR provoked: disk on fire' >&2; \
                  echo '{\"level\":\"ERROR\",\"message\":\"json too\"}'; \
                  exec sleep 600";
    let spawn = || {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        let child = support::Captured::spawn(command);
        child.wait_for_line("disk on fire");
        child.wait_for_line("json too");
        child
    };

    let child = spawn();
    let mut unexpected = child.unexpected_errors();
    unexpected.sort();
    assert_eq!(
        unexpected,
        [
            "2026-01-01T00:00:00.000001Z ERROR provoked: disk on fire",
            "{\"level\":\"ERROR\",\"message\":\"json too\"}",
        ]
    );
    let pid = child.id();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(child)));
    let message = dropped.expect_err("an unexpected ERROR fails the drop");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("disk on fire") && message.contains("json too"),
        "{message}"
    );
    // The drop killed the child (`sleep 600` would still run otherwise)
    // and reaped it.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the child outlived its handle"
    );

    let child = spawn();
    child.expect_error("disk on fire");
    child.expect_error("json too");
    assert!(child.unexpected_errors().is_empty());
    drop(child);
}

// Protects the promise of `--dev`: open publishing only where nobody else
// can reach it. On a non-loopback address the process refuses to start and
// says why; on loopback it starts and says loudly what it is.
#[test]
fn dev_mode_is_refused_off_loopback_and_announced_on_it() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["start", "--dev", "--listen-addr", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--dev") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(
        !data.path().join("databases").exists(),
        "nothing was created"
    );

    let server = support::Orrery::start(data.path());
    assert!(
        server
            .process
            .lines()
            .iter()
            .any(|line| line.contains("DEVELOPMENT MODE")),
        "{:?}",
        server.process.lines()
    );
    server.stop();
}
