//! Waiting for BIRD to settle: after a control change that alters
//! floating-IP routing, a step under BIRD ends only once the fabric (and the
//! other nodes the route model names) hold the floating-IP routes the model
//! says they should, so the next step's traffic does not race BGP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::bird::BGP_PATIENCE;
use super::case::ScenarioRun;
use super::error::RunnerError;
use crate::control::routes::list_bird_host_routes;
use crate::control::{FipRoute, RouteNext};
use crate::lab::spec::FABRIC;

/// How often the members' kernel routes are read while waiting.
const POLL: Duration = Duration::from_millis(20);

/// A floating IP whose route on a member differs from the model's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Unsettled {
    pub(super) member: String,
    pub(super) floating_ip: IpAddr,
    pub(super) expected: Option<RouteNext>,
    pub(super) seen: Option<RouteNext>,
}

impl std::fmt::Display for Unsettled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "floating IP {} on {}: expected {}, seen {}",
            self.floating_ip,
            self.member,
            hops(&self.expected),
            hops(&self.seen)
        )
    }
}

fn hops(next: &Option<RouteNext>) -> String {
    match next {
        None => "no route".to_string(),
        Some(RouteNext::Via(via)) => format!("via {via}"),
        Some(RouteNext::Multipath(all)) => {
            let all: Vec<String> = all.iter().map(|h| format!("via {h}")).collect();
            format!("ECMP {}", all.join(", "))
        }
        Some(RouteNext::Device(dev)) => format!("dev {dev}"),
    }
}

/// Order-free form of a next hop, so an ECMP route compares as a set.
fn normalised(next: &RouteNext) -> RouteNext {
    match next {
        RouteNext::Multipath(all) => {
            let mut all = all.clone();
            all.sort();
            all.dedup();
            RouteNext::through(all).expect("a multipath route has hops")
        }
        other => other.clone(),
    }
}

/// Each destination's next hop, order-free (a member holds one route per
/// destination in its main table), for lookups in large labs.
fn by_destination<'a>(
    routes: impl IntoIterator<Item = &'a FipRoute>,
) -> BTreeMap<IpAddr, RouteNext> {
    routes
        .into_iter()
        .map(|route| (route.destination, normalised(&route.next)))
        .collect()
}

/// Where BIRD's routes (`seen`, per member) differ from the model's
/// (`expected`, per member, device routes left out). On the fabric every
/// floating IP in `watched` is compared, so a route that should be gone
/// (deleted, or never exported) counts too; on the nodes only the routes the
/// model gives them: a claiming node's own BGP view is not the model's
/// business (Felix's device route serves it).
pub(super) fn unsettled(
    fabric: &str,
    expected: &BTreeMap<String, BTreeSet<FipRoute>>,
    seen: &BTreeMap<String, Vec<FipRoute>>,
    watched: &BTreeSet<IpAddr>,
) -> Vec<Unsettled> {
    let mut found = Vec::new();
    for (member, routes) in expected {
        let routes = by_destination(routes);
        let member_seen = by_destination(seen.get(member).into_iter().flatten());
        let mut destinations: BTreeSet<IpAddr> = routes.keys().copied().collect();
        if member == fabric {
            destinations.extend(watched.iter().copied());
        }
        for destination in destinations {
            let expected = routes.get(&destination).cloned();
            let seen = member_seen.get(&destination).cloned();
            if expected != seen {
                found.push(Unsettled {
                    member: member.clone(),
                    floating_ip: destination,
                    expected,
                    seen,
                });
            }
        }
    }
    found
}

impl ScenarioRun<'_> {
    /// Under BIRD, wait (at most [`BGP_PATIENCE`]) until the members hold
    /// the floating-IP routes `expected` (the route model's, see
    /// `ControlPlane::model_routes`); fails naming every floating IP still
    /// routed otherwise. Streams keep running meanwhile: only the step waits.
    pub(super) fn wait_routes_settled(
        &self,
        expected: &BTreeMap<String, BTreeSet<FipRoute>>,
    ) -> Result<(), RunnerError> {
        if self.bird.is_none() {
            return Ok(());
        }
        self.bgp_sessions_up()?;
        let watched: BTreeSet<IpAddr> = self
            .streams
            .moves
            .iter()
            .map(|change| change.floating_ip)
            .collect();
        let started = Instant::now();
        tokio::task::block_in_place(|| loop {
            let mut seen = BTreeMap::new();
            for member in expected.keys() {
                let netns = self.lab.netns(member)?;
                let routes = list_bird_host_routes(netns)?;
                seen.insert(member.clone(), routes);
            }
            let left = unsettled(FABRIC, expected, &seen, &watched);
            if left.is_empty() {
                tracing::debug!(waited = ?started.elapsed(), "BIRD carries the floating IPs");
                return Ok(());
            }
            if started.elapsed() >= BGP_PATIENCE {
                let left: Vec<String> = left.iter().map(ToString::to_string).collect();
                return Err(RunnerError::Unsettled {
                    waited: BGP_PATIENCE,
                    left,
                });
            }
            self.check_bird()?;
            std::thread::sleep(POLL);
        })
    }
}

#[cfg(test)]
mod tests;
