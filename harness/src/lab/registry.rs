//! The registry of live labs: one JSON file per lab under the run directory,
//! written before the lab creates anything, so `down` knows a lab's exact
//! namespaces even when its process was killed half-way through bring-up.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::netns::{Netns, LAB_PREFIX};
use super::spec::{check_lab_name, lab_of_namespace, namespace_prefix, SpecError};

/// Default run directory for lab records.
pub const DEFAULT_RUN_DIR: &str = "/run/fip-harness/labs";
/// Environment variable overriding [`DEFAULT_RUN_DIR`] (tests use a temp dir).
pub const RUN_DIR_ENV: &str = "FIP_HARNESS_RUN_DIR";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRecord {
    pub name: String,
    /// The process that owns the lab.
    pub pid: u32,
    /// Every namespace the lab made or is about to make.
    pub namespaces: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub scenario: Option<PathBuf>,
    pub nodes: Vec<String>,
    pub externals: Vec<String>,
    pub pods: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("lab registry {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("lab registry {path}: not a lab record: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Name(#[from] SpecError),
    #[error("removing {0}")]
    Netns(#[from] super::netns::NetnsError),
    #[error("{0}")]
    Daemon(String),
}

pub fn run_dir() -> PathBuf {
    std::env::var_os(RUN_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
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
    pub fn write(&self) -> Result<(), RegistryError> {
        let path = record_path(&self.name);
        let io = |action, source| RegistryError::Io {
            path: path.clone(),
            action,
            source,
        };
        std::fs::create_dir_all(run_dir()).map_err(|e| io("create run dir", e))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("a lab record serializes");
        std::fs::write(&tmp, text).map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))
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

    /// Whether the owning process still runs.
    pub fn owner_alive(&self) -> bool {
        pid_alive(self.pid)
    }
}

pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Every lab record in the run directory (unreadable ones as errors), sorted by name.
pub fn list_records() -> Vec<Result<LabRecord, RegistryError>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(run_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| LabRecord::read(p)).collect()
}

/// Names of labs that have namespaces pinned but no record (their process died
/// before writing one, or the record was removed by hand).
pub fn orphan_labs() -> Vec<String> {
    let mut labs: Vec<String> = Netns::list_with_prefix(LAB_PREFIX)
        .iter()
        .filter_map(|ns| lab_of_namespace(ns).map(str::to_string))
        .filter(|lab| !record_path(lab).exists())
        .collect();
    labs.dedup();
    labs
}

/// What `down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub removed_namespaces: Vec<String>,
    pub removed_records: Vec<PathBuf>,
    pub errors: Vec<RegistryError>,
}

impl DownReport {
    fn merge(&mut self, other: DownReport) {
        self.removed_namespaces.extend(other.removed_namespaces);
        self.removed_records.extend(other.removed_records);
        self.errors.extend(other.errors);
    }
}

/// Remove a lab from its name alone: the namespaces its record lists, every
/// pinned `fiph-<lab>-*` namespace (the name rules make that prefix exact), and
/// the record. Keeps going after errors and reports them all.
pub fn down_lab(lab: &str) -> DownReport {
    let mut report = DownReport::default();
    if let Err(e) = check_lab_name(lab) {
        report.errors.push(e.into());
        return report;
    }
    let path = record_path(lab);
    let mut namespaces = Netns::list_with_prefix(&namespace_prefix(lab));
    let record = if path.exists() {
        match LabRecord::read(&path) {
            Ok(record) => Some(record),
            Err(e) => {
                report.errors.push(e);
                None
            }
        }
    } else {
        None
    };
    if let Some(record) = &record {
        let prefix = namespace_prefix(lab);
        // A record only ever names its own lab's namespaces; never trust it further.
        namespaces.extend(
            record
                .namespaces
                .iter()
                .filter(|ns| ns.starts_with(&prefix))
                .cloned(),
        );
    }
    namespaces.sort();
    namespaces.dedup();
    // Daemons first: a process inside a namespace keeps it alive after its pin goes.
    report.errors.extend(
        super::daemons::stop_lab_daemons(lab)
            .into_iter()
            .map(RegistryError::Daemon),
    );
    for ns in namespaces {
        let existed = super::netns::pin_path(&ns).exists();
        match Netns::delete(&ns) {
            Ok(()) if existed => report.removed_namespaces.push(ns),
            Ok(()) => {}
            Err(e) => report.errors.push(e.into()),
        }
    }
    if path.exists() {
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed_records.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => report.errors.push(RegistryError::Io {
                path,
                action: "remove",
                source,
            }),
        }
    }
    report
}

/// Remove every lab: each recorded lab, then every remaining `fiph-` namespace.
pub fn down_all() -> DownReport {
    let mut report = DownReport::default();
    // The file name is the lab name, so even an unreadable record is removed.
    let mut labs: Vec<String> = std::fs::read_dir(run_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "json").then_some(())?;
            path.file_stem()?.to_str().map(str::to_string)
        })
        .filter(|lab| check_lab_name(lab).is_ok())
        .collect();
    labs.extend(orphan_labs());
    labs.sort();
    labs.dedup();
    for lab in &labs {
        report.merge(down_lab(lab));
    }
    // Anything else with our prefix (a name no lab rule produces) goes too.
    for ns in Netns::list_with_prefix(LAB_PREFIX) {
        match Netns::delete(&ns) {
            Ok(()) => report.removed_namespaces.push(ns),
            Err(e) => report.errors.push(e.into()),
        }
    }
    report
}
