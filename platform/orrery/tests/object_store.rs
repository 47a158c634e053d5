//! End-to-end tests of the object store as the truth of `orrery start`'s
//! databases (issue 15), in both durability modes.

// Protects what a user of a self-hosted `orrery start` relies on: once the
// metrics say a database's copy caught up, losing the cache folder (here by
// SIGKILL and `rm -rf <data-dir>/cache`) loses nothing; the next start reads
// every database back from the object store, serves it, and copies its new
// transactions under a new generation, so a second loss loses nothing either.
// A deleted database is not brought back.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;

use support::{send, Orrery};

/// Commits a marker row through a confirmed SQL write (it returns once the
/// write, and so every earlier transaction, is durable on the host), then
/// waits until the object store holds everything durable; the offset shipped.
fn settle(o: &Orrery, bearer: &str, db: &str, id: &str, marker: u32) -> u64 {
    let (status, body) = send(
        ureq::post(&o.url(&format!("/v1/database/{db}/sql"))).set("Authorization", bearer),
        Some(format!("INSERT INTO account (id, balance) VALUES ({marker}, 0)").as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if o.metric("orrery_replica_lag_transactions", id) == Some(0) {
            return o
                .metric("orrery_replica_shipped_offset", id)
                .expect("shipped offset");
        }
        assert!(
            Instant::now() < deadline,
            "database {id} never caught up: lag {:?}, failing {:?}",
            o.metric("orrery_replica_lag_transactions", id),
            o.metric("orrery_replica_failing", id)
        );
        std::thread::yield_now();
    }
}

/// A minted identity's token (`POST /v1/identity`); it publishes under
/// `--dev`.
fn mint(o: &Orrery) -> String {
    let (status, body) = send(ureq::post(&o.url("/v1/identity")), None);
    assert_eq!(status, 200, "{body}");
    let minted: Value = serde_json::from_str(&body).unwrap();
    minted["token"].as_str().unwrap().to_owned()
}

fn call(o: &Orrery, bearer: &str, db: &str, reducer: &str, args: &str) {
    let (status, body) = send(
        ureq::post(&o.url(&format!("/v1/database/{db}/call/{reducer}")))
            .set("Authorization", bearer)
            .set("Content-Type", "application/json"),
        Some(args.as_bytes()),
    );
    assert_eq!(status, 200, "{reducer}({args}): {body}");
}

fn balance(o: &Orrery, bearer: &str, account: u32) -> Value {
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/bank/sql")).set("Authorization", bearer),
        Some(format!("SELECT * FROM account WHERE id = {account}").as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    rows[0]["rows"].clone()
}

fn publish(o: &Orrery, bearer: &str, name: &str, wasm: &[u8]) -> String {
    let (status, body) = send(
        ureq::put(&o.url(&format!("/v1/database/{name}?host_type=Wasm")))
            .set("Authorization", bearer),
        Some(wasm),
    );
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    reply["Success"]["database_identity"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// SIGKILL, then the cache folder is gone.
fn crash_and_lose_the_cache(o: Orrery, data: &std::path::Path) {
    let mut o = o;
    o.process.kill();
    o.process.check_errors();
    let cache = data.join("cache");
    assert!(cache.is_dir(), "the databases live in <data-dir>/cache");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_lost_cache_is_read_back_from_the_object_store() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start(data.path());
    let bearer = format!("Bearer {}", mint(&o));
    let id = publish(&o, &bearer, "bank", &wasm);
    call(&o, &bearer, "bank", "seed", "[4]");
    for i in 0..20u64 {
        let (from, to) = (1 + i % 4, 1 + (i + 1) % 4);
        call(
            &o,
            &bearer,
            "bank",
            "transfer",
            &format!("[{from}, {to}, 5]"),
        );
    }
    // A database deleted before the loss stays deleted.
    let scratch = publish(&o, &bearer, "scratch", &wasm);
    settle(&o, &bearer, "scratch", &scratch, 1000);
    let (status, body) = send(
        ureq::delete(&o.url("/v1/database/scratch")).set("Authorization", &bearer),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let first = settle(&o, &bearer, "bank", &id, 1000);
    // Account 1 gave 5 five times and got 5 five times.
    let before = balance(&o, &bearer, 1);
    assert_eq!(before, serde_json::json!([[1, 1_000_000]]));
    crash_and_lose_the_cache(o, data.path());

    let o = Orrery::start(data.path());
    o.process
        .wait_for_line("database read back from the object store");
    assert_eq!(balance(&o, &bearer, 1), before);
    let (status, _) = send(
        ureq::post(&o.url("/v1/database/scratch/sql")).set("Authorization", &bearer),
        Some(b"SELECT * FROM account"),
    );
    assert_eq!(status, 404, "a deleted database is not brought back");
    // New transactions are copied under the new generation.
    call(&o, &bearer, "bank", "transfer", "[1, 2, 7]");
    let second = settle(&o, &bearer, "bank", &id, 1001);
    assert!(second > first, "{second} > {first}");
    crash_and_lose_the_cache(o, data.path());

    let o = Orrery::start(data.path());
    assert_eq!(
        balance(&o, &bearer, 1),
        serde_json::json!([[1, 1_000_000 - 7]])
    );
    assert_eq!(
        balance(&o, &bearer, 2),
        serde_json::json!([[2, 1_000_000 + 7]])
    );
    o.stop();
}

// In `object-store` mode a write reported durable is in the object store:
// a confirmed SQL write returns only once it is shipped, so a crash right
// after it, with the cache lost, still finds it.
#[test]
fn in_object_store_mode_a_confirmed_write_survives_losing_the_host_at_once() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_with(data.path(), &["--durability", "object-store"]);
    let bearer = format!("Bearer {}", mint(&o));
    publish(&o, &bearer, "bank", &wasm);
    call(&o, &bearer, "bank", "seed", "[2]");
    for id in 10..15 {
        let (status, body) = send(
            ureq::post(&o.url("/v1/database/bank/sql")).set("Authorization", &bearer),
            Some(format!("INSERT INTO account (id, balance) VALUES ({id}, {id})").as_bytes()),
        );
        assert_eq!(status, 200, "{body}");
    }
    crash_and_lose_the_cache(o, data.path());
    let o = Orrery::start_with(data.path(), &["--durability", "object-store"]);
    for id in 10..15 {
        assert_eq!(balance(&o, &bearer, id), serde_json::json!([[id, id]]));
    }
    o.stop();
}

/// `method` on `path` with a bearer and a JSON or wasm body: status and body.
fn api(o: &Orrery, method: &str, path: &str, bearer: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut r = ureq::request(method, &o.url(path));
    if let Some(bearer) = bearer {
        r = r.set("Authorization", &format!("Bearer {bearer}"));
    }
    if path.starts_with("/api/") {
        r = r.set("Content-Type", "application/json");
    }
    send(r, Some(body))
}

// The durability mode is a database setting the control plane keeps:
// `orrery db create NAME --durability object-store` (here its API) makes
// that database's confirmed writes wait for the object store on a host
// whose default is `local`; an unknown mode is refused with the choices.
#[test]
fn a_database_created_in_object_store_mode_keeps_it_on_a_local_host() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_closed(data.path(), &[]);
    let signup =
        serde_json::json!({"email": "ops@example.com", "password": "correct horse battery"});
    let (status, body) = api(
        &o,
        "POST",
        "/api/v1/signup",
        None,
        signup.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    let session = session["session"].as_str().unwrap().to_owned();
    let (status, body) = api(
        &o,
        "POST",
        "/api/v1/tokens",
        Some(&session),
        br#"{"name": "ci", "scope": "deploy"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let (status, body) = api(
        &o,
        "POST",
        "/api/v1/databases",
        Some(&token),
        br#"{"name": "ledger", "durability": "eventually"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`local` or `object-store`"), "{body}");
    let (status, body) = api(
        &o,
        "POST",
        "/api/v1/databases",
        Some(&token),
        br#"{"name": "ledger", "durability": "object-store"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(body.contains(r#""durability":"object-store""#), "{body}");
    let (status, body) = api(
        &o,
        "PUT",
        "/v1/database/ledger?host_type=Wasm",
        Some(&token),
        &wasm,
    );
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    let id = reply["Success"]["database_identity"]
        .as_str()
        .unwrap()
        .to_owned();
    let meta =
        std::fs::read_to_string(data.path().join("cache").join(&id).join("database.json")).unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["durability"], "object-store", "{meta}");
    let bearer = format!("Bearer {token}");
    for id in 20..25 {
        let (status, body) = send(
            ureq::post(&o.url("/v1/database/ledger/sql")).set("Authorization", &bearer),
            Some(format!("INSERT INTO account (id, balance) VALUES ({id}, {id})").as_bytes()),
        );
        assert_eq!(status, 200, "{body}");
    }
    crash_and_lose_the_cache(o, data.path());
    let o = Orrery::start_closed(data.path(), &[]);
    for id in 20..25 {
        let (status, body) = send(
            ureq::post(&o.url("/v1/database/ledger/sql")).set("Authorization", &bearer),
            Some(format!("SELECT * FROM account WHERE id = {id}").as_bytes()),
        );
        assert_eq!(status, 200, "{body}");
        let rows: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(rows[0]["rows"], serde_json::json!([[id, id]]));
    }
    o.stop();
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_under(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

// `orrery backup create DB` takes a snapshot now and answers once the
// object store holds it; `orrery backup list DB --json` lists every backup
// newest first with its id, offset, time and size; a table that did not
// change between two backups is stored once. `orrery restore DB
// --snapshot ID | --offset N --into NEW` branches a new database holding
// exactly the state at that point, which serves like any other; `--at
// TIME` keeps every transaction committed by then.
#[test]
fn backups_are_taken_listed_and_restored_into_new_databases() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let cli = tempfile::tempdir().unwrap();
    let o = Orrery::start(data.path());
    let token = mint(&o);
    let bearer = format!("Bearer {token}");
    let id = publish(&o, &bearer, "bank", &wasm);
    let server = o.url("");
    let orrery = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &server, "--token", &token]);
        let run = support::run_cli(cli.path(), &all, &[], "");
        assert!(run.ok, "orrery {args:?}: {}", run.stderr);
        run.stdout
    };
    let out = orrery(&["backup", "list", "bank"]);
    assert!(out.contains("No backups of bank yet"), "{out}");

    call(&o, &bearer, "bank", "seed", "[3]");
    let out = orrery(&["backup", "create", "bank"]);
    assert!(out.starts_with("Backed up bank: backup "), "{out}");
    let objects = data
        .path()
        .join("objects")
        .join("db")
        .join(&id)
        .join("objects");
    let after_first = files_under(&objects);
    assert!(after_first > 1, "the snapshot's parts are in the store");
    call(&o, &bearer, "bank", "transfer", "[1, 2, 10]");
    orrery(&["backup", "create", "bank"]);
    let listed: Value =
        serde_json::from_str(&orrery(&["backup", "list", "bank", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for backup in listed {
        for key in ["id", "offset", "time", "size"] {
            assert!(!backup[key].is_null(), "{key} in {backup}");
        }
        assert!(backup["time"].as_str().unwrap().ends_with('Z'), "{backup}");
    }
    assert!(
        listed[0]["offset"].as_u64() > listed[1]["offset"].as_u64(),
        "newest first: {listed:?}"
    );
    // Only the changed table (and the snapshot metadata) were stored again.
    let after_second = files_under(&objects);
    assert!(
        after_second < 2 * after_first,
        "{after_second} objects after two backups of {after_first}"
    );

    // Restore: a backup, and right after a transaction, into new databases.
    call(&o, &bearer, "bank", "transfer", "[1, 2, 5]");
    let marker = settle(&o, &bearer, "bank", &id, 1000);
    // A time after the marker committed and before the next transfer did.
    let at = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    call(&o, &bearer, "bank", "transfer", "[1, 2, 1]");
    let first = listed[1]["id"].as_str().unwrap();
    let out = orrery(&[
        "restore",
        "bank",
        "--snapshot",
        first,
        "--into",
        "bank-first",
    ]);
    assert!(out.contains("into the new database bank-first"), "{out}");
    let marker_offset = marker.to_string();
    orrery(&[
        "restore",
        "bank",
        "--offset",
        &marker_offset,
        "--into",
        "bank-marker",
    ]);
    assert_eq!(
        balance_in(&o, &bearer, "bank-first", 1),
        serde_json::json!([[1, 1_000_000]])
    );
    assert_eq!(
        balance_in(&o, &bearer, "bank-marker", 1),
        serde_json::json!([[1, 1_000_000 - 15]]),
        "the transfer before the marker, not the one after"
    );
    assert_eq!(
        balance_in(&o, &bearer, "bank-marker", 1000),
        serde_json::json!([[1000, 0]])
    );
    let out = orrery(&["restore", "bank", "--at", &at, "--into", "bank-at"]);
    assert!(out.contains(&format!("as of offset {marker} ")), "{out}");
    assert_eq!(
        balance_in(&o, &bearer, "bank-at", 1),
        serde_json::json!([[1, 1_000_000 - 15]]),
        "every transaction committed by {at}, none after"
    );
    assert_eq!(
        balance_in(&o, &bearer, "bank", 1),
        serde_json::json!([[1, 1_000_000 - 16]])
    );
    // A restored database serves and is copied like any other.
    call(&o, &bearer, "bank-marker", "transfer", "[1, 2, 100]");
    assert_eq!(
        balance_in(&o, &bearer, "bank-marker", 1),
        serde_json::json!([[1, 1_000_000 - 115]])
    );
    // Refusals say why.
    let mut args = vec!["restore", "bank", "--offset", "5", "--into", "bank-first"];
    args.extend_from_slice(&["--server", &server, "--token", &token]);
    let taken = support::run_cli(cli.path(), &args, &[], "");
    assert!(
        !taken.ok && taken.stderr.contains("already is in use"),
        "{}",
        taken.stderr
    );
    let mut args = vec![
        "restore",
        "bank",
        "--offset",
        "999999",
        "--into",
        "bank-future",
    ];
    args.extend_from_slice(&["--server", &server, "--token", &token]);
    let beyond = support::run_cli(cli.path(), &args, &[], "");
    assert!(
        !beyond.ok && beyond.stderr.contains("history reaches offset"),
        "{}",
        beyond.stderr
    );
    o.stop();
}

/// Every row of `bank`'s accounts, sorted by id.
fn accounts(o: &Orrery, bearer: &str) -> Value {
    accounts_in(o, bearer, "bank")
}

/// Every row of `db`'s accounts, sorted by id.
fn accounts_in(o: &Orrery, bearer: &str, db: &str) -> Value {
    let (status, body) = send(
        ureq::post(&o.url(&format!("/v1/database/{db}/sql"))).set("Authorization", bearer),
        Some(b"SELECT * FROM account"),
    );
    assert_eq!(status, 200, "{db}: {body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    let mut rows = rows[0]["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|row| row[0].as_u64());
    Value::Array(rows)
}

// `orrery restore DB --offset N` without `--into` restores DB itself: it
// asks first (and refuses without a terminal or `--yes`), then replaces
// every row with the state right after transaction N in one transaction,
// closes every client with 1001 and the reason, and says how to undo it;
// a client that reconnects subscribes to the restored state whole. The
// undo restores the state it replaced exactly, and both survive the loss
// of the host's cache.
#[test]
fn a_restore_in_place_disconnects_clients_and_can_be_undone() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let cli = tempfile::tempdir().unwrap();
    let o = Orrery::start(data.path());
    let token = mint(&o);
    let bearer = format!("Bearer {token}");
    let id = publish(&o, &bearer, "bank", &wasm);
    let with_server = |o: &Orrery, args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend([
            "--server".into(),
            o.url(""),
            "--token".into(),
            token.clone(),
        ]);
        all
    };
    let orrery = |o: &Orrery, args: &[&str]| {
        let all = with_server(o, args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        support::run_cli(cli.path(), &all, &[], "")
    };

    call(&o, &bearer, "bank", "seed", "[4]");
    call(&o, &bearer, "bank", "transfer", "[1, 2, 7]");
    let good = settle(&o, &bearer, "bank", &id, 1000);
    let good_state = accounts(&o, &bearer);
    // The mistake: money moved, an account deleted, one added.
    call(&o, &bearer, "bank", "transfer", "[3, 4, 500]");
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/bank/sql")).set("Authorization", &bearer),
        Some(b"DELETE FROM account WHERE id = 2"),
    );
    assert_eq!(status, 200, "{body}");
    settle(&o, &bearer, "bank", &id, 2000);
    let bad_state = accounts(&o, &bearer);
    assert_ne!(
        good_state, bad_state,
        "canary: the mistake changed the data"
    );

    // A client subscribed before the restore.
    let subscribe = |o: &Orrery| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"));
        command
            .args(with_server(
                o,
                &["subscribe", "bank", "SELECT * FROM account"],
            ))
            .env("ORRERY_CONFIG_DIR", cli.path())
            .env("NO_COLOR", "1")
            .env_remove("ORRERY_TOKEN");
        support::Captured::spawn(command)
    };
    let before = subscribe(&o);
    before.wait_for_line(&format!(
        "Subscribed: {} rows now match.",
        bad_state.as_array().unwrap().len()
    ));

    // Without a terminal it must be confirmed; nothing changes.
    let good_offset = good.to_string();
    let refused = orrery(&o, &["restore", "bank", "--offset", &good_offset]);
    assert!(
        !refused.ok && refused.stderr.contains("pass --yes to confirm"),
        "{}",
        refused.stderr
    );
    assert_eq!(accounts(&o, &bearer), bad_state);

    let run = orrery(&o, &["restore", "bank", "--offset", &good_offset, "--yes"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("Restored bank in place as of offset {good} ")),
        "{}",
        run.stdout
    );
    assert_eq!(
        accounts(&o, &bearer),
        good_state,
        "the state at {good}, exactly"
    );
    before.wait_for_line("the server closed the subscription: 1001 database restored in place");
    let after = subscribe(&o);
    after.wait_for_line(&format!(
        "Subscribed: {} rows now match.",
        good_state.as_array().unwrap().len()
    ));
    drop(after);
    // The database serves on from the restored state.
    call(&o, &bearer, "bank", "transfer", "[1, 2, 1]");

    // The undo: the answer named the offset whose state the restore replaced.
    let undo = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("To undo: orrery restore bank --offset "))
        .and_then(|rest| rest.strip_suffix(" --yes"))
        .unwrap_or_else(|| panic!("no undo line in {}", run.stdout))
        .to_owned();
    let run = orrery(&o, &["restore", "bank", "--offset", &undo, "--yes"]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        accounts(&o, &bearer),
        bad_state,
        "the undo brings back what was replaced"
    );

    // Both restores are ordinary transactions of the one history.
    settle(&o, &bearer, "bank", &id, 3000);
    let expected = accounts(&o, &bearer);
    crash_and_lose_the_cache(o, data.path());
    let o = Orrery::start(data.path());
    o.process
        .wait_for_line("database read back from the object store");
    assert_eq!(accounts(&o, &bearer), expected);
    // Restoring in place needs the whole history in the store: a point past
    // it is refused and changes nothing.
    let run = orrery(&o, &["restore", "bank", "--offset", "999999", "--yes"]);
    assert!(
        !run.ok && run.stderr.contains("history reaches offset"),
        "{}",
        run.stderr
    );
    assert_eq!(accounts(&o, &bearer), expected);
    o.stop();
}

fn balance_in(o: &Orrery, bearer: &str, db: &str, account: u32) -> Value {
    let (status, body) = send(
        ureq::post(&o.url(&format!("/v1/database/{db}/sql"))).set("Authorization", bearer),
        Some(format!("SELECT * FROM account WHERE id = {account}").as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    rows[0]["rows"].clone()
}

// SIGKILL while writes are being uploaded, in `object-store` mode: every
// write that was answered survives the loss of the host's cache; the ones
// cut off were never answered.
#[test]
fn sigkill_during_uploads_loses_no_acknowledged_write() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_with(data.path(), &["--durability", "object-store"]);
    let bearer = format!("Bearer {}", mint(&o));
    publish(&o, &bearer, "bank", &wasm);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let (url, bearer, acknowledged) = (
                o.url("/v1/database/bank/sql"),
                bearer.clone(),
                acknowledged.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    let id = 10_000 + w * 10_000 + i;
                    let sent =
                        ureq::post(&url)
                            .set("Authorization", &bearer)
                            .send_string(&format!(
                                "INSERT INTO account (id, balance) VALUES ({id}, 1)"
                            ));
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            acknowledged.lock().unwrap().push(id)
                        }
                        // The server is gone: stop.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Kill once writes are flowing, in the middle of uploads.
    while acknowledged.lock().unwrap().len() < 200 {
        std::thread::yield_now();
    }
    crash_and_lose_the_cache(o, data.path());
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let o = Orrery::start_with(data.path(), &["--durability", "object-store"]);
    let (status, body) = send(
        ureq::post(&o.url("/v1/database/bank/sql")).set("Authorization", &bearer),
        Some(b"SELECT id FROM account"),
    );
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    let present: std::collections::HashSet<u64> = rows[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_u64().unwrap())
        .collect();
    let lost: Vec<u32> = acknowledged
        .iter()
        .copied()
        .filter(|id| !present.contains(&u64::from(*id)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    assert!(acknowledged.len() >= 200);
    o.stop();
}

/// [`api`] with a JSON body and answer.
fn api_json(
    o: &Orrery,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let (status, text) = api(o, method, path, bearer, body.to_string().as_bytes());
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

// An operator brings a database over from another deployment's object
// store, given by URL (`POST /api/v1/admin/restores`): at its newest point
// or at an offset, into a new database of the operator's account that
// serves and is copied like any other. Members may not; a database the
// store does not hold is refused and leaves no database behind.
#[test]
fn an_operator_restores_a_database_from_another_deployments_store() {
    let wasm = modules::module_bytes("bank");
    // The other deployment: one database, two points.
    let old = tempfile::tempdir().unwrap();
    let a = Orrery::start(old.path());
    let bearer = format!("Bearer {}", mint(&a));
    let id = publish(&a, &bearer, "bank", &wasm);
    call(&a, &bearer, "bank", "seed", "[3]");
    let seeded = settle(&a, &bearer, "bank", &id, 1000);
    let at_seed = accounts(&a, &bearer);
    call(&a, &bearer, "bank", "transfer", "[1, 2, 40]");
    settle(&a, &bearer, "bank", &id, 2000);
    let newest = accounts(&a, &bearer);
    assert_ne!(at_seed, newest, "canary: two different points");
    a.stop();
    let store = format!("file://{}", old.path().join("objects").display());

    let data = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple";
    let b = Orrery::start_closed(
        data.path(),
        &[
            "--operator-email",
            "op@example.com",
            "--operator-password",
            password,
        ],
    );
    b.process.wait_for_line("operator account ready");
    let (status, login) = api_json(
        &b,
        "POST",
        "/api/v1/login",
        None,
        serde_json::json!({"email": "op@example.com", "password": password}),
    );
    assert_eq!(status, 200, "{login}");
    let operator = login["session"].as_str().unwrap().to_owned();
    let (status, member) = api_json(
        &b,
        "POST",
        "/api/v1/signup",
        None,
        serde_json::json!({"email": "ann@example.com", "password": password}),
    );
    assert_eq!(status, 201, "{member}");
    let member = member["session"].as_str().unwrap().to_owned();
    let import = |bearer: &str, body: Value| {
        api_json(&b, "POST", "/api/v1/admin/restores", Some(bearer), body)
    };

    let (status, body) = import(
        &member,
        serde_json::json!({"store": store, "database": id, "into": "bank-a"}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = import(
        &operator,
        serde_json::json!({"store": store, "database": "ab".repeat(32), "into": "ghost"}),
    );
    assert_eq!(status, 503, "{body}");
    let (status, body) = api_json(
        &b,
        "GET",
        "/api/v1/databases/ghost",
        Some(&operator),
        Value::Null,
    );
    assert_eq!(status, 404, "a failed restore leaves no database: {body}");

    let (status, body) = import(
        &operator,
        serde_json::json!({"store": store, "database": id, "into": "bank-a"}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["database"], "bank-a");
    // The same from the CLI, at an offset.
    let cli = tempfile::tempdir().unwrap();
    let seeded = seeded.to_string();
    let server = b.url("");
    let run = support::run_cli(
        cli.path(),
        &[
            "restore",
            &id,
            "--from-store",
            &store,
            "--offset",
            &seeded,
            "--into",
            "bank-early",
            "--server",
            &server,
            "--token",
            &operator,
        ],
        &[],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "as of offset {seeded} into the new database bank-early"
        )),
        "{}",
        run.stdout
    );
    let operator_bearer = format!("Bearer {operator}");
    let rows = |db: &str| accounts_in(&b, &operator_bearer, db);
    assert_eq!(rows("bank-a"), newest);
    assert_eq!(rows("bank-early"), at_seed);
    // Into a customer's account, named by email: the customer owns it.
    let (status, body) = import(
        &operator,
        serde_json::json!({"store": store, "database": id, "into": "bank-ann", "account": "ann@example.com"}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api_json(
        &b,
        "GET",
        "/api/v1/databases/bank-ann",
        Some(&member),
        Value::Null,
    );
    assert_eq!(status, 200, "ann's database: {body}");
    let (status, body) = send(
        ureq::post(&b.url("/v1/database/bank-ann/sql"))
            .set("Authorization", &format!("Bearer {member}")),
        Some(b"DELETE FROM account WHERE id = 3"),
    );
    assert_eq!(status, 200, "ann owns it: {body}");
    let (status, body) = import(
        &operator,
        serde_json::json!({"store": store, "database": id, "into": "bank-nobody", "account": "nobody@example.com"}),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = api_json(
        &b,
        "GET",
        "/api/v1/databases/bank-nobody",
        Some(&operator),
        Value::Null,
    );
    assert_eq!(status, 404, "{body}");
    // The operator owns the copy: an owner's write works.
    let (status, body) = send(
        ureq::post(&b.url("/v1/database/bank-a/sql"))
            .set("Authorization", &format!("Bearer {operator}")),
        Some(b"DELETE FROM account WHERE id = 1"),
    );
    assert_eq!(status, 200, "{body}");
    let (status, audit) = api_json(&b, "GET", "/api/v1/audit", Some(&operator), Value::Null);
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "database.restore" && e["target"] == "bank-a"),
        "{audit}"
    );
    b.stop();
}

fn health(o: &Orrery) -> Value {
    let (status, body) = send(ureq::get(&o.url("/v1/health")), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until `done` holds of `/v1/health`, for at most a minute.
fn wait_for_health(o: &Orrery, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = health(o);
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "health never showed {what}: {now}"
        );
        std::thread::yield_now();
    }
}

// The object store failing under a `local` mode database (here its folder
// made unwritable: a file where the databases' folder was): transactions
// go on being answered, the failure shows in `/v1/health` and the metrics,
// and once the store is back the copy catches up, so losing the cache
// afterwards loses nothing.
#[test]
fn a_failing_store_shows_in_health_and_the_copy_catches_up() {
    let wasm = modules::module_bytes("bank");
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start(data.path());
    let bearer = format!("Bearer {}", mint(&o));
    let id = publish(&o, &bearer, "bank", &wasm);
    call(&o, &bearer, "bank", "seed", "[3]");
    settle(&o, &bearer, "bank", &id, 1000);
    let now = health(&o);
    assert_eq!(now["status"], "ok", "{now}");
    assert_eq!(
        now["object_store"]["failing"],
        serde_json::json!([]),
        "{now}"
    );

    let databases = data.path().join("objects").join("db");
    let away = data.path().join("objects").join("db.away");
    std::fs::rename(&databases, &away).unwrap();
    std::fs::write(&databases, b"not a folder").unwrap();
    for _ in 0..5 {
        call(&o, &bearer, "bank", "transfer", "[1, 2, 10]");
    }
    let now = wait_for_health(&o, "bank failing", |h| {
        h["object_store"]["failing"] == serde_json::json!(["bank"])
    });
    assert_eq!(now["status"], "degraded", "{now}");
    assert_eq!(o.metric("orrery_replica_failing", &id), Some(1));
    assert!(o.metric("orrery_replica_lag_transactions", &id) > Some(0));

    std::fs::remove_file(&databases).unwrap();
    std::fs::rename(&away, &databases).unwrap();
    wait_for_health(&o, "the copy healthy again", |h| h["status"] == "ok");
    settle(&o, &bearer, "bank", &id, 2000);
    let expected = accounts(&o, &bearer);
    assert_eq!(
        expected[0],
        serde_json::json!([1, 1_000_000 - 50]),
        "every transfer made during the failure"
    );
    crash_and_lose_the_cache(o, data.path());
    let o = Orrery::start(data.path());
    o.process
        .wait_for_line("database read back from the object store");
    assert_eq!(accounts(&o, &bearer), expected);
    o.stop();
}
