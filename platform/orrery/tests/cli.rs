//! End-to-end tests of the `orrery` developer commands against a live
//! `orrery start` shared by the tests of this binary (each test with its own
//! config directory, login and database names): servers and login, publish (a `.wasm` and a project
//! directory built by the CLI, with its progress on stderr), call, sql in
//! all three formats and interactively from stdin, subscribe with --count
//! and --duration, logs, describe, list, rename, delete, republishing with
//! a compatible and an incompatible change; bad input: one clear line and a
//! non-zero exit; and colours only on a terminal.

#[path = "../../../tests/support/handmade.rs"]
mod handmade;
#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};

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
    orrery_with_input(config, args, None)
}

/// Runs `orrery ARGS` with `input` on its stdin (none: an empty stdin). The
/// environment allows colours, so only the missing terminal keeps escape
/// codes out of the output, which this checks.
fn orrery_with_input(config: &Path, args: &[&str], input: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(args)
        .env("ORRERY_CONFIG_DIR", config)
        .env_remove("ORRERY_TOKEN")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(input.unwrap_or_default().as_bytes())
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let run = Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains("\x1b["),
            "escape codes without a terminal from {args:?}: {text:?}"
        );
    }
    run
}

/// Runs `orrery ARGS` under a pseudo-terminal (util-linux `script`), with
/// `NO_COLOR` set to `no_color` or unset; its terminal output (stdout and
/// stderr together) and whether it succeeded.
fn in_terminal(config: &Path, args: &[&str], no_color: Option<&str>) -> (bool, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_orrery"));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env("ORRERY_CONFIG_DIR", config)
        .env_remove("ORRERY_TOKEN")
        .env("TERM", "xterm-256color")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::null());
    match no_color {
        Some(value) => command.env("NO_COLOR", value),
        None => command.env_remove("NO_COLOR"),
    };
    let output = command.output().unwrap_or_else(|e| {
        panic!("the colour test needs util-linux `script` (apt-get install util-linux): {e}")
    });
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// `orrery ARGS`, which must succeed; its stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let run = orrery(config, args);
    assert!(run.ok, "orrery {args:?} failed: {}", run.stderr);
    run.stdout
}

