//! nf_tables transactions over netlink, without spawning `nft`: the messages of
//! one change go between NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END in a
//! single `send`, which the kernel applies as one transaction (all or
//! nothing), as `nft -f` does through libmnl.
//!
//! The messages are netlink-packet-netfilter's nftables types (the crate
//! already carries ctnetlink for [`super::conntrack`]); this module adds the
//! batch framing, the socket inside the node's namespace and the reading of
//! the kernel's acknowledgements.

use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_netfilter::nftables::NfTablesMessage;
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};

use super::{message_limit, DataplaneError};
use crate::lab::netns::Netns;

/// NFNL_SUBSYS_NFTABLES: batch messages name the subsystem they are for in
/// the res_id of their nfgenmsg (linux/netfilter/nfnetlink.h).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// Sequence number of BATCH_BEGIN. Every batch starts here: a kept socket
/// discards unread replies before each transaction, so none can be mistaken.
const FIRST_SEQUENCE: u32 = 1;
/// How long to wait for the kernel's acknowledgements. The kernel handles a
/// batch inside `send`, so they are queued by the time it returns; this only
/// bounds a reply that never comes.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// A BATCH_END message: netlink header (16) and nfgenmsg (4).
const BATCH_END_LEN: usize = 20;

/// One nf_tables transaction being put together: the framed messages, ready
/// to send.
#[derive(Debug)]
pub(crate) struct NfBatch {
    buffer: Vec<u8>,
    /// Sequence number of the next message.
    next: u32,
    /// Messages inside the batch (each asks for an acknowledgement).
    messages: u32,
}

impl Default for NfBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl NfBatch {
    pub(crate) fn new() -> Self {
        let mut batch = Self {
            buffer: Vec::with_capacity(4096),
            next: FIRST_SEQUENCE,
            messages: 0,
        };
        batch.control(ControlMessage::BatchBegin);
        batch
    }

    fn push(&mut self, inner: NetfilterMessage, flags: u16) {
        encode(&mut self.buffer, inner, flags, self.next);
        self.next += 1;
    }

    fn control(&mut self, message: ControlMessage) {
        self.push(control(message), 0);
    }

    /// Add one nf_tables message for `family`, with extra netlink `flags`
    /// (NLM_F_CREATE, NLM_F_APPEND...).
    pub(crate) fn add(
        &mut self,
        family: NetfilterProtoFamily,
        message: NfTablesMessage,
        flags: u16,
    ) {
        let header = NetfilterHeader::new(family, 0, 0);
        self.push(NetfilterMessage::new(header, message), NLM_F_ACK | flags);
        self.messages += 1;
    }

    /// Bytes of the framed transaction ([`Self::framed`]'s length).
    pub(crate) fn byte_len(&self) -> usize {
        self.buffer.len() + BATCH_END_LEN
    }

    /// Messages in the transaction (not counting its framing).
    pub(crate) fn len(&self) -> u32 {
        self.messages
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// The framed transaction, BATCH_END included: the bytes the kernel
    /// receives.
    pub(crate) fn framed(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.byte_len());
        bytes.extend_from_slice(&self.buffer);
        encode(&mut bytes, control(ControlMessage::BatchEnd), 0, self.next);
        bytes
    }

    /// Sequence numbers of the messages inside the batch (BATCH_BEGIN takes
    /// the one before the first).
    fn sequences(&self) -> std::ops::Range<u32> {
        FIRST_SEQUENCE + 1..self.next
    }
}

/// Append `inner` as one netlink message with sequence number `sequence`.
fn encode(buffer: &mut Vec<u8>, inner: NetfilterMessage, flags: u16, sequence: u32) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(inner));
    packet.finalize();
    let start = buffer.len();
    buffer.resize(start + packet.buffer_len(), 0);
    packet.serialize(&mut buffer[start..]);
}

/// A batch framing message: its res_id names the subsystem.
fn control(message: ControlMessage) -> NetfilterMessage {
    let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
    NetfilterMessage::new(header, message)
}

fn io_error<'a>(
    node: &'a Netns,
    action: &'static str,
) -> impl Fn(std::io::Error) -> DataplaneError + 'a {
    move |source| DataplaneError::Netlink {
        netns: node.name().to_string(),
        action,
        source,
    }
}

