//! Owning a lab name: a lock file `<run dir>/<lab>.lock` held with `flock` for
//! as long as the process builds or uses the lab. Taking it is atomic, so of two
//! `up --name X` started at once exactly one goes on; the other is refused
//! before it creates anything (and so never removes what the winner built).
//! `down` takes the same lock, so it cannot race a bring-up either. The kernel
//! drops the lock when the owner dies, however it dies.
//!
//! The lock file lives in one run folder, and another process may look in
//! another (`FIP_HARNESS_RUN_DIR`). So the owner also holds a `flock` on the
//! lab's fabric namespace pin itself (`/run/netns/fiph-<lab>-fabric`, the
//! namespace's own nsfs inode, the same whatever folder anyone looks in):
//! `down` and `ls` read ownership there ([`pin_held_elsewhere`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};

use super::error::RegistryError;
use super::run_dir::run_dir;
use crate::ns::netns::pin_path;

/// Whether some process holds `namespace`'s pin (it owns the lab, whatever
/// run folder it keeps its records in). This process's own holds count too.
pub fn pin_held_elsewhere(namespace: &str) -> bool {
    let Ok(file) = File::open(pin_path(namespace)) else {
        return false;
    };
    // Dropping the lock taken here releases it at once.
    matches!(
        Flock::lock(file, FlockArg::LockSharedNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}

/// The processes /proc/locks says hold a `flock` on `lab`'s lock file: read
/// only, so looking never disturbs an owner or a starting `up`.
pub fn lock_holders(lab: &str) -> Vec<u32> {
    lock_holders_of(&lock_path(lab))
}

/// The processes /proc/locks says hold a `flock` on the file `lock`.
pub fn lock_holders_of(lock: &Path) -> Vec<u32> {
    let Ok(meta) = std::fs::metadata(lock) else {
        return Vec::new();
    };
    // "1: FLOCK  ADVISORY  WRITE 1234 00:2f:12345 0 EOF": the device as
    // hex major:minor, then the inode (fs/locks.c, lock_get_status).
    let file = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
        meta.ino()
    );
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == "FLOCK")?;
            (fields.get(at + 4) == Some(&file.as_str()))
                .then(|| fields.get(at + 3)?.parse().ok())?
        })
        .collect()
}

/// Names this process holds a claim on (their lock files are its own).
static CLAIMED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Remove the lock files of the names this process claimed, of labs it has
/// not made anything of yet (not in `live`): an interrupt between claiming
/// a name and building its lab would leave an empty `<lab>.lock` behind.
/// Call once creation is stopped (lab::signals), as the process ends.
pub(crate) fn remove_unbuilt_lock_files(live: &[String]) {
    let claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for lab in claimed.iter().filter(|lab| !live.contains(lab)) {
        match std::fs::remove_file(lock_path(lab)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("removing {}: {e}", lock_path(lab).display()),
        }
    }
}

/// The lock file of `lab`.
pub fn lock_path(lab: &str) -> PathBuf {
    run_dir().join(format!("{lab}.lock"))
}

/// A held claim on a lab name. Dropping it releases the lock and leaves the lock
/// file (a kept lab's name stays known); [`LabClaim::release`] removes the file too.
#[derive(Debug)]
pub struct LabClaim {
    lab: String,
    path: PathBuf,
    // Held for its lock, released when dropped.
    _lock: Flock<File>,
    /// The lock on the fabric namespace's pin, once the namespace exists.
    pin: Option<Flock<File>>,
}

impl LabClaim {
    /// Take `lab`'s lock without waiting; `InUse` if another process holds it.
    /// Once this process is being interrupted no name is claimed: the
    /// clean-up removes the lock files of the names claimed before it
    /// started ([`remove_unbuilt_lock_files`]), and none may appear after.
    pub fn acquire(lab: &str) -> Result<Self, RegistryError> {
        let claimed = super::live::unless_cancelled(|| {
            let claim = Self::acquire_in(&run_dir(), lab)?;
            CLAIMED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(lab.to_string());
            Ok(claim)
        });
        claimed.unwrap_or_else(|_| {
            Err(RegistryError::ClaimCancelled {
                lab: lab.to_string(),
            })
        })
    }

    fn acquire_in(dir: &Path, lab: &str) -> Result<Self, RegistryError> {
        let path = dir.join(format!("{lab}.lock"));
        let io = |action, source| RegistryError::Io {
            path: path.clone(),
            action,
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create run dir", e))?;
        // A `down` may unlink the file between our open and our flock; then we
        // hold a lock on a file nobody else can find, so open it again.
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io("open lock", e))?;
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(RegistryError::InUse {
                        lab: lab.to_string(),
                    })
                }
                Err((_, errno)) => return Err(io("lock", errno.into())),
            };
            let held = lock.metadata().map_err(|e| io("stat lock", e))?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Self {
                        lab: lab.to_string(),
                        path,
                        _lock: lock,
                        pin: None,
                    })
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("stat lock", e)),
            }
        }
    }

    pub fn lab(&self) -> &str {
        &self.lab
    }

    /// Hold ownership on the namespace `pin` names too (see the module).
    /// The open descriptor keeps the namespace alive: let go of it
    /// ([`LabClaim::let_go_of_pin`]) before removing the namespace.
    pub fn hold_pin(&mut self, namespace: &str) -> Result<(), RegistryError> {
        let path = pin_path(namespace);
        let io = |action, source| RegistryError::Io {
            path: path.clone(),
            action,
            source,
        };
        let file = File::open(&path).map_err(|e| io("open pin", e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                self.pin = Some(lock);
                Ok(())
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(RegistryError::InUse {
                lab: self.lab.clone(),
            }),
            Err((_, errno)) => Err(io("lock pin", errno.into())),
        }
    }

    /// Stop holding the namespace pin (its namespace may then go).
    pub fn let_go_of_pin(&mut self) {
        self.pin = None;
    }

    /// Remove the lock file while still holding the lock (the lab is gone), then
    /// release it.
    pub fn release(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.path.display());
            }
        }
    }
}

impl Drop for LabClaim {
    fn drop(&mut self) {
        CLAIMED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.lab);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("claimtest.lock");
        let first = LabClaim::acquire_in(dir.path(), "claimtest").unwrap();
        let second = LabClaim::acquire_in(dir.path(), "claimtest").unwrap_err();
        assert!(matches!(second, RegistryError::InUse { .. }), "{second}");
        first.release();
        assert!(!lock.exists());
        let again = LabClaim::acquire_in(dir.path(), "claimtest").unwrap();
        drop(again);
        // Dropped, not released: the file stays, the lock is free.
        assert!(lock.exists());
        LabClaim::acquire_in(dir.path(), "claimtest").unwrap();
    }
}
