//! One driver process: started inside a node's namespace (the child enters it
//! between fork and exec, see [`Netns::command`]) in a process group of its
//! own, its stdout read line by line on a thread so every answer can be
//! waited for with a timeout, its stderr kept (bounded) for failures and the
//! diagnostics bundle, and killed by pid (its whole group) when done.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::spec::ExecSpec;
use crate::lab::netns::Netns;

/// The longest line read from a driver: a dump of a big node fits, a runaway
/// writer does not fill the harness's memory.
const MAX_LINE: usize = 16 << 20;
/// How much of a driver's stderr is kept: the newest bytes.
const STDERR_KEEP: usize = 64 << 10;
/// Lines of stderr quoted in a failure.
const STDERR_TAIL_LINES: usize = 20;
/// How long a driver's stderr may stay open after its stdout closed (a
/// grandchild holding it) before the tail is read without it.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// What the next line from the driver's stdout was.
pub(crate) enum Received {
    Line(String),
    /// A line the harness cannot take (too long, not UTF-8).
    Unreadable(String),
    /// Its stdout closed: it exited, or closed it.
    Closed,
    TimedOut,
}

/// The newest [`STDERR_KEEP`] bytes a driver wrote to stderr.
#[derive(Default)]
struct StderrBuffer {
    bytes: Vec<u8>,
    dropped: usize,
}

pub(crate) struct DriverProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Result<String, String>>,
    stderr: Arc<Mutex<StderrBuffer>>,
    stderr_done: Receiver<()>,
    pid_file: Option<PathBuf>,
    /// Its exit status, once it has exited (maybe not reaped yet).
    exited_status: Option<ExitStatus>,
    reaped: bool,
}

impl DriverProcess {
    /// Start `spec` inside `netns` with `env` added, writing its pid to
    /// `pid_file` (so lab teardown stops it even if this process dies).
    pub(crate) fn spawn(
        spec: &ExecSpec,
        netns: &Netns,
        env: &[(&str, String)],
        pid_file: Option<PathBuf>,
    ) -> Result<Self, String> {
        let program = spec.resolved_program();
        let mut command = netns.command(&program);
        command
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: killing the group takes whatever it started
            // (an `nft` mid-run), and a Ctrl-C at the terminal reaches only
            // the harness, which tears down in order.
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        // In the lab's cgroup, so everything it starts goes with the lab.
        if let Some(dir) = pid_file.as_ref().and_then(|p| p.parent()) {
            crate::lab::cgroup::confine(&mut command, dir);
        }
        let mut child = command.spawn().map_err(|e| spawn_error(&program, &e))?;
        let pid = child.id();
        if let Some(path) = &pid_file {
            if let Err(e) = std::fs::write(path, format!("{pid}\n")) {
                let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("writing its pid file {}: {e}", path.display()));
            }
        }
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr_pipe = child.stderr.take().expect("stderr was piped");
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || read_lines(stdout, line_tx));
        let stderr = Arc::new(Mutex::new(StderrBuffer::default()));
        let (done_tx, stderr_done) = mpsc::channel();
        let buffer = Arc::clone(&stderr);
        std::thread::spawn(move || {
            keep_stderr(stderr_pipe, &buffer);
            let _ = done_tx.send(());
        });
        Ok(DriverProcess {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stderr_done,
            pid_file,
            exited_status: None,
            reaped: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Write one line (a newline is added) and flush it.
    pub(crate) fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// The next line from its stdout, waiting at most `timeout`.
    pub(crate) fn receive(&self, timeout: Duration) -> Received {
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(line)) => Received::Line(line),
            Ok(Err(reason)) => Received::Unreadable(reason),
            Err(RecvTimeoutError::Disconnected) => Received::Closed,
            Err(RecvTimeoutError::Timeout) => Received::TimedOut,
        }
    }

    /// Close its stdin: the end of requests.
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Its exit status once it has exited, waiting at most `wait`. It is
    /// not reaped here: until [`DriverProcess::kill`] reaps it, its pid stays
    /// taken, so its process group's id cannot name anyone else's group.
    pub(crate) fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.exited_status {
                return Some(status);
            }
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(Pid::from_raw(self.child.id() as i32)), flags) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.exited_status = Some(ExitStatus::from_raw(code << 8));
                }
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    self.exited_status = Some(ExitStatus::from_raw(signal as i32));
                }
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => return None,
            }
        }
    }

    /// Its exit status as text, if it has exited by now.
    pub(crate) fn exited(&mut self) -> Option<String> {
        self.wait_exit(Duration::ZERO).map(describe_status)
    }

    /// Everything kept of its stderr (for the diagnostics bundle).
    pub(crate) fn stderr(&self) -> String {
        let buffer = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.dropped > 0 {
            format!("[{} earlier bytes not kept]\n{text}", buffer.dropped)
        } else {
            text
        }
    }

    /// The last lines of its stderr, once the pipe is drained when it has
    /// exited (so a crash's last words are in).
    pub(crate) fn stderr_tail(&mut self) -> String {
        if self.exited_status.is_some() {
            let _ = self.stderr_done.recv_timeout(STDERR_DRAIN);
        }
        let text = self.stderr();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n")
    }

    /// Kill its process group by pid, reap it and remove its pid file. The
    /// group is killed even when the driver itself has exited (a child it
    /// left in its group, maybe one that ignores SIGTERM, goes with it): it
    /// is reaped only after, so the group's id is still its own. Children
    /// that left the group go with the lab's namespaces (lab::daemons).
    pub(crate) fn kill(&mut self) {
        self.stdin = None;
        if !self.reaped {
            let pid = self.child.id() as i32;
            // The group first (pgid = pid, see spawn); the pid too, in case
            // it left its group.
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if let Ok(status) = self.child.wait() {
                self.exited_status.get_or_insert(status);
            }
            self.reaped = true;
        }
        if let Some(path) = self.pid_file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

fn read_lines(stdout: impl Read, lines: mpsc::Sender<Result<String, String>>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut buffer = Vec::new();
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buffer)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buffer.len() > MAX_LINE {
            let _ = lines.send(Err(format!("a line longer than {MAX_LINE} bytes")));
            return;
        }
        let line = match String::from_utf8(buffer) {
            Ok(text) => Ok(text.trim_end_matches(['\n', '\r']).to_string()),
            Err(_) => Err("a line that is not UTF-8".to_string()),
        };
        if lines.send(line).is_err() {
            return;
        }
    }
}

