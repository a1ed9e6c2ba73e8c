//! Calico IP pools and the BGP advertisement rule for floating IPs.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// How a pool's traffic crosses between nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encapsulation {
    #[default]
    None,
    #[serde(rename = "IPIP")]
    Ipip,
    #[serde(rename = "VXLAN")]
    Vxlan,
}

/// A Calico IP pool (projectcalico.org/v3 IPPool spec, the fields that matter here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpPool {
    pub name: String,
    pub cidr: IpNet,
    /// Prefix length of the blocks IPAM hands to nodes (26 for v4, 122 for v6).
    pub block_size: u8,
    pub encapsulation: Encapsulation,
    pub disable_bgp_export: bool,
    pub nat_outgoing: bool,
    /// A disabled pool is not used by IPAM (it may still hold floating IPs).
    pub disabled: bool,
}

impl IpPool {
    /// Whether Calico's BIRD export filter lets routes inside this pool out to BGP
    /// peers: the pool must not disable export, and routes of IPIP/VXLAN pools are
    /// not installed by other nodes (Calico's documented floating-IP limitation).
    pub fn exports_floating_ips(&self) -> bool {
        !self.disable_bgp_export && self.encapsulation == Encapsulation::None
    }
}

/// The advertisement rule: a floating IP reaches the rest of the cluster only when
/// the most specific pool containing it exports to BGP unencapsulated. Outside every
/// pool, only the hosting node reaches it.
pub fn floating_ip_is_advertised(address: IpAddr, pools: &[IpPool]) -> bool {
    pools
        .iter()
        .filter(|pool| pool.cidr.contains(&address))
        .max_by_key(|pool| pool.cidr.prefix_len())
        .is_some_and(IpPool::exports_floating_ips)
}
