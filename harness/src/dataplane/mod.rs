//! The floating-IP NAT dataplane of one node, behind the [`Dataplane`] trait.
//!
//! Inputs and outputs are small, serialisable and free of backend types, so that
//! a vendor's own dataplane can later plug in as an external program speaking
//! JSON.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// DNAT of a floating IP to the pod that owns it, for traffic arriving at the
/// node (prerouting) and traffic the node sends (output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DnatMapping {
    pub external: IpAddr,
    pub internal: IpAddr,
}

/// SNAT for the loopback case only: a pod reaching its own floating IP sees the
/// floating IP as the source (`-s INT -d INT -j SNAT --to-source EXT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SnatMapping {
    pub internal: IpAddr,
    pub external: IpAddr,
}

/// Everything one node's floating-IP NAT must hold. Both lists are sorted and
/// free of duplicates: one DNAT per external address, one SNAT per pod address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNatState {
    pub dnat: Vec<DnatMapping>,
    pub snat: Vec<SnatMapping>,
}

/// The dataplane implementations the harness ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// nftables with address-keyed maps (the reference).
    Nftables,
    /// Calico's own iptables rendering, applied with iptables-restore.
    Iptables,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Nftables => "nftables",
            BackendKind::Iptables => "iptables",
        })
    }
}
