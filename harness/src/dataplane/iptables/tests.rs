//! The iptables rendering against Felix's own text and hashes.

use super::super::test_vectors::{
    comment_hashes, loopback, one, pairs, state, two, FULLY_RANDOM, NOT_FULLY_RANDOM,
};
use super::*;
use crate::dataplane::FAMILIES;
use rstest::rstest;

/// The static jumps' hashes, from felix/fv/cali-iptables-dump.txt.
const STATIC: [(&str, &str); 7] = [
    ("PREROUTING", "6gwbT8clXdHdC1b1"),
    ("OUTPUT", "tVnHkvAo15HuiPy0"),
    ("POSTROUTING", "0i8pjzKKPyA34aQD"),
    ("cali-PREROUTING", "r6XmIziWUJsdOK6Z"),
    ("cali-OUTPUT", "GBTAv2p5CwevEyJm"),
    ("cali-POSTROUTING", "Z-c7XtVd2Bq7s_hA"),
    ("cali-POSTROUTING", "nYKhEzDlr11Jccal"),
];

#[rstest]
#[case::v4_one("v4_one", one(), IpFamily::V4, FULLY_RANDOM,
    &[("cali-fip-dnat", "CdYeg_OFWFFPtpVp")])]
#[case::v4_loopback("v4_loopback", loopback(), IpFamily::V4, FULLY_RANDOM,
    &[("cali-fip-dnat", "CdYeg_OFWFFPtpVp"), ("cali-fip-snat", "4YbMwJnXqitD2Fph")])]
#[case::v4_loopback_old_iptables("v4_loopback_old_iptables", loopback(), IpFamily::V4, NOT_FULLY_RANDOM,
    &[("cali-fip-dnat", "CdYeg_OFWFFPtpVp"), ("cali-fip-snat", "igza0PIt6woHBSTs")])]
#[case::v4_two_sorted_as_text("v4_two_sorted_as_text", two(), IpFamily::V4, FULLY_RANDOM,
    &[("cali-fip-dnat", "8rFOjUMHhcvwGecK"), ("cali-fip-dnat", "QmJRy_yS-O1D3OZQ"),
      ("cali-fip-snat", "pQ4AZFb1DUPGO5d6"), ("cali-fip-snat", "UO9cSc1e62_D797v")])]
#[case::v6_one("v6_one", one(), IpFamily::V6, FULLY_RANDOM,
    &[("cali-fip-dnat", "jJwT3h7SAjT6Hfbi")])]
#[case::v6_loopback("v6_loopback", loopback(), IpFamily::V6, FULLY_RANDOM,
    &[("cali-fip-dnat", "jJwT3h7SAjT6Hfbi"), ("cali-fip-snat", "e-_vUPOYZqzxLrdO")])]
#[case::v6_loopback_old_iptables("v6_loopback_old_iptables", loopback(), IpFamily::V6, NOT_FULLY_RANDOM,
    &[("cali-fip-dnat", "jJwT3h7SAjT6Hfbi"), ("cali-fip-snat", "PAIRqH8wdg9IvUgB")])]
#[case::v6_two_sorted_as_text("v6_two_sorted_as_text", two(), IpFamily::V6, FULLY_RANDOM,
    &[("cali-fip-dnat", "TBKfiZufrDPlVfYb"), ("cali-fip-dnat", "3SCtKwd9E5UvApyq"),
      ("cali-fip-snat", "vn5xdn_U7khZreu4"), ("cali-fip-snat", "AAd5heZK1LtKd0Dg")])]
#[case::empty("empty", NodeNatState::default(), IpFamily::V4, FULLY_RANDOM, &[])]
fn renders_felix_text_with_felix_hashes(
    #[case] name: &str,
    #[case] state: NodeNatState,
    #[case] family: IpFamily,
    #[case] features: Features,
    #[case] fip_hashes: &[(&str, &str)],
) {
    let text = render_restore(&state, family, features);
    let mut expected = pairs(&STATIC);
    expected.extend(pairs(fip_hashes));
    assert_eq!(comment_hashes(&text), expected);
    insta::assert_snapshot!(format!("iptables_restore_{name}"), text);
}

