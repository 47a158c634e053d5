//! The CLI's configuration file: known servers, the default one, and the
//! credential kept for each (an identity token minted by a `--dev` server,
//! or an account's session or API token).
//!
//! The file is `orrery/cli.json` in the user's config directory
//! (`$ORRERY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/orrery`, else
//! `~/.config/orrery`), written whole to a temporary file with mode 0600 and
//! renamed over the old one, so a crash never leaves half a file and tokens
//! are readable by their owner only. Without a file, one server named
//! `local` at `http://127.0.0.1:3000` is the default (`orrery start`'s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// What `orrery start` listens on by default.
pub(crate) const LOCAL_URL: &str = "http://127.0.0.1:3000";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Config {
    pub(crate) default_server: String,
    pub(crate) servers: BTreeMap<String, Server>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Server {
    pub(crate) url: String,
    /// The bearer this CLI sends there: a minted identity token (plain
    /// `login`, or minted on first use), or an account credential (a session
    /// from `signup` or `login --email`, an API token from `login --token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    /// The identity of that token, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<String>,
    /// The account's email, for an account credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        let mut servers = BTreeMap::new();
        servers.insert(
            "local".to_owned(),
            Server {
                url: LOCAL_URL.to_owned(),
                ..Server::default()
            },
        );
        Config {
            default_server: "local".to_owned(),
            servers,
        }
    }
}

/// Where the configuration lives.
pub(crate) fn dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ORRERY_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("orrery"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("orrery")),
        None => bail!("cannot find a config directory: set ORRERY_CONFIG_DIR or HOME"),
    }
}

fn file(dir: &Path) -> PathBuf {
    dir.join("cli.json")
}

impl Config {
    /// Reads the file; the default configuration if there is none.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Config> {
        let path = file(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a valid orrery config (fix or delete it)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file atomically, readable by its owner only.
    pub(crate) fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = file(dir);
        let bytes = serde_json::to_vec_pretty(self).expect("the config serialises");
        durable::fs::write_atomic_private(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The server named `name`, or the one whose URL `name` is, or (for a
    /// URL not configured) an entry without a token. `None` picks the default.
    pub(crate) fn server(&self, name: Option<&str>) -> anyhow::Result<(String, Server)> {
        let name = name.unwrap_or(&self.default_server);
        if let Some(server) = self.servers.get(name) {
            return Ok((name.to_owned(), server.clone()));
        }
        if name.contains("://") {
            let url = name.trim_end_matches('/');
            if let Some((known, server)) = self.servers.iter().find(|(_, s)| s.url == url) {
                return Ok((known.clone(), server.clone()));
            }
            return Ok((
                url.to_owned(),
                Server {
                    url: url.to_owned(),
                    ..Server::default()
                },
            ));
        }
        let known: Vec<&str> = self.servers.keys().map(String::as_str).collect();
        bail!(
            "no server named `{name}` (known: {}); add it with `orrery server add {name} URL`",
            known.join(", ")
        )
    }
}
