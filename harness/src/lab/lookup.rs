//! A member's route to an address, with its next hops named as the lab knows
//! them (a pod behind a device route, a node or external host behind a
//! gateway), for pictures of the lab.

use std::net::IpAddr;

use super::addressing::*;
use super::cluster::Lab;
use super::error::LabError;
use super::netlink::{NextHopSeen, RouteSeen};

/// Where a route sends packets, by name where the lab has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedHop {
    /// A pod (device route to its host-side interface), a node, an external
    /// host or the fabric (gateway).
    Member(String),
    Dropped,
    /// Neither: `via <address>` or `dev #<index>` as the kernel has it.
    Unnamed(String),
}

/// A member's route to an address, its hops named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRoute {
    pub destination: ipnet::IpNet,
    pub hops: Vec<NamedHop>,
}

impl Lab {
    /// The route `member` (the fabric, a node or an external host) uses for
    /// `address`, if it has one.
    pub async fn route_to(
        &self,
        member: &str,
        address: IpAddr,
    ) -> Result<Option<NamedRoute>, LabError> {
        let Some(RouteSeen { destination, hops }) = self.member(member)?.route_to(address).await?
        else {
            return Ok(None);
        };
        let hops = hops
            .into_iter()
            .map(|hop| match hop {
                NextHopSeen::Dropped => NamedHop::Dropped,
                NextHopSeen::Gateway(gateway) => self
                    .member_at(gateway)
                    .map(NamedHop::Member)
                    .unwrap_or_else(|| NamedHop::Unnamed(format!("via {gateway}"))),
                NextHopSeen::Device(index) => self
                    .pod_behind(member, index)
                    .map(NamedHop::Member)
                    .unwrap_or_else(|| NamedHop::Unnamed(format!("dev #{index}"))),
            })
            .collect();
        Ok(Some(NamedRoute { destination, hops }))
    }

    /// The member holding one of the lab's fixed addresses (uplinks, external
    /// hosts, the fabric's gateways).
    fn member_at(&self, address: IpAddr) -> Option<String> {
        let fabric = [
            IpAddr::from(FABRIC_NODES_V4),
            FABRIC_NODES_V6.into(),
            FABRIC_EXT_V4.into(),
            FABRIC_EXT_V6.into(),
        ];
        if fabric.contains(&address) {
            return Some(super::spec::FABRIC.to_string());
        }
        let family = Family::of(&address);
        let node = (0..self.nodes.len())
            .find(|i| node_uplink(*i, family) == address)
            .map(|i| self.nodes[i].spec.name.clone());
        node.or_else(|| {
            (0..self.spec.externals.len())
                .find(|j| external_address(*j, family) == address)
                .map(|j| self.spec.externals[j].clone())
        })
    }

    /// The pod whose host-side interface on `node` has ifindex `index`.
    fn pod_behind(&self, node: &str, index: u32) -> Option<String> {
        self.pods
            .values()
            .find(|pod| pod.spec.node == node && pod.host_ifindex == index)
            .map(|pod| pod.spec.name.clone())
    }
}
