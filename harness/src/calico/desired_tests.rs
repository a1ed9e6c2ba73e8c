//! Unit tests of the pure control plane: desired state and diff.

use std::net::IpAddr;

use ipnet::IpNet;
use rstest::rstest;

use super::desired::{desired_state, ClusterState, NodeUplink, Topology};
use super::diff::{diff, ConntrackDeletion, ConntrackMatch, ConntrackProfile};
use super::nat::{DnatMapping, SnatMapping};
use super::routes::{FipRoute, RouteNext};
use crate::calico::{veth_name_for_workload, Encapsulation, IpNatPair, IpPool, WorkloadEndpoint};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pod(name: &str, node: &str, address: &str, fips: &[&str]) -> WorkloadEndpoint {
    WorkloadEndpoint {
        namespace: "default".into(),
        pod: name.into(),
        node: node.into(),
        interface: veth_name_for_workload("default", name),
        ifindex: None,
        addresses: vec![ip(address)],
        ip_nats: fips
            .iter()
            .map(|f| IpNatPair {
                internal: ip(address),
                external: ip(f),
            })
            .collect(),
    }
}

/// A pool of `cidr` (also the incremental tests' pool).
pub(super) fn pool(cidr: &str, encapsulation: Encapsulation, disable_bgp_export: bool) -> IpPool {
    IpPool {
        encapsulation,
        disable_bgp_export,
        ..IpPool::plain(cidr, cidr.parse::<IpNet>().unwrap(), 26)
    }
}

fn topology() -> Topology {
    Topology {
        nodes: ["node-a", "node-b", "node-c"]
            .iter()
            .enumerate()
            .map(|(i, n)| NodeUplink {
                name: n.to_string(),
                uplinks: vec![
                    ip(&format!("198.18.0.{}", 10 + i)),
                    ip(&format!("2001:db8:ff::{}", 10 + i)),
                ],
            })
            .collect(),
        fabric: "fabric".into(),
    }
}

fn cluster(endpoints: Vec<WorkloadEndpoint>) -> ClusterState {
    ClusterState {
        endpoints,
        felix_floating_ips: true,
        calico: Default::default(),
        pools: vec![
            pool("198.19.0.0/16", Encapsulation::None, false),
            pool("203.0.113.0/24", Encapsulation::None, false),
            pool("2001:db8:f1::/64", Encapsulation::None, false),
        ],
        node_blocks: Default::default(),
    }
}

#[test]
fn nat_only_on_the_hosting_node_and_routes_everywhere_else() {
    let state = desired_state(
        &cluster(vec![
            pod("web", "node-a", "198.19.0.5", &["203.0.113.1"]),
            pod("web6", "node-b", "2001:db8:1::5", &["2001:db8:f1::1"]),
        ]),
        &topology(),
    );
    insta::assert_yaml_snapshot!(state);
}

#[test]
fn felix_switch_off_means_no_nat_and_no_routes() {
    let mut cluster = cluster(vec![pod("web", "node-a", "198.19.0.5", &["203.0.113.1"])]);
    cluster.felix_floating_ips = false;
    let state = desired_state(&cluster, &topology());
    assert!(state
        .nat
        .values()
        .all(|n| n.dnat.is_empty() && n.snat.is_empty()));
    assert!(state.routes.values().all(|r| r.is_empty()));
    assert_eq!(
        state.nat.len(),
        3,
        "every node still gets a (clearing) state"
    );
}

#[test]
fn a_node_whose_pod_has_the_floating_ip_as_its_address_keeps_its_workload_route() {
    // floating-ip-shadows-pod: web on node-a floats db's address on node-b.
    let state = desired_state(
        &cluster(vec![
            pod("db", "node-b", "198.19.0.0", &[]),
            pod("web", "node-a", "198.19.0.64", &["198.19.0.0"]),
        ]),
        &topology(),
    );
    let routed = |member: &str| {
        state.routes[member]
            .iter()
            .any(|r| r.destination == ip("198.19.0.0"))
    };
    assert!(routed("fabric"));
    assert!(routed("node-c"));
    assert!(!routed("node-b"), "BIRD cannot replace db's workload route");
}