#[test]
fn renders_removal() {
    insta::assert_snapshot!(render_removal());
}

#[test]
fn parses_what_iptables_save_prints() {
    // Lines as iptables-legacy-save 1.8.9 prints Felix's rules (`-s` before
    // `-d`, /32 and /128 added).
    let saved = "*nat\n\
        -A cali-fip-dnat -d 203.0.113.10/32 -m comment --comment \"cali:CdYeg_OFWFFPtpVp\" -j DNAT --to-destination 198.19.0.5\n\
        -A cali-fip-snat -s 198.19.0.5/32 -d 198.19.0.5/32 -m comment --comment \"cali:4YbMwJnXqitD2Fph\" -j SNAT --to-source 203.0.113.10 --random-fully\n\
        -A cali-fip-dnat -d 2001:db8:f1::10/128 -m comment --comment \"cali:jJwT3h7SAjT6Hfbi\" -j DNAT --to-destination 2001:db8:1::5\n";
    assert_eq!(
        parse_save(saved),
        state(
            &[
                ("203.0.113.10", "198.19.0.5"),
                ("2001:db8:f1::10", "2001:db8:1::5")
            ],
            &[("198.19.0.5", "203.0.113.10")]
        )
    );
}

/// Each chain's `-A` lines of a full restore text, by chain, in order.
fn chains_of(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut chains: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix(':') {
            let chain = declared.split(' ').next().expect("chain name");
            chains.entry(chain.into()).or_default();
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let (chain, rule) = rest.split_once(' ').expect("chain and rule");
            chains.entry(chain.into()).or_default().push(rule.into());
        }
    }
    chains
}

/// What iptables does with an update's `-R`, `-D` and `-A` lines.
fn replay(
    mut chains: std::collections::BTreeMap<String, Vec<String>>,
    update: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    for line in update.lines() {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("-R"), Some(chain), Some(rest)) => {
                let (n, rule) = rest.split_once(' ').expect("number and rule");
                let n: usize = n.parse().expect("rule number");
                chains.get_mut(chain).expect("chain")[n - 1] = rule.into();
            }
            (Some("-D"), Some(chain), Some(n)) => {
                let n: usize = n.parse().expect("rule number");
                chains.get_mut(chain).expect("chain").remove(n - 1);
            }
            (Some("-A"), Some(chain), Some(rule)) => {
                chains.entry(chain.into()).or_default().push(rule.into());
            }
            (Some("*nat" | "COMMIT"), None, None) => {}
            other => panic!("unexpected line {other:?}"),
        }
    }
    chains
}

fn moved() -> NodeNatState {
    state(
        &[
            ("203.0.113.10", "198.19.0.6"),
            ("2001:db8:f1::10", "2001:db8:1::5"),
        ],
        &[],
    )
}

/// Felix's legacy mode writes only what changed, and what it writes turns
/// the old table into exactly the new one.
#[rstest]
#[case::move_on_the_node("move", one(), moved())]
#[case::add_in_the_middle("add", one(), two())]
#[case::remove_from_the_middle("remove", two(), one())]
#[case::remove_all("remove_all", two(), NodeNatState::default())]
#[case::first_mapping("first", NodeNatState::default(), loopback())]
fn an_update_writes_only_the_changed_rules(
    #[case] name: &str,
    #[case] old: NodeNatState,
    #[case] new: NodeNatState,
) {
    let mut texts = Vec::new();
    for family in FAMILIES {
        let update = render_update(&old, &new, family, FULLY_RANDOM).unwrap_or_default();
        let before = chains_of(&render_restore(&old, family, FULLY_RANDOM));
        let after = chains_of(&render_restore(&new, family, FULLY_RANDOM));
        assert_eq!(replay(before, &update), after, "{family}:\n{update}");
        texts.push(update);
    }
    insta::assert_snapshot!(format!("iptables_update_{name}"), texts.join(""));
}

#[test]
fn an_unchanged_table_writes_nothing() {
    for family in FAMILIES {
        assert_eq!(render_update(&two(), &two(), family, FULLY_RANDOM), None);
    }
}
