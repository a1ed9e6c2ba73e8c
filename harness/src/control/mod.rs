//! The Felix + BGP role in a lab: the applier that programs what the Calico
//! model decided ([`crate::calico::desired`], [`crate::calico::diff`]) into
//! the lab's members ([`apply`]), the routes through [`routes`].

pub mod apply;
mod members;
pub mod order;
pub mod policy;
pub mod routes;

pub use crate::calico::desired::{
    desired_state, ClusterState, DesiredState, FipConflict, FipOwner, NodeUplink, Topology,
};
pub use crate::calico::diff::{
    diff, Changes, ConntrackDeletion, ConntrackMatch, ConntrackProfile, RouteChange,
};
pub use apply::{Applied, ControlError, ControlPlane, LabNamespaces};
pub use members::LabMembers;
pub use order::UpdateOrder;
pub use policy::{CalicoPolicy, ControlPolicy};
pub use routes::{list_routes, FipRoute, RouteNext, FELIX_ROUTE_PROTOCOL};
