//! The registry of live labs: one JSON file per lab under the run directory,
//! written before the lab creates anything, so `down` knows a lab's exact
//! namespaces even when its process was killed half-way through bring-up.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::claim::{lock_holders_of, lock_path};
pub use super::error::RegistryError;
use super::holder::NsHolder;
pub use super::process::{pid_alive, process_start_time};
pub use super::run_dir::{run_dir, DEFAULT_RUN_DIR, RUN_DIR_ENV};
use super::spec::check_lab_name;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRecord {
    pub name: String,
    /// The process that owns the lab.
    pub pid: u32,
    /// Its start time (clock ticks after boot, /proc/<pid>/stat field 22): with
    /// the pid, names the owner exactly even after the pid is reused.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// Left running on purpose (`up`, `--keep-on-failure`): no owner any more.
    #[serde(default)]
    pub kept: bool,
    /// Rootless labs only: the process whose user and mount namespaces hold
    /// the lab's namespaces (see [`super::rootless`]); `None` on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<NsHolder>,
    /// Every namespace the lab made or is about to make.
    pub namespaces: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub scenario: Option<PathBuf>,
    pub nodes: Vec<String>,
    pub externals: Vec<String>,
    pub pods: Vec<String>,
}

pub fn record_path(lab: &str) -> PathBuf {
    run_dir().join(format!("{lab}.json"))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl LabRecord {
    /// Write atomically (temp file + rename) so a reader never sees half a record.
    /// Not once this process's interrupt clean-up has started: it may have
    /// removed the record already, and a write would bring it back.
    pub fn write(&self) -> Result<(), RegistryError> {
        super::live::unless_cancelled(|| self.write_now()).map_err(|_| {
            RegistryError::Cancelled {
                lab: self.name.clone(),
            }
        })?
    }

    fn write_now(&self) -> Result<(), RegistryError> {
        let path = record_path(&self.name);
        let io = |action, source| RegistryError::Io {
            path: path.clone(),
            action,
            source,
        };
        std::fs::create_dir_all(run_dir()).map_err(|e| io("create run dir", e))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("a lab record serializes");
        Ok(super::files::write_through(&path, &tmp, &text)?)
    }

    pub fn read(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read(path).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| RegistryError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Whether the owning process still runs: the same pid *and* the same start
    /// time (records without a start time fall back to the pid alone), and it
    /// holds the lab's lock file, as every owner does while it builds and uses
    /// its lab (lab::claim). A live process under a reused pid is not the
    /// owner, whatever start time a stale or forged record names.
    pub fn owner_alive(&self) -> bool {
        self.owner_alive_with(&lock_path(&self.name))
    }

    /// [`LabRecord::owner_alive`] for a record whose lock file is `lock`
    /// (another user's run folder).
    pub fn owner_alive_with(&self, lock: &Path) -> bool {
        let same = match self.start_time {
            Some(started) => process_start_time(self.pid) == Some(started),
            None => pid_alive(self.pid),
        };
        same && lock_holders_of(lock).contains(&self.pid)
    }

    /// What `ls` shows: `running` (its owner runs), `kept` (left up on
    /// purpose), `dead` (its owner died without removing it).
    pub fn state(&self) -> &'static str {
        self.state_with(&lock_path(&self.name))
    }

    /// [`LabRecord::state`] for a record whose lock file is `lock`.
    pub fn state_with(&self, lock: &Path) -> &'static str {
        if self.kept {
            "kept"
        } else if self.owner_alive_with(lock) {
            "running"
        } else {
            "dead"
        }
    }
}

/// Every lab record in the run directory (unreadable ones as errors), sorted by name.
pub fn list_records() -> Vec<Result<LabRecord, RegistryError>> {
    list_records_in(&run_dir())
}

/// Every lab record in `dir` (unreadable ones as errors), sorted by name.
pub fn list_records_in(dir: &Path) -> Vec<Result<LabRecord, RegistryError>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| LabRecord::read(p)).collect()
}

/// The record file `<lab>.json.tmp` a writer killed mid-write leaves.
pub fn tmp_record_path(lab: &str) -> PathBuf {
    record_path(lab).with_extension("json.tmp")
}

/// Lab names the run directory knows of: records, half-written records, locks.
pub fn registry_labs() -> Vec<String> {
    std::fs::read_dir(run_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let lab = [".json", ".json.tmp", ".lock"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))?;
            check_lab_name(lab).is_ok().then(|| lab.to_string())
        })
        .collect()
}

/// Half-written records (`<lab>.json.tmp` without `<lab>.json`): a process
/// killed while writing its first record. `down` removes them.
pub fn incomplete_records() -> Vec<PathBuf> {
    let mut labs = registry_labs();
    labs.sort();
    labs.dedup();
    labs.iter()
        .filter(|lab| !record_path(lab).exists())
        .map(|lab| tmp_record_path(lab))
        .filter(|tmp| tmp.exists())
        .collect()
}
