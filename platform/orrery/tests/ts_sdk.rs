//! The stock TypeScript SDK (npm `spacetimedb@2.10.1`) as a real client of
//! `orrery start`, through bindings `orrery generate` writes:
//! - chat bindings from the module's `.wasm`, and the same from the running
//!   database's schema, which must be identical;
//! - abi-coverage bindings (enums, nested types, views, procedures,
//!   multi-column indexes, private tables) from the running database;
//! - `tsc --noEmit` over both and the tests using them;
//! - tests/ts/chat.test.ts (connect, subscribe, reducers, two clients,
//!   errors, reconnect) and tests/ts/abi.test.ts (arguments of every shape,
//!   views, procedures) run with Node.
//!
//! `./scripts/test` installs the npm packages first (`npm ci` in tests/ts).

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::{repo_root, run};

/// `orrery ARGS` with its config in `config`, to success.
fn orrery(config: &Path, args: &[&str]) -> String {
    run(
        &format!("orrery {args:?}"),
        Command::new(env!("CARGO_BIN_EXE_orrery"))
            .args(args)
            .env("ORRERY_CONFIG_DIR", config),
    )
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

#[test]
fn stock_typescript_sdk_drives_modules_through_generated_bindings() {
    let ts_dir = repo_root().join("tests/ts");
    assert!(
        ts_dir.join("node_modules/spacetimedb").is_dir(),
        "the npm packages are missing: run `npm ci` in {} (./scripts/test does)",
        ts_dir.display()
    );
    let chat_wasm = modules::module_wasm("chat");
    let abi_wasm = modules::module_wasm("abi-coverage");
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let server = support::Orrery::start(data.path());
    let base = format!("http://{}", server.addr);
    let config = config.path();

    orrery(config, &["server", "add", "test", &base, "--default"]);
    let chat = chat_wasm.to_str().unwrap();
    let abi = abi_wasm.to_str().unwrap();
    orrery(config, &["publish", "ts-chat", "--bin-path", chat]);
    orrery(config, &["publish", "ts-abi", "--bin-path", abi]);
    let token = {
        let saved: serde_json::Value =
            serde_json::from_str(&read(config, "cli.json")).expect("the CLI's config is JSON");
        saved["servers"]["test"]["token"]
            .as_str()
            .expect("publish saved a token")
            .to_owned()
    };

    // Bindings from the wasm, and from the running database.
    let generated = ts_dir.join("generated");
    let _ = std::fs::remove_dir_all(&generated);
    let chat_out = generated.join("chat");
    let abi_out = generated.join("abi-coverage");
    let chat_from_db = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    orrery(config, &["generate", "--lang", "typescript", "--bin-path", chat, "--out-dir", chat_out.to_str().unwrap()]);
    #[rustfmt::skip]
    orrery(config, &["generate", "-l", "ts", "-d", "ts-chat", "-o", chat_from_db.path().to_str().unwrap()]);
    #[rustfmt::skip]
    orrery(config, &["generate", "-l", "ts", "-d", "ts-abi", "--include-private", "-o", abi_out.to_str().unwrap()]);
    for file in ["index.ts", "types.ts"] {
        assert_eq!(
            read(&chat_out, file),
            read(chat_from_db.path(), file),
            "{file} differs between the wasm and the database's schema"
        );
    }
    let abi_index = read(&abi_out, "index.ts");
    for expected in [
        "name: \"slot\"", // a private table, with --include-private
        "myNotes: __table({ name: \"my_notes\", public: true }",
        "accessor: \"byGrpRank\", algorithm: \"btree\", columns: [\"grp\", \"rank\"]",
        "__procedureSchema(\"proc_sleep\", { micros: __t.i64() }, SleepResult)",
    ] {
        assert!(
            abi_index.contains(expected),
            "{expected} missing:\n{abi_index}"
        );
    }
    let chat_index = read(&chat_out, "index.ts");
    assert!(
        !chat_index.contains("prune_messages") && !chat_index.contains("client_connected"),
        "scheduled and lifecycle reducers are not for clients:\n{chat_index}"
    );

    run(
        "tsc --noEmit (generated bindings and the tests)",
        Command::new("npx")
            .args(["--no-install", "tsc", "--noEmit", "-p", "."])
            .current_dir(&ts_dir),
    );

    for (script, database) in [("chat.test.ts", "ts-chat"), ("abi.test.ts", "ts-abi")] {
        let stdout = run(
            script,
            Command::new("npx")
                .args(["--no-install", "tsx", script])
                .current_dir(&ts_dir)
                .env("ORRERY_URL", &base)
                .env("ORRERY_DB", database)
                .env("ORRERY_OWNER_TOKEN", &token),
        );
        assert!(stdout.contains("PASS: all"), "{script}:\n{stdout}");
    }
    // Dropping the handle kills the server and fails on an unexpected ERROR.
    drop(server);
}