/// Under BIRD a floating IP inside an IPAM block of the claiming node is
/// not exported (bird_aggr.cfg.template `calico_aggr` rejects what lies
/// inside the node's own blocks at the normal priority): the other members
/// reach it by the block's route. A claimant on a node that does not hold
/// the block still exports it, so only its node is in the route.
#[rstest]
#[case::own_block_only(&["node-a"], None)]
#[case::own_block_and_another_node(&["node-a", "node-b"], Some("198.18.0.11"))]
fn a_floating_ip_inside_the_claiming_nodes_own_block_is_not_exported(
    #[case] claiming: &[&str],
    #[case] via: Option<&str>,
) {
    let pods = claiming
        .iter()
        .enumerate()
        .map(|(i, node)| {
            pod(
                &format!("web-{i}"),
                node,
                &format!("198.19.1.{i}"),
                &["198.19.0.9"],
            )
        })
        .collect();
    let mut cluster = cluster(pods);
    let block = |cidr: &str| vec![cidr.parse::<IpNet>().unwrap()];
    cluster
        .node_blocks
        .insert("node-a".into(), block("198.19.0.0/26"));
    cluster
        .node_blocks
        .insert("node-b".into(), block("198.19.0.64/26"));
    let state = desired_state(&cluster, &topology());
    let to_fabric = state.routes["fabric"]
        .iter()
        .find(|r| r.destination == ip("198.19.0.9"))
        .map(|r| r.next.clone());
    assert_eq!(to_fabric, via.map(|v| RouteNext::Via(ip(v))));
    assert_eq!(
        state.routes["node-c"]
            .iter()
            .any(|r| r.destination == ip("198.19.0.9")),
        via.is_some()
    );
    // Felix's device route on the claiming node stays.
    assert!(state.routes["node-a"]
        .iter()
        .any(|r| r.destination == ip("198.19.0.9") && matches!(r.next, RouteNext::Device(_))));
}

#[test]
fn a_pod_that_stops_claiming_its_own_address_keeps_its_workload_route() {
    // Felix's route targets of an endpoint are its own nets and its NAT
    // external IPs together (endpoint_mgr.go calculateRoutes): the claim
    // of its own address adds no route of its own, and dropping the claim
    // removes none on its node (it would take the pod's own route away).
    let claiming = pod(
        "web",
        "node-a",
        "198.19.0.8",
        &["198.19.0.8", "203.0.113.10"],
    );
    let plain = pod("web", "node-a", "198.19.0.8", &["203.0.113.10"]);
    let before = desired_state(&cluster(vec![claiming]), &topology());
    let after = desired_state(&cluster(vec![plain]), &topology());
    let changes = diff(&before, &after, ConntrackProfile::Calico);
    let removed_on_a: Vec<IpAddr> = (changes.routes.iter())
        .filter(|change| change.member == "node-a")
        .flat_map(|change| change.remove.clone())
        .collect();
    assert!(!removed_on_a.contains(&ip("198.19.0.8")), "{changes:#?}");
    assert!(!before.routes["node-a"]
        .iter()
        .any(|r| r.destination == ip("198.19.0.8")));
}

#[test]
fn unexported_floating_ip_has_only_the_device_route() {
    let mut cluster = cluster(vec![pod("web", "node-a", "198.19.0.5", &["203.0.113.1"])]);
    cluster.pools = vec![
        pool("198.19.0.0/16", Encapsulation::None, false),
        pool("203.0.113.0/24", Encapsulation::None, true),
    ];
    let state = desired_state(&cluster, &topology());
    assert_eq!(
        state.routes["node-a"].iter().collect::<Vec<_>>(),
        vec![&FipRoute {
            destination: ip("203.0.113.1"),
            next: RouteNext::Device(veth_name_for_workload("default", "web")),
        }]
    );
    for member in ["node-b", "node-c", "fabric"] {
        assert!(state.routes[member].is_empty(), "{member}");
    }
    assert_eq!(
        state.nat["node-a"].dnat.len(),
        1,
        "NAT does not depend on BGP"
    );
}

/// BIRD exports an encapsulated pool's routes to its peers, but the other
/// nodes' kernel filter refuses them (confd bgp_processor.go processIPPool).
#[rstest]
#[case::ipip(Encapsulation::Ipip)]
#[case::vxlan(Encapsulation::Vxlan)]
fn encapsulated_pool_floating_ip_reaches_the_fabric_only(#[case] encapsulation: Encapsulation) {
    let mut cluster = cluster(vec![pod("web", "node-a", "198.19.0.5", &["203.0.113.1"])]);
    cluster.pools = vec![
        pool("198.19.0.0/16", Encapsulation::None, false),
        pool("203.0.113.0/24", encapsulation, false),
    ];
    let state = desired_state(&cluster, &topology());
    assert_eq!(
        state.routes["fabric"].iter().collect::<Vec<_>>(),
        vec![&FipRoute {
            destination: ip("203.0.113.1"),
            next: RouteNext::Via(ip("198.18.0.10")),
        }]
    );
    for member in ["node-b", "node-c"] {
        assert!(state.routes[member].is_empty(), "{member}");
    }
    assert_eq!(state.routes["node-a"].len(), 1, "the device route");
}

