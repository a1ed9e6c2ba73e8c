//! Root test: ctnetlink list and delete on a real flow between two namespaces
//! joined by a veth, checked against the `conntrack` program's own listing.

use std::net::IpAddr;

use fip_harness::control::netlink::{add_route_via, add_veth, configure_link};
use fip_harness::dataplane::conntrack::Conntrack;
use fip_harness::dataplane::{backend, BackendKind, DnatMapping, NodeNatState};
use fip_harness::lab::netns::Netns;

struct Scratch(Netns);

impl Scratch {
    fn new(tag: &str) -> Self {
        let name = format!("fiph-h3t{}-{tag}", std::process::id());
        let _ = Netns::delete(&name);
        Scratch(Netns::create(&name).expect("create scratch namespace"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Netns::delete(self.0.name());
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn conntrack_program_lists(ns: &Netns) -> String {
    let out = ns
        .command("conntrack")
        .args(["-L", "-p", "icmp"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_and_deletes_the_entry_of_a_dnat_flow() {
    let client = Scratch::new("ct-c");
    let node = Scratch::new("ct-n");
    add_veth(&client.0, "eth0", &node.0, "eth0").unwrap();
    configure_link(&client.0, "eth0", &[(ip("198.18.1.10"), 24)]).unwrap();
    configure_link(&node.0, "eth0", &[(ip("198.18.1.1"), 24)]).unwrap();
    add_route_via(&client.0, ip("203.0.113.1"), 32, ip("198.18.1.1")).unwrap();
    // DNAT the floating IP to the node's own address: enough for a NATed entry.
    backend(BackendKind::Nftables)
        .apply(
            &node.0,
            &NodeNatState {
                dnat: vec![DnatMapping {
                    external: ip("203.0.113.1"),
                    internal: ip("198.18.1.1"),
                }],
                snat: vec![],
            },
        )
        .unwrap();
    let ping = client
        .0
        .command("ping")
        .args(["-c1", "-W2", "203.0.113.1"])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{ping:?}");

    let mut conntrack = Conntrack::open(&node.0).unwrap();
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
        flow.reply_src,
        ip("198.18.1.1"),
        "reply comes from the DNAT target"
    );
    assert_eq!(flow.reply_dst, ip("198.18.1.10"));
    let listed = conntrack_program_lists(&node.0);
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
    assert!(!conntrack_program_lists(&node.0).contains("dst=203.0.113.1"));
}
