//! Predictions for the situations the catalogue sends traffic through, each
//! named after its scenario.

use rstest::rstest;

use super::*;
use crate::calico::cluster::tests::{annotate, config, create, ip};
use crate::calico::cluster::{ClusterConfig, ClusterStep};
use crate::calico::diff::ConntrackProfile;
use crate::calico::pool::Encapsulation;
use crate::calico::PodPhase;

pub(super) fn cluster_with(config: ClusterConfig, steps: &[ClusterStep]) -> Cluster {
    let mut cluster = Cluster::new(config);
    for step in steps {
        cluster.apply(step).unwrap();
    }
    cluster
}

/// One line per outcome: `pod web dst 198.19.0.0 src 198.18.1.10 reply 203.0.113.10`.
pub(super) fn describe(prediction: &Prediction) -> Vec<String> {
    prediction
        .outcomes
        .iter()
        .map(|o| match &o.landing {
            Landing::Pod {
                pod,
                seen_destination,
                seen_source,
                reply_source,
                quoted_destination,
            } => {
                let mut text = format!("pod {pod} dst {seen_destination} src {seen_source}");
                if let Some(reply) = reply_source {
                    text.push_str(&format!(" reply {reply}"));
                }
                if let Some(quoted) = quoted_destination {
                    text.push_str(&format!(" quoted {quoted}"));
                }
                text
            }
            Landing::Host { host, .. } => format!("host {host}"),
            Landing::Dropped { at, reason } => format!("dropped at {at} ({reason:?})"),
        })
        .collect()
}

pub(super) fn predict(
    cluster: &Cluster,
    from: &str,
    to: &str,
    protocol: Protocol,
    port: u16,
) -> Vec<String> {
    let packet = Packet {
        port,
        ..Packet::new(from, ip(to), protocol)
    };
    describe(&cluster.predict(&packet).unwrap())
}

const FIP: &str = r#"["203.0.113.10"]"#;

/// from-external-v4, from-*-node-*, loopback-own-floating-ip,
/// egress-keeps-pod-address, icmp-error-quotes-floating-ip: web (198.19.0.0)
/// on node-a holds 203.0.113.10; peer (198.19.0.64) on node-b; mate
/// (198.19.0.1) on node-a.
#[rstest]
#[case::external(
    "client",
    "203.0.113.10",
    Protocol::Icmp,
    7,
    "pod web dst 198.19.0.0 src 198.18.1.10 reply 203.0.113.10"
)]
#[case::external_gre(
    "client",
    "203.0.113.10",
    Protocol::Gre,
    7,
    "pod web dst 198.19.0.0 src 198.18.1.10 reply 203.0.113.10"
)]
#[case::external_sctp(
    "client",
    "203.0.113.10",
    Protocol::Sctp,
    7,
    "pod web dst 198.19.0.0 src 198.18.1.10 reply 203.0.113.10"
)]
#[case::other_node_pod(
    "peer",
    "203.0.113.10",
    Protocol::Icmp,
    7,
    "pod web dst 198.19.0.0 src 198.19.0.64 reply 203.0.113.10"
)]
#[case::same_node_pod(
    "mate",
    "203.0.113.10",
    Protocol::Tcp,
    7,
    "pod web dst 198.19.0.0 src 198.19.0.1 reply 203.0.113.10"
)]
#[case::hosting_node(
    "node-a",
    "203.0.113.10",
    Protocol::Icmp,
    7,
    "pod web dst 198.19.0.0 src 198.18.0.10 reply 203.0.113.10"
)]
#[case::other_node(
    "node-b",
    "203.0.113.10",
    Protocol::Udp,
    7,
    "pod web dst 198.19.0.0 src 198.18.0.11 reply 203.0.113.10"
)]
#[case::loopback(
    "web",
    "203.0.113.10",
    Protocol::Udp,
    7,
    "pod web dst 198.19.0.0 src 203.0.113.10 reply 203.0.113.10"
)]
#[case::egress(
    "web",
    "198.19.0.64",
    Protocol::Gre,
    7,
    "pod peer dst 198.19.0.64 src 198.19.0.0 reply 198.19.0.64"
)]
#[case::closed_port(
    "client",
    "203.0.113.10",
    Protocol::Udp,
    9,
    "pod web dst 198.19.0.0 src 198.18.1.10 quoted 203.0.113.10"
)]
#[case::closed_tcp_port(
    "client",
    "203.0.113.10",
    Protocol::Tcp,
    9,
    "pod web dst 198.19.0.0 src 198.18.1.10"
)]
#[case::unclaimed(
    "client",
    "203.0.113.11",
    Protocol::Icmp,
    7,
    "dropped at fabric (NoRoute)"
)]
#[case::no_pod_there(
    "client",
    "198.19.0.2",
    Protocol::Icmp,
    7,
    "dropped at node-a (Blackhole)"
)]
#[case::node("client", "198.18.0.11", Protocol::Icmp, 7, "host node-b")]
fn one_floating_ip(
    #[case] from: &str,
    #[case] to: &str,
    #[case] protocol: Protocol,
    #[case] port: u16,
    #[case] landing: &str,
) {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web", "node-a", Some(FIP)),
            create("peer", "node-b", None),
            create("mate", "node-a", None),
        ],
    );
    assert_eq!(predict(&cluster, from, to, protocol, port), [landing]);
}