pub(crate) fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: a plain setsockopt with a c_int the call only reads.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_receive_timeout(socket: &Socket, timeout: Duration) -> std::io::Result<()> {
    let value = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt reads a timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&value as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A netfilter socket opened inside one node's namespace (the socket keeps
/// that namespace for its whole life, whichever thread uses it), for one
/// nf_tables transaction after another.
///
/// A backend keeps one per node instead of opening one per transaction: the
/// kernel answers the close of a NETLINK_NETFILTER socket (NETLINK_URELEASE,
/// `nft_rcv_nl_event` in net/netfilter/nf_tables_api.c) by flushing the
/// previous commit's deferred destruction, which waits for an RCU grace
/// period: 7 to 19 ms measured here, more than the whole transaction.
#[derive(Debug)]
pub(crate) struct NfSocket {
    socket: Socket,
    /// The send buffer asked for so far: a batch must fit in one message.
    capacity: usize,
}

impl NfSocket {
    /// Open the socket inside `node`, able to take `size` bytes in one send.
    pub(crate) fn open(node: &Netns, size: usize) -> Result<Self, DataplaneError> {
        let socket = node
            .run(|| -> std::io::Result<Socket> {
                let mut socket = Socket::new(NETLINK_NETFILTER)?;
                socket.bind_auto()?;
                socket.connect(&SocketAddr::new(0, 0))?;
                Ok(socket)
            })
            .map_err(|e| DataplaneError::Netlink {
                netns: node.name().to_string(),
                action: "enter the namespace",
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(io_error(node, "open a netfilter socket"))?;
        socket
            .set_cap_ack(true)
            .map_err(io_error(node, "ask for short acknowledgements"))?;
        set_receive_timeout(&socket, ACK_TIMEOUT)
            .map_err(io_error(node, "set a receive timeout"))?;
        let mut opened = Self {
            socket,
            capacity: 0,
        };
        opened.reserve(node, size)?;
        Ok(opened)
    }

    /// Grow the send buffer to take `size` bytes in one message. The kernel
    /// refuses a message larger than the send buffer, and the whole batch
    /// must be one message for it to be one transaction.
    fn reserve(&mut self, node: &Netns, size: usize) -> Result<(), DataplaneError> {
        if size <= self.capacity {
            return Ok(());
        }
        let wanted = libc::c_int::try_from(size + 4096).unwrap_or(libc::c_int::MAX);
        // SO_SNDBUFFORCE (root) goes past net.core.wmem_max, as `nft` does for
        // large batches; errors come back without the request copied in
        // (NETLINK_CAP_ACK), so a failed 100 kB message costs a small reply.
        // In a user namespace (rootless mode) SO_SNDBUFFORCE is refused: it
        // needs CAP_NET_ADMIN in the host's. Then ask for SO_SNDBUF, which
        // the kernel caps at twice net.core.wmem_max (further than `nft`
        // goes, see `message_limit`); a batch bigger than the buffer got is
        // refused here, with the reason, rather than by the kernel with
        // EMSGSIZE.
        let socket = &self.socket;
        let forced = set_int_option(socket, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, wanted);
        match forced {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                set_int_option(socket, libc::SOL_SOCKET, libc::SO_SNDBUF, wanted)
                    .map_err(io_error(node, "size the send buffer"))?;
                let got = nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::SndBuf)
                    .map_err(|e| io_error(node, "read the send buffer's size")(e.into()))?;
                let limit = message_limit::largest_message(got);
                if size > limit {
                    return Err(DataplaneError::BatchTooLarge {
                        netns: node.name().to_string(),
                        what: format!("the nf_tables batch ({size} bytes)"),
                        limit: Some(limit),
                        sender: message_limit::Sender::Harness,
                    });
                }
            }
            Err(e) => return Err(io_error(node, "size the send buffer")(e)),
        }
        self.capacity = size;
        Ok(())
    }

    /// Drop replies a previous transaction left unread (none after a
    /// success), so that they are not taken for this one's.
    fn discard_stale(&self) {
        let mut scratch = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut &mut scratch[..], libc::MSG_DONTWAIT) {
            if n == 0 {
                break;
            }
        }
    }

    /// Send `batch` as one transaction and wait until every message in it is
    /// acknowledged. The first error the kernel reports fails the whole
    /// transaction (the kernel has then applied none of it); a socket that
    /// failed is best dropped, not kept.
    pub(crate) fn transact(&mut self, node: &Netns, batch: &NfBatch) -> Result<(), DataplaneError> {
        if batch.is_empty() {
            return Ok(());
        }
        let bytes = batch.framed();
        self.reserve(node, bytes.len())?;
        self.discard_stale();
        let socket = &self.socket;
        socket
            .send(&bytes, 0)
            .map_err(io_error(node, "send the nf_tables batch"))?;
        let sequences = batch.sequences();
        let (first, count) = (sequences.start, batch.len());
        let mut acknowledged = 0;
        let mut failure: Option<(u32, std::io::Error)> = None;
        while acknowledged < count {
            let (data, _) = match socket.recv_from_full() {
                Ok(reply) => reply,
                // A failed batch may leave some messages unanswered; the error
                // already read is the answer.
                Err(_) if failure.is_some() => break,
                Err(e) => return Err(io_error(node, "read the acknowledgements")(e)),
            };
            let mut offset = 0;
            while offset + 16 <= data.len() {
                let message = NetlinkMessage::<NetfilterMessage>::deserialize(&data[offset..])
                    .map_err(|e| {
                        io_error(node, "decode an acknowledgement")(std::io::Error::other(
                            e.to_string(),
                        ))
                    })?;
                let length = message.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += (length + 3) & !3;
                let sequence = message.header.sequence_number;
                if !sequences.contains(&sequence) {
                    continue;
                }
                if let NetlinkPayload::Error(error) = message.payload {
                    acknowledged += 1;
                    if error.code.is_some() && failure.is_none() {
                        failure = Some((sequence - first, error.to_io()));
                    }
                }
            }
        }
        match failure {
            None => Ok(()),
            Some((index, source)) => Err(DataplaneError::Netlink {
                netns: node.name().to_string(),
                action: "apply an nf_tables batch",
                source: std::io::Error::new(
                    source.kind(),
                    format!("message {} of {count} refused: {source}", index + 1),
                ),
            }),
        }
    }
}
