//! The filter layer against Felix's own FV dumps: every hash below is from
//! felix/fv/cali-iptables-dump.txt or felix/fv/cali-nftables-dump.txt (a node
//! with no workloads), never computed by the code under test.

use rstest::rstest;

use super::*;
use crate::dataplane::felix_hash::{chained_hashes, rule_hashes};
use crate::dataplane::test_vectors::FULLY_RANDOM;

fn no_workloads() -> NodeFilterState {
    NodeFilterState::default()
}

fn chain<'a>(chains: &'a [Chain], name: &str) -> &'a Chain {
    chains.iter().find(|c| c.name == name).expect(name)
}

#[rstest]
#[case("cali-FORWARD", &["W_vvds1Nw3n9QE2f", "ZfgmjuiLaA8Pg0kp", "tAzwBLPaV-j53OOZ", "4Z0Pf0byo05NFe-P", "hQ7Oc16wmUtLuneJ", "rnKNH2WxGcRQcIlD"])]
#[case("cali-from-wl-dispatch", &["zTj6P0TIgYvgz-md"])]
#[case("cali-to-wl-dispatch", &["7KNphB1nNHw80nIO"])]
#[case("cali-wl-to-host", &["Ee9Sbo10IpVujdIY", "nSZbcOoG1xPONxb8"])]
fn iptables_chains_hash_as_felixs(#[case] name: &str, #[case] expected: &[&str]) {
    let chains = filter_chains(&no_workloads(), false);
    let bodies: Vec<String> = chain(&chains, name)
        .rules
        .iter()
        .map(Rule::iptables)
        .collect();
    assert_eq!(rule_hashes(name, &bodies), expected);
}

#[rstest]
#[case("cali-FORWARD", &["DjLNGAdnReheqqCp", "nYRf9HAGIu4qv2zI", "otxs2Q4D05BNLIsQ", "j573pOiV4ETpv7o4", "spaMQnRTjqphyAAs", "gPO_isDuaIy0xfd5"])]
#[case("cali-from-wl-dispatch", &["Lui9n9_J-BlSLUtk", "KMISEjprqaGFiicp"])]
#[case("cali-to-wl-dispatch", &["ljtHSLJQhigspPd1", "zeZtiiPDsE6BwqUG"])]
#[case("cali-wl-to-host", &["Ny8jNeS1ncqmgkwL", "m-f8F_F3sZQBn4vu"])]
fn nft_chains_hash_as_felixs(#[case] name: &str, #[case] expected: &[&str]) {
    let chains = filter_chains(&no_workloads(), true);
    let texts: Vec<String> = chain(&chains, name)
        .rules
        .iter()
        .map(|r| r.nft(IpFamily::V4, "filter-"))
        .collect();
    assert_eq!(chained_hashes(&format!("filter-{name}"), &texts), expected);
}

#[test]
fn hooks_hash_as_felixs() {
    let hooks = filter_hooks();
    let of = |builtin: &str, append: bool| -> Vec<&Rule> {
        hooks
            .iter()
            .filter(|h| h.builtin == builtin && h.append == append)
            .map(|h| &h.rule)
            .collect()
    };
    let ipt = |chain: &str, rules: Vec<&Rule>| {
        rule_hashes(
            chain,
            &rules.iter().map(|r| r.iptables()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(ipt("INPUT", of("INPUT", false)), ["Cz_u1IQiXIMmKD4c"]);
    assert_eq!(ipt("FORWARD", of("FORWARD", false)), ["wUHhoiAYhphO9Mso"]);
    assert_eq!(
        ipt("FORWARD*appends*", of("FORWARD", true)),
        ["S93hcgKJrXEqnTfs", "mp77cMpurHhyjLrM"]
    );
    let nft = |chain: &str, rules: Vec<&Rule>| {
        let texts: Vec<String> = rules
            .iter()
            .map(|r| r.nft(IpFamily::V4, "filter-"))
            .collect();
        chained_hashes(chain, &texts)
    };
    assert_eq!(
        nft("filter-INPUT", of("INPUT", false)),
        ["H0S9z2pOh43UL0cc"]
    );
    assert_eq!(
        nft("filter-FORWARD", of("FORWARD", false)),
        ["dpfqBgJrpRwlrqw1"]
    );
    assert_eq!(
        nft("filter-FORWARD*appends*", of("FORWARD", true)),
        ["yp7iNUYNEhDmKF6E", "fXaqbwKfGHq5dvHP"]
    );
}

#[test]
fn nat_outgoing_hashes_as_felixs_and_only_with_a_masquerading_pool() {
    let pools = vec!["192.168.0.0/16".parse().unwrap()];
    let state = NodeFilterState {
        workloads: vec![],
        pools: pools.clone(),
        masq_pools: pools,
        ..NodeFilterState::default()
    };
    let rules = nat_outgoing_rules(&state, IpFamily::V4, FULLY_RANDOM);
    let texts: Vec<String> = rules.iter().map(|r| r.nft(IpFamily::V4, "nat-")).collect();
    assert_eq!(
        texts,
        ["ip saddr @cali40masq-ipam-pools ip daddr != @cali40network-ip-pools counter masquerade fully-random"]
    );
    // The FV dump's hash is of the rule under the set's name before v3.31.6
    // and v3.32.1 (`all-ipam-pools`): commit 2e6b3c4e1d renamed the set in
    // the dump's text but left the hash as it was. A release before the
    // rename renders that name (crate::calico::release).
    let older = NodeFilterState {
        all_ipam_pools: true,
        ..state.clone()
    };
    let before_rename: Vec<String> = nat_outgoing_rules(&older, IpFamily::V4, FULLY_RANDOM)
        .iter()
        .map(|r| r.nft(IpFamily::V4, "nat-"))
        .collect();
    assert_eq!(
        before_rename,
        [texts[0].replace("network-ip-pools", "all-ipam-pools")]
    );
    assert_eq!(
        chained_hashes("nat-cali-nat-outgoing", &before_rename),
        ["JjuWIaIfSLZi41Xk"]
    );
    assert!(nat_outgoing_rules(&state, IpFamily::V6, FULLY_RANDOM).is_empty());
    assert!(nat_outgoing_rules(&no_workloads(), IpFamily::V4, FULLY_RANDOM).is_empty());
}

/// dispatch.go's tree: a lone name is dispatched from the root, names that
/// share their next character go through a child chain ending in the drop.
#[test]
fn iptables_dispatch_is_felixs_prefix_tree() {
    let state = NodeFilterState {
        workloads: ["cali1b", "cali2a", "cali1a"].map(String::from).to_vec(),
        ..Default::default()
    };
    let chains = filter_chains(&state, false);
    let text = |name: &str| -> Vec<String> {
        chain(&chains, name)
            .rules
            .iter()
            .map(Rule::iptables)
            .collect()
    };
    assert_eq!(
        text("cali-from-wl-dispatch"),
        [
            "--in-interface cali1+ --goto cali-from-wl-dispatch-1",
            "--in-interface cali2a --goto cali-fw-cali2a",
            "-m comment --comment \"Unknown interface\" --jump DROP",
        ]
    );
    assert_eq!(
        text("cali-from-wl-dispatch-1"),
        [
            "--in-interface cali1a --goto cali-fw-cali1a",
            "--in-interface cali1b --goto cali-fw-cali1b",
            "-m comment --comment \"Unknown interface\" --jump DROP",
        ]
    );
    assert_eq!(
        text("cali-to-wl-dispatch")[1],
        "--out-interface cali2a --goto cali-tw-cali2a"
    );
    assert!(chain(&chains, "cali-tw-cali1b").rules.is_empty());
}