/// outside-every-pool, vxlan- and ipip-pool-exported-to-fabric,
/// feature-off-in-felix: who reaches the floating IP, by where BGP takes it.
#[rstest]
#[case::outside_every_pool("192.0.2.10", None, ["pod", "dropped at fabric (NoRoute)", "dropped at fabric (NoRoute)"])]
#[case::vxlan_pool("203.0.113.10", Some(Encapsulation::Vxlan), ["pod", "pod", "pod"])]
#[case::ipip_pool("203.0.113.10", Some(Encapsulation::Ipip), ["pod", "pod", "pod"])]
fn advertisement(
    #[case] floating_ip: &str,
    #[case] encapsulation: Option<Encapsulation>,
    #[case] from_node_a_client_peer: [&str; 3],
) {
    let mut config = config(true, true, false);
    if let Some(encapsulation) = encapsulation {
        config.pools[1].encapsulation = encapsulation;
    }
    let value = format!(r#"["{floating_ip}"]"#);
    let cluster = cluster_with(
        config,
        &[
            create("web", "node-a", Some(&value)),
            create("peer", "node-b", None),
        ],
    );
    for (from, expected) in ["node-a", "client", "peer"]
        .iter()
        .zip(from_node_a_client_peer)
    {
        let got = predict(&cluster, from, floating_ip, Protocol::Icmp, 7);
        assert!(got[0].starts_with(expected), "{from}: {got:?}");
    }
}

#[test]
fn felix_off_programs_nothing_and_the_pod_is_still_reachable() {
    let cluster = cluster_with(
        config(false, true, false),
        &[create("web", "node-a", Some(FIP))],
    );
    let to_fip = |from| predict(&cluster, from, "203.0.113.10", Protocol::Icmp, 7);
    assert_eq!(to_fip("client"), ["dropped at fabric (NoRoute)"]);
    // The hosting node has no route to it either: its default route.
    assert_eq!(to_fip("node-a"), ["dropped at fabric (NoRoute)"]);
    assert_eq!(
        predict(&cluster, "client", "198.19.0.0", Protocol::Icmp, 7),
        ["pod web dst 198.19.0.0 src 198.18.1.10 reply 198.19.0.0"]
    );
}

/// duplicate-claim-across-nodes: ECMP at the fabric picks one claimant per
/// flow; the hosting nodes keep their own.
#[test]
fn duplicate_claims_across_nodes_are_one_of_two() {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-a", "node-a", Some(FIP)),
            create("web-b", "node-b", Some(FIP)),
        ],
    );
    let prediction = cluster
        .predict(&Packet::new("client", ip("203.0.113.10"), Protocol::Udp))
        .unwrap();
    assert_eq!(prediction.pods(), ["web-a", "web-b"]);
    assert_eq!(
        predict(&cluster, "node-b", "203.0.113.10", Protocol::Icmp, 7),
        ["pod web-b dst 198.19.0.64 src 198.18.0.11 reply 203.0.113.10"]
    );
}

