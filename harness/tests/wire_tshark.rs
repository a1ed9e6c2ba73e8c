//! Cross-checks the SCTP and GRE codecs against an independent decoder: every
//! packet the codecs emit is wrapped in a real IPv4 or IPv6 header, written to a
//! pcap and decoded by tshark with checksum validation on. tshark must find no
//! malformed packet, no bad checksum and no expert warning or error, and must
//! see the chunk types and GRE fields the codec meant to write.
//!
//! tshark is a test dependency (Debian package `tshark`; `.ci/run` installs it):
//! when it is missing this test fails rather than skips, so that a CI run without
//! it cannot pass silently.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::program;

use fip_harness::wire::gre;
use fip_harness::wire::sctp::{
    self, cause_code, param_type, ChunkRepr, DataChunk, ErrorCause, GapAckBlock, InitChunk, Param,
    SackChunk,
};
use fip_harness::wire::ChecksumPolicy;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::{self, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;

#[path = "../src/wire/sctp/goldens.rs"]
mod sctp_goldens;

const NODE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const FLOATING_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const NODE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfe, 0, 0, 0, 0, 0x10);
const FLOATING_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf1, 0, 0, 0, 0, 5);

/// Which way a packet goes, so that addresses and ports match the association.
#[derive(Clone, Copy)]
enum Direction {
    ToPod,
    FromPod,
}

fn ipv4_datagram(protocol: IpNextHeaderProtocol, direction: Direction, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = match direction {
        Direction::ToPod => (NODE_V4, FLOATING_V4),
        Direction::FromPod => (FLOATING_V4, NODE_V4),
    };
    let mut bytes = vec![0u8; 20 + payload.len()];
    let mut ip = MutableIpv4Packet::new(&mut bytes).expect("buffer holds an IPv4 header");
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length(u16::try_from(20 + payload.len()).unwrap());
    ip.set_identification(0x1234);
    ip.set_flags(2); // don't fragment
    ip.set_ttl(64);
    ip.set_next_level_protocol(protocol);
    ip.set_source(src);
    ip.set_destination(dst);
    ip.set_payload(payload);
    let sum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(sum);
    bytes
}

fn ipv6_datagram(protocol: IpNextHeaderProtocol, direction: Direction, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = match direction {
        Direction::ToPod => (NODE_V6, FLOATING_V6),
        Direction::FromPod => (FLOATING_V6, NODE_V6),
    };
    let mut bytes = vec![0u8; 40 + payload.len()];
    let mut ip = MutableIpv6Packet::new(&mut bytes).expect("buffer holds an IPv6 header");
    ip.set_version(6);
    ip.set_payload_length(u16::try_from(payload.len()).unwrap());
    ip.set_next_header(protocol);
    ip.set_hop_limit(64);
    ip.set_source(src);
    ip.set_destination(dst);
    ip.set_payload(payload);
    bytes
}

/// An SCTP packet the codec emits, with what tshark should report for it.
struct SctpCase {
    direction: Direction,
    repr: sctp::Repr<'static>,
}

const CLIENT_PORT: u16 = 40_001;
const ECHO_PORT: u16 = 7;
const CLIENT_TAG: u32 = 0x1a2b_3c4d;
const POD_TAG: u32 = 0x5e6f_7081;

