//! A node's interfaces as its dataplane sees them ([`NodeTopology`]), read
//! from the lab: the uplink and every pod wired into the node, with the MACs
//! the kernel gave them.

use super::addressing::{Family, IFINDEX_ETH0, UPLINK};
use super::cluster::Lab;
use super::error::LabError;
use super::netlink::Member;
use crate::vocab::topology::{mac_text, Interface, NodeTopology, PodInterface};

impl Lab {
    /// The topology of `node` now.
    pub async fn node_topology(&self, node: &str) -> Result<NodeTopology, LabError> {
        let index = self.node_index(node)?;
        let member = &self.nodes[index].member;
        let mut addresses = Vec::new();
        for family in [Family::V4, Family::V6] {
            addresses.extend(self.node_uplink(node, family)?);
        }
        let uplink = Interface {
            name: UPLINK.to_string(),
            mac: mac_text(&member.link_mac(IFINDEX_ETH0, UPLINK).await?),
            addresses,
        };
        let mut pods = Vec::new();
        for pod in self.pods.values().filter(|p| p.spec.node == node) {
            // The pod's eth0 got its MAC from the kernel when it was wired.
            let member = Member::open(pod.netns.clone(), &self.rt)?;
            let mac = member.link_mac(IFINDEX_ETH0, UPLINK).await?;
            pods.push(PodInterface {
                pod: pod.spec.name.clone(),
                namespace: pod.spec.namespace.clone(),
                interface: pod.spec.interface.clone(),
                mac: mac_text(&mac),
                addresses: pod.spec.addresses.clone(),
            });
        }
        Ok(NodeTopology {
            node: node.to_string(),
            uplink,
            pods,
        })
    }
}
