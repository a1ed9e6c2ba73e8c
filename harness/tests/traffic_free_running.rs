//! Root tests: free-running probes (no interval, a window in flight), which
//! ICMP and GRE send off the runtime the way `ping -f -l` does
//! (`traffic/inline.rs`, batched sends). Every probe must still be answered,
//! attributed and seen at the pod once (ICMP errors about free-running probes:
//! `traffic_fip.rs`, `unreachable_from_a_router_is_attributed_to_the_probe`).

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::traffic::{FipLab, FLOATING_V4, FLOATING_V6, POD_V4, POD_V6};
use fip_harness::traffic::{ProbeSpec, Protocol, TrafficEngine};
use rstest::rstest;

const COUNT: u32 = 3000;

async fn setup(test: &str) -> (FipLab, TrafficEngine) {
    FipLab::with_engine(&common::lab_name(&format!("fr{test}"))).await
}

fn free_running(to: IpAddr, protocol: Protocol, count: u32) -> ProbeSpec {
    let mut spec = ProbeSpec::new("client", to, protocol);
    spec.count = count;
    spec.interval = Duration::ZERO;
    spec.window = 128;
    spec.step = 1;
    spec
}

#[rstest]
#[case::icmp("i4", Protocol::Icmp, false)]
#[case::icmpv6("i6", Protocol::Icmp, true)]
#[case::gre("g4", Protocol::Gre, false)]
#[case::gre_v6("g6", Protocol::Gre, true)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_free_running_probe_is_answered_once_and_seen_at_the_pod(
    #[case] test: &str,
    #[case] protocol: Protocol,
    #[case] v6: bool,
) {
    let (_bed, engine) = setup(test).await;
    let (floating, pod): (IpAddr, IpAddr) = if v6 {
        (FLOATING_V6.into(), POD_V6.into())
    } else {
        (FLOATING_V4.into(), POD_V4.into())
    };
    let outcome = engine
        .probe(free_running(floating, protocol, COUNT))
        .await
        .expect("probe");
    assert_eq!(outcome.sent, COUNT);
    assert_eq!(outcome.send_errors, 0);
    assert_eq!(outcome.duplicates, 0);
    let replied: BTreeSet<u32> = outcome.replies.iter().map(|r| r.token.seq).collect();
    assert_eq!(replied, (0..COUNT).collect(), "every probe answered");
    assert_eq!(outcome.replies.len(), COUNT as usize, "each once");
    assert!(outcome
        .replies
        .iter()
        .all(|r| r.src == floating && r.token.step == 1 && r.protocol == protocol));
    // Send times are recorded per probe, in order.
    assert_eq!(outcome.sent_at_unix_ns.len(), COUNT as usize);
    assert!(outcome.sent_at_unix_ns.windows(2).all(|w| w[0] <= w[1]));
    let seen: BTreeSet<u32> = outcome
        .deliveries
        .iter()
        .filter(|o| o.protocol == protocol && o.dst == pod)
        .map(|o| o.token.seq)
        .collect();
    assert_eq!(
        seen,
        (0..COUNT).collect(),
        "the pod's capture saw every probe"
    );

    // The probe's sockets went back to the runtime: a paced probe of the
    // same engine still works.
    let mut paced = free_running(floating, protocol, 3);
    paced.interval = Duration::from_millis(1);
    paced.step = 2;
    let again = engine.probe(paced).await.expect("paced probe");
    assert_eq!(again.replies.len(), 3, "{again:#?}");
}
