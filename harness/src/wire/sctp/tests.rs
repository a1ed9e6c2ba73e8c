//! SCTP codec tests. The golden packets are real captures, in `goldens.rs`.

use super::*;

use super::goldens::*;

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
