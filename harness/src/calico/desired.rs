//! Cluster state -> what every node and the fabric must hold. Pure.
//!
//! NAT mirrors Felix's floatingIPManager (felix/dataplane/linux/floating_ip_mgr.go):
//! each node looks only at the pods it hosts; when several of them claim one
//! floating IP the alphabetically earliest internal address wins (Felix compares
//! the address *text*), and the loopback SNAT of a pod uses the alphabetically
//! earliest floating IP among the DNATs it won. Two pods on different nodes
//! claiming one floating IP both get their DNAT (Felix has no global view),
//! and both cases are reported as conflicts.
//!
//! Routes play BGP (the route model): the hosting node has a device route to
//! the pod's cali interface; the fabric and every other node route the
//! floating IP via the hosting node's uplink, as far as Calico's BIRD filters
//! let it go ([`floating_ip_reach`]). A floating IP claimed on several nodes
//! gets one ECMP route through all of them, as BIRD's kernel protocol
//! programs it (`merge paths on`), so hashing picks one claimant per flow.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::endpoint::WorkloadEndpoint;
use super::nat::{DnatMapping, NodeFilterState, NodeNatState, SnatMapping};
use super::pool::{floating_ip_reach, FloatingIpReach, IpPool};
use super::release::Behaviour;
use super::routes::{FipRoute, RouteNext};
use ipnet::IpNet;

/// Everything the control plane reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub endpoints: Vec<WorkloadEndpoint>,
    /// Felix `floatingIPs: Enabled`.
    pub felix_floating_ips: bool,
    pub pools: Vec<IpPool>,
    /// The Calico release whose Felix reads this (crate::calico::release).
    #[serde(skip)]
    pub calico: crate::calico::Release,
    /// Each node's affine IPAM blocks, as confd renders them into the node's
    /// `calico_aggr` (a node missing here has none).
    #[serde(default)]
    pub node_blocks: BTreeMap<String, Vec<IpNet>>,
}

/// A node and its uplink addresses (one per family).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUplink {
    pub name: String,
    pub uplinks: Vec<IpAddr>,
}

/// The members routes go to: nodes (with uplinks) and the fabric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub nodes: Vec<NodeUplink>,
    pub fabric: String,
}

/// Who holds a floating IP: the pod whose DNAT the route leads to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FipOwner {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub internal: IpAddr,
    pub interface: String,
}

/// Several pods claim one floating IP.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FipConflict {
    pub external: IpAddr,
    /// The winning internal address, then the losing ones.
    pub winner: IpAddr,
    pub losers: Vec<IpAddr>,
    /// True when the claims are on different nodes (each node still DNATs its own).
    pub across_nodes: bool,
}

/// What every member must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Per node (every node of the topology, empty when it hosts nothing).
    pub nat: BTreeMap<String, NodeNatState>,
    /// Per member (nodes and the fabric) its floating-IP routes.
    pub routes: BTreeMap<String, BTreeSet<FipRoute>>,
    pub owners: BTreeMap<IpAddr, FipOwner>,
    pub conflicts: Vec<FipConflict>,
    /// Every pod (`namespace/pod`) with its node and addresses, switches or not:
    /// a pod that disappears has its conntrack entries cleared as Calico does.
    pub pods: BTreeMap<String, PodPlacement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPlacement {
    pub node: String,
    pub addresses: Vec<IpAddr>,
}

impl DesiredState {
    /// What Felix itself programs of this state when BGP (BIRD) carries the
    /// floating IPs to the other members: the NAT and the device routes.
    pub fn felix_part(&self) -> DesiredState {
        let mut part = self.clone();
        for routes in part.routes.values_mut() {
            routes.retain(|route| matches!(route.next, RouteNext::Device(_)));
        }
        part
    }
}

/// The pods claiming one floating IP: (internal address, endpoint).
type Claims<'a> = Vec<(IpAddr, &'a WorkloadEndpoint)>;

