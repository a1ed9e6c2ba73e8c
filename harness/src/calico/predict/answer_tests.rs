//! Answers followed back to a pod whose address another pod claims, and
//! what a TCP send observes where no answer returns: each case as the
//! three reference dataplanes showed it (scenarios/floating-ip-shadows-
//! answers.yaml and scenarios/own-address-beside-floating-ips.yaml).

use rstest::rstest;

use super::tests::{cluster_with, describe, predict};
use super::*;
use crate::calico::cluster::tests::{annotate, config, create, ip};
use crate::calico::cluster::ClusterStep;
use crate::calico::routes::{FipRoute, RouteNext};

/// web (198.19.0.0) and other (198.19.0.1) on node-a, db (198.19.0.64) on
/// node-b; web claims db's address. node-a routes 198.19.0.64 to web, so
/// what node-a's pods answer db goes to web; the client's answer comes back
/// to node-b (db's traffic to it leaves masqueraded by node-b's NAT
/// outgoing), which routes db's address to db.
#[rstest]
#[case::to_the_claimant("web", Protocol::Icmp, "pod web dst 198.19.0.0 src 198.19.0.64")]
#[case::to_its_neighbour("other", Protocol::Udp, "pod other dst 198.19.0.1 src 198.19.0.64")]
#[case::tcp_to_the_claimant("web", Protocol::Tcp, "dropped at web (NoConnection)")]
#[case::sctp_to_the_claimant("web", Protocol::Sctp, "pod web dst 198.19.0.0 src 198.19.0.64")]
#[case::to_an_external_host("client", Protocol::Icmp, "host client")]
fn answers_to_a_pod_another_node_claims_go_to_the_claimant_on_its_node(
    #[case] to: &str,
    #[case] protocol: Protocol,
    #[case] expected: &str,
) {
    let cluster = cluster_with(
        masquerading(),
        &[
            create("web", "node-a", None),
            create("db", "node-b", None),
            create("other", "node-a", None),
            annotate("web", Some(r#"["198.19.0.64"]"#)),
        ],
    );
    let to = cluster_address(&cluster, to);
    let packet = Packet::new("db", to, protocol);
    let prediction = cluster.predict(&packet).unwrap().as_sent(&packet);
    assert_eq!(describe(&prediction), [expected]);
    // An answer the client sends db comes back; none of the pods' does.
    let answered = prediction.outcomes.iter().all(|o| match &o.landing {
        Landing::Host { reply_source, .. } => reply_source.is_some(),
        _ => false,
    });
    assert_eq!(answered, expected == "host client");
}

/// db (198.19.0.0) and web (198.19.0.1) on node-a, far (198.19.0.64) on
/// node-b; web, created after db, claims db's address: node-a keeps web's
/// route for it (the higher ifindex), so every answer to db that reaches
/// node-a goes to web, whoever answers.
#[rstest]
#[case::to_a_pod_of_another_node("far")]
#[case::to_its_node("node-a")]
#[case::to_another_node("node-b")]
#[case::to_an_external_host("client")]
fn answers_to_a_pod_its_neighbour_claims_are_lost(#[case] to: &str) {
    let cluster = cluster_with(
        masquerading(),
        &[
            create("db", "node-a", None),
            create("web", "node-a", None),
            create("far", "node-b", None),
            annotate("web", Some(r#"["198.19.0.0"]"#)),
        ],
    );
    let to = cluster_address(&cluster, to);
    let prediction = cluster
        .predict(&Packet::new("db", to, Protocol::Icmp))
        .unwrap();
    assert!(!prediction.outcomes.is_empty());
    for outcome in &prediction.outcomes {
        match &outcome.landing {
            Landing::Pod { reply_source, .. } | Landing::Host { reply_source, .. } => {
                assert_eq!(*reply_source, None, "{outcome:?}")
            }
            Landing::Dropped { .. } => panic!("{outcome:?}"),
        }
    }
    // The claim gone, the answers come back.
    let mut cluster = cluster;
    cluster.apply(&annotate("web", None)).unwrap();
    let prediction = cluster
        .predict(&Packet::new("db", to, Protocol::Icmp))
        .unwrap();
    assert!(prediction.outcomes.iter().all(|o| match &o.landing {
        Landing::Pod { reply_source, .. } | Landing::Host { reply_source, .. } =>
            reply_source.is_some(),
        Landing::Dropped { .. } => false,
    }));
}

/// web (198.19.0.0) claims mate's address (198.19.0.1) on node-a, far
/// (198.19.0.64) is on node-b. node-a's one route for mate's address leads
/// to the interface with the higher ifindex (felix/routetable/
/// route_table.go recalculateDesiredKernelRoute), the later pod's, whatever
/// the order of the claim: created with web, or annotated after both.
/// Where mate's is the later interface it keeps its route and its answers;
/// new flows to its address are web's either way (node-a's DNAT).
#[rstest]
#[case::claimant_created_first(&[claimant(true), owner(), far()], false)]
#[case::claimant_annotated_after(&[claimant(false), owner(), far(), claim("198.19.0.1")], false)]
#[case::owner_created_first(&[owner(), claimant(false), far(), claim("198.19.0.0")], true)]
fn a_claimed_address_is_routed_to_the_later_interface(
    #[case] steps: &[ClusterStep],
    #[case] claimant_routed: bool,
) {
    let mut cluster = cluster_with(config(true, true, false), steps);
    let mate = cluster.pod("mate").unwrap().addresses[0];
    let web = cluster.pod("web").unwrap().clone();
    let device_route = |cluster: &Cluster| {
        let routes = &cluster.felix().routes["node-a"];
        routes.iter().find(|r| r.destination == mate).cloned()
    };
    let to_web = FipRoute {
        destination: mate,
        next: RouteNext::Device(web.interface.clone()),
    };
    assert_eq!(
        device_route(&cluster),
        claimant_routed.then(|| to_web.clone())
    );
    let answered = |cluster: &Cluster| {
        let packet = Packet::new("mate", cluster_address(cluster, "far"), Protocol::Icmp);
        describe(&cluster.predict(&packet).unwrap())
    };
    let far = cluster.pod("far").unwrap().addresses[0];
    let reply = if claimant_routed {
        String::new()
    } else {
        format!(" reply {far}")
    };
    assert_eq!(
        answered(&cluster),
        [format!("pod far dst {far} src {mate}{reply}")]
    );
    assert_eq!(
        predict(
            &cluster,
            "far",
            &mate.to_string(),
            Protocol::Icmp,
            ECHO_PORT
        ),
        [format!(
            "pod web dst {} src {far} reply {mate}",
            web.addresses[0]
        )]
    );
    // mate gone, its address is web's alone: Felix routes it to web.
    cluster
        .apply(&ClusterStep::DeletePod {
            name: "mate".into(),
        })
        .unwrap();
    assert_eq!(device_route(&cluster), Some(to_web));
}

fn claimant(annotated: bool) -> ClusterStep {
    create("web", "node-a", annotated.then_some(r#"["198.19.0.1"]"#))
}

fn claim(address: &str) -> ClusterStep {
    annotate("web", Some(&format!(r#"["{address}"]"#)))
}

fn owner() -> ClusterStep {
    create("mate", "node-a", None)
}

fn far() -> ClusterStep {
    create("far", "node-b", None)
}

/// web (198.19.0.0) claims its own address and 203.0.113.10: reaching
/// 203.0.113.10 it is SNATed to its own address and answers itself, so a
/// TCP connection is never made (nothing delivered), while the other
/// protocols reach it unanswered; from outside, TCP connects.
#[rstest]
#[case::icmp("web", Protocol::Icmp, "pod web dst 198.19.0.0 src 198.19.0.0")]
#[case::gre("web", Protocol::Gre, "pod web dst 198.19.0.0 src 198.19.0.0")]
#[case::sctp("web", Protocol::Sctp, "pod web dst 198.19.0.0 src 198.19.0.0")]
#[case::tcp("web", Protocol::Tcp, "dropped at web (NoConnection)")]
#[case::tcp_from_outside(
    "client",
    Protocol::Tcp,
    "pod web dst 198.19.0.0 src 198.18.1.10 reply 203.0.113.10"
)]
fn a_pod_claiming_its_own_address_beside_another_reaches_the_other_unanswered(
    #[case] from: &str,
    #[case] protocol: Protocol,
    #[case] expected: &str,
) {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web", "node-a", None),
            annotate("web", Some(r#"["198.19.0.0", "203.0.113.10"]"#)),
        ],
    );
    let packet = Packet::new(from, ip("203.0.113.10"), protocol);
    let prediction = cluster.predict(&packet).unwrap().as_sent(&packet);
    assert_eq!(describe(&prediction), [expected]);
    // Without its own address among them, TCP connects.
    let cluster = cluster_with(
        config(true, true, false),
        &[create("web", "node-a", Some(r#"["203.0.113.10"]"#))],
    );
    assert_eq!(
        predict(&cluster, from, "203.0.113.10", Protocol::Tcp, ECHO_PORT),
        [format!(
            "pod web dst 198.19.0.0 src {} reply 203.0.113.10",
            if from == "web" {
                "203.0.113.10"
            } else {
                "198.18.1.10"
            }
        )]
    );
}

/// web-0 (198.19.0.0), web-1 and web-2 (198.19.0.2) on node-a; web-1
/// claims web-0's address, web-2 holds 203.0.113.10. web-2's answers to
/// web-0 go to web-1. An SCTP probe's DATA without the INIT ACK's tag is
/// invalid to node-a's conntrack, which saw that INIT ACK: untranslated, to
/// the floating IP it dies on web-2's interface, while sent to web-2's own
/// address it arrives as it is (explore seed 6001 case 217, every reference
/// dataplane alike; scenarios/floating-ip-shadows-answers.yaml).
#[rstest]
#[case::sctp_to_the_floating_ip(
    Protocol::Sctp,
    "203.0.113.10",
    "dropped at node-a (NoAssociation)"
)]
#[case::sctp_to_the_pod(
    Protocol::Sctp,
    "198.19.0.2",
    "pod web-2 dst 198.19.0.2 src 198.19.0.0"
)]
#[case::icmp_to_the_floating_ip(
    Protocol::Icmp,
    "203.0.113.10",
    "pod web-2 dst 198.19.0.2 src 198.19.0.0"
)]
#[case::tcp_to_the_floating_ip(Protocol::Tcp, "203.0.113.10", "dropped at web-2 (NoConnection)")]
fn a_handshake_whose_answer_goes_to_a_claimant(
    #[case] protocol: Protocol,
    #[case] to: &str,
    #[case] expected: &str,
) {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-0", "node-a", None),
            create("web-1", "node-a", Some(r#"["198.19.0.0"]"#)),
            create("web-2", "node-a", Some(r#"["203.0.113.10"]"#)),
        ],
    );
    let packet = Packet::new("web-0", ip(to), protocol);
    let prediction = cluster.predict(&packet).unwrap().as_sent(&packet);
    assert_eq!(describe(&prediction), [expected]);
    // With web-1 claiming nothing, every handshake completes.
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-0", "node-a", None),
            create("web-1", "node-a", None),
            create("web-2", "node-a", Some(r#"["203.0.113.10"]"#)),
        ],
    );
    let prediction = cluster.predict(&packet).unwrap().as_sent(&packet);
    assert!(prediction.may_connect(), "{prediction:?}");
}

/// The catalogue's cluster with the pods' pool as calico-node creates it:
/// NAT outgoing on (scenario/load.rs).
fn masquerading() -> crate::calico::cluster::ClusterConfig {
    let mut config = config(true, true, false);
    config.pools[0].nat_outgoing = true;
    config
}

/// A member's address (a pod's, a node's or the client's).
fn cluster_address(cluster: &Cluster, name: &str) -> IpAddr {
    if let Some(pod) = cluster.pod(name) {
        return pod.addresses[0];
    }
    let network = &cluster.config().network;
    let host = network.node(name).or_else(|| network.external(name));
    host.and_then(|h| h.of_family(IpFamily::V4)).unwrap()
}
