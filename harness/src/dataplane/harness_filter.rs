//! The harness's own rendering of what Felix's filter and NAT-outgoing rules
//! do to a floating IP's traffic ([`NodeFilterState`]), for the dataplanes
//! that do not render Felix's layout: the map backend and `exec:` drivers (a
//! driver programs floating-IP NAT only; docs/driver-protocol.md). Not what
//! Felix programs: one table per family, `fiph-felix`, with
//! - `forward` and `input` (filter hooks): traffic from a `cali*` interface
//!   that is none of the node's known workloads is dropped, and forwarded
//!   traffic to one, as Felix's dispatch chains end in "Unknown interface";
//! - `postrouting` (nat hook, after Felix's priority srcnat + 10): traffic
//!   from a natOutgoing pool to an address outside every pool is
//!   masqueraded, as Felix's `cali-nat-outgoing` does.
//!
//! Written with `nft -f -` as one transaction, only when the node's state
//! changed (pods come and go far less often than floating IPs move).

use std::fmt::Write as _;

use super::exec::run_in;
use super::felix_filter::family_pools;
use super::nft_keyword as keyword;
use super::per_node::PerNode;
use super::{DataplaneError, Features, FAMILIES};
use crate::calico::nat::NodeFilterState;
use crate::calico::IpFamily;
use crate::lab::netns::Netns;

/// The table's name (one per family).
pub const TABLE: &str = "fiph-felix";

/// What each node was last given; a node absent here holds no table.
#[derive(Debug, Default)]
pub(crate) struct HarnessFilter {
    applied: PerNode<NodeFilterState>,
}

impl HarnessFilter {
    /// Make `node` hold `state` (`None`: nothing known, no table).
    pub(crate) fn apply(
        &self,
        node: &Netns,
        state: Option<&NodeFilterState>,
        features: Features,
    ) -> Result<(), DataplaneError> {
        let old = self.applied.take(node);
        if old.as_ref() == state {
            if let Some(old) = old {
                self.applied.put(node, old);
            }
            return Ok(());
        }
        let script = match state {
            Some(state) => render(state, features),
            None => render_removal(),
        };
        run_in(node, "nft", &["-f", "-"], Some(script.as_bytes()))?;
        if let Some(state) = state {
            self.applied.put(node, state.clone());
        }
        Ok(())
    }

    /// Remove the tables (removing twice is fine).
    pub(crate) fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.applied.forget(node);
        run_in(node, "nft", &["-f", "-"], Some(render_removal().as_bytes())).map(drop)
    }
}

/// `{ "a", "b" }`, or `None` for no workloads.
fn interface_set(workloads: &[String]) -> Option<String> {
    (!workloads.is_empty()).then(|| {
        let quoted: Vec<String> = workloads.iter().map(|w| format!("\"{w}\"")).collect();
        format!("{{ {} }}", quoted.join(", "))
    })
}

/// The script that makes both tables hold `state`, whatever they held.
pub fn render(state: &NodeFilterState, features: Features) -> String {
    let mut out = String::new();
    let unknown = |direction: &str| match interface_set(&state.workloads) {
        Some(known) => format!("{direction} \"cali*\" {direction} != {known} drop"),
        None => format!("{direction} \"cali*\" drop"),
    };
    for family in FAMILIES {
        let ip = keyword(family);
        for verb in ["add", "delete", "add"] {
            writeln!(out, "{verb} table {ip} {TABLE}").expect("writing to a String");
        }
        let address = match family {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        };
        for (set, members) in [("pools", &state.pools), ("masq-pools", &state.masq_pools)] {
            writeln!(
                out,
                "add set {ip} {TABLE} {set} {{ type {address} ; flags interval ; }}"
            )
            .expect("writing to a String");
            let members = family_pools(members, family);
            if !members.is_empty() {
                let list: Vec<String> = members.iter().map(ToString::to_string).collect();
                writeln!(
                    out,
                    "add element {ip} {TABLE} {set} {{ {} }}",
                    list.join(", ")
                )
                .expect("writing to a String");
            }
        }
        for (chain, hook, kind, priority) in [
            ("forward", "forward", "filter", 0),
            ("input", "input", "filter", 0),
            ("postrouting", "postrouting", "nat", 120),
        ] {
            writeln!(
                out,
                "add chain {ip} {TABLE} {chain} {{ type {kind} hook {hook} priority {priority} ; policy accept ; }}"
            )
            .expect("writing to a String");
        }
        let rules = [
            ("forward", unknown("iifname")),
            ("forward", unknown("oifname")),
            ("input", unknown("iifname")),
        ];
        for (chain, rule) in rules {
            writeln!(out, "add rule {ip} {TABLE} {chain} {rule}").expect("writing to a String");
        }
        if !family_pools(&state.masq_pools, family).is_empty() {
            let random = if features.masq_fully_random {
                " fully-random"
            } else {
                ""
            };
            writeln!(
                out,
                "add rule {ip} {TABLE} postrouting {ip} saddr @masq-pools {ip} daddr != @pools masquerade{random}"
            )
            .expect("writing to a String");
        }
    }
    out
}

/// The script that removes both tables (removing twice is fine).
pub fn render_removal() -> String {
    super::render_nft_table_removal(TABLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::test_vectors::FULLY_RANDOM;

    #[test]
    fn renders_the_drop_and_the_masquerade() {
        let state = NodeFilterState {
            workloads: vec!["cali1".into(), "cali2".into()],
            pools: vec![
                "198.19.0.0/16".parse().unwrap(),
                "2001:db8:1::/48".parse().unwrap(),
            ],
            masq_pools: vec!["198.19.0.0/16".parse().unwrap()],
            ..NodeFilterState::default()
        };
        insta::assert_snapshot!(render(&state, FULLY_RANDOM));
        let none = render(&NodeFilterState::default(), FULLY_RANDOM);
        assert!(
            none.contains("add rule ip fiph-felix input iifname \"cali*\" drop"),
            "{none}"
        );
        assert!(!none.contains("masquerade"), "{none}");
    }
}
