//! How a driver fails a case: which driver, on which node, what it was
//! answering, what went wrong, and the end of its stderr, in one message.

use std::fmt;
use std::time::Duration;

use super::protocol::PROTOCOL_VERSION;

/// A driver that could not be started, crashed, hung, answered garbage or
/// refused a request.
#[derive(Debug)]
pub struct DriverError {
    /// `exec:...`, with the name and version from its `hello` once known.
    pub driver: String,
    pub node: String,
    /// The request it was answering (`None`: it died between requests).
    pub answering: Option<&'static str>,
    pub fault: Fault,
    /// The last lines it wrote to stderr.
    pub stderr_tail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("could not start it: {0}")]
    Spawn(String),
    #[error("it exited ({status})")]
    Crashed { status: String },
    #[error("it closed its stdout without exiting")]
    ClosedStdout,
    #[error("no answer within {0:?}, so it was killed")]
    TimedOut(Duration),
    #[error("it wrote a line that is not an answer of the protocol ({reason}): {line}")]
    Garbage { line: String, reason: String },
    #[error("it answered `{got}` with id {id}, expected `{expected}` with id {expected_id}")]
    WrongAnswer {
        got: &'static str,
        id: u64,
        expected: &'static str,
        expected_id: u64,
    },
    #[error("it answered with an error: {0}")]
    Refused(String),
    #[error("it speaks protocol version {0}; this harness speaks {PROTOCOL_VERSION}")]
    Version(u32),
    #[error("it is not running any more after an earlier failure: {0}")]
    Gone(String),
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.fault)
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dataplane driver {} on node `{}`",
            self.driver, self.node
        )?;
        match self.answering {
            Some(request) => write!(f, ", answering `{request}`: ")?,
            None => write!(f, ", between requests: ")?,
        }
        write!(f, "{}", self.fault)?;
        let tail = self.stderr_tail.trim_end();
        if tail.is_empty() {
            write!(f, "; its stderr is empty")
        } else {
            write!(f, "; the end of its stderr:")?;
            for line in tail.lines() {
                let line = crate::text::bounded(line, STDERR_LINE);
                write!(f, "\n    {}", crate::text::printable(&line))?;
            }
            Ok(())
        }
    }
}

/// The most of one stderr line a message quotes.
const STDERR_LINE: usize = 300;

/// At most `max` characters of `text`, marked when cut (garbage can be long).
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_driver_node_request_and_stderr() {
        let error = DriverError {
            driver: "`toy 1.0` (exec:/opt/toy)".into(),
            node: "node-a".into(),
            answering: Some("apply"),
            fault: Fault::Crashed {
                status: "exit status: 3".into(),
            },
            stderr_tail: "loading\npanic: no map\n".into(),
        };
        insta::assert_snapshot!(error.to_string(), @r"
        dataplane driver `toy 1.0` (exec:/opt/toy) on node `node-a`, answering `apply`: it exited (exit status: 3); the end of its stderr:
            loading
            panic: no map
        ");
        assert_eq!(clip("abcdef", 3), "abc… (6 bytes in all)");
        assert_eq!(clip("abc", 3), "abc");
    }
}
