//! SCTP codec tests. The golden packets are real captures, as transcribed in
//! public test suites; each constant says where it came from. Every CRC32c
//! below was recomputed when the golden was taken in, which is how the
//! little-endian storage of the CRC was confirmed.

use super::*;

/// INIT, first packet of `sctp-www.cap` (Wireshark wiki SampleCaptures: an HTTP
/// GET over SCTP, port 32836 -> 80), as transcribed in kbandla/dpkt
/// `dpkt/sctp.py` (`__s`, used by `test_sctp_pack`).
const WWW_INIT: [u8; 72] = [
    0x80, 0x44, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x30, 0xba, 0xef, 0x54, 0x01, 0x00, 0x00, 0x3c,
    0x3b, 0xb9, 0x9c, 0x46, 0x00, 0x01, 0xa0, 0x00, 0x00, 0x0a, 0xff, 0xff, 0x2b, 0x2d, 0x7e, 0xb2,
    0x00, 0x05, 0x00, 0x08, 0x9b, 0xe6, 0x18, 0x9b, 0x00, 0x05, 0x00, 0x08, 0x9b, 0xe6, 0x18, 0x9c,
    0x00, 0x0c, 0x00, 0x06, 0x00, 0x05, 0x00, 0x00, 0x80, 0x00, 0x00, 0x04, 0xc0, 0x00, 0x00, 0x04,
    0xc0, 0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
];

