//! Calico's own iptables rendering of floating IPs, applied with
//! `iptables-legacy-restore` / `ip6tables-legacy-restore` inside the node.
//!
//! The text mirrors Felix (felix/rules/nat.go and static.go): chain
//! `cali-fip-dnat` with one `--destination EXT --jump DNAT --to-destination INT`
//! rule per floating IP, chain `cali-fip-snat` with one `--destination INT
//! --source INT --jump SNAT --to-source EXT` rule per pod address, both sorted as
//! Felix sorts them (Go `sort.Strings`, i.e. by the address *text*), each rule
//! carrying Felix's `cali:<hash>` comment; jumped to first from `cali-PREROUTING`,
//! `cali-OUTPUT` and `cali-POSTROUTING`, which the built-in chains jump to.
//!
//! Why the legacy variant: its rules live in x_tables, apart from nftables, so
//! this backend and the nftables one never see each other's rules when both are
//! tried on one namespace, and the chain is walked rule by rule, which is the
//! linear cost of Calico's iptables mode that the benchmark shows.
//!
//! Each apply re-declares the built-in nat chains and ours, which flushes them,
//! and writes them whole in one `--noflush` restore (one commit of the nat table,
//! other tables untouched): a full, atomic replacement. The node namespaces are
//! the harness's own, so nothing else has rules in their nat table to lose.

use std::net::IpAddr;

use regex::Regex;

use super::exec::run_in;
use super::felix_hash::rule_hashes;
use super::{BackendKind, Dataplane, DataplaneError, DnatMapping, NodeNatState, SnatMapping};
use crate::lab::netns::Netns;

/// IP family, for the pair of programs and the rules of that family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn holds(self, address: IpAddr) -> bool {
        address.is_ipv4() == (self == Family::V4)
    }
    fn restore(self) -> &'static str {
        match self {
            Family::V4 => "iptables-legacy-restore",
            Family::V6 => "ip6tables-legacy-restore",
        }
    }
    fn save(self) -> &'static str {
        match self {
            Family::V4 => "iptables-legacy-save",
            Family::V6 => "ip6tables-legacy-save",
        }
    }
}

const BUILTIN_JUMPS: [(&str, &str); 3] = [
    ("PREROUTING", "cali-PREROUTING"),
    ("OUTPUT", "cali-OUTPUT"),
    ("POSTROUTING", "cali-POSTROUTING"),
];
const CALI_JUMPS: [(&str, &str); 3] = [
    ("cali-PREROUTING", "cali-fip-dnat"),
    ("cali-OUTPUT", "cali-fip-dnat"),
    ("cali-POSTROUTING", "cali-fip-snat"),
];
const OUR_CHAINS: [&str; 5] = [
    "cali-PREROUTING",
    "cali-OUTPUT",
    "cali-POSTROUTING",
    "cali-fip-dnat",
    "cali-fip-snat",
];

/// Render one chain's rules as Felix writes them for iptables-restore:
/// `-A <chain> -m comment --comment "cali:<hash>" <body>`.
fn render_chain(out: &mut String, chain: &str, bodies: &[String]) {
    for (body, hash) in bodies.iter().zip(rule_hashes(chain, bodies)) {
        out.push_str(&format!(
            "-A {chain} -m comment --comment \"cali:{hash}\" {body}\n"
        ));
    }
}

fn nat_header(out: &mut String) {
    out.push_str("*nat\n");
    for builtin in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] {
        out.push_str(&format!(":{builtin} ACCEPT [0:0]\n"));
    }
    for chain in OUR_CHAINS {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    // With --noflush, declaring a user chain flushes it but declaring a built-in
    // one does not, so the built-ins' jumps are flushed explicitly.
    for builtin in ["PREROUTING", "OUTPUT", "POSTROUTING"] {
        out.push_str(&format!("-F {builtin}\n"));
    }
}

/// The iptables-restore input that makes the nat table of one family hold
/// exactly `state` (rules of the other family are ignored).
pub fn render_restore(state: &NodeNatState, family: Family) -> String {
    let mut dnat: Vec<(String, String)> = state
        .dnat
        .iter()
        .filter(|m| family.holds(m.external))
        .map(|m| (m.external.to_string(), m.internal.to_string()))
        .collect();
    dnat.sort();
    let mut snat: Vec<(String, String)> = state
        .snat
        .iter()
        .filter(|m| family.holds(m.internal))
        .map(|m| (m.internal.to_string(), m.external.to_string()))
        .collect();
    snat.sort();

    let mut out = String::new();
    nat_header(&mut out);
    for (builtin, target) in BUILTIN_JUMPS {
        render_chain(&mut out, builtin, &[format!("--jump {target}")]);
    }
    for (chain, target) in CALI_JUMPS {
        render_chain(&mut out, chain, &[format!("--jump {target}")]);
    }
    let dnat_rules: Vec<String> = dnat
        .iter()
        .map(|(ext, int)| format!("--destination {ext} --jump DNAT --to-destination {int}"))
        .collect();
    render_chain(&mut out, "cali-fip-dnat", &dnat_rules);
    let snat_rules: Vec<String> = snat
        .iter()
        .map(|(int, ext)| {
            format!("--destination {int} --source {int} --jump SNAT --to-source {ext}")
        })
        .collect();
    render_chain(&mut out, "cali-fip-snat", &snat_rules);
    out.push_str("COMMIT\n");
    out
}

