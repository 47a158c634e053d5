//! Starting the `orrery` binary under test for the end-to-end tests: a child
//! process whose stdout and stderr are read line by line into a buffer on
//! threads. The child is killed when its handle drops (also when the test
//! panics), and a handle that drops in a test that did not panic fails it if
//! the process logged an ERROR (or a panic) the test did not declare with
//! [`Captured::expect_error`]. Owns no test of its own (`start.rs` holds
//! the canary of the ERROR check).

// Not every test binary that includes this file uses all of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a test waits for a line it expects (the first start of a test
/// binary may wait for the wasm compiler).
const LINE_WAIT: Duration = Duration::from_secs(120);

/// Every line a child printed, stdout and stderr interleaved in arrival order.
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    /// Streams that reached their end (both: the child is gone).
    ended: std::sync::atomic::AtomicUsize,
}

impl Output {
    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_from(self: &Arc<Self>, stream: impl Read + Send + 'static) -> JoinHandle<()> {
        let output = Arc::clone(self);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output.lines().push(line);
                output.grew.notify_all();
            }
            // Taken under the lock, so a waiter cannot miss the wake-up.
            let _lines = output.lines();
            output
                .ended
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            output.grew.notify_all();
        })
    }
}

/// Whether `line` was logged at level ERROR (the human format with colours
/// off: "TIMESTAMP ERROR message"; or the JSON format) or reports a panic.
pub(crate) fn is_error_line(line: &str) -> bool {
    line.split_whitespace().nth(1) == Some("ERROR")
        || line.contains("\"level\":\"ERROR\"")
        || line.contains("panicked at")
}

/// A running child with its output captured; killed on drop.
pub(crate) struct Captured {
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    /// Substrings of the ERROR lines the test expects.
    expected_errors: Mutex<Vec<String>>,
}

impl Captured {
    /// Spawns `command` with stdout and stderr captured (stdin empty).
    pub(crate) fn spawn(mut command: Command) -> Captured {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        let output = Arc::new(Output::default());
        let readers = vec![
            output.read_from(child.stdout.take().expect("piped")),
            output.read_from(child.stderr.take().expect("piped")),
        ];
        Captured {
            child,
            output,
            readers,
            expected_errors: Mutex::default(),
        }
    }

    /// The child's process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.output.lines().clone()
    }

    /// Waits for the first line containing `needle` (printed before or
    /// after the call) and returns it; fails after [`LINE_WAIT`].
    pub(crate) fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        let mut lines = self.output.lines();
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                self.output.ended.load(std::sync::atomic::Ordering::SeqCst) < 2,
                "the process ended without a line with {needle:?}; printed:\n{}",
                lines.join("\n")
            );
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line with {needle:?} in {LINE_WAIT:?}; printed:\n{}",
                lines.join("\n")
            );
            lines = self
                .output
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Declares that an ERROR line containing `substring` is expected.
    pub(crate) fn expect_error(&self, substring: &str) {
        self.expected_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(substring.to_owned());
    }

    /// The ERROR (and panic) lines printed so far that no
    /// [`Captured::expect_error`] covers.
    pub(crate) fn unexpected_errors(&self) -> Vec<String> {
        let expected = self
            .expected_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.output
            .lines()
            .iter()
            .filter(|l| is_error_line(l) && !expected.iter().any(|e| l.contains(e.as_str())))
            .cloned()
            .collect()
    }

    /// Fails (panics) if the child logged an unexpected ERROR.
    pub(crate) fn check_errors(&self) {
        let unexpected = self.unexpected_errors();
        assert!(
            unexpected.is_empty(),
            "the process logged {} unexpected ERROR line(s):\n{}\n(declare expected ones with expect_error)",
            unexpected.len(),
            unexpected.join("\n")
        );
    }

    /// Sends SIGTERM and waits for the exit and the end of the output.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        self.wait()
    }

    /// SIGKILL (no shutdown work at all), then waits for the exit.
    #[allow(dead_code)]
    pub(crate) fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL");
        self.wait()
    }

    /// Waits for the exit and the end of the output.
    pub(crate) fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.wait();
        if !std::thread::panicking() {
            self.check_errors();
        }
    }
}