/// Felix's "alphabetically earlier".
fn text_less(a: IpAddr, b: IpAddr) -> bool {
    a.to_string() < b.to_string()
}

/// The claim Felix keeps: the alphabetically earliest internal address (the
/// first of equals). Claims are never empty: each comes from an endpoint.
fn earliest_claim<'a>(claims: &Claims<'a>) -> (IpAddr, &'a WorkloadEndpoint) {
    claims
        .iter()
        .copied()
        .reduce(|best, next| {
            if text_less(next.0, best.0) {
                next
            } else {
                best
            }
        })
        .expect("at least one claim")
}

/// The workload dispatch and NAT-outgoing of `node` (see [`NodeFilterState`]):
/// they follow the endpoints and pools Felix has, whatever its `floatingIPs`.
pub(crate) fn node_filter(cluster: &ClusterState, node: &str) -> NodeFilterState {
    let mut workloads: Vec<String> = cluster
        .endpoints
        .iter()
        .filter(|e| e.node == node)
        .map(|e| e.interface.clone())
        .collect();
    workloads.sort();
    workloads.dedup();
    // felix/calc/event_sequencer.go flushIPPoolUpdates sends every pool,
    // disabled or not; masq_mgr.go OnUpdate puts each in the network set and
    // the natOutgoing ones in the masquerade set too. From v3.31.6 / v3.32.1
    // it leaves LoadBalancer-only pools out of the network set (masq_mgr.go
    // `isLoadBalancerOnly`, commit 2e6b3c4e1d), which is renamed from
    // `all-ipam-pools` to `network-ip-pools` (felix/rules/rule_defs.go
    // `IPSetIDAllPools`).
    let network_set = cluster.calico.has(Behaviour::NetworkIpPoolsSet);
    let mut pools: Vec<IpNet> = cluster
        .pools
        .iter()
        .filter(|p| !(network_set && p.load_balancer_only))
        .map(|p| p.cidr)
        .collect();
    pools.sort();
    pools.dedup();
    let mut masq_pools: Vec<IpNet> = cluster
        .pools
        .iter()
        .filter(|p| p.nat_outgoing)
        .map(|p| p.cidr)
        .collect();
    masq_pools.sort();
    masq_pools.dedup();
    NodeFilterState {
        workloads,
        pools,
        masq_pools,
        all_ipam_pools: !network_set,
    }
}

/// Compute the desired state of every member.
pub fn desired_state(cluster: &ClusterState, topology: &Topology) -> DesiredState {
    let mut desired = DesiredState::default();
    for node in &topology.nodes {
        desired
            .nat
            .insert(node.name.clone(), NodeNatState::default());
        desired.routes.insert(node.name.clone(), BTreeSet::new());
    }
    desired
        .routes
        .insert(topology.fabric.clone(), BTreeSet::new());
    for (node, state) in desired.nat.iter_mut() {
        state.filter = Some(node_filter(cluster, node));
    }
    for endpoint in &cluster.endpoints {
        desired.pods.insert(
            format!("{}/{}", endpoint.namespace, endpoint.pod),
            PodPlacement {
                node: endpoint.node.clone(),
                addresses: endpoint.addresses.clone(),
            },
        );
    }
    // Felix's switch alone: floating_ip_mgr.go OnUpdate and endpoint_mgr.go
    // calculateRoutes test `FloatingIPs`; the CNI plugin's feature_control only
    // refuses annotated pods at set-up (see calico::felix::nat_is_programmed).
    if !cluster.felix_floating_ips {
        return desired;
    }

    // Per node, external -> candidates (internal, endpoint), Felix's view.
    let mut per_node: BTreeMap<&str, BTreeMap<IpAddr, Claims>> = BTreeMap::new();
    for endpoint in &cluster.endpoints {
        for pair in &endpoint.ip_nats {
            per_node
                .entry(endpoint.node.as_str())
                .or_default()
                .entry(pair.external)
                .or_default()
                .push((pair.internal, endpoint));
        }
    }

    // Felix on each node, then the cluster-wide winners BGP spreads.
    let node_winners = node_nat(cluster, &per_node, &mut desired);
    spread(cluster, topology, node_winners, &mut desired);
    desired.conflicts.sort();
    desired
}

