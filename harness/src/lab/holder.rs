//! The process that holds a rootless lab's namespaces, as its record names
//! it, and the check that it is that process (see [`super::rootless`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::claim::{lock_holders_of, lock_path};
use super::process::process_start_time;

/// The process whose user and mount namespaces hold a rootless lab: the
/// `run` or `up` that builds it, then the holder left behind when it is kept.
/// Named by pid and start time, so a reused pid is never mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsHolder {
    pub pid: u32,
    pub start_time: u64,
}

impl NsHolder {
    /// Runs: the same pid and start time, and not a zombie (a holder whose
    /// `up` has exited is reaped by whoever adopted it, maybe never).
    pub fn alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next());
        !matches!(state, None | Some("Z") | Some("X"))
            && process_start_time(self.pid) == Some(self.start_time)
    }

    /// Whether this is lab `lab`'s holder: alive (the same pid and start
    /// time), a process of this user, and either the hidden `hold <lab>`
    /// command or the lab's owner itself (`owner`: the `run` or `up` that
    /// builds it holds its namespaces meanwhile) holding the lab's lock. A record names its holder;
    /// this is what keeps a wrong or forged record from making `exec`,
    /// `state` or `down` join, or signal, a process that is not one.
    pub fn check(&self, lab: &str, owner: u32) -> HolderCheck {
        let me = real_uid("self").unwrap_or(u32::MAX);
        self.check_for(lab, owner, me, &lock_path(lab))
    }

    /// [`NsHolder::check`] for the lab of user `uid` whose lock file is `lock`.
    pub fn check_for(&self, lab: &str, owner: u32, uid: u32, lock: &Path) -> HolderCheck {
        if !self.alive() {
            return HolderCheck::Gone;
        }
        let theirs = real_uid(&self.pid.to_string());
        if theirs != Some(uid) {
            let whose = theirs.map_or("unknown".to_string(), |u| u.to_string());
            return HolderCheck::NotTheHolder(format!("another user's (uid {whose})"));
        }
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let holds =
            args.get(1).is_some_and(|a| a == "hold") && args.get(2).is_some_and(|a| a == lab);
        // The owner holds the lab's namespaces while it builds and uses it,
        // and holds its lock file then (lab::claim).
        let owns = self.pid == owner && lock_holders_of(lock).contains(&owner);
        if holds || owns {
            return HolderCheck::Holds;
        }
        let joined = args.join(" ");
        let printable = crate::text::printable(&joined);
        let shown = crate::text::bounded(&printable, 80);
        HolderCheck::NotTheHolder(format!("`{shown}`, not `fip-harness hold {lab}`"))
    }

    /// End a holder that is not this process (SIGTERM; its namespaces go with
    /// it once the lab's other processes have ended). Only a process
    /// [`NsHolder::check`] finds to be the lab's holder is signalled.
    pub fn stop(&self, lab: &str, owner: u32) {
        if self.pid != std::process::id() && self.check(lab, owner) == HolderCheck::Holds {
            let pid = nix::unistd::Pid::from_raw(self.pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// The real uid of process `pid` (or `self`) as this process's user
/// namespace sees it.
fn real_uid(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// What the process a lab record names as its holder turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HolderCheck {
    Holds,
    /// It does not run any more (or its pid names a later process).
    Gone,
    /// It runs, but is not the lab's holder: what it is instead.
    NotTheHolder(String),
}
