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
        Scratch(
            Netns::create(&name, &fip_harness::lab::signals::CREATIONS)
                .expect("create scratch namespace"),
        )
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
#[case::nft_maps(BackendKind::NftMaps)]
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
fn the_three_backends_coexist_on_one_namespace() {
    // Their tables never collide: `calico` (Felix's nftables), `fiph-maps`
    // (the map alternative) and x_tables (iptables-legacy).
    let ns = Scratch::new("all");
    let felix = backend(BackendKind::Nftables);
    let maps = backend(BackendKind::NftMaps);
    let ipt = backend(BackendKind::Iptables);
    let third = state(&[("203.0.113.30", "198.19.0.30")], &[]);
    felix.apply(&ns.0, &first()).unwrap();
    maps.apply(&ns.0, &second()).unwrap();
    ipt.apply(&ns.0, &third).unwrap();
    assert_eq!(felix.read(&ns.0).unwrap(), first());
    assert_eq!(maps.read(&ns.0).unwrap(), second());
    assert_eq!(ipt.read(&ns.0).unwrap(), third);
    maps.remove(&ns.0).unwrap();
    ipt.remove(&ns.0).unwrap();
    assert_eq!(felix.read(&ns.0).unwrap(), first());
}

/// The loopback state of `felix_nftables_listing_is_felixs`, both families.
fn felix_vectors() -> NodeNatState {
    state(
        &[
            ("203.0.113.10", "198.19.0.5"),
            ("2001:db8:f1::10", "2001:db8:1::5"),
        ],
        &[
            ("198.19.0.5", "203.0.113.10"),
            ("2001:db8:1::5", "2001:db8:f1::10"),
        ],
    )
}