/// The endpoint of `node` whose interface the node's one route to
/// `external` leads to. Every claimant asks for a device route to the
/// floating IP, beside its own addresses' routes (felix/dataplane/linux/
/// endpoint_mgr.go calculateRoutes), and so does a pod of the node whose
/// own address it is; the route table keeps, of the targets of one route
/// class for a CIDR, the one whose interface has the highest ifindex
/// (felix/routetable/route_table.go recalculateDesiredKernelRoute: same
/// route class, then `ifIndex > bestIfaceIdx`), whoever won the DNAT. So a
/// pod created after the pod claiming its address keeps its own route.
fn route_holder<'a>(
    endpoints: &'a [WorkloadEndpoint],
    node: &str,
    external: &IpAddr,
    candidates: &Claims<'a>,
) -> &'a WorkloadEndpoint {
    let owners = (endpoints.iter()).filter(|e| e.node == node && e.addresses.contains(external));
    (candidates.iter().map(|(_, e)| *e))
        .chain(owners)
        .reduce(|best, next| {
            if next.ifindex.unwrap_or(0) > best.ifindex.unwrap_or(0) {
                next
            } else {
                best
            }
        })
        .expect("at least one claim")
}

/// Felix on each node (felix/dataplane/linux/floating_ip_mgr.go
/// CompleteDeferredWork): a DNAT per floating IP to the claim earliest as
/// text, the loopback SNAT of each winning address to its earliest floating
/// IP, and the device route; returns each floating IP's node-level winners.
fn node_nat<'a>(
    cluster: &'a ClusterState,
    per_node: &BTreeMap<&str, BTreeMap<IpAddr, Claims<'a>>>,
    desired: &mut DesiredState,
) -> BTreeMap<IpAddr, Claims<'a>> {
    let mut node_winners: BTreeMap<IpAddr, Claims> = BTreeMap::new();
    for (node, claims) in per_node {
        let mut dnat: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
        for (external, candidates) in claims {
            let (winner, endpoint) = earliest_claim(candidates);
            let mut losers: Vec<IpAddr> = candidates
                .iter()
                .map(|(internal, _)| *internal)
                .filter(|internal| *internal != winner)
                .collect();
            losers.sort();
            losers.dedup();
            if !losers.is_empty() {
                desired.conflicts.push(FipConflict {
                    external: *external,
                    winner,
                    losers,
                    across_nodes: false,
                });
            }
            dnat.insert(*external, winner);
            let device = route_holder(&cluster.endpoints, node, external, candidates);
            if device.addresses.contains(external) {
                node_winners
                    .entry(*external)
                    .or_default()
                    .push((winner, endpoint));
                continue;
            }
            desired
                .routes
                .entry(node.to_string())
                .or_default()
                .insert(FipRoute {
                    destination: *external,
                    next: RouteNext::Device(device.interface.clone()),
                });
            node_winners
                .entry(*external)
                .or_default()
                .push((winner, endpoint));
        }
        let mut snat: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
        for (external, internal) in &dnat {
            let keep = snat
                .get(internal)
                .is_some_and(|current| !text_less(*external, *current));
            if !keep {
                snat.insert(*internal, *external);
            }
        }
        // The node's filter state, set before any floating IP, stays.
        let filter = desired.nat.get(*node).and_then(|n| n.filter.clone());
        desired.nat.insert(
            node.to_string(),
            NodeNatState {
                filter,
                ..NodeNatState::new(
                    dnat.into_iter()
                        .map(|(external, internal)| DnatMapping::new(external, internal)),
                    snat.into_iter()
                        .map(|(internal, external)| SnatMapping::new(internal, external)),
                )
            },
        );
    }

    node_winners
}

