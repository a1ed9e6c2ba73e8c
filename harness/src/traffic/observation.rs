//! What the engine saw, as plain serialisable records for checks and reports.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::wire::{gre, icmp};

use super::token::Token;

pub use crate::vocab::Protocol;

/// What role a packet carrying a token plays in its exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketRole {
    /// A probe on its way to the target (echo request, GRE echo, DATA to a
    /// responder port...).
    Request,
    /// The answer to a probe, on its way back to the sender.
    Reply,
    /// An ICMP error quoting a probe.
    Error,
}

impl PacketRole {
    /// Classify a packet of `protocol` by its transport header. Ports tell
    /// direction for udp, tcp and sctp: responders listen below
    /// [`SCTP_CLIENT_PORT_BASE`](super::SCTP_CLIENT_PORT_BASE), senders use
    /// ports at or above it (the kernel's ephemeral range starts there too).
    pub fn of(protocol: Protocol, v6: bool, transport: &[u8]) -> PacketRole {
        match protocol {
            Protocol::Icmp => match icmp::parse(v6, transport) {
                Some(icmp::Message::EchoRequest { .. }) => PacketRole::Request,
                Some(icmp::Message::EchoReply { .. }) => PacketRole::Reply,
                _ => PacketRole::Error,
            },
            Protocol::Gre => match gre::Packet::new_checked(transport) {
                Ok(packet) if packet.protocol() == gre::PROTOCOL_HARNESS_ECHO_REPLY => {
                    PacketRole::Reply
                }
                _ => PacketRole::Request,
            },
            Protocol::Udp | Protocol::Tcp | Protocol::Sctp => match transport.get(2..4) {
                Some(port)
                    if u16::from_be_bytes([port[0], port[1]]) >= super::SCTP_CLIENT_PORT_BASE =>
                {
                    PacketRole::Reply
                }
                _ => PacketRole::Request,
            },
        }
    }
}

/// A packet carrying a token that arrived at a captured interface: who got it
/// and with which addresses, as seen there (after any NAT on the way).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Endpoint (pod, node or external host) name.
    pub endpoint: String,
    pub namespace: String,
    pub interface: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Protocol of the IP header (an ICMP error quoting a probe counts as icmp).
    pub protocol: Protocol,
    /// Probe, reply or ICMP error.
    pub role: PacketRole,
    pub token: Token,
    /// Nanoseconds since the Unix epoch when the capture read it.
    pub at_unix_ns: u64,
}

/// A reply the sender received, with the source address it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyObservation {
    /// Endpoint that sent the probe and got the reply.
    pub receiver: String,
    pub protocol: Protocol,
    /// Source address of the reply as the sender saw it.
    pub src: IpAddr,
    pub token: Token,
    pub rtt_ns: u64,
    pub at_unix_ns: u64,
}

/// An ICMP or ICMPv6 error received by a sender about one of its probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpErrorObservation {
    pub receiver: String,
    /// Who sent the error (outer source address).
    pub reporter: IpAddr,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub quoted_src: IpAddr,
    /// Destination of the quoted header: the floating IP when the NAT undid its
    /// DNAT on the error too.
    pub quoted_dst: IpAddr,
    pub quoted_protocol: u8,
    /// The probe's token when the quote reaches its payload.
    pub token: Option<Token>,
    pub at_unix_ns: u64,
}

/// Wall-clock nanoseconds since the Unix epoch, the time base of every
/// observation (and of the runner's move events, so the two compare).
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What a probe's transport took in: a reply carrying one of its tokens, or
/// an ICMP error quoting one of its packets.
pub(crate) enum Event {
    Reply { token: Token, src: IpAddr },
    IcmpError(IcmpErrorObservation),
}
