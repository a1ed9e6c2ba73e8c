//! Root test: ctnetlink list and delete on a real flow from an external host
//! to a lab node, checked against the `conntrack` program's own listing.

mod common;

use std::net::IpAddr;

use common::{lab_name, node, program, TestLab};
use fip_harness::dataplane::conntrack::Conntrack;
use fip_harness::dataplane::{backend, BackendKind, DnatMapping, NodeNatState};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::{Family, NextHop};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn conntrack_program_lists(ns: &Netns) -> String {
    let out = ns
        .command(program("conntrack"))
        .args(["-L", "-p", "icmp"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_and_deletes_the_entry_of_a_dnat_flow() {
    let lab = TestLab::build(&lab_name("ct"), vec![node("node-0", &[])], &["client"], &[]);
    let node_address = lab.lab.node_uplink("node-0", Family::V4).unwrap().unwrap();
    lab.block_on(lab.lab.replace_host_route(
        "fabric",
        ip("203.0.113.1"),
        &NextHop::Via(node_address),
    ))
    .unwrap();
    let (client, node) = (lab.netns("client"), lab.netns("node-0"));
    // DNAT the floating IP to the node's own address: enough for a NATed entry.
    backend(BackendKind::Nftables)
        .apply(
            node,
            &NodeNatState {
                dnat: vec![DnatMapping {
                    external: ip("203.0.113.1"),
                    internal: node_address,
                }],
                snat: vec![],
            },
        )
        .unwrap();
    let ping = client
        .command(program("ping"))
        .args(["-c1", "-W2", "203.0.113.1"])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");

    let mut conntrack = Conntrack::open(node).unwrap();
    let entries = conntrack.list().unwrap();
    let flow: Vec<_> = entries
        .iter()
        .filter(|e| e.orig_dst == ip("203.0.113.1"))
        .collect();
    assert_eq!(flow.len(), 1, "{entries:?}");
    let flow = flow[0];
    assert_eq!(flow.protocol, 1);
    assert_eq!(flow.orig_src, ip("198.18.1.10"));
    assert_eq!(
        flow.reply_src, node_address,
        "reply comes from the DNAT target"
    );
    assert_eq!(flow.reply_dst, ip("198.18.1.10"));
    let listed = conntrack_program_lists(node);
    let id = flow.icmp_id.expect("icmp id");
    assert!(
        listed.contains(&format!(
            "src=198.18.1.10 dst=203.0.113.1 type=8 code=0 id={id}"
        )),
        "conntrack(8) disagrees: {listed}"
    );

    let deleted = conntrack
        .delete_where(|e| e.orig_dst == ip("203.0.113.1"))
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(conntrack
        .list()
        .unwrap()
        .iter()
        .all(|e| e.orig_dst != ip("203.0.113.1")));
    assert!(!conntrack_program_lists(node).contains("dst=203.0.113.1"));
}
