//! What both ends of a probe share: packets as a raw socket hands them over,
//! and the receive window both ends of an SCTP association advertise.

use std::net::IpAddr;

use crate::wire::ip;
use crate::wire::{gre, ChecksumPolicy};

/// Receive window both ends advertise: far more than a probe window holds.
pub(super) const A_RWND: u32 = 1 << 20;

/// Raw IPv4 sockets deliver the IP header, IPv6 ones only the payload.
pub(crate) fn strip_ip(v6: bool, packet: &[u8]) -> Option<(Option<IpAddr>, &[u8])> {
    if v6 {
        Some((None, packet))
    } else {
        let ip = ip::parse(packet)?;
        Some((Some(ip.src), ip.payload))
    }
}

/// A GRE packet with a right checksum (a wrong one is refused, as a real
/// endpoint would) and its payload.
pub(crate) fn parse_gre(bytes: &[u8]) -> Option<(gre::Repr, &[u8])> {
    let packet = gre::Packet::new_checked(bytes).ok()?;
    let repr = gre::Repr::parse(&packet, ChecksumPolicy::Verify).ok()?;
    Some((repr, &bytes[repr.header_len()..]))
}
