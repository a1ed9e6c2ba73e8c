//! One BIRD daemon inside a lab namespace: started as calico/node starts it
//! (`bird -c <config> -s <control socket> -P <pid file>`, one per family),
//! reconfigured as confd reloads it (`birdc configure`), watched, stopped.
//! Its files live in the lab's directory (see [`crate::lab::daemons`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::birdc::{Birdc, BirdcError};
use super::render::{daemon_name, log_file_name};
use crate::calico::IpFamily;
use crate::lab::daemons;
use crate::lab::netns::Netns;

/// How long a started daemon has to write its pid file and open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest usable Unix socket path (sun_path holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Lines of the log a failure report quotes.
const LOG_TAIL_LINES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error("{daemon} for {member}: {action}: {source}")]
    Io {
        daemon: &'static str,
        member: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::lab::files::WriteError),
    #[error("{daemon} for {member} did not start: {reason}\n{log}")]
    Start {
        daemon: &'static str,
        member: String,
        reason: String,
        log: String,
    },
    #[error(
        "{daemon} for {member}: control socket path {path} is longer than {MAX_SOCKET_PATH} bytes"
    )]
    SocketPath {
        daemon: &'static str,
        member: String,
        path: String,
    },
    #[error("{daemon} for {member} is not running any more; the end of its log:\n{log}")]
    Died {
        daemon: &'static str,
        member: String,
        log: String,
    },
    #[error("{daemon} for {member}: {source}")]
    Birdc {
        daemon: &'static str,
        member: String,
        #[source]
        source: Box<BirdcError>,
    },
    #[error("{daemon} for {member}: stopping: {reason}")]
    Stop {
        daemon: &'static str,
        member: String,
        reason: String,
    },
}

/// A running BIRD (or bird6) of one lab member.
#[derive(Debug)]
pub struct BirdDaemon {
    member: String,
    family: IpFamily,
    dir: PathBuf,
    stopped: bool,
}

