//! [`LabMembers`]: the control plane's view of a running [`Lab`], taken once
//! when the lab is up (nodes' and fabric's namespaces, nodes' uplinks never
//! change while it lives), so the control plane can hold it apart from the lab.

use std::net::IpAddr;

use super::apply::LabNamespaces;
use crate::lab::netns::Netns;
use crate::lab::spec::FABRIC;
use crate::lab::{Family, Lab, LabError};

/// The nodes' and the fabric's namespaces and the nodes' uplink addresses.
pub struct LabMembers {
    nodes: Vec<(String, Netns, Vec<IpAddr>)>,
    fabric: Netns,
}

impl LabMembers {
    /// The view of every node of `lab`.
    pub fn of(lab: &Lab) -> Result<Self, LabError> {
        let mut nodes = Vec::new();
        for node in lab.spec().nodes.iter().map(|n| &n.name) {
            let netns = lab.netns(node)?.clone();
            let mut uplinks = Vec::new();
            for family in [Family::V4, Family::V6] {
                uplinks.extend(lab.node_uplink(node, family)?);
            }
            nodes.push((node.clone(), netns, uplinks));
        }
        Ok(LabMembers {
            nodes,
            fabric: lab.netns(FABRIC)?.clone(),
        })
    }
}

impl LabNamespaces for LabMembers {
    fn netns(&self, member: &str) -> Option<Netns> {
        if member == FABRIC {
            return Some(self.fabric.clone());
        }
        self.nodes
            .iter()
            .find(|(name, _, _)| name == member)
            .map(|(_, netns, _)| netns.clone())
    }

    fn uplink(&self, node: &str, v4: bool) -> Option<IpAddr> {
        let (_, _, uplinks) = self.nodes.iter().find(|(name, _, _)| name == node)?;
        uplinks.iter().copied().find(|a| a.is_ipv4() == v4)
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(|(name, _, _)| name.clone()).collect()
    }

    fn fabric(&self) -> String {
        FABRIC.to_string()
    }
}
