//! Responders that run for a pod: GRE echo, an SCTP association endpoint, UDP
//! and TCP echo. ICMP echo needs none: the pod's kernel answers it.
//!
//! GRE and SCTP use raw IP sockets. This kernel has neither a GRE nor an SCTP
//! module; without a raw socket for a protocol the kernel answers it with ICMP
//! "protocol unreachable", but a raw socket bound to the protocol counts as
//! delivery (ip_local_deliver_finish / ip6_protocol_deliver_rcu), so while a
//! responder runs the kernel stays silent and no firewall rule is needed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::lab::netns::Netns;

use super::codec::{self, chunk_type, Chunk, GreHeader, InitFields, SctpPacket};
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
            codec::PROTO_GRE as i32,
            "GRE responder",
        )?)
        .map_err(|e| sock_err(ns, "GRE responder", e))?;
        tasks.push(tokio::spawn(serve_gre(gre, v6)));
        let sctp = AsyncSock::new(open_in(
            ns,
            family,
            libc::SOCK_RAW,
            codec::PROTO_SCTP as i32,
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
        let ip = codec::parse_ip(packet)?;
        Some((Some(ip.src), ip.payload))
    }
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
                let Some((header, payload)) = codec::parse_gre(gre) else {
                    return;
                };
                if header.protocol != codec::GRE_PROTO_REQUEST {
                    return;
                }
                let reply = GreHeader {
                    protocol: codec::GRE_PROTO_REPLY,
                    ..header
                };
                replies.push((codec::emit_gre(&reply, payload), src));
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

/// One association of the SCTP responder, keyed by peer address and ports.
struct Association {
    local_tag: u32,
    peer_tag: u32,
    next_tsn: u32,
    next_ssn: u16,
    /// Highest in-order TSN received from the peer (cumulative ack).
    peer_cum_tsn: u32,
}

/// The state cookie: everything needed to build the association on COOKIE
/// ECHO, so INIT creates no state (RFC 9260 5.1.3). No MAC: this responder
/// only ever talks to the harness inside a lab.
/// Not the token magic: a cookie must not be mistaken for a probe's token.
const COOKIE_MAGIC: u32 = 0x4643_6b31;

fn cookie(local_tag: u32, peer_tag: u32, local_tsn: u32, peer_tsn: u32) -> Vec<u8> {
    [COOKIE_MAGIC, local_tag, peer_tag, local_tsn, peer_tsn]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

fn parse_cookie(bytes: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            bytes.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    (word(0)? == COOKIE_MAGIC).then_some(())?;
    Some((word(1)?, word(2)?, word(3)?, word(4)?))
}

/// Tags and TSNs must be unpredictable-ish and non-zero; quality does not matter.
pub(crate) fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(super::observation::now_unix_ns());
    (hasher.finish() as u32) | 1
}

#[derive(Default)]
struct SctpServer {
    associations: HashMap<(IpAddr, u16, u16), Association>,
}

impl SctpServer {
    /// Answer one packet; returns the reply to send, if any.
    fn handle(&mut self, peer: IpAddr, packet: SctpPacket) -> Option<SctpPacket> {
        if packet.dst_port >= SCTP_CLIENT_PORT_BASE {
            return None;
        }
        let key = (peer, packet.src_port, packet.dst_port);
        let reply = |vtag: u32, chunks: Vec<Chunk>| SctpPacket {
            src_port: packet.dst_port,
            dst_port: packet.src_port,
            vtag,
            chunks,
        };
        let first = packet.chunks.first()?;
        match first.kind {
            chunk_type::INIT => {
                let (init, _) = first.init_fields()?;
                let local_tag = random_u32();
                let local_tsn = random_u32();
                let mut params = Vec::new();
                codec::emit_param(
                    &mut params,
                    codec::PARAM_STATE_COOKIE,
                    &cookie(local_tag, init.init_tag, local_tsn, init.initial_tsn),
                );
                let fields = InitFields {
                    init_tag: local_tag,
                    a_rwnd: 1 << 20,
                    out_streams: 1,
                    in_streams: 1,
                    initial_tsn: local_tsn,
                };
                return Some(reply(
                    init.init_tag,
                    vec![Chunk::init(chunk_type::INIT_ACK, fields, &params)],
                ));
            }
            chunk_type::COOKIE_ECHO => {
                let (local_tag, peer_tag, local_tsn, peer_tsn) = parse_cookie(&first.value)?;
                if packet.vtag != local_tag {
                    return None;
                }
                self.associations.insert(
                    key,
                    Association {
                        local_tag,
                        peer_tag,
                        next_tsn: local_tsn,
                        next_ssn: 0,
                        peer_cum_tsn: peer_tsn.wrapping_sub(1),
                    },
                );
                let mut chunks = vec![Chunk::new(chunk_type::COOKIE_ACK, 0, Vec::new())];
                // DATA may be bundled after COOKIE ECHO.
                let assoc = self.associations.get_mut(&key)?;
                chunks.extend(echo_data(assoc, &packet.chunks[1..]));
                return Some(reply(peer_tag, chunks));
            }
            chunk_type::ABORT => {
                if self
                    .associations
                    .get(&key)
                    .is_some_and(|a| a.local_tag == packet.vtag || first.flags & 1 != 0)
                {
                    self.associations.remove(&key);
                }
                return None;
            }
            chunk_type::SHUTDOWN_COMPLETE => {
                self.associations.remove(&key);
                return None;
            }
            _ => {}
        }
        let Some(assoc) = self
            .associations
            .get_mut(&key)
            .filter(|a| a.local_tag == packet.vtag)
        else {
            // Out of the blue (RFC 9260 8.4): SHUTDOWN ACK gets SHUTDOWN COMPLETE,
            // stray INIT ACK / ERROR / COOKIE ACK are dropped, anything else ABORT,
            // both with the T bit and the packet's own tag reflected.
            return match first.kind {
                chunk_type::SHUTDOWN_ACK => Some(reply(
                    packet.vtag,
                    vec![Chunk::new(chunk_type::SHUTDOWN_COMPLETE, 1, Vec::new())],
                )),
                chunk_type::INIT_ACK | chunk_type::COOKIE_ACK | 9 => None,
                _ => Some(reply(
                    packet.vtag,
                    vec![Chunk::new(chunk_type::ABORT, 1, Vec::new())],
                )),
            };
        };
        let peer_tag = assoc.peer_tag;
        let mut out = Vec::new();
        let mut shutdown = false;
        for chunk in &packet.chunks {
            match chunk.kind {
                chunk_type::HEARTBEAT => {
                    let info = codec::find_param(&chunk.value, codec::PARAM_HEARTBEAT_INFO)
                        .unwrap_or_default();
                    out.push(Chunk::heartbeat(chunk_type::HEARTBEAT_ACK, info));
                }
                chunk_type::SHUTDOWN => shutdown = true,
                _ => {}
            }
        }
        out.extend(echo_data(assoc, &packet.chunks));
        if shutdown {
            // Everything the peer sent was echoed above; no DATA of ours is
            // outstanding once it has SACKed, so go straight to SHUTDOWN ACK.
            out.push(Chunk::new(chunk_type::SHUTDOWN_ACK, 0, Vec::new()));
        }
        (!out.is_empty()).then(|| reply(peer_tag, out))
    }
}

/// SACK every DATA chunk and send its payload straight back as our own DATA.
fn echo_data(assoc: &mut Association, chunks: &[Chunk]) -> Vec<Chunk> {
    let mut echoes = Vec::new();
    let mut got_data = false;
    for chunk in chunks.iter().filter(|c| c.kind == chunk_type::DATA) {
        let Some(data) = chunk.data_fields() else {
            continue;
        };
        got_data = true;
        if data.tsn.wrapping_sub(assoc.peer_cum_tsn) as i32 > 0 {
            assoc.peer_cum_tsn = data.tsn;
        }
        echoes.push(Chunk::data(
            assoc.next_tsn,
            data.stream,
            assoc.next_ssn,
            data.ppid,
            data.payload,
        ));
        assoc.next_tsn = assoc.next_tsn.wrapping_add(1);
        assoc.next_ssn = assoc.next_ssn.wrapping_add(1);
    }
    if got_data {
        echoes.insert(0, Chunk::sack(assoc.peer_cum_tsn, 1 << 20));
    }
    echoes
}

async fn serve_sctp(sock: AsyncSock, v6: bool) {
    let mut server = SctpServer::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let mut replies = Vec::new();
        let read = sock
            .recv_batch(&mut buf, 64, |packet, from| {
                let Some((src, sctp)) = strip_ip(v6, packet) else {
                    return;
                };
                let Some(src) = src.or_else(|| from.ip()) else {
                    return;
                };
                let Some(parsed) = SctpPacket::parse(sctp) else {
                    return;
                };
                if let Some(reply) = server.handle(src, parsed) {
                    replies.push((reply.emit(), src));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn init_packet(tag: u32) -> SctpPacket {
        SctpPacket {
            src_port: 40000,
            dst_port: ECHO_PORT,
            vtag: 0,
            chunks: vec![Chunk::init(
                chunk_type::INIT,
                InitFields {
                    init_tag: tag,
                    a_rwnd: 65535,
                    out_streams: 1,
                    in_streams: 1,
                    initial_tsn: 100,
                },
                &[],
            )],
        }
    }

    #[test]
    fn four_way_handshake_then_echo_heartbeat_and_shutdown() {
        let peer: IpAddr = "198.18.1.10".parse().unwrap();
        let mut server = SctpServer::default();
        let init_ack = server.handle(peer, init_packet(0xabc)).unwrap();
        assert_eq!(init_ack.vtag, 0xabc);
        let (fields, params) = init_ack.chunks[0].init_fields().unwrap();
        let cookie = codec::find_param(params, codec::PARAM_STATE_COOKIE)
            .unwrap()
            .to_vec();
        let echo = SctpPacket {
            src_port: 40000,
            dst_port: ECHO_PORT,
            vtag: fields.init_tag,
            chunks: vec![Chunk::new(chunk_type::COOKIE_ECHO, 0, cookie)],
        };
        let ack = server.handle(peer, echo).unwrap();
        assert_eq!(ack.chunks[0].kind, chunk_type::COOKIE_ACK);
        let data = SctpPacket {
            src_port: 40000,
            dst_port: ECHO_PORT,
            vtag: fields.init_tag,
            chunks: vec![
                Chunk::data(100, 0, 0, 0, b"token"),
                Chunk::heartbeat(chunk_type::HEARTBEAT, b"hb"),
            ],
        };
        let answer = server.handle(peer, data).unwrap();
        let kinds: Vec<u8> = answer.chunks.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                chunk_type::HEARTBEAT_ACK,
                chunk_type::SACK,
                chunk_type::DATA
            ]
        );
        assert_eq!(answer.chunks[1].first_u32(), Some(100));
        assert_eq!(answer.chunks[2].data_fields().unwrap().payload, b"token");
        let shutdown = SctpPacket {
            src_port: 40000,
            dst_port: ECHO_PORT,
            vtag: fields.init_tag,
            chunks: vec![Chunk::shutdown(fields.initial_tsn)],
        };
        let answer = server.handle(peer, shutdown).unwrap();
        assert_eq!(answer.chunks[0].kind, chunk_type::SHUTDOWN_ACK);
    }

    #[test]
    fn data_for_an_unknown_association_gets_abort_with_t_bit() {
        let mut server = SctpServer::default();
        let stray = SctpPacket {
            src_port: 40000,
            dst_port: ECHO_PORT,
            vtag: 0x1234,
            chunks: vec![Chunk::data(1, 0, 0, 0, b"x")],
        };
        let answer = server
            .handle("198.18.1.10".parse().unwrap(), stray)
            .unwrap();
        assert_eq!(answer.vtag, 0x1234);
        assert_eq!(
            answer.chunks,
            vec![Chunk::new(chunk_type::ABORT, 1, Vec::new())]
        );
    }
}
