//! The few header layouts the traffic engine reads and writes: IP headers as raw
//! sockets and AF_PACKET deliver them, ICMP echo and errors, GRE (RFC 2784/2890)
//! and SCTP (RFC 9260) packets with their chunks. GRE headers and SCTP framing
//! and CRC32c are `wire`'s; what stays here is the engine's owned, raw view of
//! SCTP chunks, which the association state machines read and build.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{gre, sctp, ChecksumPolicy};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

/// GRE protocol types of our echo: IEEE 802 "local experimental" EtherTypes, so
/// dissectors show the payload as data instead of decoding it as an inner packet.
pub const GRE_PROTO_REQUEST: u16 = gre::PROTOCOL_HARNESS_ECHO;
pub const GRE_PROTO_REPLY: u16 = 0x88b6;

/// An IP packet's addresses, protocol and payload.
#[derive(Debug, Clone, Copy)]
pub struct IpView<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub payload: &'a [u8],
}

/// Parse an IPv4 or IPv6 packet (by version nibble). IPv6 extension headers are
/// not walked: the harness sends none.
pub fn parse_ip(buf: &[u8]) -> Option<IpView<'_>> {
    match buf.first()? >> 4 {
        4 => {
            let ihl = ((buf[0] & 0x0f) as usize) * 4;
            if buf.len() < 20 || ihl < 20 || buf.len() < ihl {
                return None;
            }
            let total = (u16::from_be_bytes([buf[2], buf[3]]) as usize).clamp(ihl, buf.len());
            Some(IpView {
                src: IpAddr::V4(Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15])),
                dst: IpAddr::V4(Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19])),
                protocol: buf[9],
                payload: &buf[ihl..total],
            })
        }
        6 => {
            if buf.len() < 40 {
                return None;
            }
            let len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
            let end = (40 + len).min(buf.len());
            Some(IpView {
                src: IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&buf[8..24]).ok()?)),
                dst: IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&buf[24..40]).ok()?)),
                protocol: buf[6],
                payload: &buf[40..end],
            })
        }
        _ => None,
    }
}

/// The IP packet inside an Ethernet frame (no VLAN tags in a lab).
pub fn ip_in_ethernet(frame: &[u8]) -> Option<IpView<'_>> {
    if frame.len() < 14 {
        return None;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 | 0x86dd => parse_ip(&frame[14..]),
        _ => None,
    }
}

/// RFC 1071 Internet checksum over `data`, starting from `initial`.
pub fn inet_checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u16::from_be_bytes([pair[0], pair[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMPv4 echo request with the checksum filled in (ICMPv6 raw sockets fill in
/// theirs, as the kernel always does for IPPROTO_ICMPV6).
pub fn emit_echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(if v6 { 128 } else { 8 });
    out.push(0);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ident.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    if !v6 {
        let sum = inet_checksum(&out, 0);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

/// An ICMP or ICMPv6 message as far as the engine cares.
#[derive(Debug)]
pub enum IcmpView<'a> {
    EchoReply {
        ident: u16,
        payload: &'a [u8],
    },
    /// An error message quoting (the start of) the packet it is about.
    Error {
        icmp_type: u8,
        code: u8,
        quoted: &'a [u8],
    },
    Other,
}

pub fn parse_icmp(v6: bool, buf: &[u8]) -> Option<IcmpView<'_>> {
    if buf.len() < 8 {
        return None;
    }
    let (icmp_type, code) = (buf[0], buf[1]);
    let is_reply = if v6 { icmp_type == 129 } else { icmp_type == 0 };
    let is_error = if v6 {
        (1..=4).contains(&icmp_type)
    } else {
        matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
    };
    Some(if is_reply {
        IcmpView::EchoReply {
            ident: u16::from_be_bytes([buf[4], buf[5]]),
            payload: &buf[8..],
        }
    } else if is_error {
        IcmpView::Error {
            icmp_type,
            code,
            quoted: &buf[8..],
        }
    } else {
        IcmpView::Other
    })
}

/// The quoted packet of an ICMP error: its header fields are complete even when
/// the quote is cut short, so parse leniently.
pub fn parse_quoted_ip(quoted: &[u8]) -> Option<IpView<'_>> {
    match quoted.first()? >> 4 {
        4 if quoted.len() >= 20 => {
            let ihl = (((quoted[0] & 0x0f) as usize) * 4)
                .max(20)
                .min(quoted.len());
            Some(IpView {
                src: IpAddr::V4(Ipv4Addr::new(
                    quoted[12], quoted[13], quoted[14], quoted[15],
                )),
                dst: IpAddr::V4(Ipv4Addr::new(
                    quoted[16], quoted[17], quoted[18], quoted[19],
                )),
                protocol: quoted[9],
                payload: &quoted[ihl..],
            })
        }
        6 if quoted.len() >= 40 => Some(IpView {
            src: IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&quoted[8..24]).ok()?)),
            dst: IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&quoted[24..40]).ok()?)),
            protocol: quoted[6],
            payload: &quoted[40..],
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------- GRE

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreHeader {
    pub checksum: bool,
    pub key: Option<u32>,
    pub seq: Option<u32>,
    pub protocol: u16,
}

