//! A node's floating-IP NAT as Felix programs it: one DNAT per floating IP
//! (felix/rules/nat.go DNATsToIptablesChains) and the loopback SNAT of each
//! pod address (SNATsToIptablesChains). The dataplanes program this value;
//! the model computes it ([`super::desired`]).

use std::net::IpAddr;

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
        };
        state.dnat.sort();
        state.dnat.dedup();
        state.snat.sort();
        state.snat.dedup();
        state
    }
}