#[test]
fn outside_every_pool_only_the_hosting_node_routes_it() {
    let mut cluster = cluster(vec![pod("web", "node-a", "198.19.0.5", &["192.0.2.1"])]);
    cluster.pools.truncate(1);
    let state = desired_state(&cluster, &topology());
    assert_eq!(state.routes["node-a"].len(), 1);
    assert!(state.routes["fabric"].is_empty());
}

#[test]
fn duplicate_claim_on_one_node_goes_to_the_alphabetically_earliest_internal() {
    // "198.19.0.10" < "198.19.0.9" as text, which is how Felix compares.
    let state = desired_state(
        &cluster(vec![
            pod("nine", "node-a", "198.19.0.9", &["203.0.113.1"]),
            pod("ten", "node-a", "198.19.0.10", &["203.0.113.1"]),
        ]),
        &topology(),
    );
    assert_eq!(
        state.nat["node-a"].dnat,
        vec![DnatMapping {
            external: ip("203.0.113.1"),
            internal: ip("198.19.0.10")
        }]
    );
    assert_eq!(state.nat["node-a"].snat.len(), 1, "the loser gets no SNAT");
    insta::assert_yaml_snapshot!(state.conflicts);
}

#[test]
fn duplicate_claim_across_nodes_nats_on_both_and_peers_route_through_both() {
    let state = desired_state(
        &cluster(vec![
            pod("a", "node-a", "198.19.0.20", &["203.0.113.1"]),
            pod("b", "node-b", "198.19.0.100", &["203.0.113.1"]),
        ]),
        &topology(),
    );
    assert_eq!(state.nat["node-a"].dnat.len(), 1);
    assert_eq!(state.nat["node-b"].dnat.len(), 1);
    assert_eq!(state.owners[&ip("203.0.113.1")].node, "node-b");
    let ecmp = RouteNext::Multipath(vec![ip("198.18.0.10"), ip("198.18.0.11")]);
    for member in ["fabric", "node-c"] {
        let routes: Vec<_> = state.routes[member].iter().collect();
        assert_eq!(
            routes,
            vec![&FipRoute {
                destination: ip("203.0.113.1"),
                next: ecmp.clone(),
            }],
            "{member}"
        );
    }
    for member in ["node-a", "node-b"] {
        assert!(state.routes[member]
            .iter()
            .all(|r| matches!(r.next, RouteNext::Device(_))));
    }
    insta::assert_yaml_snapshot!(state.conflicts);
}

#[test]
fn several_floating_ips_on_a_pod_snat_to_the_earliest() {
    let state = desired_state(
        &cluster(vec![pod(
            "web",
            "node-a",
            "198.19.0.5",
            &["203.0.113.9", "203.0.113.10", "203.0.113.2"],
        )]),
        &topology(),
    );
    assert_eq!(state.nat["node-a"].dnat.len(), 3);
    assert_eq!(
        state.nat["node-a"].snat,
        vec![SnatMapping {
            internal: ip("198.19.0.5"),
            external: ip("203.0.113.10")
        }]
    );
}

fn moved() -> (ClusterState, ClusterState) {
    let before = cluster(vec![
        pod("old", "node-a", "198.19.0.5", &["203.0.113.1"]),
        pod("other", "node-c", "198.19.0.71", &["203.0.113.7"]),
    ]);
    let after = cluster(vec![
        pod("new", "node-b", "198.19.0.70", &["203.0.113.1"]),
        pod("other", "node-c", "198.19.0.71", &["203.0.113.7"]),
    ]);
    (before, after)
}

#[rstest]
#[case::calico(ConntrackProfile::Calico)]
#[case::strict(ConntrackProfile::Strict)]
fn a_move_changes_both_nodes_and_flushes_per_profile(#[case] profile: ConntrackProfile) {
    let (before, after) = moved();
    let old = desired_state(&before, &topology());
    let new = desired_state(&after, &topology());
    let changes = diff(&old, &new, profile);
    let nodes: Vec<&str> = changes.nat.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, ["node-a", "node-b"], "node-c is untouched");
    let pod_flush = ConntrackMatch::OrigSrcOrReplySrc(ip("198.19.0.5"));
    assert!(changes
        .conntrack
        .iter()
        .any(|d| d.node == "node-a" && d.matching == pod_flush));
    let fip_flushes = changes
        .conntrack
        .iter()
        .filter(|d| d.matching == ConntrackMatch::OrigDst(ip("203.0.113.1")))
        .count();
    match profile {
        ConntrackProfile::Calico => assert_eq!(fip_flushes, 0),
        ConntrackProfile::Strict => assert_eq!(fip_flushes, 3, "on every node"),
    }
    insta::assert_yaml_snapshot!(format!("move_{profile:?}"), changes);
}

