//! What a lab is made of, independent of the scenario language: the lead's
//! scenario model turns a scenario into a [`LabSpec`] and [`PodSpec`]s.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use crate::vocab::names::{
    check_lab_name, check_member_name, lab_of_namespace, namespace_name, namespace_prefix,
    valid_lab_name, NameError, FABRIC, MAX_LAB_NAME,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    /// IPAM blocks this node holds (v4 and v6); routed to it on the fabric and
    /// on every other node, as BGP would.
    pub blocks: Vec<IpNet>,
}

/// A cluster to build: nodes, external hosts, and whether IPv6 is wired too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Lab name, `[a-z0-9]{1,12}`.
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    pub externals: Vec<String>,
    pub dual_stack: bool,
}

/// A pod to wire into a node as Calico's CNI plugin does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    pub name: String,
    /// Kubernetes namespace (part of the host-side interface name).
    pub namespace: String,
    pub node: String,
    /// Host-side interface, `crate::calico::veth_name_for_workload(namespace, name)`.
    pub interface: String,
    /// The pod's addresses, each a /32 or /128 (at most one per family).
    pub addresses: Vec<IpAddr>,
}

impl PodSpec {
    /// A pod with the interface name Calico would give it.
    pub fn new(name: &str, namespace: &str, node: &str, addresses: Vec<IpAddr>) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            node: node.to_string(),
            interface: crate::calico::veth_name_for_workload(namespace, name),
            addresses,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("lab '{lab}': name '{name}' is used twice (nodes, pods and external hosts share one name space)")]
    Duplicate { lab: String, name: String },
    #[error("lab '{lab}': pod '{pod}' has {what}")]
    BadPodAddresses {
        lab: String,
        pod: String,
        what: String,
    },
    #[error("lab '{lab}': {what}")]
    TooMany { lab: String, what: String },
}

impl LabSpec {
    /// Check names and sizes before anything is created.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_lab_name(&self.name)?;
        let lab = &self.name;
        // Uplink addresses are .10 + index in a /24.
        if self.nodes.len() > 240 || self.externals.len() > 240 {
            return Err(SpecError::TooMany {
                lab: lab.clone(),
                what: "more than 240 nodes or external hosts".into(),
            });
        }
        let mut seen = BTreeSet::new();
        let names = self
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .chain(self.externals.iter().map(String::as_str));
        for name in names {
            check_member_name(lab, name)?;
            if !seen.insert(name) {
                return Err(SpecError::Duplicate {
                    lab: lab.clone(),
                    name: name.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl PodSpec {
    pub(crate) fn validate(&self, lab: &str) -> Result<(), SpecError> {
        check_member_name(lab, &self.name)?;
        let bad = |what: &str| SpecError::BadPodAddresses {
            lab: lab.to_string(),
            pod: self.name.clone(),
            what: what.to_string(),
        };
        if self.addresses.is_empty() {
            return Err(bad("no address"));
        }
        let v4 = self.addresses.iter().filter(|a| a.is_ipv4()).count();
        if v4 > 1 || self.addresses.len() - v4 > 1 {
            return Err(bad("more than one address of a family"));
        }
        if self.interface.is_empty() || self.interface.len() > 15 {
            return Err(bad("an interface name that does not fit IFNAMSIZ"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_thing_at_fault() {
        let spec = LabSpec {
            name: "Lab-1".into(),
            nodes: vec![],
            externals: vec![],
            dual_stack: false,
        };
        insta::assert_snapshot!(spec.validate().unwrap_err(), @"lab name 'Lab-1' is not usable: it must be 1-12 characters of [a-z0-9] (no '-', which separates the lab from its members)");
        let pod = PodSpec::new("web", "default", "node-a", vec![]);
        insta::assert_snapshot!(pod.validate("lab").unwrap_err(), @"lab 'lab': pod 'web' has no address");
    }

    #[test]
    fn spec_rejects_duplicate_names_across_kinds() {
        let spec = LabSpec {
            name: "t".into(),
            nodes: vec![NodeSpec {
                name: "x".into(),
                blocks: vec![],
            }],
            externals: vec!["x".into()],
            dual_stack: false,
        };
        assert_eq!(
            spec.validate(),
            Err(SpecError::Duplicate {
                lab: "t".into(),
                name: "x".into()
            })
        );
    }
}
