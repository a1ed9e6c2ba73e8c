//! Sockets opened inside a namespace and served by tokio.
//!
//! A socket belongs to the namespace it was created in, whatever thread uses it
//! later; so each one is made on a [`Netns::run`] thread and only then registered
//! with the runtime (AsyncFd). socket2 creates, configures and binds sockets (it
//! takes any protocol number, GRE's included, and AF_PACKET); nix sends and
//! receives datagrams and reads who sent them, AF_PACKET's link-layer source
//! included. Two calls stay `unsafe`, each with its reason beside it: handing a
//! socket to tokio ([`AsyncSock::new`]) and binding the capture's AF_PACKET
//! socket to its interface (`capture::bind_to_interface`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self as nix_socket, sockopt, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::lab::netns::Netns;

use super::TrafficError;

/// Receive buffer asked for every raw socket: bursts of a benchmark window must
/// not be dropped by the receiving socket before the runtime drains it.
const RCVBUF_BYTES: usize = 8 << 20;

/// A non-blocking, close-on-exec raw socket (`SOCK_RAW`) of `domain` for
/// `protocol`, made inside `ns`, with a receive buffer of [`RCVBUF_BYTES`].
pub(crate) fn open_raw_in(
    ns: &Netns,
    domain: Domain,
    protocol: Protocol,
    what: &'static str,
) -> Result<Socket, TrafficError> {
    let made = ns
        .run(move || -> io::Result<Socket> {
            let socket = Socket::new(domain, Type::RAW.nonblocking(), Some(protocol))?;
            // SO_RCVBUFFORCE passes the rmem_max limit (the harness runs with
            // CAP_NET_ADMIN); plain SO_RCVBUF is the fallback, capped by it.
            nix_socket::setsockopt(&socket, sockopt::RcvBufForce, &RCVBUF_BYTES)
                .map_err(io::Error::from)
                .or_else(|_| socket.set_recv_buffer_size(RCVBUF_BYTES))?;
            Ok(socket)
        })
        .map_err(TrafficError::Netns)?;
    made.map_err(|source| TrafficError::Socket {
        namespace: ns.name().to_string(),
        what,
        source,
    })
}

/// The domain of `addr`'s family.
pub(crate) fn domain_of(addr: IpAddr) -> Domain {
    if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

/// A non-blocking TCP socket for `addr`'s family, not yet bound or connected.
pub(crate) fn stream_socket(addr: IpAddr) -> io::Result<Socket> {
    Socket::new(domain_of(addr), Type::STREAM.nonblocking(), None)
}

/// How long a send waits before trying a full send buffer again.
const SEND_BUFFER_WAIT: std::time::Duration = std::time::Duration::from_micros(200);

/// A datagram-style socket (raw IP or AF_PACKET) driven by the tokio reactor.
pub(crate) struct AsyncSock {
    fd: AsyncFd<OwnedFd>,
}

/// Who sent a datagram, as `recvmsg` reports it, and when the kernel took it
/// in when the socket asked for timestamps ([`AsyncSock::stamp_arrivals`]).
pub(crate) struct Source {
    addr: Option<SockaddrStorage>,
    kernel_ns: Option<u64>,
}

impl Source {
    /// The sender's IP address (raw IP sockets).
    pub fn ip(&self) -> Option<IpAddr> {
        let addr = self.addr.as_ref()?;
        match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
            (Some(v4), _) => Some(IpAddr::V4(v4.ip())),
            (_, Some(v6)) => Some(IpAddr::V6(v6.ip())),
            _ => None,
        }
    }

    /// Nanoseconds since the Unix epoch at which the kernel received the
    /// datagram (SO_TIMESTAMPNS), when the socket asked for it.
    pub fn kernel_time_ns(&self) -> Option<u64> {
        self.kernel_ns
    }

    /// For AF_PACKET: the packet type (`PACKET_OUTGOING` for frames the
    /// namespace sent) and the interface index.
    pub fn link(&self) -> Option<(u8, usize)> {
        let link = self.addr.as_ref()?.as_link_addr()?;
        Some((link.pkttype(), link.ifindex()))
    }
}