/// floating-ip-shadows-pod: a floating IP equal to another pod's address
/// takes that address's traffic on the claiming node, and (exported /32
/// over the block's /26) everywhere BGP takes it.
#[test]
fn a_floating_ip_that_is_another_pods_address_shadows_it() {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("db", "node-b", None),
            create("web", "node-a", None),
            annotate("web", Some(r#"["198.19.0.0"]"#)),
        ],
    );
    let landing = |from| predict(&cluster, from, "198.19.0.0", Protocol::Icmp, 7);
    assert_eq!(
        landing("node-a"),
        ["pod web dst 198.19.0.64 src 198.18.0.10 reply 198.19.0.0"]
    );
    assert_eq!(
        landing("client"),
        ["pod web dst 198.19.0.64 src 198.18.1.10 reply 198.19.0.0"]
    );
    // db's own node keeps its route to db.
    assert_eq!(
        landing("node-b"),
        ["pod db dst 198.19.0.0 src 198.18.0.11 reply 198.19.0.0"]
    );
}

/// move-on-one-node-calico / -strict: a flow established before a move on
/// one node keeps its DNAT under Calico's profile, follows it under strict.
#[rstest]
#[case::calico(ConntrackProfile::Calico, ["pod web-a", "dropped at fabric", "pod web-a", "pod web-b"])]
#[case::strict(ConntrackProfile::Strict, ["pod web-a", "dropped at fabric", "pod web-b", "pod web-b"])]
fn a_flow_across_a_move_on_one_node(
    #[case] profile: ConntrackProfile,
    #[case] landings: [&str; 4],
) {
    let mut config = config(true, true, false);
    config.profile = profile;
    let mut cluster = cluster_with(
        config,
        &[
            create("web-a", "node-a", Some(FIP)),
            create("web-b", "node-a", None),
        ],
    );
    let mut flow = Flow::new(Packet::new("client", ip("203.0.113.10"), Protocol::Icmp));
    let mut seen = vec![describe(&cluster.advance(&mut flow).unwrap())[0].clone()];
    for step in [annotate("web-a", None), annotate("web-b", Some(FIP))] {
        let effects = cluster.apply(&step).unwrap();
        flow.forget(&effects.felix.changes.conntrack);
        seen.push(describe(&cluster.advance(&mut flow).unwrap())[0].clone());
    }
    // A new flow goes to the new pod whatever the profile.
    seen.push(predict(&cluster, "client", "203.0.113.10", Protocol::Icmp, 7)[0].clone());
    for (got, want) in seen.iter().zip(landings) {
        assert!(got.starts_with(want), "{seen:?}");
    }
}

/// route-move-cleans-floating-ip-conntrack: a flow that began before the
/// floating IP had a pod carries no DNAT; once the first claimant's device
/// route exists its packets wait there for a neighbour that never answers;
/// when the device route moves to a newer interface, Felix
/// deletes the entry and the flow is DNAT'd to the text-earliest claimant.
#[test]
fn felix_route_move_cleans_a_flow_without_nat() {
    let mut cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-a", "node-a", None),
            create("web-b", "node-a", None),
        ],
    );
    let mut flow = Flow::new(Packet::new("node-a", ip("203.0.113.10"), Protocol::Icmp));
    let mut seen = vec![describe(&cluster.advance(&mut flow).unwrap())];
    for step in [annotate("web-a", Some(FIP)), annotate("web-b", Some(FIP))] {
        let effects = cluster.apply(&step).unwrap();
        flow.forget(&effects.felix.changes.conntrack);
        seen.push(describe(&cluster.advance(&mut flow).unwrap()));
    }
    assert_eq!(
        seen,
        [
            vec!["dropped at fabric (NoRoute)".to_string()],
            vec!["dropped at node-a (NoNeighbour)".to_string()],
            vec!["pod web-a dst 198.19.0.0 src 198.18.0.10 reply 203.0.113.10".to_string()],
        ]
    );
}

#[test]
fn a_sender_without_the_family_cannot_send() {
    let cluster = cluster_with(config(true, true, false), &[create("web", "node-a", None)]);
    let packet = Packet::new("client", ip("2001:db8:f1::10"), Protocol::Icmp);
    assert_eq!(
        cluster.predict(&packet).unwrap_err().to_string(),
        "`client` has no IPv6 address in this cluster"
    );
}

