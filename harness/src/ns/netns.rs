//! Named network namespaces, and running code inside them.
//!
//! A namespace is pinned by a bind mount under `/run/netns/<name>`, the same place
//! `ip netns` uses, so people can reach a lab with `ip netns exec` too and cleanup
//! works from the name alone. Code never moves a tokio worker thread into a
//! namespace: [`Netns::run`] does the work on a short-lived thread of its own that
//! enters the namespace and ends, and [`Netns::command`] makes the child process
//! enter it between fork and exec.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Where named namespaces are pinned (shared with iproute2).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Threads that remove pins at once: they mostly sleep in the kernel (see
/// [`Netns::delete_all`]), so more than the machine's cores.
const DELETE_THREADS: usize = 32;

pub use crate::vocab::names::LAB_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace '{name}': {action}: {source}")]
    Sys {
        name: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace '{name}': sysctl {key}: {source}")]
    Sysctl {
        name: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace '{0}' already exists")]
    Exists(String),
    #[error("not creating network namespace '{0}': the process is being interrupted")]
    Cancelled(String),
    #[error("network namespace name '{0}' is not usable (1-64 chars of [A-Za-z0-9._-])")]
    BadName(String),
    #[error("thread running inside network namespace '{0}' panicked")]
    ThreadPanicked(String),
}

/// Whether namespaces may still be created. A process that tears its labs
/// down on an interrupt closes its gate first: creations in flight end (they
/// hold it open for reading), later ones are refused, so nothing is created
/// after the clean-up starts looking for what to remove. The gate is passed
/// in; this module keeps none of its own.
#[derive(Debug, Default)]
pub struct CreationGate(RwLock<bool>);

/// Creation was refused: the gate is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl CreationGate {
    pub const fn new() -> Self {
        Self(RwLock::new(false))
    }

    /// Run `create` unless the gate is closed; closing waits for it to end.
    /// Nothing in `create` may take this gate again (a close waiting for it
    /// would block the second read for ever).
    pub fn unless_closed<R>(&self, create: impl FnOnce() -> R) -> Result<R, Closed> {
        let closed = self.0.read().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(Closed);
        }
        Ok(create())
    }

    /// Refuse every later creation (after those in flight end).
    pub fn close(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = true;
    }

    pub fn is_closed(&self) -> bool {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn sys(name: &str, action: &'static str, source: impl Into<std::io::Error>) -> NetnsError {
    NetnsError::Sys {
        name: name.to_string(),
        action,
        source: source.into(),
    }
}

/// A handle to a named network namespace. Cheap to clone; the namespace lives
/// until [`Netns::delete`] removes its pin and the last socket in it closes.
/// A handle from [`Netns::by_name`] holds no file: it opens the pin each time
/// it is used, so a lab's thousands of pods do not each keep a descriptor.
#[derive(Clone, Debug)]
pub struct Netns {
    name: Arc<str>,
    file: Option<Arc<File>>,
}

impl Netns {
    /// Create a new, empty namespace pinned at `/run/netns/<name>`.
    pub fn create(name: &str, gate: &CreationGate) -> Result<Self, NetnsError> {
        validate_name(name)?;
        // unshare() affects only the calling thread, so do it on a throwaway thread.
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::create_and_enter(name, gate))
                .join()
                .map_err(|_| NetnsError::ThreadPanicked(name.to_string()))?
        })
    }

    /// Create a new namespace pinned at `/run/netns/<name>` and leave the
    /// calling thread inside it. Only for a dedicated thread that will end (or
    /// create the next namespace): never a tokio worker, never the main thread.
    /// Labs use it to create many namespaces and open their sockets on a few
    /// threads instead of one thread per step.
    pub fn create_and_enter(name: &str, gate: &CreationGate) -> Result<Self, NetnsError> {
        validate_name(name)?;
        // Not once the caller's clean-up has started (an interrupt), which
        // waits for this creation to end before it looks for what to remove.
        gate.unless_closed(|| Self::create_pin_and_enter(name))
            .map_err(|_| NetnsError::Cancelled(name.to_string()))?
    }

    /// Runs under [`CreationGate::unless_closed`] already: nothing in it may
    /// take the gate again.
    fn create_pin_and_enter(name: &str) -> Result<Self, NetnsError> {
        create_pins(&[name]).remove(0)?;
        Self::unshare_and_pin(name)?;
        Self::open(name)
    }

    /// Create a new namespace, leave the calling thread inside it and pin it
    /// on `name`'s pin file, which [`create_pins`] made. The handle holds no
    /// file (see [`Netns::by_name`]). The same rules as
    /// [`Netns::create_and_enter`] apply to the thread; not once clean-up
    /// has started, whose listing finds the pin files already made.
    pub(crate) fn enter_new_pinned(name: &str, gate: &CreationGate) -> Result<Self, NetnsError> {
        validate_name(name)?;
        gate.unless_closed(|| Self::unshare_and_pin(name))
            .map_err(|_| NetnsError::Cancelled(name.to_string()))??;
        Ok(Self {
            name: name.into(),
            file: None,
        })
    }

    fn unshare_and_pin(name: &str) -> Result<(), NetnsError> {
        let pin = pin_path(name);
        let made = unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| sys(name, "unshare", e))
            .and_then(|()| {
                mount(
                    Some(Path::new("/proc/thread-self/ns/net")),
                    &pin,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| sys(name, "bind-mount", e))
            });
        if let Err(e) = made {
            let _ = std::fs::remove_file(&pin);
            return Err(e);
        }
        Ok(())
    }

    /// A handle to an existing named namespace that holds no file descriptor.
    pub fn by_name(name: &str) -> Result<Self, NetnsError> {
        validate_name(name)?;
        Ok(Self {
            name: name.into(),
            file: None,
        })
    }

    /// Open an existing named namespace.
    pub fn open(name: &str) -> Result<Self, NetnsError> {
        validate_name(name)?;
        let file = File::open(pin_path(name)).map_err(|e| sys(name, "open", e))?;
        Ok(Self {
            name: name.into(),
            file: Some(Arc::new(file)),
        })
    }

    /// The namespace this process runs in, named `current`: for a program
    /// the harness started inside a node (`fip-harness driver`), where the
    /// node's namespace is simply its own.
    pub fn current() -> Result<Self, NetnsError> {
        let file = File::open("/proc/self/ns/net").map_err(|e| sys("current", "open", e))?;
        Ok(Self {
            name: "current".into(),
            file: Some(Arc::new(file)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The open namespace file, e.g. to move a link into it (IFLA_NET_NS_FD):
    /// the one this handle holds, or the pin opened now.
    pub fn file(&self) -> Result<Arc<File>, NetnsError> {
        match &self.file {
            Some(file) => Ok(file.clone()),
            None => File::open(pin_path(&self.name))
                .map(Arc::new)
                .map_err(|e| sys(&self.name, "open", e)),
        }
    }

    /// Run `work` on a fresh thread that has entered this namespace, and return
    /// its result. Sockets opened inside keep belonging to this namespace after
    /// the thread ends, so open them here and use them from anywhere.
    pub fn run<F, R>(&self, work: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = self.file()?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                        .map_err(|e| sys(&self.name, "setns", e))?;
                    Ok(work())
                })
                .join()
                .map_err(|_| NetnsError::ThreadPanicked(self.name.to_string()))?
        })
    }

    /// Write sysctls under /proc/sys (keys in dotted form, e.g.
    /// `net.ipv4.ip_forward`) inside this namespace, all on one thread.
    pub fn sysctls(&self, settings: &[(&str, &str)]) -> Result<(), NetnsError> {
        self.run(|| write_sysctls_here(&self.name, settings))?
    }

    /// A command whose process runs inside this namespace (it enters the
    /// namespace between fork and exec; the parent never moves).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        // The closure keeps the file open as long as the command lives; a pin
        // that cannot be opened fails the spawn with the same error.
        let file = self.file().map_err(|e| match e {
            NetnsError::Sys { source, .. } => source.raw_os_error().unwrap_or(libc::ENOENT),
            _ => libc::ENOENT,
        });
        // SAFETY: only async-signal-safe calls (setns) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let fd = match &file {
                    Ok(file) => file.as_raw_fd(),
                    Err(errno) => return Err(std::io::Error::from_raw_os_error(*errno)),
                };
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Start `command` with its process inside this namespace, without
    /// forking this process: a short-lived thread enters the namespace and
    /// spawns it there (a child starts in its parent thread's namespace, and
    /// a command with no `pre_exec` is started by `posix_spawn`, which shares
    /// this process's memory until the exec). [`Netns::command`]'s
    /// `pre_exec` makes the standard library fork: the kernel then copies
    /// the page tables of this many-threaded process, and every page it
    /// writes afterwards faults once to be copied; with labs spawning `nft`
    /// and `iptables-restore` for every pod step, that was about a third of
    /// the harness's CPU time (docs/benchmarks.md). `command` must have no
    /// `pre_exec` of its own, or it forks after all (still inside).
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<std::process::Child> {
        self.spawn_prepared(command, &|| {})
    }

    /// [`Netns::spawn`], with `prepare` run first on the spawning thread,
    /// inside the namespace: what it sets up for that thread's children
    /// (a time namespace, say) is the child's.
    pub fn spawn_prepared(
        &self,
        command: &mut Command,
        prepare: &(dyn Fn() + Sync),
    ) -> std::io::Result<std::process::Child> {
        let file = self.file().map_err(|e| match e {
            NetnsError::Sys { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })?;
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                // It only makes system calls and builds the child's argv.
                .stack_size(256 * 1024)
                .spawn_scoped(scope, || {
                    setns(file.as_fd(), CloneFlags::CLONE_NEWNET)?;
                    prepare();
                    command.spawn()
                })?;
            spawned.join().map_err(|_| {
                std::io::Error::other(NetnsError::ThreadPanicked(self.name.to_string()))
            })?
        })
    }

    /// [`Netns::spawn`] with stdin from /dev/null and stdout and stderr
    /// read, then wait for the process's exit, as [`Command::output`].
    pub fn output(&self, command: &mut Command) -> std::io::Result<std::process::Output> {
        use std::process::Stdio;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.spawn(command)?.wait_with_output()
    }

    /// Remove the pin of a named namespace. The kernel frees the namespace (and
    /// every link in it) once no process or socket holds it any more.
    pub fn delete(name: &str) -> Result<(), NetnsError> {
        validate_name(name)?;
        let pin = pin_path(name);
        match umount2(&pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(sys(name, "unmount", e)),
        }
        match std::fs::remove_file(&pin) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(sys(name, "remove pin", e)),
        }
    }

    /// Remove the pins of many namespaces at once (see [`Netns::delete`]) and
    /// return the errors. Each unmount ends in the kernel waiting for an RCU
    /// grace period (fs/namespace.c, `namespace_unlock`, after the mount lock
    /// is dropped), about a millisecond; done one after another that wait is
    /// most of a large lab's teardown, while waiters on several threads share
    /// one grace period.
    ///
    /// Every namespace is held open while the pins go, and let go together at
    /// the end. A pin that was a namespace's last reference otherwise starts
    /// the kernel's clean-up of that namespace at once (net/core/net_namespace.c,
    /// `cleanup_net`, queued by `__put_net`), one small batch after another,
    /// and those batches (every link unregistered, RCU waits under the rtnl
    /// lock) compete with the unmounts still to come: 10,000 pods took 4 to
    /// 14 s. Let go together, the namespaces are freed in one batch after the
    /// pins are gone.
    pub fn delete_all(names: &[String]) -> Vec<NetnsError> {
        let held = hold_open(names);
        let errors = Self::unpin_all(names);
        drop(held);
        errors
    }

    fn unpin_all(names: &[String]) -> Vec<NetnsError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let errors = std::sync::Mutex::new(Vec::new());
        let threads = DELETE_THREADS.min(names.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let work = || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    if let Err(e) = Self::delete(name) {
                        errors.lock().expect("errors lock").push(e);
                    }
                };
                // Small stacks: the threads only make system calls. A thread
                // that cannot start leaves its share to the others.
                let _ = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(scope, work);
            }
        });
        // Had no thread started, do the work here.
        for name in names
            .get(next.load(std::sync::atomic::Ordering::Relaxed)..)
            .unwrap_or_default()
        {
            if let Err(e) = Self::delete(name) {
                errors.lock().expect("errors lock").push(e);
            }
        }
        errors.into_inner().expect("errors lock")
    }

    /// Names of the pinned namespaces that start with `prefix`, sorted.
    pub fn list_with_prefix(prefix: &str) -> Vec<String> {
        Self::list_in(Path::new(NETNS_RUN_DIR), prefix)
    }

    /// Names in `dir` (a /run/netns seen from elsewhere) that start with `prefix`, sorted.
    pub fn list_in(dir: &Path, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.starts_with(prefix))
            .collect();
        names.sort();
        names
    }
}

