//! Other users' rootless labs, as root sees them: read-only. Their records
//! live in each user's runtime directory (`/run/user/<uid>/fip-harness/labs`)
//! or in `/tmp/fip-harness-<uid>/labs`; a folder counts only when the uid it
//! names owns it. Root's `ls` lists what they hold with their owner; root's
//! `down` never removes them (their namespaces are not on the host's
//! /run/netns, only in their holder's mount namespace), and says whose they
//! are. A user removes theirs with their own `fip-harness down`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{HolderCheck, NsHolder};
use crate::lab::netns::Netns;
use crate::lab::netns::NETNS_RUN_DIR;
use crate::lab::registry::{list_records_in, LabRecord};
use crate::lab::spec::namespace_prefix;

/// A user's rootless lab as another user (root) sees it.
#[derive(Debug, Clone)]
pub struct OtherUsersLab {
    pub record: LabRecord,
    pub uid: u32,
    /// The user's name, when the password database knows the uid.
    pub user: Option<String>,
    /// Its namespaces pinned now, seen through its holder (when it is one).
    pub pinned: usize,
    /// `running`, `kept` or `dead` ([`LabRecord::state_with`] its own lock file).
    pub state: &'static str,
}

impl OtherUsersLab {
    /// `fiptest (uid 1001)`, or `uid 1001` for a uid without a name.
    pub fn owner(&self) -> String {
        match &self.user {
            Some(name) => format!("{name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// The run folders of users other than this one, with their uid.
fn registries() -> Vec<(u32, PathBuf)> {
    let me = nix::unistd::Uid::effective().as_raw();
    let mut found = Vec::new();
    let runtime = std::fs::read_dir("/run/user")
        .into_iter()
        .flatten()
        .flatten();
    let runtime = runtime.filter_map(|e| {
        let uid = e.file_name().to_str()?.parse::<u32>().ok()?;
        Some((uid, e.path().join("fip-harness/labs")))
    });
    let tmp = std::fs::read_dir("/tmp").into_iter().flatten().flatten();
    let tmp = tmp.filter_map(|e| {
        let name = e.file_name();
        let uid = name
            .to_str()?
            .strip_prefix("fip-harness-")?
            .parse::<u32>()
            .ok()?;
        Some((uid, e.path().join("labs")))
    });
    for (uid, dir) in runtime.chain(tmp) {
        // Only a folder the uid it names owns (its parent too): nobody
        // else can make labs appear under another user's name.
        let owned = |path: &Path| {
            std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
        };
        if uid != me && owned(&dir) && dir.parent().is_some_and(owned) {
            found.push((uid, dir));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Every readable lab record of other users' rootless labs, sorted by owner
/// then name. Unreadable records are skipped: they are not this user's to fix.
pub fn other_users_labs() -> Vec<OtherUsersLab> {
    let mut labs = Vec::new();
    for (uid, dir) in registries() {
        let user = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name);
        for record in list_records_in(&dir) {
            let Ok(record) = record else {
                continue;
            };
            let lock = dir.join(format!("{}.lock", record.name));
            let pinned = match record.holder {
                Some(holder) if holds(&holder, &record, uid, &lock) => {
                    let pins = format!("/proc/{}/root{NETNS_RUN_DIR}", holder.pid);
                    Netns::list_in(Path::new(&pins), &namespace_prefix(&record.name)).len()
                }
                _ => 0,
            };
            labs.push(OtherUsersLab {
                state: record.state_with(&lock),
                record,
                uid,
                user: user.clone(),
                pinned,
            });
        }
    }
    labs
}

/// Whether `holder` is the holder of `record`'s lab for user `uid`.
fn holds(holder: &NsHolder, record: &LabRecord, uid: u32, lock: &Path) -> bool {
    holder.check_for(&record.name, record.pid, uid, lock) == HolderCheck::Holds
}

/// The other users' labs named `lab`.
pub fn other_users_lab(lab: &str) -> Vec<OtherUsersLab> {
    other_users_labs()
        .into_iter()
        .filter(|l| l.record.name == lab)
        .collect()
}
