//! Root test: ctnetlink list and delete on a real flow from an external host
//! to a lab node, checked against the `conntrack` program's own listing.

mod common;

use std::net::IpAddr;

use common::{lab_name, node, program, TestLab};
use fip_harness::dataplane::conntrack::Conntrack;
use fip_harness::dataplane::conntrack_watch::ConntrackWatch;
use fip_harness::dataplane::ConntrackMatch;
use fip_harness::dataplane::{backend, BackendKind, DnatMapping, NodeNatState};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::{Family, NextHop};
use rstest::rstest;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Route each of `fips` from the fabric to node-0 and return the node's
/// uplink address of `family`.
fn route_to_node(lab: &TestLab, family: Family, fips: &[IpAddr]) -> IpAddr {
    let node_address = lab.lab.node_uplink("node-0", family).unwrap().unwrap();
    for &fip in fips {
        lab.block_on(
            lab.lab
                .replace_host_route("fabric", fip, &NextHop::Via(node_address)),
        )
        .unwrap();
    }
    node_address
}

/// DNAT each of `fips` to `internal` (the node's own address: enough for a
/// NATed entry).
fn dnat_to(internal: IpAddr, fips: &[IpAddr]) -> NodeNatState {
    NodeNatState {
        dnat: fips
            .iter()
            .map(|&external| DnatMapping { external, internal })
            .collect(),
        snat: vec![],
        filter: None,
    }
}

