//! `orrery sql DB --interactive`: a small SQL prompt on stdin.
//!
//! Lines collect into a statement until a `;` outside quotes and comments
//! ends it (a line may hold several); each statement goes to the server's
//! `/sql` route on its own and its result is printed in the chosen format.
//! Lines starting with `\` are commands (`\q`, `\h`, `\dt`). A failing
//! statement prints one `error:` line and the prompt goes on. Prompts and
//! the banner appear only when stdin is a terminal; without one (a piped
//! script) any failure makes the whole run fail at the end, so scripts see
//! it in the exit status.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use serde_json::Value;

use super::output::{Format, ResultSet};
use super::style::{self, Stream};
use super::Remote;

const HELP: &str = "\
Statements end with `;` (they may span lines); each runs on its own.
  \\dt      list the tables and views
  \\h, \\?   this help
  \\q       quit (so does end of input, Ctrl-D)
";

/// Runs the prompt until `\q` or the end of stdin.
pub(super) fn run(remote: &Remote, database: &str, format: Format) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let colour = style::enabled(Stream::Stdout);
    let error_colour = style::enabled(Stream::Stderr);
    if terminal {
        eprintln!(
            "Connected to {database} on {}. End statements with `;`; \\h for help, \\q to quit.",
            remote.url
        );
    }
    let mut pending = Pending::default();
    let (mut total, mut failed) = (0usize, 0usize);
    let mut input = stdin.lock();
    let mut report = |result: anyhow::Result<String>| {
        total += 1;
        match result {
            Ok(text) => {
                let mut out = std::io::stdout().lock();
                // A closed stdout ends nothing here; the next write tells.
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}", style::error_line(&e, error_colour));
            }
        }
    };
    loop {
        if terminal {
            let prompt = if pending.is_empty() {
                format!("{database}> ")
            } else {
                format!("{:>w$}> ", "...", w = database.chars().count())
            };
            eprint!("{prompt}");
            std::io::stderr().flush()?;
        }
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            if terminal {
                eprintln!();
            }
            // An unfinished last statement runs, as `orrery sql DB QUERY`
            // would run it without a `;`.
            if let Some(statement) = pending.finish() {
                report(statement_output(
                    remote, database, &statement, format, colour,
                ));
            }
            break;
        }
        if !pending.in_quote() && line.trim_start().starts_with('\\') {
            match line.split_whitespace().next().unwrap_or_default() {
                "\\q" => break,
                "\\h" | "\\?" => print!("{HELP}"),
                "\\dt" => report(tables_output(remote, database, format, colour)),
                other => report(Err(anyhow::anyhow!(
                    "unknown command `{other}` (\\h lists the commands)"
                ))),
            }
            continue;
        }
        for statement in pending.push_line(&line) {
            report(statement_output(
                remote, database, &statement, format, colour,
            ));
        }
    }
    if failed > 0 && !terminal {
        bail!("{failed} of {total} statements failed");
    }
    Ok(())
}

/// One statement's results as text.
fn statement_output(
    remote: &Remote,
    database: &str,
    statement: &str,
    format: Format,
    colour: bool,
) -> anyhow::Result<String> {
    let results = super::run_sql(remote, database, statement)?;
    Ok(results.iter().map(|r| r.render(format, colour)).collect())
}

/// `\dt`: the tables and views, public or private.
fn tables_output(
    remote: &Remote,
    database: &str,
    format: Format,
    colour: bool,
) -> anyhow::Result<String> {
    let schema = super::fetch_schema(remote, database)?;
    Ok(tables(&schema).render(format, colour))
}

/// The tables and views of a module definition (schema v10 JSON), as rows
/// of name, kind and access.
pub(super) fn tables(schema: &Value) -> ResultSet {
    let mut rows = Vec::new();
    for t in super::section(schema, "Tables") {
        let access = super::table_access(&t);
        rows.push(vec![
            t["source_name"].clone(),
            "table".into(),
            access.into(),
        ]);
    }
    for v in super::section(schema, "Views") {
        let access = if v["is_public"].as_bool() == Some(true) {
            "public"
        } else {
            "private"
        };
        rows.push(vec![v["source_name"].clone(), "view".into(), access.into()]);
    }
    ResultSet {
        columns: vec!["name".into(), "kind".into(), "access".into()],
        rows,
    }
}

/// Input collected until a `;` ends a statement; tracks quotes so a `;`
/// inside a string or quoted name does not end one.
#[derive(Default)]
struct Pending {
    text: String,
    /// The quote character of an open string (`'`) or name (`"`).
    quote: Option<char>,
}

impl Pending {
    /// Nothing but white space is waiting.
    fn is_empty(&self) -> bool {
        self.quote.is_none() && self.text.trim().is_empty()
    }

    fn in_quote(&self) -> bool {
        self.quote.is_some()
    }

    /// Adds one line; returns the statements it completed, without their
    /// `;`. A `--` comment outside quotes is dropped up to the line's end.
    fn push_line(&mut self, line: &str) -> Vec<String> {
        let mut done = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (self.quote, c) {
                (Some(q), c) if c == q => self.quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => self.quote = Some(c),
                (None, '-') if chars.peek() == Some(&'-') => {
                    // The comment ends at the line break, which is kept.
                    if line.ends_with('\n') {
                        self.text.push('\n');
                    }
                    break;
                }
                (None, ';') => {
                    let statement = self.text.trim();
                    if !statement.is_empty() {
                        done.push(statement.to_owned());
                    }
                    self.text.clear();
                    continue;
                }
                (None, _) => {}
            }
            self.text.push(c);
        }
        done
    }

    /// What is left at the end of input, if anything.
    fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.text);
        self.quote = None;
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statements_end_at_semicolons_outside_quotes() {
        let mut p = Pending::default();
        assert!(p.push_line("\n").is_empty());
        assert!(p.is_empty());
        assert!(p.push_line("SELECT *\n").is_empty());
        assert!(!p.is_empty());
        assert_eq!(p.push_line("  FROM t;\n"), ["SELECT *\n  FROM t"]);
        assert!(p.is_empty());
        assert_eq!(
            p.push_line("SELECT 'a;b' FROM t; SELECT \"x;\" FROM u;\n"),
            ["SELECT 'a;b' FROM t", "SELECT \"x;\" FROM u"]
        );
        assert!(p.push_line("SELECT 'it''s\n").is_empty());
        assert!(p.in_quote());
        assert_eq!(p.push_line("; here';\n"), ["SELECT 'it''s\n; here'"]);
        assert!(p
            .push_line("SELECT 1 -- a comment; not an end\n")
            .is_empty());
        assert_eq!(p.push_line(";\n"), ["SELECT 1"]);
        assert!(p.push_line("SELECT 2\n").is_empty());
        assert_eq!(p.finish().as_deref(), Some("SELECT 2"));
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn tables_and_views_with_their_access() {
        let schema = json!({"sections": [
            {"Tables": [
                {"source_name": "message", "table_access": {"Public": []}},
                {"source_name": "secret", "table_access": {"Private": []}}
            ]},
            {"Views": [{"source_name": "my_notes", "is_public": true}]}
        ]});
        assert_eq!(
            tables(&schema).render(Format::Csv, false),
            "name,kind,access\r\nmessage,table,public\r\nsecret,table,private\r\nmy_notes,view,public\r\n"
        );
    }
}
