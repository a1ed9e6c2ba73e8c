//! The Felix nftables rendering against Felix's own hashes and texts.

use rstest::rstest;

use super::super::test_vectors::{
    comment_hashes, loopback, one, pairs, state, two, FULLY_RANDOM, NOT_FULLY_RANDOM,
};
use super::*;

/// Hashes of the static jumps, from felix/fv/cali-nftables-dump.txt: Calico's
/// chains first (as this backend writes them), then the base chains' jumps.
const STATIC_CALI: [(&str, &str); 4] = [
    ("nat-cali-PREROUTING", "4l5hoyVny05ifNh_"),
    ("nat-cali-OUTPUT", "delU-zntVHn7bNcr"),
    ("nat-cali-POSTROUTING", "tyzVzs_JgnIisxS6"),
    ("nat-cali-POSTROUTING", "_Ye9aC74uuE93XON"),
];
const STATIC_BASE: [(&str, &str); 3] = [
    ("nat-PREROUTING", "8sk3stC_vMHYORJg"),
    ("nat-OUTPUT", "MUvsO-9-Ry3DQcZV"),
    ("nat-POSTROUTING", "z057H0Z77Fcko47w"),
];

/// The `add rule` lines of one family in `script`.
fn family_lines(script: &str, family: IpFamily) -> String {
    let prefix = format!("add rule {} ", keyword(family));
    script
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[rstest]
#[case::v4_one(one(), IpFamily::V4, FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "PrWmKsmRyOoNFcXH")])]
#[case::v4_loopback(loopback(), IpFamily::V4, FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "PrWmKsmRyOoNFcXH"), ("nat-cali-fip-snat", "galqADWeIKuulBnw")])]
#[case::v4_loopback_not_fully_random(loopback(), IpFamily::V4, NOT_FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "PrWmKsmRyOoNFcXH"), ("nat-cali-fip-snat", "bfVhg4tEwfXxiOi6")])]
#[case::v4_two_sorted_as_text(two(), IpFamily::V4, FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "gr3ifWgaLMCOxYct"), ("nat-cali-fip-dnat", "366Lsk8Sc2wh-hba"),
      ("nat-cali-fip-snat", "NzSghAczF8UqB6d_"), ("nat-cali-fip-snat", "IREQVQidBNYO9LZg")])]
#[case::v6_one(one(), IpFamily::V6, FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "j3T5JhaUZiIVH0pC")])]
#[case::v6_loopback(loopback(), IpFamily::V6, FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "j3T5JhaUZiIVH0pC"), ("nat-cali-fip-snat", "-ZjS1IWYHDAAGuGm")])]
#[case::v6_loopback_not_fully_random(loopback(), IpFamily::V6, NOT_FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "j3T5JhaUZiIVH0pC"), ("nat-cali-fip-snat", "pWq3PVJvJbajb2Sg")])]
#[case::v6_two_sorted_as_text(two(), IpFamily::V6, FULLY_RANDOM,
    &[("nat-cali-fip-dnat", "QvWINTfMP456jkUU"), ("nat-cali-fip-dnat", "PnKeQj3c9El-jgeb"),
      ("nat-cali-fip-snat", "2Ln_HsjI_6s6HeVi"), ("nat-cali-fip-snat", "K28Zgrz9GMBoqmdJ")])]
#[case::empty(NodeNatState::default(), IpFamily::V4, FULLY_RANDOM, &[])]
fn rules_carry_felix_hashes(
    #[case] state: NodeNatState,
    #[case] family: IpFamily,
    #[case] features: Features,
    #[case] fip_hashes: &[(&str, &str)],
) {
    let lines = family_lines(&render_apply(&state, features), family);
    let mut expected = pairs(&STATIC_CALI);
    expected.extend(pairs(fip_hashes));
    expected.extend(pairs(&STATIC_BASE));
    assert_eq!(comment_hashes(&lines), expected);
}

#[rstest]
#[case::one("one", one())]
#[case::loopback("loopback", loopback())]
#[case::two("two", two())]
#[case::empty("empty", NodeNatState::default())]
fn renders_the_knftables_transaction(#[case] name: &str, #[case] state: NodeNatState) {
    insta::assert_snapshot!(
        format!("nft_felix_apply_{name}"),
        render_apply(&state, FULLY_RANDOM)
    );
}

