//! Dataplane mutants: a dataplane wrapped from outside with one bug, as
//! smoltcp's fault injector wraps a device. Most bend the state before the
//! wrapped dataplane applies it; the rendering bugs (`render.rs`) then
//! rewrite the chains of the map backend's table, so they wrap that backend;
//! the timing bugs (`timing.rs`) change when an apply lands.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::nat_bug::NatBug;
use super::render::patch;
use super::timing::Delayed;
use crate::dataplane::exec::run_in;
use crate::dataplane::{
    ConntrackMatch, Dataplane, DataplaneError, DnatMapping, NodeNatState, NodeTopology, SnatMapping,
};
use crate::lab::netns::Netns;

/// A dataplane with one [`NatBug`].
pub struct MutantDataplane {
    bug: NatBug,
    inner: Arc<dyn Dataplane>,
    /// What each node holds (by namespace name), for the bugs that remember.
    held: Mutex<HashMap<String, NodeNatState>>,
    /// Each node's pods' addresses, from its latest topology, and (once
    /// frozen) the ones it had at its first apply: for `TopologyFrozen`.
    seen: Mutex<HashMap<String, BTreeSet<IpAddr>>>,
    frozen: Mutex<HashMap<String, BTreeSet<IpAddr>>>,
    /// For the timing bugs.
    delayed: Option<Delayed>,
}

impl MutantDataplane {
    /// `inner` with `bug`; the rendering bugs need the map backend there.
    pub fn wrap(bug: NatBug, inner: Arc<dyn Dataplane>) -> Self {
        let timed = matches!(
            bug,
            NatBug::Late(_) | NatBug::Reordered(_) | NatBug::LostTrailing(_)
        );
        Self {
            bug,
            delayed: timed.then(|| Delayed::new(Arc::clone(&inner))),
            inner,
            held: Mutex::default(),
            seen: Mutex::default(),
            frozen: Mutex::default(),
        }
    }

    /// The state as the buggy dataplane would program it.
    fn bend(&self, node: &Netns, state: &NodeNatState) -> NodeNatState {
        match self.bug {
            NatBug::NoLoopbackSnat => NodeNatState::new(state.dnat.clone(), []),
            NatBug::Ipv6Ignored => NodeNatState::new(
                state.dnat.iter().copied().filter(|m| m.external.is_ipv4()),
                state.snat.iter().copied().filter(|m| m.internal.is_ipv4()),
            ),
            NatBug::Ipv6NoLoopbackSnat => NodeNatState::new(
                state.dnat.clone(),
                state.snat.iter().copied().filter(|m| m.internal.is_ipv4()),
            ),
            NatBug::DnatOffByOne => NodeNatState::new(
                state
                    .dnat
                    .iter()
                    .map(|m| DnatMapping::new(m.external, next_address(m.internal))),
                state.snat.clone(),
            ),
            NatBug::SnatLastWins => NodeNatState::new(state.dnat.clone(), last_snat(state)),
            NatBug::DnatKeyedByPod => {
                let by_pod: BTreeMap<IpAddr, DnatMapping> = sorted_by_text(state)
                    .into_iter()
                    .map(|m| (m.internal, m))
                    .collect();
                NodeNatState::new(by_pod.into_values(), state.snat.clone())
            }
            NatBug::StaleMappings => self.stale(node, state),
            NatBug::TopologyFrozen if state.dnat.is_empty() => state.clone(),
            NatBug::TopologyFrozen => {
                let known = self.known_pods(node);
                NodeNatState::new(
                    state
                        .dnat
                        .iter()
                        .copied()
                        .filter(|m| known.contains(&m.internal)),
                    state
                        .snat
                        .iter()
                        .copied()
                        .filter(|m| known.contains(&m.internal)),
                )
            }
            _ => state.clone(),
        }
    }

