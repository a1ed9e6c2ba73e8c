//! The Felix + BGP role: from the cluster state, each node's desired
//! floating-IP NAT and the floating-IP routes ([`desired`]); the difference
//! between two states ([`diff`]); and the applier that programs it into a lab
//! ([`apply`]).

pub mod apply;
pub mod desired;
pub mod diff;
mod members;
pub mod netlink;

pub use apply::{Applied, ControlError, ControlPlane, LabNamespaces};
pub use desired::{
    desired_state, ClusterState, DesiredState, FipConflict, FipOwner, NodeUplink, Topology,
};
pub use diff::{diff, Changes, ConntrackDeletion, ConntrackMatch, ConntrackProfile, RouteChange};
pub use members::LabMembers;

#[cfg(test)]
mod tests;