/// COOKIE ECHO of the same `sctp-www.cap` association (tag 0xd26ac1e5), as
/// transcribed in quentinlampin/microschc `tests/protocol/test_sctp.py`
/// (`test_sctp_parser_parse_cookie_echo`). That transcription carries four
/// extra zero bytes after the chunk; the CRC32c covers exactly these 208.
const WWW_COOKIE_ECHO: [u8; 208] = [
    0x80, 0x44, 0x00, 0x50, 0xd2, 0x6a, 0xc1, 0xe5, 0x75, 0x14, 0xa4, 0x9a, 0x0a, 0x00, 0x00, 0xc4,
    0xb3, 0x49, 0x30, 0x15, 0xe1, 0xc2, 0x76, 0x25, 0xf5, 0x3a, 0xb8, 0x18, 0x55, 0x55, 0xb8, 0xdb,
    0x7a, 0x0f, 0x43, 0xdd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xe5, 0xc1, 0x6a, 0xd2, 0x46, 0x9c, 0xb9, 0x3b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xf4, 0xc5, 0xc5, 0x43, 0x95, 0x2b, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x16, 0x2a, 0x00, 0x64,
    0x02, 0x00, 0x44, 0x80, 0x9b, 0xe6, 0x18, 0x9b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x3c, 0x3b, 0xb9, 0x9c, 0x46,
    0x00, 0x01, 0xa0, 0x00, 0x00, 0x0a, 0xff, 0xff, 0x2b, 0x2d, 0x7e, 0xb2, 0x00, 0x05, 0x00, 0x08,
    0x9b, 0xe6, 0x18, 0x9b, 0x00, 0x05, 0x00, 0x08, 0x9b, 0xe6, 0x18, 0x9c, 0x00, 0x0c, 0x00, 0x06,
    0x00, 0x05, 0x00, 0x00, 0x80, 0x00, 0x00, 0x04, 0xc0, 0x00, 0x00, 0x04, 0xc0, 0x06, 0x00, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// COOKIE ACK answering it (80 -> 32836, tag 0x3bb99c46), same source as
/// [`WWW_COOKIE_ECHO`] (`test_sctp_parser_parse_cookie_ack`).
const WWW_COOKIE_ACK: [u8; 16] = [
    0x00, 0x50, 0x80, 0x44, 0x3b, 0xb9, 0x9c, 0x46, 0x81, 0xce, 0xde, 0x0b, 0x0b, 0x00, 0x00, 0x04,
];

/// Common header and DATA chunk header of packet 5 of `sctp-www.cap`, as
/// transcribed in kbandla/dpkt `dpkt/sctp.py` (`test_sctp_data_chunk`, dpkt issue
/// 499). The chunk length is 419, so one byte of padding follows the user data.
const WWW_DATA_HEADERS: [u8; 28] = [
    0x80, 0x44, 0x00, 0x50, 0xd2, 0x6a, 0xc1, 0xe5, 0x70, 0xe5, 0x5b, 0x4c, 0x00, 0x03, 0x01, 0xa3,
    0x2b, 0x2d, 0x7e, 0xb2, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
/// The user data of that DATA chunk, byte for byte (it is ASCII).
const WWW_DATA_USER_DATA: &[u8] = concat!(
    "GET / HTTP/1.1\r\n",
    "Host: 203.255.252.194\r\n",
    "User-Agent: Mozilla/5.0 (X11; U; Linux i686; ko-KR; rv:1.7.12) Gecko/20051007 Debian/1.7.12-1\r\n",
    "Accept: text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,image/png,*/*;q=0.5\r\n",
    "Accept-Language: ko,en-us;q=0.7,en;q=0.3\r\n",
    "Accept-Encoding: gzip,deflate\r\n",
    "Accept-Charset: EUC-KR,utf-8;q=0.7,*;q=0.7\r\n",
    "Keep-Alive: 300\r\n",
    "Connection: keep-alive\r\n",
    "\r\n"
)
.as_bytes();

fn www_data_packet() -> Vec<u8> {
    let mut bytes = WWW_DATA_HEADERS.to_vec();
    bytes.extend_from_slice(WWW_DATA_USER_DATA);
    bytes.push(0); // padding to 4 bytes, as captured
    bytes
}

/// An echo (port 7) association's INIT, from quentinlampin/microschc
/// `tests/protocol/test_sctp.py` (`test_sctp_parser_parse_init`). Its sender
/// counted the last parameter's padding in the chunk length (32, not 30), which
/// RFC 4960 allowed and RFC 9260 no longer does.
const ECHO_INIT: [u8; 44] = [
    0x00, 0x07, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x37, 0x61, 0xa7, 0x46, 0x01, 0x00, 0x00, 0x20,
    0x43, 0x23, 0x25, 0x44, 0x00, 0x00, 0xff, 0xff, 0x00, 0x11, 0x00, 0x11, 0x5c, 0xfe, 0x37, 0x9f,
    0xc0, 0x00, 0x00, 0x04, 0x00, 0x0c, 0x00, 0x06, 0x00, 0x05, 0x00, 0x00,
];

/// The INIT ACK answering [`ECHO_INIT`], with a 100-byte State Cookie; same
/// source (`test_sctp_parser_parse_init_ack`).
const ECHO_INIT_ACK: [u8; 140] = [
    0x00, 0x07, 0x00, 0x07, 0x43, 0x23, 0x25, 0x44, 0xc9, 0x01, 0x85, 0x24, 0x02, 0x00, 0x00, 0x80,
    0x00, 0x00, 0x0e, 0xb0, 0x00, 0x00, 0x10, 0x00, 0x00, 0x11, 0x00, 0x11, 0x00, 0x00, 0x36, 0x14,
    0x00, 0x07, 0x00, 0x68, 0x00, 0x00, 0x0e, 0xb0, 0x00, 0x00, 0x10, 0x00, 0x00, 0x11, 0x00, 0x11,
    0x00, 0x00, 0x36, 0x14, 0x43, 0x23, 0x25, 0x44, 0x00, 0x00, 0xff, 0xff, 0x00, 0x11, 0x00, 0x11,
    0x5c, 0xfe, 0x37, 0x9f, 0x07, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xa2, 0x85, 0xb1, 0x3f, 0x10, 0x27, 0x00, 0x00, 0x17, 0xcd, 0x8f, 0x1c, 0x11, 0x76, 0x9b, 0x04,
    0x55, 0xc0, 0xd0, 0xf2, 0x2c, 0x3e, 0x7c, 0x35, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x08, 0xc0, 0xa8, 0xaa, 0x38, 0x00, 0x05, 0x00, 0x08,
    0xc0, 0xa8, 0xaa, 0x08, 0xc0, 0x00, 0x00, 0x04, 0xc0, 0x00, 0x00, 0x04,
];

/// A SACK of the same echo association; same source (`test_sctp_parser_selective_ack`).
const ECHO_SACK: [u8; 28] = [
    0x00, 0x07, 0x00, 0x07, 0x00, 0x00, 0x0e, 0xb0, 0xba, 0x04, 0x32, 0x58, 0x03, 0x00, 0x00, 0x10,
    0x00, 0x00, 0x36, 0x1c, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
];

/// SHUTDOWN, SHUTDOWN ACK and SHUTDOWN COMPLETE of an HTTP-over-SCTP association
/// (32837 <-> 80); same source (`test_sctp_parser_parse_shutdown`, `_ack`, `_complete`).
const HTTP_SHUTDOWN: [u8; 20] = [
    0x80, 0x45, 0x00, 0x50, 0x13, 0x89, 0x60, 0x07, 0x75, 0x58, 0xd7, 0xdb, 0x07, 0x00, 0x00, 0x08,
    0xaa, 0x86, 0x96, 0x09,
];
const HTTP_SHUTDOWN_ACK: [u8; 16] = [
    0x00, 0x50, 0x80, 0x45, 0xe9, 0xb7, 0x3b, 0xc3, 0xc7, 0x4e, 0x59, 0xcd, 0x08, 0x00, 0x00, 0x04,
];
const HTTP_SHUTDOWN_COMPLETE: [u8; 16] = [
    0x80, 0x45, 0x00, 0x50, 0x13, 0x89, 0x60, 0x07, 0xae, 0x51, 0x7e, 0x10, 0x0e, 0x00, 0x00, 0x04,
];

/// HEARTBEAT and HEARTBEAT ACK of an M3UA association (port 2905); same source
/// (`test_sctp_parser_parse_heartbeat`, `_heartbeat_ack`). Their checksum field
/// holds an Adler-32 (RFC 2960's original checksum, replaced by CRC32c in RFC
/// 3309): real legacy packets that a CRC32c check must refuse.
const M3UA_HEARTBEAT: [u8; 36] = [
    0x0b, 0x59, 0x0b, 0x59, 0x00, 0x00, 0x0e, 0x50, 0x53, 0xc3, 0x05, 0x5f, 0x04, 0x00, 0x00, 0x18,
    0x00, 0x01, 0x00, 0x14, 0x40, 0xe4, 0x4b, 0x92, 0x0a, 0x1c, 0x06, 0x2c, 0x1b, 0x66, 0xaf, 0x7e,
    0x00, 0x00, 0x00, 0x00,
];
const M3UA_HEARTBEAT_ACK: [u8; 36] = [
    0x0b, 0x59, 0x0b, 0x59, 0x0d, 0x53, 0xe6, 0xfe, 0x8c, 0x8e, 0x07, 0x46, 0x05, 0x00, 0x00, 0x18,
    0x00, 0x01, 0x00, 0x14, 0x40, 0xe4, 0x4b, 0x92, 0x0a, 0x1c, 0x06, 0x2c, 0x1b, 0x66, 0xaf, 0x7e,
    0x00, 0x00, 0x00, 0x00,
];

/// Packet 7964 of `4.pcap` of the UNSW-NB15 data set, as transcribed in
/// kbandla/dpkt `dpkt/sctp.py` (`test_malformed_sctp_data_chunk`): a COOKIE ACK
/// followed by a DATA chunk whose length field is 0.
const UNSW_MALFORMED: [u8; 26] = [
    0x27, 0x0f, 0xe1, 0xc3, 0xc2, 0x73, 0x4d, 0x32, 0x4f, 0x54, 0x27, 0x8c, 0x0b, 0x00, 0x00, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

fn parse(bytes: &[u8]) -> Repr<'_> {
    Repr::parse_bytes(bytes, ChecksumPolicy::Verify).unwrap()
}

#[test]
fn captured_init_parses_and_reemits_byte_for_byte() {
    let packet = Packet::new_checked(&WWW_INIT[..]).unwrap();
    assert!(packet.verify_checksum());
    assert_eq!(
        packet.checksum(),
        0x54ef_ba30,
        "CRC32c is stored little-endian"
    );
    let repr = parse(&WWW_INIT);
    assert_eq!(
        (repr.src_port, repr.dst_port, repr.verification_tag),
        (32836, 80, 0)
    );
    let [ChunkRepr::Init(init)] = &repr.chunks[..] else {
        panic!("expected one INIT chunk, got {:?}", repr.chunks)
    };
    assert_eq!(init.initiate_tag, 0x3bb9_9c46);
    assert_eq!(init.a_rwnd, 0x0001_a000);
    assert_eq!((init.outbound_streams, init.inbound_streams), (10, 0xffff));
    assert_eq!(init.initial_tsn, 0x2b2d_7eb2);
    let kinds: Vec<u16> = init.params.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            param_type::IPV4_ADDRESS,
            param_type::IPV4_ADDRESS,
            param_type::SUPPORTED_ADDRESS_TYPES,
            param_type::ECN_CAPABLE,
            param_type::FORWARD_TSN_SUPPORTED,
            0xc006
        ]
    );
    assert_eq!(init.params[0].value, [155, 230, 24, 155]);
    assert_eq!(init.state_cookie(), None);
    assert_eq!(repr.to_bytes().unwrap(), WWW_INIT);
}

