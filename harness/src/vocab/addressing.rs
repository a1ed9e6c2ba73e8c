//! The addressing plan every lab uses (documentation and benchmark ranges only),
//! and the fixed interface indexes the lab gives its links so it never has to
//! look one up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address families, as the plan names them.
pub use super::IpFamily as Family;

/// The fabric's address on the nodes segment (`br-nodes`).
pub const FABRIC_NODES_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const FABRIC_NODES_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
/// The fabric's address on the externals segment (`br-ext`).
pub const FABRIC_EXT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const FABRIC_EXT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfe, 0, 0, 0, 0, 1);
pub const SEGMENT_V4_PREFIX: u8 = 24;
pub const SEGMENT_V6_PREFIX: u8 = 64;

/// Calico's pod gateway: a link-local address nobody holds, answered by proxy ARP.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The node side's link-local, derived (EUI-64) from [`NODE_SIDE_MAC`].
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// The MAC Calico gives every host-side workload interface.
pub const NODE_SIDE_MAC: [u8; 6] = [0xee; 6];

pub const BRIDGE_NODES: &str = "br-nodes";
pub const BRIDGE_EXT: &str = "br-ext";
pub const UPLINK: &str = "eth0";

// Fixed ifindexes. Every namespace numbers its links on its own, so picking
// them at creation saves a lookup per link; `lo` is always 1.
pub(crate) const IFINDEX_LO: u32 = 1;
pub(crate) const IFINDEX_ETH0: u32 = 2;
pub(crate) const IFINDEX_BR_NODES: u32 = 2;
pub(crate) const IFINDEX_BR_EXT: u32 = 3;
pub(crate) const IFINDEX_FABRIC_NODE_PORT: u32 = 1000;
pub(crate) const IFINDEX_FABRIC_EXT_PORT: u32 = 2000;
/// Host-side pod interfaces on a node: this + a per-node counter.
pub(crate) const IFINDEX_FIRST_WORKLOAD: u32 = 100;

/// Uplink address of node `i` (0-based).
pub fn node_uplink(i: usize, family: Family) -> IpAddr {
    let host = 10 + i as u8;
    match family {
        Family::V4 => Ipv4Addr::new(198, 18, 0, host).into(),
        Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, host.into()).into(),
    }
}

/// Address of external host `j` (0-based).
pub fn external_address(j: usize, family: Family) -> IpAddr {
    let host = 10 + j as u8;
    match family {
        Family::V4 => Ipv4Addr::new(198, 18, 1, host).into(),
        Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 0xfe, 0, 0, 0, 0, host.into()).into(),
    }
}

/// Fabric-side port names: `n<i>` for node i, `x<j>` for external j.
pub fn fabric_node_port(i: usize) -> String {
    format!("n{i}")
}

pub fn fabric_external_port(j: usize) -> String {
    format!("x{j}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(node_uplink(0, Family::V4).to_string(), "198.18.0.10");
        assert_eq!(node_uplink(2, Family::V6).to_string(), "2001:db8:ff::c");
        assert_eq!(external_address(1, Family::V4).to_string(), "198.18.1.11");
        assert_eq!(
            external_address(0, Family::V6).to_string(),
            "2001:db8:fe::a"
        );
        assert_eq!(POD_GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
    }
}
