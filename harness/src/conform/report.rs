//! The conformance report: every case's verdict, which conntrack profile the
//! dataplane behaves like, the one-line verdict and the text a person reads.
//! Serialisable as a whole (conform.json), so a report page can render it.

use std::fmt::Write;

use super::difference::render_case;
use super::protocol::{protocol_line, ProtocolItem};
use crate::check::{CaseVerdict, ConformCase, ProfileResult, VerdictCounts};
use crate::scenario::ConntrackProfile;

/// A whole `conform` run, with both runs of every case in full (conform.json
/// holds its [`super::ConformSummary`], each case a file of its own).
#[derive(Clone, Debug, PartialEq)]
pub struct ConformReport {
    /// The dataplane under test, as chosen (`exec:...`, `mutant:...`, ...).
    pub dataplane: String,
    /// The backend whose observations count as Calico's (`conform::REFERENCE`).
    pub reference: String,
    /// `bird` or `model`.
    pub routing: String,
    pub duration_ms: u64,
    /// Cases of every profile: judged (the reference passed them), and
    /// holding Calico's semantics (matching, or differing only where the
    /// conntrack profile decides: `CaseVerdict::holds_calico_semantics`).
    pub judged: usize,
    pub matched: usize,
    /// Every judged case holds Calico's semantics and none went unjudged.
    pub conformant: bool,
    pub profiles: Vec<ProfileResult>,
    /// Every case, of every profile, by verdict.
    pub counts: VerdictCounts,
    pub cases: Vec<ConformCase>,
    /// For an external driver: each message and field value of the driver
    /// protocol, with the cases that exercised it.
    pub protocol: Option<Vec<ProtocolItem>>,
}

impl ConformReport {
    pub fn new(
        dataplane: String,
        reference: String,
        routing: String,
        duration_ms: u64,
        mut cases: Vec<ConformCase>,
    ) -> Self {
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        // Every case of every profile counts: a scenario run under `strict`
        // alone (`profiles: [strict]`) has no other run to be judged by.
        let judged = cases
            .iter()
            .filter(|c| !matches!(c.verdict, CaseVerdict::ReferenceFailed { .. }))
            .count();
        let matched = cases.iter().filter(|c| c.holds_calico_semantics()).count();
        let profiles = [ConntrackProfile::Calico, ConntrackProfile::Strict]
            .into_iter()
            .map(|profile| ProfileResult::of(&cases, profile))
            .collect();
        ConformReport {
            dataplane,
            reference,
            routing,
            duration_ms,
            judged,
            matched,
            conformant: matched == cases.len() && judged > 0,
            profiles,
            counts: VerdictCounts::of(&cases),
            cases,
            protocol: None,
        }
    }

    /// The same report, with the driver protocol's items.
    pub fn with_protocol(mut self, protocol: Option<Vec<ProtocolItem>>) -> Self {
        self.protocol = protocol;
        self
    }

    fn names_where(&self, keep: impl Fn(&ConformCase) -> bool) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The conntrack profile(s) the dataplane behaves like, for people.
    fn profile_text(&self) -> String {
        let like: Vec<String> = self
            .profiles
            .iter()
            .filter(|p| p.behaves_like)
            .map(|p| profile_name(p.profile).to_string())
            .collect();
        if self.profiles.iter().all(|p| p.profile_cases.is_empty()) {
            return "not determined (no case that depends on it ran)".to_string();
        }
        let text = match like.as_slice() {
            [] => "neither".to_string(),
            [one] => one.clone(),
            _ => format!("{} (follows the profile it runs under)", like.join(" and ")),
        };
        let unlike =
            self.names_where(|c| !c.matches() && (c.profile_case || c.holds_calico_semantics()));
        if unlike.is_empty() {
            text
        } else {
            format!("{text}; differs on {}", unlike.join(", "))
        }
    }

    /// The one-line verdict, e.g. `conformant with Calico floating-IP
    /// semantics: 33/33 cases; conntrack profile: calico`. It names every
    /// case that is not a match, of every profile: those that differ where
    /// the profile decides in the conntrack profile's part.
    pub fn verdict_line(&self) -> String {
        let mut line = format!(
            "{} with Calico floating-IP semantics: {}/{} cases",
            if self.conformant {
                "conformant"
            } else {
                "NOT conformant"
            },
            self.matched,
            self.judged
        );
        let lists = [
            (
                "differs",
                self.names_where(|c| is_differs(c) && !c.holds_calico_semantics()),
            ),
            ("driver errors", self.names_where(is_driver_error)),
            (
                "not judged (the reference failed)",
                self.names_where(|c| matches!(c.verdict, CaseVerdict::ReferenceFailed { .. })),
            ),
        ];
        for (label, names) in lists {
            if !names.is_empty() {
                let _ = write!(line, "; {label}: {}", names.join(", "));
            }
        }
        let _ = write!(line, "; conntrack profile: {}", self.profile_text());
        line
    }

    /// Every case that is not a match, with both runs side by side where they
    /// part, then each profile's matches, the counts line and the verdict
    /// line: what `conform` prints.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for case in self.cases.iter().filter(|c| !c.matches()) {
            render_case(&mut out, case, &self.dataplane, &self.reference);
        }
        for profile in self.profiles.iter().filter(|p| p.cases > 0) {
            let _ = writeln!(
                out,
                "{} profile: {}/{} cases match",
                profile_name(profile.profile),
                profile.matched,
                profile.cases
            );
        }
        if let Some(protocol) = &self.protocol {
            out.push_str(&protocol_line(protocol));
            out.push('\n');
        }
        out.push_str(&self.counts.line());
        out.push('\n');
        out.push_str(&self.verdict_line());
        out.push('\n');
        out
    }
}