/// Open the pins of `names` for as long as the returned files live. Takes at
/// most half of the descriptors this process has free (other labs of the same
/// process, as in `cargo test`, keep working), stops quietly at the limit (the
/// namespaces past it are freed as their pins go) and skips pins that cannot
/// be opened (the unmount reports them).
fn hold_open(names: &[String]) -> Vec<File> {
    let budget = free_descriptors() / 2;
    let mut held = Vec::with_capacity(names.len().min(budget));
    for name in names.iter().take(budget) {
        match File::open(pin_path(name)) {
            Ok(file) => held.push(file),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => break,
            Err(_) => {}
        }
    }
    held
}

/// Descriptors this process may still open: the soft limit less those open.
fn free_descriptors() -> usize {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count());
    usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(open)
}

/// Make [`NETNS_RUN_DIR`] a shared mount of itself before any pin goes under
/// it, as iproute2 does (ip/ipnetns.c, `netns_add`, then `create_netns_dir`):
/// under an exclusive flock of the directory, `mount --make-rshared`, and when
/// that fails with EINVAL (not a mount point yet) bind-mount the directory onto
/// itself once and try again. Without this, the first `ip netns add` after a
/// pin of ours does that bind, which covers our earlier pins with copies: our
/// delete then removes the copy and the original stays mounted, hidden, keeping
/// its namespace alive until someone unmounts /run/netns. Done before every
/// pin, as iproute2 does, because the mount namespace may differ between calls
/// (a thread of a test, a rootless namespace); on a shared mount it is one
/// cheap no-op syscall.
pub fn share_run_dir() -> std::io::Result<()> {
    share_dir(Path::new(NETNS_RUN_DIR))
}

