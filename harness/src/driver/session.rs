//! The harness's side of one driver: start it, say `hello`, then one request
//! at a time, each answer awaited with a timeout and checked (id, type).
//! Any fault ends the driver (it is killed) and is reported once, with its
//! stderr; later requests fail at once saying so.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{clip, DriverError, Fault};
use super::process::{describe_status, DriverProcess, Received};
use super::protocol::{
    Hello, HelloAnswer, Request, RequestBody, Response, ResponseBody, Shutdown, PROTOCOL_VERSION,
};
use super::spec::ExecSpec;
use super::usage;
use crate::lab::netns::Netns;

/// Characters of a garbage line quoted in the failure.
const GARBAGE_QUOTED: usize = 200;

pub(crate) struct Session {
    process: DriverProcess,
    /// How failures name the driver: `exec:...`, and its name and version
    /// once it has said them.
    label: String,
    node: String,
    timeout: Duration,
    next_id: u64,
    hello: Option<HelloAnswer>,
    /// The fault that ended it.
    ended: Option<String>,
    /// The lab it works in (its run directory's name), under which its
    /// messages are recorded (`usage`).
    lab: Option<String>,
}

/// Where a driver is started and how long each answer may take.
pub(crate) struct Start<'a> {
    pub spec: &'a ExecSpec,
    pub netns: &'a Netns,
    /// The node's name, for messages and the driver's environment.
    pub node: &'a str,
    pub timeout: Duration,
    /// The lab's run directory (pid file, and the driver's own files).
    pub lab_dir: Option<PathBuf>,
}

