//! The Felix + BGP role: from the cluster state, each node's desired
//! floating-IP NAT and the floating-IP routes ([`desired`]); the difference
//! between two states ([`diff`]); and the applier that programs it into a lab
//! ([`apply`]).

pub mod apply;
pub mod desired;
pub mod diff;
pub mod netlink;
pub mod testbed;

pub use apply::{Applied, ControlError, ControlPlane, LabNamespaces};
pub use desired::{
    desired_state, ClusterState, DesiredState, FipConflict, FipOwner, NodeUplink, Topology,
};
pub use diff::{diff, Changes, ConntrackDeletion, ConntrackMatch, ConntrackProfile, RouteChange};

#[cfg(test)]
mod tests;
