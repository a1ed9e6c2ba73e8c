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

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, State};

use super::{Member, NetlinkError};

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
    /// The lab turns detection off (`accept_dad` 0), so this finds only an
    /// address someone added with it on.
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
