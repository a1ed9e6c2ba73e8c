//! The sending side: one transport per probe or stream, opened in the sender's
//! namespace, that sends each protocol's probe and turns what comes back
//! (replies, ICMP errors) into events. Pacing is [`super::drive`]'s, the SCTP
//! association [`super::sctp_client`]'s.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

use socket2::Domain;
use tokio::io::AsyncWriteExt;

use crate::lab::netns::Netns;
use crate::wire::ip::{self, IpNextHeaderProtocols};
use crate::wire::{gre, icmp, sctp, ChecksumPolicy};

use super::observation::{now_unix_ns, Event, IcmpErrorObservation, Protocol};
use super::raw::{parse_gre, strip_ip};
use super::sctp_client::SctpClient;
use super::sock::{open_raw_in, stream_socket, AsyncSock};
use super::token::{Token, TOKEN_LEN};
use super::TrafficError;
use crate::seed::Seed;

/// Who sends, to where, and how each packet is labelled.
#[derive(Clone, Debug)]
pub(crate) struct ProbeContext {
    pub sender: String,
    pub protocol: Protocol,
    pub to: IpAddr,
    pub port: u16,
    pub lab: u32,
    pub step: u32,
    pub probe: u32,
    pub payload_len: usize,
    /// The run's seed, when it fixes random choices.
    pub seed: Option<Seed>,
    /// The probe's timeout: no handshake step waits longer for its answer
    /// (see [`super::sctp_client`]).
    pub timeout: Duration,
    /// All the handshake's tries together ([`super::ProbeSpec::handshake`]).
    pub handshake: Option<Duration>,
}

/// How long a TCP connect waits for its SYN's answer, unless the probe gives
/// its handshake less ([`super::ProbeSpec::handshake`]): the kernel sends the
/// SYN again after 1 s, so a first SYN lost to a move in progress still
/// connects. Our choice.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Seeded UDP and TCP probes bind their source port in this range: at or
/// above [`SCTP_CLIENT_PORT_BASE`](super::SCTP_CLIENT_PORT_BASE), where the
/// capture takes a packet to a port for a reply ([`super::PacketRole::of`]),
/// and below SCTP's client ports (40000 up). Below it, a reply reaching a
/// sending pod was counted as a probe delivered to that pod (found by
/// `explore`: a pod's UDP stream to a floating IP "delivered" to itself).
const SEEDED_PORT_BASE: u16 = super::SCTP_CLIENT_PORT_BASE;
const SEEDED_PORT_SPAN: u16 = crate::vocab::SEEDED_PORT_END - SEEDED_PORT_BASE;

impl ProbeContext {
    fn payload(&self, seq: u32) -> Vec<u8> {
        let token = Token {
            lab: self.lab,
            step: self.step,
            probe: self.probe,
            seq,
        };
        let mut payload = token.encode().to_vec();
        payload.resize(self.payload_len.max(TOKEN_LEN), 0);
        payload
    }

    /// The source port of a UDP or TCP probe: from the seed, consecutive per
    /// probe so that no two probes of a case share one; none (the kernel's
    /// choice) without a seed.
    fn local_port(&self) -> u16 {
        match self.seed {
            Some(seed) => {
                let start = seed.derive("source port", &[]) % u64::from(SEEDED_PORT_SPAN);
                let offset = (start + u64::from(self.probe)) % u64::from(SEEDED_PORT_SPAN);
                SEEDED_PORT_BASE + offset as u16
            }
            None => 0,
        }
    }

    fn ours(&self, token: &Token) -> bool {
        token.lab == self.lab && token.probe == self.probe
    }

    fn v6(&self) -> bool {
        self.to.is_ipv6()
    }
}

enum Main {
    Raw(AsyncSock),
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream),
    /// Out of the runtime, with [`super::inline`] for a run.
    Lent,
}

/// A raw transport's sockets out of the runtime ([`Transport::lend_raw`]).
pub(super) struct LentSockets {
    pub main: OwnedFd,
    /// The ICMP error watch (GRE), none where the main socket is ICMP's.
    pub icmp: Option<OwnedFd>,
}

/// What one wake-up of the transport delivered.
pub(super) enum Incoming {
    Main { data: Vec<u8>, from: Option<IpAddr> },
    Icmp { data: Vec<u8>, from: Option<IpAddr> },
}

pub(crate) struct Transport {
    pub(super) ctx: ProbeContext,
    main: Main,
    /// Raw ICMP(v6) socket watching for errors; the main socket itself for ICMP.
    icmp: Option<AsyncSock>,
    pub(super) sctp: Option<SctpClient>,
    tcp_pending: Vec<u8>,
    buf: Vec<u8>,
}

