//! ICMP (RFC 792) and ICMPv6 (RFC 4443) as far as the harness speaks them:
//! echo requests it sends, echo replies it matches, and errors whose quoted
//! packet ([`super::ip::quoted`]) tells which probe they are about. Built and
//! read with `pnet_packet`, whose Internet checksum is the crate's only one.

use pnet_packet::icmp::{self, IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::{Icmpv6Packet, Icmpv6Types};

/// Type, code, checksum and the four bytes every message has before its body
/// (identifier and sequence number for echoes, unused or MTU for errors).
pub const HEADER_LEN: usize = 8;

/// An ICMP or ICMPv6 message, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        payload: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        payload: &'a [u8],
    },
    /// An error message quoting (the start of) the packet it is about.
    Error {
        icmp_type: u8,
        code: u8,
        quoted: &'a [u8],
    },
    /// Anything else (neighbour discovery, router advertisements...).
    Other { icmp_type: u8 },
}

/// Reads an ICMP message (`v6` false) or an ICMPv6 one. None when shorter than
/// the common 8-byte header.
pub fn parse(v6: bool, buf: &[u8]) -> Option<Message<'_>> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let (icmp_type, code, kind) = if v6 {
        let packet = Icmpv6Packet::new(buf)?;
        let t = packet.get_icmpv6_type();
        let kind = match t {
            Icmpv6Types::EchoRequest => Kind::EchoRequest,
            Icmpv6Types::EchoReply => Kind::EchoReply,
            Icmpv6Types::DestinationUnreachable
            | Icmpv6Types::PacketTooBig
            | Icmpv6Types::TimeExceeded
            | Icmpv6Types::ParameterProblem => Kind::Error,
            _ => Kind::Other,
        };
        (t.0, packet.get_icmpv6_code().0, kind)
    } else {
        let packet = IcmpPacket::new(buf)?;
        let t = packet.get_icmp_type();
        let kind = match t {
            IcmpTypes::EchoRequest => Kind::EchoRequest,
            IcmpTypes::EchoReply => Kind::EchoReply,
            IcmpTypes::DestinationUnreachable
            | IcmpTypes::SourceQuench
            | IcmpTypes::RedirectMessage
            | IcmpTypes::TimeExceeded
            | IcmpTypes::ParameterProblem => Kind::Error,
            _ => Kind::Other,
        };
        (t.0, packet.get_icmp_code().0, kind)
    };
    // Echo request and reply share their layout in both versions: identifier
    // and sequence number after the checksum, then the data.
    let ident = u16::from_be_bytes([buf[4], buf[5]]);
    let seq = u16::from_be_bytes([buf[6], buf[7]]);
    let body = &buf[HEADER_LEN..];
    Some(match kind {
        Kind::EchoRequest => Message::EchoRequest {
            ident,
            seq,
            payload: body,
        },
        Kind::EchoReply => Message::EchoReply {
            ident,
            seq,
            payload: body,
        },
        Kind::Error => Message::Error {
            icmp_type,
            code,
            quoted: body,
        },
        Kind::Other => Message::Other { icmp_type },
    })
}

enum Kind {
    EchoRequest,
    EchoReply,
    Error,
    Other,
}

/// An echo request. ICMPv4 gets its checksum here; ICMPv6's covers a
/// pseudo-header of addresses the raw socket picks, so it is left zero for the
/// kernel, which always fills it in on `IPPROTO_ICMPV6` raw sockets (RFC 3542
/// section 3.1).
pub fn echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    out[0] = if v6 {
        Icmpv6Types::EchoRequest.0
    } else {
        IcmpTypes::EchoRequest.0
    };
    out[4..6].copy_from_slice(&ident.to_be_bytes());
    out[6..8].copy_from_slice(&seq.to_be_bytes());
    out[HEADER_LEN..].copy_from_slice(payload);
    if !v6 {
        let sum = icmp::checksum(&IcmpPacket::new(&out).expect("longer than the header"));
        out[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(buf: &[u8]) -> bool {
        IcmpPacket::new(buf).is_some_and(|p| icmp::checksum(&p) == p.get_checksum())
    }

    #[test]
    fn echo_request_round_trips_with_a_checksum_pnet_accepts() {
        let bytes = echo_request(false, 7, 9, b"token");
        assert_eq!(bytes[0], 8);
        assert!(checksum_ok(&bytes));
        let mut corrupt = bytes.clone();
        corrupt[9] ^= 1;
        assert!(!checksum_ok(&corrupt));
        assert_eq!(
            parse(false, &bytes),
            Some(Message::EchoRequest {
                ident: 7,
                seq: 9,
                payload: b"token"
            })
        );
    }

    #[test]
    fn icmpv6_echo_request_leaves_the_checksum_to_the_kernel() {
        let bytes = echo_request(true, 1, 2, b"x");
        assert_eq!((bytes[0], &bytes[2..4]), (128, &[0u8, 0][..]));
    }

    #[test]
    fn errors_carry_their_quote_and_replies_their_ident() {
        let mut unreachable = vec![3, 3, 0, 0, 0, 0, 0, 0];
        unreachable.extend_from_slice(&[0x45; 28]);
        assert_eq!(
            parse(false, &unreachable),
            Some(Message::Error {
                icmp_type: 3,
                code: 3,
                quoted: &[0x45; 28]
            })
        );
        let reply = [129, 0, 0, 0, 0, 5, 0, 6, 1];
        assert_eq!(
            parse(true, &reply),
            Some(Message::EchoReply {
                ident: 5,
                seq: 6,
                payload: &[1]
            })
        );
        assert_eq!(
            parse(true, &[135, 0, 0, 0, 0, 0, 0, 0]),
            Some(Message::Other { icmp_type: 135 })
        );
        assert_eq!(parse(false, &[0, 0, 0]), None);
    }
}
