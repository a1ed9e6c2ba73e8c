//! In what order, and how concurrently, one update's changes reach the lab.
//!
//! [`UpdateOrder::Felix`] (the default) is what a Calico cluster does. Each
//! node's Felix acts on its own, with no barrier between nodes, and within
//! one node it updates its routing table *in parallel* with its NAT tables
//! (felix/dataplane/linux/int_dataplane.go `apply`: "Update the routing table
//! in parallel with the other updates", the route syncers in goroutines while
//! the tables are applied, both awaited before `apply` returns). So a new
//! route may lead traffic to a node a moment before its DNAT is in place, as
//! it can in Calico. The route table's conntrack cleanup runs as part of its
//! own update (felix/routetable/route_table.go `Apply`); the harness deletes a
//! node's entries once that node's routes and NAT are both done, since the
//! `strict` profile's flushes only make sense after the new NAT. Routes that
//! BGP carries to the fabric (under `--routing model`) follow the nodes' own
//! route updates, as BIRD can only advertise a route once Felix has written
//! it; they do not wait for any node's NAT.
//!
//! [`UpdateOrder::Ordered`] is the harness's own stricter order, kept as a
//! named option: first the NAT of every node (concurrently), then the routes
//! of every member (concurrently), then the conntrack deletions, so a route
//! never leads traffic to a node before its DNAT exists.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::apply::{collect, ControlError, ControlPlane};
use crate::calico::diff::{Changes, ConntrackMatch, RouteChange};
pub use crate::calico::UpdateOrder;
use crate::dataplane::NodeNatState;

/// When (since an update's start) its NAT and its routes were all applied.
pub(super) struct PhaseTimes {
    pub nat: Duration,
    pub routes: Duration,
}

/// One member's share of an update.
type MemberWork<'a> = (&'a str, Option<&'a NodeNatState>, Option<&'a RouteChange>);

impl ControlPlane {
    /// Apply `changes` in `order`, returning how many conntrack entries went
    /// and when the NAT and the routes were done.
    pub(super) fn apply_in_order(
        &self,
        order: UpdateOrder,
        changes: &Changes,
        started: Instant,
    ) -> Result<(usize, PhaseTimes), ControlError> {
        match order {
            UpdateOrder::Felix => self.apply_as_felix(changes, started),
            UpdateOrder::Ordered => self.apply_ordered(changes, started),
        }
    }

