//! The hosts around the pods: nodes with their uplinks, external hosts and
//! the fabric (a top-of-rack router between the nodes' segment and the
//! externals' segment), with their addresses. The model routes packets
//! through them ([`crate::calico::predict`]).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::calico::desired::{NodeUplink, Topology};
use crate::vocab::addressing::{
    external_address, node_uplink, FABRIC_EXT_V4, FABRIC_EXT_V6, FABRIC_NODES_V4, FABRIC_NODES_V6,
    SEGMENT_V4_PREFIX, SEGMENT_V6_PREFIX,
};
use crate::vocab::IpFamily;

use crate::vocab::names::FABRIC;

/// A host and its addresses (one per family it has).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostAddresses {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

impl HostAddresses {
    pub fn of_family(&self, family: IpFamily) -> Option<IpAddr> {
        self.addresses
            .iter()
            .copied()
            .find(|a| IpFamily::of(a) == family)
    }
}

/// The hosts of a cluster's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The nodes, with their uplink addresses, in the addressing plan's order.
    pub nodes: Vec<HostAddresses>,
    pub externals: Vec<HostAddresses>,
    /// The fabric's name, and its addresses on the nodes' segment and on the
    /// externals' segment.
    pub fabric: String,
    pub fabric_nodes_side: Vec<IpAddr>,
    pub fabric_externals_side: Vec<IpAddr>,
    /// The on-link prefixes of the two segments.
    pub nodes_segment: Vec<IpNet>,
    pub externals_segment: Vec<IpNet>,
}

/// What a name in the network is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostKind {
    Node,
    External,
    Fabric,
}

impl Network {
    /// The network a lab builds for these nodes and external hosts (the
    /// harness's addressing plan: IPv4 always, IPv6 too when dual stack).
    pub fn lab(nodes: &[&str], externals: &[&str], dual_stack: bool) -> Self {
        let families: &[IpFamily] = if dual_stack {
            &[IpFamily::V4, IpFamily::V6]
        } else {
            &[IpFamily::V4]
        };
        let hosts = |names: &[&str], address: fn(usize, IpFamily) -> IpAddr| {
            names
                .iter()
                .enumerate()
                .map(|(i, name)| HostAddresses {
                    name: name.to_string(),
                    addresses: families.iter().map(|f| address(i, *f)).collect(),
                })
                .collect()
        };
        let pick = |v4: IpAddr, v6: IpAddr| -> Vec<IpAddr> {
            families
                .iter()
                .map(|f| if *f == IpFamily::V4 { v4 } else { v6 })
                .collect()
        };
        let segment = |address: &[IpAddr]| -> Vec<IpNet> {
            address
                .iter()
                .map(|a| {
                    let prefix = if a.is_ipv4() {
                        SEGMENT_V4_PREFIX
                    } else {
                        SEGMENT_V6_PREFIX
                    };
                    IpNet::new(*a, prefix).expect("prefix fits").trunc()
                })
                .collect()
        };
        let fabric_nodes_side = pick(FABRIC_NODES_V4.into(), FABRIC_NODES_V6.into());
        let fabric_externals_side = pick(FABRIC_EXT_V4.into(), FABRIC_EXT_V6.into());
        Network {
            nodes: hosts(nodes, node_uplink),
            externals: hosts(externals, external_address),
            fabric: FABRIC.to_string(),
            nodes_segment: segment(&fabric_nodes_side),
            externals_segment: segment(&fabric_externals_side),
            fabric_nodes_side,
            fabric_externals_side,
        }
    }

    /// The nodes and the fabric, as Felix's route model needs them.
    pub fn topology(&self) -> Topology {
        Topology {
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeUplink {
                    name: n.name.clone(),
                    uplinks: n.addresses.clone(),
                })
                .collect(),
            fabric: self.fabric.clone(),
        }
    }

    pub fn node(&self, name: &str) -> Option<&HostAddresses> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn external(&self, name: &str) -> Option<&HostAddresses> {
        self.externals.iter().find(|n| n.name == name)
    }

    /// What `name` is, if it is a host of the network.
    pub fn kind_of(&self, name: &str) -> Option<HostKind> {
        if name == self.fabric {
            Some(HostKind::Fabric)
        } else if self.node(name).is_some() {
            Some(HostKind::Node)
        } else if self.external(name).is_some() {
            Some(HostKind::External)
        } else {
            None
        }
    }

    /// The fabric's addresses, both sides.
    pub fn fabric_addresses(&self) -> impl Iterator<Item = &IpAddr> {
        self.fabric_nodes_side
            .iter()
            .chain(&self.fabric_externals_side)
    }
}