#[test]
fn no_change_means_no_transaction() {
    let (before, _) = moved();
    let state = desired_state(&before, &topology());
    assert!(diff(&state, &state, ConntrackProfile::Strict).is_empty());
}

#[test]
fn removing_the_annotation_clears_the_node_and_the_routes() {
    let before = cluster(vec![pod("web", "node-a", "198.19.0.5", &["203.0.113.1"])]);
    let after = cluster(vec![pod("web", "node-a", "198.19.0.5", &[])]);
    let changes = diff(
        &desired_state(&before, &topology()),
        &desired_state(&after, &topology()),
        ConntrackProfile::Calico,
    );
    assert_eq!(changes.nat.len(), 1);
    assert!(changes.nat[0].1.dnat.is_empty());
    assert_eq!(changes.routes.len(), 4, "hosting node, two others, fabric");
    assert!(changes
        .routes
        .iter()
        .all(|r| r.add.is_empty() && r.remove == [ip("203.0.113.1")]));
    // The pod is still there: only the floating IP's device route went, and
    // with it the entries whose original or reply source is the floating IP
    // (Felix's route-table cleanup).
    assert_eq!(
        changes.conntrack,
        vec![ConntrackDeletion {
            node: "node-a".into(),
            matching: ConntrackMatch::OrigSrcOrReplySrc(ip("203.0.113.1")),
        }]
    );
}

/// Two pods of node-a claiming 203.0.113.1: the older veth (ifindex 110)
/// has the text-earliest address, the newer one (111) the numerically lowest.
fn two_claims_on_node_a() -> (WorkloadEndpoint, WorkloadEndpoint) {
    let mut older = pod("web-a", "node-a", "198.19.0.10", &["203.0.113.1"]);
    older.ifindex = Some(110);
    let mut newer = pod("web-b", "node-a", "198.19.0.9", &["203.0.113.1"]);
    newer.ifindex = Some(111);
    (older, newer)
}

/// Two claims on one node whose text and numeric orders differ: the DNAT goes
/// to the text-earliest internal (198.19.0.10, the older veth), the device
/// route to the claimant with the highest ifindex (198.19.0.9, the newer veth).
#[test]
fn one_node_dnat_by_text_and_device_route_by_highest_ifindex() {
    let (older, newer) = two_claims_on_node_a();
    for endpoints in [
        vec![older.clone(), newer.clone()],
        vec![newer.clone(), older.clone()],
    ] {
        let state = desired_state(&cluster(endpoints), &topology());
        assert_eq!(state.nat["node-a"].dnat[0].internal, ip("198.19.0.10"));
        assert_eq!(
            state.routes["node-a"].iter().collect::<Vec<_>>(),
            vec![&FipRoute {
                destination: ip("203.0.113.1"),
                next: RouteNext::Device(newer.interface.clone()),
            }]
        );
    }
}

/// Felix's route table cleans conntrack for a floating IP whose device route
/// moves to another interface of the node, not when the route stays put.
#[test]
fn a_device_route_that_moves_cleans_the_floating_ips_entries_on_its_node() {
    let (older, newer) = two_claims_on_node_a();
    let both = desired_state(&cluster(vec![older.clone(), newer.clone()]), &topology());
    let fip_cleanups = |after: &[&WorkloadEndpoint]| {
        let after = desired_state(
            &cluster(after.iter().map(|e| (*e).clone()).collect()),
            &topology(),
        );
        diff(&both, &after, ConntrackProfile::Calico)
            .conntrack
            .into_iter()
            .filter(|d| d.matching == ConntrackMatch::OrigSrcOrReplySrc(ip("203.0.113.1")))
            .map(|d| d.node)
            .collect::<Vec<_>>()
    };
    let unclaimed = |e: &WorkloadEndpoint| WorkloadEndpoint {
        ip_nats: vec![],
        ..e.clone()
    };
    // The newer veth's claim goes: the route moves to the older one.
    assert_eq!(fip_cleanups(&[&older, &unclaimed(&newer)]), ["node-a"]);
    // The older veth's claim goes: the route stays on the newer one.
    assert!(fip_cleanups(&[&unclaimed(&older), &newer]).is_empty());
}