#[test]
fn captured_cookie_echo_and_ack_reemit_byte_for_byte() {
    let echo = parse(&WWW_COOKIE_ECHO);
    let [ChunkRepr::CookieEcho { cookie }] = &echo.chunks[..] else {
        panic!("expected one COOKIE ECHO, got {:?}", echo.chunks)
    };
    assert_eq!(cookie.len(), 0xc4 - 4);
    assert_eq!(echo.to_bytes().unwrap(), WWW_COOKIE_ECHO);

    let ack = parse(&WWW_COOKIE_ACK);
    assert_eq!(ack.chunks, [ChunkRepr::CookieAck]);
    assert_eq!(ack.verification_tag, 0x3bb9_9c46, "the INIT's initiate tag");
    assert_eq!(ack.to_bytes().unwrap(), WWW_COOKIE_ACK);
}

#[test]
fn captured_data_chunk_with_padding_reemits_byte_for_byte() {
    let bytes = www_data_packet();
    assert_eq!(bytes.len(), 432);
    let repr = parse(&bytes);
    let [ChunkRepr::Data(data)] = &repr.chunks[..] else {
        panic!("expected one DATA chunk, got {:?}", repr.chunks)
    };
    assert_eq!(
        *data,
        DataChunk {
            unordered: false,
            beginning: true,
            ending: true,
            tsn: 0x2b2d_7eb2,
            stream_id: 0,
            stream_seq: 0,
            ppid: 0,
            user_data: WWW_DATA_USER_DATA,
        }
    );
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    let chunk = packet.chunks().next().unwrap().unwrap();
    assert_eq!(chunk.length(), 419);
    assert_eq!(repr.to_bytes().unwrap(), bytes);
}

