//! The packets the SCTP and GRE codecs must emit cleanly: SCTP chunks of every
//! kind this harness writes (handshake, data, SACK, heartbeat, abort, shutdown,
//! errors) and GRE with and without its optional fields.

use super::*;
/// An SCTP packet the codec emits, with what tshark should report for it.
pub(crate) struct SctpCase {
    pub(crate) direction: Direction,
    pub(crate) repr: sctp::Repr<'static>,
}

pub(crate) const CLIENT_PORT: u16 = 40_001;
pub(crate) const ECHO_PORT: u16 = 7;
pub(crate) const CLIENT_TAG: u32 = 0x1a2b_3c4d;
pub(crate) const POD_TAG: u32 = 0x5e6f_7081;

pub(crate) fn sctp_case(
    direction: Direction,
    verification_tag: u32,
    chunks: Vec<ChunkRepr<'static>>,
) -> SctpCase {
    let (src_port, dst_port) = match direction {
        Direction::ToPod => (CLIENT_PORT, ECHO_PORT),
        Direction::FromPod => (ECHO_PORT, CLIENT_PORT),
    };
    SctpCase {
        direction,
        repr: sctp::Repr {
            src_port,
            dst_port,
            verification_tag,
            chunks,
        },
    }
}

pub(crate) const COOKIE: &[u8] = b"fiph state cookie: tag, tsn, hmac (odd length)";

