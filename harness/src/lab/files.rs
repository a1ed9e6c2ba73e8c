//! Files written so that a reader never meets half of one: the content goes
//! to a temporary file beside the target, is flushed to the disk, then
//! renamed over the target. A full disk leaves the target as it was (or
//! absent), removes the temporary file, and says "disk full: PATH".

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writing one file failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("disk full: {}", path.display())]
    DiskFull { path: PathBuf },
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl WriteError {
    fn of(path: &Path, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            WriteError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            WriteError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Whether the file system has no room left (no space, or the user's quota).
pub fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Whether the file system holding `dir` has no block (or no inode) left
/// for this user.
pub fn no_room_left(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir)
        .is_ok_and(|fs| fs.blocks_available() == 0 || fs.files_available() == 0)
}

/// The temporary file [`write_atomically`] writes `path` through.
pub fn temporary_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Write `bytes` to `path` all at once or not at all (see the module).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_through(path, &temporary_of(path), bytes)
}

/// [`write_atomically`] through the temporary file `tmp` (in `path`'s folder).
pub fn write_through(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let written = (|| {
        let mut file = std::fs::File::create(tmp)?;
        file.write_all(bytes)?;
        // A full disk may only show when the data meets it.
        file.sync_all()?;
        std::fs::rename(tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        WriteError::of(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["summary.json"]);
    }

    #[test]
    fn a_full_disk_is_named_and_nothing_is_left() {
        let error = WriteError::of(
            Path::new("/r/summary.json"),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(error.to_string(), "disk full: /r/summary.json");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/x.json");
        assert!(write_atomically(&missing, b"x").is_err());
        assert!(!temporary_of(&missing).exists());
    }
}
