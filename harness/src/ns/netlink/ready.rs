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
    /// The lab turns detection off (`accept_dad` 0) where it sets IPv6 up,
    /// so this finds a global address only where someone added it with
    /// detection on. A tentative link-local address counts only in a
    /// namespace that holds a global IPv6 address (not `::1`): elsewhere it is an IPv4
    /// pod's (Calico's `DoWorkloadNetnsSetUp` turns detection off only for a
    /// pod with IPv6, so the kernel's own fe80:: on its `eth0` stays
    /// tentative for one to two seconds, `addrconf_dad_kick`'s random delay
    /// of up to `rtr_solicit_delay` and then one `RetransTimer`), and no
    /// traffic of the namespace uses it: with no global address and no IPv6
    /// route it sends no IPv6 of its own.
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
        let mut seen = Vec::new();
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
            if let Some(address) = address {
                seen.push((address, tentative));
            }
        }
        let addresses = waited_for(&seen);
        Ok(NotReady { links, addresses })
    }
}

/// Of a namespace's addresses (each with whether it is tentative), the
/// tentative ones [`Member::not_ready`] waits for: every one that is not
/// link-local, and link-local ones only where the namespace holds a global
/// IPv6 address (loopback's `::1` is not one).
fn waited_for(addresses: &[(IpAddr, bool)]) -> Vec<IpAddr> {
    let global_v6 = addresses
        .iter()
        .any(|(a, _)| a.is_ipv6() && !is_link_local(a) && !a.is_loopback());
    addresses
        .iter()
        .filter(|(a, tentative)| *tentative && (global_v6 || !is_link_local(a)))
        .map(|(a, _)| *a)
        .collect()
}

/// An IPv6 link-local address (fe80::/10).
fn is_link_local(address: &IpAddr) -> bool {
    matches!(address, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// Poll the namespace `ns`, through a netlink socket of its own, until
/// nothing in it is [`NotReady`] or `within` has passed; what was still not
/// ready then (empty when all was).
pub fn wait_ready_in(ns: &Netns, within: Duration) -> Result<NotReady, NetlinkError> {
    super::with_member(ns, |member| async move {
        let started = Instant::now();
        loop {
            let state = member.not_ready().await?;
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
    use super::*;

    fn seen(list: &[(&str, bool)]) -> Vec<(IpAddr, bool)> {
        list.iter().map(|(a, t)| (a.parse().unwrap(), *t)).collect()
    }

    #[test]
    fn an_ipv4_pods_tentative_link_local_address_is_not_waited_for() {
        let pod = seen(&[
            ("127.0.0.1", false),
            ("::1", false),
            ("198.19.0.8", false),
            ("fe80::502d:fcff:fe90:7c57", true),
        ]);
        assert_eq!(waited_for(&pod), Vec::<IpAddr>::new());
    }

    #[test]
    fn a_tentative_link_local_address_is_waited_for_beside_a_global_one() {
        let pod = seen(&[
            ("::1", false),
            ("198.19.0.8", false),
            ("2001:db8:1::40", false),
            ("fe80::1", true),
        ]);
        assert_eq!(waited_for(&pod), vec!["fe80::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_tentative_global_address_is_waited_for_alone() {
        let node = seen(&[("2001:db8:99::1", true), ("fe80::2", false)]);
        assert_eq!(
            waited_for(&node),
            vec!["2001:db8:99::1".parse::<IpAddr>().unwrap()]
        );
    }
}