pub fn emit_gre(header: &GreHeader, payload: &[u8]) -> Vec<u8> {
    gre::Repr {
        checksum: header.checksum,
        key: header.key,
        sequence: header.seq,
        protocol: header.protocol,
    }
    .to_bytes(payload)
}

/// Parse a version-0 GRE header; returns the header and the payload. A packet
/// with a wrong checksum is refused.
pub fn parse_gre(buf: &[u8]) -> Option<(GreHeader, &[u8])> {
    let packet = gre::Packet::new_checked(buf).ok()?;
    let repr = gre::Repr::parse(&packet, ChecksumPolicy::Verify).ok()?;
    let payload = &buf[repr.header_len()..];
    Some((
        GreHeader {
            checksum: repr.checksum,
            key: repr.key,
            seq: repr.sequence,
            protocol: repr.protocol,
        },
        payload,
    ))
}

// ---------------------------------------------------------------- SCTP

pub mod chunk_type {
    pub const DATA: u8 = 0;
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
    pub const SACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const HEARTBEAT_ACK: u8 = 5;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_ACK: u8 = 8;
    pub const COOKIE_ECHO: u8 = 10;
    pub const COOKIE_ACK: u8 = 11;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// Parameter types used inside INIT ACK and HEARTBEAT.
pub const PARAM_HEARTBEAT_INFO: u16 = 1;
pub const PARAM_STATE_COOKIE: u16 = 7;

/// One SCTP chunk: type, flags and value (without the 4-byte chunk header and
/// padding). Typed accessors below read the fields of the chunks we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub kind: u8,
    pub flags: u8,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctpPacket {
    pub src_port: u16,
    pub dst_port: u16,
    pub vtag: u32,
    pub chunks: Vec<Chunk>,
}

/// INIT and INIT ACK share their fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitFields {
    pub init_tag: u32,
    pub a_rwnd: u32,
    pub out_streams: u16,
    pub in_streams: u16,
    pub initial_tsn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFields<'a> {
    pub tsn: u32,
    pub stream: u16,
    pub ssn: u16,
    pub ppid: u32,
    pub payload: &'a [u8],
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// Type-length-value parameters (RFC 9260 3.2.1), each padded to 4 bytes.
pub fn emit_param(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

pub fn find_param(params: &[u8], kind: u16) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= params.len() {
        let this = be16(params, at)?;
        let len = be16(params, at + 2)? as usize;
        if len < 4 || at + len > params.len() {
            return None;
        }
        if this == kind {
            return Some(&params[at + 4..at + len]);
        }
        at += len.next_multiple_of(4);
    }
    None
}

impl Chunk {
    pub fn new(kind: u8, flags: u8, value: Vec<u8>) -> Self {
        Self { kind, flags, value }
    }

    /// INIT or INIT ACK with its optional parameters appended.
    pub fn init(kind: u8, fields: InitFields, params: &[u8]) -> Self {
        let mut value = Vec::with_capacity(16 + params.len());
        value.extend_from_slice(&fields.init_tag.to_be_bytes());
        value.extend_from_slice(&fields.a_rwnd.to_be_bytes());
        value.extend_from_slice(&fields.out_streams.to_be_bytes());
        value.extend_from_slice(&fields.in_streams.to_be_bytes());
        value.extend_from_slice(&fields.initial_tsn.to_be_bytes());
        value.extend_from_slice(params);
        Self::new(kind, 0, value)
    }

    pub fn init_fields(&self) -> Option<(InitFields, &[u8])> {
        let v = &self.value;
        Some((
            InitFields {
                init_tag: be32(v, 0)?,
                a_rwnd: be32(v, 4)?,
                out_streams: be16(v, 8)?,
                in_streams: be16(v, 10)?,
                initial_tsn: be32(v, 12)?,
            },
            &v[16..],
        ))
    }

    /// A DATA chunk carrying one whole, unordered-off user message (B and E set).
    pub fn data(tsn: u32, stream: u16, ssn: u16, ppid: u32, payload: &[u8]) -> Self {
        let mut value = Vec::with_capacity(12 + payload.len());
        value.extend_from_slice(&tsn.to_be_bytes());
        value.extend_from_slice(&stream.to_be_bytes());
        value.extend_from_slice(&ssn.to_be_bytes());
        value.extend_from_slice(&ppid.to_be_bytes());
        value.extend_from_slice(payload);
        Self::new(chunk_type::DATA, 0x03, value)
    }

