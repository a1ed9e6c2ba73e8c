//! Following one packet hop by hop through the cluster (see the module doc
//! of [`super`] for the routing rules).

use std::net::IpAddr;

use super::{pod_answers, Answer, DropReason, Landing, Outcome, PredictError, Prediction};
use crate::calico::cluster::{Cluster, HostAddresses, Pod};
use crate::calico::conntrack::{Egress, Entries, Flow};
use crate::calico::routes::RouteNext;
use crate::vocab::{IpFamily, Protocol};

mod answer;
mod node;

/// A packet goes round at most this many hops (a TTL far below the kernel's).
const MAX_HOPS: usize = 32;

/// Where a routing decision sends a packet next.
enum Next {
    /// The member's own address.
    Local,
    /// A pod's interface on this node.
    Pod(String),
    /// Another member (a node, the fabric, an external host).
    Member(String),
    /// One of these nodes, as ECMP hashing picks.
    Multipath(Vec<String>),
    Drop(DropReason),
}

/// The interface a packet routed to `next` leaves its node by (none when
/// it goes no further: postrouting never sees it).
fn egress(next: &Next) -> Option<Egress> {
    match next {
        Next::Pod(_) => Some(Egress::Workload),
        Next::Member(_) | Next::Multipath(_) => Some(Egress::Uplink),
        Next::Local | Next::Drop(_) => None,
    }
}

/// The packet as it travels: current addresses, and the address the sender used.
#[derive(Clone, Copy)]
struct Pkt {
    src: IpAddr,
    dst: IpAddr,
    to: IpAddr,
}

struct Walk<'a> {
    cluster: &'a Cluster,
    protocol: Protocol,
    port: u16,
    /// Other keyless GRE flows' entries, each as its ECMP branches may
    /// stand ([`crate::calico::conntrack::GreTable`]); empty for other protocols.
    others: Vec<Vec<&'a Entries>>,
    /// The sending pod whose answers are followed back ([`answer`]).
    answered: Option<String>,
}

type Branches = Vec<(Outcome, Entries)>;

