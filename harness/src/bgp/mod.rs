//! BGP as a Calico cluster runs it: one BIRD 1.6 per node and family,
//! configured as calico/node's confd renders it, and one in the fabric (a
//! top-of-rack router peering with every node).
//!
//! [`render`] writes the configuration text (pure), [`process`] runs and
//! stops a daemon inside a lab namespace, [`birdc`] asks a running daemon
//! about its sessions and routes, [`neighbours`] checks the host's
//! neighbour table has room for the node-to-node mesh, [`clock`] puts a
//! daemon's first whole second (when its sessions connect) soon after it
//! starts.

pub mod birdc;
pub mod clock;
pub mod fleet;
pub mod neighbours;
pub mod process;
pub mod render;
pub mod show;
pub mod timers;
pub mod topology;

pub use crate::vocab::RoutingMode;
pub use birdc::{Birdc, BirdcError};
pub use fleet::{lab_state, topology_of, BgpError, DaemonState, LabBird};
pub use process::{BirdDaemon, BirdError};
pub use render::FELIX_NORMAL_ROUTE_PRIORITY;
pub use show::{BirdRoute, ProtocolStatus};
pub use timers::BirdTimers;
pub use topology::{BgpNode, BgpTopology, ClusterRoutes, CALICO_DEFAULT_AS, FABRIC_AS};
