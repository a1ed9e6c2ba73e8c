//! Floating-IP routes as Felix and BGP program them: a /32 (/128) to a
//! pod's interface on the hosting node, via the hosting node elsewhere, ECMP
//! through every node when several claim it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ipam::IpFamily;

/// Where a floating-IP route leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteNext {
    /// A device route (the pod's cali interface on the hosting node).
    Device(String),
    /// Via the hosting node's uplink address (other nodes, the fabric).
    Via(IpAddr),
    /// Via each of several nodes' uplinks (sorted, two or more): a floating
    /// IP claimed on several nodes, which BIRD merges into one ECMP route
    /// (`merge paths on` in the kernel protocol, bird.cfg.template).
    Multipath(Vec<IpAddr>),
}

impl RouteNext {
    /// The route to a floating IP through the uplinks of the nodes that
    /// claim it: one gateway, or an ECMP route through all of them.
    pub fn through(mut uplinks: Vec<IpAddr>) -> Option<RouteNext> {
        uplinks.sort();
        uplinks.dedup();
        match uplinks.len() {
            0 => None,
            1 => Some(RouteNext::Via(uplinks[0])),
            _ => Some(RouteNext::Multipath(uplinks)),
        }
    }
}

/// A floating IP's host route (/32 or /128).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FipRoute {
    pub destination: IpAddr,
    pub next: RouteNext,
}

impl std::fmt::Display for FipRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = IpFamily::of(&self.destination).host_prefix();
        match &self.next {
            RouteNext::Device(dev) => write!(f, "{}/{len} dev {dev}", self.destination),
            RouteNext::Via(via) => write!(f, "{}/{len} via {via}", self.destination),
            RouteNext::Multipath(hops) => {
                write!(f, "{}/{len}", self.destination)?;
                for hop in hops {
                    write!(f, " nexthop via {hop}")?;
                }
                Ok(())
            }
        }
    }
}