fn sock_err<'a>(ns: &'a Netns, what: &'static str) -> impl Fn(std::io::Error) -> TrafficError + 'a {
    move |source| TrafficError::Socket {
        namespace: ns.name().to_string(),
        what,
        source,
    }
}

fn open_raw(
    ns: &Netns,
    v6: bool,
    protocol: u8,
    what: &'static str,
) -> Result<AsyncSock, TrafficError> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = open_raw_in(
        ns,
        domain,
        socket2::Protocol::from(i32::from(protocol)),
        what,
    )?;
    AsyncSock::new(socket).map_err(sock_err(ns, what))
}

/// A transport whose sockets are out of the runtime, or were not given back.
fn lent() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the probe's sockets are not with the runtime",
    )
}

/// The unspecified address of a family, with `port`.
fn unspecified(v6: bool, port: u16) -> SocketAddr {
    if v6 {
        (std::net::Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, port).into()
    }
}

impl Transport {
    pub async fn open(ns: &Netns, ctx: ProbeContext) -> Result<Transport, TrafficError> {
        let v6 = ctx.v6();
        let icmp_proto = if v6 {
            IpNextHeaderProtocols::Icmpv6.0
        } else {
            IpNextHeaderProtocols::Icmp.0
        };
        let watch_icmp = || open_raw(ns, v6, icmp_proto, "ICMP error watch");
        let (main, icmp) = match ctx.protocol {
            Protocol::Icmp => (Main::Raw(open_raw(ns, v6, icmp_proto, "ICMP echo")?), None),
            Protocol::Gre => (
                Main::Raw(open_raw(ns, v6, IpNextHeaderProtocols::Gre.0, "GRE probe")?),
                Some(watch_icmp()?),
            ),
            Protocol::Sctp => (
                Main::Raw(open_raw(
                    ns,
                    v6,
                    IpNextHeaderProtocols::Sctp.0,
                    "SCTP probe",
                )?),
                Some(watch_icmp()?),
            ),
            Protocol::Udp => {
                let any = unspecified(v6, ctx.local_port());
                let udp = ns
                    .run(move || {
                        let s = std::net::UdpSocket::bind(any)?;
                        s.set_nonblocking(true)?;
                        Ok::<_, std::io::Error>(s)
                    })
                    .map_err(TrafficError::Netns)?
                    .map_err(sock_err(ns, "UDP probe"))?;
                let udp =
                    tokio::net::UdpSocket::from_std(udp).map_err(sock_err(ns, "UDP probe"))?;
                (Main::Udp(udp), Some(watch_icmp()?))
            }
            Protocol::Tcp => {
                let (to, local) = (ctx.to, unspecified(v6, ctx.local_port()));
                let socket = ns
                    .run(move || {
                        let socket = stream_socket(to)?;
                        if local.port() != 0 {
                            // A seeded port may still be in TIME_WAIT from an
                            // earlier run's connection to the same pod.
                            socket.set_reuse_address(true)?;
                            socket.bind(&local.into())?;
                        }
                        Ok::<_, std::io::Error>(socket)
                    })
                    .map_err(TrafficError::Netns)?
                    .map_err(sock_err(ns, "TCP probe"))?;
                let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
                let watch = watch_icmp()?;
                let stream = tokio::time::timeout(
                    ctx.handshake.unwrap_or(CONNECT_TIMEOUT),
                    socket.connect(SocketAddr::new(ctx.to, ctx.port)),
                )
                .await
                .map_err(|_| TrafficError::Connect {
                    namespace: ns.name().to_string(),
                    to: SocketAddr::new(ctx.to, ctx.port),
                    reason: "timed out".into(),
                })?
                .map_err(|e| TrafficError::Connect {
                    namespace: ns.name().to_string(),
                    to: SocketAddr::new(ctx.to, ctx.port),
                    reason: e.to_string(),
                })?;
                stream.set_nodelay(true).ok();
                (Main::Tcp(stream), Some(watch))
            }
        };
        let mut transport = Transport {
            main,
            icmp,
            sctp: None,
            tcp_pending: Vec::new(),
            buf: vec![0u8; 65536],
            ctx,
        };
        if transport.ctx.protocol == Protocol::Sctp {
            transport.sctp_connect().await;
        }
        Ok(transport)
    }

    fn v6(&self) -> bool {
        self.ctx.v6()
    }

