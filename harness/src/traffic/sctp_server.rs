//! The SCTP responder a pod runs (RFC 9260): stateless handshake with a state
//! cookie, DATA echoed back as DATA with a SACK, HEARTBEAT ACK, SHUTDOWN ACK,
//! and out-of-the-blue handling. Packets are `wire::sctp` representations.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::wire::sctp::{self, param_type, ChunkRepr, DataChunk, InitChunk, Param, SackChunk};
use crate::wire::ChecksumPolicy;

use super::raw::{strip_ip, A_RWND};
use super::sock::AsyncSock;
use crate::seed::{draw_u32, Seed};
use crate::vocab::SCTP_CLIENT_PORT_BASE;

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

#[derive(Default)]
struct SctpServer {
    /// The run's seed: the server's tag and TSN then follow from the INIT
    /// (itself drawn from the seed), so a seeded run answers alike.
    seed: Option<Seed>,
    associations: HashMap<(IpAddr, u16, u16), Association>,
}

impl SctpServer {
    /// Answer one packet; returns the bytes of the reply to send, if any.
    fn handle(&mut self, peer: IpAddr, packet: &sctp::Repr<'_>) -> Option<Vec<u8>> {
        if packet.dst_port >= SCTP_CLIENT_PORT_BASE {
            return None;
        }
        let key = (peer, packet.src_port, packet.dst_port);
        let reply = |verification_tag: u32, chunks: Vec<ChunkRepr<'_>>| {
            sctp::Repr {
                src_port: packet.dst_port,
                dst_port: packet.src_port,
                verification_tag,
                chunks,
            }
            .to_bytes()
            .ok()
        };
        match packet.chunks.first()? {
            ChunkRepr::Init(init) => {
                // Keyed by what identifies the association attempt.
                let keys = [
                    u64::from(init.initiate_tag),
                    u64::from(init.initial_tsn),
                    u64::from(packet.src_port),
                ];
                let local_tag = draw_u32(self.seed, "sctp server tag", &keys);
                let local_tsn = draw_u32(self.seed, "sctp server tsn", &keys);
                let state = cookie(local_tag, init.initiate_tag, local_tsn, init.initial_tsn);
                let init_ack = InitChunk {
                    initiate_tag: local_tag,
                    a_rwnd: A_RWND,
                    outbound_streams: 1,
                    inbound_streams: 1,
                    initial_tsn: local_tsn,
                    params: vec![Param {
                        kind: param_type::STATE_COOKIE,
                        value: &state,
                    }],
                };
                return reply(init.initiate_tag, vec![ChunkRepr::InitAck(init_ack)]);
            }
            ChunkRepr::CookieEcho { cookie } => {
                let (local_tag, peer_tag, local_tsn, peer_tsn) = parse_cookie(cookie)?;
                if packet.verification_tag != local_tag {
                    return None;
                }
                let assoc = self.associations.entry(key).or_insert(Association {
                    local_tag,
                    peer_tag,
                    next_tsn: local_tsn,
                    next_ssn: 0,
                    peer_cum_tsn: peer_tsn.wrapping_sub(1),
                });
                let mut chunks = vec![ChunkRepr::CookieAck];
                // DATA may be bundled after COOKIE ECHO.
                chunks.extend(echo_data(assoc, &packet.chunks[1..]));
                return reply(peer_tag, chunks);
            }
            ChunkRepr::Abort { reflected_tag, .. } => {
                if self
                    .associations
                    .get(&key)
                    .is_some_and(|a| a.local_tag == packet.verification_tag || *reflected_tag)
                {
                    self.associations.remove(&key);
                }
                return None;
            }
            ChunkRepr::ShutdownComplete { .. } => {
                self.associations.remove(&key);
                return None;
            }
            _ => {}
        }
        let Some(assoc) = self
            .associations
            .get_mut(&key)
            .filter(|a| a.local_tag == packet.verification_tag)
        else {
            // Out of the blue (RFC 9260 8.4): SHUTDOWN ACK gets SHUTDOWN COMPLETE,
            // stray INIT ACK / ERROR / COOKIE ACK are dropped, anything else ABORT,
            // both with the T bit and the packet's own tag reflected.
            return match packet.chunks.first()?.chunk_type() {
                sctp::ChunkType::ShutdownAck => reply(
                    packet.verification_tag,
                    vec![ChunkRepr::ShutdownComplete {
                        reflected_tag: true,
                    }],
                ),
                sctp::ChunkType::InitAck | sctp::ChunkType::CookieAck | sctp::ChunkType::Error => {
                    None
                }
                _ => reply(
                    packet.verification_tag,
                    vec![ChunkRepr::Abort {
                        reflected_tag: true,
                        causes: Vec::new(),
                    }],
                ),
            };
        };
        let peer_tag = assoc.peer_tag;
        let mut out = Vec::new();
        let mut shutdown = false;
        for chunk in &packet.chunks {
            match chunk {
                ChunkRepr::Heartbeat { info } => out.push(ChunkRepr::HeartbeatAck { info }),
                ChunkRepr::Shutdown { .. } => shutdown = true,
                _ => {}
            }
        }
        out.extend(echo_data(assoc, &packet.chunks));
        if shutdown {
            // Everything the peer sent was echoed above; no DATA of ours is
            // outstanding once it has SACKed, so go straight to SHUTDOWN ACK.
            out.push(ChunkRepr::ShutdownAck);
        }
        if out.is_empty() {
            return None;
        }
        reply(peer_tag, out)
    }
}

