//! The dataplane backends the harness ships, by name.

use serde::{Deserialize, Serialize};

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