impl Session {
    /// Start the driver and exchange `hello`.
    pub(crate) fn start(start: Start<'_>) -> Result<Self, Box<DriverError>> {
        let label = format!("exec:{}", start.spec);
        let mut env = vec![("FIP_HARNESS_NODE", start.node.to_string())];
        let pid_file = start.lab_dir.as_ref().map(|dir| {
            // The lab directory in its environment is what lets lab teardown
            // tell this process from a recycled pid (lab::daemons::live_pid).
            env.push(("FIP_HARNESS_LAB_DIR", dir.display().to_string()));
            dir.join(format!("driver-{}.pid", start.node))
        });
        // Not once an interrupt's clean-up has started: it would not see a
        // driver (nor its folder) started after it looked.
        let spawned = crate::lab::signals::unless_cancelled(|| {
            if let Some(dir) = &start.lab_dir {
                let _ = std::fs::create_dir_all(dir);
            }
            DriverProcess::spawn(start.spec, start.netns, &env, pid_file)
        })
        .unwrap_or_else(|_| Err("the process is being interrupted".to_string()));
        let process = spawned.map_err(|reason| DriverError {
            driver: label.clone(),
            node: start.node.to_string(),
            answering: Some("hello"),
            fault: Fault::Spawn(reason),
            stderr_tail: String::new(),
        })?;
        tracing::debug!(node = start.node, pid = process.pid(), driver = %label, "driver started");
        let mut session = Session {
            process,
            label,
            node: start.node.to_string(),
            timeout: start.timeout,
            next_id: 1,
            hello: None,
            ended: None,
            lab: start
                .lab_dir
                .as_ref()
                .and_then(|dir| dir.file_name())
                .map(|name| name.to_string_lossy().into_owned()),
        };
        let hello = RequestBody::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            harness: format!("fip-harness {}", env!("CARGO_PKG_VERSION")),
            timeout_ms: start.timeout.as_millis() as u64,
        });
        let ResponseBody::Hello(answer) = session.request(hello)? else {
            unreachable!("request checks the answer's type");
        };
        if answer.protocol != PROTOCOL_VERSION {
            return Err(session.fail(Some("hello"), Fault::Version(answer.protocol)));
        }
        // Copied into every message about this driver: bounded and printable
        // here, where it is read, whatever the driver sent.
        let mut answer = answer;
        answer.name = shown(&answer.name, MAX_NAME);
        answer.version = shown(&answer.version, MAX_NAME);
        session.label = format!("`{} {}` ({})", answer.name, answer.version, session.label);
        session.hello = Some(answer);
        Ok(session)
    }

    pub(crate) fn hello(&self) -> &HelloAnswer {
        self.hello.as_ref().expect("a started session said hello")
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Everything kept of the driver's stderr.
    pub(crate) fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Send one request and wait for its answer.
    pub(crate) fn request(&mut self, body: RequestBody) -> Result<ResponseBody, Box<DriverError>> {
        let kind = body.kind();
        if let Some(reason) = &self.ended {
            return Err(self.error(Some(kind), Fault::Gone(reason.clone())));
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(lab) = &self.lab {
            usage::record(lab, usage::request_items(&body));
        }
        let line = serde_json::to_string(&Request { id, body }).expect("requests serialise");
        if self.process.send(&line).is_err() {
            // A closed stdin: it has exited, or is about to.
            let fault = self.crash_fault();
            return Err(self.fail(Some(kind), fault));
        }
        let fault = match self.process.receive(self.timeout) {
            Received::Line(line) => match serde_json::from_str::<Response>(&line) {
                Ok(answer) => match self.recorded(check(kind, id, answer)) {
                    Ok(body) => return Ok(body),
                    Err(Fault::Refused(message)) => {
                        // A refusal is an answer: the driver still works,
                        // the case fails on it.
                        return Err(self.error(Some(kind), Fault::Refused(message)));
                    }
                    Err(fault) => fault,
                },
                Err(e) => Fault::Garbage {
                    line: crate::text::printable(&clip(&line, GARBAGE_QUOTED)).into_owned(),
                    reason: shown(&e.to_string(), GARBAGE_QUOTED),
                },
            },
            Received::Unreadable(reason) => Fault::Garbage {
                line: String::new(),
                reason,
            },
            Received::Closed => self.crash_fault(),
            Received::TimedOut => Fault::TimedOut(self.timeout),
        };
        Err(self.fail(Some(kind), fault))
    }

    /// `checked` as it came, its items recorded under the lab.
    fn recorded(&self, checked: Result<ResponseBody, Fault>) -> Result<ResponseBody, Fault> {
        if let Some(lab) = &self.lab {
            match &checked {
                Ok(body) => usage::record(lab, usage::answer_items(body)),
                Err(Fault::Refused(_)) => usage::record(lab, ["answer error"]),
                Err(_) => {}
            }
        }
        checked
    }

    /// `shutdown`, then wait for it to exit; kill it if it does not. A driver
    /// that already failed is just killed (its failure was reported).
    pub(crate) fn shutdown(&mut self, keep: bool) -> Result<(), Box<DriverError>> {
        if self.ended.is_some() {
            self.process.kill();
            return Ok(());
        }
        let answered = self.request(RequestBody::Shutdown(Shutdown { keep }));
        self.process.close_stdin();
        if answered.is_ok() && self.process.wait_exit(self.timeout).is_none() {
            tracing::warn!(driver = %self.label, node = %self.node, "driver did not exit after shutdown; killing it");
        }
        self.process.kill();
        self.ended = Some("it was shut down".into());
        answered.map(|_| ())
    }

    /// An error if the driver exited on its own since its last answer.
    pub(crate) fn health(&mut self) -> Result<(), Box<DriverError>> {
        if self.ended.is_some() {
            return Ok(());
        }
        match self.process.exited() {
            None => Ok(()),
            Some(status) => Err(self.fail(None, Fault::Crashed { status })),
        }
    }

    /// The fault of a driver whose pipes closed: its exit status if it exits
    /// within the timeout.
    fn crash_fault(&mut self) -> Fault {
        match self.process.wait_exit(self.timeout) {
            Some(status) => Fault::Crashed {
                status: describe_status(status),
            },
            None => Fault::ClosedStdout,
        }
    }

    /// End the driver for `fault` and describe it.
    fn fail(&mut self, answering: Option<&'static str>, fault: Fault) -> Box<DriverError> {
        self.process.kill();
        self.ended = Some(fault.to_string());
        self.error(answering, fault)
    }

    fn error(&mut self, answering: Option<&'static str>, fault: Fault) -> Box<DriverError> {
        Box::new(DriverError {
            driver: self.label.clone(),
            node: self.node.clone(),
            answering,
            fault,
            stderr_tail: self.process.stderr_tail(),
        })
    }
}

/// The longest driver name or version kept (from its `hello`).
const MAX_NAME: usize = 80;
/// The longest refusal message kept.
const MAX_MESSAGE: usize = 2000;
/// The most of a dump's text kept (for the diagnostics bundle and `state`).
const MAX_DUMP: usize = 1 << 20;

/// A driver's words as messages show them: cut to `max` characters, control
/// characters escaped.
fn shown(text: &str, max: usize) -> String {
    crate::text::printable(&crate::text::bounded(text, max)).into_owned()
}

/// The answer's body if it is the one `kind` (sent with `id`) expects.
fn check(kind: &'static str, id: u64, answer: Response) -> Result<ResponseBody, Fault> {
    let body = match answer.body {
        ResponseBody::Error { message } => {
            return Err(Fault::Refused(shown(&message, MAX_MESSAGE)))
        }
        ResponseBody::Dump(mut dump) => {
            dump.text = crate::text::bounded(&dump.text, MAX_DUMP).into_owned();
            ResponseBody::Dump(dump)
        }
        body => body,
    };
    let answer = Response { body, ..answer };
    let expected = match kind {
        "hello" => "hello",
        "flush" => "flushed",
        "dump" => "dump",
        _ => "ok",
    };
    if answer.id != id || answer.body.kind() != expected {
        return Err(Fault::WrongAnswer {
            got: answer.body.kind(),
            id: answer.id,
            expected,
            expected_id: id,
        });
    }
    Ok(answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_must_match_the_request() {
        let ok = |id| Response {
            id,
            body: ResponseBody::Ok,
        };
        assert_eq!(check("apply", 4, ok(4)).unwrap(), ResponseBody::Ok);
        assert!(matches!(
            check("apply", 4, ok(3)),
            Err(Fault::WrongAnswer { id: 3, .. })
        ));
        assert!(matches!(
            check("dump", 4, ok(4)),
            Err(Fault::WrongAnswer {
                expected: "dump",
                ..
            })
        ));
        let refused = Response {
            id: 9,
            body: ResponseBody::Error {
                message: "no map".into(),
            },
        };
        assert!(matches!(check("apply", 4, refused), Err(Fault::Refused(m)) if m == "no map"));
    }
}