/// SACK every DATA chunk and send its payload straight back as our own DATA.
fn echo_data<'a>(assoc: &mut Association, chunks: &[ChunkRepr<'a>]) -> Vec<ChunkRepr<'a>> {
    let mut echoes = Vec::new();
    for chunk in chunks {
        let ChunkRepr::Data(data) = chunk else {
            continue;
        };
        if data.tsn.wrapping_sub(assoc.peer_cum_tsn) as i32 > 0 {
            assoc.peer_cum_tsn = data.tsn;
        }
        echoes.push(ChunkRepr::Data(DataChunk::whole_message(
            assoc.next_tsn,
            data.stream_id,
            assoc.next_ssn,
            data.ppid,
            data.user_data,
        )));
        assoc.next_tsn = assoc.next_tsn.wrapping_add(1);
        assoc.next_ssn = assoc.next_ssn.wrapping_add(1);
    }
    if !echoes.is_empty() {
        echoes.insert(
            0,
            ChunkRepr::Sack(SackChunk::cumulative(assoc.peer_cum_tsn, A_RWND)),
        );
    }
    echoes
}

pub(super) async fn serve_sctp(sock: AsyncSock, v6: bool, seed: Option<Seed>) {
    let mut server = SctpServer {
        seed,
        ..SctpServer::default()
    };
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
                let Ok(parsed) = sctp::Repr::parse_bytes(sctp, ChecksumPolicy::Verify) else {
                    return;
                };
                if let Some(reply) = server.handle(src, &parsed) {
                    replies.push((reply, src));
                }
            })
            .await;
        if read.is_err() {
            return;
        }
        for (reply, to) in replies {
            let _ = sock.send_to(&reply, SocketAddr::new(to, 0)).await;
        }
        // The pod's capture's turn (see `responder::serve_gre`).
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ECHO_PORT;

    const PEER_PORT: u16 = 40000;

    fn packet<'a>(verification_tag: u32, chunks: Vec<ChunkRepr<'a>>) -> sctp::Repr<'a> {
        sctp::Repr {
            src_port: PEER_PORT,
            dst_port: ECHO_PORT,
            verification_tag,
            chunks,
        }
    }

    fn parse(bytes: &[u8]) -> sctp::Repr<'_> {
        sctp::Repr::parse_bytes(bytes, ChecksumPolicy::Verify).unwrap()
    }

    #[test]
    fn four_way_handshake_then_echo_heartbeat_and_shutdown() {
        let peer: IpAddr = "198.18.1.10".parse().unwrap();
        let mut server = SctpServer::default();
        let init = InitChunk {
            initiate_tag: 0xabc,
            a_rwnd: 65535,
            outbound_streams: 1,
            inbound_streams: 1,
            initial_tsn: 100,
            params: Vec::new(),
        };
        let bytes = server
            .handle(peer, &packet(0, vec![ChunkRepr::Init(init)]))
            .unwrap();
        let init_ack = parse(&bytes);
        assert_eq!(init_ack.verification_tag, 0xabc);
        assert_eq!(
            (init_ack.src_port, init_ack.dst_port),
            (ECHO_PORT, PEER_PORT)
        );
        let [ChunkRepr::InitAck(fields)] = &init_ack.chunks[..] else {
            panic!("expected INIT ACK, got {:?}", init_ack.chunks)
        };
        let cookie = fields.state_cookie().unwrap();
        let echo = packet(fields.initiate_tag, vec![ChunkRepr::CookieEcho { cookie }]);
        let bytes = server.handle(peer, &echo).unwrap();
        assert_eq!(parse(&bytes).chunks, vec![ChunkRepr::CookieAck]);
        let data = packet(
            fields.initiate_tag,
            vec![
                ChunkRepr::Data(DataChunk::whole_message(100, 0, 0, 0, b"token")),
                ChunkRepr::Heartbeat { info: b"hb" },
            ],
        );
        let bytes = server.handle(peer, &data).unwrap();
        let answer = parse(&bytes);
        let [ChunkRepr::HeartbeatAck { info }, ChunkRepr::Sack(sack), ChunkRepr::Data(echoed)] =
            &answer.chunks[..]
        else {
            panic!(
                "expected HEARTBEAT ACK, SACK, DATA, got {:?}",
                answer.chunks
            )
        };
        assert_eq!(*info, b"hb");
        assert_eq!(sack.cum_tsn_ack, 100);
        assert_eq!(
            (echoed.tsn, echoed.user_data),
            (fields.initial_tsn, &b"token"[..])
        );
        let shutdown = packet(
            fields.initiate_tag,
            vec![ChunkRepr::Shutdown {
                cum_tsn_ack: fields.initial_tsn,
            }],
        );
        let bytes = server.handle(peer, &shutdown).unwrap();
        assert_eq!(parse(&bytes).chunks, vec![ChunkRepr::ShutdownAck]);
    }

    /// Out of the blue (RFC 9260 8.4): the answer reflects the stray packet's
    /// own tag with the T bit set, or there is none.
    #[rstest::rstest]
    #[case::data_gets_abort(
        ChunkRepr::Data(DataChunk::whole_message(1, 0, 0, 0, b"x")),
        Some(ChunkRepr::Abort { reflected_tag: true, causes: Vec::new() })
    )]
    #[case::shutdown_ack_gets_shutdown_complete(
        ChunkRepr::ShutdownAck,
        Some(ChunkRepr::ShutdownComplete { reflected_tag: true })
    )]
    #[case::cookie_ack_is_dropped(ChunkRepr::CookieAck, None)]
    fn out_of_the_blue(
        #[case] stray: ChunkRepr<'static>,
        #[case] answer: Option<ChunkRepr<'static>>,
    ) {
        let mut server = SctpServer::default();
        let got = server.handle("198.18.1.10".parse().unwrap(), &packet(0x1234, vec![stray]));
        let got = got.as_deref().map(parse);
        assert_eq!(
            got.as_ref().map(|r| r.verification_tag),
            answer.as_ref().map(|_| 0x1234)
        );
        assert_eq!(got.map(|r| r.chunks), answer.map(|c| vec![c]));
    }
}
