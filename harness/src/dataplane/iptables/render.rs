//! The iptables-restore text of Felix's nat rules for floating IPs: the whole
//! table, its removal, and reading mappings back from `iptables-save`.

use regex::Regex;

use super::super::felix_filter;
use super::super::felix_hash::rule_hashes;
use super::super::felix_rules::{self, Action, Rule, BASE_JUMPS};
use super::super::{DnatMapping, Features, NodeNatState, SnatMapping};
use crate::calico::IpFamily;

pub(super) fn restore_program(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "iptables-legacy-restore",
        IpFamily::V6 => "ip6tables-legacy-restore",
    }
}

pub(super) fn save_program(family: IpFamily) -> &'static str {
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
pub(super) fn render_body(rule: &Rule) -> String {
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
pub(super) fn render_chain(out: &mut String, chain: &str, hash_chain: &str, bodies: &[String]) {
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
    for (name, bodies) in nat_bodies(state, family, features) {
        render_chain(&mut out, name, name, &bodies);
    }
    out.push_str("COMMIT\n");
    out
}

/// Every Calico nat chain of one family with its rules' bodies; the
/// NAT-outgoing chain's from the node's filter state when known
/// ([`felix_filter::nat_outgoing_rules`]).
pub(super) fn nat_bodies(
    state: &NodeNatState,
    family: IpFamily,
    features: Features,
) -> Vec<(&'static str, Vec<String>)> {
    felix_rules::nat_chains(state, family, features)
        .into_iter()
        .map(|chain| {
            let bodies = match (&state.filter, chain.name) {
                (Some(filter), felix_rules::NAT_OUTGOING) => {
                    felix_filter::nat_outgoing_rules(filter, family, features)
                        .iter()
                        .map(felix_filter::Rule::iptables)
                        .collect()
                }
                _ => chain.rules.iter().map(render_body).collect(),
            };
            (chain.name, bodies)
        })
        .collect()
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
