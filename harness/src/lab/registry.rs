//! The registry of live labs: one JSON file per lab under the run directory,
//! written before the lab creates anything, so `down` knows a lab's exact
//! namespaces even when its process was killed half-way through bring-up.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::claim::{lock_path, LabClaim};
use super::netns::{Netns, LAB_PREFIX, NETNS_RUN_DIR};
use super::rootless::NsHolder;
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
    #[error(
        "lab '{lab}' is being built or used by another process right now; \
         `fip-harness down --force {lab}` removes it anyway"
    )]
    InUse { lab: String },
    #[error(
        "lab '{lab}' belongs to process {pid}, which still runs; \
         `fip-harness down --force {lab}` removes it anyway"
    )]
    OwnerAlive { lab: String, pid: u32 },
    #[error(
        "lab '{lab}' is being built or used by a process that keeps its records in another \
         run folder (FIP_HARNESS_RUN_DIR); `fip-harness down --force {lab}` removes it anyway"
    )]
    OwnedElsewhere { lab: String },
    #[error("lab '{lab}': not writing its record: the process is being interrupted")]
    Cancelled { lab: String },
    #[error("lab '{lab}': not claiming its name: the process is being interrupted")]
    ClaimCancelled { lab: String },
    #[error("removing {0}")]
    Netns(#[from] super::netns::NetnsError),
    #[error("{0}")]
    Daemon(String),
    #[error(transparent)]
    Write(#[from] super::files::WriteError),
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
    /// Not once this process's interrupt clean-up has started: it may have
    /// removed the record already, and a write would bring it back.
    pub fn write(&self) -> Result<(), RegistryError> {
        super::signals::unless_cancelled(|| self.write_now()).map_err(|_| {
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
    /// time (records without a start time fall back to the pid alone).
    pub fn owner_alive(&self) -> bool {
        match self.start_time {
            Some(started) => process_start_time(self.pid) == Some(started),
            None => pid_alive(self.pid),
        }
    }

    /// What `ls` shows: `running` (its owner runs), `kept` (left up on
    /// purpose), `dead` (its owner died without removing it).
    pub fn state(&self) -> &'static str {
        if self.kept {
            "kept"
        } else if self.owner_alive() {
            "running"
        } else {
            "dead"
        }
    }
}

/// A process's start time in clock ticks after boot (field 22 of
/// /proc/<pid>/stat), or None if it does not exist.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); 22 - 3 = 19.
    after_name.split_whitespace().nth(19)?.parse().ok()
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

/// The lab's namespaces pinned now: under /run/netns as this process sees it,
/// or, for a rootless lab, as its holder sees it (through /proc/<pid>/root).
pub fn pinned_namespaces(record: &LabRecord) -> Vec<String> {
    let prefix = namespace_prefix(&record.name);
    match record.holder.filter(|h| {
        h.pid != std::process::id()
            && h.check(&record.name, record.pid) == super::rootless::HolderCheck::Holds
    }) {
        Some(holder) => {
            let dir = format!("/proc/{}/root{NETNS_RUN_DIR}", holder.pid);
            Netns::list_in(Path::new(&dir), &prefix)
        }
        None => Netns::list_with_prefix(&prefix),
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

/// Names of labs that have namespaces pinned but no record (their process died
/// before writing one, or the record was removed by hand), and that no
/// process owns (see [`labs_owned_elsewhere`]).
pub fn orphan_labs() -> Vec<String> {
    labs_without_record(false)
}

/// Labs pinned here without a record in this run folder whose owner runs:
/// it keeps its records in another run folder.
pub fn labs_owned_elsewhere() -> Vec<String> {
    labs_without_record(true)
}

fn labs_without_record(owned: bool) -> Vec<String> {
    let namespaces = Netns::list_with_prefix(LAB_PREFIX);
    let mut labs: Vec<String> = namespaces
        .iter()
        .filter_map(|ns| lab_of_namespace(ns).map(str::to_string))
        .filter(|lab| !record_path(lab).exists())
        .collect();
    labs.sort();
    labs.dedup();
    labs.retain(|lab| {
        let prefix = namespace_prefix(lab);
        let held = namespaces
            .iter()
            .filter(|ns| ns.starts_with(&prefix))
            .any(|ns| super::claim::pin_held_elsewhere(ns));
        held == owned
    });
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

/// Whether `down` removes a lab whose owner still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Only labs nobody owns any more (dead or kept); others are reported.
    Respect,
    /// Whoever owns it (the owner itself tearing down, `down --force`).
    Ignore,
}

/// The record file `<lab>.json.tmp` a writer killed mid-write leaves.
pub fn tmp_record_path(lab: &str) -> PathBuf {
    record_path(lab).with_extension("json.tmp")
}

/// Remove a lab from its name alone, whoever owns it (see [`down_lab_with`]).
pub fn down_lab(lab: &str) -> DownReport {
    down_lab_with(lab, Owner::Ignore)
}

/// Remove a lab from its name alone: the namespaces its record lists, every
/// pinned `fiph-<lab>-*` namespace (the name rules make that prefix exact), the
/// record, a half-written record and the lock. Keeps going after errors and
/// reports them all. With [`Owner::Respect`] a lab whose owner runs (or that
/// some process holds the lock of, e.g. mid bring-up) is left alone.
pub fn down_lab_with(lab: &str, owner: Owner) -> DownReport {
    let mut report = DownReport::default();
    if let Err(e) = check_lab_name(lab) {
        report.errors.push(SpecError::from(e).into());
        return report;
    }
    let path = record_path(lab);
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
    let mut namespaces = Netns::list_with_prefix(&namespace_prefix(lab));
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
    // Holding the lock while removing means no `up` of the same name can start
    // building in between.
    let mut claim = None;
    if owner == Owner::Respect {
        if let Some(r) = record.as_ref().filter(|r| !r.kept && r.owner_alive()) {
            report.errors.push(RegistryError::OwnerAlive {
                lab: lab.to_string(),
                pid: r.pid,
            });
            return report;
        }
        match LabClaim::acquire(lab) {
            Ok(held) => claim = Some(held),
            Err(e) => {
                report.errors.push(e);
                return report;
            }
        }
        // Its owner may keep its records in another run folder: ownership
        // is read from the namespaces themselves (lab::claim).
        if namespaces
            .iter()
            .any(|ns| super::claim::pin_held_elsewhere(ns))
        {
            report.errors.push(RegistryError::OwnedElsewhere {
                lab: lab.to_string(),
            });
            // The lock file taken here in passing is not the owner's.
            if let Some(claim) = claim.take() {
                claim.release();
            }
            return report;
        }
    }
    // Daemons first: a process inside a namespace keeps it alive after its pin goes.
    report.errors.extend(
        super::daemons::stop_lab_daemons(lab)
            .into_iter()
            .map(RegistryError::Daemon),
    );
    report.errors.extend(
        super::daemons::stop_strays(&namespaces)
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
    // A rootless lab's holder keeps its namespaces; nothing is left to hold.
    if let Some(record) = &record {
        if let Some(holder) = record.holder {
            holder.stop(lab, record.pid);
        }
    }
    for file in [path, tmp_record_path(lab)] {
        match std::fs::remove_file(&file) {
            Ok(()) => report.removed_records.push(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => report.errors.push(RegistryError::Io {
                path: file,
                action: "remove",
                source,
            }),
        }
    }
    match claim {
        Some(claim) => claim.release(),
        None => {
            let _ = std::fs::remove_file(lock_path(lab));
        }
    }
    report
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

/// Remove every lab: each known lab, then every remaining `fiph-` namespace
/// that belongs to no lab left alone.
pub fn down_all(owner: Owner) -> DownReport {
    let mut report = DownReport::default();
    // The file name is the lab name, so even an unreadable record is removed.
    let mut labs = registry_labs();
    labs.extend(orphan_labs());
    labs.sort();
    labs.dedup();
    let mut left_alone = Vec::new();
    for lab in &labs {
        let one = down_lab_with(lab, owner);
        if one.errors.iter().any(|e| {
            matches!(
                e,
                RegistryError::InUse { .. }
                    | RegistryError::OwnerAlive { .. }
                    | RegistryError::OwnedElsewhere { .. }
            )
        }) {
            left_alone.push(lab.clone());
        }
        report.merge(one);
    }
    // Anything else with our prefix (a name no lab rule produces) goes too.
    for ns in Netns::list_with_prefix(LAB_PREFIX) {
        if lab_of_namespace(&ns).is_some_and(|lab| left_alone.iter().any(|l| l == lab)) {
            continue;
        }
        match Netns::delete(&ns) {
            Ok(()) => report.removed_namespaces.push(ns),
            Err(e) => report.errors.push(e.into()),
        }
    }
    report
}