#[test]
fn captured_init_ack_carries_its_state_cookie() {
    let repr = parse(&ECHO_INIT_ACK);
    let [ChunkRepr::InitAck(init_ack)] = &repr.chunks[..] else {
        panic!("expected one INIT ACK, got {:?}", repr.chunks)
    };
    assert_eq!(
        repr.verification_tag, 0x4323_2544,
        "the INIT's initiate tag"
    );
    assert_eq!(init_ack.initiate_tag, 0x0eb0);
    assert_eq!(init_ack.state_cookie().map(<[u8]>::len), Some(0x68 - 4));
    assert_eq!(repr.to_bytes().unwrap(), ECHO_INIT_ACK);
}

#[test]
fn captured_init_with_padded_length_parses_and_reemits_per_rfc_9260() {
    let repr = parse(&ECHO_INIT);
    let [ChunkRepr::Init(init)] = &repr.chunks[..] else {
        panic!("expected one INIT, got {:?}", repr.chunks)
    };
    assert_eq!(init.params.len(), 2);
    assert_eq!(init.params[1].value, [0x00, 0x05]);
    let emitted = repr.to_bytes().unwrap();
    // Same bytes, except that the chunk length leaves the last padding out.
    assert_eq!(emitted.len(), ECHO_INIT.len());
    assert_eq!(&emitted[14..16], &[0x00, 0x1e]);
    assert_eq!(&emitted[16..], &ECHO_INIT[16..]);
    assert_eq!(parse(&emitted), repr);
}