    pub fn data_fields(&self) -> Option<DataFields<'_>> {
        let v = &self.value;
        Some(DataFields {
            tsn: be32(v, 0)?,
            stream: be16(v, 4)?,
            ssn: be16(v, 6)?,
            ppid: be32(v, 8)?,
            payload: v.get(12..)?,
        })
    }

    /// SACK without gap blocks or duplicates: everything up to `cum_tsn` arrived.
    pub fn sack(cum_tsn: u32, a_rwnd: u32) -> Self {
        let mut value = Vec::with_capacity(12);
        value.extend_from_slice(&cum_tsn.to_be_bytes());
        value.extend_from_slice(&a_rwnd.to_be_bytes());
        value.extend_from_slice(&[0, 0, 0, 0]);
        Self::new(chunk_type::SACK, 0, value)
    }

    pub fn shutdown(cum_tsn: u32) -> Self {
        Self::new(chunk_type::SHUTDOWN, 0, cum_tsn.to_be_bytes().to_vec())
    }

    /// HEARTBEAT or HEARTBEAT ACK carrying `info` as the Heartbeat Info parameter.
    pub fn heartbeat(kind: u8, info: &[u8]) -> Self {
        let mut value = Vec::new();
        emit_param(&mut value, PARAM_HEARTBEAT_INFO, info);
        Self::new(kind, 0, value)
    }

    pub fn first_u32(&self) -> Option<u32> {
        be32(&self.value, 0)
    }
}

impl SctpPacket {
    /// Framing, padding and CRC32c come from `wire::sctp`; chunks travel as raw
    /// (type, flags, value) so the typed helpers above stay the engine's own.
    pub fn emit(&self) -> Vec<u8> {
        sctp::Repr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            verification_tag: self.vtag,
            chunks: self
                .chunks
                .iter()
                .map(|c| sctp::ChunkRepr::Other {
                    chunk_type: c.kind,
                    flags: c.flags,
                    value: &c.value,
                })
                .collect(),
        }
        .to_bytes()
        .expect("an SCTP packet of raw chunks always fits its own buffer")
    }

    /// Parse and verify the checksum; a packet with a bad one is refused, as a
    /// real endpoint would.
    pub fn parse(buf: &[u8]) -> Option<SctpPacket> {
        let packet = sctp::Packet::new_checked(buf).ok()?;
        if !packet.verify_checksum() {
            return None;
        }
        let chunks = packet
            .chunks()
            .map(|chunk| chunk.map(|c| Chunk::new(c.raw_type(), c.flags(), c.value().to_vec())))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(SctpPacket {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            vtag: packet.verification_tag(),
            chunks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sctp_round_trips_with_checksum() {
        let packet = SctpPacket {
            src_port: 40001,
            dst_port: 7,
            vtag: 0x1234_5678,
            chunks: vec![Chunk::sack(9, 65535), Chunk::data(10, 0, 3, 0, b"hello")],
        };
        let bytes = packet.emit();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(SctpPacket::parse(&bytes), Some(packet));
        let mut corrupt = bytes.clone();
        corrupt[20] ^= 1;
        assert_eq!(SctpPacket::parse(&corrupt), None);
    }

    #[test]
    fn sctp_checksum_matches_rfc_test_vector() {
        // RFC 3720 B.4: 32 bytes of zeros -> CRC32c 0x8a9136aa.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn gre_with_all_options_round_trips_and_checks_its_sum() {
        let header = GreHeader {
            checksum: true,
            key: Some(7),
            seq: Some(42),
            protocol: GRE_PROTO_REQUEST,
        };
        let bytes = emit_gre(&header, b"payload");
        assert_eq!(&bytes[..4], &[0xb0, 0x00, 0x88, 0xb5]);
        let (parsed, payload) = parse_gre(&bytes).unwrap();
        assert_eq!((parsed, payload), (header, &b"payload"[..]));
        let mut corrupt = bytes.clone();
        corrupt[14] ^= 1;
        assert!(parse_gre(&corrupt).is_none());
    }

    #[test]
    fn finds_params() {
        let mut params = Vec::new();
        emit_param(&mut params, 5, &[1, 2, 3, 4]);
        emit_param(&mut params, PARAM_STATE_COOKIE, &[9; 5]);
        assert_eq!(find_param(&params, PARAM_STATE_COOKIE), Some(&[9u8; 5][..]));
        assert_eq!(find_param(&params, 3), None);
    }
}
