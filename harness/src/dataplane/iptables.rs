//! Felix's iptables mode as it renders floating IPs, applied with
//! `iptables-legacy-restore` / `ip6tables-legacy-restore` inside the node.
//!
//! The rules are [`felix_rules`](super::felix_rules)'s model written as
//! felix/iptables/renderer.go writes them: chain `cali-fip-dnat` with one
//! `--destination EXT --jump DNAT --to-destination INT` rule per floating IP,
//! chain `cali-fip-snat` with one `--destination INT --source INT --jump SNAT
//! --to-source EXT --random-fully` rule per pod address (`--random-fully` when
//! Felix's feature detection would add it, see [`features`](super::features)),
//! both sorted by address text, each with Felix's `cali:<hash>` comment;
//! `cali-PREROUTING` and `cali-OUTPUT` jump to `cali-fip-dnat`,
//! `cali-POSTROUTING` to `cali-fip-snat` then `cali-nat-outgoing` (empty); the
//! built-in chains jump to them, POSTROUTING's jump appended and hashed as
//! Felix hashes appended rules.
//!
//! Why the legacy variant: its rules live in x_tables, apart from nftables, so
//! this backend and the nftables ones never see each other's rules when both
//! are tried on one namespace, and the chain is walked rule by rule, which is
//! the linear cost of Calico's iptables mode that the benchmark shows.
//!
//! Each apply re-declares the built-in nat chains and ours, which flushes them,
//! and writes them whole in one `--noflush` restore (one commit of the nat table,
//! other tables untouched): a full, atomic replacement. The node namespaces are
//! the harness's own, so nothing else has rules in their nat table to lose.

use regex::Regex;

use super::exec::run_in;
use super::felix_hash::rule_hashes;
use super::felix_rules::{self, Action, Rule, BASE_JUMPS};
use super::{
    Dataplane, DataplaneError, DnatMapping, Features, NodeNatState, SnatMapping, FAMILIES,
};
use crate::calico::IpFamily;
use crate::lab::netns::Netns;

fn restore_program(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "iptables-legacy-restore",
        IpFamily::V6 => "ip6tables-legacy-restore",
    }
}

fn save_program(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "iptables-legacy-save",
        IpFamily::V6 => "ip6tables-legacy-save",
    }
}

/// Every chain this backend declares, in the order it declares them.
const OUR_CHAINS: [&str; 6] = [
    "cali-PREROUTING",
    "cali-OUTPUT",
    "cali-POSTROUTING",
    felix_rules::FIP_DNAT,
    felix_rules::FIP_SNAT,
    felix_rules::NAT_OUTGOING,
];

/// A rule's body as felix/iptables/renderer.go renders it: the match
/// (match_builder.go: `--destination`, then `--source`), then the action
/// (actions.go `ToFragment`).
fn render_body(rule: &Rule) -> String {
    let mut fragments = Vec::new();
    if let Some(destination) = &rule.destination {
        fragments.push(format!("--destination {destination}"));
    }
    if let Some(source) = &rule.source {
        fragments.push(format!("--source {source}"));
    }
    fragments.push(match &rule.action {
        Action::Jump(target) => format!("--jump {target}"),
        Action::Dnat(to) => format!("--jump DNAT --to-destination {to}"),
        Action::Snat { to, fully_random } => format!(
            "--jump SNAT --to-source {to}{}",
            if *fully_random { " --random-fully" } else { "" }
        ),
    });
    fragments.join(" ")
}

/// Render one chain's rules as Felix writes them for iptables-restore:
/// `-A <chain> -m comment --comment "cali:<hash>" <body>`, hashed under
/// `hash_chain` (the chain's own name except for appended rules).
fn render_chain(out: &mut String, chain: &str, hash_chain: &str, bodies: &[String]) {
    for (body, hash) in bodies.iter().zip(rule_hashes(hash_chain, bodies)) {
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
pub fn render_restore(state: &NodeNatState, family: IpFamily, features: Features) -> String {
    let mut out = String::new();
    nat_header(&mut out);
    for jump in BASE_JUMPS {
        let body = render_body(&Rule {
            destination: None,
            source: None,
            action: Action::Jump(jump.target),
        });
        render_chain(
            &mut out,
            jump.builtin,
            &jump.hash_chain(jump.builtin),
            &[body],
        );
    }
    for chain in felix_rules::nat_chains(state, family, features) {
        let bodies: Vec<String> = chain.rules.iter().map(render_body).collect();
        render_chain(&mut out, chain.name, chain.name, &bodies);
    }
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

/// Felix's iptables rendering (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct IptablesBackend {
    features: Features,
}

impl Default for IptablesBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl IptablesBackend {
    /// The rendering Felix would give on this host.
    pub fn new() -> Self {
        Self::with_features(Features::detected())
    }

    /// The rendering Felix would give with `features`.
    pub fn with_features(features: Features) -> Self {
        Self { features }
    }

    fn save(&self, node: &Netns) -> Result<String, DataplaneError> {
        let mut text = String::new();
        for family in FAMILIES {
            text.push_str(&run_in(node, save_program(family), &["-t", "nat"], None)?);
        }
        Ok(text)
    }
}

impl Dataplane for IptablesBackend {
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        restore_both(node, |family| render_restore(state, family, self.features))
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
fn restore_both(node: &Netns, text_of: impl Fn(IpFamily) -> String) -> Result<(), DataplaneError> {
    for family in FAMILIES {
        let text = text_of(family);
        run_in(
            node,
            restore_program(family),
            &["--noflush"],
            Some(text.as_bytes()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::{
        comment_hashes, loopback, one, pairs, state, two, FULLY_RANDOM, NOT_FULLY_RANDOM,
    };
    use super::*;
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
}
