//! The traffic kinds the harness sends, as scenarios, checks and the
//! traffic engine name them.

use serde::{Deserialize, Serialize};

use crate::wire::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols as Ip};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ICMP echo for an IPv4 target, ICMPv6 echo for an IPv6 one.
    Icmp,
    Gre,
    Sctp,
    Udp,
    Tcp,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Icmp,
        Protocol::Gre,
        Protocol::Sctp,
        Protocol::Udp,
        Protocol::Tcp,
    ];

    /// Whether the protocol has ports (udp, tcp, sctp).
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Udp | Protocol::Tcp | Protocol::Sctp)
    }

    /// The protocol of an IP header's protocol/next-header number, if it is one
    /// the engine speaks.
    pub fn from_ip_protocol(number: u8) -> Option<Protocol> {
        match IpNextHeaderProtocol(number) {
            Ip::Icmp | Ip::Icmpv6 => Some(Protocol::Icmp),
            Ip::Gre => Some(Protocol::Gre),
            Ip::Sctp => Some(Protocol::Sctp),
            Ip::Udp => Some(Protocol::Udp),
            Ip::Tcp => Some(Protocol::Tcp),
            _ => None,
        }
    }

    pub fn ip_protocol(self, v6: bool) -> u8 {
        match self {
            Protocol::Icmp if v6 => Ip::Icmpv6,
            Protocol::Icmp => Ip::Icmp,
            Protocol::Gre => Ip::Gre,
            Protocol::Sctp => Ip::Sctp,
            Protocol::Udp => Ip::Udp,
            Protocol::Tcp => Ip::Tcp,
        }
        .0
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Icmp => "icmp",
            Protocol::Gre => "gre",
            Protocol::Sctp => "sctp",
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown protocol '{s}' (icmp, gre, sctp, udp, tcp)"))
    }
}

/// Port the pods' UDP, TCP and SCTP echo responders listen on (RFC 862
/// echo; traffic/responder.rs). The Calico model predicts what a pod
/// answers from it.
pub const ECHO_PORT: u16 = 7;
/// The SCTP responder serves destination ports below this; probe clients use
/// ports from here up, so a pod probing another pod never answers its own
/// association's packets as if it were the server.
pub const SCTP_CLIENT_PORT_BASE: u16 = 32768;
/// Seeded UDP and TCP probes bind source ports from [`SCTP_CLIENT_PORT_BASE`]
/// up to (not including) this one (traffic/probe.rs).
pub const SEEDED_PORT_END: u16 = 40000;
/// `net.ipv4.ip_local_port_range` (which IPv6 shares) in the lab's nodes,
/// fabric and external hosts: the ports the kernel picks for itself, such as
/// BIRD's side of a BGP session, start where the seeded probe ports end. With
/// the kernel's default (32768-60999) a probe's bind met BIRD's socket on the
/// same port now and then: "TCP probe: Address already in use".
pub const KERNEL_PORT_RANGE: &str = "40000 60999";
const _: () = assert!(SCTP_CLIENT_PORT_BASE < SEEDED_PORT_END);

#[cfg(test)]
mod port_tests {
    use super::*;

    #[test]
    fn the_kernels_ports_start_where_the_seeded_probe_ports_end() {
        let (low, high) = KERNEL_PORT_RANGE.split_once(' ').unwrap();
        assert_eq!(low.parse::<u16>().unwrap(), SEEDED_PORT_END);
        assert!(high.parse::<u16>().unwrap() > SEEDED_PORT_END);
    }
}
