//! Sockets opened inside a namespace and served by tokio.
//!
//! A socket belongs to the namespace it was created in, whatever thread uses it
//! later; so each one is made on a [`Netns::run`] thread and only then registered
//! with the runtime (AsyncFd). libc is used directly because raw IP and AF_PACKET
//! sockets need options (`sockaddr_ll`, `SO_RCVBUFFORCE`) that the std and tokio
//! socket types do not expose.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::lab::netns::Netns;

use super::TrafficError;

/// Receive buffer asked for every socket: bursts of a benchmark window must not
/// be dropped by the receiving socket before the runtime drains it.
const RCVBUF_BYTES: libc::c_int = 8 << 20;

/// Create a non-blocking socket inside `ns`.
pub(crate) fn open_in(
    ns: &Netns,
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
    what: &'static str,
) -> Result<OwnedFd, TrafficError> {
    let made = ns
        .run(move || -> io::Result<OwnedFd> {
            // SAFETY: plain socket(2); the fd is owned at once.
            let fd = unsafe {
                libc::socket(
                    domain,
                    ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    protocol,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF_BYTES)
                .or_else(|_| set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF_BYTES))?;
            Ok(fd)
        })
        .map_err(TrafficError::Netns)?;
    made.map_err(|source| TrafficError::Socket {
        namespace: ns.name().to_string(),
        what,
        source,
    })
}

pub(crate) fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: value lives for the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(crate) fn sockaddr_from(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

pub(crate) fn ip_from(storage: &libc::sockaddr_storage) -> Option<IpAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says this is a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(
                sin.sin_addr.s_addr.to_ne_bytes(),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// A datagram-style socket (raw IP or AF_PACKET) driven by the tokio reactor.
pub(crate) struct AsyncSock {
    fd: AsyncFd<OwnedFd>,
}

/// What `recvfrom` said about the sender: the address, and for AF_PACKET the
/// packet type (`PACKET_OUTGOING` for frames the namespace sent) and ifindex.
pub(crate) struct Source {
    pub storage: libc::sockaddr_storage,
}

impl Source {
    pub fn ip(&self) -> Option<IpAddr> {
        ip_from(&self.storage)
    }
    pub fn link(&self) -> (u8, i32) {
        // SAFETY: only called on AF_PACKET sockets, whose source is a sockaddr_ll.
        let sll = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_ll) };
        (sll.sll_pkttype, sll.sll_ifindex)
    }
}

impl AsyncSock {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and
        // the same for its whole life.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let (storage, len) = sockaddr_from(to);
        // SAFETY: buf and storage are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
                &storage as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        loop {
            match self.try_send_to(buf, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut guard = self.fd.writable().await?;
                    guard.clear_ready();
                }
                // A full socket buffer under a benchmark burst: let the peer drain.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }

    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Source)> {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: buf and storage are valid for the call and their sizes passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_TRUNC,
                &mut storage as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(((n as usize).min(buf.len()), Source { storage }))
        }
    }

    /// Wait until readable, then drain up to `max` datagrams into `on_packet`.
    /// Cancel-safe: nothing is read before the await completes.
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

/// Interface index of `name` inside `ns`.
pub(crate) fn ifindex_in(ns: &Netns, name: &str) -> Result<i32, TrafficError> {
    let cname = std::ffi::CString::new(name).map_err(|_| TrafficError::NoInterface {
        namespace: ns.name().to_string(),
        interface: name.to_string(),
    })?;
    // SAFETY: cname is a valid NUL-terminated string.
    let index = ns
        .run(|| unsafe { libc::if_nametoindex(cname.as_ptr()) })
        .map_err(TrafficError::Netns)?;
    if index == 0 {
        return Err(TrafficError::NoInterface {
            namespace: ns.name().to_string(),
            interface: name.to_string(),
        });
    }
    Ok(index as i32)
}
