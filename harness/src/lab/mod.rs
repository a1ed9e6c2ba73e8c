//! Labs: one scenario's cluster, emulated in network namespaces on this host.
//!
//! Names: a lab is `[a-z0-9]{1,12}` (no '-'), its namespaces are
//! `fiph-<lab>-<member>`; the first '-' after `fiph-` ends the lab name, so
//! `down a` can never remove a namespace of lab `ab`.

mod adopt;
pub mod cgroup;
pub mod claim;
mod cluster;
pub mod daemons;
pub mod down;
mod error;
mod fabric;
pub mod files;
pub mod fingerprint;
mod holder;
mod live;
mod lookup;
mod members;
mod pod_wiring;
mod pods;
mod process;
mod ready;
pub mod registry;
pub mod reset;
pub mod rootless;
mod run_dir;
pub mod safety;
pub mod signals;
pub mod spec;
mod topology;
pub mod tracking;

pub use crate::ns::{netlink, netns};
pub use crate::vocab::addressing;
/// Address families, as the addressing plan names them.
pub use crate::vocab::IpFamily as Family;
pub use cluster::{Lab, MemberKind, NextHop};
pub use error::LabError;
pub use lookup::{NamedHop, NamedRoute};
pub use spec::{LabSpec, NodeSpec, PodSpec, SpecError};
