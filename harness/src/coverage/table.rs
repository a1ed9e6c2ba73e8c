//! The coverage table: every pair of values of two dimensions, covered (with
//! the scenarios that exercise it), impossible (with the rule that says why),
//! or a hole. A pair both covered and ruled impossible is a contradiction: a
//! rule or the tracker is wrong, and the table says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use super::dimensions::DIMENSIONS;
use super::rules::{impossible, Why, ANY, IMPOSSIBLE};
use super::track::Exercised;

/// One pair of values of two dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pair {
    pub a: &'static str,
    pub a_value: &'static str,
    pub b: &'static str,
    pub b_value: &'static str,
    /// The scenarios that exercise it.
    pub covered_by: Vec<String>,
    /// Why no case can, if none can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impossible: Option<(Why, &'static str)>,
}

impl Pair {
    pub fn is_hole(&self) -> bool {
        self.covered_by.is_empty() && self.impossible.is_none()
    }

    pub fn is_contradiction(&self) -> bool {
        !self.covered_by.is_empty() && self.impossible.is_some()
    }

    fn text(&self) -> String {
        format!("{}={} x {}={}", self.a, self.a_value, self.b, self.b_value)
    }
}

/// What a catalogue covers.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    pub scenarios: usize,
    /// Traffic checks turned into points (one per profile and routing).
    pub points: usize,
    pub covered: usize,
    pub impossible: usize,
    pub holes: usize,
    pub contradictions: usize,
    /// Values no point has.
    pub values_never_exercised: Vec<String>,
    pub pairs: Vec<Pair>,
}

impl Coverage {
    /// The table of `exercised`, from `scenarios` scenarios.
    pub fn of(scenarios: usize, exercised: &[Exercised]) -> Self {
        let mut by: BTreeMap<(&str, &str, &str, &str), BTreeSet<&str>> = BTreeMap::new();
        let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
        for e in exercised {
            for (i, a) in DIMENSIONS.iter().enumerate() {
                let x = e.point.get(a.name);
                seen.insert((a.name, x));
                for b in &DIMENSIONS[i + 1..] {
                    let y = e.point.get(b.name);
                    by.entry((a.name, x, b.name, y))
                        .or_default()
                        .insert(&e.scenario);
                }
            }
        }
        let mut pairs = Vec::new();
        for (i, a) in DIMENSIONS.iter().enumerate() {
            for b in &DIMENSIONS[i + 1..] {
                for (x, _) in a.values {
                    for (y, _) in b.values {
                        let covered_by = by
                            .get(&(a.name, *x, b.name, *y))
                            .map(|s| s.iter().map(|n| n.to_string()).collect())
                            .unwrap_or_default();
                        pairs.push(Pair {
                            a: a.name,
                            a_value: x,
                            b: b.name,
                            b_value: y,
                            covered_by,
                            impossible: impossible(a.name, x, b.name, y).map(|r| (r.why, r.text)),
                        });
                    }
                }
            }
        }
        let values_never_exercised = DIMENSIONS
            .iter()
            .flat_map(|d| d.values.iter().map(move |(v, _)| (d.name, *v)))
            .filter(|value| !seen.contains(value))
            .map(|(d, v)| format!("{d}={v}"))
            .collect();
        let count = |keep: fn(&Pair) -> bool| pairs.iter().filter(|p| keep(p)).count();
        Coverage {
            scenarios,
            points: exercised.len(),
            covered: count(|p| !p.covered_by.is_empty() && p.impossible.is_none()),
            impossible: count(|p| p.impossible.is_some() && p.covered_by.is_empty()),
            holes: count(Pair::is_hole),
            contradictions: count(Pair::is_contradiction),
            values_never_exercised,
            pairs,
        }
    }

    /// The one-line summary.
    pub fn summary_line(&self) -> String {
        format!(
            "{} scenario(s), {} traffic check(s) x profile x routing; {} value pairs: {} covered, {} impossible, {} hole(s){}",
            self.scenarios,
            self.points,
            self.pairs.len(),
            self.covered,
            self.impossible,
            self.holes,
            if self.contradictions > 0 {
                format!(", {} contradiction(s)", self.contradictions)
            } else {
                String::new()
            }
        )
    }

    /// The table for people: per pair of dimensions how many of its possible
    /// pairs are covered, then every hole, every contradiction, and every
    /// rule that makes pairs impossible, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>10} {:>5}",
            "dimensions", "covered", "impossible", "holes"
        );
        let mut groups: BTreeMap<(usize, usize), Vec<&Pair>> = BTreeMap::new();
        let index = |name: &str| DIMENSIONS.iter().position(|d| d.name == name).unwrap_or(0);
        for pair in &self.pairs {
            groups
                .entry((index(pair.a), index(pair.b)))
                .or_default()
                .push(pair);
        }
        for ((a, b), pairs) in &groups {
            let possible = pairs.iter().filter(|p| p.impossible.is_none()).count();
            let covered = pairs
                .iter()
                .filter(|p| p.impossible.is_none() && !p.covered_by.is_empty())
                .count();
            let _ = writeln!(
                out,
                "{:<24} {:>9} {:>10} {:>5}",
                format!("{} x {}", DIMENSIONS[*a].name, DIMENSIONS[*b].name),
                format!("{covered}/{possible}"),
                pairs.len() - possible,
                possible - covered
            );
        }
        if !self.values_never_exercised.is_empty() {
            let _ = writeln!(
                out,
                "\nvalues never exercised: {}",
                self.values_never_exercised.join(", ")
            );
        }
        let holes: Vec<&Pair> = self.pairs.iter().filter(|p| p.is_hole()).collect();
        if !holes.is_empty() {
            let _ = writeln!(out, "\nholes (possible, exercised by no scenario):");
            for pair in holes {
                let _ = writeln!(out, "  {}", pair.text());
            }
        }
        for pair in self.pairs.iter().filter(|p| p.is_contradiction()) {
            let _ = writeln!(
                out,
                "CONTRADICTION {} is ruled impossible yet {} exercise(s) it",
                pair.text(),
                pair.covered_by.join(", ")
            );
        }
        let _ = writeln!(out, "\nimpossible pairs, and why:");
        for rule in IMPOSSIBLE {
            let other = if rule.b == ANY {
                "every other dimension".to_string()
            } else {
                format!("{} {{{}}}", rule.b, rule.b_values.join(", "))
            };
            let _ = writeln!(
                out,
                "  {} {{{}}} x {} [{}]: {}",
                rule.a,
                rule.a_values.join(", "),
                other,
                why_text(rule.why),
                rule.text.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }
}

fn why_text(why: Why) -> &'static str {
    match why {
        Why::Calico => "Calico",
        Why::Protocol => "protocol",
        Why::Definition => "definition",
        Why::Harness => "the harness cannot express it",
    }
}
