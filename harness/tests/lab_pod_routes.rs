//! Root tests: a node's routes to its pods' own addresses, taken away and
//! given back as Felix's route table does when a pod's endpoint goes and
//! comes back, beside a floating-IP claim of the same address.

mod common;

use std::net::IpAddr;

use common::lab_view::{assert_gone, host_links, routes};
use common::{lab_name, node, pod, use_test_run_dir};
use fip_harness::lab::{Lab, LabSpec, NextHop};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pod's own route goes (its endpoint gone) and comes back without taking
/// the route to its address that a later pod of its node holds (a
/// floating-IP claim of that address: Felix keeps the highest ifindex's);
/// with that claim gone, the pod's own route is what comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_own_route_leaves_a_later_claimants_route_to_its_address() {
    use_test_run_dir();
    let before = host_links();
    let name = lab_name("tclaim");
    {
        let mut lab = Lab::build(LabSpec {
            name: name.clone(),
            nodes: vec![node("node-0", &["198.19.0.0/26"])],
            externals: vec!["client".into()],
            dual_stack: false,
        })
        .await
        .unwrap();
        // One at a time, so the claimant's interface is the later one.
        lab.add_pods(&[pod("owner", "node-0", &["198.19.0.1"])])
            .await
            .unwrap();
        lab.add_pods(&[pod("claimant", "node-0", &["198.19.0.2"])])
            .await
            .unwrap();
        let owner_dev = lab.pod_interface("owner").unwrap().to_string();
        let claimant_dev = lab.pod_interface("claimant").unwrap().to_string();
        let address = ip("198.19.0.1");
        let via = |dev: &str| format!("198.19.0.1 dev {dev}");
        lab.replace_host_route("node-0", address, &NextHop::Device(claimant_dev.clone()))
            .await
            .unwrap();
        lab.route_pod("owner", false).await.unwrap();
        assert!(routes(&lab, "node-0", "-4").contains(&via(&claimant_dev)));
        lab.route_pod("owner", true).await.unwrap();
        assert!(routes(&lab, "node-0", "-4").contains(&via(&claimant_dev)));
        lab.remove_host_route("node-0", address).await.unwrap();
        lab.route_pod("owner", true).await.unwrap();
        assert!(routes(&lab, "node-0", "-4").contains(&via(&owner_dev)));
        lab.route_pod("owner", false).await.unwrap();
        assert!(!routes(&lab, "node-0", "-4")
            .iter()
            .any(|r| r.starts_with("198.19.0.1 ")));
        lab.teardown().unwrap();
    }
    assert_gone(&name, &before);
}
