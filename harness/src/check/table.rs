//! The expected-against-actual table printed for a step, one line per
//! (source, destination, protocol) check, in the manner of Calico Felix's
//! connectivity checker: every check is listed, wrong ones are marked.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::delivery::{describe_pods, join_addresses, DeliveryObserved, Mismatch};

/// One check of a step, with what was seen and what fell short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckLine {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub observed: DeliveryObserved,
    pub mismatches: Vec<Mismatch>,
}

impl CheckLine {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Render every line; wrong lines carry `<---- WRONG` and, indented below, each
/// expectation that failed with `<---- EXPECTED`.
pub fn render_table(lines: &[CheckLine]) -> String {
    let mut out = String::new();
    for line in lines {
        let o = &line.observed;
        let delivered = describe_pods(&o.delivered);
        let join = |set| join_addresses(set, ",", "-");
        let _ = write!(
            out,
            "{} -> {} {}: delivered to {delivered}; pod saw dst {} src {}; replies from {} (sent: {}, lost: {})",
            line.source,
            line.destination,
            line.protocol,
            join(&o.seen_destinations),
            join(&o.seen_sources),
            join(&o.reply_sources),
            o.sent,
            o.lost(),
        );
        if !o.quoted_destinations.is_empty() {
            let _ = write!(
                out,
                " (ICMP error quoted dst {})",
                join(&o.quoted_destinations)
            );
        }
        if line.passed() {
            out.push('\n');
            continue;
        }
        out.push_str("   <---- WRONG\n");
        for m in &line.mismatches {
            let _ = writeln!(
                out,
                "      {}: {}   <---- EXPECTED {}",
                m.what, m.actual, m.expected
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn wrong_lines_are_marked_with_what_was_expected() {
        let ok = CheckLine {
            source: "client".into(),
            destination: "203.0.113.10".into(),
            protocol: "icmp".into(),
            observed: DeliveryObserved {
                sent: 3,
                answered: 3,
                delivered: BTreeMap::from([("web".into(), 3)]),
                seen_destinations: BTreeSet::from(["198.19.0.1".parse().unwrap()]),
                seen_sources: BTreeSet::from(["198.18.1.10".parse().unwrap()]),
                reply_sources: BTreeSet::from(["203.0.113.10".parse().unwrap()]),
                quoted_destinations: BTreeSet::new(),
                destinations_by_pod: BTreeMap::new(),
            },
            mismatches: vec![],
        };
        let wrong = CheckLine {
            protocol: "gre".into(),
            observed: DeliveryObserved {
                sent: 3,
                ..Default::default()
            },
            mismatches: vec![Mismatch {
                what: "delivered to".into(),
                expected: "web".into(),
                actual: "no pod".into(),
            }],
            ..ok.clone()
        };
        insta::assert_snapshot!(render_table(&[ok, wrong]), @r"
        client -> 203.0.113.10 icmp: delivered to web (3); pod saw dst 198.19.0.1 src 198.18.1.10; replies from 203.0.113.10 (sent: 3, lost: 0)
        client -> 203.0.113.10 gre: delivered to no pod; pod saw dst - src -; replies from - (sent: 3, lost: 3)   <---- WRONG
              delivered to: no pod   <---- EXPECTED web
        ");
    }
}