/// Who holds each floating IP cluster-wide (the earliest of the nodes'
/// winners), and the routes BGP gives the other members, as far as the
/// pool's filters let it go.
fn spread(
    cluster: &ClusterState,
    topology: &Topology,
    node_winners: BTreeMap<IpAddr, Claims>,
    desired: &mut DesiredState,
) {
    let workload_addresses: BTreeSet<(&str, IpAddr)> = cluster
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(|a| (e.node.as_str(), *a)))
        .collect();
    for (external, winners) in node_winners {
        let (internal, endpoint) = earliest_claim(&winners);
        if winners.len() > 1 {
            let mut losers: Vec<IpAddr> = winners
                .iter()
                .map(|(i, _)| *i)
                .filter(|i| *i != internal)
                .collect();
            losers.sort();
            desired.conflicts.push(FipConflict {
                external,
                winner: internal,
                losers,
                across_nodes: true,
            });
        }
        desired.owners.insert(
            external,
            FipOwner {
                node: endpoint.node.clone(),
                namespace: endpoint.namespace.clone(),
                pod: endpoint.pod.clone(),
                internal,
                interface: endpoint.interface.clone(),
            },
        );
        let reach = floating_ip_reach(external, &cluster.pools);
        if reach == FloatingIpReach::HostingNode {
            continue;
        }
        let claiming: BTreeSet<&str> = winners.iter().map(|(_, e)| e.node.as_str()).collect();
        // Every claiming node exports its own route, unless the floating IP
        // lies inside one of that node's IPAM blocks; peers merge them.
        let uplinks: Vec<IpAddr> = topology
            .nodes
            .iter()
            .filter(|n| claiming.contains(n.name.as_str()))
            .filter(|n| !inside_own_block(cluster, &n.name, external))
            .filter_map(|n| n.uplinks.iter().find(|a| a.is_ipv4() == external.is_ipv4()))
            .copied()
            .collect();
        let Some(next) = RouteNext::through(uplinks) else {
            continue;
        };
        // A node one of whose own pods has the floating IP as its address
        // keeps Felix's workload route to that pod: BIRD's kernel protocol
        // adds routes exclusively (BIRD 1.6 sysdep/linux/netlink.c
        // nl_send_route, NL_OP_ADD is NLM_F_CREATE|NLM_F_EXCL) and logs
        // "Netlink: File exists", while Felix's route table replaces a route
        // on its own interfaces (felix/routetable/route_table.go).
        let nodes = topology
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| !claiming.contains(n))
            .filter(|n| !workload_addresses.contains(&(*n, external)))
            .filter(|_| reach == FloatingIpReach::FabricAndNodes);
        for member in nodes.chain([topology.fabric.as_str()]) {
            desired
                .routes
                .entry(member.to_string())
                .or_default()
                .insert(FipRoute {
                    destination: external,
                    next: next.clone(),
                });
        }
    }
}

/// Whether `address` lies inside one of `node`'s affine IPAM blocks. Such a
/// floating IP's route stays on its node: calico/node's confd template
/// (node/filesystem/etc/calico/confd/templates/bird_aggr.cfg.template,
/// function `calico_aggr`, which bird_ipam.cfg.template's
/// `calico_export_to_bgp_peers` calls before any pool's rule) accepts
/// a block itself and rejects every route inside it whose `krt_metric` is
/// not an elevated priority, and Felix gives a floating IP's route the
/// normal one (felix/dataplane/linux/endpoint_mgr.go calculateRoutes: the
/// endpoint's NAT external IPs are routed as its own addresses). The
/// other members reach it through the block's route, to the same node.
fn inside_own_block(cluster: &ClusterState, node: &str, address: IpAddr) -> bool {
    (cluster.node_blocks.get(node))
        .is_some_and(|blocks| blocks.iter().any(|b| b.contains(&address)))
}