/// `orrery ARGS`, which must fail with one `error:` line, the last one on
/// stderr (progress lines may come before it); that line.
fn fails(config: &Path, args: &[&str]) -> String {
    let run = orrery(config, args);
    assert!(!run.ok, "orrery {args:?} should fail: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "one error line for {args:?}: {}", run.stderr);
    let last = lines.last().unwrap();
    assert!(last.starts_with("error: "), "{}", run.stderr);
    last.to_string()
}

/// The server the tests of this binary share, with its data directory.
struct Shared {
    /// Dropped first: killed, and checked for unexpected ERROR lines.
    server: Orrery,
    data: tempfile::TempDir,
}

/// The running shared server, started by the first test that asks. It
/// lives while a test holds it: the last test to let go stops it (the
/// handle kills the child on drop, so no server outlives the binary), and
/// a later test starts a fresh one. Under cargo-nextest every test runs in
/// its own process, so each gets its own.
fn shared_server() -> Arc<Shared> {
    static SHARED: Mutex<Weak<Shared>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = slot.upgrade() {
        return shared;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Orrery::start(data.path());
    let shared = Arc::new(Shared { server, data });
    *slot = Arc::downgrade(&shared);
    shared
}

/// One test's view of the shared server: its own config directory with the
/// server added as `mine` (the default) and a fresh login.
struct Cli {
    shared: Arc<Shared>,
    config: tempfile::TempDir,
    url: String,
}

impl Cli {
    fn login() -> Cli {
        let shared = shared_server();
        let config = tempfile::tempdir().unwrap();
        let url = format!("http://{}", shared.server.addr);
        ok(config.path(), &["server", "add", "mine", &url, "--default"]);
        let login = ok(config.path(), &["login"]);
        assert!(
            login.starts_with(&format!("Logged in to {url} as ")),
            "{login}"
        );
        Cli {
            shared,
            config,
            url,
        }
    }

    fn config(&self) -> &Path {
        self.config.path()
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(self.config(), args)
    }

    fn fails(&self, args: &[&str]) -> String {
        fails(self.config(), args)
    }

    fn run(&self, args: &[&str]) -> Run {
        orrery(self.config(), args)
    }

    /// Publishes test module `module` (built) as database `name`.
    fn publish(&self, name: &str, module: &str) {
        let wasm = modules::module_wasm(module);
        let out = self.ok(&["publish", name, "--bin-path", wasm.to_str().unwrap()]);
        assert!(
            out.starts_with(&format!("created database {name} (")),
            "{out}"
        );
    }

    /// Publishes `chat` as `name` with one message, "hello, world".
    fn chat_with_a_message(&self, name: &str) {
        self.publish(name, "chat");
        self.ok(&["call", name, "send_message", "1", "\"hello, world\""]);
    }
}

// Protects `server add/list`, `login` and the token file's permissions.
#[test]
fn servers_and_login() {
    let cli = Cli::login();
    let servers = cli.ok(&["server", "list"]);
    assert!(
        servers.contains(&format!("* mine  {}", cli.url)),
        "{servers}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.config().join("cli.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is the owner's only");
    }
}

// Protects publishing a built module and a project the CLI builds itself:
// the progress on stderr, the one result line on stdout; and the refusal of
// a stock `parent/child` name before any request.
#[test]
fn publish_a_module_and_a_project() {
    let cli = Cli::login();
    let url = &cli.url;
    let chat = modules::module_wasm("chat");
    let run = cli.run(&["publish", "pub-chat", "--bin-path", chat.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("created database pub-chat ("),
        "{}",
        run.stdout
    );
    let kib = std::fs::metadata(&chat).unwrap().len().div_ceil(1024);
    assert_eq!(
        run.stderr,
        format!("Checking pub-chat on {url} …\nUploading {kib} KiB to {url} …\n")
    );
    let project = modules::modules_dir().join("bank");
    let run = cli.run(&[
        "publish",
        "pub-bank",
        "--project-path",
        project.to_str().unwrap(),
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("created database pub-bank ("),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("Building bank ")
            && run
                .stderr
                .contains(&format!("Checking pub-bank on {url} …"))
            && run.stderr.contains(&format!("KiB to {url} …")),
        "{}",
        run.stderr
    );
    let listed = cli.ok(&["list"]);
    assert!(
        listed.contains("pub-chat") && listed.contains("pub-bank"),
        "{listed}"
    );
    // A stock `parent/child` name is refused before any request: this
    // server address would not answer.
    let e = cli.fails(&[
        "publish",
        "game/eu",
        "-s",
        "http://127.0.0.1:9",
        "--bin-path",
        chat.to_str().unwrap(),
    ]);
    assert!(
        e.contains("`game/eu`") && e.contains("no child databases") && e.contains("plain name"),
        "{e}"
    );
}

// Protects calls with JSON arguments and `sql` in its three formats, the
// owner's writes, and the interactive prompt reading stdin.
#[test]
fn call_and_sql() {
    let cli = Cli::login();
    cli.publish("sql-chat", "chat");
    cli.ok(&["call", "sql-chat", "send_message", "1", "\"hello, world\""]);
    cli.ok(&["call", "sql-chat", "send_message", "1", "\"second\""]);

    // SQL in the three formats.
    let table = cli.ok(&["sql", "sql-chat", "SELECT id, text FROM message"]);
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
    let json: Value = serde_json::from_str(&cli.ok(&[
        "sql",
        "sql-chat",
        "SELECT id, text FROM message",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json[0]["text"], "hello, world");
    assert_eq!(json[1]["text"], "second");
    let csv = cli.ok(&[
        "sql",
        "sql-chat",
        "SELECT text FROM message",
        "--format",
        "csv",
    ]);
    assert_eq!(csv, "text\r\n\"hello, world\"\r\nsecond\r\n");
    // The owner may write.
    cli.ok(&[
        "sql",
        "sql-chat",
        "DELETE FROM message WHERE text = 'second'",
    ]);
    let count = cli.ok(&[
        "sql",
        "sql-chat",
        "SELECT COUNT(*) AS n FROM message",
        "--format",
        "csv",
    ]);
    assert_eq!(count, "n\r\n1\r\n");

    // The interactive prompt reads statements from stdin: one over two
    // lines, a failing one (an error line; the rest still runs), two on
    // one line, `\dt`, and nothing after `\q`. Without a terminal: no
    // prompts, and the failure fails the run.
    let script = "SELECT text\n  FROM message;\nSELEKT nonsense;\n\n\\dt\nSELECT COUNT(*) AS n FROM message; SELECT id FROM message;\n\\q\nSELECT 'after quit';\n";
    let run = orrery_with_input(
        cli.config(),
        &["sql", "sql-chat", "--interactive", "--format", "csv"],
        Some(script),
    );
    assert!(!run.ok, "a failed statement fails a piped run");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].starts_with("error: ") && errors[0].contains("SELEKT"),
        "{}",
        run.stderr
    );
    assert_eq!(errors[1], "error: 1 of 5 statements failed");
    assert_eq!(
        run.stdout,
        "text\r\n\"hello, world\"\r\n\
         name,kind,access\r\nchannel,table,public\r\nmessage,table,public\r\nprune_schedule,table,private\r\nuser,table,public\r\n\
         n\r\n1\r\n\
         id\r\n1\r\n"
    );
    // All well: exit 0; an unfinished statement at the end still runs.
    let run = orrery_with_input(
        cli.config(),
        &["sql", "sql-chat", "-i"],
        Some("\\h\nSELECT text FROM message"),
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(run.stdout.contains("\\dt"), "the help: {}", run.stdout);
    assert!(
        run.stdout.contains("hello, world") && run.stdout.ends_with("(1 row)\n"),
        "{}",
        run.stdout
    );
    // QUERY is required unless --interactive, and not allowed with it.
    let run = cli.run(&["sql", "sql-chat"]);
    assert!(!run.ok && run.stderr.contains("<QUERY>"), "{}", run.stderr);
    let run = cli.run(&["sql", "sql-chat", "SELECT 1", "-i"]);
    assert!(
        !run.ok && run.stderr.contains("cannot be used with"),
        "{}",
        run.stderr
    );
}

// Protects colours: on a terminal, errors and table headers are coloured,
// unless NO_COLOR says otherwise (and never without a terminal, which every
// other run here checks).
#[test]
fn colours_only_on_a_terminal() {
    let cli = Cli::login();
    cli.chat_with_a_message("colour-chat");
    let config = cli.config();
    let (ok_run, screen) = in_terminal(
        config,
        &["sql", "colour-chat", "SELECT text FROM message"],
        None,
    );
    assert!(ok_run, "{screen:?}");
    assert!(screen.contains("\x1b[1m text"), "a bold header: {screen:?}");
    let (failed, screen) = in_terminal(config, &["sql", "nowhere", "SELECT 1"], None);
    assert!(!failed, "{screen:?}");
    assert!(
        screen.contains("\x1b[1;31merror:\x1b[0m") && screen.contains("\x1b[2m (check the name"),
        "a red error and a dim hint: {screen:?}"
    );
    let (_, screen) = in_terminal(config, &["sql", "nowhere", "SELECT 1"], Some("1"));
    assert!(screen.contains("error: "), "{screen:?}");
    assert!(!screen.contains('\x1b'), "NO_COLOR: {screen:?}");
}

// Protects `subscribe`: each transaction's changes as one JSON line, with
// --count and --duration, and a bad query as one error line.
#[test]
fn subscribe() {
    let cli = Cli::login();
    cli.chat_with_a_message("sub-chat");
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args([
            "subscribe",
            "sub-chat",
            "SELECT * FROM message",
            "--count",
            "1",
        ])
        .env("ORRERY_CONFIG_DIR", cli.config())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(watcher.stderr.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut ready).unwrap();
    assert_eq!(ready.trim(), "Subscribed: 1 rows now match.");
    cli.ok(&["call", "sub-chat", "send_message", "1", "\"watched\""]);
    let watched = watcher.wait_with_output().unwrap();
    assert!(watched.status.success());
    let line: Value = serde_json::from_slice(&watched.stdout).unwrap();
    assert_eq!(line["message"]["inserts"][0]["text"], "watched");
    assert_eq!(line["message"]["deletes"], Value::Array(vec![]));
    // --duration is the behaviour under test here: it ends the run after
    // 0.3 s, in which nothing changed.
    let quiet = cli.ok(&[
        "subscribe",
        "sub-chat",
        "SELECT * FROM user",
        "--duration",
        "0.3",
    ]);
    assert!(quiet.is_empty(), "{quiet}");
    let e = cli.fails(&["subscribe", "sub-chat", "SELECT * FROM nowhere", "-n", "1"]);
    assert!(e.contains("nowhere"), "{e}");
}

// Protects a reducer's error as one line, found again by `logs` (with
// --level and -n), and `describe` of a database, a table and a reducer.
#[test]
fn logs_and_describe() {
    let cli = Cli::login();
    cli.publish("logs-chat", "chat");
    let e = cli.fails(&["call", "logs-chat", "send_message", "99", "\"lost\""]);
    assert!(e.contains("no channel 99"), "{e}");
    let logs = cli.ok(&["logs", "logs-chat", "-n", "100"]);
    assert!(logs.contains("no channel 99"), "{logs}");
    // --level error keeps ERROR and PANIC lines only: the failed call's
    // line is in it exactly when it was logged at one of those levels.
    let failed = logs.lines().find(|l| l.contains("no channel 99")).unwrap();
    let severe = cli.ok(&["logs", "logs-chat", "--level", "error"]);
    assert_eq!(
        severe.contains("no channel 99"),
        failed.contains("ERROR") || failed.contains("PANIC"),
        "{failed}\n--level error:\n{severe}"
    );
    assert!(
        severe
            .lines()
            .all(|l| l.contains("ERROR") || l.contains("PANIC")),
        "{severe}"
    );
    let last = cli.ok(&["logs", "logs-chat", "-n", "1"]);
    assert_eq!(last.lines().count(), 1, "{last}");

    let described = cli.ok(&["describe", "logs-chat"]);
    for expected in [
        "message (public)  id: u64 [primary key, auto-inc], channel_id: u64,",
        "user (public)  identity: Identity [primary key], name: Option<string>, online: bool",
        "send_message(channel_id: u64, text: string)",
        "prune_messages (scheduled)",
    ] {
        assert!(described.contains(expected), "{expected}:\n{described}");
    }
    let table = cli.ok(&["describe", "logs-chat", "table", "message"]);
    assert!(
        table.contains("channel_id  u64")
            && table.contains("message_channel_id_idx_btree  btree (channel_id)"),
        "{table}"
    );
    let reducer = cli.ok(&["describe", "logs-chat", "reducer", "prune_messages"]);
    assert!(
        reducer.contains("host only: scheduled") && reducer.contains("PruneSchedule"),
        "{reducer}"
    );
    let e = cli.fails(&["describe", "logs-chat", "table", "nope"]);
    assert!(e.contains("no table `nope`"), "{e}");
}

// Protects republishing: the same module is a compatible update, a module
// with other tables is refused and changes nothing, a compatible change
// shows its plan, and --clear-data needs a confirmation.
#[test]
fn republish() {
    let cli = Cli::login();
    let url = &cli.url;
    cli.chat_with_a_message("re-chat");
    let chat = modules::module_wasm("chat");
    let out = cli.ok(&["publish", "re-chat", "--bin-path", chat.to_str().unwrap()]);
    assert!(out.starts_with("updated database re-chat ("), "{out}");
    let bank = modules::module_wasm("bank");
    let refused = cli.fails(&["publish", "re-chat", "--bin-path", bank.to_str().unwrap()]);
    assert!(
        refused.contains("cannot keep the data")
            && refused.contains("message")
            && refused.contains("--clear-data"),
        "{refused}"
    );
    // --break-clients is accepted; an update that breaks no client needs
    // no confirmation either way.
    let out = cli.ok(&[
        "publish",
        "re-chat",
        "--break-clients",
        "--bin-path",
        chat.to_str().unwrap(),
    ]);
    assert!(out.starts_with("updated database re-chat ("), "{out}");
    // A compatible change shows its plan: chat-v2 adds to chat. It adds a
    // column, which disconnects every client: without a terminal to ask on
    // that needs --break-clients, and nothing changes without it.
    let v2 = modules::module_wasm("chat-v2");
    let e = cli.fails(&["publish", "re-chat", "--bin-path", v2.to_str().unwrap()]);
    assert!(
        e.contains("disconnects every client") && e.contains("--break-clients"),
        "{e}"
    );
    assert!(
        !cli.run(&["sql", "re-chat", "SELECT * FROM reaction"]).ok,
        "still chat, which has no table `reaction`"
    );
    let run = cli.run(&[
        "publish",
        "re-chat",
        "--break-clients",
        "--bin-path",
        v2.to_str().unwrap(),
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "Checking re-chat on {url} …\nMigration plan for re-chat:\n"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.ends_with(&format!(" KiB to {url} …\n")),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("Migration plan"), "{}", run.stdout);
    assert!(
        run.stdout.starts_with("updated database re-chat ("),
        "{}",
        run.stdout
    );
    let still = cli.ok(&[
        "sql",
        "re-chat",
        "SELECT text FROM message",
        "--format",
        "csv",
    ]);
    assert_eq!(still, "text\r\n\"hello, world\"\r\n");
    // --clear-data needs a confirmation; --yes gives it.
    let e = cli.fails(&[
        "publish",
        "re-chat",
        "--bin-path",
        bank.to_str().unwrap(),
        "--clear-data",
    ]);
    assert!(e.contains("--yes"), "{e}");
    let out = cli.ok(&[
        "publish",
        "re-chat",
        "--bin-path",
        bank.to_str().unwrap(),
        "--clear-data",
        "-y",
    ]);
    assert!(out.starts_with("updated database re-chat ("), "{out}");
    let accounts = cli.ok(&[
        "sql",
        "re-chat",
        "SELECT COUNT(*) AS n FROM account",
        "--format",
        "csv",
    ]);
    assert!(accounts.starts_with("n\r\n"), "now a bank: {accounts}");
}

// Protects rename (the old name stops resolving) and delete (confirmed).
#[test]
fn rename_and_delete() {
    let cli = Cli::login();
    cli.publish("ren-bank", "bank");
    cli.ok(&["rename", "ren-bank", "--to", "ren-vault"]);
    let e = cli.fails(&["sql", "ren-bank", "SELECT * FROM account"]);
    assert!(e.contains("orrery list"), "{e}");
    cli.ok(&["sql", "ren-vault", "SELECT COUNT(*) AS n FROM account"]);
    let e = cli.fails(&["delete", "ren-vault"]);
    assert!(e.contains("--yes"), "{e}");
    cli.ok(&["sql", "ren-vault", "SELECT COUNT(*) AS n FROM account"]);
    cli.ok(&["delete", "ren-vault", "--yes"]);
    let e = cli.fails(&["describe", "ren-vault"]);
    assert!(e.contains("orrery list"), "{e}");
}

// Protects the schema extractor the stock `spacetime generate` can run, and
// `generate`'s errors for a missing module or database.
#[test]
fn extract_schema_and_generate_errors() {
    let cli = Cli::login();
    let chat = modules::module_wasm("chat");
    let schema: Value =
        serde_json::from_str(&cli.ok(&["extract-schema", chat.to_str().unwrap()])).unwrap();
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
    let e = cli.fails(&["extract-schema", "/no/such/module.wasm"]);
    assert!(e.contains("/no/such/module.wasm"), "{e}");
    let not_wasm = cli.config().join("cli.json");
    let e = cli.fails(&["extract-schema", not_wasm.to_str().unwrap()]);
    assert!(e.contains("not a usable module"), "{e}");
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let e = cli.fails(&[
        "generate",
        "-l",
        "ts",
        "-o",
        out,
        "--bin-path",
        "/no/such.wasm",
    ]);
    assert!(e.contains("/no/such.wasm"), "{e}");
    let e = cli.fails(&["generate", "-l", "ts", "-o", out, "-d", "nowhere"]);
    assert!(e.contains("orrery list"), "{e}");
}

// Protects bad input: one line, a non-zero exit, nothing changed.
#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let cli = Cli::login();
    cli.chat_with_a_message("bad-chat");
    let e = cli.fails(&["publish", "x", "--bin-path", "/no/such/file.wasm"]);
    assert!(e.contains("/no/such/file.wasm"), "{e}");
    let e = cli.fails(&["call", "bad-chat", "no_such_reducer"]);
    assert!(e.contains("no_such_reducer"), "{e}");
    let e = cli.fails(&["call", "bad-chat", "send_message", "1", "not json"]);
    assert!(e.contains("argument 2") && e.contains("not JSON"), "{e}");
    let e = cli.fails(&["sql", "nowhere", "SELECT 1"]);
    assert!(e.contains("orrery list"), "{e}");
    let e = cli.fails(&["sql", "bad-chat", "SELEKT"]);
    assert!(e.contains("SELEKT"), "{e}");
    let e = cli.fails(&[
        "sql",
        "-s",
        "http://127.0.0.1:9",
        "bad-chat",
        "SELECT * FROM message",
    ]);
    assert!(e.contains("cannot reach http://127.0.0.1:9"), "{e}");
    let e = cli.fails(&["sql", "-s", "nonesuch", "bad-chat", "SELECT 1"]);
    assert!(e.contains("no server named `nonesuch`"), "{e}");
    // Nothing changed: no database `x`, the one message is still there.
    let e = cli.fails(&["describe", "x"]);
    assert!(e.contains("orrery list"), "{e}");
    let csv = cli.ok(&[
        "sql",
        "bad-chat",
        "SELECT text FROM message",
        "--format",
        "csv",
    ]);
    assert_eq!(csv, "text\r\n\"hello, world\"\r\n");
}

// Protects the token checks: a token this server did not sign, and an
// expired one signed by its own key, each ask to `orrery login` again.
#[test]
fn foreign_and_expired_tokens_ask_for_a_login() {
    let cli = Cli::login();
    cli.publish("tok-chat", "chat");
    let config = cli.config();
    let foreign = tempfile::tempdir().unwrap();
    let other = orrery_edge::auth::Keys::load_or_create(&foreign.path().join("keys"))
        .unwrap()
        .mint_anonymous(0)
        .unwrap();
    let mut file: Value =
        serde_json::from_slice(&std::fs::read(config.join("cli.json")).unwrap()).unwrap();
    file["servers"]["mine"]["token"] = Value::String(other.token);
    std::fs::write(config.join("cli.json"), serde_json::to_vec(&file).unwrap()).unwrap();
    let e = cli.fails(&["sql", "tok-chat", "SELECT * FROM message"]);
    assert!(e.contains("orrery login"), "{e}");
    let keys =
        orrery_edge::auth::Keys::load_or_create(&cli.shared.data.path().join("keys")).unwrap();
    let minted = keys.mint_anonymous(0).unwrap();
    let claims = keys.validate(&minted.token, 0).unwrap();
    let expired = keys.websocket_token(&claims, 1_000).unwrap();
    file["servers"]["mine"]["token"] = Value::String(expired);
    std::fs::write(config.join("cli.json"), serde_json::to_vec(&file).unwrap()).unwrap();
    let e = cli.fails(&["sql", "tok-chat", "SELECT * FROM message"]);
    assert!(e.contains("expired") && e.contains("orrery login"), "{e}");
    // A fresh login works again.
    cli.ok(&["login"]);
    cli.ok(&["sql", "tok-chat", "SELECT * FROM message"]);
}

/// Writes `wasm` into `cli`'s config directory as `name.wasm`; its path.
fn wasm_file(cli: &Cli, name: &str, wasm: &[u8]) -> String {
    let path = cli.config().join(format!("{name}.wasm"));
    std::fs::write(&path, wasm).unwrap();
    path.to_str().unwrap().to_owned()
}

// Protects the stock CLI's `--delete-data[=always|on-conflict|never]` (and
// its alias `--clear-database`): `never` refuses an update that cannot keep
// the data, `on-conflict` keeps the data of a compatible update and
// replaces it (confirmed) only on a conflict, `always` replaces it every
// time, and a mode needs a database name.
#[test]
fn delete_data_modes() {
    let cli = Cli::login();
    cli.chat_with_a_message("mode-chat");
    let chat = modules::module_wasm("chat");
    let chat = chat.to_str().unwrap();
    let v2 = modules::module_wasm("chat-v2");
    let v2 = v2.to_str().unwrap();
    let bank = modules::module_wasm("bank");
    let bank = bank.to_str().unwrap();
    let messages = |cli: &Cli| {
        cli.ok(&[
            "sql",
            "mode-chat",
            "SELECT text FROM message",
            "--format",
            "csv",
        ])
    };

    let out = cli.ok(&[
        "publish",
        "mode-chat",
        "--delete-data=on-conflict",
        "--break-clients",
        "--bin-path",
        v2,
    ]);
    assert!(out.starts_with("updated database mode-chat ("), "{out}");
    assert_eq!(messages(&cli), "text\r\n\"hello, world\"\r\n", "kept");

    let e = cli.fails(&[
        "publish",
        "mode-chat",
        "--delete-data=never",
        "--bin-path",
        bank,
    ]);
    assert!(e.contains("cannot keep the data"), "{e}");
    let e = cli.fails(&[
        "publish",
        "mode-chat",
        "--delete-data=on-conflict",
        "--bin-path",
        bank,
    ]);
    assert!(e.contains("--yes"), "a conflict asks first: {e}");
    assert_eq!(messages(&cli), "text\r\n\"hello, world\"\r\n", "unchanged");
    let out = cli.ok(&[
        "publish",
        "mode-chat",
        "--delete-data=on-conflict",
        "-y",
        "--bin-path",
        bank,
    ]);
    assert!(out.starts_with("updated database mode-chat ("), "{out}");
    cli.ok(&["sql", "mode-chat", "SELECT COUNT(*) AS n FROM account"]);

    // The alias and `always` (the flag alone): replaced even when the
    // update could keep the data.
    cli.ok(&[
        "publish",
        "mode-chat",
        "--clear-database",
        "-y",
        "--bin-path",
        chat,
    ]);
    cli.ok(&["call", "mode-chat", "send_message", "1", "\"again\""]);
    assert_eq!(messages(&cli), "text\r\nagain\r\n");
    let e = cli.fails(&["publish", "mode-chat", "--delete-data", "--bin-path", chat]);
    assert!(e.contains("--yes"), "{e}");
    assert_eq!(messages(&cli), "text\r\nagain\r\n", "unchanged");
    cli.ok(&[
        "publish",
        "mode-chat",
        "--delete-data=always",
        "-y",
        "--bin-path",
        chat,
    ]);
    assert_eq!(messages(&cli), "text\r\n", "init ran again on empty tables");

    let e = cli.fails(&["publish", "--delete-data", "-y", "--bin-path", chat]);
    assert!(e.contains("--delete-data needs the name"), "{e}");
    // An unknown mode is clap's usage error, naming the modes.
    let run = cli.run(&[
        "publish",
        "mode-chat",
        "--delete-data=sometimes",
        "--bin-path",
        chat,
    ]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains("'sometimes'") && run.stderr.contains("always, on-conflict, never"),
        "{}",
        run.stderr
    );
}

// Protects `--break-clients` for an update that changes row-level security
// (refused without it, "Disconnecting all users" in the database's log with
// it), the confirmation of a major version upgrade (a 1.x module replaced by
// a 2.x one), and `describe` after a failed first publish.
#[test]
fn break_clients_major_version_and_a_failed_first_publish() {
    let cli = Cli::login();
    cli.publish("brk-rules", "rls");
    let v2 = modules::module_wasm("rls-v2");
    let v2 = v2.to_str().unwrap();
    let e = cli.fails(&["publish", "brk-rules", "--bin-path", v2]);
    assert!(e.contains("--break-clients"), "{e}");
    let before = cli.ok(&["logs", "brk-rules"]);
    assert!(!before.contains("Disconnecting all users"), "{before}");
    let out = cli.ok(&["publish", "brk-rules", "--break-clients", "--bin-path", v2]);
    assert!(out.starts_with("updated database brk-rules ("), "{out}");
    let after = cli.ok(&["logs", "brk-rules"]);
    assert!(after.contains("Disconnecting all users"), "{after}");

    let v9 = wasm_file(&cli, "notes-v9", &handmade::v9_module());
    let v10 = wasm_file(&cli, "notes-v10", &handmade::v10_module());
    let out = cli.ok(&["publish", "brk-notes", "--bin-path", &v9]);
    assert!(out.starts_with("created database brk-notes ("), "{out}");
    let e = cli.fails(&["publish", "brk-notes", "--bin-path", &v10]);
    assert!(e.contains("1.x") && e.contains("--yes"), "{e}");
    let typed = orrery_with_input(
        cli.config(),
        &["publish", "brk-notes", "--bin-path", &v10],
        Some("upgrade\n"),
    );
    assert!(!typed.ok, "no terminal, no question: {}", typed.stdout);
    let out = cli.ok(&["publish", "brk-notes", "-y", "--bin-path", &v10]);
    assert!(out.starts_with("updated database brk-notes ("), "{out}");
    // Now a 2.x module: no confirmation any more.
    let out = cli.ok(&["publish", "brk-notes", "--bin-path", &v10]);
    assert!(out.starts_with("updated database brk-notes ("), "{out}");

    let traps = wasm_file(&cli, "init-traps", &handmade::init_traps());
    cli.fails(&["publish", "brk-doomed", "--bin-path", &traps]);
    let e = cli.fails(&["describe", "brk-doomed"]);
    assert!(e.contains("No such database"), "{e}");
    let listed = cli.ok(&["list"]);
    assert!(!listed.contains("brk-doomed"), "{listed}");
    cli.publish("brk-doomed", "chat");
    cli.ok(&["describe", "brk-doomed"]);
}

// Protects names with the stock CLI's argument shapes: a reducer and a
// procedure called by source or canonical name (`add_u8` / `add_u_8`),
// tables and columns queried and subscribed to by either name, answers in
// canonical names, and `describe` listing the canonical names.
#[test]
fn call_sql_and_subscribe_by_source_or_canonical_name() {
    let cli = Cli::login();
    cli.publish("names-cli", "names");
    cli.ok(&["call", "names-cli", "add_u8", "7", "\"seven\""]);
    cli.ok(&["call", "names-cli", "add_u_8", "8", "\"eight\""]);
    assert_eq!(cli.ok(&["call", "names-cli", "double_u8", "4"]).trim(), "8");
    assert_eq!(
        cli.ok(&["call", "names-cli", "double_u_8", "5"]).trim(),
        "10"
    );
    let e = cli.fails(&["call", "names-cli", "add_u_9", "1", "\"x\""]);
    assert!(e.contains("add_u_9"), "{e}");

    let canonical = cli.ok(&["sql", "names-cli", "SELECT * FROM t_1"]);
    let source = cli.ok(&["sql", "names-cli", "SELECT * FROM t1"]);
    assert_eq!(canonical, source);
    let header: Vec<&str> = canonical
        .lines()
        .next()
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(header, ["id", "player_id_2", "already_snake"]);
    assert!(
        canonical.contains("seven") && canonical.ends_with("(2 rows)\n"),
        "{canonical}"
    );
    let json: Value = serde_json::from_str(&cli.ok(&[
        "sql",
        "names-cli",
        "SELECT playerID2 FROM t1 WHERE playerID2 = 8",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json, serde_json::json!([{"player_id_2": 8}]));

    let mut watcher = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args([
            "subscribe",
            "names-cli",
            "SELECT * FROM t1 WHERE playerID2 = 9",
            "--count",
            "1",
        ])
        .env("ORRERY_CONFIG_DIR", cli.config())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(watcher.stderr.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut ready).unwrap();
    assert_eq!(ready.trim(), "Subscribed: 0 rows now match.");
    cli.ok(&["call", "names-cli", "add_u_8", "9", "\"nine\""]);
    let watched = watcher.wait_with_output().unwrap();
    assert!(watched.status.success());
    let line: Value = serde_json::from_slice(&watched.stdout).unwrap();
    assert_eq!(line["t_1"]["inserts"][0]["player_id_2"], 9);
    assert_eq!(line["t_1"]["inserts"][0]["already_snake"], "nine");

    let described = cli.ok(&["describe", "names-cli"]);
    for name in [
        "t_1",
        "http_server",
        "CustomName",
        "add_u_8",
        "explicitReducer",
        "double_u_8",
    ] {
        assert!(described.contains(name), "{name}: {described}");
    }
}