fn sctp_case(
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

const COOKIE: &[u8] = b"fiph state cookie: tag, tsn, hmac (odd length)";

fn data(tsn: u32, stream_seq: u16, user_data: &'static [u8]) -> ChunkRepr<'static> {
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
fn sctp_cases() -> Vec<SctpCase> {
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

struct GreCase {
    direction: Direction,
    repr: gre::Repr,
    payload: &'static [u8],
}

fn gre_cases() -> Vec<GreCase> {
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

/// One frame of the capture with what tshark should report for it.
struct Frame {
    ip: Vec<u8>,
    /// Comma-separated chunk types as tshark's `sctp.chunk_type` prints them.
    sctp_chunk_types: Option<String>,
    gre: Option<gre::Repr>,
}

fn build_frames() -> Vec<Frame> {
    let mut frames = Vec::new();
    for (wrap_v6, cases) in [(false, sctp_cases()), (true, sctp_cases())] {
        for case in cases {
            let mut repr = case.repr;
            if wrap_v6 {
                // Another association: tshark tracks TSNs by ports and tags, and
                // would take the IPv6 copy for retransmissions.
                for port in [&mut repr.src_port, &mut repr.dst_port] {
                    if *port == CLIENT_PORT {
                        *port += 1;
                    }
                }
            }
            let payload = repr.to_bytes().expect("every case emits");
            // The emitted bytes must also read back through our own parser.
            assert_eq!(
                sctp::Repr::parse_bytes(&payload, ChecksumPolicy::Verify).unwrap(),
                repr
            );
            let ip = if wrap_v6 {
                ipv6_datagram(IpNextHeaderProtocols::Sctp, case.direction, &payload)
            } else {
                ipv4_datagram(IpNextHeaderProtocols::Sctp, case.direction, &payload)
            };
            let types: Vec<String> = repr
                .chunks
                .iter()
                .map(|c| u8::from(c.chunk_type()).to_string())
                .collect();
            frames.push(Frame {
                ip,
                sctp_chunk_types: Some(types.join(",")),
                gre: None,
            });
        }
    }
    for (wrap_v6, cases) in [(false, gre_cases()), (true, gre_cases())] {
        for case in cases {
            let payload = case.repr.to_bytes(case.payload);
            let ip = if wrap_v6 {
                ipv6_datagram(IpNextHeaderProtocols::Gre, case.direction, &payload)
            } else {
                ipv4_datagram(IpNextHeaderProtocols::Gre, case.direction, &payload)
            };
            frames.push(Frame {
                ip,
                sctp_chunk_types: None,
                gre: Some(case.repr),
            });
        }
    }
    frames
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).expect("create pcap file");
    let header = PcapHeader {
        // LINKTYPE_RAW: each frame is a bare IPv4 or IPv6 datagram.
        datalink: DataLink::RAW,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(file, header).expect("write pcap header");
    for (i, frame) in frames.iter().enumerate() {
        let packet = PcapPacket::new(
            Duration::from_millis(1_700_000_000_000 + i as u64),
            u32::try_from(frame.len()).unwrap(),
            frame,
        );
        writer.write_packet(&packet).expect("write pcap packet");
    }
}

fn tshark(args: &[&str]) -> String {
    let output = Command::new(program("tshark"))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run tshark ({e}): this test needs it; install the Debian package \
                 `tshark` (.ci/run does)"
            )
        });
    assert!(
        output.status.success(),
        "tshark {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("tshark prints UTF-8")
}

/// tshark options that turn on every checksum check the capture involves.
const CHECK_CHECKSUMS: [&str; 4] = [
    "-o",
    "sctp.checksum:CRC 32c",
    "-o",
    "ip.check_checksum:TRUE",
];

/// Lines of tshark's verbose decode that report a problem.
fn complaints(verbose: &str) -> Vec<String> {
    const MARKS: [&str; 7] = [
        "Malformed",
        "Checksum Status: Bad",
        "incorrect",
        "Bad checksum",
        "Expert Info (Error",
        "Expert Info (Warning",
        "not a multiple of 4",
    ];
    verbose
        .lines()
        .filter(|line| MARKS.iter().any(|mark| line.contains(mark)))
        .map(|line| line.trim().to_owned())
        .collect()
}

fn fields(pcap: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = vec!["-r", pcap.to_str().unwrap()];
    args.extend(CHECK_CHECKSUMS);
    args.extend(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for name in names {
        args.extend(["-e", name]);
    }
    tshark(&args)
        .lines()
        .map(|line| line.split('|').map(str::to_owned).collect())
        .collect()
}

#[test]
fn tshark_decodes_emitted_sctp_and_gre_without_complaint() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("emitted.pcap");
    let frames = build_frames();
    write_pcap(
        &pcap,
        &frames.iter().map(|f| f.ip.clone()).collect::<Vec<_>>(),
    );

    let mut verbose_args = vec!["-r", pcap.to_str().unwrap(), "-V"];
    verbose_args.extend(CHECK_CHECKSUMS);
    let verbose = tshark(&verbose_args);
    let found = complaints(&verbose);
    assert!(
        found.is_empty(),
        "tshark complains about emitted packets:\n{}",
        found.join("\n")
    );

    // Expert info must be empty: no error, warning or even note (a note would
    // flag e.g. a TSN that looks retransmitted).
    let mut expert_args = vec!["-r", pcap.to_str().unwrap(), "-q", "-z", "expert"];
    expert_args.extend(CHECK_CHECKSUMS);
    let expert = tshark(&expert_args);
    for severity in ["Errors (", "Warns (", "Notes ("] {
        assert!(
            !expert.contains(severity),
            "tshark expert info is not clean:\n{expert}"
        );
    }

    let rows = fields(
        &pcap,
        &[
            "frame.number",
            "frame.protocols",
            "sctp.chunk_type",
            "sctp.checksum.status",
            "gre.flags.checksum",
            "gre.flags.key",
            "gre.flags.sequence_number",
            "gre.key",
            "gre.sequence_number",
            "gre.proto",
            "gre.checksum.status",
        ],
    );
    assert_eq!(rows.len(), frames.len(), "tshark read every frame");
    for (frame, row) in frames.iter().zip(&rows) {
        let context = format!("frame {}: tshark fields {row:?}", row[0]);
        if let Some(types) = &frame.sctp_chunk_types {
            assert!(row[1].contains(":sctp"), "{context}");
            assert_eq!(&row[2], types, "{context}");
            // Wireshark's checksum status: 1 = good.
            assert_eq!(row[3], "1", "{context}");
        }
        if let Some(repr) = frame.gre {
            assert!(row[1].contains(":gre"), "{context}");
            assert_eq!(row[4], if repr.checksum { "1" } else { "0" }, "{context}");
            assert_eq!(
                row[5],
                if repr.key.is_some() { "1" } else { "0" },
                "{context}"
            );
            assert_eq!(
                row[6],
                if repr.sequence.is_some() { "1" } else { "0" },
                "{context}"
            );
            assert_eq!(
                row[7],
                repr.key.map(|k| format!("{k:#010x}")).unwrap_or_default(),
                "{context}"
            );
            assert_eq!(
                row[8],
                repr.sequence.map(|s| s.to_string()).unwrap_or_default(),
                "{context}"
            );
            assert_eq!(row[9], format!("{:#06x}", repr.protocol), "{context}");
            assert_eq!(row[10], if repr.checksum { "1" } else { "" }, "{context}");
        }
    }
}

/// The check above is only worth something if tshark does flag broken packets
/// under the same options: corrupt one SCTP and one GRE packet and expect it to.
#[test]
fn tshark_flags_corrupted_checksums_under_the_same_options() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("corrupted.pcap");
    let mut sctp_bytes = sctp_cases()[4].repr.to_bytes().unwrap();
    let last = sctp_bytes.len() - 2;
    sctp_bytes[last] ^= 0x20;
    let gre_repr = gre::Repr {
        checksum: true,
        key: Some(1),
        sequence: Some(2),
        protocol: gre::PROTOCOL_HARNESS_ECHO,
    };
    let mut gre_bytes = gre_repr.to_bytes(b"fiph token");
    let last = gre_bytes.len() - 1;
    gre_bytes[last] ^= 0x20;
    write_pcap(
        &pcap,
        &[
            ipv4_datagram(IpNextHeaderProtocols::Sctp, Direction::ToPod, &sctp_bytes),
            ipv4_datagram(IpNextHeaderProtocols::Gre, Direction::ToPod, &gre_bytes),
        ],
    );
    let mut verbose_args = vec!["-r", pcap.to_str().unwrap(), "-V"];
    verbose_args.extend(CHECK_CHECKSUMS);
    let verbose = tshark(&verbose_args);
    let found = complaints(&verbose);
    let sctp_flagged = verbose.contains("SCTP")
        && found
            .iter()
            .any(|l| l.contains("Bad") || l.contains("incorrect"));
    assert!(
        sctp_flagged,
        "tshark did not flag the corrupted SCTP packet:\n{verbose}"
    );
    let mut expert_args = vec!["-r", pcap.to_str().unwrap(), "-q", "-z", "expert"];
    expert_args.extend(CHECK_CHECKSUMS);
    let expert = tshark(&expert_args);
    assert!(
        expert.contains("Errors (") || expert.contains("Warns ("),
        "tshark expert info does not report the corrupted packets:\n{expert}"
    );
    let rows = fields(&pcap, &["sctp.checksum.status", "gre.checksum.status"]);
    assert_eq!(
        rows[0][0], "0",
        "SCTP checksum status of the corrupted packet: {rows:?}"
    );
    assert_eq!(
        rows[1][1], "0",
        "GRE checksum status of the corrupted packet: {rows:?}"
    );
}

/// The real captured SCTP packets our unit tests take as goldens: tshark must
/// agree with the codec on which carry a good CRC32c, and must find the two
/// legacy heartbeats good only under Adler-32. This checks the checksum byte
/// order against a decoder and captures the codec had no part in.
#[test]
fn tshark_and_codec_agree_on_captured_sctp_checksums() {
    use sctp_goldens::*;
    let crc32c_packets: Vec<Vec<u8>> = vec![
        WWW_INIT.to_vec(),
        WWW_COOKIE_ECHO.to_vec(),
        WWW_COOKIE_ACK.to_vec(),
        www_data_packet(),
        ECHO_INIT.to_vec(),
        ECHO_INIT_ACK.to_vec(),
        ECHO_SACK.to_vec(),
        HTTP_SHUTDOWN.to_vec(),
        HTTP_SHUTDOWN_ACK.to_vec(),
        HTTP_SHUTDOWN_COMPLETE.to_vec(),
    ];
    let adler32_packets = [M3UA_HEARTBEAT.to_vec(), M3UA_HEARTBEAT_ACK.to_vec()];
    for bytes in &crc32c_packets {
        sctp::Repr::parse_bytes(bytes, ChecksumPolicy::Verify)
            .expect("captured packet has a good CRC32c");
    }
    for bytes in &adler32_packets {
        assert!(sctp::Repr::parse_bytes(bytes, ChecksumPolicy::Verify).is_err());
    }

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("captured.pcap");
    let frames: Vec<Vec<u8>> = crc32c_packets
        .iter()
        .chain(&adler32_packets)
        .map(|sctp| ipv4_datagram(IpNextHeaderProtocols::Sctp, Direction::ToPod, sctp))
        .collect();
    write_pcap(&pcap, &frames);

    let statuses = |checksum_type: &str| -> Vec<String> {
        let preference = format!("sctp.checksum:{checksum_type}");
        tshark(&[
            "-r",
            pcap.to_str().unwrap(),
            "-o",
            &preference,
            "-T",
            "fields",
            "-e",
            "sctp.checksum.status",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    };
    let n = crc32c_packets.len();
    let crc = statuses("CRC 32c");
    assert_eq!(
        crc[..n],
        vec!["1".to_owned(); n][..],
        "CRC 32c status per frame: {crc:?}"
    );
    assert_eq!(
        crc[n..],
        ["0", "0"],
        "CRC 32c status of the Adler-32 heartbeats: {crc:?}"
    );
    let adler = statuses("Adler 32");
    assert_eq!(
        adler[n..],
        ["1", "1"],
        "Adler 32 status of the heartbeats: {adler:?}"
    );
}
