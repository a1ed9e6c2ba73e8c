//! The sending side: one transport per probe or stream, opened in the sender's
//! namespace, and the driver that paces sends, keeps a window of outstanding
//! probes, and matches replies and ICMP errors by token.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::lab::netns::Netns;

use super::codec::{self, chunk_type, Chunk, IcmpView, InitFields, SctpPacket};
use super::observation::{now_unix_ns, IcmpErrorObservation, Protocol, ReplyObservation};
use super::responder::{family_of, random_u32, raw_socket, strip_ip, SCTP_CLIENT_PORT_BASE};
use super::sock::{open_in, AsyncSock};
use super::token::{Token, TOKEN_LEN};
use super::TrafficError;

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
}

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
}

/// What one wake-up of the transport delivered.
enum Incoming {
    Main { data: Vec<u8>, from: Option<IpAddr> },
    Icmp { data: Vec<u8>, from: Option<IpAddr> },
}

pub(crate) enum Event {
    Reply { token: Token, src: IpAddr },
    IcmpError(IcmpErrorObservation),
}

/// Client side of an SCTP association over a raw socket.
struct SctpClient {
    local_port: u16,
    local_tag: u32,
    peer_tag: u32,
    next_tsn: u32,
    next_ssn: u16,
    peer_cum_tsn: u32,
    sack_due: bool,
    events: Vec<String>,
    established: bool,
    shutdown_acked: bool,
    heartbeat_acked: bool,
    cookie: Option<Vec<u8>>,
    /// The peer aborted the association: set it up again (from the same port,
    /// so the same conntrack tuple) before the next DATA, once per ABORT.
    reconnect_due: bool,
    /// When the peer last answered anything, and when this side last probed
    /// the path with a HEARTBEAT: path supervision as an SCTP endpoint does it.
    last_heard: std::time::Instant,
    last_heartbeat: std::time::Instant,
}

/// Silence after which a sender checks the path with a HEARTBEAT. Conntrack
/// does not start tracking an association at a DATA chunk (it is invalid and
/// not NATed) but does at a HEARTBEAT, so after a NAT change it is the
/// HEARTBEAT that reaches the new pod and draws the ABORT that resets the
/// association, as with a real SCTP stack.
const SCTP_PATH_SILENCE: Duration = Duration::from_millis(30);

pub(crate) struct Transport {
    ctx: ProbeContext,
    main: Main,
    /// Raw ICMP(v6) socket watching for errors; the main socket itself for ICMP.
    icmp: Option<AsyncSock>,
    sctp: Option<SctpClient>,
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
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    AsyncSock::new(open_in(ns, family, libc::SOCK_RAW, protocol as i32, what)?)
        .map_err(sock_err(ns, what))
}