impl AsyncSock {
    pub fn new(socket: impl Into<OwnedFd>) -> io::Result<Self> {
        // SAFETY: tokio made registration unsafe (tokio-rs/tokio#8587) because
        // it cannot check I/O safety of an arbitrary AsRawFd. Here the AsyncFd
        // owns the OwnedFd, so the descriptor stays open and refers to the same
        // socket until the AsyncFd is dropped, which is what it requires.
        // Readable only: a socket registered for writability too is woken on
        // every datagram it sends, once the kernel frees the buffer
        // (net/core/sock.c, `sock_wfree` -> `sock_def_write_space_wfree`),
        // and that wakes an idle runtime worker out of epoll_wait, on another
        // core, for each probe. Sends wait out a full buffer another way
        // ([`AsyncSock::send_to`]).
        let fd = unsafe { AsyncFd::register_with_interest(socket.into(), Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// The socket, out of the runtime (its epoll registration removed).
    pub fn into_fd(self) -> OwnedFd {
        self.fd.into_inner()
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        send_datagram(self.fd.get_ref(), buf, to)
    }

    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        loop {
            match self.try_send_to(buf, to) {
                // A full send buffer (the socket is not registered for
                // writability, see [`AsyncSock::new`]): datagrams leave the
                // buffer as soon as the next hop takes them, so wait a moment.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(SEND_BUFFER_WAIT).await;
                }
                // A full queue under a benchmark burst: let the peer drain.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }

    /// Have the kernel stamp every datagram with the time it arrived
    /// (SO_TIMESTAMPNS), which [`Source::kernel_time_ns`] then reports: a
    /// capture's times must not include how late the runtime read them.
    pub fn stamp_arrivals(&self) -> io::Result<()> {
        nix_socket::setsockopt(&self.fd, sockopt::ReceiveTimestampns, &true)
            .map_err(io::Error::from)
    }

    /// One datagram, cut to `buf`'s length if longer.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Source)> {
        recv_datagram(self.fd.get_ref(), buf)
    }

    /// Wait until readable, then drain up to `max` datagrams into `on_packet`.
    /// Cancel-safe: nothing is read before the await completes. Reading only
    /// after the runtime says so keeps a busy socket's task within tokio's
    /// cooperative budget, so tasks sharing its worker (a pod's capture
    /// beside its responder) are not starved.
    pub async fn recv_batch(
        &self,
        buf: &mut [u8],
        max: usize,
        mut on_packet: impl FnMut(&[u8], &Source),
    ) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut got = 0;
            while got < max {
                match self.try_recv_from(buf) {
                    Ok((n, from)) => {
                        on_packet(&buf[..n], &from);
                        got += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if got > 0 {
                return Ok(got);
            }
        }
    }
}

/// Send one datagram on a non-blocking socket.
pub(crate) fn send_datagram(fd: &OwnedFd, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
    let addr = SockaddrStorage::from(to);
    nix_socket::sendto(fd.as_raw_fd(), buf, &addr, MsgFlags::empty()).map_err(io::Error::from)
}

/// Receive one datagram from a non-blocking socket, cut to `buf`'s length if
/// longer, with who sent it and (when asked) when the kernel took it in.
pub(crate) fn recv_datagram(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Source)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let message = nix_socket::recvmsg::<SockaddrStorage>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    let kernel_ns = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            nix_socket::ControlMessageOwned::ScmTimestampns(at) => {
                Some(at.tv_sec() as u64 * 1_000_000_000 + at.tv_nsec() as u64)
            }
            _ => None,
        })
    });
    let (n, addr) = (message.bytes, message.address);
    Ok((n.min(iov[0].len()), Source { addr, kernel_ns }))
}

/// Interface index of `name` inside `ns`.
pub(crate) fn ifindex_in(ns: &Netns, name: &str) -> Result<usize, TrafficError> {
    let missing = || TrafficError::NoInterface {
        namespace: ns.name().to_string(),
        interface: name.to_string(),
    };
    let index = ns
        .run(|| nix::net::if_::if_nametoindex(name))
        .map_err(TrafficError::Netns)?
        .map_err(|_| missing())?;
    if index == 0 {
        return Err(missing());
    }
    Ok(index as usize)
}
