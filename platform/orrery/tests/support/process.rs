// Starting the `orrery` binary under test: one child process with its
// stdout read line by line on a thread, shared by the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

/// Runs `orrery start --listen-addr 127.0.0.1:0 --data-dir DATA` plus
/// `extra` arguments; returns the child and its stdout lines.
pub(crate) fn spawn_orrery(data: &Path, extra: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("start")
        .args(extra)
        .args(["--listen-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    (child, lines)
}

/// The `HOST:PORT` of a banner line "… listening on http://HOST:PORT; …".
pub(crate) fn listen_addr(banner: &str) -> String {
    banner
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no address in {banner}"))
        .to_owned()
}
