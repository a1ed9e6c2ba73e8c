//! Root test: the SCTP and GRE packets the engine builds (and the responder
//! echoes) are well formed with correct checksums, as tshark decodes them from
//! the pod's capture written as pcap. tshark is required: a missing tshark is
//! a failure, not a skip (`.ci/run` installs it).

mod common;

use std::net::IpAddr;
use std::process::Command;

use common::program;
use common::traffic::{FipLab, FLOATING_V4, POD_V4};
use fip_harness::traffic::{EndpointSpec, ProbeSpec, Protocol, TrafficEngine};

fn tshark(pcap: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut command = Command::new(program("tshark"));
    command.arg("-r").arg(pcap).args([
        "-o",
        "sctp.checksum:CRC 32c",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for field in fields {
        command.args(["-e", field]);
    }
    let out = command
        .output()
        .expect("tshark must be installed (Debian package tshark) to check captures");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_sctp_and_gre_with_good_checksums() {
    let lab = common::lab_name("ts");
    let bed = FipLab::build(&lab).await;
    let engine = TrafficEngine::new(&lab);
    engine
        .add_endpoint(EndpointSpec::pod(
            "pod",
            bed.netns("pod"),
            vec![IpAddr::V4(POD_V4)],
            "eth0",
        ))
        .await
        .unwrap();
    engine
        .add_endpoint(EndpointSpec::external("client", bed.netns("client")))
        .await
        .unwrap();
    engine.begin_step(7);
    for protocol in [Protocol::Sctp, Protocol::Gre] {
        let mut spec = ProbeSpec::new("client", FLOATING_V4.into(), protocol);
        spec.step = 7;
        let outcome = engine.probe(spec).await.unwrap();
        assert_eq!(outcome.replies.len(), 3, "{outcome:#?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("pod-step7.pcap");
    let written = engine.write_pcap("pod", Some(7), &pcap).unwrap();
    assert!(written > 0);

    let rows = tshark(
        &pcap,
        &[
            "frame.protocols",
            "_ws.malformed",
            "_ws.expert.severity",
            "sctp.checksum.status",
            "gre.checksum.status",
            "sctp.chunk_type",
        ],
    );
    let (mut sctp, mut gre) = (0, 0);
    let mut chunk_types = std::collections::BTreeSet::new();
    for row in &rows {
        let [protocols, malformed, _severity, sctp_status, gre_status, chunks] = &row[..] else {
            panic!("unexpected tshark row {row:?}");
        };
        assert!(malformed.is_empty(), "malformed packet: {row:?}");
        if protocols.contains("sctp") {
            sctp += 1;
            assert_eq!(sctp_status, "1", "SCTP checksum good: {row:?}");
            chunk_types.extend(chunks.split(',').map(str::to_string));
        }
        if protocols.contains(":gre") {
            gre += 1;
            assert_eq!(gre_status, "1", "GRE checksum good: {row:?}");
        }
    }
    // Both directions of each: requests in, echoes out.
    assert!(sctp >= 10, "SCTP packets in capture: {sctp} of {rows:?}");
    assert_eq!(gre, 6, "GRE requests and replies: {rows:?}");
    // INIT, INIT ACK, DATA, SACK, HEARTBEAT(ACK), SHUTDOWN(ACK/COMPLETE), COOKIE ECHO/ACK.
    for chunk in ["0", "1", "2", "3", "4", "5", "7", "8", "10", "11", "14"] {
        assert!(
            chunk_types.contains(chunk),
            "chunk type {chunk} in {chunk_types:?}"
        );
    }
}
