//! Colours for people at a terminal, nothing for pipes and files.
//!
//! A stream gets ANSI escape codes only when it is a terminal, `NO_COLOR`
//! is unset or empty (no-color.org) and `TERM` is not `dumb`; otherwise
//! every helper returns its text unchanged, so scripts never see escapes.

use std::io::IsTerminal;

/// Where a styled text goes.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Whether text written to `stream` may carry colours.
pub(crate) fn enabled(stream: Stream) -> bool {
    let terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    terminal && allowed(std::env::var_os("NO_COLOR"), std::env::var_os("TERM"))
}

/// The environment part of [`enabled`].
fn allowed(no_color: Option<std::ffi::OsString>, term: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

fn wrap(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

pub(crate) fn bold(on: bool, text: &str) -> String {
    wrap(on, "1", text)
}

pub(crate) fn dim(on: bool, text: &str) -> String {
    wrap(on, "2", text)
}

pub(crate) fn bold_red(on: bool, text: &str) -> String {
    wrap(on, "1;31", text)
}

/// An error as the one line the CLI prints for it: `error: MESSAGE`, line
/// breaks (e.g. in a compiler's message) folded; on a terminal `error:` is
/// bold red and a closing hint in parentheses is dim.
pub(crate) fn error_line(error: &anyhow::Error, colour: bool) -> String {
    let text = format!("{error:#}");
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let (message, hint) = split_hint(&line);
    format!(
        "{} {message}{}",
        bold_red(colour, "error:"),
        if hint.is_empty() {
            String::new()
        } else {
            dim(colour, hint)
        }
    )
}

/// `("message", " (hint)")` for a line ending in a parenthesised hint that
/// the message leads up to; `(line, "")` otherwise.
fn split_hint(line: &str) -> (&str, &str) {
    if !line.ends_with(')') {
        return (line, "");
    }
    // The opening parenthesis matching the final one.
    let mut depth = 0usize;
    for (i, c) in line.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return match line[..i].strip_suffix(' ') {
                        Some(message) if !message.is_empty() => (message, &line[i - 1..]),
                        _ => (line, ""),
                    };
                }
            }
            _ => {}
        }
    }
    (line, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_no_color_and_term() {
        assert!(allowed(None, Some("xterm".into())));
        assert!(allowed(None, None));
        assert!(allowed(Some("".into()), Some("xterm".into())));
        assert!(!allowed(Some("1".into()), Some("xterm".into())));
        assert!(!allowed(None, Some("dumb".into())));
    }

    #[test]
    fn error_lines_are_plain_without_colour() {
        let e = anyhow::anyhow!("no such table\n  `x` (check the name with `orrery list`)");
        assert_eq!(
            error_line(&e, false),
            "error: no such table `x` (check the name with `orrery list`)"
        );
        assert_eq!(
            error_line(&e, true),
            "\x1b[1;31merror:\x1b[0m no such table `x`\x1b[2m (check the name with `orrery list`)\x1b[0m"
        );
        let plain = anyhow::anyhow!("f(x) failed");
        assert_eq!(
            error_line(&plain, true),
            "\x1b[1;31merror:\x1b[0m f(x) failed"
        );
    }
}
