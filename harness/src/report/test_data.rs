//! Results the report's unit tests render: a failing case with a lab picture,
//! and a passing case with a move under a stream.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{CaseHead, MigrationReport, Outcome, ScenarioResult, StepResult};
use crate::check::{CheckLine, DeliveryObserved, MigrationFigures, Mismatch, Move, StreamPacket};
use crate::check::{FloatingIpRoute, LabPicture, MemberPicture, NodePicture, PodPicture, RouteHop};

/// A 1 ms stream moved from web-a to web-b at 3 ms: three packets at web-a
/// (one late), two lost, three at web-b.
pub(crate) fn sample_migration() -> MigrationReport {
    let packet = |sequence: u64, pod: Option<&str>, at_us: u64| StreamPacket {
        sequence,
        delivered: pod.map(|p| (p.to_string(), at_us)),
        answered: pod.is_some(),
        sent_at_us: Some(sequence * 1000 + 900),
    };
    let packets = vec![
        packet(0, Some("web-a"), 1_000),
        packet(1, Some("web-a"), 2_000),
        packet(2, Some("web-a"), 3_100),
        packet(3, None, 0),
        packet(4, None, 0),
        packet(5, Some("web-b"), 6_200),
        packet(6, Some("web-b"), 7_000),
        packet(7, Some("web-b"), 8_000),
    ];
    let moved = Move {
        from_pod: "web-a".into(),
        to_pod: "web-b".into(),
        gained_at_us: 3_000,
    };
    MigrationReport {
        stream: "s1".into(),
        protocol: "icmp".into(),
        from_pod: "web-a".into(),
        to_pod: "web-b".into(),
        figures: MigrationFigures::compute(&packets, &moved, 2),
        packets,
    }
}

/// The lab of a move across two nodes, web-a holding the floating IP.
pub(crate) fn sample_picture() -> LabPicture {
    let fip = "203.0.113.10".parse().unwrap();
    let route = |hop: &str| FloatingIpRoute {
        floating_ip: fip,
        prefix: "203.0.113.10/32".into(),
        hops: vec![RouteHop::Member(hop.into())],
    };
    LabPicture {
        moment: "once step 3 (start icmp stream s1 client -> 203.0.113.10) had run".into(),
        externals: vec![MemberPicture {
            name: "client".into(),
            addresses: vec!["198.18.1.10".parse().unwrap()],
        }],
        fabric_routes: vec![route("node-a")],
        nodes: vec![
            NodePicture {
                name: "node-a".into(),
                addresses: vec!["198.18.0.10".parse().unwrap()],
                pods: vec![PodPicture {
                    name: "web-a".into(),
                    addresses: vec!["10.65.0.1".parse().unwrap()],
                    holds: vec![fip],
                    claims_only: vec![],
                }],
                routes: vec![route("web-a")],
            },
            NodePicture {
                name: "node-b".into(),
                addresses: vec!["198.18.0.11".parse().unwrap()],
                pods: vec![PodPicture {
                    name: "web-b".into(),
                    addresses: vec!["10.65.1.1".parse().unwrap()],
                    holds: vec![],
                    claims_only: vec![fip],
                }],
                routes: vec![FloatingIpRoute {
                    floating_ip: fip,
                    prefix: "203.0.113.10/32".into(),
                    hops: vec![RouteHop::Member("node-a".into())],
                }],
            },
        ],
    }
}

fn case(name: &str, outcome: Outcome) -> ScenarioResult {
    ScenarioResult {
        head: CaseHead {
            name: name.into(),
            file: format!("scenarios/{name}.yaml").into(),
            backend: "nftables".into(),
            profile: "calico".into(),
            tags: vec!["move".into(), "icmp".into()],
            routing: "bird".into(),
            outcome,
            duration_ms: 1_250,
        },
        steps: vec![],
        migrations: vec![],
        lab_pictures: vec![],
        kept_lab: None,
        seed: None,
        lab: None,
    }
}

/// A case whose send step reached the wrong pod.
pub(crate) fn failed_case() -> ScenarioResult {
    let mut result = case(
        "wrong-pod",
        Outcome::Failed {
            reason: "step 2 (send icmp client -> 203.0.113.10) failed".into(),
        },
    );
    result.steps = vec![
        StepResult {
            index: 0,
            summary: "create pod web-a on node-a".into(),
            passed: true,
            attempts: 1,
            lines: vec![],
            message: None,
            diagnostics: None,
            timing: None,
        },
        StepResult {
            index: 1,
            summary: "send icmp client -> 203.0.113.10".into(),
            passed: false,
            attempts: 3,
            lines: vec![CheckLine {
                source: "client".into(),
                destination: "203.0.113.10".into(),
                protocol: "icmp".into(),
                observed: DeliveryObserved {
                    sent: 3,
                    answered: 3,
                    delivered: BTreeMap::from([("web-a".into(), 3)]),
                    seen_destinations: BTreeSet::from(["10.65.0.1".parse().unwrap()]),
                    ..Default::default()
                },
                mismatches: vec![Mismatch {
                    what: "delivered to".into(),
                    expected: "web-b".into(),
                    actual: "web-a (3)".into(),
                }],
            }],
            message: None,
            diagnostics: Some("reports/wrong-pod-nftables/step-2".into()),
            timing: None,
        },
    ];
    result.lab_pictures = vec![sample_picture()];
    result.kept_lab = Some("rp1".into());
    result
}

/// A passing case with one move under a stream.
pub(crate) fn moved_case() -> ScenarioResult {
    let mut result = case("move-across-nodes", Outcome::Passed);
    result.migrations = vec![sample_migration()];
    result
}