pub(crate) fn data(tsn: u32, stream_seq: u16, user_data: &'static [u8]) -> ChunkRepr<'static> {
    ChunkRepr::Data(DataChunk {
        unordered: false,
        beginning: true,
        ending: true,
        tsn,
        stream_id: 0,
        stream_seq,
        ppid: 0,
        user_data,
    })
}

/// A whole association as the harness runs it (handshake, echoed DATA,
/// heartbeat, shutdown) plus the ABORTs the responder sends.
pub(crate) fn sctp_cases() -> Vec<SctpCase> {
    [
        handshake(),
        data_exchange(),
        heartbeat_and_shutdown(),
        aborts(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The four-way handshake: INIT, INIT ACK, COOKIE ECHO, COOKIE ACK.
fn handshake() -> Vec<SctpCase> {
    use Direction::{FromPod, ToPod};
    vec![
        sctp_case(
            ToPod,
            0,
            vec![ChunkRepr::Init(InitChunk {
                initiate_tag: CLIENT_TAG,
                a_rwnd: 106_496,
                outbound_streams: 10,
                inbound_streams: 10,
                initial_tsn: 1000,
                params: vec![
                    Param {
                        kind: param_type::IPV4_ADDRESS,
                        value: &[198, 18, 1, 10],
                    },
                    Param {
                        kind: param_type::SUPPORTED_ADDRESS_TYPES,
                        value: &[0x00, 0x05],
                    },
                ],
            })],
        ),
        sctp_case(
            FromPod,
            CLIENT_TAG,
            vec![ChunkRepr::InitAck(InitChunk {
                initiate_tag: POD_TAG,
                a_rwnd: 106_496,
                outbound_streams: 10,
                inbound_streams: 10,
                initial_tsn: 5000,
                params: vec![Param {
                    kind: param_type::STATE_COOKIE,
                    value: COOKIE,
                }],
            })],
        ),
        sctp_case(
            ToPod,
            POD_TAG,
            vec![ChunkRepr::CookieEcho { cookie: COOKIE }],
        ),
        sctp_case(FromPod, CLIENT_TAG, vec![ChunkRepr::CookieAck]),
    ]
}

/// DATA both ways, with SACKs (one bundled with DATA, one with gap blocks
/// and duplicates).
fn data_exchange() -> Vec<SctpCase> {
    use Direction::{FromPod, ToPod};
    vec![
        sctp_case(
            ToPod,
            POD_TAG,
            vec![data(1000, 0, b"fiph lab=a step=1 seq=1")],
        ),
        sctp_case(
            FromPod,
            CLIENT_TAG,
            vec![
                ChunkRepr::Sack(SackChunk {
                    cum_tsn_ack: 1000,
                    a_rwnd: 106_496,
                    gap_blocks: vec![],
                    duplicate_tsns: vec![],
                }),
                data(5000, 0, b"fiph lab=a step=1 seq=1"),
            ],
        ),
        sctp_case(
            ToPod,
            POD_TAG,
            vec![
                ChunkRepr::Sack(SackChunk {
                    cum_tsn_ack: 5000,
                    a_rwnd: 106_496,
                    gap_blocks: vec![],
                    duplicate_tsns: vec![],
                }),
                data(1001, 1, b"odd"),
            ],
        ),
        sctp_case(
            FromPod,
            CLIENT_TAG,
            vec![ChunkRepr::Sack(SackChunk {
                cum_tsn_ack: 1001,
                a_rwnd: 106_000,
                gap_blocks: vec![GapAckBlock { start: 2, end: 3 }],
                duplicate_tsns: vec![1000],
            })],
        ),
    ]
}

/// A heartbeat and its answer, then the three-way shutdown.
fn heartbeat_and_shutdown() -> Vec<SctpCase> {
    use Direction::{FromPod, ToPod};
    vec![
        sctp_case(
            ToPod,
            POD_TAG,
            vec![ChunkRepr::Heartbeat {
                info: b"hb 12345678 (13)",
            }],
        ),
        sctp_case(
            FromPod,
            CLIENT_TAG,
            vec![ChunkRepr::HeartbeatAck {
                info: b"hb 12345678 (13)",
            }],
        ),
        sctp_case(
            ToPod,
            POD_TAG,
            vec![ChunkRepr::Shutdown { cum_tsn_ack: 5000 }],
        ),
        sctp_case(FromPod, CLIENT_TAG, vec![ChunkRepr::ShutdownAck]),
        sctp_case(
            ToPod,
            POD_TAG,
            vec![ChunkRepr::ShutdownComplete {
                reflected_tag: false,
            }],
        ),
    ]
}

/// ABORTs with and without the T bit and error causes, and a reflected
/// SHUTDOWN COMPLETE.
fn aborts() -> Vec<SctpCase> {
    use Direction::{FromPod, ToPod};
    vec![
        // DATA for an association the pod does not know: ABORT with the T bit.
        sctp_case(
            FromPod,
            0x0bad_7a90,
            vec![ChunkRepr::Abort {
                reflected_tag: true,
                causes: vec![],
            }],
        ),
        sctp_case(
            FromPod,
            CLIENT_TAG,
            vec![ChunkRepr::Abort {
                reflected_tag: false,
                causes: vec![
                    ErrorCause {
                        kind: cause_code::USER_INITIATED_ABORT,
                        value: b"step over",
                    },
                    ErrorCause {
                        kind: cause_code::PROTOCOL_VIOLATION,
                        value: b"x",
                    },
                ],
            }],
        ),
        sctp_case(
            ToPod,
            0x0bad_7a90,
            vec![ChunkRepr::ShutdownComplete {
                reflected_tag: true,
            }],
        ),
    ]
}

pub(crate) struct GreCase {
    pub(crate) direction: Direction,
    pub(crate) repr: gre::Repr,
    pub(crate) payload: &'static [u8],
}

pub(crate) fn gre_cases() -> Vec<GreCase> {
    let mut cases = Vec::new();
    let payloads: [&'static [u8]; 2] =
        [b"fiph lab=a step=2 seq=9 (even)", b"fiph odd-length token"];
    for (i, checksum) in [false, true].into_iter().enumerate() {
        for key in [None, Some(0x0000_beef)] {
            for sequence in [None, Some(42)] {
                for (direction, payload) in [
                    (Direction::ToPod, payloads[i]),
                    (Direction::FromPod, payloads[1 - i]),
                ] {
                    cases.push(GreCase {
                        direction,
                        repr: gre::Repr {
                            checksum,
                            key,
                            sequence,
                            protocol: gre::PROTOCOL_HARNESS_ECHO,
                        },
                        payload,
                    });
                }
            }
        }
    }
    cases
}
