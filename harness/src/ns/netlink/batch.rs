//! Many rtnetlink requests in one `send` on a plain blocking socket, for
//! wiring thousands of pods from dedicated threads: no runtime, no task per
//! request, one system call for all of a namespace's steps. The kernel takes
//! the messages of one send in order (net/netlink/af_netlink.c,
//! `netlink_rcv_skb`), answering each, and goes on after a refused one; the
//! first refusal is the error reported.

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::NetlinkError;

/// How a request treats an object that already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Create {
    /// Fail if it exists (`ip link add`).
    New,
    /// Make it or replace it (`ip route replace`).
    Replace,
    /// Change an existing object (`ip link set`).
    Change,
}

/// Requests to send together, each with what it does for error messages.
#[derive(Default)]
pub(crate) struct Batch {
    buffer: Vec<u8>,
    actions: Vec<String>,
}

impl Batch {
    pub(crate) fn push(&mut self, message: RouteNetlinkMessage, create: Create, action: String) {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST
            | NLM_F_ACK
            | match create {
                Create::New => NLM_F_CREATE | NLM_F_EXCL,
                Create::Replace => NLM_F_CREATE | NLM_F_REPLACE,
                Create::Change => 0,
            };
        // Sequence numbers start at 1: the answer to message i carries i + 1.
        self.actions.push(action);
        header.sequence_number = self.actions.len() as u32;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let start = self.buffer.len();
        self.buffer.resize(start + packet.buffer_len(), 0);
        packet.serialize(&mut self.buffer[start..]);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// A blocking rtnetlink socket in the namespace of the thread that opened it.
pub(crate) struct BatchSocket {
    socket: Socket,
    namespace: String,
}

impl BatchSocket {
    /// Open a socket in the calling thread's namespace; `namespace` names it in errors.
    pub(crate) fn open_here(namespace: &str) -> Result<Self, NetlinkError> {
        let socket_error = |source| NetlinkError::Socket {
            namespace: namespace.to_string(),
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(socket_error)?;
        socket.bind_auto().map_err(socket_error)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(socket_error)?;
        // Errors come back without the request copied in.
        socket.set_cap_ack(true).map_err(socket_error)?;
        Ok(Self {
            socket,
            namespace: namespace.to_string(),
        })
    }

    /// Send every request of `batch` at once and wait for all the answers.
    pub(crate) fn send(&self, batch: Batch) -> Result<(), NetlinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let io = |source: std::io::Error, action: &str| NetlinkError::Socket {
            namespace: self.namespace.clone(),
            source: std::io::Error::new(source.kind(), format!("{action}: {source}")),
        };
        let mut sent = 0;
        while sent < batch.buffer.len() {
            sent += self
                .socket
                .send(&batch.buffer[sent..], 0)
                .map_err(|e| io(e, "send requests"))?;
        }
        let count = batch.actions.len();
        let mut answered = vec![false; count];
        let mut left = count;
        let mut failure = None;
        while left > 0 {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| io(e, "read answers"))?;
            let mut offset = 0;
            while offset + 16 <= data.len() {
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| {
                    io(std::io::Error::other(e.to_string()), "decode an answer")
                })?;
                let length = message.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += (length + 3) & !3;
                let sequence = message.header.sequence_number as usize;
                let NetlinkPayload::Error(error) = message.payload else {
                    continue;
                };
                if sequence == 0 || sequence > count || answered[sequence - 1] {
                    continue;
                }
                answered[sequence - 1] = true;
                left -= 1;
                if error.code.is_some() && failure.is_none() {
                    failure = Some((sequence - 1, error));
                }
            }
        }
        match failure {
            None => Ok(()),
            Some((index, error)) => Err(NetlinkError::Netlink {
                namespace: self.namespace.clone(),
                action: batch.actions[index].clone(),
                source: rtnetlink::Error::NetlinkError(error),
            }),
        }
    }
}
