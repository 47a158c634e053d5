//! End-to-end test of the `orrery` developer commands against a live
//! `orrery start`: servers and login, publish (a `.wasm` and a project
//! directory built by the CLI), call, sql in all three formats, subscribe
//! with --count and --duration, logs,
//! describe, list, rename, delete, republishing with a compatible and an
//! incompatible change; and bad input: one clear line and a non-zero exit.

#[path = "../../../tenant-host/tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use support::Orrery;

/// What one `orrery` command did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `orrery ARGS` with its config in `config`.
fn orrery(config: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(args)
        .env("ORRERY_CONFIG_DIR", config)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `orrery ARGS`, which must succeed; its stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let run = orrery(config, args);
    assert!(run.ok, "orrery {args:?} failed: {}", run.stderr);
    run.stdout
}

/// `orrery ARGS`, which must fail with one `error:` line; that line.
fn fails(config: &Path, args: &[&str]) -> String {
    let run = orrery(config, args);
    assert!(!run.ok, "orrery {args:?} should fail: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}: {}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", run.stderr);
    lines[0].to_owned()
}

#[test]
fn the_cli_drives_a_live_server() {
    let data = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path();
    let server = Orrery::start(data.path());
    let url = format!("http://{}", server.addr);

    ok(config, &["server", "add", "mine", &url, "--default"]);
    let servers = ok(config, &["server", "list"]);
    assert!(servers.contains(&format!("* mine  {url}")), "{servers}");
    let login = ok(config, &["login"]);
    assert!(
        login.starts_with(&format!("Logged in to {url} as ")),
        "{login}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.join("cli.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is the owner's only");
    }

    // Publish a built module, and a project the CLI builds itself.
    let chat = modules::module_wasm("chat");
    let out = ok(
        config,
        &["publish", "chat", "--bin-path", chat.to_str().unwrap()],
    );
    assert!(out.starts_with("created database chat ("), "{out}");
    let project = modules::modules_dir().join("bank");
    let out = ok(
        config,
        &[
            "publish",
            "bank",
            "--project-path",
            project.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with("created database bank ("), "{out}");

    // Calls take JSON arguments.
    ok(
        config,
        &["call", "chat", "send_message", "1", "\"hello, world\""],
    );
    ok(config, &["call", "chat", "send_message", "1", "\"second\""]);

    // SQL in the three formats.
    let table = ok(config, &["sql", "chat", "SELECT id, text FROM message"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split('|').map(str::trim).collect::<Vec<_>>(),
        ["id", "text"]
    );
    assert!(lines[1].starts_with("---"), "{table}");
    assert!(
        table.contains("hello, world") && table.ends_with("(2 rows)\n"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ok(
        config,
        &[
            "sql",
            "chat",
            "SELECT id, text FROM message",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(json[0]["text"], "hello, world");
    assert_eq!(json[1]["text"], "second");
    let csv = ok(
        config,
        &["sql", "chat", "SELECT text FROM message", "--format", "csv"],
    );
    assert_eq!(csv, "text\r\n\"hello, world\"\r\nsecond\r\n");
    // The owner may write.
    ok(
        config,
        &["sql", "chat", "DELETE FROM message WHERE text = 'second'"],
    );
    let count = ok(
        config,
        &[
            "sql",
            "chat",
            "SELECT COUNT(*) AS n FROM message",
            "--format",
            "csv",
        ],
    );
    assert_eq!(count, "n\r\n1\r\n");

    // Subscribe prints each transaction's changes as one JSON line.
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["subscribe", "chat", "SELECT * FROM message", "--count", "1"])
        .env("ORRERY_CONFIG_DIR", config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(watcher.stderr.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut ready).unwrap();
    assert_eq!(ready.trim(), "Subscribed: 1 rows now match.");
    ok(
        config,
        &["call", "chat", "send_message", "1", "\"watched\""],
    );
    let watched = watcher.wait_with_output().unwrap();
    assert!(watched.status.success());
    let line: Value = serde_json::from_slice(&watched.stdout).unwrap();
    assert_eq!(line["message"]["inserts"][0]["text"], "watched");
    assert_eq!(line["message"]["deletes"], Value::Array(vec![]));
    let quiet = ok(
        config,
        &[
            "subscribe",
            "chat",
            "SELECT * FROM user",
            "--duration",
            "0.3",
        ],
    );
    assert!(quiet.is_empty(), "{quiet}");
    let e = fails(
        config,
        &["subscribe", "chat", "SELECT * FROM nowhere", "-n", "1"],
    );
    assert!(e.contains("nowhere"), "{e}");
    ok(
        config,
        &["sql", "chat", "DELETE FROM message WHERE text = 'watched'"],
    );

    // A reducer's error is one line; the host logs it, and `logs` shows it.
    let e = fails(config, &["call", "chat", "send_message", "99", "\"lost\""]);
    assert!(e.contains("no channel 99"), "{e}");
    let logs = ok(config, &["logs", "chat", "-n", "100"]);
    assert!(logs.contains("no channel 99"), "{logs}");
    let severe = ok(config, &["logs", "chat", "--level", "error"]);
    assert!(
        severe
            .lines()
            .all(|l| l.contains("ERROR") || l.contains("PANIC")),
        "{severe}"
    );
    let last = ok(config, &["logs", "chat", "-n", "1"]);
    assert_eq!(last.lines().count(), 1, "{last}");

    let described = ok(config, &["describe", "chat"]);
    assert!(described.contains("message (public)"), "{described}");
    assert!(
        described.contains("send_message(channel_id, text)"),
        "{described}"
    );
    let listed = ok(config, &["list"]);
    assert!(
        listed.contains("chat") && listed.contains("bank"),
        "{listed}"
    );

    // Republishing: the same module is a compatible update; a different
    // module with other tables is refused and changes nothing.
    let out = ok(
        config,
        &["publish", "chat", "--bin-path", chat.to_str().unwrap()],
    );
    assert!(out.starts_with("updated database chat ("), "{out}");
    let bank = modules::module_wasm("bank");
    let refused = fails(
        config,
        &["publish", "chat", "--bin-path", bank.to_str().unwrap()],
    );
    assert!(
        refused.contains("cannot keep the data")
            && refused.contains("message")
            && refused.contains("--clear-data"),
        "{refused}"
    );
    // A compatible change shows its plan: chat-v2 adds to chat.
    let v2 = modules::module_wasm("chat-v2");
    let run = orrery(
        config,
        &["publish", "chat", "--bin-path", v2.to_str().unwrap()],
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("Migration plan for chat:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.starts_with("updated database chat ("),
        "{}",
        run.stdout
    );
    let still = ok(
        config,
        &["sql", "chat", "SELECT text FROM message", "--format", "csv"],
    );
    assert_eq!(still, "text\r\n\"hello, world\"\r\n");
    // --clear-data needs a confirmation; --yes gives it.
    let e = fails(
        config,
        &[
            "publish",
            "chat",
            "--bin-path",
            bank.to_str().unwrap(),
            "--clear-data",
        ],
    );
    assert!(e.contains("--yes"), "{e}");
    let out = ok(
        config,
        &[
            "publish",
            "chat",
            "--bin-path",
            bank.to_str().unwrap(),
            "--clear-data",
            "-y",
        ],
    );
    assert!(out.starts_with("updated database chat ("), "{out}");

    // Rename, then delete (confirmed).
    ok(config, &["rename", "bank", "--to", "vault"]);
    fails(config, &["sql", "bank", "SELECT * FROM account"]);
    ok(
        config,
        &["sql", "vault", "SELECT COUNT(*) AS n FROM account"],
    );
    let e = fails(config, &["delete", "vault"]);
    assert!(e.contains("--yes"), "{e}");
    ok(config, &["delete", "vault", "--yes"]);
    let e = fails(config, &["describe", "vault"]);
    assert!(e.contains("orrery list"), "{e}");

    // The schema extractor the stock `spacetime generate` can run.
    let schema: Value =
        serde_json::from_str(&ok(config, &["extract-schema", chat.to_str().unwrap()])).unwrap();
    let sections = schema["V10"]["sections"].as_array().unwrap();
    let tables: Vec<&str> = sections
        .iter()
        .filter_map(|s| s["Tables"].as_array())
        .flatten()
        .filter_map(|t| t["source_name"].as_str())
        .collect();
    assert!(
        tables.contains(&"message") && tables.contains(&"user"),
        "{tables:?}"
    );
    let e = fails(config, &["extract-schema", "/no/such/module.wasm"]);
    assert!(e.contains("/no/such/module.wasm"), "{e}");
    let not_wasm = config.join("cli.json");
    let e = fails(config, &["extract-schema", not_wasm.to_str().unwrap()]);
    assert!(e.contains("not a usable module"), "{e}");

    // Bad input: one line, non-zero exit, nothing changed.
    let e = fails(
        config,
        &["publish", "x", "--bin-path", "/no/such/file.wasm"],
    );
    assert!(e.contains("/no/such/file.wasm"), "{e}");
    let e = fails(config, &["call", "chat", "no_such_reducer"]);
    assert!(e.contains("no_such_reducer"), "{e}");
    let e = fails(config, &["call", "chat", "send_message", "1", "not json"]);
    assert!(e.contains("argument 2") && e.contains("not JSON"), "{e}");
    let e = fails(config, &["sql", "nowhere", "SELECT 1"]);
    assert!(e.contains("orrery list"), "{e}");
    let e = fails(config, &["sql", "chat", "SELEKT"]);
    assert!(!e.is_empty());
    let e = fails(
        config,
        &[
            "sql",
            "-s",
            "http://127.0.0.1:9",
            "chat",
            "SELECT * FROM message",
        ],
    );
    assert!(e.contains("cannot reach http://127.0.0.1:9"), "{e}");
    let e = fails(config, &["sql", "-s", "nonesuch", "chat", "SELECT 1"]);
    assert!(e.contains("no server named `nonesuch`"), "{e}");
    // A token this server did not sign.
    let foreign = tempfile::tempdir().unwrap();
    let other = tenant_host::auth::Keys::load_or_create(&foreign.path().join("keys"))
        .unwrap()
        .mint_anonymous(0)
        .unwrap();
    let mut file: Value =
        serde_json::from_slice(&std::fs::read(config.join("cli.json")).unwrap()).unwrap();
    file["servers"]["mine"]["token"] = Value::String(other.token);
    std::fs::write(config.join("cli.json"), serde_json::to_vec(&file).unwrap()).unwrap();
    let e = fails(config, &["sql", "chat", "SELECT * FROM message"]);
    assert!(e.contains("orrery login"), "{e}");

    server.stop();
}
