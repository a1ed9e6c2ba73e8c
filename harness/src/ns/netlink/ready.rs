//! Whether a member's links carry traffic yet. A link set up is not yet a
//! link that sends: the kernel turns its carrier on, activates its queueing
//! discipline and enables it as a bridge port from the link-watch work queue
//! (net/core/link_watch.c, `linkwatch_do_dev`: `rfc2863_policy` sets the
//! operational state, then `dev_activate` replaces the `noop` queue that
//! drops every packet, then `netdev_state_change` enables a bridge port and
//! starts IPv6 duplicate address detection). On an idle machine that queue
//! runs within a millisecond; on a loaded one it ran late enough that a
//! case's first packets were lost (`explore --seed 6001`: case 2039 on
//! nftables, ICMPv6 from an external host to a node; case 2313 on nft-maps,
//! ICMP to a node; case 306 on iptables, a new pod's stream to its own
//! floating IP; load 16-19). The operational state alone is not enough:
//! it is set before the queue is activated and the bridge port enabled, so
//! a link counts as ready only once all three are done.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{
    BridgePortState, InfoBridgePort, InfoPortData, LinkAttribute, LinkFlags, LinkInfo, State,
};

use super::{Member, NetlinkError};
use crate::ns::netns::Netns;

/// What of a member does not carry traffic yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NotReady {
    /// Links set up that do not carry traffic yet: the operational state
    /// still down (a link that reports no carrier state, such as a dummy, is
    /// `unknown` and ready), the `noop` queue still in place, or, for a
    /// bridge's port, not forwarding yet.
    pub links: Vec<String>,
    /// IPv6 addresses still tentative.
    pub addresses: Vec<IpAddr>,
}

impl NotReady {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.addresses.is_empty()
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .links
            .iter()
            .map(|l| format!("link {l} not up"))
            .collect();
        parts.extend(self.addresses.iter().map(|a| format!("{a} tentative")));
        f.write_str(&parts.join(", "))
    }
}

impl Member {
    /// The member's links that are set up but carry nothing yet ([`NotReady`])
    /// (loopback has no carrier and is left out), and its IPv6 addresses
    /// still tentative: where duplicate address detection is on, an address
    /// stays tentative until its link is ready and the detection is over
    /// (net/ipv6/addrconf.c, `addrconf_dad_begin` waits for `IF_READY`).
    /// The lab turns detection off (`accept_dad` 0) in its nodes, external
    /// hosts and pods with IPv6, so this finds an address someone added with
    /// it on, or the link-local address of a pod without IPv6 (see
    /// [`wait_ready_in`]).
    pub async fn not_ready(&self) -> Result<NotReady, NetlinkError> {
        let mut links = Vec::new();
        let mut dump = self.nl.link().get().execute();
        while let Some(link) = dump.try_next().await.map_err(self.fail("list links"))? {
            let flags = link.header.flags;
            if flags.contains(LinkFlags::Loopback) || !flags.contains(LinkFlags::Up) {
                continue;
            }
            let name = (link.attributes.iter())
                .find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| format!("if{}", link.header.index));
            let ready = link_ready(&link.attributes);
            if !ready {
                links.push(name);
            }
        }
        let mut addresses = Vec::new();
        let mut dump = self.nl.address().get().execute();
        while let Some(message) = dump.try_next().await.map_err(self.fail("list addresses"))? {
            // The flag is in the header's eight bits and in IFA_FLAGS
            // (net/ipv6/addrconf.c, `inet6_fill_ifaddr` writes both).
            let mut tentative = message.header.flags.contains(AddressHeaderFlags::Tentative);
            let mut address = None;
            for attribute in &message.attributes {
                match attribute {
                    AddressAttribute::Flags(f) => tentative |= f.contains(AddressFlags::Tentative),
                    AddressAttribute::Address(a) => address = Some(*a),
                    _ => {}
                }
            }
            if let (true, Some(address)) = (tentative, address) {
                addresses.push(address);
            }
        }
        Ok(NotReady { links, addresses })
    }
}

