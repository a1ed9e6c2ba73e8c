//! Root tests: every protocol through a floating IP on a real lab (client --
//! fabric -- node with the control plane's NAT -- pod). The pod must see its
//! own address as the destination; the sender must see the floating IP as the
//! reply's source.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::traffic::{FipLab, FLOATING_V4, FLOATING_V6, POD2_V4, POD_V4, POD_V6};
use fip_harness::traffic::{EndpointSpec, ProbeSpec, Protocol, StreamSpec, TrafficEngine};

/// How long a probe waits for its replies: a cap that turns a broken path
/// into a failure, never a judgement of speed (a probe returns as soon as
/// every send is answered, and a loaded machine has answered after more than
/// the default second).
const PATIENCE: Duration = Duration::from_secs(120);

/// Lab names unique per test and per process, so parallel runs never collide.
fn lab(test: &str) -> String {
    common::lab_name(&format!("tf{test}"))
}

async fn setup(test: &str) -> (FipLab, TrafficEngine) {
    FipLab::with_engine(&lab(test)).await
}

async fn through_floating_ip(test: &str, protocol: Protocol, floating: IpAddr, pod: IpAddr) {
    let (_bed, engine) = setup(test).await;
    let mut spec = ProbeSpec::new("client", floating, protocol);
    spec.count = 5;
    spec.step = 1;
    spec.timeout = PATIENCE;
    let outcome = engine.probe(spec).await.expect("probe");

    assert_eq!(outcome.sent, 5, "{outcome:#?}");
    let replied: BTreeSet<u32> = outcome.replies.iter().map(|r| r.token.seq).collect();
    assert_eq!(
        replied,
        (0..5).collect(),
        "every probe answered: {outcome:#?}"
    );
    for reply in &outcome.replies {
        assert_eq!(reply.src, floating, "reply source as the sender saw it");
        assert_eq!(reply.token.step, 1);
    }
    let delivered: Vec<_> = outcome
        .deliveries
        .iter()
        .filter(|o| o.protocol == protocol && o.token.seq < 5)
        .collect();
    let delivered_seqs: BTreeSet<u32> = delivered.iter().map(|o| o.token.seq).collect();
    assert_eq!(
        delivered_seqs,
        (0..5).collect(),
        "pod saw every probe: {outcome:#?}"
    );
    for seen in delivered {
        assert_eq!(seen.endpoint, "pod");
        assert_eq!(seen.dst, pod, "DNAT delivered to the pod's own address");
        assert_ne!(seen.src, floating);
    }
    assert!(outcome.icmp_errors.is_empty(), "{:#?}", outcome.icmp_errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_echo_through_floating_ip() {
    through_floating_ip("i4", Protocol::Icmp, FLOATING_V4.into(), POD_V4.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmpv6_echo_through_floating_ip() {
    through_floating_ip("i6", Protocol::Icmp, FLOATING_V6.into(), POD_V6.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gre_echo_through_floating_ip() {
    through_floating_ip("g4", Protocol::Gre, FLOATING_V4.into(), POD_V4.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gre_echo_through_floating_ipv6() {
    through_floating_ip("g6", Protocol::Gre, FLOATING_V6.into(), POD_V6.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sctp_association_through_floating_ip() {
    through_floating_ip("s4", Protocol::Sctp, FLOATING_V4.into(), POD_V4.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_through_floating_ip() {
    through_floating_ip("u4", Protocol::Udp, FLOATING_V4.into(), POD_V4.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_through_floating_ip() {
    through_floating_ip("t4", Protocol::Tcp, FLOATING_V4.into(), POD_V4.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sctp_association_through_floating_ipv6() {
    through_floating_ip("s6", Protocol::Sctp, FLOATING_V6.into(), POD_V6.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_through_floating_ipv6() {
    through_floating_ip("u6", Protocol::Udp, FLOATING_V6.into(), POD_V6.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_through_floating_ipv6() {
    through_floating_ip("t6", Protocol::Tcp, FLOATING_V6.into(), POD_V6.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sctp_handshake_steps_are_all_answered() {
    let (_bed, engine) = setup("sh").await;
    let outcome = engine
        .probe(ProbeSpec::new("client", FLOATING_V4.into(), Protocol::Sctp))
        .await
        .unwrap();
    let floating = FLOATING_V4.to_string();
    let expected = [
        "INIT sent".to_string(),
        format!("INIT ACK from {floating}"),
        "COOKIE ECHO sent".to_string(),
        format!("COOKIE ACK from {floating}"),
        "HEARTBEAT sent".to_string(),
        format!("HEARTBEAT ACK from {floating}"),
        "SHUTDOWN sent".to_string(),
        format!("SHUTDOWN ACK from {floating}"),
        "SHUTDOWN COMPLETE sent".to_string(),
    ];
    assert_eq!(outcome.sctp_events, expected);
}

/// The kernel's SCTP conntrack on the node must see a real association: while
/// a stream runs, the NATed entry is ESTABLISHED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sctp_stream_is_established_in_node_conntrack() {
    let (bed, engine) = setup("sc").await;
    let stream = engine
        .start_stream(StreamSpec::new(
            "client",
            FLOATING_V4.into(),
            Protocol::Sctp,
            Duration::from_millis(2),
        ))
        .await
        .unwrap();
    // Past the handshake: the pod has seen DATA, not only INIT and COOKIE ECHO.
    seen_at(&engine, "pod", 20).await;
    let conntrack = bed.node_conntrack();
    let outcome = stream.stop().await.unwrap();

    let entry = conntrack
        .lines()
        .find(|l| l.contains("sctp") && l.contains(&format!("dst={FLOATING_V4}")))
        .unwrap_or_else(|| panic!("no SCTP entry to the floating IP in:\n{conntrack}"));
    assert!(entry.contains("ESTABLISHED"), "{entry}");
    assert!(
        entry.contains(&format!("src={POD_V4}")),
        "reply tuple from the pod: {entry}"
    );
    assert!(outcome.sent > 10, "{}", outcome.sent);
    assert!(!outcome.replies.is_empty());
    assert!(outcome
        .replies
        .iter()
        .all(|r| r.src == IpAddr::from(FLOATING_V4)));
    assert!(outcome
        .deliveries
        .iter()
        .all(|o| o.dst == IpAddr::from(POD_V4)));
}

/// An ICMP error about a NATed flow must quote the floating IP, not the pod's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_unreachable_quotes_the_floating_ip() {
    let (bed, engine) = setup("pu").await;
    let mut spec = ProbeSpec::new("client", FLOATING_V4.into(), Protocol::Udp);
    spec.port = 9;
    spec.count = 2;
    let outcome = engine.probe(spec).await.unwrap();
    assert!(outcome.replies.is_empty());
    assert_eq!(outcome.icmp_errors.len(), 2, "{outcome:#?}");
    for error in &outcome.icmp_errors {
        assert_eq!(
            (error.icmp_type, error.icmp_code),
            (3, 3),
            "port unreachable"
        );
        assert_eq!(error.reporter, IpAddr::from(FLOATING_V4));
        assert_eq!(error.quoted_dst, IpAddr::from(FLOATING_V4));
        assert_eq!(error.quoted_src, bed.client_v4);
        assert!(error.token.is_some());
    }
}

/// The responders' raw sockets are what keeps this SCTP- and GRE-less kernel
/// from answering "protocol unreachable": with the pod's responders removed, the
/// pod's kernel says so, about the floating IP as the sender knows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_responders_the_pod_kernel_reports_protocol_unreachable() {
    let (_bed, engine) = setup("pr").await;
    engine.remove_endpoint("pod").await.unwrap();
    for protocol in [Protocol::Gre, Protocol::Sctp] {
        let mut spec = ProbeSpec::new("client", FLOATING_V4.into(), protocol);
        spec.count = 2;
        let outcome = engine.probe(spec).await.unwrap();
        assert!(outcome.replies.is_empty(), "{outcome:#?}");
        assert!(!outcome.icmp_errors.is_empty(), "{protocol}: {outcome:#?}");
        for error in &outcome.icmp_errors {
            assert_eq!(
                (error.icmp_type, error.icmp_code),
                (3, 2),
                "protocol unreachable"
            );
            assert_eq!(error.reporter, IpAddr::from(FLOATING_V4));
            assert_eq!(error.quoted_dst, IpAddr::from(FLOATING_V4));
        }
    }
}

/// A 1 ms stream keeps sending while the test does other things; stopping it
/// returns every sent probe's reply and where each was delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_stream_at_1ms_is_fully_attributed() {
    let (_bed, engine) = setup("st").await;
    let mut spec = StreamSpec::new(
        "client",
        FLOATING_V4.into(),
        Protocol::Icmp,
        Duration::from_millis(1),
    );
    spec.step = 4;
    let stream = engine.start_stream(spec).await.unwrap();
    // Meanwhile another step probes the same floating IP.
    let mut gre = ProbeSpec::new("client", FLOATING_V4.into(), Protocol::Gre);
    gre.timeout = PATIENCE;
    let probe = engine.probe(gre).await.unwrap();
    assert_eq!(probe.replies.len(), 3);
    let outcome = stream.stop().await.unwrap();

    assert!(outcome.sent > 0);
    let sent: BTreeSet<u32> = (0..outcome.sent).collect();
    let replied: BTreeSet<u32> = outcome.replies.iter().map(|r| r.token.seq).collect();
    assert_eq!(replied, sent, "lost: {}", outcome.lost());
    assert!(outcome
        .replies
        .iter()
        .all(|r| r.src == IpAddr::from(FLOATING_V4) && r.token.step == 4));
    let delivered: BTreeSet<u32> = outcome.deliveries.iter().map(|o| o.token.seq).collect();
    assert_eq!(delivered, sent);
    assert!(outcome
        .deliveries
        .iter()
        .all(|o| o.endpoint == "pod" && o.dst == IpAddr::from(POD_V4)));
}

/// An ICMP error from a router on the way (the fabric has no route to the
/// target) is attributed to the probe by the token in its quote, for a paced
/// probe and a free-running one (`traffic/inline.rs` reads the ICMP socket
/// beside the GRE one); each error answers its probe, so the run does not
/// wait out its timeout (a long one here, so that only waiting it out can
/// reach it, however slow the machine). Few probes: a router sends a small burst of errors,
/// then one a millisecond (`icmp_global_allow`).
#[rstest::rstest]
#[case::paced("nr", Duration::from_millis(10))]
#[case::free_running("nf", Duration::ZERO)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_from_a_router_is_attributed_to_the_probe(
    #[case] test: &str,
    #[case] interval: Duration,
) {
    let (_bed, engine) = setup(test).await;
    let nowhere: IpAddr = "192.0.2.99".parse().unwrap();
    let mut spec = ProbeSpec::new("client", nowhere, Protocol::Gre);
    spec.count = 2;
    spec.interval = interval;
    spec.timeout = PATIENCE;
    let started = std::time::Instant::now();
    let outcome = engine.probe(spec).await.unwrap();
    assert!(started.elapsed() < PATIENCE, "{:?}", started.elapsed());
    assert!(outcome.replies.is_empty());
    let seqs: BTreeSet<u32> = outcome
        .icmp_errors
        .iter()
        .filter_map(|e| e.token.map(|t| t.seq))
        .collect();
    assert_eq!(seqs, (0..2).collect(), "{outcome:#?}");
    for error in &outcome.icmp_errors {
        assert_eq!(error.icmp_type, 3, "destination unreachable");
        assert_eq!(error.reporter, "198.18.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(error.quoted_dst, nowhere);
    }
}

/// A 1 ms stream runs while the floating IP moves from one pod to the other
/// (under the strict profile, whose conntrack deletion moves the running
/// flow too); its outcome shows delivery switching once, by sequence number,
/// and every reply still came from the floating IP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_shows_the_moment_delivery_moves_to_another_pod() {
    let (mut bed, engine) = setup("mv").await;
    engine
        .add_endpoint(EndpointSpec::pod(
            "pod2",
            bed.netns("pod2"),
            vec![IpAddr::V4(POD2_V4)],
            "eth0",
        ))
        .await
        .unwrap();
    let stream = engine
        .start_stream(StreamSpec::new(
            "client",
            FLOATING_V4.into(),
            Protocol::Icmp,
            Duration::from_millis(1),
        ))
        .await
        .unwrap();
    seen_at(&engine, "pod", 20).await;
    bed.move_floating_ips_to("pod2");
    seen_at(&engine, "pod2", 20).await;
    let outcome = stream.stop().await.unwrap();

    // Delivery switched once, from pod to pod2: every sequence number pod saw
    // comes before every one pod2 saw.
    let seqs_at = |endpoint: &str| -> Vec<u32> {
        outcome
            .deliveries
            .iter()
            .filter(|seen| seen.endpoint == endpoint && seen.token.seq < outcome.sent)
            .map(|seen| seen.token.seq)
            .collect()
    };
    let (at_pod, at_pod2) = (seqs_at("pod"), seqs_at("pod2"));
    assert!(!at_pod.is_empty() && !at_pod2.is_empty());
    assert!(
        at_pod.iter().max() < at_pod2.iter().min(),
        "pod saw {at_pod:?}, pod2 saw {at_pod2:?}"
    );
    for seen in &outcome.deliveries {
        let expected = if seen.endpoint == "pod" {
            POD_V4
        } else {
            POD2_V4
        };
        assert_eq!(seen.dst, IpAddr::from(expected));
    }
    assert!(!outcome.replies.is_empty());
    assert!(outcome
        .replies
        .iter()
        .all(|r| r.src == IpAddr::from(FLOATING_V4)));
}

/// Wait until `endpoint` has seen `n` probe packets (a generous cap only turns
/// a broken path into a failure instead of a hang).
async fn seen_at(engine: &TrafficEngine, endpoint: &str, n: usize) {
    let waiting = async {
        while engine.observations(|o| o.endpoint == endpoint).len() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap_or_else(|_| panic!("{endpoint} never saw {n} probes"));
}

/// A stream has sent its first probe when its start returns: the scenario's
/// next step (a floating IP's move, say) comes after the packet that fixes
/// the flow's NAT, as the model has it. On a current-thread runtime the
/// sending task runs only when the caller waits, so a stream stopped at once
/// sent nothing before (`explore --dataplane iptables --seed 4201` case 1846:
/// on a loaded machine the task first ran after the move, and the stream
/// went to the new pod).
#[tokio::test(flavor = "current_thread")]
async fn a_stream_has_sent_its_first_probe_when_its_start_returns() {
    let (_bed, engine) = setup("fs").await;
    let stream = engine
        .start_stream(StreamSpec::new(
            "client",
            FLOATING_V4.into(),
            Protocol::Udp,
            Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    let outcome = stream.stop().await.unwrap();

    assert_eq!(outcome.sent, 1, "{outcome:#?}");
    assert!(
        outcome
            .deliveries
            .iter()
            .any(|o| o.token.seq == 0 && o.endpoint == "pod"),
        "{outcome:#?}"
    );
}
