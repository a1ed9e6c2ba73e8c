//! Responders that run for a pod: GRE echo, an SCTP association endpoint, UDP
//! and TCP echo. ICMP echo needs none: the pod's kernel answers it.
//!
//! GRE and SCTP use raw IP sockets. This kernel has neither a GRE nor an SCTP
//! module; without a raw socket for a protocol the kernel answers it with ICMP
//! "protocol unreachable", but a raw socket bound to the protocol counts as
//! delivery (ip_local_deliver_finish / ip6_protocol_deliver_rcu), so while a
//! responder runs the kernel stays silent and no firewall rule is needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::lab::netns::Netns;

use socket2::{Protocol, Socket, Type};

use crate::wire::gre;
use crate::wire::ip::IpNextHeaderProtocols as Ip;

use super::raw::{parse_gre, strip_ip};
use super::sctp_server::serve_sctp;
use super::sock::{domain_of, open_raw_in, stream_socket, AsyncSock};
use super::TrafficError;

pub use crate::vocab::{ECHO_PORT, SCTP_CLIENT_PORT_BASE};

/// Start every responder for a pod with `addresses` in `ns`.
pub(crate) fn start_pod_responders(
    ns: &Netns,
    addresses: &[IpAddr],
    seed: Option<crate::seed::Seed>,
) -> Result<Vec<JoinHandle<()>>, TrafficError> {
    let mut tasks = Vec::new();
    let mut families: Vec<IpAddr> = addresses
        .iter()
        .map(|a| match a {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        })
        .collect();
    families.sort();
    families.dedup();
    for unspecified in families {
        let v6 = unspecified.is_ipv6();
        let domain = domain_of(unspecified);
        let gre = open_raw_in(
            ns,
            domain,
            Protocol::from(i32::from(Ip::Gre.0)),
            "GRE responder",
        )?;
        let gre = AsyncSock::new(gre).map_err(|e| sock_err(ns, "GRE responder", e))?;
        tasks.push(tokio::spawn(serve_gre(gre, v6)));
        let sctp = open_raw_in(
            ns,
            domain,
            Protocol::from(i32::from(Ip::Sctp.0)),
            "SCTP responder",
        )?;
        let sctp = AsyncSock::new(sctp).map_err(|e| sock_err(ns, "SCTP responder", e))?;
        tasks.push(tokio::spawn(serve_sctp(sctp, v6, seed)));
        let any = SocketAddr::new(unspecified, ECHO_PORT);
        let (udp, tcp) = ns
            .run(move || -> std::io::Result<_> {
                let udp = bind_udp(any)?;
                let tcp = tokio::net::TcpSocket::from_std_stream(bind_stream(any)?);
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

/// The echo port's UDP socket; an IPv6 one does not also take IPv4 (the IPv4
/// one does that).
fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(domain_of(addr.ip()), Type::DGRAM.nonblocking(), None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The echo port's TCP socket, bound and not yet listening: tokio's TcpSocket
/// takes it from there.
fn bind_stream(addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let socket = stream_socket(addr.ip())?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
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
        // Let the pod's capture read what these replies (and the requests)
        // queued: under a free-running probe this loop always has work, and
        // tokio's budget would let it run thousands of packets before the
        // capture's turn, past its socket's buffer.
        tokio::task::yield_now().await;
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
