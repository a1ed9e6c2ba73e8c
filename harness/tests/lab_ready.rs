//! Root tests: a lab's links carry traffic when its build returns. The
//! kernel turns a veth's carrier on, activates its queue and lets its IPv6
//! addresses leave the tentative state from a work queue that runs late on
//! a loaded machine; until then the link drops what it sends. The readiness
//! check must see a link without carrier and a tentative address, and the
//! build and `add_pods` wait until it sees neither, in nodes and pods.

mod common;

use common::lab_view::ip_in;
use common::{node, pod, program, TestLab};
use fip_harness::lab::netlink::{wait_ready_in, Member, NotReady};

fn member(lab: &TestLab, name: &str) -> Member {
    Member {
        netns: lab.netns(name).clone(),
        nl: lab.lab.netlink(name).unwrap().clone(),
    }
}

fn ip(lab: &TestLab, member: &str, args: &[&str]) {
    ip_in(lab.netns(member), member, args);
}

/// In `member`, a veth pair `rdy0`/`rdy1` with only `rdy0` up, duplicate
/// address detection on for it (the lab turns it off) and 2001:db8:99::1 on
/// it: without carrier, the link is not up and the address stays tentative.
fn half_up_pair(lab: &TestLab, member: &str) {
    ip(
        lab,
        member,
        &[
            "link", "add", "rdy0", "type", "veth", "peer", "name", "rdy1",
        ],
    );
    let out = lab
        .netns(member)
        .command(program("sh"))
        .args(["-c", "echo 1 > /proc/sys/net/ipv6/conf/rdy0/accept_dad"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ip(
        lab,
        member,
        &["address", "add", "2001:db8:99::1/64", "dev", "rdy0"],
    );
    ip(lab, member, &["link", "set", "rdy0", "up"]);
}

#[test]
fn a_built_lab_carries_traffic_and_the_check_sees_a_link_that_does_not() {
    let name = common::lab_name("rdy");
    let lab = TestLab::build(
        &name,
        vec![node("node-0", &["198.19.0.0/26", "2001:db8:1::/122"])],
        &["client"],
        &[pod("pod-a", "node-0", &["198.19.0.1", "2001:db8:1::1"])],
    );
    for name in ["fabric", "node-0", "client"] {
        let state = lab.block_on(member(&lab, name).not_ready()).unwrap();
        assert_eq!(state, NotReady::default(), "{name} right after the build");
    }
    let pod = wait_ready_in(lab.netns("pod-a"), std::time::Duration::ZERO, true).unwrap();
    assert_eq!(pod, NotReady::default(), "pod-a right after add_pods");

    // A pair with one end up: that end has no carrier, and its address
    // stays tentative.
    half_up_pair(&lab, "node-0");
    let node0 = member(&lab, "node-0");
    let state = lab.block_on(node0.not_ready()).unwrap();
    assert_eq!(state.links, vec!["rdy0".to_string()], "{state}");
    assert_eq!(
        state.addresses,
        vec!["2001:db8:99::1".parse::<std::net::IpAddr>().unwrap()],
        "{state}"
    );
    assert!(state.to_string().contains("link rdy0 not up"), "{state}");

    // Its peer up: both ends carry traffic once the kernel's queue has run,
    // and the address is usable once detection is over (about a second).
    ip(&lab, "node-0", &["link", "set", "rdy1", "up"]);
    let started = std::time::Instant::now();
    loop {
        let state = lab.block_on(node0.not_ready()).unwrap();
        if state.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "still not ready: {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    lab.teardown().unwrap();
}

#[test]
fn a_pod_without_ipv6_does_not_wait_for_its_addresses_but_for_its_links() {
    let name = common::lab_name("rdy4");
    let lab = TestLab::build(
        &name,
        vec![node("node-0", &["198.19.0.0/26"])],
        &[],
        &[pod("pod-a", "node-0", &["198.19.0.1"])],
    );
    // In the IPv4 pod, a pair with one end up and detection on: that end
    // has no carrier, so its address stays tentative however long one waits.
    half_up_pair(&lab, "pod-a");
    let zero = std::time::Duration::ZERO;
    let with_ipv6 = wait_ready_in(lab.netns("pod-a"), zero, true).unwrap();
    assert_eq!(with_ipv6.links, vec!["rdy0".to_string()], "{with_ipv6}");
    assert!(
        with_ipv6
            .addresses
            .contains(&"2001:db8:99::1".parse().unwrap()),
        "{with_ipv6}"
    );
    let without = wait_ready_in(lab.netns("pod-a"), zero, false).unwrap();
    assert_eq!(without.links, vec!["rdy0".to_string()], "{without}");
    assert_eq!(
        without.addresses,
        Vec::<std::net::IpAddr>::new(),
        "{without}"
    );
    lab.teardown().unwrap();
}