    /// What a dataplane that only adds holds after `state`.
    fn stale(&self, node: &Netns, state: &NodeNatState) -> NodeNatState {
        let mut held = self.held.lock().expect("held lock");
        let old = held.remove(node.name()).unwrap_or_default();
        let dnat = state.dnat.iter().copied().chain(
            old.dnat
                .into_iter()
                .filter(|o| state.dnat.iter().all(|m| m.external != o.external)),
        );
        let snat = state.snat.iter().copied().chain(
            old.snat
                .into_iter()
                .filter(|o| state.snat.iter().all(|m| m.internal != o.internal)),
        );
        let kept = NodeNatState::new(dnat, snat);
        held.insert(node.name().to_string(), kept.clone());
        kept
    }

    /// The pods `node` had when it first got a mapping (frozen then).
    fn known_pods(&self, node: &Netns) -> BTreeSet<IpAddr> {
        let seen = self.seen.lock().expect("seen lock");
        let mut frozen = self.frozen.lock().expect("frozen lock");
        frozen
            .entry(node.name().to_string())
            .or_insert_with(|| seen.get(node.name()).cloned().unwrap_or_default())
            .clone()
    }
}

/// The DNAT mappings ordered by their floating IP as text.
fn sorted_by_text(state: &NodeNatState) -> Vec<DnatMapping> {
    let mut dnat = state.dnat.clone();
    dnat.sort_by_key(|m| m.external.to_string());
    dnat
}

/// Each pod's loopback SNAT to its text-greatest floating IP.
fn last_snat(state: &NodeNatState) -> Vec<SnatMapping> {
    let mut last: BTreeMap<IpAddr, IpAddr> = BTreeMap::new();
    for m in sorted_by_text(state) {
        last.insert(m.internal, m.external);
    }
    state
        .snat
        .iter()
        .map(|m| SnatMapping::new(m.internal, *last.get(&m.internal).unwrap_or(&m.external)))
        .collect()
}

/// The address after `address` (wrapping), where the next pod of a block is.
fn next_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(1).into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(1).into()),
    }
}

impl Dataplane for MutantDataplane {
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        // A NAT bug leaves the rest of Felix's rules (the workload dispatch,
        // NAT-outgoing) as they are.
        let bent = NodeNatState {
            filter: state.filter.clone(),
            ..self.bend(node, state)
        };
        if let Some(delayed) = &self.delayed {
            match self.bug {
                NatBug::Late(delay) => delayed.in_order(node, bent, delay),
                NatBug::Reordered(delay) => delayed.alternating(node, bent, delay),
                NatBug::LostTrailing(quiet) if delayed.debounced(node, quiet) => {
                    self.inner.apply(node, &bent)?;
                }
                _ => {}
            }
            return Ok(());
        }
        self.inner.apply(node, &bent)?;
        if let Some(script) = patch(self.bug, &bent) {
            run_in(node, "nft", &["-f", "-"], Some(script.as_bytes()))?;
        }
        Ok(())
    }

    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        if let Some(delayed) = &self.delayed {
            delayed.drain();
        }
        self.held.lock().expect("held lock").remove(node.name());
        self.inner.remove(node)
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        self.inner.dump(node)
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        self.inner.read(node)
    }

    /// The inner backend's conntrack deletions: a NAT bug bends no flush.
    fn flush(&self, node: &Netns, rules: &[ConntrackMatch]) -> Result<usize, DataplaneError> {
        self.inner.flush(node, rules)
    }

    fn follow_flows(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.inner.follow_flows(node)
    }

    fn wants_topology(&self) -> bool {
        self.bug == NatBug::TopologyFrozen || self.inner.wants_topology()
    }

    fn topology(&self, node: &Netns, topology: &NodeTopology) -> Result<(), DataplaneError> {
        if self.bug == NatBug::TopologyFrozen {
            let pods = topology
                .pods
                .iter()
                .flat_map(|p| p.addresses.iter().copied());
            self.seen
                .lock()
                .expect("seen lock")
                .insert(node.name().to_string(), pods.collect());
        }
        if self.inner.wants_topology() {
            self.inner.topology(node, topology)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_address_is_one_up() {
        assert_eq!(
            next_address("198.19.0.5".parse().unwrap()),
            "198.19.0.6".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            next_address("2001:db8::ff".parse().unwrap()),
            "2001:db8::100".parse::<IpAddr>().unwrap()
        );
    }
}
