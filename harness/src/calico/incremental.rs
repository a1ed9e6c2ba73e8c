//! The desired state and changes of one update, computed from only what the
//! update touches.
//!
//! Every part of the desired state is keyed by a floating IP (DNAT entries,
//! routes, owners, conflicts), by a pod address (the loopback SNAT) or by a
//! pod (placements). A floating IP's entries depend only on the endpoints
//! claiming it or having it as their address (a node keeps its workload
//! route), and an address's SNAT only on the floating IPs claimed with
//! that address (see [`super::desired`]). So when a few endpoints change, the
//! floating IPs they claim (before or after) or have as addresses, the
//! addresses claiming those, and every floating IP claimed with those
//! addresses are all that can change: [`desired_state`] over only the
//! endpoints claiming them or having them as addresses, cut to them,
//! replaces the same cut of the current state. Anything else (switches, pools,
//! nodes, pods added or removed, many changes) takes the full computation.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::desired::node_filter;
use super::desired::{desired_state, ClusterState, DesiredState, Topology};
use super::diff::{diff, Changes, ConntrackProfile};
use super::endpoint::WorkloadEndpoint;
use super::nat::NodeNatState;

/// Above this many changed endpoints the full computation is as cheap.
const MAX_CHANGED: usize = 256;

/// What the last update was computed from.
#[derive(Clone, Debug)]
pub struct Memory {
    pub cluster: ClusterState,
    pub topology: Topology,
}

/// The cut of the state one update recomputes, and its new content.
#[derive(Debug)]
pub struct Patch {
    externals: BTreeSet<IpAddr>,
    /// The new state cut to `externals` / `internals`, and the changed pods.
    slice: DesiredState,
    /// Whole new NAT state of each node whose NAT changed.
    nat: Vec<(String, NodeNatState)>,
    /// Indices (in the cluster's endpoint list) of the endpoints that changed.
    changed: Vec<usize>,
}

/// The endpoints that changed since `memory`, when only endpoints changed,
/// each in place (same pods in the same order), and not too many of them.
pub fn changed_endpoints(
    memory: &Memory,
    cluster: &ClusterState,
    topology: &Topology,
) -> Option<Vec<usize>> {
    let before = &memory.cluster;
    if memory.topology != *topology
        || settings(before) != settings(cluster)
        || before.endpoints.len() != cluster.endpoints.len()
    {
        return None;
    }
    let mut changed = Vec::new();
    for (index, (old, new)) in before.endpoints.iter().zip(&cluster.endpoints).enumerate() {
        if old == new {
            continue;
        }
        if old.namespace != new.namespace || old.pod != new.pod || changed.len() == MAX_CHANGED {
            return None;
        }
        changed.push(index);
    }
    Some(changed)
}

/// Everything of `cluster` but its endpoints (a field added to the cluster
/// state lands here, so that changing it takes the full computation).
fn settings(cluster: &ClusterState) -> ClusterState {
    ClusterState {
        endpoints: Vec::new(),
        felix_floating_ips: cluster.felix_floating_ips,
        calico: cluster.calico,
        pools: cluster.pools.clone(),
        node_blocks: cluster.node_blocks.clone(),
    }
}

fn claims(endpoint: &WorkloadEndpoint) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
    endpoint.ip_nats.iter().map(|p| (p.internal, p.external))
}

