//! Responders that run for a pod: GRE echo, an SCTP association endpoint, UDP
//! and TCP echo. ICMP echo needs none: the pod's kernel answers it.
//!
//! GRE and SCTP use raw IP sockets. This kernel has neither a GRE nor an SCTP
//! module; without a raw socket for a protocol the kernel answers it with ICMP
//! "protocol unreachable", but a raw socket bound to the protocol counts as
//! delivery (ip_local_deliver_finish / ip6_protocol_deliver_rcu), so while a
//! responder runs the kernel stays silent and no firewall rule is needed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::lab::netns::Netns;

use crate::wire::ip::{self, IpNextHeaderProtocols};
use crate::wire::{gre, ChecksumPolicy};

use super::sctp_server::serve_sctp;
use super::sock::{open_in, AsyncSock};
use super::TrafficError;

/// Port the UDP, TCP and SCTP echo responders listen on (RFC 862 echo).
pub const ECHO_PORT: u16 = 7;
/// The SCTP responder serves destination ports below this; probe clients use
/// ports from here up, so a pod probing another pod never answers its own
/// association's packets as if it were the server.
pub const SCTP_CLIENT_PORT_BASE: u16 = 32768;

pub(crate) fn family_of(addr: &IpAddr) -> libc::c_int {
    if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    }
}

/// Start every responder for a pod with `addresses` in `ns`.
pub(crate) fn start_pod_responders(
    ns: &Netns,
    addresses: &[IpAddr],
) -> Result<Vec<JoinHandle<()>>, TrafficError> {
    let mut tasks = Vec::new();
    let mut families: Vec<libc::c_int> = addresses.iter().map(family_of).collect();
    families.sort();
    families.dedup();
    for family in families {
        let v6 = family == libc::AF_INET6;
        let gre = AsyncSock::new(open_in(
            ns,
            family,
            libc::SOCK_RAW,
            IpNextHeaderProtocols::Gre.0 as i32,
            "GRE responder",
        )?)
        .map_err(|e| sock_err(ns, "GRE responder", e))?;
        tasks.push(tokio::spawn(serve_gre(gre, v6)));
        let sctp = AsyncSock::new(open_in(
            ns,
            family,
            libc::SOCK_RAW,
            IpNextHeaderProtocols::Sctp.0 as i32,
            "SCTP responder",
        )?)
        .map_err(|e| sock_err(ns, "SCTP responder", e))?;
        tasks.push(tokio::spawn(serve_sctp(sctp, v6)));
        let any: SocketAddr = if v6 {
            (std::net::Ipv6Addr::UNSPECIFIED, ECHO_PORT).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, ECHO_PORT).into()
        };
        let (udp, tcp) = ns
            .run(move || -> std::io::Result<_> {
                let udp = if v6 {
                    bind_v6_only_udp(any)?
                } else {
                    std::net::UdpSocket::bind(any)?
                };
                udp.set_nonblocking(true)?;
                let tcp = tokio::net::TcpSocket::from_std_stream(bind_stream(any, v6)?);
                Ok((udp, tcp))
            })
            .map_err(TrafficError::Netns)?
            .map_err(|e| sock_err(ns, "UDP/TCP echo bind", e))?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(|e| sock_err(ns, "UDP echo", e))?;
        tasks.push(tokio::spawn(serve_udp(udp)));
        let listener = tcp
            .listen(128)
            .map_err(|e| sock_err(ns, "TCP echo listen", e))?;
        tasks.push(tokio::spawn(serve_tcp(listener)));
    }
    Ok(tasks)
}

fn sock_err(ns: &Netns, what: &'static str, source: std::io::Error) -> TrafficError {
    TrafficError::Socket {
        namespace: ns.name().to_string(),
        what,
        source,
    }
}

/// An IPv6 socket that does not also take IPv4 (the v4 one does that).
fn bind_v6_only_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let fd = raw_socket(libc::AF_INET6, libc::SOCK_DGRAM)?;
    super::sock::set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    bind_fd(&fd, addr)?;
    Ok(std::net::UdpSocket::from(fd))
}

fn bind_stream(addr: SocketAddr, v6: bool) -> std::io::Result<std::net::TcpStream> {
    let fd = raw_socket(family_of(&addr.ip()), libc::SOCK_STREAM)?;
    super::sock::set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if v6 {
        super::sock::set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    bind_fd(&fd, addr)?;
    // A bound, not yet listening stream socket; tokio's TcpSocket takes it from here.
    Ok(std::net::TcpStream::from(fd))
}

pub(crate) fn raw_socket(
    family: libc::c_int,
    ty: libc::c_int,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2).
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

fn bind_fd(fd: &std::os::fd::OwnedFd, addr: SocketAddr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (storage, len) = super::sock::sockaddr_from(addr);
    // SAFETY: storage holds a valid sockaddr of length len.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &storage as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

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

async fn serve_gre(sock: AsyncSock, v6: bool) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut replies: Vec<(Vec<u8>, IpAddr)> = Vec::new();
        let read = sock
            .recv_batch(&mut buf, 64, |packet, from| {
                let Some((src, gre)) = strip_ip(v6, packet) else {
                    return;
                };
                let Some(src) = src.or_else(|| from.ip()) else {
                    return;
                };
                let Some((header, payload)) = parse_gre(gre) else {
                    return;
                };
                if header.protocol != gre::PROTOCOL_HARNESS_ECHO {
                    return;
                }
                let reply = gre::Repr {
                    protocol: gre::PROTOCOL_HARNESS_ECHO_REPLY,
                    ..header
                };
                replies.push((reply.to_bytes(payload), src));
            })
            .await;
        if read.is_err() {
            return;
        }
        for (reply, to) in replies {
            let _ = sock.send_to(&reply, SocketAddr::new(to, 0)).await;
        }
    }
}

async fn serve_udp(sock: tokio::net::UdpSocket) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
        let _ = sock.send_to(&buf[..n], from).await;
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (mut read, mut write) = stream.split();
            let _ = tokio::io::copy(&mut read, &mut write).await;
        });
    }
}
