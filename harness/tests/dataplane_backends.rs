//! Root tests: each backend applies, replaces, reads back and removes a node's
//! floating-IP NAT in a bare namespace, as the kernel holds it.

use std::net::IpAddr;

use fip_harness::dataplane::{backend, BackendKind, DnatMapping, NodeNatState, SnatMapping};
use fip_harness::lab::netns::Netns;
use rstest::rstest;

/// A namespace that is deleted when the test ends, even on failure.
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

fn state(dnat: &[(&str, &str)], snat: &[(&str, &str)]) -> NodeNatState {
    NodeNatState::new(
        dnat.iter().map(|(e, i)| DnatMapping::new(ip(e), ip(i))),
        snat.iter().map(|(i, e)| SnatMapping::new(ip(i), ip(e))),
    )
}

fn first() -> NodeNatState {
    state(
        &[
            ("203.0.113.1", "198.19.0.5"),
            ("203.0.113.2", "198.19.0.5"),
            ("2001:db8:f1::1", "2001:db8:1::5"),
        ],
        &[
            ("198.19.0.5", "203.0.113.1"),
            ("2001:db8:1::5", "2001:db8:f1::1"),
        ],
    )
}

fn second() -> NodeNatState {
    state(
        &[("203.0.113.7", "198.19.0.9")],
        &[("198.19.0.9", "203.0.113.7")],
    )
}

#[rstest]
#[case::nftables(BackendKind::Nftables)]
#[case::iptables(BackendKind::Iptables)]
fn apply_replace_remove_round_trip(#[case] kind: BackendKind) {
    let ns = Scratch::new(&format!("rt-{kind}"));
    let dataplane = backend(kind);

    dataplane.apply(&ns.0, &first()).unwrap();
    let once = dataplane.dump(&ns.0).unwrap();
    dataplane.apply(&ns.0, &first()).unwrap();
    assert_eq!(
        dataplane.dump(&ns.0).unwrap(),
        once,
        "applying twice adds nothing"
    );
    assert_eq!(dataplane.read(&ns.0).unwrap(), first());
    insta::assert_snapshot!(format!("dump_{kind}"), dataplane.dump(&ns.0).unwrap());

    dataplane.apply(&ns.0, &second()).unwrap();
    assert_eq!(
        dataplane.read(&ns.0).unwrap(),
        second(),
        "apply replaces, it does not add"
    );

    dataplane.remove(&ns.0).unwrap();
    assert_eq!(dataplane.read(&ns.0).unwrap(), NodeNatState::default());
    dataplane.remove(&ns.0).unwrap();
}

#[test]
fn both_backends_coexist_on_one_namespace() {
    let ns = Scratch::new("both");
    let nft = backend(BackendKind::Nftables);
    let ipt = backend(BackendKind::Iptables);
    nft.apply(&ns.0, &first()).unwrap();
    ipt.apply(&ns.0, &second()).unwrap();
    assert_eq!(nft.read(&ns.0).unwrap(), first());
    assert_eq!(ipt.read(&ns.0).unwrap(), second());
    ipt.remove(&ns.0).unwrap();
    assert_eq!(nft.read(&ns.0).unwrap(), first());
}

#[test]
fn a_failing_apply_names_the_namespace_and_keeps_the_old_rules() {
    let ns = Scratch::new("fail");
    let nft = backend(BackendKind::Nftables);
    nft.apply(&ns.0, &first()).unwrap();
    // Two DNATs of one external address in one map: nft refuses the batch.
    let bad = state(
        &[("203.0.113.1", "198.19.0.5"), ("203.0.113.1", "198.19.0.6")],
        &[],
    );
    let error = nft.apply(&ns.0, &bad).unwrap_err().to_string();
    assert!(error.contains(ns.0.name()), "{error}");
    assert_eq!(
        nft.read(&ns.0).unwrap(),
        first(),
        "the transaction is atomic"
    );
}

#[test]
fn nftables_delta_recovers_when_another_writer_removed_the_tables() {
    let ns = Scratch::new("stale");
    let mine = backend(BackendKind::Nftables);
    mine.apply(&ns.0, &first()).unwrap();
    backend(BackendKind::Nftables).remove(&ns.0).unwrap();
    mine.apply(&ns.0, &second()).unwrap();
    assert_eq!(mine.read(&ns.0).unwrap(), second());
}