impl BirdDaemon {
    /// Write `config` and start the daemon inside `netns`. Returns once its
    /// pid file and control socket exist (BIRD has parsed the configuration
    /// and daemonised).
    pub fn start(
        netns: &Netns,
        member: &str,
        family: IpFamily,
        dir: &Path,
        config: &str,
    ) -> Result<Self, BirdError> {
        let daemon = Self {
            member: member.to_string(),
            family,
            dir: dir.to_path_buf(),
            stopped: false,
        };
        let socket = daemon.socket_path();
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(BirdError::SocketPath {
                daemon: daemon.daemon(),
                member: member.into(),
                path: socket.display().to_string(),
            });
        }
        // Under the creation lock an interrupt's clean-up waits on: it then
        // finds the daemon by its pid file, never half-started (BIRD writes
        // the file after it forks, so a clean-up in between would miss it),
        // and no directory or configuration appears after it removed them.
        let launch = || -> Result<(), BirdError> {
            std::fs::create_dir_all(dir).map_err(|e| daemon.io("creating its directory", e))?;
            crate::lab::files::write_atomically(&daemon.config_path(), config.as_bytes())?;
            daemon.launch(netns, &socket)
        };
        match crate::lab::signals::unless_cancelled(launch) {
            Ok(launched) => launched.map(|()| daemon),
            Err(_) => Err(daemon.start_error("the process is being interrupted".into())),
        }
    }

    /// Run the daemon and wait until its pid file and control socket exist.
    fn launch(&self, netns: &Netns, socket: &Path) -> Result<(), BirdError> {
        // In the lab's cgroup: teardown ends whatever it forks. Spawned from
        // a thread inside the namespace, with no fork of this process.
        let mut command = crate::lab::cgroup::confined_command(self.daemon(), &self.dir);
        command
            .arg("-c")
            .arg(self.config_path())
            .arg("-s")
            .arg(socket)
            .arg("-P")
            .arg(self.pid_path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // Its first whole second soon after it starts (see bgp/clock.rs).
        let first_tick = super::clock::first_tick_soon();
        let output = netns
            .spawn_prepared(&mut command, &first_tick)
            .and_then(std::process::Child::wait_with_output)
            .map_err(|e| self.io("running it (is BIRD 1.6 installed?)", e))?;
        if !output.status.success() {
            return Err(self.start_error(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.pid().is_some() && self.birdc().query("show status").is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.start_error(format!(
                    "no pid file and control socket after {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon of `member` a kept lab still runs, started by another
    /// process; fails with its log when it is not running. It is never
    /// stopped through this value: the lab stays the person's (`down`).
    pub fn adopt(member: &str, family: IpFamily, dir: &Path) -> Result<Self, BirdError> {
        let daemon = Self {
            member: member.to_string(),
            family,
            dir: dir.to_path_buf(),
            stopped: true,
        };
        daemon.check_alive()?;
        Ok(daemon)
    }

    pub fn member(&self) -> &str {
        &self.member
    }

    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// `bird` or `bird6`.
    pub fn daemon(&self) -> &'static str {
        daemon_name(self.family)
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{}.{suffix}", self.member, self.daemon()))
    }

    pub fn config_path(&self) -> PathBuf {
        self.file("conf")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.file("ctl")
    }

    pub fn pid_path(&self) -> PathBuf {
        self.file("pid")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(log_file_name(&self.member, self.family))
    }

    /// A client for this daemon's control socket.
    pub fn birdc(&self) -> Birdc {
        Birdc::new(self.socket_path())
    }

    /// The daemon's pid while it runs (it is the process that wrote the pid
    /// file and whose command line names this daemon's socket).
    pub fn pid(&self) -> Option<i32> {
        daemons::live_pid(&self.pid_path(), &self.socket_path().display().to_string())
    }

    /// Fails with the end of the log when the daemon is gone.
    pub fn check_alive(&self) -> Result<(), BirdError> {
        if self.pid().is_some() {
            Ok(())
        } else {
            Err(BirdError::Died {
                daemon: self.daemon(),
                member: self.member.clone(),
                log: self.log_tail(),
            })
        }
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Write a new configuration and have BIRD load it, as confd does after
    /// rendering (`birdc configure`): sessions whose settings did not change
    /// stay up; changed filters re-evaluate the routes.
    pub fn reconfigure(&self, config: &str) -> Result<(), BirdError> {
        self.check_alive()?;
        crate::lab::files::write_atomically(&self.config_path(), config.as_bytes())?;
        self.birdc().configure().map_err(|source| BirdError::Birdc {
            daemon: self.daemon(),
            member: self.member.clone(),
            source: Box::new(source),
        })
    }

    /// Leave the daemon running when this value goes (a lab kept up for
    /// people; `down` stops it by its pid file).
    pub fn detach(mut self) {
        self.stopped = true;
    }

    /// Stop the daemon by its pid (SIGTERM, then SIGKILL). BIRD's kernel
    /// protocol is `persist`, so its routes stay in a namespace that is
    /// about to go anyway.
    pub fn stop(&mut self) -> Result<(), BirdError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        daemons::stop_daemon(&self.pid_path(), &self.socket_path().display().to_string()).map_err(
            |reason| BirdError::Stop {
                daemon: self.daemon(),
                member: self.member.clone(),
                reason,
            },
        )
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> BirdError {
        BirdError::Io {
            daemon: self.daemon(),
            member: self.member.clone(),
            action,
            source,
        }
    }

    fn start_error(&self, reason: String) -> BirdError {
        // BIRD cannot write its pid file or log on a full disk; say that,
        // not only that it did not start.
        if crate::lab::files::no_room_left(&self.dir) {
            return BirdError::Write(crate::lab::files::WriteError::DiskFull {
                path: self.dir.clone(),
            });
        }
        BirdError::Start {
            daemon: self.daemon(),
            member: self.member.clone(),
            reason,
            log: self.log_tail(),
        }
    }
}

impl Drop for BirdDaemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!("{e}");
        }
    }
}