#[test]
fn captured_sack_and_shutdown_sequence_reemit_byte_for_byte() {
    let sack = parse(&ECHO_SACK);
    assert_eq!(
        sack.chunks,
        [ChunkRepr::Sack(SackChunk {
            cum_tsn_ack: 0x361c,
            a_rwnd: 0xffff,
            gap_blocks: vec![],
            duplicate_tsns: vec![],
        })]
    );
    assert_eq!(sack.to_bytes().unwrap(), ECHO_SACK);

    let shutdown = parse(&HTTP_SHUTDOWN);
    assert_eq!(
        shutdown.chunks,
        [ChunkRepr::Shutdown {
            cum_tsn_ack: 0xaa86_9609
        }]
    );
    assert_eq!(shutdown.to_bytes().unwrap(), HTTP_SHUTDOWN);

    let shutdown_ack = parse(&HTTP_SHUTDOWN_ACK);
    assert_eq!(shutdown_ack.chunks, [ChunkRepr::ShutdownAck]);
    assert_eq!(shutdown_ack.to_bytes().unwrap(), HTTP_SHUTDOWN_ACK);

    let complete = parse(&HTTP_SHUTDOWN_COMPLETE);
    assert_eq!(
        complete.chunks,
        [ChunkRepr::ShutdownComplete {
            reflected_tag: false
        }]
    );
    assert_eq!(complete.to_bytes().unwrap(), HTTP_SHUTDOWN_COMPLETE);
}

#[test]
fn legacy_adler32_heartbeats_fail_crc32c_but_parse_when_ignored() {
    for (bytes, is_ack) in [(&M3UA_HEARTBEAT, false), (&M3UA_HEARTBEAT_ACK, true)] {
        let err = Repr::parse_bytes(bytes, ChecksumPolicy::Verify).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadChecksum {
                    protocol: "SCTP",
                    ..
                }
            ),
            "{err}"
        );
        let repr = Repr::parse_bytes(bytes, ChecksumPolicy::Ignore).unwrap();
        let info: &[u8] = &bytes[20..36];
        let expected = if is_ack {
            ChunkRepr::HeartbeatAck { info }
        } else {
            ChunkRepr::Heartbeat { info }
        };
        assert_eq!(repr.chunks, [expected]);
        // Re-emitted, the same chunk gets a CRC32c instead.
        let emitted = repr.to_bytes().unwrap();
        assert_eq!(&emitted[12..], &bytes[12..]);
        assert!(Packet::new_checked(&emitted[..]).unwrap().verify_checksum());
    }
}

#[test]
fn captured_zero_length_chunk_is_an_error_not_a_panic() {
    let packet = Packet::new_checked(&UNSW_MALFORMED[..]).unwrap();
    let chunks: Vec<_> = packet.chunks().collect();
    assert_eq!(chunks.len(), 2, "the COOKIE ACK, then one error");
    assert_eq!(
        chunks[0].as_ref().unwrap().chunk_type(),
        ChunkType::CookieAck
    );
    assert!(chunks[1].is_err());
    let err = Repr::parse(&packet, ChecksumPolicy::Ignore).unwrap_err();
    assert!(
        err.to_string().contains("less than its own 4-byte header"),
        "{err}"
    );
}

/// One of each chunk the harness sends, with every optional part used.
fn every_chunk() -> Vec<ChunkRepr<'static>> {
    vec![
        ChunkRepr::Init(InitChunk {
            initiate_tag: 0x1234_5678,
            a_rwnd: 65_536,
            outbound_streams: 4,
            inbound_streams: 4,
            initial_tsn: 100,
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
        }),
        ChunkRepr::InitAck(InitChunk {
            initiate_tag: 0x9abc_def0,
            a_rwnd: 65_536,
            outbound_streams: 4,
            inbound_streams: 4,
            initial_tsn: 7,
            params: vec![Param {
                kind: param_type::STATE_COOKIE,
                value: b"cookie-with-odd-len",
            }],
        }),
        ChunkRepr::CookieEcho {
            cookie: b"cookie-with-odd-len",
        },
        ChunkRepr::CookieAck,
        ChunkRepr::Data(DataChunk {
            unordered: true,
            beginning: true,
            ending: false,
            tsn: 100,
            stream_id: 2,
            stream_seq: 9,
            ppid: 0xfeed_0001,
            user_data: b"fiph tok",
        }),
        ChunkRepr::Data(DataChunk {
            unordered: false,
            beginning: false,
            ending: true,
            tsn: 101,
            stream_id: 2,
            stream_seq: 9,
            ppid: 0,
            user_data: b"odd",
        }),
        ChunkRepr::Sack(SackChunk {
            cum_tsn_ack: 99,
            a_rwnd: 1000,
            gap_blocks: vec![
                GapAckBlock { start: 2, end: 3 },
                GapAckBlock { start: 5, end: 5 },
            ],
            duplicate_tsns: vec![97, 98],
        }),
        ChunkRepr::Heartbeat {
            info: b"hb info 13 by",
        },
        ChunkRepr::HeartbeatAck {
            info: b"hb info 13 by",
        },
        ChunkRepr::Abort {
            reflected_tag: true,
            causes: vec![],
        },
        ChunkRepr::Abort {
            reflected_tag: false,
            causes: vec![
                ErrorCause {
                    kind: cause_code::NO_USER_DATA,
                    value: &[0, 0, 0, 5],
                },
                ErrorCause {
                    kind: cause_code::USER_INITIATED_ABORT,
                    value: b"bye",
                },
            ],
        },
        ChunkRepr::Shutdown { cum_tsn_ack: 101 },
        ChunkRepr::ShutdownAck,
        ChunkRepr::ShutdownComplete {
            reflected_tag: true,
        },
        ChunkRepr::ShutdownComplete {
            reflected_tag: false,
        },
        ChunkRepr::Other {
            chunk_type: 9,
            flags: 0,
            value: &[0, 1, 0, 8, 0, 3, 0, 0],
        },
    ]
}

