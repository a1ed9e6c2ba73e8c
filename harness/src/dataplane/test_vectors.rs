//! Node states the renderers' tests share, with the `cali:` hashes Felix gives
//! their rules. Every expected hash below was checked against a Felix FV dump
//! (felix/fv/cali-iptables-dump.txt, felix/fv/cali-nftables-dump.txt) or
//! computed with the research notes' reference implementation of
//! generictables.RuleHashes (/work/notes/calico-facts.md sections 3.4, 4.5 and
//! 4.11), never with the code under test.

use std::net::IpAddr;

use super::{DnatMapping, Features, NodeNatState, SnatMapping};

/// A host where Felix adds `--random-fully` / `fully-random` to SNAT.
pub(crate) const FULLY_RANDOM: Features = Features {
    snat_fully_random: true,
    masq_fully_random: true,
};
/// A host with iptables older than 1.6.0 or a kernel older than 3.14.
pub(crate) const NOT_FULLY_RANDOM: Features = Features {
    snat_fully_random: false,
    masq_fully_random: false,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A state from (external, internal) DNAT pairs and (internal, external) SNAT
/// pairs, as text.
pub(crate) fn state(dnat: &[(&str, &str)], snat: &[(&str, &str)]) -> NodeNatState {
    NodeNatState::new(
        dnat.iter().map(|(e, i)| DnatMapping::new(ip(e), ip(i))),
        snat.iter().map(|(i, e)| SnatMapping::new(ip(i), ip(e))),
    )
}

/// One floating IP per family, DNAT only.
pub(crate) fn one() -> NodeNatState {
    state(
        &[
            ("203.0.113.10", "198.19.0.5"),
            ("2001:db8:f1::10", "2001:db8:1::5"),
        ],
        &[],
    )
}

/// One floating IP per family with the loopback SNAT (a pod reaching its own
/// floating IP).
pub(crate) fn loopback() -> NodeNatState {
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

/// Two floating IPs per family whose text order differs from numeric order
/// (`.10` sorts before `.9`, `::10` before `::9`), each with its SNAT.
pub(crate) fn two() -> NodeNatState {
    state(
        &[
            ("203.0.113.9", "198.19.0.9"),
            ("203.0.113.10", "198.19.0.10"),
            ("2001:db8:f1::9", "2001:db8:1::9"),
            ("2001:db8:f1::10", "2001:db8:1::10"),
        ],
        &[
            ("198.19.0.9", "203.0.113.9"),
            ("198.19.0.10", "203.0.113.10"),
            ("2001:db8:1::9", "2001:db8:f1::9"),
            ("2001:db8:1::10", "2001:db8:f1::10"),
        ],
    )
}

/// Every `cali:<hash>` comment in rendered text, in order of appearance, with
/// the chain it is on (the first word after `-A` / `add rule <family> <table>`).
pub(crate) fn comment_hashes(text: &str) -> Vec<(String, String)> {
    let pattern = regex::Regex::new(
        r#"(?m)^(?:-A (\S+)|add rule \S+ \S+ (\S+)) .*"cali:([A-Za-z0-9_-]{16});?""#,
    )
    .expect("valid regex");
    pattern
        .captures_iter(text)
        .map(|c| {
            let chain = c.get(1).or(c.get(2)).expect("one chain group").as_str();
            (chain.to_string(), c[3].to_string())
        })
        .collect()
}

/// (chain, hash) pairs from string literals.
pub(crate) fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(c, h)| (c.to_string(), h.to_string()))
        .collect()
}
