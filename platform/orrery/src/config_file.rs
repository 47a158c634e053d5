//! `--config FILE` for the process commands (`start`, `control-plane`,
//! `host`): settings in TOML, below flags and environment variables.
//!
//! A key is a flag's long name (`listen-addr`, or `listen_addr`). Keys at the
//! top of the file apply to every process command that has the flag; keys
//! under `[start]`, `[control-plane]` or `[host]` apply to that command
//! only, and there a key it does not know is an error. Each value becomes
//! the flag's environment variable unless that is set already, so the order
//! is: flag, then environment, then file, then default.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// The commands that read a config file.
const PROCESS_COMMANDS: [&str; 3] = ["start", "control-plane", "host"];

/// Reads the config file the command line or `ORRERY_CONFIG` names, if the
/// command is a process command, and sets the environment from it.
pub(crate) fn apply(cli: &clap::Command) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(command) = args
        .get(1)
        .filter(|a| PROCESS_COMMANDS.contains(&a.as_str()))
    else {
        return Ok(());
    };
    let path =
        config_path(&args[2..]).or_else(|| std::env::var_os("ORRERY_CONFIG").map(PathBuf::from));
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read the config file {}", path.display()))?;
    for (env, value) in settings(cli, command, &text)
        .with_context(|| format!("in the config file {}", path.display()))?
    {
        if std::env::var_os(&env).is_none() {
            // Before any thread starts: nothing reads the environment yet.
            std::env::set_var(env, value);
        }
    }
    Ok(())
}

/// The value of `--config X` or `--config=X` among `args`.
fn config_path(args: &[String]) -> Option<PathBuf> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The environment variables the file sets for `command`, checked against
/// the commands' flags.
fn settings(
    cli: &clap::Command,
    command: &str,
    text: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let find = |name: &str| {
        cli.get_subcommands()
            .find(|c| c.get_name() == name)
            .expect("process commands exist")
    };
    let env_of = |sub: &clap::Command, key: &str| -> Option<String> {
        let long = key.replace('_', "-");
        sub.get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
    };
    let this = find(command);
    // Section values win over top-level ones for the same flag.
    let mut out = Vec::new();
    let mut top = Vec::new();
    for (key, value) in &table {
        if let toml::Value::Table(section) = value {
            if !PROCESS_COMMANDS.contains(&key.as_str()) {
                bail!("unknown section [{key}]: use [start], [control-plane] or [host]");
            }
            let sub = find(key);
            for (key, value) in section {
                let env = env_of(sub, key).ok_or_else(|| {
                    anyhow::anyhow!("`orrery {}` has no setting `{key}`", sub.get_name())
                })?;
                if sub.get_name() == command {
                    out.push((env, text_of(key, value)?));
                }
            }
            continue;
        }
        let known = PROCESS_COMMANDS
            .iter()
            .any(|c| env_of(find(c), key).is_some());
        if !known {
            bail!("unknown setting `{key}` (keys are the flags of start, control-plane and host)");
        }
        if let Some(env) = env_of(this, key) {
            top.push((env, text_of(key, value)?));
        }
    }
    for (env, value) in top {
        if !out.iter().any(|(e, _)| *e == env) {
            out.push((env, value));
        }
    }
    Ok(out)
}

fn text_of(key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => bail!(
            "`{key}` is a {}; use a string, number or boolean",
            other.type_str()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli() -> clap::Command {
        crate::Cli::command()
    }

    #[test]
    fn keys_become_environment_variables_for_their_command() {
        let text = r#"
            join-secret = "s"
            listen_addr = "127.0.0.1:1"
            [host]
            control-plane = "http://cp"
            listen-addr = "127.0.0.1:2"
            [control-plane]
            metadata = "sqlite:///x.db"
        "#;
        let mut host = settings(&cli(), "host", text).unwrap();
        host.sort();
        assert_eq!(
            host,
            [
                ("ORRERY_CONTROL_PLANE".to_owned(), "http://cp".to_owned()),
                ("ORRERY_JOIN_SECRET".to_owned(), "s".to_owned()),
                ("ORRERY_LISTEN_ADDR".to_owned(), "127.0.0.1:2".to_owned()),
            ]
        );
        let mut plane = settings(&cli(), "control-plane", text).unwrap();
        plane.sort();
        assert_eq!(
            plane,
            [
                ("ORRERY_JOIN_SECRET".to_owned(), "s".to_owned()),
                ("ORRERY_LISTEN_ADDR".to_owned(), "127.0.0.1:1".to_owned()),
                ("ORRERY_METADATA".to_owned(), "sqlite:///x.db".to_owned()),
            ]
        );
        // `start` has no join secret: the top-level key is skipped for it.
        let start = settings(&cli(), "start", text).unwrap();
        assert_eq!(
            start,
            [("ORRERY_LISTEN_ADDR".to_owned(), "127.0.0.1:1".to_owned())]
        );
    }

    #[test]
    fn unknown_keys_sections_and_values_are_errors() {
        let e = settings(&cli(), "host", "listen-adr = \"x\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown setting `listen-adr`"),
            "{e}"
        );
        let e = settings(&cli(), "host", "[hosts]\nx = 1").unwrap_err();
        assert!(e.to_string().contains("unknown section [hosts]"), "{e}");
        let e = settings(&cli(), "start", "[host]\nmetadata = \"x\"").unwrap_err();
        assert!(e.to_string().contains("has no setting `metadata`"), "{e}");
        let e = settings(&cli(), "start", "data-dir = [1]").unwrap_err();
        assert!(e.to_string().contains("is a array"), "{e}");
        let e = settings(&cli(), "start", "data-dir = ").unwrap_err();
        assert!(e.to_string().contains("not valid TOML"), "{e}");
    }

    #[test]
    fn the_path_comes_from_either_spelling() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            config_path(&args(&["--x", "--config=b.toml"])),
            Some("b.toml".into())
        );
        assert_eq!(config_path(&args(&["--x"])), None);
    }
}
