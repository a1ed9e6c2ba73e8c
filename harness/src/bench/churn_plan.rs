//! What `bench churn` does to its lab, apart from doing it: the pods, who
//! holds each floating IP, and the two schedules of moves (a rolling drain at
//! a steady rate, and one node drained at once), each move to a pod on
//! another node, as rescheduling after an eviction would place it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::calico::{IpNatPair, IpPool, WorkloadEndpoint};
use crate::control::ClusterState;
use crate::lab::PodSpec;

use super::lab::pods;

/// Floating IP `k`: 198.19.64.0/18 (benchmark range, outside the pods' /25s).
pub(super) fn fip(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 19, 64, 0)) + k as u32,
    ))
}

/// One move: floating IP `fip` (its number) to pod `to`, `at` after the
/// phase's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PlannedMove {
    pub fip: usize,
    pub to: usize,
    pub at: Duration,
}

/// The lab's pods and which pod holds each floating IP. Pod `p` is pod
/// `p % per_node` of node `p / per_node`, and holds floating IP `p` at first.
pub(super) struct Plan {
    pub nodes: usize,
    pub per_node: usize,
    pub pods: Vec<PodSpec>,
    /// Pod index holding floating IP `k`.
    pub holder: Vec<usize>,
}

impl Plan {
    pub fn new(nodes: usize, per_node: usize) -> Self {
        Plan {
            nodes,
            per_node,
            pods: pods(nodes, per_node, 0),
            holder: (0..nodes * per_node).collect(),
        }
    }

    pub fn fips(&self) -> usize {
        self.holder.len()
    }

    fn node_of(&self, pod: usize) -> usize {
        pod / self.per_node
    }

    /// Every floating IP back with the pod it started on.
    pub fn reset(&mut self) {
        self.holder = (0..self.fips()).collect();
    }

    /// Where floating IP `k` goes when its pod's node drains: the pod of the
    /// same number on another node, spread over all the others.
    fn target(&self, k: usize) -> usize {
        let pod = self.holder[k];
        let (node, slot) = (self.node_of(pod), pod % self.per_node);
        let node = (node + 1 + slot % (self.nodes - 1)) % self.nodes;
        node * self.per_node + slot
    }

    /// A rolling drain: `count` moves at `rate` per second, node after node,
    /// each floating IP at most once (so `count` <= the floating IPs).
    pub fn rolling(&self, count: usize, rate: u32) -> Vec<PlannedMove> {
        (0..count.min(self.fips()))
            .map(|k| PlannedMove {
                fip: k,
                to: self.target(k),
                at: Duration::from_secs(k as u64) / rate.max(1),
            })
            .collect()
    }

    /// Every floating IP held on `node`, moved at once.
    pub fn drain(&self, node: usize) -> Vec<PlannedMove> {
        (0..self.fips())
            .filter(|k| self.node_of(self.holder[*k]) == node)
            .map(|k| PlannedMove {
                fip: k,
                to: self.target(k),
                at: Duration::ZERO,
            })
            .collect()
    }

    /// The cluster as Felix sees it: every pod, with the floating IPs it holds.
    pub fn cluster(&self) -> ClusterState {
        let mut nats: Vec<Vec<IpNatPair>> = vec![Vec::new(); self.pods.len()];
        for (k, pod) in self.holder.iter().enumerate() {
            nats[*pod].push(IpNatPair {
                internal: self.pods[*pod].addresses[0],
                external: fip(k),
            });
        }
        let endpoints = self
            .pods
            .iter()
            .zip(nats)
            .map(|(pod, ip_nats)| WorkloadEndpoint {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                node: pod.node.clone(),
                interface: pod.interface.clone(),
                ifindex: None,
                addresses: pod.addresses.clone(),
                ip_nats,
            })
            .collect();
        ClusterState {
            endpoints,
            felix_floating_ips: true,
            calico: Default::default(),
            pools: vec![IpPool::plain(
                "fips",
                "198.19.64.0/18".parse().expect("pool"),
                26,
            )],
            node_blocks: Default::default(),
        }
    }
}

/// `count` of `moves`, evenly spread over them (all when there are fewer).
pub(super) fn sample(moves: &[PlannedMove], count: usize) -> Vec<PlannedMove> {
    let count = count.min(moves.len());
    (0..count)
        .map(|s| moves[s * moves.len() / count].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_rolling_drain_moves_each_floating_ip_once_to_another_node_at_the_rate() {
        let plan = Plan::new(4, 6);
        let moves = plan.rolling(24, 100);
        assert_eq!(moves.len(), 24);
        let fips: BTreeSet<usize> = moves.iter().map(|m| m.fip).collect();
        assert_eq!(fips.len(), 24, "each floating IP once");
        for m in &moves {
            assert_ne!(plan.node_of(m.to), plan.node_of(plan.holder[m.fip]));
            assert_eq!(m.to % 6, plan.holder[m.fip] % 6, "same slot");
        }
        assert_eq!(moves[1].at, Duration::from_millis(10));
        assert_eq!(moves[23].at, Duration::from_millis(230));
        let targets: BTreeSet<usize> = moves[..6].iter().map(|m| plan.node_of(m.to)).collect();
        assert_eq!(
            targets,
            BTreeSet::from([1, 2, 3]),
            "node 0's spread over the others"
        );
        assert_eq!(plan.rolling(100, 10).len(), 24, "at most once each");
    }

    #[test]
    fn a_drain_moves_what_the_node_holds_now_at_once() {
        let mut plan = Plan::new(3, 2);
        plan.holder[4] = 1; // node 2's first floating IP now on node 0
        let moves = plan.drain(0);
        let fips: Vec<usize> = moves.iter().map(|m| m.fip).collect();
        assert_eq!(fips, vec![0, 1, 4]);
        assert!(moves
            .iter()
            .all(|m| m.at.is_zero() && plan.node_of(m.to) != 0));
        plan.reset();
        assert_eq!(plan.holder, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn the_cluster_gives_each_pod_what_it_holds() {
        let mut plan = Plan::new(2, 2);
        plan.holder[0] = 3;
        let cluster = plan.cluster();
        let nats: Vec<usize> = cluster.endpoints.iter().map(|e| e.ip_nats.len()).collect();
        assert_eq!(nats, vec![0, 1, 1, 2]);
        assert_eq!(cluster.endpoints[3].ip_nats[0].external, fip(0));
        assert_eq!(
            cluster.endpoints[3].ip_nats[0].internal,
            plan.pods[3].addresses[0]
        );
    }

    #[test]
    fn samples_spread_over_the_moves() {
        let plan = Plan::new(2, 10);
        let moves = plan.rolling(20, 10);
        let fips: Vec<usize> = sample(&moves, 4).iter().map(|m| m.fip).collect();
        assert_eq!(fips, vec![0, 5, 10, 15]);
        assert_eq!(sample(&moves, 50).len(), 20);
    }
}
