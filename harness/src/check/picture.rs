//! What a picture of a lab holds: its members with their addresses, which pod
//! receives each floating IP, and every member's route to each floating IP,
//! at one moment of a case. The runner takes them; `lab_svg` draws them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A lab at one moment of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabPicture {
    /// When it was taken, for people: `once step 4 (send icmp ...) had run`,
    /// `before step 5 (...)`, `after step 5 (...) and step 6 (...), once ...`.
    pub moment: String,
    pub externals: Vec<MemberPicture>,
    /// The fabric's routes to the floating IPs.
    pub fabric_routes: Vec<FloatingIpRoute>,
    pub nodes: Vec<NodePicture>,
}

impl LabPicture {
    /// Whether two pictures show the same lab, whatever their moments.
    pub fn same_lab(&self, other: &LabPicture) -> bool {
        self.externals == other.externals
            && self.fabric_routes == other.fabric_routes
            && self.nodes == other.nodes
    }

    /// Every floating IP the picture mentions (held, claimed or routed), in
    /// order; the drawing gives each a colour of its own.
    pub fn floating_ips(&self) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = self
            .nodes
            .iter()
            .flat_map(|node| {
                let pods = node
                    .pods
                    .iter()
                    .flat_map(|pod| pod.holds.iter().chain(&pod.claims_only));
                pods.chain(node.routes.iter().map(|r| &r.floating_ip))
            })
            .chain(self.fabric_routes.iter().map(|r| &r.floating_ip))
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// An external host (or any member drawn with just its addresses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberPicture {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePicture {
    pub name: String,
    /// Its uplink addresses on the fabric.
    pub addresses: Vec<IpAddr>,
    pub pods: Vec<PodPicture>,
    /// The node's routes to the floating IPs.
    pub routes: Vec<FloatingIpRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPicture {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// The floating IPs this pod receives now.
    pub holds: Vec<IpAddr>,
    /// Floating IPs its annotation claims that another pod (or none) receives.
    pub claims_only: Vec<IpAddr>,
}

/// A member's most specific route to a floating IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FloatingIpRoute {
    pub floating_ip: IpAddr,
    /// The route's destination, e.g. `203.0.113.10/32` or `203.0.113.0/24`.
    pub prefix: String,
    /// Where it sends packets; several for an ECMP route.
    pub hops: Vec<RouteHop>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum RouteHop {
    /// A lab member: a pod (device route), a node or the fabric (gateway).
    Member(String),
    /// Dropped here (a block's blackhole route).
    Blackhole,
    /// A next hop the lab does not know by name, as the kernel shows it.
    Other(String),
}

impl std::fmt::Display for RouteHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteHop::Member(name) => f.write_str(name),
            RouteHop::Blackhole => f.write_str("blackhole"),
            RouteHop::Other(text) => f.write_str(text),
        }
    }
}
