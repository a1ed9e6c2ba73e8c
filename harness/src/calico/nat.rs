//! A node's floating-IP NAT as Felix programs it: one DNAT per floating IP
//! (felix/rules/nat.go DNATsToIptablesChains) and the loopback SNAT of each
//! pod address (SNATsToIptablesChains). The dataplanes program this value;
//! the model computes it ([`super::desired`]).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// DNAT of a floating IP to the pod that owns it, for traffic arriving at the
/// node (prerouting) and traffic the node sends (output).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub struct DnatMapping {
    pub external: IpAddr,
    pub internal: IpAddr,
}

/// SNAT for the loopback case only: a pod reaching its own floating IP sees the
/// floating IP as the source (`-s INT -d INT -j SNAT --to-source EXT`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
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
    /// What else of Felix's rules shapes a floating IP's traffic on the node
    /// (the workload dispatch and NAT-outgoing); `None` when unknown (read
    /// back from rules, or received over the driver protocol), and then a
    /// backend programs the NAT alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<NodeFilterState>,
}

/// The parts of a node's Felix rules beyond floating-IP NAT that decide where
/// a floating IP's traffic goes, computed by [`super::desired`]:
/// - the workload dispatch (felix/rules/dispatch.go `WorkloadDispatchChains`,
///   reached from felix/rules/static.go `StaticFilterForwardChains` and
///   `filterWorkloadToHostChain`): traffic from or to a `cali*` interface
///   Felix has no endpoint for is dropped ("Unknown interface");
/// - NAT-outgoing (felix/dataplane/linux/masq_mgr.go, felix/rules/nat.go
///   `NATOutgoingChain`): traffic from a `natOutgoing` pool to anywhere
///   outside every pool is masqueraded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFilterState {
    /// The interfaces of the workloads on this node that Felix has an
    /// endpoint for, sorted.
    pub workloads: Vec<String>,
    /// Every IP pool's CIDR (Felix's `network-ip-pools` IP set: all pools,
    /// disabled ones included), sorted.
    pub pools: Vec<IpNet>,
    /// The CIDRs of the pools with `natOutgoing` (Felix's `masq-ipam-pools`),
    /// sorted.
    pub masq_pools: Vec<IpNet>,
    /// The set of pools is Felix's `all-ipam-pools` (before v3.31.6 and
    /// v3.32.1), not `network-ip-pools` (crate::calico::release).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_ipam_pools: bool,
}

impl NodeFilterState {
    /// The pools of one family.
    pub fn pools_of(list: &[IpNet], v4: bool) -> Vec<IpNet> {
        list.iter()
            .copied()
            .filter(|net| net.addr().is_ipv4() == v4)
            .collect()
    }
}

impl DnatMapping {
    pub fn new(external: IpAddr, internal: IpAddr) -> Self {
        Self { external, internal }
    }
}

impl SnatMapping {
    pub fn new(internal: IpAddr, external: IpAddr) -> Self {
        Self { internal, external }
    }
}

impl NodeNatState {
    /// A state from mappings in any order, sorted and without duplicates.
    pub fn new(
        dnat: impl IntoIterator<Item = DnatMapping>,
        snat: impl IntoIterator<Item = SnatMapping>,
    ) -> Self {
        let mut state = Self {
            dnat: dnat.into_iter().collect(),
            snat: snat.into_iter().collect(),
            filter: None,
        };
        state.dnat.sort();
        state.dnat.dedup();
        state.snat.sort();
        state.snat.dedup();
        state
    }
}