    pub(super) async fn send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        match &self.main {
            Main::Raw(sock) => sock
                .send_to(bytes, SocketAddr::new(self.ctx.to, 0))
                .await
                .map(drop),
            Main::Lent => Err(lent()),
            _ => unreachable!("raw send on a non-raw transport"),
        }
    }

    /// The probe's packet `seq` for a raw socket: ICMP echo and GRE (SCTP
    /// DATA belongs to an association, [`Transport::send`]).
    pub(super) fn raw_packet(&self, seq: u32) -> Option<Vec<u8>> {
        let payload = self.ctx.payload(seq);
        match self.ctx.protocol {
            Protocol::Icmp => Some(icmp::echo_request(
                self.v6(),
                self.ctx.probe as u16,
                seq as u16,
                &payload,
            )),
            Protocol::Gre => Some(
                gre::Repr {
                    checksum: true,
                    key: Some(self.ctx.probe),
                    sequence: Some(seq),
                    protocol: gre::PROTOCOL_HARNESS_ECHO,
                }
                .to_bytes(&payload),
            ),
            _ => None,
        }
    }

    /// Take an ICMP or GRE transport's sockets out of the runtime (see
    /// [`super::inline`]); None for other protocols.
    pub(super) fn lend_raw(&mut self) -> Option<LentSockets> {
        if !matches!(self.ctx.protocol, Protocol::Icmp | Protocol::Gre)
            || !matches!(self.main, Main::Raw(_))
        {
            return None;
        }
        let Main::Raw(main) = std::mem::replace(&mut self.main, Main::Lent) else {
            unreachable!("checked above")
        };
        Some(LentSockets {
            main: main.into_fd(),
            icmp: self.icmp.take().map(AsyncSock::into_fd),
        })
    }

    /// Give the sockets back to the runtime.
    pub(super) fn restore(&mut self, lent: LentSockets) -> std::io::Result<()> {
        self.main = Main::Raw(AsyncSock::new(lent.main)?);
        self.icmp = lent.icmp.map(AsyncSock::new).transpose()?;
        Ok(())
    }

    /// Whether a datagram of the main socket is ICMP (an echo reply or error).
    pub(super) fn main_is_icmp(&self) -> bool {
        self.ctx.protocol == Protocol::Icmp
    }

    pub async fn send(&mut self, seq: u32) -> std::io::Result<()> {
        if let Some(packet) = self.raw_packet(seq) {
            return self.send_raw(&packet).await;
        }
        let payload = self.ctx.payload(seq);
        match self.ctx.protocol {
            Protocol::Icmp | Protocol::Gre => unreachable!("raw packets above"),
            Protocol::Sctp => self.sctp_send(&payload).await,
            Protocol::Udp => match &self.main {
                Main::Udp(udp) => udp
                    .send_to(&payload, SocketAddr::new(self.ctx.to, self.ctx.port))
                    .await
                    .map(drop),
                _ => unreachable!(),
            },
            Protocol::Tcp => match &mut self.main {
                Main::Tcp(stream) => stream.write_all(&payload).await,
                _ => unreachable!(),
            },
        }
    }

    /// Wait for whatever arrives next (cancel-safe).
    pub(super) async fn recv(&mut self) -> std::io::Result<Vec<Incoming>> {
        let mut got = Vec::new();
        let buf = &mut self.buf;
        let icmp_is_main = self.ctx.protocol == Protocol::Icmp;
        let main = async {
            match &self.main {
                Main::Raw(sock) => {
                    let mut out = Vec::new();
                    sock.recv_batch(buf, 128, |data, from| {
                        out.push((data.to_vec(), from.ip()));
                    })
                    .await?;
                    Ok::<_, std::io::Error>(out)
                }
                Main::Udp(udp) => {
                    let (n, from) = udp.recv_from(buf).await?;
                    Ok(vec![(buf[..n].to_vec(), Some(from.ip()))])
                }
                Main::Lent => Err(lent()),
                Main::Tcp(stream) => loop {
                    stream.readable().await?;
                    match stream.try_read(buf) {
                        Ok(0) => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "TCP echo closed the connection",
                            ))
                        }
                        Ok(n) => {
                            return Ok(vec![(
                                buf[..n].to_vec(),
                                stream.peer_addr().ok().map(|a| a.ip()),
                            )])
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                },
            }
        };
        let mut icmp_buf = [0u8; 2048];
        let icmp = async {
            match &self.icmp {
                Some(sock) => {
                    let mut out = Vec::new();
                    sock.recv_batch(&mut icmp_buf, 64, |data, from| {
                        out.push((data.to_vec(), from.ip()))
                    })
                    .await?;
                    Ok::<_, std::io::Error>(out)
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            packets = main => {
                for (data, from) in packets? {
                    got.push(if icmp_is_main { Incoming::Icmp { data, from } } else { Incoming::Main { data, from } });
                }
            }
            packets = icmp => {
                for (data, from) in packets? {
                    got.push(Incoming::Icmp { data, from });
                }
            }
        }
        Ok(got)
    }

    /// Turn what arrived into events; SCTP control chunks update the association.
    pub(super) fn process(&mut self, incoming: Vec<Incoming>, events: &mut Vec<Event>) {
        for item in incoming {
            match item {
                Incoming::Icmp { data, from } => self.process_icmp(&data, from, events),
                Incoming::Main { data, from } => self.process_main(&data, from, events),
            }
        }
    }

    /// An ICMP datagram: an echo reply (ICMP probes) or an error about a probe.
    pub(super) fn process_icmp(
        &mut self,
        data: &[u8],
        from: Option<IpAddr>,
        events: &mut Vec<Event>,
    ) {
        let v6 = self.v6();
        let Some((src, icmp)) = strip_ip(v6, data) else {
            return;
        };
        let Some(src) = src.or(from) else { return };
        match icmp::parse(v6, icmp) {
            Some(icmp::Message::EchoReply { ident, payload, .. })
                if self.ctx.protocol == Protocol::Icmp =>
            {
                if ident != self.ctx.probe as u16 {
                    return;
                }
                if let Some(token) = Token::parse(payload).filter(|t| self.ctx.ours(t)) {
                    events.push(Event::Reply { token, src });
                }
            }
            Some(icmp::Message::Error {
                icmp_type,
                code,
                quoted,
            }) => {
                let Some(inner) = ip::quoted(quoted) else {
                    return;
                };
                let token = Token::find_first(inner.payload).filter(|t| self.ctx.ours(t));
                // A token names the probe; without one (a router quoted too
                // little), the protocol and destination do.
                let ours = token.is_some()
                    || (inner.protocol == self.ctx.protocol.ip_protocol(v6)
                        && inner.dst == self.ctx.to);
                if ours {
                    events.push(Event::IcmpError(IcmpErrorObservation {
                        receiver: self.ctx.sender.clone(),
                        reporter: src,
                        icmp_type,
                        icmp_code: code,
                        quoted_src: inner.src,
                        quoted_dst: inner.dst,
                        quoted_protocol: inner.protocol,
                        token,
                        at_unix_ns: now_unix_ns(),
                    }));
                }
            }
            _ => {}
        }
    }

    /// A datagram of the main socket of a protocol other than ICMP.
    pub(super) fn process_main(
        &mut self,
        data: &[u8],
        from: Option<IpAddr>,
        events: &mut Vec<Event>,
    ) {
        let v6 = self.v6();
        match self.ctx.protocol {
            Protocol::Gre => {
                let Some((src, gre)) = strip_ip(v6, data) else {
                    return;
                };
                let Some(src) = src.or(from) else { return };
                let Some((header, payload)) = parse_gre(gre) else {
                    return;
                };
                if header.protocol != gre::PROTOCOL_HARNESS_ECHO_REPLY {
                    return;
                }
                if let Some(token) = Token::parse(payload).filter(|t| self.ctx.ours(t)) {
                    events.push(Event::Reply { token, src });
                }
            }
            Protocol::Sctp => {
                let Some((src, sctp)) = strip_ip(v6, data) else {
                    return;
                };
                let Some(src) = src.or(from) else { return };
                let Ok(packet) = sctp::Repr::parse_bytes(sctp, ChecksumPolicy::Verify) else {
                    return;
                };
                let (port, ctx) = (self.ctx.port, &self.ctx);
                if let Some(client) = self.sctp.as_mut() {
                    client.receive(src, port, &packet, |t| ctx.ours(t), events);
                }
            }
            Protocol::Udp => {
                if let (Some(token), Some(src)) =
                    (Token::parse(data).filter(|t| self.ctx.ours(t)), from)
                {
                    events.push(Event::Reply { token, src });
                }
            }
            Protocol::Tcp => {
                self.tcp_pending.extend_from_slice(data);
                let Some(src) = from else { return };
                let whole = self.tcp_pending.len() / self.ctx.payload_len.max(TOKEN_LEN)
                    * self.ctx.payload_len.max(TOKEN_LEN);
                let complete: Vec<u8> = self.tcp_pending.drain(..whole).collect();
                for token in Token::find_all(&complete)
                    .into_iter()
                    .filter(|t| self.ctx.ours(t))
                {
                    events.push(Event::Reply { token, src });
                }
            }
            Protocol::Icmp => {}
        }
    }

    /// Finish the conversation (SCTP shutdown); returns the SCTP events seen.
    pub async fn close(mut self) -> Vec<String> {
        if self.ctx.protocol == Protocol::Sctp {
            let info = self.ctx.payload(u32::MAX);
            self.sctp_close(&info).await;
        }
        self.sctp.map(SctpClient::into_events).unwrap_or_default()
    }
}
