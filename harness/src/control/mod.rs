//! The Felix + BGP role: from the cluster state, each node's desired
//! floating-IP NAT and the floating-IP routes ([`desired`]); the difference
//! between two states ([`diff`]); and the applier that programs it into a lab
//! ([`apply`]), the routes through [`routes`].

pub mod apply;
pub mod desired;
pub mod diff;
mod incremental;
mod members;
pub mod policy;
pub mod routes;

pub use apply::{Applied, ControlError, ControlPlane, LabNamespaces};
pub use desired::{
    desired_state, ClusterState, DesiredState, FipConflict, FipOwner, NodeUplink, Topology,
};
pub use diff::{diff, Changes, ConntrackDeletion, ConntrackMatch, ConntrackProfile, RouteChange};
pub use members::LabMembers;
pub use policy::{CalicoPolicy, ControlPolicy};
pub use routes::{list_routes, FipRoute, RouteNext, FELIX_ROUTE_PROTOCOL};

#[cfg(test)]
mod tests;
