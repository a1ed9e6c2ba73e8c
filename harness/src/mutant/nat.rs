//! Dataplane mutants: a dataplane wrapped from outside with one bug, as
//! smoltcp's fault injector wraps a device. Most bend the state before the
//! wrapped dataplane applies it; the rendering bugs then rewrite the chains of
//! the map backend's table (`dataplane::nft_maps::TABLE`), so they wrap that
//! backend (it changes only map elements after the first apply, so the
//! rewritten chains stay).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dataplane::exec::run_in;
use crate::dataplane::nft_maps::TABLE;
use crate::dataplane::{Dataplane, DataplaneError, DnatMapping, NodeNatState};
use crate::lab::netns::Netns;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatBug {
    /// The output chain has no DNAT: the node's own traffic is not translated.
    NoOutputDnat,
    /// No loopback SNAT mappings.
    NoLoopbackSnat,
    /// SNAT of every packet from a pod with a floating IP, not only loopback.
    SnatOnEgress,
    /// DNAT only for tcp, udp and sctp.
    DnatL4Only,
    /// IPv6 mappings are dropped.
    Ipv6Ignored,
    /// DNAT to the address after the right one.
    DnatOffByOne,
    /// Mappings are never removed, only replaced by a newer one of the same key.
    StaleMappings,
    /// `apply` returns at once; the rules land this much later.
    Late(Duration),
}

/// A delayed apply waiting in the worker's queue.
type Pending = (Netns, NodeNatState, Instant);

/// A dataplane with one [`NatBug`].
pub struct MutantDataplane {
    bug: NatBug,
    inner: Arc<dyn Dataplane>,
    /// What each node holds (by namespace name), for the bugs that remember.
    held: Mutex<HashMap<String, NodeNatState>>,
    /// For [`NatBug::Late`]: the worker's queue and how many applies wait in it.
    late: Option<(Mutex<Sender<Pending>>, Arc<AtomicUsize>)>,
}

impl MutantDataplane {
    /// `inner` with `bug`; the rendering bugs need the map backend there.
    pub fn wrap(bug: NatBug, inner: Arc<dyn Dataplane>) -> Self {
        let late = matches!(bug, NatBug::Late(_)).then(|| {
            let (sender, receiver) = channel::<Pending>();
            let waiting = Arc::new(AtomicUsize::new(0));
            let (backend, count) = (Arc::clone(&inner), waiting.clone());
            // One worker keeps the applies in order; it ends with the sender.
            std::thread::spawn(move || {
                for (node, state, due) in receiver {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    if let Err(error) = backend.apply(&node, &state) {
                        tracing::warn!(%error, "late mutant apply failed");
                    }
                    count.fetch_sub(1, Ordering::SeqCst);
                }
            });
            (Mutex::new(sender), waiting)
        });
        Self {
            bug,
            inner,
            held: Mutex::default(),
            late,
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
            NatBug::DnatOffByOne => NodeNatState::new(
                state
                    .dnat
                    .iter()
                    .map(|m| DnatMapping::new(m.external, next_address(m.internal))),
                state.snat.clone(),
            ),
            NatBug::StaleMappings => {
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
            _ => state.clone(),
        }
    }

    /// The nft script that rewrites the reference chains, for rendering bugs.
    fn patch(&self, state: &NodeNatState) -> Option<String> {
        let mut script = String::new();
        for (family, v4, addr_type) in [("ip", true, "ipv4_addr"), ("ip6", false, "ipv6_addr")] {
            let at = format!("{family} {TABLE}");
            match self.bug {
                NatBug::NoOutputDnat => script.push_str(&format!("flush chain {at} output\n")),
                NatBug::DnatL4Only => {
                    for chain in ["prerouting", "output"] {
                        script.push_str(&format!(
                            "flush chain {at} {chain}\n\
                             add rule {at} {chain} meta l4proto {{ tcp, udp, sctp }} \
                             dnat to {family} daddr map @fip-dnat\n"
                        ));
                    }
                }
                NatBug::SnatOnEgress => {
                    let elements: Vec<String> = state
                        .snat
                        .iter()
                        .filter(|m| m.internal.is_ipv4() == v4)
                        .map(|m| format!("{} : {}", m.internal, m.external))
                        .collect();
                    script.push_str(&format!(
                        "add map {at} fip-egress {{ type {addr_type} : {addr_type}; }}\n\
                         flush map {at} fip-egress\n\
                         flush chain {at} postrouting\n\
                         add rule {at} postrouting snat to {family} saddr . {family} daddr map @fip-snat\n\
                         add rule {at} postrouting snat to {family} saddr map @fip-egress\n"
                    ));
                    if !elements.is_empty() {
                        script.push_str(&format!(
                            "add element {at} fip-egress {{ {} }}\n",
                            elements.join(", ")
                        ));
                    }
                }
                _ => return None,
            }
        }
        Some(script)
    }
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
        let bent = self.bend(node, state);
        if let (NatBug::Late(delay), Some((sender, waiting))) = (self.bug, &self.late) {
            waiting.fetch_add(1, Ordering::SeqCst);
            let queued = sender.lock().expect("queue lock").send((
                node.clone(),
                bent,
                Instant::now() + delay,
            ));
            if queued.is_err() {
                waiting.fetch_sub(1, Ordering::SeqCst);
            }
            return Ok(());
        }
        self.inner.apply(node, &bent)?;
        if let Some(script) = self.patch(&bent) {
            run_in(node, "nft", &["-f", "-"], Some(script.as_bytes()))?;
        }
        Ok(())
    }

    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        if let Some((_, waiting)) = &self.late {
            // Let queued applies land first so that nothing comes back after.
            let deadline = Instant::now() + Duration::from_secs(2);
            while waiting.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
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