fn keep_stderr(mut stderr: impl Read, buffer: &Mutex<StderrBuffer>) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut chunk) {
        if n == 0 {
            return;
        }
        let mut buffer = buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.bytes.extend_from_slice(&chunk[..n]);
        if buffer.bytes.len() > STDERR_KEEP {
            let excess = buffer.bytes.len() - STDERR_KEEP;
            buffer.bytes.drain(..excess);
            buffer.dropped += excess;
        }
    }
}

/// Why a driver did not start, naming the package to install when the
/// program (or the interpreter its `#!` line names) is missing.
fn spawn_error(program: &Path, error: &std::io::Error) -> String {
    if error.kind() != std::io::ErrorKind::NotFound {
        return format!("{}: {error}", program.display());
    }
    let bare = program.components().count() == 1;
    if bare {
        // A bare name is looked for on PATH only, as a shell does; a file
        // of that name in the current folder is not it.
        let name = program.to_string_lossy();
        let here = std::env::current_dir().is_ok_and(|cwd| cwd.join(program).is_file());
        return match (crate::programs::package_of(&name), here) {
            (_, true) => format!(
                "`{name}` is not on PATH; to run the file `{name}` of the current folder, \
                 write exec:./{name}"
            ),
            // A program the harness knows (python3, ...) comes with its package.
            (Some(_), false) => crate::programs::missing(&name).to_string(),
            (None, false) => format!("`{name}` is not on PATH"),
        };
    }
    if !program.exists() {
        return format!("{}: no such file", program.display());
    }
    // The file is there: the kernel did not find the interpreter of its `#!`.
    let interpreter = std::fs::read(program).ok().and_then(|bytes| {
        let first = bytes.split(|b| *b == b'\n').next()?.to_vec();
        let line = String::from_utf8(first).ok()?;
        let mut words = line.strip_prefix("#!")?.split_whitespace();
        let first = words.next()?;
        // `#!/usr/bin/env python3` names the program after env.
        let name = match first.rsplit('/').next() {
            Some("env") => words.next()?,
            _ => first.rsplit('/').next()?,
        };
        Some(name.to_string())
    });
    match interpreter {
        Some(name) => format!(
            "{}: its interpreter is missing: {}",
            program.display(),
            crate::programs::missing(&name)
        ),
        None => format!("{}: {error}", program.display()),
    }
}