pub(super) fn advance(cluster: &Cluster, flow: &mut Flow) -> Result<Prediction, PredictError> {
    let packet = &flow.packet;
    let (source, first) = origin(cluster, &packet.from, packet.to)?;
    let walk = Walk {
        cluster,
        protocol: packet.protocol,
        port: packet.port,
        others: cluster.gre().others(packet),
        answered: answer::shadowed_sender(cluster, &packet.from, source),
    };
    let pkt = Pkt {
        src: source,
        dst: packet.to,
        to: packet.to,
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut branches: Vec<Entries> = Vec::new();
    let unknown_sender = cluster
        .pod(&packet.from)
        .filter(|pod| !felix_knows(cluster, pod))
        .map(|pod| pod.node.clone());
    for entries in std::mem::take(&mut flow.branches) {
        let path = vec![packet.from.clone()];
        let went = match (&first, &unknown_sender) {
            (Start::Local, _) => vec![(walk.host(&packet.from, pkt, path), entries)],
            (_, Some(node)) => {
                let mut path = path;
                path.push(node.clone());
                vec![(dropped(path, node, DropReason::UnknownInterface), entries)]
            }
            (first, None) => match first {
                Start::Local => unreachable!("handled above"),
                Start::At(member) => walk.member(member, pkt, entries, path),
                Start::NodeOutput(node) => walk.node(node, pkt, entries, Vec::new()),
            },
        };
        for (outcome, entries) in went {
            if !outcomes.contains(&outcome) {
                outcomes.push(outcome);
            }
            if !branches.contains(&entries) {
                branches.push(entries);
            }
        }
    }
    flow.branches = branches;
    if !matches!(first, Start::Local) && unrouted_pod(cluster, &packet.from) {
        for outcome in &mut outcomes {
            outcome.landing.lose_answers();
        }
    }
    Ok(Prediction { source, outcomes })
}

/// A pod whose node no longer routes its own addresses: Felix keeps a
/// workload route only for an endpoint it has (felix/dataplane/linux/
/// endpoint_mgr.go calculateRoutes), so an answer to the pod ends at its
/// node's blackhole for the block (found by `fip-harness explore`).
fn unrouted_pod(cluster: &Cluster, sender: &str) -> bool {
    cluster.pod(sender).is_some() && !cluster.is_routed(sender)
}

impl Landing {
    /// No answer reaches the sender.
    fn lose_answers(&mut self) {
        match self {
            Landing::Pod {
                reply_source,
                quoted_destination,
                ..
            } => {
                *reply_source = None;
                *quoted_destination = None;
            }
            Landing::Host { reply_source, .. } => *reply_source = None,
            Landing::Dropped { .. } => {}
        }
    }
}

/// Where a sender's packet first goes.
enum Start {
    /// The sender's own address: its own stack answers.
    Local,
    /// A node sending: its output hook, then its routes.
    NodeOutput(String),
    /// The next member (a pod's node, an external host's router).
    At(String),
}

fn origin(cluster: &Cluster, from: &str, to: IpAddr) -> Result<(IpAddr, Start), PredictError> {
    let family = IpFamily::of(&to);
    let no_address = || PredictError::NoAddress {
        sender: from.to_string(),
        family,
    };
    let network = &cluster.config().network;
    if let Some(pod) = cluster.pod(from) {
        let source = address_of(&pod.addresses, family).ok_or_else(no_address)?;
        let start = if pod.addresses.contains(&to) {
            Start::Local
        } else {
            Start::At(pod.node.clone())
        };
        return Ok((source, start));
    }
    if let Some(node) = network.node(from) {
        let source = node.of_family(family).ok_or_else(no_address)?;
        let start = if node.addresses.contains(&to) {
            Start::Local
        } else {
            Start::NodeOutput(from.to_string())
        };
        return Ok((source, start));
    }
    if let Some(external) = network.external(from) {
        let source = external.of_family(family).ok_or_else(no_address)?;
        let start = if external.addresses.contains(&to) {
            Start::Local
        } else {
            match network.externals.iter().find(|x| x.addresses.contains(&to)) {
                Some(other) => Start::At(other.name.clone()),
                None => Start::At(network.fabric.clone()),
            }
        };
        return Ok((source, start));
    }
    if from == network.fabric {
        let toward_externals = network.externals_segment.iter().any(|s| s.contains(&to));
        let side = if toward_externals {
            &network.fabric_externals_side
        } else {
            &network.fabric_nodes_side
        };
        let source = address_of(side, family).ok_or_else(no_address)?;
        let start = if network.fabric_addresses().any(|a| *a == to) {
            Start::Local
        } else {
            Start::At(from.to_string())
        };
        return Ok((source, start));
    }
    Err(PredictError::UnknownSender(from.to_string()))
}

/// Whether Felix has an endpoint for `pod`: its interface is among its
/// node's known workloads (all pods, when the node's filter is unknown).
fn felix_knows(cluster: &Cluster, pod: &Pod) -> bool {
    match cluster
        .felix()
        .nat
        .get(&pod.node)
        .and_then(|n| n.filter.as_ref())
    {
        Some(filter) => filter.workloads.contains(&pod.interface),
        None => true,
    }
}

fn address_of(addresses: &[IpAddr], family: IpFamily) -> Option<IpAddr> {
    addresses
        .iter()
        .copied()
        .find(|a| IpFamily::of(a) == family)
}

impl Walk<'_> {
    /// The packet arrives at `member` (from a neighbour).
    fn member(&self, member: &str, pkt: Pkt, entries: Entries, mut path: Vec<String>) -> Branches {
        let network = &self.cluster.config().network;
        if path.len() > MAX_HOPS {
            return vec![(dropped(path, member, DropReason::Loop), entries)];
        }
        if network.node(member).is_some() {
            return self.node(member, pkt, entries, path);
        }
        path.push(member.to_string());
        if member == network.fabric {
            let next = self.fabric_route(pkt.dst);
            return self.go(member, next, pkt, entries, path);
        }
        match network.external(member) {
            Some(external) if external.addresses.contains(&pkt.dst) => {
                let outcome = self.host(member, pkt, path);
                vec![(self.answered(outcome, pkt, &entries), entries)]
            }
            _ => vec![(dropped(path, member, DropReason::NotForwarded), entries)],
        }
    }

    fn go(&self, at: &str, next: Next, pkt: Pkt, entries: Entries, path: Vec<String>) -> Branches {
        match next {
            Next::Local => {
                let outcome = self.host(at, pkt, path);
                vec![(self.answered(outcome, pkt, &entries), entries)]
            }
            Next::Pod(pod) => {
                let outcome = self.pod(&pod, pkt, path);
                vec![(self.answered(outcome, pkt, &entries), entries)]
            }
            Next::Member(member) => self.member(&member, pkt, entries, path),
            Next::Multipath(members) => members
                .iter()
                .flat_map(|m| self.member(m, pkt, entries.clone(), path.clone()))
                .collect(),
            Next::Drop(reason) => vec![(dropped(path, at, reason), entries)],
        }
    }

    /// The node at the end of `path` routes the packet to `pod`'s interface.
    fn pod(&self, pod: &str, pkt: Pkt, mut path: Vec<String>) -> Outcome {
        let owns = self
            .cluster
            .pod(pod)
            .is_some_and(|p| p.addresses.contains(&pkt.dst));
        if !owns {
            let node = path.last().cloned().unwrap_or_default();
            return dropped(path, &node, DropReason::NoNeighbour);
        }
        path.push(pod.to_string());
        // The loopback SNAT (Felix's cali-fip-snat, felix/rules/nat.go
        // SNATsToIptablesChains: `-s INT -d INT`) may take a floating IP
        // equal to the pod's own address: the pod then
        // answers itself inside its own namespace, where no conntrack entry
        // undoes the NAT, so the sender never gets an answer from the
        // address it sent to (found by `fip-harness explore`).
        let answers_itself = self
            .cluster
            .pod(pod)
            .is_some_and(|p| p.addresses.contains(&pkt.src));
        let landing = {
            let answer = pod_answers(self.protocol, self.port);
            let answer = if answers_itself {
                Answer::Silent
            } else {
                answer
            };
            Landing::Pod {
                pod: pod.to_string(),
                seen_destination: pkt.dst,
                seen_source: pkt.src,
                reply_source: (answer == Answer::Reply).then_some(pkt.to),
                quoted_destination: (answer == Answer::PortUnreachable).then_some(pkt.to),
            }
        };
        Outcome { path, landing }
    }

    /// A host's (or the sending pod's) own stack takes the packet.
    fn host(&self, host: &str, pkt: Pkt, path: Vec<String>) -> Outcome {
        let external = self.cluster.config().network.external(host).is_some();
        Outcome {
            path,
            landing: Landing::Host {
                host: host.to_string(),
                reply_source: (self.protocol == Protocol::Icmp).then_some(pkt.to),
                seen_source: external.then_some(pkt.src),
            },
        }
    }

    /// A node's routing table, longest prefix first.
    fn node_route(&self, node: &str, dst: IpAddr) -> Next {
        let cluster = self.cluster;
        let network = &cluster.config().network;
        if network
            .node(node)
            .is_some_and(|n| n.addresses.contains(&dst))
        {
            return Next::Local;
        }
        // The pods' routes (the CNI plugin's, kept while Felix has the
        // endpoint), then Felix's floating-IP device routes and BGP's.
        let local = |p: &&Pod| p.node == node;
        let own = cluster
            .pods()
            .values()
            .filter(local)
            .find(|p| cluster.is_routed(&p.name) && p.addresses.contains(&dst));
        let floating = self.floating_ip_route(node, dst);
        match (own, floating) {
            // A floating IP equal to a local pod's address: Felix routes an
            // endpoint's ExtIps as it routes its own addresses (felix/
            // dataplane/linux/endpoint_mgr.go calculateRoutes), and of two
            // routes of one class for a CIDR keeps the highest ifindex
            // (felix/routetable/route_table.go recalculateDesiredKernelRoute).
            (Some(pod), Some(Next::Pod(claimant))) => {
                let order = |name: &str| cluster.pod(name).map_or(0, |p| p.interface_order);
                let winner = if order(&claimant) > pod.interface_order {
                    claimant
                } else {
                    pod.name.clone()
                };
                return Next::Pod(winner);
            }
            (Some(pod), _) => return Next::Pod(pod.name.clone()),
            (None, Some(next)) => return next,
            (None, None) => {}
        }
        if let Some(owner) = self.block_owner(dst) {
            return if owner == node {
                Next::Drop(DropReason::Blackhole)
            } else {
                Next::Member(owner)
            };
        }
        if network.nodes_segment.iter().any(|s| s.contains(&dst)) {
            return match self.on_nodes_segment(dst) {
                Some(member) => Next::Member(member),
                None => Next::Drop(DropReason::NoRoute),
            };
        }
        Next::Member(network.fabric.clone())
    }

    /// The fabric's routing table: floating IPs and blocks to nodes, its
    /// two segments, no default.
    fn fabric_route(&self, dst: IpAddr) -> Next {
        let network = &self.cluster.config().network;
        if network.fabric_addresses().any(|a| *a == dst) {
            return Next::Local;
        }
        if let Some(next) = self.floating_ip_route(&network.fabric, dst) {
            return next;
        }
        if let Some(owner) = self.block_owner(dst) {
            return Next::Member(owner);
        }
        if let Some(member) = self.on_nodes_segment(dst) {
            return Next::Member(member);
        }
        match network
            .externals
            .iter()
            .find(|x| x.addresses.contains(&dst))
        {
            Some(external) => Next::Member(external.name.clone()),
            None => Next::Drop(DropReason::NoRoute),
        }
    }

    /// `member`'s floating-IP route to `dst`, as Felix and BGP give it.
    fn floating_ip_route(&self, member: &str, dst: IpAddr) -> Option<Next> {
        let route = self
            .cluster
            .felix()
            .routes
            .get(member)?
            .iter()
            .find(|r| r.destination == dst)?;
        Some(match &route.next {
            RouteNext::Device(interface) => {
                match self
                    .cluster
                    .pods()
                    .values()
                    .find(|p| p.node == member && p.interface == *interface)
                {
                    Some(pod) => Next::Pod(pod.name.clone()),
                    None => Next::Drop(DropReason::NoRoute),
                }
            }
            RouteNext::Via(via) => match self.node_of_uplink(*via) {
                Some(node) => Next::Member(node),
                None => Next::Drop(DropReason::NoRoute),
            },
            RouteNext::Multipath(hops) => Next::Multipath(
                hops.iter()
                    .filter_map(|h| self.node_of_uplink(*h))
                    .collect(),
            ),
        })
    }

    /// The node whose IPAM block holds `dst` (the most specific block).
    fn block_owner(&self, dst: IpAddr) -> Option<String> {
        let network = &self.cluster.config().network;
        network
            .nodes
            .iter()
            .flat_map(|n| {
                self.cluster
                    .node_blocks(&n.name)
                    .into_iter()
                    .map(move |b| (b, &n.name))
            })
            .filter(|(block, _)| block.contains(&dst))
            .max_by_key(|(block, _)| block.prefix_len())
            .map(|(_, node)| node.clone())
    }

    fn node_of_uplink(&self, uplink: IpAddr) -> Option<String> {
        let network = &self.cluster.config().network;
        host_with(&network.nodes, uplink)
    }

    /// The member that owns `dst` on the nodes' segment.
    fn on_nodes_segment(&self, dst: IpAddr) -> Option<String> {
        let network = &self.cluster.config().network;
        if network.fabric_nodes_side.contains(&dst) {
            return Some(network.fabric.clone());
        }
        host_with(&network.nodes, dst)
    }
}

fn host_with(hosts: &[HostAddresses], address: IpAddr) -> Option<String> {
    hosts
        .iter()
        .find(|h| h.addresses.contains(&address))
        .map(|h| h.name.clone())
}

fn dropped(path: Vec<String>, at: &str, reason: DropReason) -> Outcome {
    Outcome {
        path,
        landing: Landing::Dropped {
            at: at.to_string(),
            reason,
        },
    }
}
