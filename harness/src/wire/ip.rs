//! IPv4 and IPv6 headers as raw sockets and AF_PACKET hand them over, read with
//! `pnet_packet`: addresses, the protocol number and the payload's bounds.
//!
//! Three readers, one per place a header turns up: a whole packet
//! ([`parse`]), a packet inside an Ethernet frame ([`in_ethernet`]) and the
//! packet an ICMP error quotes ([`quoted`]), which is cut short by design.
//! IPv6 extension headers are not walked: the harness sends none.

use std::net::IpAddr;

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::Packet as _;

pub use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};

/// Length of an IPv4 header without options.
const IPV4_MIN_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

/// An IP packet's addresses, protocol number and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpView<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 Protocol or IPv6 Next Header.
    pub protocol: u8,
    pub payload: &'a [u8],
}

impl IpView<'_> {
    pub fn is_ipv6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// Reads an IPv4 or IPv6 packet, chosen by its version nibble. The payload
/// ends where the header's length field says, or at the end of the buffer if
/// that comes first.
pub fn parse(buf: &[u8]) -> Option<IpView<'_>> {
    match buf.first()? >> 4 {
        4 => {
            let packet = Ipv4Packet::new(buf)?;
            let header_len = usize::from(packet.get_header_length()) * 4;
            if header_len < IPV4_MIN_HEADER_LEN || header_len > buf.len() {
                return None;
            }
            Some(view_v4(&packet, buf, header_len))
        }
        6 => {
            let packet = Ipv6Packet::new(buf)?;
            Some(view_v6(&packet, buf))
        }
        _ => None,
    }
}

/// The IP packet inside an Ethernet frame (no VLAN tags in a lab).
pub fn in_ethernet(frame: &[u8]) -> Option<IpView<'_>> {
    let ethernet = EthernetPacket::new(frame)?;
    let ethertype = ethernet.get_ethertype();
    if ethertype != EtherTypes::Ipv4 && ethertype != EtherTypes::Ipv6 {
        return None;
    }
    let header_len = frame.len() - ethernet.payload().len();
    parse(&frame[header_len..])
}

/// The packet an ICMP or ICMPv6 error quotes. Its header is whole but its
/// payload is cut short (RFC 792: 8 bytes at least, RFC 4443: as much as fits),
/// so the payload is whatever follows the header, whatever its length field
/// says; an IPv4 header length past the quote is taken as the quote's end.
pub fn quoted(quote: &[u8]) -> Option<IpView<'_>> {
    match quote.first()? >> 4 {
        4 => {
            let packet = Ipv4Packet::new(quote)?;
            let header_len = (usize::from(packet.get_header_length()) * 4)
                .max(IPV4_MIN_HEADER_LEN)
                .min(quote.len());
            let mut view = view_v4(&packet, quote, header_len);
            view.payload = &quote[header_len..];
            Some(view)
        }
        6 => {
            let packet = Ipv6Packet::new(quote)?;
            let mut view = view_v6(&packet, quote);
            view.payload = &quote[IPV6_HEADER_LEN..];
            Some(view)
        }
        _ => None,
    }
}

/// pnet bounds the payload by Total Length and the buffer; the slice is taken
/// again from `buf` so that it borrows the buffer rather than the view.
fn view_v4<'a>(packet: &Ipv4Packet<'_>, buf: &'a [u8], header_len: usize) -> IpView<'a> {
    let len = packet.payload().len();
    IpView {
        src: packet.get_source().into(),
        dst: packet.get_destination().into(),
        protocol: packet.get_next_level_protocol().0,
        payload: &buf[header_len..header_len + len],
    }
}

fn view_v6<'a>(packet: &Ipv6Packet<'_>, buf: &'a [u8]) -> IpView<'a> {
    let len = packet.payload().len();
    IpView {
        src: packet.get_source().into(),
        dst: packet.get_destination().into(),
        protocol: packet.get_next_header().0,
        payload: &buf[IPV6_HEADER_LEN..IPV6_HEADER_LEN + len],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (no options) of a packet `total` bytes long, protocol 47.
    fn v4_header(total: u16) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[198, 18, 1, 10, 203, 0, 113, 10]);
        h
    }

    #[test]
    fn ipv4_payload_ends_at_total_length() {
        let mut packet = v4_header(24);
        packet.extend_from_slice(&[1, 2, 3, 4, 0xee, 0xee]);
        let view = parse(&packet).unwrap();
        assert_eq!(view.src, "198.18.1.10".parse::<IpAddr>().unwrap());
        assert_eq!(view.dst, "203.0.113.10".parse::<IpAddr>().unwrap());
        assert_eq!(view.protocol, 47);
        assert_eq!(view.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn ipv4_header_length_below_twenty_is_refused() {
        let mut packet = v4_header(24);
        packet[0] = 0x44;
        packet.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(parse(&packet), None);
    }

    #[test]
    fn quoted_ipv4_payload_runs_to_the_end_of_the_quote() {
        // The quoted header claims 1000 bytes; the quote holds 8 of payload.
        let mut quote = v4_header(1000);
        quote.extend_from_slice(&[9; 8]);
        assert_eq!(quoted(&quote).unwrap().payload, &[9; 8]);
        assert_eq!(parse(&quote).unwrap().payload, &[9; 8]);
    }

    #[test]
    fn ipv6_payload_ends_at_payload_length() {
        let mut packet = vec![0x60, 0, 0, 0, 0, 3, 132, 64];
        packet.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        packet.extend_from_slice(
            &"2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        packet.extend_from_slice(&[7, 7, 7, 0xee]);
        let view = parse(&packet).unwrap();
        assert!(view.is_ipv6());
        assert_eq!((view.protocol, view.payload), (132, &[7u8, 7, 7][..]));
        assert_eq!(quoted(&packet).unwrap().payload, &[7, 7, 7, 0xee]);
    }

    #[test]
    fn ethernet_frame_yields_its_ip_packet_and_other_ethertypes_none() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&v4_header(20));
        assert_eq!(in_ethernet(&frame).unwrap().protocol, 47);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(in_ethernet(&frame), None);
    }
}
