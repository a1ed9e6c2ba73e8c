//! A client for BIRD's control socket, speaking what `birdc` speaks: one
//! command per line; each reply line starts with a four-digit code and `-`
//! (more follows) or ` ` (the last line), or with a space (a continuation
//! of the previous code). Codes 8000 and up are errors.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::show::{parse_protocols, parse_routes, BirdRoute, ProtocolStatus, ReplyLine};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BirdcError {
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: `{command}` answered {code}: {text}")]
    Refused {
        path: String,
        command: String,
        code: u16,
        text: String,
    },
    #[error("control socket {path}: reply line `{line}` is not BIRD's protocol")]
    Garbled { path: String, line: String },
}

/// A client for one daemon's control socket; each query opens a connection.
#[derive(Clone, Debug)]
pub struct Birdc {
    socket: PathBuf,
}

impl Birdc {
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    fn io(&self, source: std::io::Error) -> BirdcError {
        BirdcError::Io {
            path: self.socket.display().to_string(),
            source,
        }
    }

    /// Send `command`; the reply's lines, the welcome banner left out.
    pub fn query(&self, command: &str) -> Result<Vec<ReplyLine>, BirdcError> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| self.io(e))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| self.io(e))?;
        let mut reader = BufReader::new(stream.try_clone().map_err(|e| self.io(e))?);
        self.read_reply(&mut reader)?; // 0001 BIRD 1.6.8 ready.
        (&stream)
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| self.io(e))?;
        let reply = self.read_reply(&mut reader)?;
        if let Some(error) = reply.iter().find(|l| l.code >= 8000) {
            return Err(BirdcError::Refused {
                path: self.socket.display().to_string(),
                command: command.to_string(),
                code: error.code,
                text: error.text.clone(),
            });
        }
        Ok(reply)
    }

    fn read_reply(&self, reader: &mut impl BufRead) -> Result<Vec<ReplyLine>, BirdcError> {
        let mut lines = Vec::new();
        let mut code = 0;
        loop {
            let mut raw = String::new();
            if reader.read_line(&mut raw).map_err(|e| self.io(e))? == 0 {
                return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let line = raw.trim_end_matches(['\n', '\r']);
            let (last, text) = match parse_line(line) {
                Some((c, last, text)) => {
                    code = c;
                    (last, text)
                }
                None if line.starts_with(' ') => (false, &line[1..]),
                None => {
                    return Err(BirdcError::Garbled {
                        path: self.socket.display().to_string(),
                        line: line.to_string(),
                    })
                }
            };
            lines.push(ReplyLine {
                code,
                text: text.to_string(),
            });
            if last {
                return Ok(lines);
            }
        }
    }

    /// `show protocols`.
    pub fn protocols(&self) -> Result<Vec<ProtocolStatus>, BirdcError> {
        Ok(parse_protocols(&self.query("show protocols")?))
    }

    /// `show route` (every route of the master table, best first per prefix).
    pub fn routes(&self) -> Result<Vec<BirdRoute>, BirdcError> {
        Ok(parse_routes(&self.query("show route")?))
    }

    /// `configure`: load the configuration file again (confd's reload).
    pub fn configure(&self) -> Result<(), BirdcError> {
        self.query("configure").map(|_| ())
    }
}

/// `dddd-text` or `dddd text`: (code, is the last line, text).
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let code: u16 = line.get(..4)?.parse().ok()?;
    match line.as_bytes().get(4) {
        Some(b'-') => Some((code, false, &line[5..])),
        Some(b' ') => Some((code, true, &line[5..])),
        None => Some((code, true, "")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_carry_their_code_and_whether_more_follows() {
        assert_eq!(
            parse_line("0001 BIRD 1.6.8 ready."),
            Some((1, true, "BIRD 1.6.8 ready."))
        );
        assert_eq!(
            parse_line("1002-device1 Device"),
            Some((1002, false, "device1 Device"))
        );
        assert_eq!(parse_line("0000"), Some((0, true, "")));
        assert_eq!(parse_line("     kernel1"), None);
    }
}
