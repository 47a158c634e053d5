// Starting the `orrery` binary under test: one child process with its
// stdout read line by line on a thread, shared by the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

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

/// A running `orrery start` and the lines it printed (not every test
/// binary that includes this file uses it).
#[allow(dead_code)]
pub(crate) struct Orrery {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) lines: Receiver<String>,
}

#[allow(dead_code)]
impl Orrery {
    pub(crate) fn start(data: &Path) -> Orrery {
        let (child, lines) = spawn_orrery(data, &[]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let banner = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("orrery start printed its banner");
            if line.contains("orrery started") {
                break line;
            }
        };
        let addr = listen_addr(&banner);
        Orrery { child, addr, lines }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then wait for a clean exit.
    pub(crate) fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "orrery start exited with {exit}");
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert!(
            rest.iter().any(|l| l.contains("stopped cleanly")),
            "{rest:?}"
        );
    }
}
