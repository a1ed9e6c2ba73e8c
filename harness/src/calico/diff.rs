//! Old desired state + new desired state -> the changes to make. Pure.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::desired::DesiredState;
use super::nat::NodeNatState;
use super::routes::{FipRoute, RouteNext};

/// Which entries a conntrack deletion takes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConntrackMatch {
    OrigDst(IpAddr),
    OrigSrcOrReplySrc(IpAddr),
    /// Every entry (Calico never asks for this; a mutant does).
    Any,
}

impl ConntrackMatch {
    /// Whether an entry with this original source and destination and this
    /// reply source is one this deletion takes.
    pub fn selects(&self, orig_src: IpAddr, orig_dst: IpAddr, reply_src: IpAddr) -> bool {
        match self {
            ConntrackMatch::OrigDst(a) => orig_dst == *a,
            ConntrackMatch::OrigSrcOrReplySrc(a) => orig_src == *a || reply_src == *a,
            ConntrackMatch::Any => true,
        }
    }
}

pub use crate::vocab::ConntrackProfile;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConntrackDeletion {
    pub node: String,
    pub matching: ConntrackMatch,
}

/// One member's route changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteChange {
    pub member: String,
    /// Added or replaced (a changed next hop is a replacement).
    pub add: Vec<FipRoute>,
    /// Destinations whose route goes.
    pub remove: Vec<IpAddr>,
}

/// Everything one update does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// One transaction for each node whose NAT changed, with its whole new state.
    pub nat: Vec<(String, NodeNatState)>,
    pub routes: Vec<RouteChange>,
    pub conntrack: Vec<ConntrackDeletion>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.nat.is_empty() && self.routes.is_empty() && self.conntrack.is_empty()
    }

    /// The part of these changes Felix makes when BGP (BIRD) carries the
    /// floating IPs to the other members: the NAT, the conntrack deletions
    /// and the device routes to pods (felix/dataplane/linux/endpoint_mgr.go
    /// calculateRoutes); a device route Felix `held` that becomes a route
    /// via another node goes, since BIRD programs that one itself.
    pub fn felix_part(&self, held: &DesiredState) -> Changes {
        let device = |r: &FipRoute| matches!(r.next, RouteNext::Device(_));
        let held_device = |member: &str, destination: IpAddr| {
            held.routes.get(member).is_some_and(|routes| {
                routes
                    .iter()
                    .any(|r| r.destination == destination && device(r))
            })
        };
        let routes = self
            .routes
            .iter()
            .filter_map(|change| {
                let add: Vec<FipRoute> = change.add.iter().filter(|r| device(r)).cloned().collect();
                let mut remove: Vec<IpAddr> = change
                    .remove
                    .iter()
                    .copied()
                    .chain(
                        change
                            .add
                            .iter()
                            .filter(|r| !device(r))
                            .map(|r| r.destination),
                    )
                    .filter(|d| held_device(&change.member, *d))
                    .collect();
                remove.sort();
                remove.dedup();
                (!add.is_empty() || !remove.is_empty()).then(|| RouteChange {
                    member: change.member.clone(),
                    add,
                    remove,
                })
            })
            .collect();
        Changes {
            nat: self.nat.clone(),
            routes,
            conntrack: self.conntrack.clone(),
        }
    }
}

/// The changes that take the cluster from `old` to `new`.
pub fn diff(old: &DesiredState, new: &DesiredState, profile: ConntrackProfile) -> Changes {
    let mut changes = Changes::default();
    for (node, state) in &new.nat {
        if old.nat.get(node) != Some(state) {
            changes.nat.push((node.clone(), state.clone()));
        }
    }
    for (node, state) in &old.nat {
        if !new.nat.contains_key(node) && *state != NodeNatState::default() {
            changes.nat.push((node.clone(), NodeNatState::default()));
        }
    }

    let members: BTreeSet<&String> = old.routes.keys().chain(new.routes.keys()).collect();
    let empty = BTreeSet::new();
    for member in members {
        let before = old.routes.get(member).unwrap_or(&empty);
        let after = new.routes.get(member).unwrap_or(&empty);
        let add: Vec<FipRoute> = after.difference(before).cloned().collect();
        let kept: BTreeSet<IpAddr> = after.iter().map(|r| r.destination).collect();
        let mut remove: Vec<IpAddr> = before
            .iter()
            .map(|r| r.destination)
            .filter(|d| !kept.contains(d))
            .collect();
        remove.dedup();
        if !add.is_empty() || !remove.is_empty() {
            changes.routes.push(RouteChange {
                member: member.clone(),
                add,
                remove,
            });
        }
    }

    // A pod that went (or left its node): Calico removes its route, and with it
    // the entries whose original or reply source is the pod's address.
    for (pod, placement) in &old.pods {
        if new.pods.get(pod).is_some_and(|p| p == placement) {
            continue;
        }
        for address in &placement.addresses {
            changes.conntrack.push(ConntrackDeletion {
                node: placement.node.clone(),
                matching: ConntrackMatch::OrigSrcOrReplySrc(*address),
            });
        }
    }
    // A floating IP's device route that moved to another interface or went:
    // Felix's route table tracks the owner of every /32 (/128) it programs
    // (felix/routetable/conntrack_owner_tracker.go, OnDataplaneRouteDeleted
    // and CIDRNeedsEarlyCleanup: not when the interface stays, nor when
    // there was no route before) and has felix/conntrack/conntrack.go
    // RemoveConntrackFlows run `conntrack --delete --orig-src <ip>` and
    // `--reply-src <ip>` on that node.
    for (member, before) in &old.routes {
        let after = new.routes.get(member).unwrap_or(&empty);
        for route in before {
            let RouteNext::Device(interface) = &route.next else {
                continue;
            };
            let stays = after.iter().any(|r| {
                r.destination == route.destination
                    && matches!(&r.next, RouteNext::Device(i) if i == interface)
            });
            if !stays {
                changes.conntrack.push(ConntrackDeletion {
                    node: member.clone(),
                    matching: ConntrackMatch::OrigSrcOrReplySrc(route.destination),
                });
            }
        }
    }
    if profile == ConntrackProfile::Strict {
        let nodes: Vec<&String> = new.nat.keys().collect();
        // A floating IP that gains a pod counts too: while it had none,
        // traffic still routed to a node (BGP withdraws a moment after
        // Felix) made entries there without NAT that would keep the flow
        // from the new pod.
        let externals: BTreeSet<&IpAddr> = old.owners.keys().chain(new.owners.keys()).collect();
        for external in externals {
            if new.owners.get(external) == old.owners.get(external) {
                continue;
            }
            for node in &nodes {
                changes.conntrack.push(ConntrackDeletion {
                    node: (*node).clone(),
                    matching: ConntrackMatch::OrigDst(*external),
                });
            }
        }
    }
    changes.conntrack.sort();
    changes.conntrack.dedup();
    changes
}
