use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{unsettled, Unsettled};
use crate::control::{FipRoute, RouteNext};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn route(destination: &str, next: RouteNext) -> FipRoute {
    FipRoute {
        destination: ip(destination),
        next,
    }
}

fn via(hop: &str) -> RouteNext {
    RouteNext::Via(ip(hop))
}

fn members(entries: &[(&str, Vec<FipRoute>)]) -> BTreeMap<String, Vec<FipRoute>> {
    entries
        .iter()
        .map(|(name, routes)| (name.to_string(), routes.clone()))
        .collect()
}

fn expected(entries: &[(&str, Vec<FipRoute>)]) -> BTreeMap<String, BTreeSet<FipRoute>> {
    members(entries)
        .into_iter()
        .map(|(name, routes)| (name, routes.into_iter().collect()))
        .collect()
}

fn watched(ips: &[&str]) -> BTreeSet<IpAddr> {
    ips.iter().map(|text| ip(text)).collect()
}

#[test]
fn missing_fabric_route_is_unsettled() {
    let want = expected(&[
        ("fabric", vec![route("203.0.113.10", via("10.0.0.2"))]),
        ("node-a", vec![]),
    ]);
    let seen = members(&[("fabric", vec![]), ("node-a", vec![])]);
    let left = unsettled("fabric", &want, &seen, &watched(&["203.0.113.10"]));
    assert_eq!(
        left,
        vec![Unsettled {
            member: "fabric".into(),
            floating_ip: ip("203.0.113.10"),
            expected: Some(via("10.0.0.2")),
            seen: None,
        }]
    );
    assert_eq!(
        left[0].to_string(),
        "floating IP 203.0.113.10 on fabric: expected via 10.0.0.2, seen no route"
    );
}

#[test]
fn stale_next_hop_after_a_move_is_unsettled() {
    let want = expected(&[("fabric", vec![route("203.0.113.10", via("10.0.0.3"))])]);
    let seen = members(&[("fabric", vec![route("203.0.113.10", via("10.0.0.2"))])]);
    let left = unsettled("fabric", &want, &seen, &watched(&[]));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seen, Some(via("10.0.0.2")));
}

#[test]
fn leftover_fabric_route_of_a_deleted_floating_ip_is_unsettled() {
    let want = expected(&[("fabric", vec![])]);
    let seen = members(&[("fabric", vec![route("203.0.113.10", via("10.0.0.2"))])]);
    let left = unsettled("fabric", &want, &seen, &watched(&["203.0.113.10"]));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].expected, None);
    // A route to an address the case never floated is none of the wait's business.
    assert!(unsettled("fabric", &want, &seen, &watched(&[])).is_empty());
}

#[test]
fn ecmp_routes_compare_as_sets() {
    let hops = |a: &str, b: &str| RouteNext::Multipath(vec![ip(a), ip(b)]);
    let want = expected(&[(
        "fabric",
        vec![route("203.0.113.10", hops("10.0.0.2", "10.0.0.3"))],
    )]);
    let seen = members(&[(
        "fabric",
        vec![route("203.0.113.10", hops("10.0.0.3", "10.0.0.2"))],
    )]);
    assert!(unsettled("fabric", &want, &seen, &watched(&["203.0.113.10"])).is_empty());
    let one = members(&[("fabric", vec![route("203.0.113.10", via("10.0.0.2"))])]);
    assert_eq!(unsettled("fabric", &want, &one, &watched(&[])).len(), 1);
}

#[test]
fn nodes_are_held_only_to_the_routes_the_model_gives_them() {
    let want = expected(&[
        ("node-a", vec![]),
        ("node-b", vec![route("203.0.113.10", via("10.0.0.1"))]),
    ]);
    // node-a claims the floating IP: what its BIRD learned is not compared.
    let seen = members(&[
        ("node-a", vec![route("203.0.113.10", via("10.0.0.9"))]),
        ("node-b", vec![]),
    ]);
    let left = unsettled("fabric", &want, &seen, &watched(&["203.0.113.10"]));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].member, "node-b");
}