#[test]
fn every_chunk_round_trips_alone_and_bundled() {
    for chunk in every_chunk() {
        let repr = Repr {
            src_port: 5000,
            dst_port: 7,
            verification_tag: 0xa1b2_c3d4,
            chunks: vec![chunk.clone()],
        };
        let bytes = repr.to_bytes().unwrap();
        assert_eq!(bytes.len() % 4, 0, "{chunk:?} is padded");
        assert_eq!(parse(&bytes), repr, "{chunk:?}");
    }
    let bundled = Repr {
        src_port: 1,
        dst_port: 2,
        verification_tag: 3,
        chunks: every_chunk(),
    };
    assert_eq!(parse(&bundled.to_bytes().unwrap()), bundled);
}

#[test]
fn chunk_wire_layouts_follow_rfc_9260() {
    let emit = |chunk: ChunkRepr<'static>| {
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            verification_tag: 3,
            chunks: vec![chunk],
        };
        repr.to_bytes().unwrap()[HEADER_LEN..].to_vec()
    };
    let chunks = every_chunk();
    // DATA with U and B: flags 0x06, length 16 + 8.
    assert_eq!(&emit(chunks[4].clone())[..4], &[0, 0x06, 0, 24]);
    // DATA of 3 bytes: length 19, one byte of zero padding.
    let odd = emit(chunks[5].clone());
    assert_eq!(
        (&odd[..4], odd.len(), odd[19]),
        (&[0, 0x01, 0, 19][..], 20, 0)
    );
    // SACK: 2 gap blocks, 2 duplicates, length 12 + 16 + 4.
    assert_eq!(
        emit(chunks[6].clone()),
        [
            3, 0, 0, 32, 0, 0, 0, 99, 0, 0, 3, 232, 0, 2, 0, 2, 0, 2, 0, 3, 0, 5, 0, 5, 0, 0, 0,
            97, 0, 0, 0, 98
        ]
    );
    // HEARTBEAT: Heartbeat Info parameter of 4 + 13 bytes, chunk length 21.
    assert_eq!(&emit(chunks[7].clone())[..8], &[4, 0, 0, 21, 0, 1, 0, 17]);
    // ABORT with T bit and no cause.
    assert_eq!(emit(chunks[9].clone()), [6, 1, 0, 4]);
    // ABORT with two causes: the first padded (already aligned), the last not
    // counted in the chunk length but padded in the packet.
    assert_eq!(
        emit(chunks[10].clone()),
        [6, 0, 0, 19, 0, 9, 0, 8, 0, 0, 0, 5, 0, 12, 0, 7, b'b', b'y', b'e', 0]
    );
    // SHUTDOWN COMPLETE with T bit.
    assert_eq!(emit(chunks[13].clone()), [14, 1, 0, 4]);
}