fn expected_text(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// The iptables backend's `iptables-save` is, line for line, what
/// iptables-legacy-save 1.8.9 prints after restoring Felix's rules for one
/// floating IP with its loopback SNAT (research notes section 3.5; the hashes
/// there match felix/fv/cali-iptables-dump.txt). Assumes a host where Felix
/// would add `--random-fully` (iptables >= 1.6.0, kernel >= 3.14).
#[test]
fn felix_iptables_save_is_felixs() {
    let ns = Scratch::new("felix-ipt");
    let ipt = backend(BackendKind::Iptables);
    ipt.apply(&ns.0, &felix_vectors()).unwrap();
    let dump = ipt.dump(&ns.0).unwrap();
    let (v4, v6) = dump.split_at(dump.find("COMMIT\n").unwrap() + "COMMIT\n".len());
    assert_eq!(v4, expected_text("felix-iptables-save-v4.txt"));
    for line in [
        "-A cali-fip-dnat -d 2001:db8:f1::10/128 -m comment --comment \"cali:jJwT3h7SAjT6Hfbi\" -j DNAT --to-destination 2001:db8:1::5",
        "-A cali-fip-snat -s 2001:db8:1::5/128 -d 2001:db8:1::5/128 -m comment --comment \"cali:e-_vUPOYZqzxLrdO\" -j SNAT --to-source 2001:db8:f1::10 --random-fully",
    ] {
        assert!(v6.lines().any(|l| l == line), "missing {line} in\n{v6}");
    }
}

/// The Felix backend's listing is, line for line, what nft 1.0.6 lists after
/// the transaction Felix (through knftables) writes for one floating IP with
/// its loopback SNAT: research notes section 4.7 (its hashes match
/// felix/fv/cali-nftables-dump.txt), with the chain order this backend
/// chooses (Felix's own order varies from start to start). Assumes a host
/// where Felix would add `fully-random`.
#[test]
fn felix_nftables_listing_is_felixs() {
    let ns = Scratch::new("felix");
    let felix = backend(BackendKind::Nftables);
    felix.apply(&ns.0, &felix_vectors()).unwrap();
    let listing = felix.dump(&ns.0).unwrap();
    assert_eq!(listing, expected_text("felix-nat-listing.txt"));
}

#[test]
fn a_failing_apply_names_the_namespace_and_keeps_the_old_rules() {
    let ns = Scratch::new("fail");
    let nft = backend(BackendKind::NftMaps);
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

/// Felix's legacy iptables mode writes only the rules that changed
/// (felix/iptables/table.go applyUpdates); after every such update the table
/// is exactly what a first, whole write of the same state makes.
#[test]
fn iptables_updates_leave_what_a_whole_write_leaves() {
    let ns = Scratch::new("ipt-upd");
    let fresh = Scratch::new("ipt-whole");
    let ipt = backend(BackendKind::Iptables);
    let moved = state(
        &[
            ("203.0.113.1", "198.19.0.6"),
            ("203.0.113.2", "198.19.0.5"),
            ("2001:db8:f1::1", "2001:db8:1::5"),
        ],
        &[("2001:db8:1::5", "2001:db8:f1::1")],
    );
    for next in [first(), moved, second(), first(), NodeNatState::default()] {
        ipt.apply(&ns.0, &next).unwrap();
        let whole = backend(BackendKind::Iptables);
        whole.apply(&fresh.0, &next).unwrap();
        assert_eq!(ipt.dump(&ns.0).unwrap(), whole.dump(&fresh.0).unwrap());
        whole.remove(&fresh.0).unwrap();
    }
}

/// A move touches only the rule that changed: a chain it does not change is
/// left as it is (here with a rule somebody else added), where a whole
/// rewrite would re-declare, and so empty, every chain.
#[test]
fn an_iptables_move_leaves_unchanged_chains_alone() {
    let ns = Scratch::new("ipt-keep");
    let ipt = backend(BackendKind::Iptables);
    ipt.apply(&ns.0, &first()).unwrap();
    let marker = [
        "-t",
        "nat",
        "-A",
        "cali-PREROUTING",
        "-d",
        "192.0.2.99",
        "-j",
        "RETURN",
    ];
    let added =
        ns.0.command(fip_harness::programs::require_program("iptables-legacy").unwrap())
            .args(marker)
            .status()
            .unwrap();
    assert!(added.success());
    let mut moved = first();
    moved.dnat[0].internal = ip("198.19.0.6");
    ipt.apply(&ns.0, &moved).unwrap();
    assert_eq!(ipt.read(&ns.0).unwrap(), moved);
    let dump = ipt.dump(&ns.0).unwrap();
    assert!(
        dump.contains("-A cali-PREROUTING -d 192.0.2.99/32 -j RETURN"),
        "{dump}"
    );
}

#[rstest]
#[case::nftables(BackendKind::Nftables)]
#[case::nft_maps(BackendKind::NftMaps)]
#[case::iptables(BackendKind::Iptables)]
fn nft_update_recovers_when_another_writer_removed_the_tables(#[case] kind: BackendKind) {
    let ns = Scratch::new(&format!("stale-{kind}"));
    let mine = backend(kind);
    mine.apply(&ns.0, &first()).unwrap();
    backend(kind).remove(&ns.0).unwrap();
    mine.apply(&ns.0, &second()).unwrap();
    assert_eq!(mine.read(&ns.0).unwrap(), second());
}

/// With the node's workloads and pools known, each Felix backend also writes
/// its filter layer's workload dispatch and NAT-outgoing, and a real node
/// lists them line for line as Felix's own FV dumps do
/// (felix/fv/cali-nftables-dump.txt, felix/fv/cali-iptables-dump.txt: a node
/// without workloads; counters as on a fresh node).
#[test]
fn felix_filter_layers_list_as_felixs() {
    let filter = fip_harness::calico::nat::NodeFilterState {
        workloads: vec![],
        pools: vec!["192.168.0.0/16".parse().unwrap()],
        masq_pools: vec!["192.168.0.0/16".parse().unwrap()],
        ..Default::default()
    };
    let state = NodeNatState {
        filter: Some(filter),
        ..NodeNatState::default()
    };
    let ns = Scratch::new("fil-nft");
    let nft = backend(BackendKind::Nftables);
    nft.apply(&ns.0, &state).unwrap();
    let listing =
        ns.0.command(fip_harness::programs::require_program("nft").unwrap())
            .args(["list", "table", "ip", "calico"])
            .output()
            .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for line in [
        "iifname vmap @filter-cali-from-wl-dispatch comment \"cali:Lui9n9_J-BlSLUtk;\"",
        "counter packets 0 bytes 0 drop comment \"cali:KMISEjprqaGFiicp; Unknown interface\"",
        "iifname \"cali*\" counter packets 0 bytes 0 jump filter-cali-from-wl-dispatch comment \"cali:otxs2Q4D05BNLIsQ;\"",
        "counter packets 0 bytes 0 accept comment \"cali:m-f8F_F3sZQBn4vu; Configured DefaultEndpointToHostAction\"",
        "counter packets 0 bytes 0 jump filter-cali-FORWARD comment \"cali:dpfqBgJrpRwlrqw1;\"",
        "meta mark & 0x00010000 == 0x00010000 counter packets 0 bytes 0 accept comment \"cali:yp7iNUYNEhDmKF6E; Policy explicitly accepted packet.\"",
        "ip saddr @cali40masq-ipam-pools ip daddr != @cali40network-ip-pools counter packets 0 bytes 0 masquerade fully-random",
    ] {
        assert!(
            listing.lines().any(|l| l.trim().starts_with(line)),
            "missing `{line}` in\n{listing}"
        );
    }

    let ns = Scratch::new("fil-ipt");
    let ipt = backend(BackendKind::Iptables);
    ipt.apply(&ns.0, &state).unwrap();
    let saved =
        ns.0.command(fip_harness::programs::require_program("iptables-legacy-save").unwrap())
            .args(["-t", "filter"])
            .output()
            .unwrap();
    let saved = String::from_utf8(saved.stdout).unwrap();
    for line in [
        "-A FORWARD -m comment --comment \"cali:wUHhoiAYhphO9Mso\" -j cali-FORWARD",
        "-A FORWARD -m comment --comment \"cali:S93hcgKJrXEqnTfs\" -m comment --comment \"Policy explicitly accepted packet.\" -m mark --mark 0x10000/0x10000 -j ACCEPT",
        "-A cali-FORWARD -i cali+ -m comment --comment \"cali:tAzwBLPaV-j53OOZ\" -j cali-from-wl-dispatch",
        "-A cali-from-wl-dispatch -m comment --comment \"cali:zTj6P0TIgYvgz-md\" -m comment --comment \"Unknown interface\" -j DROP",
        "-A cali-wl-to-host -m comment --comment \"cali:nSZbcOoG1xPONxb8\" -m comment --comment \"Configured DefaultEndpointToHostAction\" -j ACCEPT",
    ] {
        assert!(saved.lines().any(|l| l == line), "missing `{line}` in\n{saved}");
    }
    ipt.remove(&ns.0).unwrap();
    let saved =
        ns.0.command(fip_harness::programs::require_program("iptables-legacy-save").unwrap())
            .args(["-t", "filter"])
            .output()
            .unwrap();
    assert!(!String::from_utf8_lossy(&saved.stdout).contains("cali-"));
}
