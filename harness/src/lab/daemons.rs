//! Daemons a lab runs inside its namespaces (BIRD, drivers). Each writes a
//! pid file into the lab's own directory under the run directory; every
//! teardown path stops them by those pids, so `down` works from the lab's
//! name alone, even after the process that started them died. Then
//! everything they started goes: where the machine gives a cgroup v2, every
//! process of the lab's cgroup (lab::cgroup: all their descendants, wherever
//! they went); everywhere, every process still inside one of the lab's
//! network namespaces (a driver's children whatever their process group,
//! whether they ignore SIGTERM, a BIRD whose pid file is gone, a shell left
//! by `exec`). Without a cgroup, a descendant that moved to a network
//! namespace of its own is missed: docs/rootless.md says so.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::netns::pin_path;
use super::run_dir::run_dir;

/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// `<run dir>/<lab>/`: control sockets, pid files, configurations and logs of
/// the lab's daemons.
pub fn lab_dir(lab: &str) -> PathBuf {
    run_dir().join(lab)
}

/// The pid in `pid_file`, if the process still runs and is the daemon that
/// wrote it: its command line (BIRD's configuration path) or its environment
/// (a driver's `FIP_HARNESS_LAB_DIR`, see driver/session.rs) names
/// `owner_mark`, a path inside the lab's directory, so a recycled pid is
/// never signalled.
pub fn live_pid(pid_file: &Path, owner_mark: &str) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    let names_mark = |file: &str| {
        std::fs::read(format!("/proc/{pid}/{file}"))
            .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(owner_mark))
    };
    (names_mark("cmdline") || names_mark("environ")).then_some(pid)
}

/// Stop the daemon of `pid_file` (SIGTERM, then SIGKILL after a grace
/// period) and remove the pid file. A daemon already gone is fine.
pub fn stop_daemon(pid_file: &Path, owner_mark: &str) -> Result<(), String> {
    let result = match live_pid(pid_file, owner_mark) {
        None => Ok(()),
        Some(pid) => terminate(Pid::from_raw(pid)),
    };
    match std::fs::remove_file(pid_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", pid_file.display())),
    }
    result.map_err(|e| format!("stopping the daemon of {}: {e}", pid_file.display()))
}

/// SIGTERM, then SIGKILL after [`TERM_GRACE`]; a process that leads its own
/// group (a driver) is signalled with its whole group.
fn terminate(pid: Pid) -> Result<(), String> {
    let leads_group = nix::unistd::getpgid(Some(pid)) == Ok(pid);
    if leads_group {
        let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGTERM);
    }
    match kill(pid, Signal::SIGTERM) {
        Ok(()) => {}
        Err(nix::errno::Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    }
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline {
        if !running(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if leads_group {
        let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
    }
    match kill(pid, Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `pid` runs (a zombie does not: it has exited, only its parent
/// has not reaped it yet).
fn running(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
    }
}

/// Stop every daemon with a pid file in the lab's directory, then remove the
/// directory. Keeps going after errors and returns them all.
pub fn stop_lab_daemons(lab: &str) -> Vec<String> {
    let dir = lab_dir(lab);
    let mark = dir.display().to_string();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // Its cgroup may still be there (lab::cgroup looks for it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return super::cgroup::stop(&dir),
        Err(e) => return vec![format!("reading {}: {e}", dir.display())],
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pid") {
            if let Err(e) = stop_daemon(&path, &mark) {
                errors.push(e);
            }
        }
    }
    // Then whatever they started (lab::cgroup), wherever it went.
    errors.extend(super::cgroup::stop(&dir));
    if errors.is_empty() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("removing {}: {e}", dir.display()));
            }
        }
    }
    errors
}

/// Stop every process that runs inside one of `namespaces` (found by its
/// network namespace's inode), before the namespaces go: a process keeps its
/// namespace alive after the pin goes, so whatever is left in one would
/// outlive the lab. A driver's children (also those that left its process
/// group or ignore SIGTERM), a BIRD whose pid file went with its run
/// directory, a shell left by `exec`: all get SIGTERM, then SIGKILL after
/// [`TERM_GRACE`]. This process is never one of them.
pub fn stop_strays(namespaces: &[String]) -> Vec<String> {
    let inodes: BTreeSet<(u64, u64)> = namespaces
        .iter()
        .filter_map(|ns| std::fs::metadata(pin_path(ns)).ok())
        .map(|meta| (meta.dev(), meta.ino()))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let strays = processes_in(&inodes);
    let mut errors = Vec::new();
    for (pid, comm) in &strays {
        tracing::info!(pid, comm, "stopping a process left in the lab's namespaces");
        if let Err(e) = kill(Pid::from_raw(*pid), Signal::SIGTERM) {
            if e != nix::errno::Errno::ESRCH {
                errors.push(format!("stopping {comm} {pid}: {e}"));
            }
        }
    }
    let deadline = Instant::now() + TERM_GRACE;
    let mut left: Vec<&(i32, String)> = strays.iter().collect();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|(pid, _)| running(Pid::from_raw(*pid)));
        std::thread::sleep(Duration::from_millis(10));
    }
    for (pid, comm) in left {
        tracing::info!(
            pid,
            comm,
            "killing a process that outlived SIGTERM in the lab"
        );
        match kill(Pid::from_raw(*pid), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => errors.push(format!("killing {comm} {pid}: {e}")),
        }
    }
    errors
}

/// Running processes (pid, name) whose network namespace is one of `inodes`.
fn processes_in(inodes: &BTreeSet<(u64, u64)>) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let net = std::fs::metadata(entry.path().join("ns/net")).ok()?;
            let inside = inodes.contains(&(net.dev(), net.ino()));
            (inside && pid != me && running(Pid::from_raw(pid))).then(|| {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                (pid, comm.trim().to_string())
            })
        })
        .collect()
}
