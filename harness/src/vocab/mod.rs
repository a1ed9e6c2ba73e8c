//! The shared vocabulary: plain names and rules every layer speaks, from the
//! scenario language and the Calico model up to the lab and the dataplanes.
//! Pure: no I/O, and nothing here imports any other module of the crate but
//! [`crate::wire`].
//!
//! - [`addressing`]: the lab's addressing plan (node uplinks, external hosts,
//!   the fabric, the pod gateway, bridge and port names, fixed ifindexes);
//! - [`names`]: lab, member and namespace names;
//! - [`topology`]: a node's interfaces as its dataplane sees them (the lab
//!   reads them, dataplanes and drivers are told them);
//! - [`IpFamily`], [`Protocol`], [`BackendKind`], [`RoutingMode`],
//!   [`ConntrackProfile`]: the enums a scenario chooses among.

pub mod addressing;
mod backend;
mod conntrack;
mod family;
pub mod names;
mod protocol;
mod routing;
pub mod topology;

pub use backend::BackendKind;
pub use conntrack::ConntrackProfile;
pub use family::IpFamily;
pub use protocol::{
    Protocol, ECHO_PORT, KERNEL_PORT_RANGE, SCTP_CLIENT_PORT_BASE, SEEDED_PORT_END,
};
pub use routing::RoutingMode;
