//! One cgroup v2 per lab, where this process may make one: every daemon the
//! lab starts (BIRD, `exec:` drivers) joins it between fork and exec, so
//! whatever they start in turn (a child that ignores SIGTERM, one that
//! double-forks and leaves its process group, one that moves to a network
//! namespace of its own) is in it too; no process leaves a cgroup without
//! privileges over both cgroups. Teardown ends everything in it: SIGTERM,
//! then, after a grace period, `cgroup.kill` (or SIGKILL to each member where
//! the kernel has no `cgroup.kill`, before 5.14), then removes it.
//!
//! The cgroup's path is kept in `<lab dir>/cgroup`, so `down` finds it after
//! the process that made it died (kill -9); without that record, `down`
//! looks where it would have made it itself. A path is trusted only when it is
//! a directory of a cgroup2 file system named `fiph-<lab>`: everything in it
//! was put there by a lab of that name (the name is the lab's own, claimed).
//!
//! Where no cgroup can be made (no cgroup2 mounted, no write access: a normal
//! user, a rootless lab's user namespace), nothing is confined and teardown
//! relies on the processes' network namespaces (lab::daemons::stop_strays):
//! a descendant that moves to a network namespace of its own is then missed.
//! docs/rootless.md says so.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The file in a lab's directory that names its cgroup.
pub const RECORD: &str = "cgroup";
/// How long members get to exit after SIGTERM before they are killed.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long killed members get to be gone before the cgroup is removed.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Serialises making a lab's cgroup and its record (drivers of several nodes
/// start on several threads).
static MAKING: Mutex<()> = Mutex::new(());

/// The name of lab `lab`'s cgroup.
fn name_of(lab: &str) -> String {
    format!("fiph-{lab}")
}

/// The lab's cgroup, made (and recorded in `lab_dir`) if it does not exist
/// yet; `None` where this process cannot make one.
fn ensure(lab_dir: &Path) -> Option<PathBuf> {
    let lab = lab_dir.file_name()?.to_str()?;
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = recorded(lab_dir, lab) {
        return Some(path);
    }
    let path = own_cgroup()?.join(name_of(lab));
    match std::fs::create_dir(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            tracing::debug!("no cgroup for lab '{lab}' ({}: {e})", path.display());
            return None;
        }
    }
    let record = lab_dir.join(RECORD);
    let written = std::fs::create_dir_all(lab_dir).and_then(|()| {
        crate::lab::files::write_atomically(&record, path.display().to_string().as_bytes())
            .map_err(std::io::Error::other)
    });
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!("recording the cgroup of lab '{lab}': {e}");
            let _ = std::fs::remove_dir(&path);
            None
        }
    }
}

/// This process's own cgroup v2 directory, if cgroup2 is mounted and the
/// directory is there.
fn own_cgroup() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Fields: id parent major:minor root mount-point options... - fstype ...
    let mount = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split(' ').next()? == "cgroup2").then(|| before.split(' ').nth(4))?
    })?;
    let path = Path::new(mount).join(own.trim_start_matches('/'));
    path.is_dir().then_some(path)
}

/// The cgroup `lab_dir` records, if it is one this lab may own (see the
/// module's comment).
pub fn recorded(lab_dir: &Path, lab: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(lab_dir.join(RECORD)).ok()?;
    let path = PathBuf::from(text.trim());
    let trusted = path.is_absolute()
        && path.file_name() == Some(OsStr::new(&name_of(lab)))
        && nix::sys::statfs::statfs(&path)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if !trusted {
        tracing::warn!(
            "ignoring {}: {} is not lab '{lab}''s cgroup",
            lab_dir.join(RECORD).display(),
            crate::text::printable(&path.display().to_string())
        );
    }
    trusted.then_some(path)
}

/// Have the process `command` starts join the lab's cgroup between fork and
/// exec (before it can start anything). Nothing changes where no cgroup can
/// be made.
pub fn confine(command: &mut Command, lab_dir: &Path) {
    let Some(cgroup) = ensure(lab_dir) else {
        return;
    };
    let procs = OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"));
    let procs = match procs {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!("cannot join cgroup {}: {e}", cgroup.display());
            return;
        }
    };
    // SAFETY: only write(2), async-signal-safe, between fork and exec; the
    // file is opened before the fork and lives as long as the command.
    unsafe {
        command.pre_exec(move || {
            // "0" moves the writing process (Documentation/admin-guide/cgroup-v2.rst).
            // A refusal does not fail the spawn: a cgroup can be made yet
            // refuse members (a domain controller's "no internal process"
            // rule, a threaded subtree, delegation limits); the process then
            // runs where it was and teardown falls back to the search of the
            // lab's namespaces (lab::daemons::stop_strays).
            let _ = libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1);
            Ok(())
        });
    }
}