fn is_differs(case: &ConformCase) -> bool {
    matches!(case.verdict, CaseVerdict::Differs { .. })
}

fn is_driver_error(case: &ConformCase) -> bool {
    matches!(case.verdict, CaseVerdict::DriverError { .. })
}

pub(super) fn profile_name(profile: ConntrackProfile) -> &'static str {
    match profile {
        ConntrackProfile::Calico => "calico",
        ConntrackProfile::Strict => "strict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::verdict_tests::{
        case, crashed_and_unjudged, failing, failing_stream, passing,
    };

    /// A dataplane that keeps flows across changes under `strict`: its
    /// strict case's stream stays on the old pod.
    fn never_flushing() -> Vec<ConformCase> {
        vec![
            case("from-external-v4", ConntrackProfile::Calico, passing()),
            case(
                "move-on-one-node-calico",
                ConntrackProfile::Calico,
                passing(),
            ),
            case(
                "move-on-one-node-strict",
                ConntrackProfile::Strict,
                failing_stream(),
            ),
        ]
    }

    #[test]
    fn every_calico_case_matching_is_conformant_and_strict_differences_name_the_profile() {
        let report = ConformReport::new(
            "mutant:strict-never-flushes".into(),
            "nftables".into(),
            "bird".into(),
            1000,
            never_flushing(),
        );
        assert!(report.conformant);
        assert_eq!((report.matched, report.judged), (3, 3));
        insta::assert_snapshot!(report.render_text(), @r"
        DIFFERS move-on-one-node-strict::strict (in a flow kept across a change: the conntrack profile decides):
          step 2: stop stream s1
            mutant:strict-never-flushes | client -> 203.0.113.10 icmp stream: delivered to web-b (3); pod saw dst - src -; replies from 203.0.113.10 (sent: 3, lost: 0)   <---- WRONG
                                        |       delivered to: web-b   <---- EXPECTED web
            nftables                    | client -> 203.0.113.10 icmp: delivered to web (3); pod saw dst - src -; replies from 203.0.113.10 (sent: 3, lost: 0)
        calico profile: 2/2 cases match
        strict profile: 0/1 cases match
        3 case(s): 2 match, 1 differ, 0 driver error(s), 0 not judged
        conformant with Calico floating-IP semantics: 3/3 cases; conntrack profile: calico; differs on move-on-one-node-strict::strict
        ");
    }

    #[test]
    fn differences_driver_errors_and_unjudged_cases_are_named() {
        let (crashed, unjudged) = crashed_and_unjudged();
        let report = ConformReport::new(
            "exec:vpp-driver".into(),
            "nftables".into(),
            "bird".into(),
            1000,
            vec![
                case("from-external-v4", ConntrackProfile::Calico, failing()),
                case(
                    "move-on-one-node-calico",
                    ConntrackProfile::Calico,
                    passing(),
                ),
                crashed,
                unjudged,
                case(
                    "move-on-one-node-strict",
                    ConntrackProfile::Strict,
                    passing(),
                ),
            ],
        );
        assert!(!report.conformant);
        insta::assert_snapshot!(report.render_text(), @r"
        NOT JUDGED dual-stack: the reference (nftables) failed: building the lab: no space left
        DIFFERS from-external-v4:
          step 2: send icmp client -> 203.0.113.10
            exec:vpp-driver | client -> 203.0.113.10 icmp: delivered to web-b (3); pod saw dst - src -; replies from 203.0.113.10 (sent: 3, lost: 0)   <---- WRONG
                            |       delivered to: web-b   <---- EXPECTED web
            nftables        | client -> 203.0.113.10 icmp: delivered to web (3); pod saw dst - src -; replies from 203.0.113.10 (sent: 3, lost: 0)
        DRIVER ERROR from-hosting-node-v4: driver `vpp` exited (status 1)
        calico profile: 1/4 cases match
        strict profile: 1/1 cases match
        5 case(s): 2 match, 1 differ, 1 driver error(s), 1 not judged
        NOT conformant with Calico floating-IP semantics: 2/4 cases; differs: from-external-v4; driver errors: from-hosting-node-v4; not judged (the reference failed): dual-stack; conntrack profile: calico and strict (follows the profile it runs under)
        ");
        assert_eq!(
            report.counts,
            VerdictCounts {
                cases: 5,
                matches: 2,
                differs: 1,
                driver_errors: 1,
                not_judged: 1
            }
        );
    }

    /// A scenario run under `strict` alone (the coverage matrix's IPv6
    /// files) that differs where a new flow goes: the profile does not
    /// decide that, so the verdict names it, counts it and is not
    /// conformant, as the counts line, junit.xml and the page say.
    #[test]
    fn a_strict_only_case_that_differs_on_a_new_flow_is_in_the_verdict() {
        let report = ConformReport::new(
            "mutant:ipv6-ignored".into(),
            "nftables".into(),
            "bird".into(),
            1000,
            [
                never_flushing(),
                vec![case(
                    "matrix-life-ipv6",
                    ConntrackProfile::Strict,
                    failing(),
                )],
            ]
            .concat(),
        );
        assert!(!report.conformant);
        assert_eq!((report.matched, report.judged), (3, 4));
        assert_eq!(report.counts.differs, 2);
        let verdict = report.verdict_line();
        assert_eq!(
            verdict,
            "NOT conformant with Calico floating-IP semantics: 3/4 cases; differs: \
             matrix-life-ipv6::strict; conntrack profile: calico; differs on \
             move-on-one-node-strict::strict"
        );
        let junit = crate::conform::render_conform_junit(&report).unwrap();
        assert_eq!(junit.matches("<failure ").count(), report.counts.differs);
        let html = crate::conform::render_conform_html(&report);
        assert!(
            html.contains("matrix-life-ipv6::strict; conntrack"),
            "{html}"
        );
    }
}