impl Transport {
    pub async fn open(ns: &Netns, ctx: ProbeContext) -> Result<Transport, TrafficError> {
        let v6 = ctx.v6();
        let icmp_proto = if v6 {
            codec::PROTO_ICMPV6
        } else {
            codec::PROTO_ICMP
        };
        let watch_icmp = || open_raw(ns, v6, icmp_proto, "ICMP error watch");
        let (main, icmp) = match ctx.protocol {
            Protocol::Icmp => (Main::Raw(open_raw(ns, v6, icmp_proto, "ICMP echo")?), None),
            Protocol::Gre => (
                Main::Raw(open_raw(ns, v6, codec::PROTO_GRE, "GRE probe")?),
                Some(watch_icmp()?),
            ),
            Protocol::Sctp => (
                Main::Raw(open_raw(ns, v6, codec::PROTO_SCTP, "SCTP probe")?),
                Some(watch_icmp()?),
            ),
            Protocol::Udp => {
                let any: SocketAddr = if v6 {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                };
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
                let family = family_of(&ctx.to);
                let fd = ns
                    .run(move || raw_socket(family, libc::SOCK_STREAM))
                    .map_err(TrafficError::Netns)?
                    .map_err(sock_err(ns, "TCP probe"))?;
                let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
                let watch = watch_icmp()?;
                let stream = tokio::time::timeout(
                    Duration::from_secs(3),
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

    async fn send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        match &self.main {
            Main::Raw(sock) => sock
                .send_to(bytes, SocketAddr::new(self.ctx.to, 0))
                .await
                .map(drop),
            _ => unreachable!("raw send on a non-raw transport"),
        }
    }

    pub async fn send(&mut self, seq: u32) -> std::io::Result<()> {
        let payload = self.ctx.payload(seq);
        match self.ctx.protocol {
            Protocol::Icmp => {
                let packet = codec::emit_echo_request(
                    self.v6(),
                    self.ctx.probe as u16,
                    seq as u16,
                    &payload,
                );
                self.send_raw(&packet).await
            }
            Protocol::Gre => {
                let header = codec::GreHeader {
                    checksum: true,
                    key: Some(self.ctx.probe),
                    seq: Some(seq),
                    protocol: codec::GRE_PROTO_REQUEST,
                };
                self.send_raw(&codec::emit_gre(&header, &payload)).await
            }
            Protocol::Sctp => {
                if self.sctp.as_ref().is_some_and(|c| c.reconnect_due) {
                    self.sctp_connect().await;
                }
                let path_silent = self.sctp.as_ref().is_some_and(|c| {
                    c.established
                        && c.last_heard.elapsed() > SCTP_PATH_SILENCE
                        && c.last_heartbeat.elapsed() > SCTP_PATH_SILENCE
                });
                if path_silent {
                    let client = self.sctp.as_mut().expect("checked above");
                    client.last_heartbeat = std::time::Instant::now();
                    client.events.push("HEARTBEAT sent (path silent)".into());
                    let peer_tag = client.peer_tag;
                    self.send_sctp(
                        peer_tag,
                        vec![Chunk::heartbeat(chunk_type::HEARTBEAT, &payload)],
                    )
                    .await;
                }
                let Some(client) = self.sctp.as_mut() else {
                    return Ok(());
                };
                let mut chunks = Vec::with_capacity(2);
                if client.sack_due {
                    chunks.push(Chunk::sack(client.peer_cum_tsn, 1 << 20));
                    client.sack_due = false;
                }
                chunks.push(Chunk::data(
                    client.next_tsn,
                    0,
                    client.next_ssn,
                    0,
                    &payload,
                ));
                client.next_tsn = client.next_tsn.wrapping_add(1);
                client.next_ssn = client.next_ssn.wrapping_add(1);
                let packet = SctpPacket {
                    src_port: client.local_port,
                    dst_port: self.ctx.port,
                    vtag: client.peer_tag,
                    chunks,
                };
                self.send_raw(&packet.emit()).await
            }
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
    async fn recv(&mut self) -> std::io::Result<Vec<Incoming>> {
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
    fn process(&mut self, incoming: Vec<Incoming>, events: &mut Vec<Event>) {
        let v6 = self.v6();
        for item in incoming {
            match item {
                Incoming::Icmp { data, from } => {
                    let Some((src, icmp)) = strip_ip(v6, &data) else {
                        continue;
                    };
                    let Some(src) = src.or(from) else { continue };
                    match codec::parse_icmp(v6, icmp) {
                        Some(IcmpView::EchoReply { ident, payload })
                            if self.ctx.protocol == Protocol::Icmp =>
                        {
                            if ident != self.ctx.probe as u16 {
                                continue;
                            }
                            if let Some(token) = Token::parse(payload).filter(|t| self.ctx.ours(t))
                            {
                                events.push(Event::Reply { token, src });
                            }
                        }
                        Some(IcmpView::Error {
                            icmp_type,
                            code,
                            quoted,
                        }) => {
                            let Some(inner) = codec::parse_quoted_ip(quoted) else {
                                continue;
                            };
                            let token =
                                Token::find_first(inner.payload).filter(|t| self.ctx.ours(t));
                            let ours = token.is_some()
                                || (inner.protocol == self.ctx.protocol.ip_protocol(v6)
                                    && token.is_none()
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
                Incoming::Main { data, from } => match self.ctx.protocol {
                    Protocol::Gre => {
                        let Some((src, gre)) = strip_ip(v6, &data) else {
                            continue;
                        };
                        let Some(src) = src.or(from) else { continue };
                        let Some((header, payload)) = codec::parse_gre(gre) else {
                            continue;
                        };
                        if header.protocol != codec::GRE_PROTO_REPLY {
                            continue;
                        }
                        if let Some(token) = Token::parse(payload).filter(|t| self.ctx.ours(t)) {
                            events.push(Event::Reply { token, src });
                        }
                    }
                    Protocol::Sctp => {
                        let Some((src, sctp)) = strip_ip(v6, &data) else {
                            continue;
                        };
                        let Some(src) = src.or(from) else { continue };
                        let Some(packet) = SctpPacket::parse(sctp) else {
                            continue;
                        };
                        self.sctp_receive(src, packet, events);
                    }
                    Protocol::Udp => {
                        if let (Some(token), Some(src)) =
                            (Token::parse(&data).filter(|t| self.ctx.ours(t)), from)
                        {
                            events.push(Event::Reply { token, src });
                        }
                    }
                    Protocol::Tcp => {
                        self.tcp_pending.extend_from_slice(&data);
                        let Some(src) = from else { continue };
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
                },
            }
        }
    }

    fn sctp_receive(&mut self, src: IpAddr, packet: SctpPacket, events: &mut Vec<Event>) {
        let Some(client) = self.sctp.as_mut() else {
            return;
        };
        if packet.dst_port != client.local_port || packet.src_port != self.ctx.port {
            return;
        }
        let t_bit = packet.chunks.first().is_some_and(|c| c.flags & 1 != 0);
        let tag_ok = packet.vtag == client.local_tag || (t_bit && packet.vtag == client.peer_tag);
        if !tag_ok {
            return;
        }
        client.last_heard = std::time::Instant::now();
        for chunk in &packet.chunks {
            match chunk.kind {
                chunk_type::INIT_ACK => {
                    let Some((fields, params)) = chunk.init_fields() else {
                        continue;
                    };
                    let Some(cookie) = codec::find_param(params, codec::PARAM_STATE_COOKIE) else {
                        continue;
                    };
                    client.peer_tag = fields.init_tag;
                    client.peer_cum_tsn = fields.initial_tsn.wrapping_sub(1);
                    client.events.push(format!("INIT ACK from {src}"));
                    client.cookie = Some(cookie.to_vec());
                }
                chunk_type::COOKIE_ACK => {
                    client.established = true;
                    client.events.push(format!("COOKIE ACK from {src}"));
                }
                chunk_type::DATA => {
                    let Some(data) = chunk.data_fields() else {
                        continue;
                    };
                    if data.tsn.wrapping_sub(client.peer_cum_tsn) as i32 > 0 {
                        client.peer_cum_tsn = data.tsn;
                    }
                    client.sack_due = true;
                    if let Some(token) = Token::parse(data.payload).filter(|t| self.ctx.ours(t)) {
                        events.push(Event::Reply { token, src });
                    }
                }
                chunk_type::HEARTBEAT_ACK => {
                    client.heartbeat_acked = true;
                    client.events.push(format!("HEARTBEAT ACK from {src}"));
                }
                chunk_type::SHUTDOWN_ACK => {
                    client.shutdown_acked = true;
                    client.events.push(format!("SHUTDOWN ACK from {src}"));
                }
                chunk_type::ABORT => {
                    client.established = false;
                    client.reconnect_due = true;
                    client.events.push(format!("ABORT from {src}"));
                }
                _ => {}
            }
        }
    }

    /// Pump incoming packets until `done` holds or `wait` passes.
    async fn pump_until(&mut self, wait: Duration, done: impl Fn(&SctpClient) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut sink = Vec::new();
        loop {
            if self.sctp.as_ref().is_some_and(&done) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Ok(incoming)) => self.process(incoming, &mut sink),
                _ => return self.sctp.as_ref().is_some_and(&done),
            }
        }
    }

    async fn send_sctp(&self, vtag: u32, chunks: Vec<Chunk>) {
        let Some(client) = &self.sctp else { return };
        let packet = SctpPacket {
            src_port: client.local_port,
            dst_port: self.ctx.port,
            vtag,
            chunks,
        };
        let _ = self.send_raw(&packet.emit()).await;
    }

    /// INIT, INIT ACK, COOKIE ECHO, COOKIE ACK. Failures are recorded in the
    /// events and show as lost DATA, so a broken path is a finding, not an error.
    async fn sctp_connect(&mut self) {
        let local_port = SCTP_CLIENT_PORT_BASE + 7232 + (self.ctx.probe % 20000) as u16;
        let initial_tsn = random_u32();
        // A reconnect keeps the history of the association it replaces.
        let events = self.sctp.take().map(|c| c.events).unwrap_or_default();
        self.sctp = Some(SctpClient {
            local_port,
            local_tag: random_u32(),
            peer_tag: 0,
            next_tsn: initial_tsn,
            next_ssn: 0,
            peer_cum_tsn: 0,
            sack_due: false,
            events,
            established: false,
            shutdown_acked: false,
            heartbeat_acked: false,
            cookie: None,
            reconnect_due: false,
            last_heard: std::time::Instant::now(),
            last_heartbeat: std::time::Instant::now(),
        });
        let init = Chunk::init(
            chunk_type::INIT,
            InitFields {
                init_tag: self.sctp.as_ref().unwrap().local_tag,
                a_rwnd: 1 << 20,
                out_streams: 1,
                in_streams: 1,
                initial_tsn,
            },
            &[],
        );
        for _attempt in 0..3 {
            self.sctp.as_mut().unwrap().events.push("INIT sent".into());
            self.send_sctp(0, vec![init.clone()]).await;
            if self
                .pump_until(Duration::from_millis(500), |c| c.peer_tag != 0)
                .await
            {
                break;
            }
        }
        let client = self.sctp.as_mut().unwrap();
        let Some(cookie) = client.cookie.clone() else {
            return;
        };
        let peer_tag = client.peer_tag;
        for _attempt in 0..3 {
            self.sctp
                .as_mut()
                .unwrap()
                .events
                .push("COOKIE ECHO sent".into());
            self.send_sctp(
                peer_tag,
                vec![Chunk::new(chunk_type::COOKIE_ECHO, 0, cookie.clone())],
            )
            .await;
            if self
                .pump_until(Duration::from_millis(500), |c| c.established)
                .await
            {
                break;
            }
        }
    }

    /// HEARTBEAT, then SHUTDOWN / SHUTDOWN ACK / SHUTDOWN COMPLETE.
    async fn sctp_close(&mut self, heartbeat_info: &[u8]) {
        let Some(client) = &self.sctp else { return };
        if !client.established {
            return;
        }
        let peer_tag = client.peer_tag;
        self.sctp
            .as_mut()
            .unwrap()
            .events
            .push("HEARTBEAT sent".into());
        self.send_sctp(
            peer_tag,
            vec![Chunk::heartbeat(chunk_type::HEARTBEAT, heartbeat_info)],
        )
        .await;
        self.pump_until(Duration::from_millis(500), |c| c.heartbeat_acked)
            .await;
        let cum = self.sctp.as_ref().unwrap().peer_cum_tsn;
        self.sctp
            .as_mut()
            .unwrap()
            .events
            .push("SHUTDOWN sent".into());
        self.send_sctp(peer_tag, vec![Chunk::shutdown(cum)]).await;
        if self
            .pump_until(Duration::from_millis(500), |c| c.shutdown_acked)
            .await
        {
            self.sctp
                .as_mut()
                .unwrap()
                .events
                .push("SHUTDOWN COMPLETE sent".into());
            self.send_sctp(
                peer_tag,
                vec![Chunk::new(chunk_type::SHUTDOWN_COMPLETE, 0, Vec::new())],
            )
            .await;
        }
    }

    /// Finish the conversation (SCTP shutdown); returns the SCTP events seen.
    pub async fn close(mut self) -> Vec<String> {
        if self.ctx.protocol == Protocol::Sctp {
            let info = self.ctx.payload(u32::MAX);
            self.sctp_close(&info).await;
        }
        self.sctp.map(|c| c.events).unwrap_or_default()
    }
}

/// Pacing of a probe run.
#[derive(Clone, Debug)]
pub(crate) struct Pace {
    /// None: until `stop` says so.
    pub count: Option<u32>,
    /// Zero: as fast as the window allows.
    pub interval: Duration,
    /// Most probes without a reply at once.
    pub window: usize,
    /// How long to wait for replies after the last send, and how long a full
    /// window may go without any reply before its probes count as lost.
    pub timeout: Duration,
}

#[derive(Default)]
pub(crate) struct DriveResult {
    pub sent: u32,
    pub replies: Vec<ReplyObservation>,
    pub icmp_errors: Vec<IcmpErrorObservation>,
    pub duplicates: u32,
    pub send_errors: u32,
}

/// A failed send (no route, buffer refused) still uses its sequence number and
/// counts as sent and lost, so a broken path cannot spin the sender.
fn record_send(
    result: &mut DriveResult,
    sent_at: &mut Vec<Instant>,
    answered: &mut Vec<bool>,
    outstanding: &mut usize,
    ok: bool,
) {
    sent_at.push(Instant::now());
    answered.push(!ok);
    result.sent += 1;
    if ok {
        *outstanding += 1;
    } else {
        result.send_errors += 1;
    }
}

pub(crate) async fn drive(
    transport: &mut Transport,
    pace: Pace,
    mut stop: Option<watch::Receiver<bool>>,
) -> DriveResult {
    let mut result = DriveResult::default();
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut answered: Vec<bool> = Vec::new();
    let mut outstanding = 0usize;
    let mut stopping = false;
    let mut last_progress = tokio::time::Instant::now();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut ticker = (!pace.interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(pace.interval);
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        t
    });
    let window = pace.window.max(1);
    let mut events = Vec::new();
    loop {
        let more = !stopping && pace.count.is_none_or(|c| result.sent < c);
        if !more && drain_deadline.is_none() {
            drain_deadline = Some(tokio::time::Instant::now() + pace.timeout);
        }
        if !more && outstanding == 0 {
            break;
        }
        let window_open = outstanding < window;
        // Free-running: fill the window before waiting for replies.
        if more && window_open && ticker.is_none() {
            let seq = result.sent;
            let ok = transport.send(seq).await.is_ok();
            record_send(
                &mut result,
                &mut sent_at,
                &mut answered,
                &mut outstanding,
                ok,
            );
            continue;
        }
        let stalled_at = last_progress + pace.timeout;
        tokio::select! {
            biased;
            incoming = transport.recv() => {
                match incoming {
                    Ok(incoming) => transport.process(incoming, &mut events),
                    Err(_) => { stopping = true; outstanding = 0; }
                }
                for event in events.drain(..) {
                    match event {
                        Event::Reply { token, src } => {
                            let seq = token.seq as usize;
                            let Some(at) = sent_at.get(seq) else { continue };
                            if answered[seq] {
                                result.duplicates += 1;
                                continue;
                            }
                            answered[seq] = true;
                            outstanding = outstanding.saturating_sub(1);
                            last_progress = tokio::time::Instant::now();
                            result.replies.push(ReplyObservation {
                                receiver: transport.ctx.sender.clone(),
                                protocol: transport.ctx.protocol,
                                src,
                                token,
                                rtt_ns: at.elapsed().as_nanos() as u64,
                                at_unix_ns: now_unix_ns(),
                            });
                        }
                        Event::IcmpError(error) => {
                            // An error answers its probe: do not wait for a reply too.
                            if let Some(seq) = error.token.map(|t| t.seq as usize) {
                                if answered.get(seq) == Some(&false) {
                                    answered[seq] = true;
                                    outstanding = outstanding.saturating_sub(1);
                                    last_progress = tokio::time::Instant::now();
                                }
                            }
                            result.icmp_errors.push(error);
                        }
                    }
                }
            }
            _ = async { ticker.as_mut().unwrap().tick().await }, if more && window_open && ticker.is_some() => {
                let seq = result.sent;
                let ok = transport.send(seq).await.is_ok();
                record_send(&mut result, &mut sent_at, &mut answered, &mut outstanding, ok);
            }
            changed = async { stop.as_mut().unwrap().changed().await }, if stop.is_some() && !stopping => {
                if changed.is_err() || *stop.as_ref().unwrap().borrow() {
                    stopping = true;
                }
            }
            _ = tokio::time::sleep_until(stalled_at), if more && !window_open => {
                // A full window with no reply for the timeout: those are lost.
                outstanding = 0;
                last_progress = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now)), if drain_deadline.is_some() => {
                break;
            }
        }
    }
    result
}
