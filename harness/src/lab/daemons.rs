//! Daemons a lab runs inside its namespaces (BIRD, for one). Each writes a
//! pid file into the lab's own directory under the run directory; every
//! teardown path stops them by those pids, so `down` works from the lab's
//! name alone, even after the process that started them died.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::netns::pin_path;
use super::registry::run_dir;

/// Process names of the daemons a lab runs (BIRD, one per family).
const LAB_DAEMONS: [&str; 2] = ["bird", "bird6"];

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

fn terminate(pid: Pid) -> Result<(), String> {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return errors,
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
    if errors.is_empty() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("removing {}: {e}", dir.display()));
            }
        }
    }
    errors
}

/// Stop every BIRD that runs inside one of `namespaces` (found by its
/// network namespace's inode, not by a pid file), before the namespaces go.
/// A daemon whose pid file went with its run directory (a test's temporary
/// one removed while the lab stood, a process killed mid-case and its lab
/// removed by `down` from elsewhere) would otherwise outlive its lab, since
/// a process keeps its namespace alive after the pin goes. Only BIRD is
/// stopped this way: anything else in a namespace is a person's (`exec`).
pub fn stop_strays(namespaces: &[String]) -> Vec<String> {
    let inodes: BTreeSet<(u64, u64)> = namespaces
        .iter()
        .filter_map(|ns| std::fs::metadata(pin_path(ns)).ok())
        .map(|meta| (meta.dev(), meta.ino()))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return vec!["reading /proc".to_string()];
    };
    let mut errors = Vec::new();
    for entry in processes.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !LAB_DAEMONS.contains(&comm.trim()) {
            continue;
        }
        let Ok(net) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if !inodes.contains(&(net.dev(), net.ino())) || !running(Pid::from_raw(pid)) {
            continue;
        }
        tracing::info!(pid, "stopping a BIRD left in the lab without its pid file");
        if let Err(e) = terminate(Pid::from_raw(pid)) {
            errors.push(format!("stopping {} {pid}: {e}", comm.trim()));
        }
    }
    errors
}
