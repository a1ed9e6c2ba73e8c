//! The client side of an SCTP association over a raw socket (RFC 9260): the
//! four-way handshake, DATA with SACKs, path supervision by HEARTBEAT, the
//! restart after an ABORT, and the closing HEARTBEAT and SHUTDOWN. Packets are
//! `wire::sctp` representations; the probe's transport does the socket I/O.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::seed::{draw_u32, Seed};
use crate::wire::sctp::{self, ChunkRepr};

use super::observation::Event;
use super::token::Token;
use crate::vocab::SCTP_CLIENT_PORT_BASE;

mod transport;

/// Tags and TSNs must be unpredictable-ish and non-zero; quality does not
/// matter, but a run's seed fixes them (see [`crate::seed`]).
fn draw(seed: Option<Seed>, purpose: &str, probe: u32, generation: u32) -> u32 {
    draw_u32(seed, purpose, &[u64::from(probe), u64::from(generation)])
}

/// Silence after which a sender checks the path with a HEARTBEAT. Conntrack
/// does not start tracking an association at a DATA chunk (it is invalid and
/// not NATed) but does at a HEARTBEAT, so after a NAT change it is the
/// HEARTBEAT that reaches the new pod and draws the ABORT that resets the
/// association, as with a real SCTP stack.
const PATH_SILENCE: Duration = Duration::from_millis(30);

/// How long each handshake or shutdown step waits for its answer at most
/// (never longer than the probe's timeout; with a handshake budget, its
/// share of it: a send that expects silence spreads its INITs over its
/// window), and how often INIT and COOKIE ECHO are tried.
const STEP_WAIT: Duration = Duration::from_millis(500);
const ATTEMPTS: usize = 3;

/// One association's state at the client.
pub(super) struct SctpClient {
    local_port: u16,
    /// Associations this transport set up before this one (restarts after
    /// an ABORT): each draws its own tag and TSN.
    generation: u32,
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
    last_heard: Instant,
    last_heartbeat: Instant,
}

impl SctpClient {
    /// A fresh association from the port of probe `probe`, keeping the event
    /// history of the one it replaces (its `generation`-th).
    fn new(probe: u32, seed: Option<Seed>, generation: u32, events: Vec<String>) -> Self {
        SctpClient {
            local_port: SCTP_CLIENT_PORT_BASE + 7232 + (probe % 20000) as u16,
            generation,
            local_tag: draw(seed, "sctp client tag", probe, generation),
            peer_tag: 0,
            next_tsn: draw(seed, "sctp client tsn", probe, generation),
            next_ssn: 0,
            peer_cum_tsn: 0,
            sack_due: false,
            events,
            established: false,
            shutdown_acked: false,
            heartbeat_acked: false,
            cookie: None,
            reconnect_due: false,
            last_heard: Instant::now(),
            last_heartbeat: Instant::now(),
        }
    }

    pub(super) fn into_events(self) -> Vec<String> {
        self.events
    }

    fn packet(
        &self,
        dst_port: u16,
        vtag: u32,
        chunks: Vec<ChunkRepr<'_>>,
    ) -> std::io::Result<Vec<u8>> {
        sctp::Repr {
            src_port: self.local_port,
            dst_port,
            verification_tag: vtag,
            chunks,
        }
        .to_bytes()
        .map_err(std::io::Error::other)
    }

