//! What BGP configuration is rendered from: the nodes (name, uplink addresses,
//! IPAM blocks), the fabric, the IP pools and the AS numbers. Independent of
//! running labs so rendering stays pure.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::calico::{IpFamily, IpPool};

/// Calico's default node AS number (BGPConfiguration `asNumber`, default
/// 64512, libcalico-go/lib/numorstring and calico/node's startup).
pub const CALICO_DEFAULT_AS: u32 = 64512;

/// The fabric's AS: the nodes' own. Calico's "AS per rack" design (Calico
/// over IP fabrics) puts a top-of-rack router in the AS of its rack's
/// nodes; here it is a global BGPPeer next to the default node-to-node mesh,
/// so it learns each route from the node that originates it and from no
/// other (iBGP routes are not passed on to iBGP peers). A ToR in an AS of
/// its own would make every node pass every mesh route on to it (eBGP), so
/// the fabric would spread each floating IP over all nodes, and a VXLAN-pool
/// floating IP, which other nodes do not program, would loop between the
/// fabric and a node that has no route for it.
pub const FABRIC_AS: u32 = CALICO_DEFAULT_AS;

/// One Calico node as its BIRD sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpNode {
    pub name: String,
    /// The node's IPv4 uplink: its BGP router id and neighbour address.
    pub ipv4: Ipv4Addr,
    /// The subnet of that address (the Node's `bgp.ipv4Address` CIDR),
    /// which libcalico-go's bgpnodeprocessor.go publishes as the node's
    /// `network_v4` for the templates.
    pub ipv4_network: Ipv4Net,
    /// Its IPv6 uplink, when the lab is dual stack (bird6's neighbour address).
    pub ipv6: Option<IpAddr>,
    /// The IPAM blocks affine to this node (both families).
    pub blocks: Vec<IpNet>,
}

impl BgpNode {
    /// The node's neighbour address of a family.
    pub fn address(&self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => Some(self.ipv4.into()),
            IpFamily::V6 => self.ipv6,
        }
    }
}

/// BGPConfiguration `programClusterRoutes`: which pools' cluster routes
/// BIRD programs into the kernel, the rest being Felix's
/// (confd/pkg/backends/calico/bgp_processor.go clusterRoutePolicyFromBGPConfig).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterRoutes {
    /// BIRD programs IPIP and unencapsulated pools.
    Enabled,
    /// BIRD programs none.
    Disabled,
    /// BIRD programs IPIP pools only.
    EnabledIpipOnly,
    /// Calico's default: BIRD programs unencapsulated pools, Felix IPIP ones.
    #[default]
    EnabledNoEncapOnly,
}

impl ClusterRoutes {
    /// `clusterRoutePolicy.ipip`: BIRD programs IPIP pools' routes (with
    /// `krt_tunnel`, which only Calico's fork of BIRD knows).
    pub fn bird_programs_ipip(self) -> bool {
        matches!(
            self,
            ClusterRoutes::Enabled | ClusterRoutes::EnabledIpipOnly
        )
    }

    /// `clusterRoutePolicy.noEncap`: BIRD programs unencapsulated pools' routes.
    pub fn bird_programs_no_encap(self) -> bool {
        matches!(
            self,
            ClusterRoutes::Enabled | ClusterRoutes::EnabledNoEncapOnly
        )
    }
}

/// Everything the nodes' and the fabric's BIRD configurations come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpTopology {
    pub nodes: Vec<BgpNode>,
    /// The fabric's address on the nodes' segment (v4: its router id).
    pub fabric_ipv4: Ipv4Addr,
    pub fabric_ipv6: Option<IpAddr>,
    pub pools: Vec<IpPool>,
    /// BGPConfiguration `programClusterRoutes`.
    pub cluster_routes: ClusterRoutes,
    pub node_as: u32,
    pub fabric_as: u32,
    /// Where each BIRD writes its log (the harness's addition: calico/node
    /// logs to stderr under its supervisor).
    pub log_dir: std::path::PathBuf,
    pub timers: super::timers::BirdTimers,
}

impl BgpTopology {
    /// The fabric's neighbour address of a family.
    pub fn fabric_address(&self, family: IpFamily) -> Option<IpAddr> {
        match family {
            IpFamily::V4 => Some(self.fabric_ipv4.into()),
            IpFamily::V6 => self.fabric_ipv6,
        }
    }

    /// Families BGP runs for: IPv4 always, IPv6 when every node has an address.
    pub fn families(&self) -> Vec<IpFamily> {
        let mut families = vec![IpFamily::V4];
        if self.fabric_ipv6.is_some() && self.nodes.iter().all(|n| n.ipv6.is_some()) {
            families.push(IpFamily::V6);
        }
        families
    }

    pub fn node(&self, name: &str) -> Option<&BgpNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