/// nat-outgoing-to-external and unknown-interface-drop: Felix's
/// NAT-outgoing masquerades what leaves the pools (a pod holding a floating
/// IP too), and a pod Felix has no endpoint for sends nothing past its node.
#[test]
fn nat_outgoing_and_the_unknown_interface_drop() {
    let mut with_masq = config(true, true, false);
    with_masq.pools[0].nat_outgoing = true;
    let mut cluster = cluster_with(
        with_masq,
        &[
            create("plain", "node-a", None),
            create("web", "node-a", Some(FIP)),
            create("peer", "node-b", None),
        ],
    );
    let to_client = |cluster: &Cluster, from: &str| {
        let prediction = cluster
            .predict(&Packet::new(from, ip("198.18.1.10"), Protocol::Icmp))
            .unwrap();
        prediction
            .outcomes
            .iter()
            .map(|o| match &o.landing {
                Landing::Host { seen_source, .. } => format!("{seen_source:?}"),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    // node-a's uplink, for both: never the floating IP.
    assert_eq!(to_client(&cluster, "plain"), ["Some(198.18.0.10)"]);
    assert_eq!(to_client(&cluster, "web"), ["Some(198.18.0.10)"]);
    // Inside the pools: no masquerade.
    assert_eq!(
        predict(&cluster, "plain", "198.19.0.64", Protocol::Icmp, 7),
        ["pod peer dst 198.19.0.64 src 198.19.0.0 reply 198.19.0.64"]
    );
    cluster
        .apply(&ClusterStep::SetPhase {
            pod: "plain".into(),
            phase: PodPhase::Succeeded,
        })
        .unwrap();
    for to in ["198.19.0.64", "198.18.1.10", "198.18.0.10"] {
        assert_eq!(
            predict(&cluster, "plain", to, Protocol::Udp, 7),
            ["dropped at node-a (UnknownInterface)"],
            "{to}"
        );
    }
}

/// Found by `fip-harness explore` (seed 5, case 8) on the nftables backend:
/// a pod whose annotation the datastore conversion rejects loses its Felix
/// endpoint. The model first promised it replies; then (explore's fix) only
/// the answers were lost. Calico drops more: without an endpoint its
/// interface matches only the workload dispatch's last rule, "Unknown
/// interface" (felix/rules/dispatch.go WorkloadDispatchChains, reached from
/// felix/rules/static.go StaticFilterForwardChains and, for the node itself,
/// filterWorkloadToHostChain), so everything it sends stops at its node.
#[rstest]
#[case::to_a_floating_ip(Protocol::Icmp, "203.0.113.11", 7)]
#[case::gre(Protocol::Gre, "203.0.113.11", 7)]
#[case::closed_udp_port(Protocol::Udp, "203.0.113.11", 9)]
#[case::its_own_node(Protocol::Icmp, "198.18.0.10", 7)]
fn a_pod_felix_has_no_endpoint_for_is_dropped_at_its_node(
    #[case] protocol: Protocol,
    #[case] to: &str,
    #[case] port: u16,
) {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-0", "node-a", None),
            annotate("web-0", Some("203.0.113.10")),
            create("web-1", "node-a", Some(r#"["203.0.113.11"]"#)),
        ],
    );
    assert!(!cluster.is_routed("web-0"));
    assert_eq!(
        predict(&cluster, "web-0", to, protocol, port),
        ["dropped at node-a (UnknownInterface)"]
    );
}

/// Found by `fip-harness explore` (seed 1, case 204) on every backend: a
/// floating IP equal to another pod's address on the same node gives two
/// /32 routes for that address, the pod's own and the claimant's device
/// route. Felix treats both as the same class of route (felix/dataplane/
/// linux/endpoint_mgr.go calculateRoutes adds an endpoint's ExtIps beside
/// its own addresses) and keeps the one whose interface has the highest
/// ifindex (felix/routetable/route_table.go recalculateDesiredKernelRoute):
/// the later pod's. Traffic DNATed to the shadowed pod then goes to the
/// claimant, which does not answer for that address.
#[test]
fn a_pods_own_route_loses_to_a_later_pods_claim_on_its_address() {
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-0", "node-a", Some(r#"["203.0.113.12"]"#)),
            create("web-2", "node-a", Some(r#"["198.19.0.0"]"#)),
        ],
    );
    assert_eq!(
        predict(&cluster, "client", "203.0.113.12", Protocol::Icmp, 7),
        ["dropped at node-a (NoNeighbour)"]
    );
    // The other way round, the pod's own route is the later one and wins.
    let cluster = cluster_with(
        config(true, true, false),
        &[
            create("web-2", "node-a", Some(r#"["198.19.0.1"]"#)),
            create("web-0", "node-a", Some(r#"["203.0.113.12"]"#)),
        ],
    );
    assert_eq!(
        predict(&cluster, "client", "203.0.113.12", Protocol::Icmp, 7),
        ["pod web-0 dst 198.19.0.1 src 198.18.1.10 reply 203.0.113.12"]
    );
}

/// explore-11-57: web (198.19.0.0) holds 203.0.113.12 and its own address
/// as floating IPs; reaching 203.0.113.12, the loopback SNAT takes the
/// text-earliest, its own address, so it answers itself and the sender
/// gets nothing back.
#[rstest]
#[case::icmp(Protocol::Icmp, 7)]
#[case::udp_closed_port(Protocol::Udp, 9)]
fn a_pod_snatted_to_its_own_address_answers_itself(#[case] protocol: Protocol, #[case] port: u16) {
    let cluster = cluster_with(
        config(true, true, false),
        &[create(
            "web",
            "node-a",
            Some(r#"["203.0.113.12","198.19.0.0"]"#),
        )],
    );
    assert_eq!(
        predict(&cluster, "web", "203.0.113.12", protocol, port),
        ["pod web dst 198.19.0.0 src 198.19.0.0"]
    );
}

/// matrix-life-outside: a pod streams to a floating IP outside every pool
/// while the pod holding it is deleted and created again on the same node.
/// Between the two, the stream's packets leave masqueraded by the node's
/// uplink (NAT-outgoing); once the floating IP's route leads to the new
/// pod's interface the kernel kills that entry (nf_nat_oif_changed) and the
/// stream's next packet gets the new DNAT. Before this, the model kept the
/// entry and predicted no pod (the three reference dataplanes delivered).
#[test]
fn a_masqueraded_flow_is_renatted_when_its_route_changes_interface() {
    const OUTSIDE: &str = r#"["192.0.2.10"]"#;
    let mut config = config(true, true, false);
    config.pools[0].nat_outgoing = true;
    let mut cluster = cluster_with(
        config,
        &[
            create("dup", "node-b", None),
            create("web", "node-b", Some(OUTSIDE)),
        ],
    );
    let packet = Packet::new("dup", ip("192.0.2.10"), Protocol::Udp);
    let mut flow = Flow::new(packet.clone());
    let mut watch = StreamWatch::start(&cluster, packet).unwrap();
    let mut seen = vec![describe(&cluster.advance(&mut flow).unwrap())];
    let delete = ClusterStep::DeletePod { name: "web".into() };
    for step in [delete, create("web", "node-b", Some(OUTSIDE))] {
        let effects = cluster.apply(&step).unwrap();
        flow.forget(&effects.felix.changes.conntrack);
        seen.push(describe(&cluster.advance(&mut flow).unwrap()));
        watch.step(&cluster, &effects.felix).unwrap();
    }
    // Both pods named web got the stream, each at its own address then.
    let expect = crate::check::StreamExpectation {
        delivered_to: Some(crate::check::Delivery::Pods(vec!["web".into()])),
        ..Default::default()
    };
    assert_eq!(watch.disagreements(&cluster, &expect), []);
    let web = |address: &str| {
        vec![format!(
            "pod web dst {address} src 198.19.0.0 reply 192.0.2.10"
        )]
    };
    assert_eq!(
        seen,
        [
            web("198.19.0.1"),
            vec!["dropped at fabric (NoRoute)".to_string()],
            web("198.19.0.2"),
        ]
    );
}