/// One ping from `from` to `to`, which must be answered.
fn ping(from: &Netns, to: IpAddr) {
    let out = from
        .command(program("ping"))
        .args(["-c1", "-W2", &to.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn conntrack_program_lists(ns: &Netns, family: Family) -> String {
    let args: &[&str] = match family {
        Family::V4 => &["-L", "-p", "icmp"],
        Family::V6 => &["-L", "-f", "ipv6", "-p", "icmpv6"],
    };
    let out = ns
        .command(program("conntrack"))
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both families: the listing is one dump of every family, so an IPv6 entry
/// must come back from it as an IPv4 one does.
#[rstest]
#[case::ipv4(Family::V4, "203.0.113.1", "198.18.1.10", 1, "type=8")]
#[case::ipv6(Family::V6, "2001:db8:f1::1", "2001:db8:fe::a", 58, "type=128")]
fn lists_and_deletes_the_entry_of_a_dnat_flow(
    #[case] family: Family,
    #[case] floating_ip: &str,
    #[case] client_address: &str,
    #[case] protocol: u8,
    #[case] echo_request: &str,
) {
    let lab = TestLab::build(
        &lab_name(&format!("ct{protocol}")),
        vec![node("node-0", &[])],
        &["client"],
        &[],
    );
    let fip = ip(floating_ip);
    let node_address = route_to_node(&lab, family, &[fip]);
    let (client, node) = (lab.netns("client"), lab.netns("node-0"));
    backend(BackendKind::Nftables)
        .apply(node, &dnat_to(node_address, &[fip]))
        .unwrap();
    ping(client, fip);

    let mut conntrack = Conntrack::open(node).unwrap();
    let entries = conntrack.list().unwrap();
    let flow: Vec<_> = entries.iter().filter(|e| e.orig_dst == fip).collect();
    assert_eq!(flow.len(), 1, "{entries:?}");
    let flow = flow[0];
    assert_eq!(flow.protocol, protocol);
    assert_eq!(flow.orig_src, ip(client_address));
    assert_eq!(
        flow.reply_src, node_address,
        "reply comes from the DNAT target"
    );
    assert_eq!(flow.reply_dst, ip(client_address));
    let listed = conntrack_program_lists(node, family);
    let id = flow.icmp_id.expect("icmp id");
    assert!(
        listed.contains(&format!(
            "src={client_address} dst={floating_ip} {echo_request} code=0 id={id}"
        )),
        "conntrack(8) disagrees: {listed}"
    );

    let deleted = conntrack.delete_where(|e| e.orig_dst == fip).unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(conntrack.list().unwrap().iter().all(|e| e.orig_dst != fip));
    assert!(!conntrack_program_lists(node, family).contains(&format!("dst={floating_ip}")));
}

/// The map backend's deletions follow the node's conntrack events after one
/// dump: a flow made after the watch opened is deleted without another dump,
/// and an entry someone else removed meanwhile is not counted.
#[test]
fn the_watch_deletes_flows_it_learnt_of_from_events() {
    let lab = TestLab::build(&lab_name("cw"), vec![node("node-0", &[])], &["client"], &[]);
    let (early, late) = (ip("203.0.113.7"), ip("203.0.113.8"));
    let node_address = route_to_node(&lab, Family::V4, &[early, late]);
    let (client, node) = (lab.netns("client"), lab.netns("node-0"));
    backend(BackendKind::NftMaps)
        .apply(node, &dnat_to(node_address, &[early, late]))
        .unwrap();
    ping(client, early);
    let mut watch = ConntrackWatch::open(node).unwrap();
    // The first deletion synchronises by a dump; nothing matches.
    let nowhere = ConntrackMatch::OrigDst(ip("203.0.113.99"));
    assert_eq!(watch.delete_matching(&[nowhere]).unwrap(), 0);
    ping(client, late);
    let gone = node
        .command(program("conntrack"))
        .args(["-D", "-d", &early.to_string()])
        .output()
        .unwrap();
    assert!(gone.status.success(), "{gone:?}");
    assert_eq!(
        watch
            .delete_matching(&[ConntrackMatch::OrigDst(early)])
            .unwrap(),
        0,
        "an entry deleted by someone else is not counted"
    );
    let listed = conntrack_program_lists(node, Family::V4);
    assert!(listed.contains(&format!("dst={late}")), "{listed}");
    assert_eq!(
        watch
            .delete_matching(&[ConntrackMatch::OrigDst(late)])
            .unwrap(),
        1,
        "the flow made after the dump is known from its event"
    );
    let listed = conntrack_program_lists(node, Family::V4);
    assert!(!listed.contains(&format!("dst={late}")), "{listed}");
}

/// A watch opened while the node tracks nothing starts with a complete
/// record (no dump), and the kernel backends' deletions (Felix's iptables
/// and nftables modes, followed from before the first flow as the runner
/// does) find a later flow from its event alone; a watch opened once a flow
/// exists must still dump.
#[rstest]
#[case::iptables(BackendKind::Iptables)]
#[case::nftables(BackendKind::Nftables)]
fn a_node_followed_before_any_flow_needs_no_dump(#[case] kind: BackendKind) {
    let prefix = match kind {
        BackendKind::Iptables => "cfi",
        _ => "cfn",
    };
    let lab = TestLab::build(
        &lab_name(prefix),
        vec![node("node-0", &[])],
        &["client"],
        &[],
    );
    let fip = ip("203.0.113.9");
    let node_address = route_to_node(&lab, Family::V4, &[fip]);
    let (client, node) = (lab.netns("client"), lab.netns("node-0"));
    let watch = ConntrackWatch::open(node).unwrap();
    assert!(
        watch.trusted(),
        "nothing tracked yet: the record is complete"
    );
    drop(watch);
    let dataplane = backend(kind);
    dataplane.follow_flows(node).unwrap();
    dataplane
        .apply(node, &dnat_to(node_address, &[fip]))
        .unwrap();
    ping(client, fip);
    let listed = conntrack_program_lists(node, Family::V4);
    assert!(listed.contains(&format!("dst={fip}")), "{listed}");
    assert!(
        !ConntrackWatch::open(node).unwrap().trusted(),
        "a flow is tracked: a new watch must dump first"
    );
    let rules = [ConntrackMatch::OrigDst(fip)];
    assert_eq!(dataplane.flush(node, &rules).unwrap(), 1);
    let listed = conntrack_program_lists(node, Family::V4);
    assert!(!listed.contains(&format!("dst={fip}")), "{listed}");
    ping(client, fip);
    assert_eq!(
        dataplane.flush(node, &rules).unwrap(),
        1,
        "the flow made after the first deletion is known from its event"
    );
    dataplane.remove(node).unwrap();
}
