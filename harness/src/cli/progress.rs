//! What `run` prints while cases run. On a terminal: a status line (cases done /
//! total and the ones running) kept under the result lines, and colour (green
//! PASS, red FAIL and `<---- WRONG` / `<---- EXPECTED` marks) unless `NO_COLOR`
//! is set (https://no-color.org). Piped: plain lines only, no escape codes, so
//! logs and CI output stay greppable.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const BOLD_RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";
/// Carriage return and erase to the end of the line: removes the status line.
const CLEAR_LINE: &str = "\r\x1b[K";

/// How output is decorated; decided once per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
    pub status_line: bool,
}

impl Style {
    /// `NO_COLOR` counts when it is set to anything but the empty string, as
    /// the convention says.
    pub fn decide(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Style {
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        Style {
            colour: stdout_is_terminal && !no_color,
            status_line: stdout_is_terminal,
        }
    }

    pub fn from_environment() -> Style {
        Style::decide(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        )
    }

    /// The line with its verdict and marks coloured (or unchanged without colour).
    pub fn paint(&self, line: &str) -> String {
        if !self.colour {
            return line.to_owned();
        }
        let mut line = line
            .replace("<---- WRONG", &format!("{BOLD_RED}<---- WRONG{RESET}"))
            .replace("<---- EXPECTED", &format!("{RED}<---- EXPECTED{RESET}"));
        for (verdict, colour) in [("PASS ", GREEN), ("FAIL ", RED)] {
            if let Some(rest) = line.strip_prefix(verdict) {
                line = format!("{colour}{}{RESET} {rest}", verdict.trim_end());
            }
        }
        line
    }
}

struct State {
    done: usize,
    running: BTreeSet<String>,
}

/// Result lines and the status line of one run; safe to share between workers.
pub struct Progress {
    style: Style,
    total: usize,
    width: usize,
    state: Mutex<State>,
}

impl Progress {
    pub fn new(style: Style, total: usize) -> Progress {
        // The status line is cut to the terminal's width so that it never wraps
        // (a wrapped line is not erased by CLEAR_LINE).
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80);
        Progress {
            style,
            total,
            width,
            state: Mutex::new(State {
                done: 0,
                running: BTreeSet::new(),
            }),
        }
    }

    pub fn started(&self, case: &str) {
        let mut state = self.state.lock().unwrap();
        state.running.insert(case.to_owned());
        self.redraw(&state, "");
    }

    /// Prints a finished case's lines above the status line.
    pub fn finished(&self, case: &str, lines: &str) {
        let mut state = self.state.lock().unwrap();
        state.running.remove(case);
        state.done += 1;
        let painted: String = lines.lines().map(|l| self.style.paint(l) + "\n").collect();
        self.redraw(&state, &painted);
    }

    /// Removes the status line before the run's closing lines.
    pub fn clear(&self) {
        if self.style.status_line {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{CLEAR_LINE}");
            let _ = out.flush();
        }
    }

    fn redraw(&self, state: &State, above: &str) {
        let mut out = std::io::stdout().lock();
        if !self.style.status_line {
            let _ = out.write_all(above.as_bytes());
            return;
        }
        let status = status_line(self.total, state.done, &state.running, self.width);
        let _ = write!(out, "{CLEAR_LINE}{above}{status}");
        let _ = out.flush();
    }
}

/// `[3/10] running: a::nftables, b::iptables`, cut to `width` characters.
fn status_line(total: usize, done: usize, running: &BTreeSet<String>, width: usize) -> String {
    let names: Vec<&str> = running.iter().map(String::as_str).collect();
    let line = format!("[{done}/{total}] running: {}", names.join(", "));
    if line.chars().count() <= width {
        return line;
    }
    let cut: String = line.chars().take(width.saturating_sub(3)).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    const FAILED: &str = "FAIL x::nftables (1.00 s)\n    a -> b icmp: ...   <---- WRONG\n      reply source: x   <---- EXPECTED y";

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let on = |tty, nc: Option<&str>| Style::decide(tty, nc.map(OsStr::new)).colour;
        assert!(on(true, None));
        assert!(on(true, Some("")), "an empty NO_COLOR does not count");
        assert!(!on(true, Some("1")));
        assert!(!on(false, None));
        assert!(!Style::decide(false, None).status_line);
        assert!(Style::decide(true, Some(OsStr::new("1"))).status_line);
    }

    #[test]
    fn plain_style_leaves_lines_untouched() {
        let plain = Style::decide(false, None);
        for line in FAILED.lines() {
            assert_eq!(plain.paint(line), line);
        }
    }

    #[test]
    fn colour_marks_verdicts_and_wrong_lines() {
        let style = Style::decide(true, None);
        let painted: Vec<String> = FAILED.lines().map(|l| style.paint(l)).collect();
        assert_eq!(painted[0], "\x1b[31mFAIL\x1b[0m x::nftables (1.00 s)");
        assert!(painted[1].ends_with("\x1b[1;31m<---- WRONG\x1b[0m"));
        assert!(painted[2].contains("\x1b[31m<---- EXPECTED\x1b[0m y"));
        assert!(style
            .paint("PASS y::iptables")
            .starts_with("\x1b[32mPASS\x1b[0m"));
    }

    #[test]
    fn status_line_counts_and_fits() {
        let running: BTreeSet<String> = ["b::iptables", "a::nftables"].map(String::from).into();
        assert_eq!(
            status_line(10, 3, &running, 80),
            "[3/10] running: a::nftables, b::iptables"
        );
        let cut = status_line(10, 3, &running, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with("..."));
    }
}
