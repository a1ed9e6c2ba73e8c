//! What a node's interfaces look like to its dataplane: the uplink and every
//! pod's host-side interface. Backends that key on addresses alone (netfilter)
//! need none of it; an eBPF or OVS dataplane attaches to the `cali*`
//! interfaces and rewrites MACs, so it needs the names and addresses.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One node's interfaces, whole (not a change): sent again as pods come and go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeTopology {
    /// The node's name in the scenario (`node-a`).
    pub node: String,
    /// The node's link towards the fabric.
    pub uplink: Interface,
    /// Every pod wired into the node, by pod name.
    pub pods: Vec<PodInterface>,
}

/// A link of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interface {
    /// Its name inside the node's namespace (`eth0`).
    pub name: String,
    /// Its MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub addresses: Vec<IpAddr>,
}

/// A pod as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PodInterface {
    /// The pod's name.
    pub pod: String,
    /// The pod's Kubernetes namespace.
    pub namespace: String,
    /// The host-side interface in the node's namespace (`cali` + 11 hex
    /// characters, as Calico's CNI plugin names it), whose MAC is always
    /// `ee:ee:ee:ee:ee:ee`.
    pub interface: String,
    /// The pod's own `eth0` MAC: the destination MAC of frames the node sends
    /// to the pod.
    pub mac: String,
    /// The pod's addresses (a /32 or /128 each).
    pub addresses: Vec<IpAddr>,
}

/// `aa:bb:cc:dd:ee:ff` for six bytes.
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