/// Whether an up link with these attributes carries traffic.
fn link_ready(attributes: &[LinkAttribute]) -> bool {
    attributes.iter().all(|attribute| match attribute {
        LinkAttribute::OperState(state) => !matches!(state, State::Down | State::LowerLayerDown),
        // `linkwatch_do_dev` sets the operational state before
        // `dev_activate` swaps the `noop` queue (which drops everything)
        // for the link's own, and enables a bridge port after that: an
        // operational state of up alone leaves a window in which the link
        // still drops.
        LinkAttribute::Qdisc(kind) => kind != "noop",
        LinkAttribute::LinkInfo(infos) => bridge_port_forwards(infos),
        _ => true,
    })
}

/// Whether a link, if it is a bridge's port, forwards: the bridge enables
/// a port (with STP off, straight to forwarding) only once the link-watch
/// work has handled its carrier (net/bridge/br.c `br_device_event`,
/// `br_port_carrier_check`); until then the bridge drops what it receives.
fn bridge_port_forwards(infos: &[LinkInfo]) -> bool {
    infos.iter().all(|info| match info {
        LinkInfo::PortData(InfoPortData::BridgePort(port)) => port.iter().all(|attribute| {
            !matches!(attribute, InfoBridgePort::State(state) if *state != BridgePortState::Forwarding)
        }),
        _ => true,
    })
}

/// Poll the namespace `ns`, through a netlink socket of its own, until
/// nothing in it is [`NotReady`] or `within` has passed; what was still not
/// ready then (empty when all was).
///
/// With `uses_ipv6` false (a pod with no IPv6 address) its tentative
/// addresses are not waited for: such a pod's only IPv6 address is the
/// kernel's link-local one on `eth0`, whose duplicate address detection
/// stays on (Calico turns it off only for a pod with IPv6:
/// cni-plugin/pkg/dataplane/linux/dataplane_linux.go,
/// `DoWorkloadNetnsSetUp` calls `disableDAD`, which writes the interface's
/// `accept_dad` 0, only `if hasIPv6`) and lasts one to two seconds (a random
/// delay of up to `rtr_solicit_delay`, then `retrans_time`:
/// net/ipv6/addrconf.c, `addrconf_dad_kick`). Nothing the pod sends or
/// receives uses that address, so waiting for it held every pod step for
/// that long; its link's carrier is still waited for.
pub fn wait_ready_in(
    ns: &Netns,
    within: Duration,
    uses_ipv6: bool,
) -> Result<NotReady, NetlinkError> {
    super::with_member(ns, |member| async move {
        let started = Instant::now();
        loop {
            let mut state = member.not_ready().await?;
            if !uses_ipv6 {
                state.addresses.clear();
            }
            if state.is_empty() || started.elapsed() >= within {
                return Ok(state);
            }
            // Nothing is in flight on the socket: its runtime may block.
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn port(state: BridgePortState) -> LinkAttribute {
        LinkAttribute::LinkInfo(vec![LinkInfo::PortData(InfoPortData::BridgePort(vec![
            InfoBridgePort::State(state),
        ]))])
    }

    #[rstest]
    #[case::up_with_its_queue(State::Up, "noqueue", None, true)]
    #[case::up_before_its_queue(State::Up, "noop", None, false)]
    #[case::down(State::Down, "noqueue", None, false)]
    #[case::no_carrier_below(State::LowerLayerDown, "noop", None, false)]
    #[case::a_forwarding_port(State::Up, "noqueue", Some(BridgePortState::Forwarding), true)]
    #[case::a_port_not_enabled_yet(State::Up, "noqueue", Some(BridgePortState::Disabled), false)]
    #[case::a_learning_port(State::Up, "noqueue", Some(BridgePortState::Learning), false)]
    fn a_link_is_ready_once_up_with_its_queue_and_forwarding(
        #[case] state: State,
        #[case] qdisc: &str,
        #[case] bridge_port: Option<BridgePortState>,
        #[case] ready: bool,
    ) {
        let mut attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::OperState(state),
            LinkAttribute::Qdisc(qdisc.into()),
        ];
        attributes.extend(bridge_port.map(port));
        assert_eq!(link_ready(&attributes), ready);
    }
}
