//! Rootless mode: a normal user builds labs inside a user namespace of their
//! own, where they are root, instead of on the host with sudo.
//!
//! [`enter_new_namespace`] unshares a user, mount and network namespace (the
//! user mapped to root in it, as `unshare --map-root-user` does), makes every
//! mount private, and puts a tmpfs on /run, so /run/netns, iptables' lock file
//! and the rest of /run are this namespace's own and nothing reaches the
//! host's. The user's runtime directory ([`runtime_dir`]: $XDG_RUNTIME_DIR or
//! a private folder under /tmp) is bound back over the tmpfs: lab records live
//! there, where other processes of the same user find them.
//!
//! Namespaces pinned under the private /run/netns last as long as the mount
//! namespace, i.e. as long as a process is in it. A lab left running (`up`,
//! `--keep-on-failure`) gets a holder: a small process ([`spawn_holder`])
//! that stays in the namespaces and does nothing. `exec`, `state` and `down`
//! join the holder's (or the running owner's) user and mount namespaces
//! through /proc/<pid>/ns ([`enter_namespaces_of`]); `down` then ends it.
//!
//! The kernel refuses both unshare(CLONE_NEWUSER) and setns into a user
//! namespace to a process with more than one thread, so both must run at the
//! very start of `main`, before any runtime or logging thread exists.

mod detect;
mod others;
pub mod probe;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

pub use detect::{Blocker, UsernsSettings};
pub use others::{other_users_lab, other_users_labs, OtherUsersLab};

pub use super::holder::{HolderCheck, NsHolder};
use super::process::process_start_time;

#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error("{0}")]
    Disabled(Blocker),
    #[error(
        "entering a user namespace: {step}: {source} (user namespaces seem to be unavailable \
         here; run as root with sudo)"
    )]
    Sys {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "entering a user namespace needs a single-threaded process, and this one has {0} \
         threads (it must happen at start-up)"
    )]
    Threads(usize),
    #[error("runtime directory {path}: {why}")]
    RuntimeDir { path: PathBuf, why: String },
    #[error("the process holding the lab's namespaces ({pid}) is gone")]
    HolderGone { pid: u32 },
    #[error(
        "lab '{lab}': its record names process {pid} as the holder of its namespaces, but \
         process {pid} is {what}: the record is wrong or forged; nothing was done to process {pid}"
    )]
    NotTheHolder { lab: String, pid: u32, what: String },
    #[error("starting the process that holds the lab's namespaces: {0}")]
    Holder(#[source] std::io::Error),
}

/// This process entered a rootless namespace of its own at start-up.
#[derive(Clone, Debug)]
pub struct Session {
    pub runtime_dir: PathBuf,
}

static SESSION: OnceLock<Session> = OnceLock::new();

/// This process as its lab's holder, when it runs in a rootless namespace
/// of its own.
pub fn this_process_holder() -> Option<NsHolder> {
    session()?;
    let pid = std::process::id();
    Some(NsHolder {
        pid,
        start_time: process_start_time(pid)?,
    })
}

/// The rootless session this process made, if it made one.
pub fn session() -> Option<&'static Session> {
    SESSION.get()
}

/// The user's runtime directory: $XDG_RUNTIME_DIR when it is an absolute
/// directory owned by this user, else `/tmp/fip-harness-<uid>` (made 0700, and
/// refused unless it is a real directory owned by this user and closed to others).
pub fn runtime_dir() -> Result<PathBuf, RootlessError> {
    let uid = nix::unistd::Uid::effective().as_raw();
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        let owned = std::fs::metadata(&xdg).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if xdg.is_absolute() && owned {
            return Ok(xdg.join("fip-harness"));
        }
    }
    let dir = PathBuf::from(format!("/tmp/fip-harness-{uid}"));
    let refuse = |why: String| RootlessError::RuntimeDir {
        path: dir.clone(),
        why,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(refuse(e.to_string())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "not a directory of uid {uid} closed to others; remove it or set XDG_RUNTIME_DIR"
        )));
    }
    Ok(dir)
}

/// Where rootless lab records live: `labs/` under [`runtime_dir`].
pub fn registry_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("labs")
}

fn single_threaded() -> Result<(), RootlessError> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|tasks| tasks.count())
        .unwrap_or(1);
    if threads > 1 {
        return Err(RootlessError::Threads(threads));
    }
    Ok(())
}