/// The iptables-restore input that removes our chains and the jumps to them.
pub fn render_removal() -> String {
    let mut out = String::new();
    nat_header(&mut out);
    // Every chain is flushed by now, so no reference is left when deleting.
    for chain in OUR_CHAINS {
        out.push_str(&format!("-X {chain}\n"));
    }
    out.push_str("COMMIT\n");
    out
}

/// Read the floating-IP mappings back from `iptables-save -t nat` text.
pub fn parse_save(text: &str) -> NodeNatState {
    let dnat_rule =
        Regex::new(r"^-A cali-fip-dnat -d (\S+?)(?:/\d+)? .*-j DNAT --to-destination (\S+)")
            .expect("valid regex");
    let snat_rule =
        Regex::new(r"^-A cali-fip-snat -s (\S+?)(?:/\d+)? -d \S+ .*-j SNAT --to-source (\S+)")
            .expect("valid regex");
    let (mut dnat, mut snat) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(c) = dnat_rule.captures(line) {
            if let (Ok(external), Ok(internal)) = (c[1].parse(), c[2].parse()) {
                dnat.push(DnatMapping::new(external, internal));
            }
        } else if let Some(c) = snat_rule.captures(line) {
            if let (Ok(internal), Ok(external)) = (c[1].parse(), c[2].parse()) {
                snat.push(SnatMapping::new(internal, external));
            }
        }
    }
    NodeNatState::new(dnat, snat)
}

/// Calico's iptables rendering (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct IptablesBackend;

impl IptablesBackend {
    pub fn new() -> Self {
        Self
    }

    fn save(&self, node: &Netns) -> Result<String, DataplaneError> {
        let mut text = String::new();
        for family in [Family::V4, Family::V6] {
            text.push_str(&run_in(node, family.save(), &["-t", "nat"], None)?);
        }
        Ok(text)
    }
}

impl Dataplane for IptablesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Iptables
    }

    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        restore_both(node, |family| render_restore(state, family))
    }

    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        restore_both(node, |_| render_removal())
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        // Drop the timestamp comments so two dumps of the same rules compare equal.
        Ok(self
            .save(node)?
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect())
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        Ok(parse_save(&self.save(node)?))
    }
}

/// Feed each family's `iptables-restore --noflush` the text `text_of` gives it.
fn restore_both(node: &Netns, text_of: impl Fn(Family) -> String) -> Result<(), DataplaneError> {
    for family in [Family::V4, Family::V6] {
        let text = text_of(family);
        run_in(
            node,
            family.restore(),
            &["--noflush"],
            Some(text.as_bytes()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn state(dnat: &[(&str, &str)], snat: &[(&str, &str)]) -> NodeNatState {
        NodeNatState::new(
            dnat.iter().map(|(e, i)| DnatMapping::new(ip(e), ip(i))),
            snat.iter().map(|(i, e)| SnatMapping::new(ip(i), ip(e))),
        )
    }

    #[rstest]
    #[case::v4_one("v4_one", state(&[("203.0.113.1", "198.19.0.5")], &[("198.19.0.5", "203.0.113.1")]), Family::V4)]
    #[case::v4_sorted_as_text("v4_sorted_as_text", state(
        &[("203.0.113.9", "198.19.0.9"), ("203.0.113.10", "198.19.0.10"), ("203.0.113.2", "198.19.0.2")],
        &[("198.19.0.9", "203.0.113.9"), ("198.19.0.10", "203.0.113.10")]), Family::V4)]
    #[case::v6_only_v6_rules("v6_only_v6_rules", state(
        &[("203.0.113.1", "198.19.0.5"), ("2001:db8:f1::1", "2001:db8:1::5")],
        &[("2001:db8:1::5", "2001:db8:f1::1")]), Family::V6)]
    #[case::empty("empty", NodeNatState::default(), Family::V4)]
    fn renders_felix_text(#[case] name: &str, #[case] state: NodeNatState, #[case] family: Family) {
        insta::assert_snapshot!(
            format!("iptables_restore_{name}"),
            render_restore(&state, family)
        );
    }

    #[test]
    fn renders_removal() {
        insta::assert_snapshot!(render_removal());
    }

    #[test]
    fn parses_what_iptables_save_prints() {
        let saved = "*nat\n\
            -A cali-fip-dnat -d 203.0.113.1/32 -m comment --comment \"cali:x\" -j DNAT --to-destination 198.19.0.5\n\
            -A cali-fip-snat -s 198.19.0.5/32 -d 198.19.0.5/32 -m comment --comment \"cali:y\" -j SNAT --to-source 203.0.113.1\n\
            -A cali-fip-dnat -d 2001:db8:f1::1/128 -m comment --comment \"cali:z\" -j DNAT --to-destination 2001:db8:1::5\n";
        assert_eq!(
            parse_save(saved),
            state(
                &[
                    ("203.0.113.1", "198.19.0.5"),
                    ("2001:db8:f1::1", "2001:db8:1::5")
                ],
                &[("198.19.0.5", "203.0.113.1")]
            )
        );
    }
}
