//! Finding a [`Lab`]'s members by name (namespace, netlink handle, addresses,
//! pods) and the per-address routes callers put on them.

use std::borrow::Cow;
use std::net::IpAddr;

use super::addressing::*;
use super::cluster::{Lab, MemberKind, NextHop};
use super::error::LabError;
use super::netlink::{Member, Route};
use super::netns::Netns;
use super::spec::{LabSpec, PodSpec, FABRIC};

impl Lab {
    /// Add or replace a /32 (/128) route on a member: via a gateway, or as a
    /// device route out of one of its interfaces. For floating-IP routes.
    pub async fn replace_host_route(
        &self,
        member: &str,
        destination: IpAddr,
        next_hop: &NextHop,
    ) -> Result<(), LabError> {
        let target = self.member(member)?;
        let prefix = Family::of(&destination).host_prefix();
        let route = match next_hop {
            NextHop::Via(gateway) => {
                if Family::of(gateway) != Family::of(&destination) {
                    return Err(LabError::MixedFamilies {
                        lab: self.spec.name.clone(),
                        destination,
                        gateway: *gateway,
                    });
                }
                Route::via(destination, prefix, *gateway)
            }
            NextHop::Device(interface) => Route::dev(
                destination,
                prefix,
                self.interface_index(member, interface).await?,
            ),
        };
        Ok(target.replace_route(route).await?)
    }

    /// Remove a /32 (/128) route from a member; a missing route is not an error.
    pub async fn remove_host_route(
        &self,
        member: &str,
        destination: IpAddr,
    ) -> Result<(), LabError> {
        Ok(self
            .member(member)?
            .remove_route(destination, Family::of(&destination).host_prefix(), None)
            .await?)
    }

    pub(super) async fn interface_index(
        &self,
        member: &str,
        interface: &str,
    ) -> Result<u32, LabError> {
        if let Some(pod) = self
            .pods
            .values()
            .find(|p| p.spec.node == member && p.spec.interface == interface)
        {
            return Ok(pod.host_ifindex);
        }
        self.member(member)?
            .link_index(interface)
            .await?
            .ok_or_else(|| LabError::NoInterface {
                lab: self.spec.name.clone(),
                member: member.to_string(),
                interface: interface.to_string(),
            })
    }

    pub(super) fn node_index(&self, node: &str) -> Result<usize, LabError> {
        self.nodes
            .iter()
            .position(|n| n.spec.name == node)
            .ok_or_else(|| LabError::NoMember {
                lab: self.spec.name.clone(),
                kind: "node",
                name: node.to_string(),
            })
    }

    /// A member with a netlink socket: the one the lab keeps for the fabric,
    /// nodes and external hosts, or one opened now for a pod (which keeps
    /// none), closed when the value goes.
    pub(super) fn member(&self, name: &str) -> Result<Cow<'_, Member>, LabError> {
        if let Some(pod) = self.pods.get(name) {
            return Ok(Member::open(pod.netns.clone(), &self.rt).map(Cow::Owned)?);
        }
        self.kept_member(name).map(Cow::Borrowed)
    }

    /// The fabric, a node or an external host: the members that keep a socket.
    fn kept_member(&self, name: &str) -> Result<&Member, LabError> {
        let found = if name == FABRIC {
            Some(&self.fabric)
        } else {
            self.nodes
                .iter()
                .find(|n| n.spec.name == name)
                .map(|n| &n.member)
                .or_else(|| {
                    self.spec
                        .externals
                        .iter()
                        .position(|x| x == name)
                        .map(|j| &self.externals[j])
                })
        };
        found.ok_or_else(|| LabError::NoMember {
            lab: self.spec.name.clone(),
            kind: "member",
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// The namespace of a member: `fabric`, a node, an external host or a pod.
    pub fn netns(&self, member: &str) -> Result<&Netns, LabError> {
        match self.pods.get(member) {
            Some(pod) => Ok(&pod.netns),
            None => self.kept_member(member).map(|m| &m.netns),
        }
    }

    /// An rtnetlink handle inside a member's namespace: the one the lab
    /// keeps, or for a pod a new one that closes when dropped.
    pub fn netlink(&self, member: &str) -> Result<rtnetlink::Handle, LabError> {
        self.member(member).map(|m| m.nl.clone())
    }

    pub fn member_kind(&self, name: &str) -> Option<MemberKind> {
        if name == FABRIC {
            Some(MemberKind::Fabric)
        } else if self.nodes.iter().any(|n| n.spec.name == name) {
            Some(MemberKind::Node)
        } else if self.spec.externals.iter().any(|x| x == name) {
            Some(MemberKind::External)
        } else if self.pods.contains_key(name) {
            Some(MemberKind::Pod)
        } else {
            None
        }
    }

    /// A node's uplink address of a family (None if the lab is IPv4-only and v6 is asked).
    pub fn node_uplink(&self, node: &str, family: Family) -> Result<Option<IpAddr>, LabError> {
        let i = self.node_index(node)?;
        Ok(self
            .families()
            .contains(&family)
            .then(|| node_uplink(i, family)))
    }

    /// An external host's address of a family.
    pub fn external_address(
        &self,
        external: &str,
        family: Family,
    ) -> Result<Option<IpAddr>, LabError> {
        let j = self
            .spec
            .externals
            .iter()
            .position(|x| x == external)
            .ok_or_else(|| LabError::NoMember {
                lab: self.spec.name.clone(),
                kind: "external host",
                name: external.to_string(),
            })?;
        Ok(self
            .families()
            .contains(&family)
            .then(|| external_address(j, family)))
    }

    /// The host-side interface of a pod on its node (`cali...`).
    pub fn pod_interface(&self, pod: &str) -> Option<&str> {
        self.pods.get(pod).map(|p| p.spec.interface.as_str())
    }

    pub fn pod(&self, pod: &str) -> Option<&PodSpec> {
        self.pods.get(pod).map(|p| &p.spec)
    }

    /// The ifindex of a pod's host-side interface, as the control plane needs
    /// it (Felix's route table prefers the highest one among equal routes).
    pub fn pod_ifindex(&self, pod: &str) -> Option<u32> {
        self.pods.get(pod).map(|p| p.host_ifindex)
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodSpec> {
        self.pods.values().map(|p| &p.spec)
    }

    /// Every namespace of the lab, by name.
    pub fn namespaces(&self) -> &[String] {
        &self.record.namespaces
    }
}
