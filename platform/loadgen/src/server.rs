//! The server under load and its HTTP side: starting `orrery start` as a
//! child process (on a temporary data directory and port 0), finding or
//! building the test modules' `.wasm`, minting an identity, publishing and
//! calling reducers over HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

#[path = "../../../tests/support/modules.rs"]
mod modules;

/// A running `orrery start` child; killed (by its own handle) on drop.
pub(crate) struct Orrery {
    child: Child,
    /// Kept so the data directory outlives the server.
    _data_dir: tempfile::TempDir,
    pub(crate) addr: String,
}

impl Drop for Orrery {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `orrery` next to this executable (both are built into the same
/// `target/release`), unless `explicit` names one.
pub(crate) fn orrery_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().context("locate the loadgen executable")?;
    let path = me
        .parent()
        .context("the executable has a directory")?
        .join(format!("orrery{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{} does not exist: build it first with `cargo build --release -p orrery -p loadgen`, \
             or pass --orrery PATH or --url URL",
            path.display()
        );
    }
    Ok(path)
}

/// Starts `orrery start` on a fresh data directory and port 0 and waits for
/// its "listening on http://ADDR" log line.
pub(crate) fn start_orrery(binary: &Path) -> anyhow::Result<Orrery> {
    let data_dir = tempfile::tempdir().context("create a temporary data directory")?;
    let mut child = Command::new(binary)
        .arg("start")
        .arg("--data-dir")
        .arg(data_dir.path())
        .args(["--listen-addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let (tx, rx) = mpsc::channel();
    // Both streams are drained for the server's lifetime so it never blocks
    // on a full pipe; the first "listening on" line gives the address.
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                        .collect();
                    let _ = tx.send(addr);
                }
            }
        });
    }
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            bail!("orrery did not log its listen address within 60 s");
        }
    };
    Ok(Orrery {
        child,
        _data_dir: data_dir,
        addr,
    })
}

/// The bytes of test module `name` (`bank`, `chat`), built with cargo for
/// `wasm32-unknown-unknown` if needed, by the same code the tests use.
pub(crate) fn module_bytes(name: &str) -> anyhow::Result<Vec<u8>> {
    progress!("building test module {name} (wasm32-unknown-unknown) if needed…");
    Ok(modules::module_bytes(name))
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build()
}

fn describe(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, response) => {
            anyhow!(
                "HTTP {code}: {}",
                response.into_string().unwrap_or_default()
            )
        }
        other => anyhow!(other),
    }
}

/// `POST /v1/identity` → the new identity's token.
pub(crate) fn mint_token(base: &str) -> anyhow::Result<String> {
    let text = agent()
        .post(&format!("{base}/v1/identity"))
        .call()
        .map_err(describe)?
        .into_string()?;
    let body: serde_json::Value = serde_json::from_str(&text)?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("the identity response has a token")
}

/// Publishes `wasm` as database `name`.
pub(crate) fn publish(base: &str, token: &str, name: &str, wasm: &[u8]) -> anyhow::Result<()> {
    agent()
        .put(&format!("{base}/v1/database/{name}?host_type=Wasm"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(wasm)
        .map_err(describe)
        .with_context(|| format!("publish {name}"))?;
    Ok(())
}

/// Calls `reducer` of database `name` over HTTP with JSON `args`.
pub(crate) fn call(
    base: &str,
    token: &str,
    name: &str,
    reducer: &str,
    args: serde_json::Value,
) -> anyhow::Result<()> {
    agent()
        .post(&format!("{base}/v1/database/{name}/call/{reducer}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&args.to_string())
        .map_err(describe)
        .with_context(|| format!("call {name}.{reducer}({args})"))?;
    Ok(())
}