/// The changes from `current` (the state of `memory.cluster`) to the state of
/// `cluster`, where only the endpoints at `changed` differ; and the patch that
/// makes `current` that state once the changes are applied.
pub fn changes(
    current: &DesiredState,
    memory: &Memory,
    cluster: &ClusterState,
    changed: Vec<usize>,
    profile: ConntrackProfile,
    shape: impl Fn(&mut DesiredState),
) -> (Changes, Patch) {
    let touched = || {
        changed
            .iter()
            .flat_map(|i| [&memory.cluster.endpoints[*i], &cluster.endpoints[*i]])
    };
    let both = || memory.cluster.endpoints.iter().chain(&cluster.endpoints);
    // Ordered sets, not hashed ones: they hold the few addresses one update
    // touches, and are probed for each of the 10,000 or so mappings, routes
    // and endpoints, where a comparison or two beats hashing an address.
    // A touched pod's own addresses count too: the nodes' routes to a
    // floating IP depend on which pods have it as their address.
    let first: BTreeSet<IpAddr> = touched()
        .flat_map(|e| claims(e).map(|(_, x)| x).chain(e.addresses.iter().copied()))
        .collect();
    let internals: BTreeSet<IpAddr> = both()
        .flat_map(claims)
        .filter(|(_, e)| first.contains(e))
        .map(|(i, _)| i)
        .collect();
    let externals: BTreeSet<IpAddr> = both()
        .flat_map(claims)
        .filter(|(i, _)| internals.contains(i))
        .map(|(_, e)| e)
        .chain(first.iter().copied())
        .collect();

    let changed_set: BTreeSet<usize> = changed.iter().copied().collect();
    let restricted = ClusterState {
        endpoints: cluster
            .endpoints
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                changed_set.contains(i)
                    || claims(e).any(|(_, x)| externals.contains(&x))
                    || e.addresses.iter().any(|a| externals.contains(a))
            })
            .map(|(_, e)| WorkloadEndpoint {
                ip_nats: e
                    .ip_nats
                    .iter()
                    .filter(|p| externals.contains(&p.external))
                    .copied()
                    .collect(),
                ..e.clone()
            })
            .collect(),
        ..settings(cluster)
    };
    let pods: BTreeSet<String> = touched()
        .map(|e| format!("{}/{}", e.namespace, e.pod))
        .collect();
    let mut recomputed = desired_state(&restricted, &memory.topology);
    // What the caller does to every desired state (routes kept per routing).
    shape(&mut recomputed);
    let new_slice = cut(&recomputed, &externals, &internals, &pods);
    let old_slice = cut(current, &externals, &internals, &pods);
    let changes_of_slice = diff(&old_slice, &new_slice, profile);
    let touched_nodes: BTreeSet<&str> = touched().map(|e| e.node.as_str()).collect();
    let mut nat = Vec::new();
    for (node, _) in &changes_of_slice.nat {
        let mut whole = current.nat.get(node).cloned().unwrap_or_default();
        whole.dnat.retain(|m| !externals.contains(&m.external));
        whole.snat.retain(|m| !internals.contains(&m.internal));
        let part = new_slice.nat.get(node).cloned().unwrap_or_default();
        // The same pools (else no incremental update); a node's workloads
        // change only where a changed pod was or is (see below).
        let filter = match touched_nodes.contains(node.as_str()) {
            true => Some(node_filter(cluster, node)),
            false => whole.filter.take(),
        };
        nat.push((
            node.clone(),
            NodeNatState {
                filter,
                ..NodeNatState::new(
                    whole.dnat.into_iter().chain(part.dnat),
                    whole.snat.into_iter().chain(part.snat),
                )
            },
        ));
    }
    refilter(&mut nat, &touched_nodes, current, cluster);
    let changes = Changes {
        nat: nat.clone(),
        ..changes_of_slice
    };
    let patch = Patch {
        externals,
        slice: new_slice,
        nat,
        changed,
    };
    (changes, patch)
}

/// A changed pod that moved node or interface changes the workload dispatch
/// of its old and new node, whether or not their NAT changed: add those
/// nodes whose filter changed to `nat` (kept sorted by node).
fn refilter(
    nat: &mut Vec<(String, NodeNatState)>,
    touched_nodes: &BTreeSet<&str>,
    current: &DesiredState,
    cluster: &ClusterState,
) {
    for node in touched_nodes {
        if nat.iter().any(|(n, _)| n == node) {
            continue;
        }
        let Some(state) = current.nat.get(*node) else {
            continue;
        };
        let filter = Some(node_filter(cluster, node));
        if state.filter != filter {
            nat.push((
                node.to_string(),
                NodeNatState {
                    filter,
                    ..state.clone()
                },
            ));
        }
    }
    nat.sort_by(|a, b| a.0.cmp(&b.0));
}

