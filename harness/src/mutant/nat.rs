//! Dataplane mutants: a dataplane wrapped from outside with one bug, as
//! smoltcp's fault injector wraps a device. Most bend the state before the
//! wrapped dataplane applies it; the rendering bugs (`render.rs`) then
//! rewrite the chains of the map backend's table, so they wrap that backend;
//! the timing bugs (`timing.rs`) change when an apply lands.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::render::patch;
use super::timing::Delayed;
use crate::dataplane::exec::run_in;
use crate::dataplane::{
    Dataplane, DataplaneError, DnatMapping, NodeNatState, NodeTopology, SnatMapping,
};
use crate::lab::netns::Netns;

/// One dataplane bug. Each names its class and how it happens in real code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatBug {
    /// Hook choice: the output chain has no DNAT, so the node's own traffic
    /// is not translated (a dataplane that hooks only packets arriving on an
    /// interface, as a TC/XDP program does).
    NoOutputDnat,
    /// No loopback SNAT mappings.
    NoLoopbackSnat,
    /// SNAT of every packet from a pod with a floating IP, not only loopback.
    SnatOnEgress,
    /// Protocol list: DNAT only for tcp, udp and sctp.
    DnatL4Only,
    /// Protocol list: DNAT for every protocol but GRE (an allow-list of the
    /// protocols a parser knows, GRE forgotten).
    DnatNoGre,
    /// Protocol list: DNAT for every protocol but SCTP (an L4 parser that
    /// knows TCP, UDP and ICMP only, as early eBPF NATs did).
    DnatNoSctp,
    /// Family mix-up: the IPv6 table's protocol list copied from the IPv4
    /// one says `icmp` (protocol 1), so ICMPv6 (58) is not translated.
    IcmpV6NotTranslated,
    /// Family mix-up: IPv6 mappings are dropped.
    Ipv6Ignored,
    /// Family mix-up: the loopback SNAT exists for IPv4 only (its rule was
    /// rendered into the ip table alone).
    Ipv6NoLoopbackSnat,
    /// Match on interface: DNAT only for packets arriving on the uplink (a
    /// program attached to the host's main interface, not to the workloads').
    DnatUplinkOnly,
    /// Match on interface: DNAT only for packets arriving from a pod's
    /// `cali*` interface (attached to workload interfaces only).
    DnatPodsOnly,
    /// Prefix length: each floating IP matched as its /24 (/64), the length
    /// of the pool's CIDR, not the /32 (/128) of one address.
    DnatPrefix,
    /// Match fields: the loopback SNAT matches the destination only (`-d
    /// INT`, the `-s INT` lost in a port to a map keyed by one address), so
    /// every packet to a pod that holds a floating IP is SNATed.
    SnatDestinationOnly,
    /// Hook choice: the loopback SNAT in the nat input hook, which sees only
    /// packets for the node itself, never the ones forwarded to a pod.
    SnatInInputHook,
    /// ICMP error translation: ICMP errors are not tracked (a raw-table
    /// `notrack`, or an eBPF NAT that parses no ICMP error), so conntrack
    /// never reverses the NAT in the header they quote.
    IcmpErrorsUntracked,
    /// Keys and ordering in maps: the loopback SNAT takes the text-greatest
    /// floating IP of the pod (the last one written to a map wins), not the
    /// earliest as Felix picks it.
    SnatLastWins,
    /// Keys in maps: the DNAT map keyed by the pod, so a pod with several
    /// floating IPs keeps one (the last written).
    DnatKeyedByPod,
    /// DNAT to the address after the right one.
    DnatOffByOne,
    /// Mappings are never removed, only replaced by a newer one of the same key.
    StaleMappings,
    /// Topology handling: the pods known when the node first got a mapping
    /// are the only ones it ever translates to (an agent that attaches to
    /// the workload interfaces when it first has work, and never reads a
    /// later topology).
    TopologyFrozen,
    /// Async agent: `apply` returns at once; the rules land this much later.
    Late(Duration),
    /// Async agent: every other apply of a node lands this much later, on a
    /// worker of its own, so it lands after the next one (updates applied
    /// concurrently without sequencing: the older state wins).
    Reordered(Duration),
    /// Async agent: an apply within this long of the last one taken is
    /// dropped (a debounce without its trailing update).
    LostTrailing(Duration),
}

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