/// Runs `orrery start --listen-addr 127.0.0.1:0 --data-dir DATA` plus
/// `extra` arguments, without waiting for it to start.
pub(crate) fn spawn_orrery(data: &Path, extra: &[&str]) -> Captured {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orrery"));
    command
        .arg("start")
        .args(extra)
        .args(["--listen-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    Captured::spawn(command)
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

/// A started `orrery start` (its banner printed) and its output.
pub(crate) struct Orrery {
    pub(crate) process: Captured,
    pub(crate) addr: String,
}

impl Orrery {
    /// `orrery start --dev`: publishing is open to minted identities, as
    /// the stock flows these tests drive expect.
    pub(crate) fn start(data: &Path) -> Orrery {
        Orrery::start_with(data, &[])
    }

    /// [`Orrery::start`] with `extra` arguments for `orrery start`.
    pub(crate) fn start_with(data: &Path, extra: &[&str]) -> Orrery {
        let mut args = vec!["--dev"];
        args.extend_from_slice(extra);
        Orrery::start_closed(data, &args)
    }

    /// `orrery start` as it runs by default: owner actions need accounts.
    pub(crate) fn start_closed(data: &Path, extra: &[&str]) -> Orrery {
        let process = spawn_orrery(data, extra);
        let banner = process.wait_for_line("orrery started");
        let addr = listen_addr(&banner);
        Orrery { process, addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// See [`Captured::expect_error`].
    pub(crate) fn expect_error(&self, substring: &str) {
        self.process.expect_error(substring);
    }

    /// The value of `name{database="id"}` in a scrape of `/metrics`, if present.
    #[allow(dead_code)]
    pub(crate) fn metric(&self, name: &str, id: &str) -> Option<u64> {
        let (status, body) = send(ureq::get(&self.url("/metrics")), None);
        assert_eq!(status, 200, "{body}");
        let prefix = format!("{name}{{database=\"{id}\"}} ");
        body.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.parse().unwrap())
    }

    /// SIGTERM, then a clean exit that says so; then the ERROR check.
    pub(crate) fn stop(mut self) {
        let exit = self.process.terminate();
        assert!(exit.success(), "orrery start exited with {exit}");
        let lines = self.process.lines();
        assert!(
            lines.iter().any(|l| l.contains("stopped cleanly")),
            "{lines:?}"
        );
        self.process.check_errors();
    }
}

/// One HTTP request to a server under test: its status and body, whatever
/// the status (a transport failure fails the test).
pub(crate) fn send(request: ureq::Request, body: Option<&[u8]>) -> (u16, String) {
    let result = match body {
        Some(body) => request.send_bytes(body),
        None => request.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("request failed: {e}"),
    }
}

/// What one run of the `orrery` CLI did.
pub(crate) struct CliRun {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl CliRun {
    /// The last line of stderr, which must be the run's one `error:` line.
    pub(crate) fn error_line(&self) -> &str {
        let errors = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .count();
        assert_eq!(errors, 1, "one error line: {}", self.stderr);
        let last = self.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{}", self.stderr);
        last
    }
}

/// Runs the CLI, `orrery ARGS`, with its config in `config`, `input` on its
/// stdin and `env` set (a developer's own `ORRERY_TOKEN` never leaks in).
pub(crate) fn run_cli(config: &Path, args: &[&str], env: &[(&str, &str)], input: &str) -> CliRun {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_orrery"));
    command
        .args(args)
        .env("ORRERY_CONFIG_DIR", config)
        .env("NO_COLOR", "1")
        .env_remove("ORRERY_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    CliRun {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The repository's root folder.
pub(crate) fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs a command to success; its stdout.
pub(crate) fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