/// `state` cut to the floating IPs `externals`, the SNAT of `internals` and
/// the placements of `pods`; every node and member keeps its (maybe empty) entry.
fn cut(
    state: &DesiredState,
    externals: &BTreeSet<IpAddr>,
    internals: &BTreeSet<IpAddr>,
    pods: &BTreeSet<String>,
) -> DesiredState {
    DesiredState {
        nat: state
            .nat
            .iter()
            .map(|(node, nat)| {
                (
                    node.clone(),
                    NodeNatState {
                        dnat: nat
                            .dnat
                            .iter()
                            .filter(|m| externals.contains(&m.external))
                            .copied()
                            .collect(),
                        snat: nat
                            .snat
                            .iter()
                            .filter(|m| internals.contains(&m.internal))
                            .copied()
                            .collect(),
                        // The floating IPs' part only: the filter follows
                        // the pods, which an incremental update keeps.
                        filter: None,
                    },
                )
            })
            .collect(),
        routes: state
            .routes
            .iter()
            .map(|(member, routes)| {
                (
                    member.clone(),
                    routes
                        .iter()
                        .filter(|r| externals.contains(&r.destination))
                        .cloned()
                        .collect(),
                )
            })
            .collect(),
        owners: externals
            .iter()
            .filter_map(|e| state.owners.get(e).map(|o| (*e, o.clone())))
            .collect(),
        conflicts: state
            .conflicts
            .iter()
            .filter(|c| externals.contains(&c.external))
            .cloned()
            .collect(),
        pods: pods
            .iter()
            .filter_map(|p| {
                state
                    .pods
                    .get(p)
                    .map(|placement| (p.clone(), placement.clone()))
            })
            .collect(),
    }
}