#[test]
fn the_rule_text_is_felixs() {
    let script = render_apply(&loopback(), FULLY_RANDOM);
    // Lines as felix/nftables renders them and knftables writes them (research
    // notes section 4.9, fed to nft 1.0.6 to produce Felix's listing).
    for line in [
        "add chain ip calico nat-PREROUTING { type nat hook prerouting priority -100 ; }",
        "add chain ip calico nat-INPUT { type nat hook input priority -100 ; }",
        "add chain ip calico nat-OUTPUT { type nat hook output priority 110 ; }",
        "add chain ip calico nat-POSTROUTING { type nat hook postrouting priority 110 ; }",
        "add chain ip calico nat-cali-nat-outgoing",
        "add rule ip calico nat-cali-fip-dnat ip daddr 203.0.113.10 counter dnat to 198.19.0.5 comment \"cali:PrWmKsmRyOoNFcXH;\"",
        "add rule ip calico nat-cali-fip-snat ip daddr 198.19.0.5 ip saddr 198.19.0.5 counter snat to 203.0.113.10 fully-random comment \"cali:galqADWeIKuulBnw;\"",
        "add rule ip calico nat-POSTROUTING counter jump nat-cali-POSTROUTING comment \"cali:z057H0Z77Fcko47w;\"",
        "add rule ip6 calico nat-cali-fip-dnat ip6 daddr 2001:db8:f1::10 counter dnat to 2001:db8:1::5 comment \"cali:j3T5JhaUZiIVH0pC;\"",
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "missing {line}\nin\n{script}"
        );
    }
}

#[test]
fn an_update_rewrites_only_the_changed_chains() {
    let moved = state(
        &[
            ("203.0.113.10", "198.19.0.6"),
            ("2001:db8:f1::10", "2001:db8:1::5"),
        ],
        &[
            ("198.19.0.6", "203.0.113.10"),
            ("2001:db8:1::5", "2001:db8:f1::10"),
        ],
    );
    let update = render_update(&loopback(), &moved, FULLY_RANDOM).unwrap();
    assert!(!update.contains("ip6"), "the v6 chains did not change");
    assert!(!update.contains("table"), "no table is recreated");
    insta::assert_snapshot!(update);
    assert_eq!(render_update(&moved, &moved, FULLY_RANDOM), None);
}

#[test]
fn renders_removal() {
    insta::assert_snapshot!(render_removal());
}

#[test]
fn reads_back_what_nft_lists() {
    // `nft -j list table ip calico` / `ip6 calico` (nftables 1.0.6) for the
    // loopback state, chains and the jump rules left out.
    let v4 = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "calico", "handle": 1}},
        {"chain": {"family": "ip", "table": "calico", "name": "nat-OUTPUT", "handle": 3, "type": "nat", "hook": "output", "prio": 110, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "calico", "chain": "nat-cali-fip-dnat", "handle": 11, "comment": "cali:PrWmKsmRyOoNFcXH;", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "203.0.113.10"}}, {"counter": {"packets": 0, "bytes": 0}}, {"dnat": {"addr": "198.19.0.5"}}]}},
        {"rule": {"family": "ip", "table": "calico", "chain": "nat-cali-fip-snat", "handle": 12, "comment": "cali:galqADWeIKuulBnw;", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "198.19.0.5"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.19.0.5"}}, {"counter": {"packets": 0, "bytes": 0}}, {"snat": {"addr": "203.0.113.10", "flags": "fully-random"}}]}}]}"#;
    let v6 = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"rule": {"family": "ip6", "table": "calico", "chain": "nat-cali-fip-dnat", "handle": 3, "comment": "cali:j3T5JhaUZiIVH0pC;", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "2001:db8:f1::10"}}, {"counter": {"packets": 0, "bytes": 0}}, {"dnat": {"addr": "2001:db8:1::5"}}]}},
        {"rule": {"family": "ip6", "table": "calico", "chain": "nat-cali-fip-snat", "handle": 4, "comment": "cali:-ZjS1IWYHDAAGuGm;", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "2001:db8:1::5"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "2001:db8:1::5"}}, {"counter": {"packets": 0, "bytes": 0}}, {"snat": {"addr": "2001:db8:f1::10", "flags": "fully-random"}}]}}]}"#;
    let mut read = parse_listing(v4).unwrap();
    let v6 = parse_listing(v6).unwrap();
    read.dnat.extend(v6.dnat);
    read.snat.extend(v6.snat);
    assert_eq!(read, loopback());
}