    /// Take in one packet from the peer on `peer_port`; DATA carrying a token
    /// `ours` accepts becomes a reply event.
    pub(super) fn receive(
        &mut self,
        src: IpAddr,
        peer_port: u16,
        packet: &sctp::Repr<'_>,
        ours: impl Fn(&Token) -> bool,
        events: &mut Vec<Event>,
    ) {
        if packet.dst_port != self.local_port || packet.src_port != peer_port {
            return;
        }
        // RFC 9260 8.5.1: ABORT and SHUTDOWN COMPLETE with the T bit carry the
        // tag this side's peer chose; everything else carries this side's own.
        let reflected = packet.chunks.first().is_some_and(|c| {
            matches!(
                c,
                ChunkRepr::Abort {
                    reflected_tag: true,
                    ..
                } | ChunkRepr::ShutdownComplete {
                    reflected_tag: true
                }
            )
        });
        let tag_ok = packet.verification_tag == self.local_tag
            || (reflected && packet.verification_tag == self.peer_tag);
        if !tag_ok {
            return;
        }
        self.last_heard = Instant::now();
        for chunk in &packet.chunks {
            match chunk {
                ChunkRepr::InitAck(init) => {
                    let Some(cookie) = init.state_cookie() else {
                        continue;
                    };
                    self.peer_tag = init.initiate_tag;
                    self.peer_cum_tsn = init.initial_tsn.wrapping_sub(1);
                    self.events.push(format!("INIT ACK from {src}"));
                    self.cookie = Some(cookie.to_vec());
                }
                ChunkRepr::CookieAck => {
                    self.established = true;
                    self.events.push(format!("COOKIE ACK from {src}"));
                }
                ChunkRepr::Data(data) => {
                    if data.tsn.wrapping_sub(self.peer_cum_tsn) as i32 > 0 {
                        self.peer_cum_tsn = data.tsn;
                    }
                    self.sack_due = true;
                    if let Some(token) = Token::parse(data.user_data).filter(&ours) {
                        events.push(Event::Reply { token, src });
                    }
                }
                ChunkRepr::HeartbeatAck { .. } => {
                    self.heartbeat_acked = true;
                    self.events.push(format!("HEARTBEAT ACK from {src}"));
                }
                ChunkRepr::ShutdownAck => {
                    self.shutdown_acked = true;
                    self.events.push(format!("SHUTDOWN ACK from {src}"));
                }
                ChunkRepr::Abort { .. } => {
                    self.established = false;
                    self.reconnect_due = true;
                    self.events.push(format!("ABORT from {src}"));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sctp::DataChunk;

    const PEER_PORT: u16 = 7;
    const LOCAL_TAG: u32 = 0x1111;
    const PEER_TAG: u32 = 0x2222;

    fn established() -> SctpClient {
        let mut client = SctpClient::new(1, None, 0, Vec::new());
        client.local_tag = LOCAL_TAG;
        client.peer_tag = PEER_TAG;
        client.established = true;
        client
    }

    fn from_peer(client: &SctpClient, tag: u32, chunk: ChunkRepr<'static>) -> sctp::Repr<'static> {
        sctp::Repr {
            src_port: PEER_PORT,
            dst_port: client.local_port,
            verification_tag: tag,
            chunks: vec![chunk],
        }
    }

    fn abort(reflected_tag: bool) -> ChunkRepr<'static> {
        ChunkRepr::Abort {
            reflected_tag,
            causes: Vec::new(),
        }
    }

    /// RFC 9260 8.5.1: an ABORT counts with this side's tag, or with the
    /// peer's own tag when the T bit says it is reflected; not otherwise.
    #[rstest::rstest]
    #[case::own_tag(LOCAL_TAG, abort(false), true)]
    #[case::reflected_peer_tag(PEER_TAG, abort(true), true)]
    #[case::peer_tag_without_t_bit(PEER_TAG, abort(false), false)]
    #[case::stranger_tag(0x3333, abort(true), false)]
    fn abort_is_taken_only_with_a_valid_tag(
        #[case] tag: u32,
        #[case] chunk: ChunkRepr<'static>,
        #[case] taken: bool,
    ) {
        let mut client = established();
        let packet = from_peer(&client, tag, chunk);
        client.receive(
            "10.0.0.1".parse().unwrap(),
            PEER_PORT,
            &packet,
            |_| true,
            &mut Vec::new(),
        );
        assert_eq!(client.reconnect_due, taken);
        assert_eq!(client.established, !taken);
    }

    /// DATA's E bit shares the T bit's position; it must not make the peer's
    /// tag acceptable.
    #[test]
    fn data_with_the_peers_tag_is_ignored_and_with_ours_is_a_reply() {
        let token = Token {
            lab: 1,
            step: 2,
            probe: 1,
            seq: 0,
        }
        .encode();
        let data = |tag| {
            let chunk = ChunkRepr::Data(DataChunk::whole_message(5, 0, 0, 0, &token));
            sctp::Repr {
                src_port: PEER_PORT,
                dst_port: established().local_port,
                verification_tag: tag,
                chunks: vec![chunk],
            }
        };
        let mut client = established();
        let mut events = Vec::new();
        let src = "10.0.0.1".parse().unwrap();
        client.receive(src, PEER_PORT, &data(PEER_TAG), |_| true, &mut events);
        assert!(events.is_empty() && !client.sack_due);
        client.receive(src, PEER_PORT, &data(LOCAL_TAG), |_| true, &mut events);
        assert!(matches!(&events[..], [Event::Reply { token, .. }] if token.seq == 0));
        assert!(client.sack_due);
        assert_eq!(client.peer_cum_tsn, 5);
    }
}
