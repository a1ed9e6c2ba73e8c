//! Control-plane mutants: each overrides one hook of `control::ControlPolicy`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::calico::diff::{ConntrackDeletion, ConntrackMatch};
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
        if self.0 == PolicyBug::NumericClaimOrder {
            numeric_winners(desired);
        }
    }

    fn adjust_changes(&self, changes: &mut Changes, desired: &DesiredState) {
        match self.0 {
            PolicyBug::NeverFlushByDestination => changes
                .conntrack
                .retain(|d| !matches!(d.matching, ConntrackMatch::OrigDst(_))),
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