/// Make `current` and `memory` the state of `cluster` after its changes applied.
pub fn commit(
    current: &mut DesiredState,
    memory: &mut Memory,
    cluster: &ClusterState,
    patch: Patch,
) {
    for (node, state) in patch.nat {
        current.nat.insert(node, state);
    }
    for (member, routes) in patch.slice.routes {
        let held = current.routes.entry(member).or_default();
        held.retain(|r| !patch.externals.contains(&r.destination));
        held.extend(routes);
    }
    current.owners.retain(|e, _| !patch.externals.contains(e));
    current.owners.extend(patch.slice.owners);
    current
        .conflicts
        .retain(|c| !patch.externals.contains(&c.external));
    current.conflicts.extend(patch.slice.conflicts);
    current.conflicts.sort();
    current.pods.extend(patch.slice.pods);
    for index in patch.changed {
        memory.cluster.endpoints[index] = cluster.endpoints[index].clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calico::desired::NodeUplink;
    use crate::calico::desired_tests::pool;
    use crate::calico::{veth_name_for_workload, Encapsulation, IpNatPair};

    /// xorshift: reproducible without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

    fn topology() -> Topology {
        Topology {
            nodes: NODES
                .iter()
                .enumerate()
                .map(|(i, n)| NodeUplink {
                    name: n.to_string(),
                    uplinks: vec![format!("198.18.0.{}", 10 + i).parse().unwrap()],
                })
                .collect(),
            fabric: "fabric".into(),
        }
    }

    /// Floating IPs 203.0.113.1..=6 are in an advertised pool, .7 and .8 not;
    /// pod addresses are few, so pods share them and claims collide; a pod
    /// now and then has a floating IP as its address (its node keeps its
    /// workload route to it).
    fn random_endpoint(rng: &mut Rng, index: usize) -> WorkloadEndpoint {
        let pod = format!("pod-{index}");
        let address: IpAddr = match rng.below(4) {
            0 => format!("203.0.113.{}", 1 + rng.below(8)),
            _ => format!("198.19.0.{}", 1 + rng.below(6)),
        }
        .parse()
        .unwrap();
        let ip_nats = (0..rng.below(3))
            .map(|_| IpNatPair {
                internal: address,
                external: format!("203.0.113.{}", 1 + rng.below(8)).parse().unwrap(),
            })
            .collect();
        WorkloadEndpoint {
            namespace: "default".into(),
            interface: veth_name_for_workload("default", &pod),
            pod,
            node: NODES[rng.below(NODES.len())].into(),
            addresses: vec![address],
            ip_nats,
            // Few values, so equal ones (the first claimant keeps the route) occur.
            ifindex: Some(100 + rng.below(4) as u32),
        }
    }

    fn cluster(endpoints: Vec<WorkloadEndpoint>) -> ClusterState {
        ClusterState {
            endpoints,
            felix_floating_ips: true,
            calico: Default::default(),
            pools: vec![pool("203.0.113.0/29", Encapsulation::None, false)],
            node_blocks: Default::default(),
        }
    }

    #[test]
    fn incremental_updates_match_the_full_computation() {
        let topology = topology();
        // Under BIRD the control plane keeps only the device routes.
        let device_only = |desired: &mut DesiredState| {
            for routes in desired.routes.values_mut() {
                routes.retain(|r| matches!(r.next, crate::calico::routes::RouteNext::Device(_)));
            }
        };
        let unshaped = |_: &mut DesiredState| {};
        let shapes: [&dyn Fn(&mut DesiredState); 3] = [&unshaped, &unshaped, &device_only];
        for ((seed, profile), shape) in [
            (0x9e37_79b9_7f4a_7c15, ConntrackProfile::Calico),
            (0x2545_f491_4f6c_dd1d, ConntrackProfile::Strict),
            (0x0123_4567_89ab_cdef, ConntrackProfile::Calico),
        ]
        .into_iter()
        .zip(shapes)
        {
            let full_state = |cluster: &ClusterState| {
                let mut desired = desired_state(cluster, &topology);
                shape(&mut desired);
                desired
            };
            let mut rng = Rng(seed);
            let mut state = cluster((0..12).map(|i| random_endpoint(&mut rng, i)).collect());
            let mut current = full_state(&state);
            let mut memory = Memory {
                cluster: state.clone(),
                topology: topology.clone(),
            };
            let mut nontrivial = 0;
            for round in 0..300 {
                let mut next = state.clone();
                for _ in 0..1 + rng.below(3) {
                    let index = rng.below(next.endpoints.len());
                    next.endpoints[index] = random_endpoint(&mut rng, index);
                }
                let changed = changed_endpoints(&memory, &next, &topology)
                    .expect("only endpoints changed, in place");
                let (changes, patch) = changes(&current, &memory, &next, changed, profile, shape);
                let full = full_state(&next);
                assert_eq!(
                    changes,
                    diff(&current, &full, profile),
                    "changes, round {round}"
                );
                nontrivial += usize::from(!changes.nat.is_empty());
                commit(&mut current, &mut memory, &next, patch);
                assert_eq!(current, full, "state, round {round}");
                assert_eq!(memory.cluster, next);
                state = next;
            }
            assert!(
                nontrivial > 100,
                "the rounds changed NAT only {nontrivial} times"
            );
        }
    }

    #[test]
    fn anything_but_endpoints_in_place_takes_the_full_computation() {
        let topology = topology();
        let mut rng = Rng(7);
        let state = cluster((0..4).map(|i| random_endpoint(&mut rng, i)).collect());
        let memory = Memory {
            cluster: state.clone(),
            topology: topology.clone(),
        };
        assert_eq!(changed_endpoints(&memory, &state, &topology), Some(vec![]));
        let mut fewer = state.clone();
        fewer.endpoints.pop();
        assert_eq!(changed_endpoints(&memory, &fewer, &topology), None);
        let mut switched = state.clone();
        switched.felix_floating_ips = false;
        assert_eq!(changed_endpoints(&memory, &switched, &topology), None);
        let mut renamed = state.clone();
        renamed.endpoints[1].pod = "other".into();
        assert_eq!(changed_endpoints(&memory, &renamed, &topology), None);
        let mut smaller = topology.clone();
        smaller.nodes.pop();
        assert_eq!(changed_endpoints(&memory, &state, &smaller), None);
    }
}
