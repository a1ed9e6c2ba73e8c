//! Felix's nftables filter layer for the workload dispatch, and the
//! NAT-outgoing sets and rule, written into `table ip|ip6 calico` as Felix
//! writes them through knftables ([`super::super::felix_filter`] is the
//! model): base chains `filter-INPUT` and `filter-FORWARD` (felix/nftables/
//! table.go `baseChains`: type filter, priority filter = 0), the dispatch
//! verdict maps `filter-cali-from-wl-dispatch` / `filter-cali-to-wl-dispatch`
//! (felix/rules/dispatch.go `DispatchMappings`: each workload's interface to
//! `goto filter-cali-fw-<iface>` / `filter-cali-tw-<iface>`), the sets
//! `cali40masq-ipam-pools` and `cali40network-ip-pools` (interval sets, as in
//! felix/fv/cali-nftables-dump.txt), and `nat-cali-nat-outgoing`'s rule.

use std::fmt::Write as _;

use super::super::felix_filter::{
    self, family_pools, filter_chains, filter_hooks, masq_set, pools_set, Rule,
};
use super::super::felix_hash::chained_hashes;
use super::super::Features;
use super::{keyword, TABLE};
use crate::calico::nat::NodeFilterState;
use crate::calico::IpFamily;

const LAYER: &str = "filter-";

/// Append the filter layer and NAT-outgoing of `family` to `out` (after the
/// nat layer's chains exist).
pub(super) fn render(
    out: &mut String,
    family: IpFamily,
    state: &NodeFilterState,
    features: Features,
) {
    let ip = keyword(family);
    let mut line = |text: String| {
        writeln!(out, "{text}").expect("writing to a String");
    };
    // felix/dataplane/linux/masq_mgr.go newMasqManager: both sets always.
    let address = match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    };
    for (set, members) in [
        (pools_set(state, family), &state.pools),
        (masq_set(family), &state.masq_pools),
    ] {
        line(format!(
            "add set {ip} {TABLE} {set} {{ type {address} ; flags interval ; }}"
        ));
        let members = family_pools(members, family);
        if !members.is_empty() {
            let list: Vec<String> = members.iter().map(ToString::to_string).collect();
            line(format!(
                "add element {ip} {TABLE} {set} {{ {} }}",
                list.join(", ")
            ));
        }
    }
    let outgoing = felix_filter::nat_outgoing_rules(state, family, features);
    rules(
        &mut line,
        ip,
        "nat-cali-nat-outgoing",
        "nat-cali-nat-outgoing",
        &outgoing,
        family,
        "nat-",
    );

    for (builtin, hook) in [("INPUT", "input"), ("FORWARD", "forward")] {
        line(format!(
            "add chain {ip} {TABLE} {LAYER}{builtin} {{ type filter hook {hook} priority 0 ; }}"
        ));
    }
    for map in [felix_filter::FROM_WL_DISPATCH, felix_filter::TO_WL_DISPATCH] {
        line(format!(
            "add map {ip} {TABLE} {LAYER}{map} {{ type ifname : verdict ; }}"
        ));
    }
    let chains = filter_chains(state, true);
    for chain in &chains {
        line(format!("add chain {ip} {TABLE} {LAYER}{}", chain.name));
    }
    for (map, endpoint) in [
        (felix_filter::FROM_WL_DISPATCH, "cali-fw-"),
        (felix_filter::TO_WL_DISPATCH, "cali-tw-"),
    ] {
        if state.workloads.is_empty() {
            continue;
        }
        let elements: Vec<String> = state
            .workloads
            .iter()
            .map(|w| format!("{w} : goto {LAYER}{endpoint}{w}"))
            .collect();
        line(format!(
            "add element {ip} {TABLE} {LAYER}{map} {{ {} }}",
            elements.join(", ")
        ));
    }
    for chain in &chains {
        let name = format!("{LAYER}{}", chain.name);
        rules(&mut line, ip, &name, &name, &chain.rules, family, LAYER);
    }
    let hooks = filter_hooks();
    for builtin in ["INPUT", "FORWARD"] {
        for append in [false, true] {
            let chain = format!("{LAYER}{builtin}");
            let hash_chain = match append {
                false => chain.clone(),
                true => format!("{chain}*appends*"),
            };
            let these: Vec<Rule> = hooks
                .iter()
                .filter(|h| h.builtin == builtin && h.append == append)
                .map(|h| h.rule.clone())
                .collect();
            rules(&mut line, ip, &chain, &hash_chain, &these, family, LAYER);
        }
    }
}

/// `add rule` commands, hashed as Felix hashes (the rule text without its
/// comment), the comment `cali:<hash>;` then the rule's own comment.
fn rules(
    line: &mut impl FnMut(String),
    ip: &str,
    chain: &str,
    hash_chain: &str,
    rules: &[Rule],
    family: IpFamily,
    layer: &str,
) {
    let texts: Vec<String> = rules.iter().map(|r| r.nft(family, layer)).collect();
    for ((text, hash), rule) in texts
        .iter()
        .zip(chained_hashes(hash_chain, &texts))
        .zip(rules)
    {
        let comment = match rule.comment {
            Some(extra) => format!("cali:{hash}; {extra}"),
            None => format!("cali:{hash};"),
        };
        line(format!(
            "add rule {ip} {TABLE} {chain} {text} comment \"{comment}\""
        ));
    }
}
