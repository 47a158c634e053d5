//! End-to-end test of snapshots in `orrery start`.

// Protects the snapshot policy as an operator sees it: a served database
// takes snapshots on its own while transactions commit (the metric shows the
// newest one), a SIGTERM leaves a snapshot at the last transaction, and the
// next start replays no commit-log record, compiles no module (it loads
// the artifact kept under the data directory) and still has every row.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;

use support::{send, Orrery};

/// `orrery start` with `extra` arguments, once it printed its banner.
fn start(data: &std::path::Path, extra: &[&str]) -> Orrery {
    Orrery::start_with(data, extra)
}

/// The value of the unlabelled process-wide series `name`.
fn process_metric(o: &Orrery, name: &str) -> u64 {
    let (status, body) = send(ureq::get(&o.url("/metrics")), None);
    assert_eq!(status, 200, "{body}");
    let prefix = format!("{name} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .parse()
        .unwrap()
}

fn call(o: &Orrery, bearer: &str, reducer: &str, args: &str) {
    let (status, body) = send(
        ureq::post(&o.url(&format!("/v1/database/bank/call/{reducer}")))
            .set("Authorization", bearer)
            .set("Content-Type", "application/json"),
        Some(args.as_bytes()),
    );
    assert_eq!(status, 200, "{reducer}({args}): {body}");
}

#[test]
fn snapshots_on_policy_and_at_sigterm_leave_nothing_to_replay() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();

    let o = start(data.path(), &["--snapshot-every-txs", "10"]);
    let (status, body) = send(ureq::post(&o.url("/v1/identity")), None);
    assert_eq!(status, 200, "{body}");
    let minted: Value = serde_json::from_str(&body).unwrap();
    let bearer = format!("Bearer {}", minted["token"].as_str().unwrap());
    let (status, body) = send(
        ureq::put(&o.url("/v1/database/bank?host_type=Wasm")).set("Authorization", &bearer),
        Some(&wasm),
    );
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    let id = reply["Success"]["database_identity"]
        .as_str()
        .unwrap()
        .to_owned();
    call(&o, &bearer, "seed", "[4]");
    for i in 0..30u64 {
        call(
            &o,
            &bearer,
            "transfer",
            &format!("[{}, {}, 5]", 1 + i % 4, 1 + (i + 1) % 4),
        );
    }
    // The policy's snapshots run in the background: wait for one.
    let deadline = Instant::now() + Duration::from_secs(60);
    while o.metric("orrery_snapshots_total", &id).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "no snapshot after 30 transfers");
        std::thread::yield_now();
    }
    assert!(o.metric("orrery_snapshot_offset", &id).is_some());
    // A few more, fewer than the interval: only the shutdown snapshot holds them.
    for _ in 0..3 {
        call(&o, &bearer, "transfer", "[1, 2, 1]");
    }
    o.stop();

    let o = start(data.path(), &[]);
    assert_eq!(
        o.metric("orrery_recovery_records_replayed", &id),
        Some(0),
        "a clean stop leaves a snapshot at the last transaction"
    );
    // The module was not compiled again: its artifact was kept on disk.
    assert_eq!(process_metric(&o, "orrery_module_compiles_total"), 0);
    assert!(process_metric(&o, "orrery_module_artifact_hits_total") >= 1);
    assert!(o.metric("orrery_snapshot_offset", &id).is_some());
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/bank/sql")).set("Authorization", &bearer),
        Some(b"SELECT * FROM account WHERE id = 1"),
    );
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    // Account 1 gave 5 eight times, got 5 seven times, then gave 1 three times.
    assert_eq!(rows[0]["rows"], serde_json::json!([[1, 1_000_000 - 5 - 3]]));
    o.stop();
}