/// What failed, explained by the host setting that forbids user namespaces
/// when there is one.
fn failed(step: &'static str, source: impl Into<std::io::Error>) -> RootlessError {
    match UsernsSettings::read().blocker() {
        Some(blocker) => RootlessError::Disabled(blocker),
        None => RootlessError::Sys {
            step,
            source: source.into(),
        },
    }
}

/// Enter a new user namespace (this user as root), mount namespace (all
/// private, a tmpfs on /run, the runtime directory bound back) and network
/// namespace. Call at start-up, single-threaded.
pub fn enter_new_namespace() -> Result<&'static Session, RootlessError> {
    single_threaded()?;
    let runtime = runtime_dir()?;
    std::fs::create_dir_all(&runtime).map_err(|e| RootlessError::RuntimeDir {
        path: runtime.clone(),
        why: e.to_string(),
    })?;
    // Opened before the tmpfs hides it, bound back from this descriptor.
    let keep = File::open(&runtime).map_err(|e| RootlessError::RuntimeDir {
        path: runtime.clone(),
        why: e.to_string(),
    })?;
    let uid = nix::unistd::Uid::effective();
    let gid = nix::unistd::Gid::effective();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)
        .map_err(|e| failed("unshare", e))?;
    // An unprivileged process may map only itself, and only after giving up
    // setgroups (user_namespaces(7)).
    std::fs::write("/proc/self/setgroups", "deny").map_err(|e| failed("setgroups", e))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(|e| failed("uid_map", e))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(|e| failed("gid_map", e))?;
    let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|e| failed("make mounts private", e))?;
    let tmpfs = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        tmpfs,
        Some("mode=0755"),
    )
    .map_err(|e| failed("tmpfs on /run", e))?;
    if runtime.starts_with("/run") {
        std::fs::create_dir_all(&runtime).map_err(|e| failed("runtime dir in /run", e))?;
        let source = format!("/proc/self/fd/{}", keep.as_raw_fd());
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(
            Some(source.as_str()),
            &runtime,
            None::<&str>,
            bind,
            None::<&str>,
        )
        .map_err(|e| failed("bind the runtime dir back", e))?;
    }
    drop(keep);
    Ok(SESSION.get_or_init(|| Session {
        runtime_dir: runtime,
    }))
}

/// Join the user and mount namespaces of `holder` (a rootless lab's), keeping
/// the working directory. Call at start-up, single-threaded.
pub fn enter_namespaces_of(holder: &NsHolder) -> Result<(), RootlessError> {
    single_threaded()?;
    let gone = || RootlessError::HolderGone { pid: holder.pid };
    let open = |ns: &str| File::open(format!("/proc/{}/ns/{ns}", holder.pid)).map_err(|_| gone());
    let (user, mnt) = (open("user")?, open("mnt")?);
    // Checked after opening: the files name the holder's namespaces, not a
    // later process's that reused its pid.
    if !holder.alive() {
        return Err(gone());
    }
    let cwd = std::env::current_dir().ok();
    setns(&user, CloneFlags::CLONE_NEWUSER).map_err(|e| failed("join user namespace", e))?;
    setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| failed("join mount namespace", e))?;
    // Joining a mount namespace moves the working directory to its root.
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(())
}

/// Start a holder for `lab`: this program's hidden `hold` command, in this
/// process's namespaces, in a session of its own (a closed terminal or Ctrl-C
/// there does not end it), doing nothing until `down` sends SIGTERM.
pub fn spawn_holder(lab: &str) -> Result<NsHolder, RootlessError> {
    let exe = std::env::current_exe().map_err(RootlessError::Holder)?;
    let mut command = Command::new(exe);
    command
        .args(["hold", lab])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe, the only call between fork and exec.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    let child = command.spawn().map_err(RootlessError::Holder)?;
    let pid = child.id();
    let start_time = process_start_time(pid)
        .ok_or_else(|| RootlessError::Holder(std::io::Error::other("it ended at once")))?;
    Ok(NsHolder { pid, start_time })
}

/// The body of the holder: wait for a signal that ends the process.
pub fn hold() -> ! {
    loop {
        nix::unistd::pause();
    }
}