#[test]
fn checksum_covers_every_byte_and_can_be_skipped() {
    let good = parse(&WWW_INIT).to_bytes().unwrap();
    for at in [0, 4, 8, 11, 12, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert!(
            !Packet::new_checked(&bad[..]).unwrap().verify_checksum(),
            "flip at {at}"
        );
        if !(8..12).contains(&at) && at != 12 {
            assert!(
                Repr::parse_bytes(&bad, ChecksumPolicy::Ignore).is_ok(),
                "flip at {at}"
            );
        }
    }
    let mut bad = good.clone();
    bad[20] ^= 0xff;
    match Repr::parse_bytes(&bad, ChecksumPolicy::Verify) {
        Err(Error::BadChecksum {
            stored, computed, ..
        }) => {
            assert_eq!(stored, 0x54ef_ba30);
            assert_ne!(computed, stored);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[test]
fn setters_and_fill_checksum_produce_a_valid_packet() {
    let mut bytes = WWW_COOKIE_ACK;
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    packet.set_src_port(7);
    packet.set_dst_port(40000);
    packet.set_verification_tag(0xdead_beef);
    assert!(!packet.verify_checksum());
    packet.fill_checksum();
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert!(packet.verify_checksum());
    assert_eq!(
        (
            packet.src_port(),
            packet.dst_port(),
            packet.verification_tag()
        ),
        (7, 40000, 0xdead_beef)
    );
}

#[test]
fn truncated_and_invalid_input_gives_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short header", WWW_INIT[..11].to_vec()),
        ("no chunk", WWW_INIT[..12].to_vec()),
        ("chunk header cut", WWW_INIT[..14].to_vec()),
        ("chunk cut", WWW_INIT[..40].to_vec()),
        ("DATA without user data", {
            let mut b = WWW_DATA_HEADERS.to_vec();
            b[14..16].copy_from_slice(&16u16.to_be_bytes());
            b
        }),
        ("INIT ACK without cookie", {
            let mut b = WWW_INIT.to_vec();
            b[12] = 2;
            b
        }),
        (
            "HEARTBEAT without info",
            vec![0, 1, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 4, 0, 0, 4],
        ),
        ("SACK with more gaps than bytes", {
            let mut b = ECHO_SACK.to_vec();
            b[24..26].copy_from_slice(&3u16.to_be_bytes());
            b
        }),
        ("parameter longer than chunk", {
            let mut b = WWW_INIT.to_vec();
            b[34..36].copy_from_slice(&200u16.to_be_bytes());
            b
        }),
    ];
    for (name, bytes) in cases {
        let result = Repr::parse_bytes(&bytes, ChecksumPolicy::Ignore);
        assert!(result.is_err(), "{name}: parsed as {result:?}");
    }
}

#[test]
fn emit_refuses_wrong_buffers_and_empty_data() {
    let repr = parse(&WWW_COOKIE_ACK);
    let mut small = [0u8; 15];
    assert!(repr
        .emit(&mut Packet::new_unchecked(&mut small[..]))
        .is_err());
    let mut large = [0u8; 17];
    assert!(repr
        .emit(&mut Packet::new_unchecked(&mut large[..]))
        .is_err());
    let empty = Repr {
        chunks: vec![ChunkRepr::Data(DataChunk {
            unordered: false,
            beginning: true,
            ending: true,
            tsn: 1,
            stream_id: 0,
            stream_seq: 0,
            ppid: 0,
            user_data: &[],
        })],
        ..repr
    };
    assert!(empty.to_bytes().is_err());
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = crate::wire::test_rng::XorShift::new(0x5c7f_0001);
    let seeds = [
        &WWW_INIT[..],
        &ECHO_INIT_ACK[..],
        &ECHO_SACK[..],
        &HTTP_SHUTDOWN[..],
    ];
    for round in 0..20_000u32 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = (rng.next() % 80) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // Mutate a real packet so the parser gets past the first checks.
            let mut b = seeds[(rng.next() % seeds.len() as u64) as usize].to_vec();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % b.len();
                b[at] = rng.next() as u8;
            }
            let keep = b.len() - (rng.next() as usize % 8).min(b.len());
            b.truncate(keep);
            b
        };
        let _ = Repr::parse_bytes(&bytes, ChecksumPolicy::Ignore);
        let _ = Repr::parse_bytes(&bytes, ChecksumPolicy::Verify);
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            for chunk in packet.chunks().flatten() {
                let _ = chunk.value();
                let _ = ChunkRepr::parse(&chunk);
            }
        }
    }
}
