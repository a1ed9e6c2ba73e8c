//! Removing labs by name (`down`, interrupt clean-up, a kept lab's end):
//! their BIRDs and drivers, namespaces, holder, record and lock, whoever
//! made them; and finding labs that have namespaces but no record.

use std::path::{Path, PathBuf};

use super::claim::{lock_path, pin_held_elsewhere, LabClaim};
use super::holder::HolderCheck;
use super::netns::{Netns, LAB_PREFIX, NETNS_RUN_DIR};
use super::registry::{record_path, registry_labs, tmp_record_path, LabRecord, RegistryError};
use super::spec::{check_lab_name, lab_of_namespace, namespace_prefix, SpecError};

/// The lab's namespaces pinned now: under /run/netns as this process sees it,
/// or, for a rootless lab, as its holder sees it (through /proc/<pid>/root).
pub fn pinned_namespaces(record: &LabRecord) -> Vec<String> {
    let prefix = namespace_prefix(&record.name);
    match record.holder.filter(|h| {
        h.pid != std::process::id() && h.check(&record.name, record.pid) == HolderCheck::Holds
    }) {
        Some(holder) => {
            let dir = format!("/proc/{}/root{NETNS_RUN_DIR}", holder.pid);
            Netns::list_in(Path::new(&dir), &prefix)
        }
        None => Netns::list_with_prefix(&prefix),
    }
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
            .any(|ns| pin_held_elsewhere(ns));
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
        if namespaces.iter().any(|ns| pin_held_elsewhere(ns)) {
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
