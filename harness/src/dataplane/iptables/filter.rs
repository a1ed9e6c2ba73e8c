//! Felix's filter table for the workload dispatch, and the IP sets of
//! NAT-outgoing, in its iptables mode ([`super::super::felix_filter`] is the
//! model): `INPUT` and `FORWARD` hooked to `cali-INPUT` / `cali-FORWARD`, the
//! dispatch chains as rules (dispatch.go's prefix tree), Felix's empty
//! host-endpoint and per-endpoint chains, every rule with its `cali:` hash.
//!
//! The table is written whole whenever the node's workloads or pools change
//! (pods come and go far less often than floating IPs move); Felix would
//! update only the dispatch chains and the endpoints' chains. Chains of
//! workloads that went are deleted in the same transaction.
//!
//! NAT-outgoing's sets are ipsets (felix/ipsets, `hash:net`), written with
//! `ipset restore` before the nat table that references them, and only for a
//! family that has a natOutgoing pool (Felix creates them always; without a
//! rule referencing them they change nothing).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::super::felix_filter::{family_pools, filter_chains, filter_hooks, masq_set, pools_set};
use super::render::render_chain;
use crate::calico::nat::NodeFilterState;
use crate::calico::IpFamily;

/// The built-in chains Felix hooks in the filter table.
const BUILTINS: [&str; 2] = ["INPUT", "FORWARD"];

fn header(out: &mut String, chains: &[String]) {
    out.push_str("*filter\n");
    for builtin in BUILTINS {
        writeln!(out, ":{builtin} ACCEPT [0:0]").expect("writing to a String");
    }
    for chain in chains {
        writeln!(out, ":{chain} - [0:0]").expect("writing to a String");
    }
    // With --noflush a built-in chain is not flushed by declaring it.
    for builtin in BUILTINS {
        writeln!(out, "-F {builtin}").expect("writing to a String");
    }
}

pub(super) fn chain_names(state: &NodeFilterState) -> Vec<String> {
    filter_chains(state, false)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// The restore input (one `*filter` transaction) that makes the filter table
/// hold `state`'s layout, deleting the chains of `old` it no longer has.
pub(super) fn render(state: &NodeFilterState, old: Option<&NodeFilterState>) -> String {
    let chains = filter_chains(state, false);
    let names: Vec<String> = chains.iter().map(|c| c.name.clone()).collect();
    let mut out = String::new();
    header(&mut out, &names);
    let hooks = filter_hooks();
    for builtin in BUILTINS {
        for append in [false, true] {
            let bodies: Vec<String> = hooks
                .iter()
                .filter(|h| h.builtin == builtin && h.append == append)
                .map(|h| h.rule.iptables())
                .collect();
            let hash_chain = match append {
                false => builtin.to_string(),
                true => format!("{builtin}*appends*"),
            };
            render_chain(&mut out, builtin, &hash_chain, &bodies);
        }
    }
    for chain in &chains {
        let bodies: Vec<String> = chain.rules.iter().map(|r| r.iptables()).collect();
        render_chain(&mut out, &chain.name, &chain.name, &bodies);
    }
    let now: BTreeSet<&String> = names.iter().collect();
    let stale: Vec<String> = old
        .map(chain_names)
        .unwrap_or_default()
        .into_iter()
        .filter(|name| !now.contains(name))
        .collect();
    for chain in &stale {
        writeln!(out, "-F {chain}").expect("writing to a String");
    }
    for chain in &stale {
        writeln!(out, "-X {chain}").expect("writing to a String");
    }
    out.push_str("COMMIT\n");
    out
}

/// The restore input that removes Calico's filter chains `names` and the
/// hooks to them.
pub(super) fn render_removal(names: &[String]) -> String {
    let mut out = String::new();
    header(&mut out, names);
    for chain in names {
        writeln!(out, "-X {chain}").expect("writing to a String");
    }
    out.push_str("COMMIT\n");
    out
}

/// The `ipset restore` input for `family`'s NAT-outgoing sets, or `None`
/// when the family has no natOutgoing pool. `create` as Felix's ipsets
/// writer declares a `hash:net` set (felix/ipsets/ipsets.go), then the
/// members, replacing what the sets held.
pub(super) fn ipset_restore(state: &NodeFilterState, family: IpFamily) -> Option<String> {
    if family_pools(&state.masq_pools, family).is_empty() {
        return None;
    }
    let inet = match family {
        IpFamily::V4 => "inet",
        IpFamily::V6 => "inet6",
    };
    let mut out = String::new();
    for (set, members) in [
        (masq_set(family), &state.masq_pools),
        (pools_set(state, family), &state.pools),
    ] {
        writeln!(out, "create {set} hash:net family {inet} maxelem 1048576")
            .expect("writing to a String");
        writeln!(out, "flush {set}").expect("writing to a String");
        for member in family_pools(members, family) {
            writeln!(out, "add {set} {member}").expect("writing to a String");
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_filter_table_and_drops_what_went() {
        let state = NodeFilterState {
            workloads: vec!["cali1a".into(), "cali2a".into()],
            pools: vec!["198.19.0.0/16".parse().unwrap()],
            masq_pools: vec!["198.19.0.0/16".parse().unwrap()],
            ..NodeFilterState::default()
        };
        let earlier = NodeFilterState {
            workloads: vec!["cali1a".into(), "cali1b".into(), "cali2a".into()],
            ..state.clone()
        };
        let text = render(&state, Some(&earlier));
        insta::assert_snapshot!(text);
        assert!(text.contains("-X cali-fw-cali1b\n"), "{text}");
        assert!(text.contains("-X cali-from-wl-dispatch-1\n"), "{text}");
        insta::assert_snapshot!(
            "ipset_restore_v4",
            ipset_restore(&state, IpFamily::V4).unwrap()
        );
        assert_eq!(ipset_restore(&state, IpFamily::V6), None);
    }
}
