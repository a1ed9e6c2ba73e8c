//! Connection tracking entries of a node, over ctnetlink (no `conntrack`
//! program): list them, and delete those a predicate picks.
//!
//! netlink-packet-netfilter 0.4 carries the conntrack messages (dump, delete);
//! this module adds the socket, the dump loop and a flat view of an entry. The
//! socket is opened inside the node's namespace on [`Netns::run`]'s thread, so
//! the caller never moves into the namespace.

use std::net::IpAddr;

use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use serde::Serialize;

use crate::lab::netns::{Netns, NetnsError};

// ICMP echo identifiers and types live in the proto tuple under these kinds
// (linux/netfilter/nfnetlink_conntrack.h, CTA_PROTO_ICMP_ID / CTA_PROTO_ICMPV6_ID).
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_ID: u16 = 12;

#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("conntrack of '{netns}': {action}: {source}")]
    Io {
        netns: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("conntrack of '{netns}': unreadable reply: {reason}")]
    Decode { netns: String, reason: String },
}

/// One conntrack entry, flattened to what floating-IP checks look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConntrackEntry {
    /// IP protocol number (1 ICMP, 6 TCP, 17 UDP, 47 GRE, 58 ICMPv6, 132 SCTP).
    pub protocol: u8,
    pub orig_src: IpAddr,
    pub orig_dst: IpAddr,
    pub reply_src: IpAddr,
    pub reply_dst: IpAddr,
    /// Ports (TCP, UDP, SCTP) of the original direction.
    pub orig_ports: Option<(u16, u16)>,
    /// ICMP echo identifier of the original direction.
    pub icmp_id: Option<u16>,
    /// The kernel's id of the entry.
    pub id: Option<u32>,
    /// The original tuple exactly as the kernel sent it, to address the delete.
    #[serde(skip)]
    orig_tuple: Vec<Tuple>,
}

impl ConntrackEntry {
    /// Whether any of the four addresses is `address`.
    pub fn involves(&self, address: IpAddr) -> bool {
        [self.orig_src, self.orig_dst, self.reply_src, self.reply_dst].contains(&address)
    }

    /// A one-line summary, `conntrack -L` style.
    pub fn summary(&self) -> String {
        let detail = match (self.orig_ports, self.icmp_id) {
            (Some((sport, dport)), _) => format!(" sport={sport} dport={dport}"),
            (None, Some(id)) => format!(" id={id}"),
            _ => String::new(),
        };
        format!(
            "proto={} src={} dst={}{} | reply src={} dst={}",
            self.protocol, self.orig_src, self.orig_dst, detail, self.reply_src, self.reply_dst
        )
    }
}

fn addresses(tuples: &[Tuple]) -> (Option<IpAddr>, Option<IpAddr>) {
    let (mut src, mut dst) = (None, None);
    for tuple in tuples {
        if let Tuple::Ip(ips) = tuple {
            for ip in ips {
                match ip {
                    IPTuple::SourceAddress(a) => src = Some(*a),
                    IPTuple::DestinationAddress(a) => dst = Some(*a),
                    _ => {}
                }
            }
        }
    }
    (src, dst)
}

