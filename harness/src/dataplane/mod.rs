//! The floating-IP NAT dataplane of one node, behind the [`Dataplane`] trait.
//!
//! Inputs and outputs are small, serialisable and free of backend types, so that
//! a vendor's own dataplane can later plug in as an external program speaking
//! JSON.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::calico::IpFamily;
use crate::lab::netns::Netns;

mod applied;
mod choice;
pub mod conntrack;
pub(crate) mod exec;
pub mod features;
mod felix_hash;
mod felix_rules;
pub mod iptables;
mod nfnl;
pub mod nft_maps;
pub mod nft_maps_netlink;
pub mod nftables;
#[cfg(test)]
mod test_vectors;

pub use choice::{ChoiceError, ChosenDataplane, DataplaneChoice};
pub use features::Features;
pub use iptables::IptablesBackend;
pub use nft_maps::NftMapsBackend;
pub use nftables::NftablesBackend;

/// Felix keeps one table per family (iptables and ip6tables, or `table ip`
/// and `table ip6`), each with the mappings of that family only.
pub(crate) const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

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

/// The dataplane implementations the harness ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Felix's nftables mode, rule for rule: one rule per floating IP in
    /// `table ip calico` / `table ip6 calico`.
    Nftables,
    /// The harness's own O(1) alternative: nftables with address-keyed maps in
    /// `table ip fiph-maps`. Not what Felix programs.
    #[serde(rename = "nft-maps")]
    NftMaps,
    /// Felix's iptables mode, applied with iptables-legacy-restore.
    Iptables,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Nftables => "nftables",
            BackendKind::NftMaps => "nft-maps",
            BackendKind::Iptables => "iptables",
        })
    }
}

impl BackendKind {
    /// Every backend, in the order benchmarks and tests show them: Felix's two
    /// modes first, then the harness's own alternative.
    pub const ALL: [BackendKind; 3] = [
        BackendKind::Nftables,
        BackendKind::Iptables,
        BackendKind::NftMaps,
    ];
}

/// One node's floating-IP NAT. Implementations run their program inside the
/// node's namespace; every call is one whole operation (no partial state left
/// behind by a successful call).
pub trait Dataplane: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// Make the node hold exactly `state`, replacing whatever this backend put
    /// there before, in one atomic transaction.
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError>;

    /// Remove everything this backend put on the node. Removing twice is fine.
    fn remove(&self, node: &Netns) -> Result<(), DataplaneError>;

    /// The rules as the backend holds them, as text for people.
    fn dump(&self, node: &Netns) -> Result<String, DataplaneError>;

    /// The mappings the node holds now, read back from the live rules.
    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError>;
}

/// The backend of a kind.
pub fn backend(kind: BackendKind) -> Arc<dyn Dataplane> {
    match kind {
        BackendKind::Nftables => Arc::new(NftablesBackend::new()),
        BackendKind::NftMaps => Arc::new(NftMapsBackend::new()),
        BackendKind::Iptables => Arc::new(IptablesBackend::new()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("node namespace '{netns}': cannot run {program}: {source}")]
    Spawn {
        netns: String,
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("node namespace '{netns}': {missing}")]
    Missing {
        netns: String,
        missing: crate::programs::MissingProgram,
    },
    #[error("node namespace '{netns}': `{program} {args}` failed ({status}): {stderr}")]
    Failed {
        netns: String,
        program: &'static str,
        args: String,
        status: String,
        stderr: String,
    },
    #[error("node namespace '{netns}': cannot read the rules back: {reason}")]
    Unreadable { netns: String, reason: String },
    #[error("node namespace '{netns}': nf_tables netlink: cannot {action}: {source}")]
    Netlink {
        netns: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}
