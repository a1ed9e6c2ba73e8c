//! Owning a lab name: a lock file `<run dir>/<lab>.lock` held with `flock` for
//! as long as the process builds or uses the lab. Taking it is atomic, so of two
//! `up --name X` started at once exactly one goes on; the other is refused
//! before it creates anything (and so never removes what the winner built).
//! `down` takes the same lock, so it cannot race a bring-up either. The kernel
//! drops the lock when the owner dies, however it dies.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::registry::{run_dir, RegistryError};

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
}

impl LabClaim {
    /// Take `lab`'s lock without waiting; `InUse` if another process holds it.
    pub fn acquire(lab: &str) -> Result<Self, RegistryError> {
        Self::acquire_in(&run_dir(), lab)
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