fn proto_details(tuples: &[Tuple]) -> (u8, Option<(u16, u16)>, Option<u16>) {
    let (mut protocol, mut sport, mut dport, mut icmp_id) = (0u8, None, None, None);
    for tuple in tuples {
        if let Tuple::Proto(parts) = tuple {
            for part in parts {
                match part {
                    ProtoTuple::Protocol(p) => protocol = (*p).into(),
                    ProtoTuple::SourcePort(p) => sport = Some(*p),
                    ProtoTuple::DestinationPort(p) => dport = Some(*p),
                    ProtoTuple::Other(nla) => {
                        use rtnetlink::packet_core::Nla;
                        if matches!(nla.kind(), CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID) {
                            let mut value = [0u8; 2];
                            if nla.value_len() == 2 {
                                nla.emit_value(&mut value);
                                icmp_id = Some(u16::from_be_bytes(value));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    (protocol, sport.zip(dport), icmp_id)
}

/// Flatten the attributes of one dumped entry; `None` if a tuple is missing.
pub fn entry_from_attributes(attributes: &[ConntrackAttribute]) -> Option<ConntrackEntry> {
    let mut orig = None;
    let mut reply = None;
    let mut id = None;
    for attribute in attributes {
        match attribute {
            ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t.clone()),
            ConntrackAttribute::CtaTupleReply(t) => reply = Some(t.clone()),
            ConntrackAttribute::Other(nla) => {
                use rtnetlink::packet_core::Nla;
                if nla.kind() == CTA_ID && nla.value_len() == 4 {
                    let mut value = [0u8; 4];
                    nla.emit_value(&mut value);
                    id = Some(u32::from_be_bytes(value));
                }
            }
            _ => {}
        }
    }
    let orig = orig?;
    let reply = reply?;
    let (orig_src, orig_dst) = addresses(&orig);
    let (reply_src, reply_dst) = addresses(&reply);
    let (protocol, orig_ports, icmp_id) = proto_details(&orig);
    Some(ConntrackEntry {
        protocol,
        orig_src: orig_src?,
        orig_dst: orig_dst?,
        reply_src: reply_src?,
        reply_dst: reply_dst?,
        orig_ports,
        icmp_id,
        id,
        orig_tuple: orig,
    })
}

/// The netlink messages of one datagram the kernel sent.
pub(crate) fn split_datagram(
    netns: &str,
    data: &[u8],
) -> Result<Vec<NetlinkMessage<NetfilterMessage>>, ConntrackError> {
    let mut messages = Vec::new();
    let mut offset = 0;
    while offset + 16 <= data.len() {
        let message =
            NetlinkMessage::<NetfilterMessage>::deserialize(&data[offset..]).map_err(|e| {
                ConntrackError::Decode {
                    netns: netns.to_string(),
                    reason: e.to_string(),
                }
            })?;
        let length = message.header.length as usize;
        if length == 0 {
            break;
        }
        offset += (length + 3) & !3;
        messages.push(message);
    }
    Ok(messages)
}

/// A ctnetlink socket bound inside one node's namespace.
#[derive(Debug)]
pub struct Conntrack {
    netns: String,
    socket: Socket,
    sequence: u32,
}

impl Conntrack {
    /// Open the socket inside `node`.
    pub fn open(node: &Netns) -> Result<Self, ConntrackError> {
        node.run(|| Self::open_here(node.name()))?
    }

    /// Open the socket in the namespace of the calling thread (one that
    /// entered `netns`, which names it in errors).
    pub(crate) fn open_here(netns: &str) -> Result<Self, ConntrackError> {
        let open = || -> std::io::Result<Socket> {
            let mut socket = Socket::new(NETLINK_NETFILTER)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            Ok(socket)
        };
        let socket = open().map_err(|source| ConntrackError::Io {
            netns: netns.to_string(),
            action: "open ctnetlink socket",
            source,
        })?;
        Ok(Self {
            netns: netns.to_string(),
            socket,
            sequence: 0,
        })
    }

    fn io(&self, action: &'static str) -> impl Fn(std::io::Error) -> ConntrackError + '_ {
        move |source| ConntrackError::Io {
            netns: self.netns.clone(),
            action,
            source,
        }
    }

    fn send(
        &mut self,
        family: NetfilterProtoFamily,
        message: ConntrackMessage,
        flags: u16,
    ) -> Result<u32, ConntrackError> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(family, 0, 0),
                message,
            )),
        );
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket.send(&buffer, 0).map_err(self.io("send"))?;
        Ok(self.sequence)
    }

    /// Read replies to `sequence` until the dump ends or the ACK arrives,
    /// handing each conntrack message to `each`.
    fn receive(
        &self,
        sequence: u32,
        mut each: impl FnMut(ConntrackMessage),
    ) -> Result<(), ConntrackError> {
        loop {
            let (data, _) = self.socket.recv_from_full().map_err(self.io("receive"))?;
            for message in split_datagram(&self.netns, &data)? {
                if message.header.sequence_number != sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(()),
                            Some(_) => Err(ConntrackError::Io {
                                netns: self.netns.clone(),
                                action: "ctnetlink request",
                                source: error.to_io(),
                            }),
                        }
                    }
                    NetlinkPayload::InnerMessage(NetfilterMessage {
                        inner: NetfilterMessageInner::Conntrack(ct),
                        ..
                    }) => each(ct),
                    _ => {}
                }
            }
        }
    }

    /// Every entry of the node's conntrack table (both families).
    ///
    /// One dump with family AF_UNSPEC, which the kernel does not filter by
    /// family (`ctnetlink_filter_match` in nf_conntrack_netlink.c), rather
    /// than one per family: a dump walks every bucket of the kernel's hash,
    /// which all namespaces share (262,144 buckets here), however few entries
    /// the node has, so each dump costs milliseconds.
    pub fn list(&mut self) -> Result<Vec<ConntrackEntry>, ConntrackError> {
        let mut entries = Vec::new();
        let sequence = self.send(
            NetfilterProtoFamily::Unspec,
            ConntrackMessage::Get(vec![]),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        self.receive(sequence, |message| {
            if let ConntrackMessage::New(attributes) = message {
                entries.extend(entry_from_attributes(&attributes));
            }
        })?;
        Ok(entries)
    }

    /// Delete one entry, addressed by its original tuple; tells whether it
    /// was still there (an entry gone meanwhile is not an error).
    pub fn delete(&mut self, entry: &ConntrackEntry) -> Result<bool, ConntrackError> {
        let family = if entry.orig_src.is_ipv4() {
            NetfilterProtoFamily::IPv4
        } else {
            NetfilterProtoFamily::IPv6
        };
        let sequence = self.send(
            family,
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(
                entry.orig_tuple.clone(),
            )]),
            NLM_F_REQUEST | NLM_F_ACK,
        )?;
        match self.receive(sequence, |_| {}) {
            Ok(()) => Ok(true),
            Err(ConntrackError::Io { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Delete the entries any of `rules` selects; returns how many went.
    pub fn delete_matching(&mut self, rules: &[ConntrackMatch]) -> Result<usize, ConntrackError> {
        Ok(self
            .delete_where(|entry| rules.iter().any(|r| r.matches(entry)))?
            .len())
    }

    /// Delete every entry `pick` selects; returns the entries deleted.
    pub fn delete_where(
        &mut self,
        pick: impl Fn(&ConntrackEntry) -> bool,
    ) -> Result<Vec<ConntrackEntry>, ConntrackError> {
        let doomed: Vec<ConntrackEntry> = self.list()?.into_iter().filter(|e| pick(e)).collect();
        for entry in &doomed {
            self.delete(entry)?;
        }
        Ok(doomed)
    }
}

/// Delete the entries of `node`'s kernel table that any of `rules` selects;
/// returns how many went.
pub fn flush_kernel(node: &Netns, rules: &[ConntrackMatch]) -> Result<usize, ConntrackError> {
    Conntrack::open(node)?.delete_matching(rules)
}

pub use crate::calico::ConntrackMatch;

impl ConntrackMatch {
    /// Whether the kernel's `entry` is one this deletion takes.
    pub fn matches(&self, entry: &ConntrackEntry) -> bool {
        self.selects(entry.orig_src, entry.orig_dst, entry.reply_src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_netfilter::conntrack::ConntrackMessageType;
    use netlink_packet_netfilter::NetfilterSubsystem;
    use rtnetlink::packet_core::ParseableParametrized;

    // An ICMP echo entry laid out as the kernel dumps it (IPCTNL_MSG_CT_NEW
    // payload after the netlink header: nfgenmsg, then attributes per
    // linux/netfilter/nfnetlink_conntrack.h), assembled by hand for a ping
    // 198.18.1.10 -> 203.0.113.1 DNATed to 198.19.0.5. The root test
    // tests/dataplane_conntrack.rs checks the same code against the live kernel.
    const ICMP_ENTRY: &[u8] = &[
        0x02, 0x00, 0x00, 0x00, // nfgenmsg: AF_INET, version 0, res_id 0
        0x34, 0x00, 0x01, 0x80, // CTA_TUPLE_ORIG (nested, 52)
        0x14, 0x00, 0x01, 0x80, // CTA_TUPLE_IP (nested, 20)
        0x08, 0x00, 0x01, 0x00, 198, 18, 1, 10, // CTA_IP_V4_SRC
        0x08, 0x00, 0x02, 0x00, 203, 0, 113, 1, // CTA_IP_V4_DST
        0x1c, 0x00, 0x02, 0x80, // CTA_TUPLE_PROTO (nested, 28)
        0x05, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, // CTA_PROTO_NUM icmp
        0x06, 0x00, 0x04, 0x00, 0x12, 0x34, 0x00, 0x00, // CTA_PROTO_ICMP_ID
        0x05, 0x00, 0x05, 0x00, 0x08, 0x00, 0x00, 0x00, // CTA_PROTO_ICMP_TYPE
        0x05, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, // CTA_PROTO_ICMP_CODE
        0x34, 0x00, 0x02, 0x80, // CTA_TUPLE_REPLY
        0x14, 0x00, 0x01, 0x80, //
        0x08, 0x00, 0x01, 0x00, 198, 19, 0, 5, //
        0x08, 0x00, 0x02, 0x00, 198, 18, 1, 10, //
        0x1c, 0x00, 0x02, 0x80, //
        0x05, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, //
        0x06, 0x00, 0x04, 0x00, 0x12, 0x34, 0x00, 0x00, //
        0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x05, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x08, 0x00, 0x0c, 0x00, 0x0b, 0xad, 0xf0, 0x0d, // CTA_ID
    ];

    #[test]
    fn flattens_an_icmp_entry() {
        let message_type = (u16::from(u8::from(NetfilterSubsystem::Conntrack)) << 8)
            | u16::from(u8::from(ConntrackMessageType::New));
        let message = NetfilterMessage::parse_with_param(ICMP_ENTRY, message_type).unwrap();
        let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attributes)) = message.inner
        else {
            panic!("not a conntrack entry: {message:?}");
        };
        let entry = entry_from_attributes(&attributes).unwrap();
        assert_eq!(entry.protocol, 1);
        assert_eq!(entry.orig_src, "198.18.1.10".parse::<IpAddr>().unwrap());
        assert_eq!(entry.orig_dst, "203.0.113.1".parse::<IpAddr>().unwrap());
        assert_eq!(entry.reply_src, "198.19.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(entry.icmp_id, Some(0x1234));
        assert_eq!(entry.id, Some(0x0badf00d));
        assert!(entry.involves("198.19.0.5".parse().unwrap()));
        assert_eq!(
            entry.summary(),
            "proto=1 src=198.18.1.10 dst=203.0.113.1 id=4660 | reply src=198.19.0.5 dst=198.18.1.10"
        );
    }
}
