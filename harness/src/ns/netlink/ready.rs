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
//! floating IP; load 16-19).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, State};

use super::{Member, NetlinkError};
use crate::ns::netns::Netns;

/// What of a member does not carry traffic yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NotReady {
    /// Links set up whose operational state is still down (a link that
    /// reports no carrier state, such as a dummy, is `unknown` and ready).
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
    /// The member's links that are set up but still operationally down
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
            let mut name = format!("if{}", link.header.index);
            let mut ready = true;
            for attribute in &link.attributes {
                match attribute {
                    LinkAttribute::IfName(n) => name = n.clone(),
                    LinkAttribute::OperState(state) => {
                        ready = !matches!(state, State::Down | State::LowerLayerDown)
                    }
                    _ => {}
                }
            }
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
