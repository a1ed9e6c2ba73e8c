use std::net::IpAddr;
use std::path::PathBuf;

use super::spec::SpecError;
use crate::ns::netlink::NetlinkError;
use crate::ns::netns::NetnsError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{namespace}: {action}: {source}")]
    Netlink {
        namespace: String,
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{namespace}: opening a netlink socket: {source}")]
    Socket {
        namespace: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lab '{lab}' already exists (namespace {namespace} is pinned or a record names it); `fip-harness down {lab}` removes it")]
    Exists { lab: String, namespace: String },
    #[error("lab '{lab}' has no {kind} named '{name}'")]
    NoMember {
        lab: String,
        kind: &'static str,
        name: String,
    },
    #[error("lab '{lab}': pod '{pod}' is already wired")]
    PodExists { lab: String, pod: String },
    #[error("lab '{lab}': {member}: no interface named '{interface}'")]
    NoInterface {
        lab: String,
        member: String,
        interface: String,
    },
    #[error("lab '{lab}': route {destination}: gateway {gateway} is of the other address family")]
    MixedFamilies {
        lab: String,
        destination: IpAddr,
        gateway: IpAddr,
    },
    #[error("lab '{lab}': links not carrying traffic after {waited:?}: {what}")]
    NotReady {
        lab: String,
        waited: std::time::Duration,
        what: String,
    },
    #[error("lab '{lab}' is not contained, refusing to go on: {what}")]
    NotContained { lab: String, what: String },
    #[error("lab '{lab}': a worker thread panicked while {what}")]
    Panicked { lab: String, what: &'static str },
    #[error("lab '{lab}' cannot be taken over: {reason}")]
    NotAdoptable { lab: String, reason: String },
    #[error("{namespace}: {program}: {detail}")]
    Program {
        namespace: String,
        program: &'static str,
        detail: String,
    },
    #[error("lab '{lab}' could not be reset for the next case: {what}")]
    Reset { lab: String, what: String },
    #[error("tearing down lab '{lab}': {} error(s): {}", errors.len(), errors.join("; "))]
    Teardown { lab: String, errors: Vec<String> },
}

impl From<NetlinkError> for LabError {
    /// The same texts: a netlink error inside a lab is the lab's.
    fn from(error: NetlinkError) -> Self {
        match error {
            NetlinkError::Netns(e) => LabError::Netns(e),
            NetlinkError::Netlink {
                namespace,
                action,
                source,
            } => LabError::Netlink {
                namespace,
                action,
                source,
            },
            NetlinkError::Socket { namespace, source } => LabError::Socket { namespace, source },
        }
    }
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
    Netns(#[from] NetnsError),
    #[error("{0}")]
    Daemon(String),
    #[error(transparent)]
    Write(#[from] super::files::WriteError),
}