fn share_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // iproute2 goes on without the lock if it cannot take it; so do we, since
    // the lock only keeps two racing processes from stacking binds.
    let lock = File::open(dir)
        .ok()
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
    let mut made_bind = false;
    loop {
        match mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINVAL) if !made_bind => {
                mount(
                    Some(dir),
                    dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )?;
                made_bind = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    drop(lock);
    Ok(())
}

/// Create the empty pin files of new namespaces before they are made: the
/// first a new file, the others hard links to it. On ext4 (as /run is on
/// some machines) each new inode costs a scan of the inode bitmap that grows
/// with the inodes freed in the last minutes, about a millisecond per pin
/// once thousands of namespaces have come and gone; a link costs no inode,
/// and each name still gets its own bind mount (mounts sit on names, not
/// inodes), so `ip netns` sees ordinary pins. Results come in `names` order.
pub(crate) fn create_pins(names: &[&str]) -> Vec<Result<(), NetnsError>> {
    if let Err(e) = share_run_dir() {
        return names
            .iter()
            .map(|name| {
                let e = std::io::Error::new(e.kind(), e.to_string());
                Err(sys(name, "make /run/netns a shared mount", e))
            })
            .collect();
    }
    let mut first: Option<PathBuf> = None;
    names
        .iter()
        .map(|name| {
            validate_name(name)?;
            let pin = pin_path(name);
            let made = match &first {
                Some(first) => std::fs::hard_link(first, &pin),
                None => std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&pin)
                    .map(drop),
            };
            match made {
                Ok(()) => {
                    first.get_or_insert(pin);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(NetnsError::Exists(name.to_string()))
                }
                Err(e) => Err(sys(name, "create pin file", e)),
            }
        })
        .collect()
}

/// Write sysctls in the namespace of the calling thread (see [`Netns::sysctls`]);
/// `name` only labels errors.
pub fn write_sysctls_here(name: &str, settings: &[(&str, &str)]) -> Result<(), NetnsError> {
    for (key, value) in settings {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| NetnsError::Sysctl {
            name: name.to_string(),
            key: key.to_string(),
            source: e,
        })?;
    }
    Ok(())
}

pub fn pin_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn validate_name(name: &str) -> Result<(), NetnsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NetnsError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_that_could_escape_the_run_dir() {
        for bad in ["", "../etc", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(
                matches!(validate_name(bad), Err(NetnsError::BadName(_))),
                "{bad}"
            );
        }
        validate_name("fiph-lab1-node-a").unwrap();
    }
}
