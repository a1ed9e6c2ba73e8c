//! Control-plane mutants: each overrides one hook of `control::ControlPolicy`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::calico::diff::{ConntrackDeletion, ConntrackMatch};
use crate::calico::routes::RouteNext;
use crate::control::{Changes, ClusterState, ControlPolicy, DesiredState};
use crate::dataplane::{NodeNatState, SnatMapping};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyBug {
    /// Duplicate claims on one node go to the numerically lowest address
    /// (Felix compares the text: `floating_ip_mgr.go`).
    NumericClaimOrder,
    /// The strict profile's deletions by original destination are dropped.
    NeverFlushByDestination,
    /// Every change flushes every entry on every node.
    FlushEverything,
    /// NAT is programmed whatever Felix's `floatingIPs` says.
    IgnoreFelixSwitch,
    /// Conntrack flush direction: a deleted pod's (or a moved route's) flows
    /// are deleted by original destination (`conntrack -D -d ADDR`), where
    /// Calico deletes by original or reply source (`-s ADDR`, `-r ADDR`):
    /// flows DNATed to the pod (reply source the pod) stay.
    FlushByDestination,
    /// Conntrack flush direction: the strict profile's deletions by original
    /// destination sent as deletions by source, which never match a flow
    /// DNATed to the floating IP.
    StrictFlushBySource,
    /// Route withdrawal: routes are added and replaced, never removed (a
    /// reconciler that only writes what it wants), so a moved floating IP's
    /// old device route stays on its old node.
    RoutesNeverRemoved,
    /// The floating IP's device route on the hosting node is never
    /// programmed (a route filter that keeps only IPAM addresses), so BIRD
    /// has nothing to export.
    NoFloatingIpRoute,
    /// Topology: duplicate claims on several nodes arbitrated cluster-wide,
    /// the losers' nodes losing their NAT and device route, where Calico's
    /// Felix on each node DNATs its own claimant.
    DuplicateArbitratedGlobally,
}

/// A control plane with one [`PolicyBug`].
#[derive(Clone, Copy, Debug)]
pub struct MutantPolicy(pub PolicyBug);

impl ControlPolicy for MutantPolicy {
    fn cluster_view<'a>(&self, cluster: &'a ClusterState) -> Cow<'a, ClusterState> {
        if self.0 != PolicyBug::IgnoreFelixSwitch {
            return Cow::Borrowed(cluster);
        }
        let mut seen = cluster.clone();
        seen.felix_floating_ips = true;
        Cow::Owned(seen)
    }

    fn adjust_desired(&self, desired: &mut DesiredState) {
        match self.0 {
            PolicyBug::NumericClaimOrder => numeric_winners(desired),
            PolicyBug::DuplicateArbitratedGlobally => global_winners(desired),
            _ => {}
        }
    }

    fn adjust_changes(&self, changes: &mut Changes, desired: &DesiredState) {
        match self.0 {
            PolicyBug::NeverFlushByDestination => changes
                .conntrack
                .retain(|d| !matches!(d.matching, ConntrackMatch::OrigDst(_))),
            PolicyBug::FlushByDestination => {
                for deletion in &mut changes.conntrack {
                    if let ConntrackMatch::OrigSrcOrReplySrc(address) = deletion.matching {
                        deletion.matching = ConntrackMatch::OrigDst(address);
                    }
                }
            }
            PolicyBug::StrictFlushBySource => {
                for deletion in &mut changes.conntrack {
                    if let ConntrackMatch::OrigDst(address) = deletion.matching {
                        deletion.matching = ConntrackMatch::OrigSrcOrReplySrc(address);
                    }
                }
            }
            PolicyBug::RoutesNeverRemoved => {
                for change in &mut changes.routes {
                    change.remove.clear();
                }
            }
            PolicyBug::NoFloatingIpRoute => {
                for change in &mut changes.routes {
                    change
                        .add
                        .retain(|route| !matches!(route.next, RouteNext::Device(_)));
                }
            }
            PolicyBug::FlushEverything if !changes.nat.is_empty() || !changes.routes.is_empty() => {
                changes.conntrack = desired
                    .nat
                    .keys()
                    .map(|node| ConntrackDeletion {
                        node: node.clone(),
                        matching: ConntrackMatch::Any,
                    })
                    .collect();
            }
            _ => {}
        }
    }
}

/// Take each cross-node conflict's losers' NAT and device routes away: only
/// the winner's node translates the floating IP.
fn global_winners(desired: &mut DesiredState) {
    for conflict in desired.conflicts.iter().filter(|c| c.across_nodes) {
        for state in desired.nat.values_mut() {
            let lost = |internal: IpAddr| conflict.losers.contains(&internal);
            if state
                .dnat
                .iter()
                .any(|m| m.external == conflict.external && lost(m.internal))
            {
                *state = NodeNatState::new(
                    state
                        .dnat
                        .iter()
                        .copied()
                        .filter(|m| !(m.external == conflict.external && lost(m.internal))),
                    state.snat.iter().copied().filter(|m| !lost(m.internal)),
                );
            }
        }
    }
    let losing_nodes: Vec<(String, IpAddr)> = desired
        .conflicts
        .iter()
        .filter(|c| c.across_nodes)
        .flat_map(|c| {
            desired
                .pods
                .values()
                .filter(|p| p.addresses.iter().any(|a| c.losers.contains(a)))
                .map(|p| (p.node.clone(), c.external))
                .collect::<Vec<_>>()
        })
        .collect();
    for (node, external) in losing_nodes {
        if let Some(routes) = desired.routes.get_mut(&node) {
            routes
                .retain(|r| !(r.destination == external && matches!(r.next, RouteNext::Device(_))));
        }
    }
}

/// Give each same-node conflict to its numerically lowest claim, then pick
/// each pod's loopback SNAT again from the DNATs it now holds.
fn numeric_winners(desired: &mut DesiredState) {
    for conflict in desired.conflicts.iter().filter(|c| !c.across_nodes) {
        let lowest = conflict
            .losers
            .iter()
            .copied()
            .chain([conflict.winner])
            .min()
            .expect("a conflict has a winner");
        if lowest == conflict.winner {
            continue;
        }
        for state in desired.nat.values_mut() {
            for mapping in state.dnat.iter_mut() {
                if mapping.external == conflict.external && mapping.internal == conflict.winner {
                    mapping.internal = lowest;
                }
            }
        }
    }
    for state in desired.nat.values_mut() {
        // Felix's rule for the SNAT: the text-earliest floating IP of the pod.
        let mut snat: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
        for mapping in &state.dnat {
            let entry = snat.entry(mapping.internal).or_insert(mapping.external);
            if mapping.external.to_string() < entry.to_string() {
                *entry = mapping.external;
            }
        }
        *state = NodeNatState::new(
            state.dnat.clone(),
            snat.into_iter().map(|(i, e)| SnatMapping::new(i, e)),
        );
    }
}