/// Joins the cgroup whose `cgroup.procs` is `$1`, then becomes the program
/// named next, with the rest as its arguments; a refused join is ignored as
/// in [`confine`].
const JOIN_THEN_EXEC: &str = r#"{ echo 0 >"$1"; } 2>/dev/null; shift; exec "$@""#;

/// A command for `program` whose process joins the lab's cgroup before the
/// program starts, as [`confine`] does, but without a `pre_exec`: a small
/// shell joins and then execs the program (same pid). Started through
/// [`crate::lab::netns::Netns::spawn`] it needs no fork of this process
/// (`pre_exec` makes the standard library fork, and with 16 labs at once
/// the many-threaded harness's page tables were copied for every BIRD
/// started, and its every later write faulted: a fifth of its CPU time in a
/// catalogue run, docs/benchmarks.md). Where no cgroup can be made, or
/// `program` is not on the PATH (the spawn then fails as for the bare
/// program), it is the bare program.
pub fn confined_command(program: &str, lab_dir: &Path) -> Command {
    let shell = crate::programs::require_program("sh");
    let resolved = crate::programs::require_program(program);
    let (Some(cgroup), Ok(shell), Ok(resolved)) = (ensure(lab_dir), shell, resolved) else {
        return Command::new(program);
    };
    let mut command = Command::new(shell);
    command
        .arg("-c")
        .arg(JOIN_THEN_EXEC)
        .arg("sh")
        .arg(cgroup.join("cgroup.procs"))
        .arg(resolved);
    command
}

/// The processes in `cgroup` (its `cgroup.procs`).
fn members(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Wait until `cgroup` has no process, at most `wait`.
fn emptied(cgroup: &Path, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if members(cgroup).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// End every process in the cgroup `lab_dir` records and remove the cgroup
/// (and the record). Returns what could not be done.
pub fn stop(lab_dir: &Path) -> Vec<String> {
    let Some(lab) = lab_dir.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    // Without its record (a run folder removed, another run folder), the
    // place this process would have made it in.
    let found = recorded(lab_dir, lab).or_else(|| {
        let path = own_cgroup()?.join(name_of(lab));
        path.is_dir().then_some(path)
    });
    let Some(cgroup) = found else {
        return Vec::new();
    };
    let left = members(&cgroup);
    if !left.is_empty() {
        for pid in &left {
            tracing::info!(pid, "stopping a process left in the lab's cgroup");
            signal_member(&cgroup, *pid, libc::SIGTERM);
        }
        if !emptied(&cgroup, TERM_GRACE) {
            kill_all(&cgroup);
        }
        if !emptied(&cgroup, KILL_WAIT) {
            return vec![format!(
                "processes {:?} of cgroup {} outlived SIGKILL",
                members(&cgroup),
                cgroup.display()
            )];
        }
    }
    match std::fs::remove_dir(&cgroup) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return vec![format!("removing cgroup {}: {e}", cgroup.display())],
    }
    let _ = std::fs::remove_file(lab_dir.join(RECORD));
    Vec::new()
}

/// `signal` to `pid` if it is (still) in `cgroup`: the check is made on a
/// pidfd, which names that one process, so a pid recycled after the cgroup
/// was read is never signalled.
fn signal_member(cgroup: &Path, pid: i32, signal: i32) {
    // SAFETY: plain system calls on integers; the fd is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd < 0 {
        return;
    }
    let relative = cgroup
        .file_name()
        .map(|name| format!("/{}", name.to_string_lossy()))
        .unwrap_or_default();
    let still_ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| {
        text.lines()
            .any(|l| l.starts_with("0::") && l.trim_end().ends_with(&relative))
    });
    if still_ours {
        // SAFETY: as above.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    // SAFETY: pidfd is ours and open.
    unsafe { libc::close(pidfd) };
}

/// SIGKILL everything in `cgroup`, forks in flight included: `cgroup.kill`
/// does it in the kernel; without it, members are killed until none is left.
fn kill_all(cgroup: &Path) {
    let killed = OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"));
    if killed.is_ok() {
        return;
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let left = members(cgroup);
        if left.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in left {
            tracing::info!(pid, "killing a process that outlived SIGTERM in the lab");
            signal_member(cgroup, pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