    fn apply_ordered(
        &self,
        changes: &Changes,
        started: Instant,
    ) -> Result<(usize, PhaseTimes), ControlError> {
        let nat_work: Vec<MemberWork> = changes
            .nat
            .iter()
            .map(|(node, state)| (node.as_str(), Some(state), None))
            .collect();
        self.apply_concurrently(&nat_work)?;
        let nat = started.elapsed();
        let route_work: Vec<MemberWork> = changes
            .routes
            .iter()
            .map(|change| (change.member.as_str(), None, Some(change)))
            .collect();
        self.apply_concurrently(&route_work)?;
        let routes = started.elapsed();
        let nodes: BTreeSet<&str> = changes.conntrack.iter().map(|d| d.node.as_str()).collect();
        // Each node's deletions on a thread of their own, as the NAT and the
        // routes: a deletion dumps the kernel's whole conntrack hash, which
        // every namespace shares, so it takes milliseconds even for a node
        // with few entries.
        let results: Vec<Result<usize, ControlError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|node| scope.spawn(move || self.flush_node(node, &deletions(changes, node))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("conntrack thread"))
                .collect()
        });
        Ok((sum(results)?, PhaseTimes { nat, routes }))
    }

    fn apply_as_felix(
        &self,
        changes: &Changes,
        started: Instant,
    ) -> Result<(usize, PhaseTimes), ControlError> {
        let lab_nodes: BTreeSet<String> = self.lab().nodes().into_iter().collect();
        let mut nodes: BTreeSet<&str> = changes.nat.iter().map(|(n, _)| n.as_str()).collect();
        nodes.extend(changes.conntrack.iter().map(|d| d.node.as_str()));
        let mut elsewhere = Vec::new();
        for change in &changes.routes {
            if lab_nodes.contains(&change.member) {
                nodes.insert(change.member.as_str());
            } else {
                elsewhere.push(change);
            }
        }
        let (routed, routes_done) = mpsc::channel::<()>();
        let node_count = nodes.len();
        let (results, bgp) = std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|node| {
                    let routed = routed.clone();
                    scope.spawn(move || self.felix_node(node, changes, started, routed))
                })
                .collect();
            drop(routed);
            // BGP carries a route on once a node's Felix has written it.
            let bgp = scope.spawn(move || {
                for _ in 0..node_count {
                    if routes_done.recv().is_err() {
                        break;
                    }
                }
                let work: Vec<MemberWork> = elsewhere
                    .iter()
                    .map(|change| (change.member.as_str(), None, Some(*change)))
                    .collect();
                self.apply_concurrently(&work).map(|()| started.elapsed())
            });
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("node thread"))
                .collect();
            (results, bgp.join().expect("BGP thread"))
        });
        let mut times = PhaseTimes {
            nat: Duration::ZERO,
            routes: Duration::ZERO,
        };
        let mut deleted = 0;
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok((n, node_times)) => {
                    deleted += n;
                    times.nat = times.nat.max(node_times.nat);
                    times.routes = times.routes.max(node_times.routes);
                }
                Err(e) => errors.push(e),
            }
        }
        match bgp {
            Ok(at) => times.routes = times.routes.max(at),
            Err(e) => errors.push(e),
        }
        collect(errors)?;
        Ok((deleted, times))
    }

    /// One node's Felix: its NAT and its routes at once, then its conntrack
    /// deletions. `routed` is told when the node's routes are written.
    fn felix_node(
        &self,
        node: &str,
        changes: &Changes,
        started: Instant,
        routed: mpsc::Sender<()>,
    ) -> Result<(usize, PhaseTimes), ControlError> {
        let nat = changes.nat.iter().find(|(n, _)| n == node).map(|(_, s)| s);
        let routes = changes.routes.iter().find(|c| c.member == node);
        let (nat_result, route_result) = std::thread::scope(|scope| {
            let nat_thread = scope.spawn(move || {
                self.apply_member(node, nat, None)
                    .map(|()| started.elapsed())
            });
            let route_result = self
                .apply_member(node, None, routes)
                .map(|()| started.elapsed());
            // Sent whatever happened, so BGP's thread never waits forever.
            let _ = routed.send(());
            (nat_thread.join().expect("NAT thread"), route_result)
        });
        let times = PhaseTimes {
            nat: nat_result?,
            routes: route_result?,
        };
        let deleted = self.flush_node(node, &deletions(changes, node))?;
        Ok((deleted, times))
    }

    /// The conntrack deletions of one node, through the dataplane's own
    /// flush (the kernel's table for netfilter backends, the driver's flow
    /// state for one that owns it).
    fn flush_node(&self, node: &str, rules: &[ConntrackMatch]) -> Result<usize, ControlError> {
        if rules.is_empty() {
            return Ok(0);
        }
        let ns = self.member(node)?;
        Ok(self.dataplane().flush(&ns, rules)?)
    }

    /// Run one phase of an update: each member on a thread of its own.
    fn apply_concurrently(&self, work: &[MemberWork]) -> Result<(), ControlError> {
        let errors: Vec<ControlError> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .iter()
                .map(|(member, nat, routes)| {
                    scope.spawn(move || self.apply_member(member, *nat, *routes))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("member thread").err())
                .collect()
        });
        collect(errors)
    }
}

fn deletions(changes: &Changes, node: &str) -> Vec<ConntrackMatch> {
    changes
        .conntrack
        .iter()
        .filter(|d| d.node == node)
        .map(|d| d.matching.clone())
        .collect()
}

fn sum(results: Vec<Result<usize, ControlError>>) -> Result<usize, ControlError> {
    let mut deleted = 0;
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(n) => deleted += n,
            Err(e) => errors.push(e),
        }
    }
    collect(errors)?;
    Ok(deleted)
}
