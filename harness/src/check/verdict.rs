//! One case's verdict: the vendor's run beside the reference's run of the
//! same scenario and profile, classified as a match, a difference (with both
//! observation records), a driver error, or not judged because the reference
//! itself failed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::compare::{CaseObservation, Compared, Difference};
use super::{Outcome, ScenarioResult};
use crate::vocab::ConntrackProfile;

/// The tag the catalogue gives the cases whose expectations depend on the
/// conntrack profile (a floating IP moving under an established flow): they
/// decide which profile a dataplane behaves like.
pub const PROFILE_TAG: &str = "conntrack";

/// How the vendor's run of a case compares with the reference's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "verdict")]
pub enum CaseVerdict {
    /// Same observations as the reference, and the case's expectations hold.
    Matches,
    /// The observations part at `at`; both records are in the case.
    /// `profile_decides`: a `strict`-profile case that parts first at a
    /// flow kept across a change (a stream's step, or a move under it),
    /// where a dataplane following Calico's profile instead of the strict
    /// one sees otherwise by design (a new flow goes where the model says
    /// under either profile: `calico::predict` `Flow`).
    Differs {
        at: Difference,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        profile_decides: bool,
    },
    /// The vendor's dataplane failed (refused a change, crashed, timed out),
    /// or the case could not run on it at all.
    DriverError { reason: String },
    /// The reference failed this case itself: nothing to compare with, so
    /// the case is not judged (and a flaky reference blames no vendor).
    ReferenceFailed { reason: String },
}

/// One scenario and profile, run on the vendor's dataplane and the reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformCase {
    /// `<scenario>`, plus `::strict` under the strict profile.
    pub name: String,
    pub scenario: String,
    pub file: PathBuf,
    pub profile: ConntrackProfile,
    /// The scenario carries [`PROFILE_TAG`]: it decides the profile.
    pub profile_case: bool,
    #[serde(flatten)]
    pub verdict: CaseVerdict,
    /// What each run observed, as compared.
    pub vendor: CaseObservation,
    pub reference: CaseObservation,
    /// Both runs in full (timings, counts, failure texts, diagnostics).
    pub vendor_result: ScenarioResult,
    pub reference_result: ScenarioResult,
}

impl ConformCase {
    /// Compare two runs of the case `id` on what `compared` names.
    pub fn from_results(
        id: CaseId,
        compared: &Compared,
        vendor_result: ScenarioResult,
        reference_result: ScenarioResult,
    ) -> Self {
        let vendor = CaseObservation::of(&vendor_result, compared);
        let reference = CaseObservation::of(&reference_result, compared);
        let verdict = classify(&vendor_result, &reference_result, &vendor, &reference)
            .with_profile(id.profile, [&vendor, &reference]);
        ConformCase {
            name: id.name,
            scenario: id.scenario,
            file: id.file,
            profile: id.profile,
            profile_case: id.profile_case,
            verdict,
            vendor,
            reference,
            vendor_result,
            reference_result,
        }
    }

    pub fn matches(&self) -> bool {
        self.verdict == CaseVerdict::Matches
    }

    /// Matches, or differs only where the conntrack profile decides: the
    /// case holds Calico's floating-IP semantics.
    pub fn holds_calico_semantics(&self) -> bool {
        self.verdict.holds_calico_semantics()
    }
}

impl CaseVerdict {
    /// Matches, or differs only where the conntrack profile decides.
    pub fn holds_calico_semantics(&self) -> bool {
        matches!(
            self,
            CaseVerdict::Matches
                | CaseVerdict::Differs {
                    profile_decides: true,
                    ..
                }
        )
    }

    /// A difference of a case run under `profile`, marked as the profile's
    /// where it first lies in a flow kept across a change (the
    /// records say which step is a stream's; a run that stopped early lacks
    /// the step).
    fn with_profile(self, profile: ConntrackProfile, records: [&CaseObservation; 2]) -> Self {
        match self {
            CaseVerdict::Differs { at, .. } => CaseVerdict::Differs {
                at,
                profile_decides: profile == ConntrackProfile::Strict
                    && records.iter().any(|r| r.kept_flow_at(at)),
            },
            other => other,
        }
    }
}

/// Which case a [`ConformCase`] is.
#[derive(Clone, Debug)]
pub struct CaseId {
    pub name: String,
    pub scenario: String,
    pub file: PathBuf,
    pub profile: ConntrackProfile,
    pub profile_case: bool,
}

/// `<scenario>`, plus `::strict` under the strict profile (as test names).
pub fn case_name(scenario: &str, profile: ConntrackProfile) -> String {
    match profile {
        ConntrackProfile::Calico => scenario.to_string(),
        ConntrackProfile::Strict => format!("{scenario}::strict"),
    }
}

fn classify(
    vendor_result: &ScenarioResult,
    reference_result: &ScenarioResult,
    vendor: &CaseObservation,
    reference: &CaseObservation,
) -> CaseVerdict {
    if let Outcome::Failed { reason } | Outcome::Error { reason } = &reference_result.head.outcome {
        return CaseVerdict::ReferenceFailed {
            reason: reason.clone(),
        };
    }
    // The runner ends a case as an error, not a failed expectation, when the
    // case could not run on the dataplane: a driver that crashed, hung,
    // answered garbage or refused a change, or that cannot carry the
    // scenario. The reference ran it, so the dataplane is the difference.
    if let Outcome::Error { reason } = &vendor_result.head.outcome {
        return CaseVerdict::DriverError {
            reason: reason.clone(),
        };
    }
    match vendor.first_difference(reference) {
        None if vendor_result.head.outcome.is_pass() => CaseVerdict::Matches,
        // Equal records yet a failure: nothing in the records says where, so
        // point at the last step the vendor ran (where a run stops failing).
        None => CaseVerdict::Differs {
            at: Difference::Step(vendor.steps.last().map_or(0, |s| s.index)),
            profile_decides: false,
        },
        Some(at) => CaseVerdict::Differs {
            at,
            profile_decides: false,
        },
    }
}

/// How the dataplane fares on the cases of one conntrack profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileResult {
    pub profile: ConntrackProfile,
    /// Cases run under this profile, and how many of them match.
    pub cases: usize,
    pub matched: usize,
    /// The profile's cases that depend on conntrack ([`PROFILE_TAG`]).
    pub profile_cases: Vec<String>,
    /// Every one of `profile_cases` matches (and there is at least one): the
    /// dataplane behaves like this profile.
    pub behaves_like: bool,
}

/// How many cases, of every profile, got each verdict. The terminal,
/// junit.xml (tests, failures, errors, skipped), conform.json and report.html
/// all show these same numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictCounts {
    pub cases: usize,
    pub matches: usize,
    pub differs: usize,
    pub driver_errors: usize,
    pub not_judged: usize,
}

impl VerdictCounts {
    pub fn of(cases: &[ConformCase]) -> Self {
        let mut counts = VerdictCounts {
            cases: cases.len(),
            ..Default::default()
        };
        for case in cases {
            *match case.verdict {
                CaseVerdict::Matches => &mut counts.matches,
                CaseVerdict::Differs { .. } => &mut counts.differs,
                CaseVerdict::DriverError { .. } => &mut counts.driver_errors,
                CaseVerdict::ReferenceFailed { .. } => &mut counts.not_judged,
            } += 1;
        }
        counts
    }

    /// `36 case(s): 9 match, 26 differ, 1 driver error(s), 0 not judged`.
    pub fn line(&self) -> String {
        format!(
            "{} case(s): {} match, {} differ, {} driver error(s), {} not judged",
            self.cases, self.matches, self.differs, self.driver_errors, self.not_judged
        )
    }
}

impl ProfileResult {
    /// The cases run under `profile`, and whether the dataplane behaves
    /// like it.
    pub fn of(cases: &[ConformCase], profile: ConntrackProfile) -> Self {
        let under: Vec<&ConformCase> = cases.iter().filter(|c| c.profile == profile).collect();
        let profile_cases: Vec<&ConformCase> =
            under.iter().copied().filter(|c| c.profile_case).collect();
        ProfileResult {
            profile,
            cases: under.len(),
            matched: under.iter().filter(|c| c.matches()).count(),
            profile_cases: profile_cases.iter().map(|c| c.name.clone()).collect(),
            behaves_like: !profile_cases.is_empty() && profile_cases.iter().all(|c| c.matches()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::{CaseHead, StepResult};
    use crate::check::{CheckLine, DeliveryObserved, Mismatch};

    pub(crate) fn result(backend: &str, delivered_to: &str, outcome: Outcome) -> ScenarioResult {
        let mismatches = match outcome {
            Outcome::Failed { .. } => vec![Mismatch {
                what: "delivered to".into(),
                expected: "web".into(),
                actual: delivered_to.into(),
            }],
            _ => Vec::new(),
        };
        ScenarioResult {
            head: CaseHead {
                name: "from-external-v4".into(),
                file: "scenarios/from-external-v4.yaml".into(),
                backend: backend.into(),
                profile: "calico".into(),
                tags: vec![],
                routing: "bird".into(),
                outcome,
                duration_ms: 0,
            },
            steps: vec![StepResult {
                index: 1,
                summary: "send icmp client -> 203.0.113.10".into(),
                passed: mismatches.is_empty(),
                attempts: 1,
                lines: vec![CheckLine {
                    source: "client".into(),
                    destination: "203.0.113.10".into(),
                    protocol: "icmp".into(),
                    observed: DeliveryObserved {
                        sent: 3,
                        answered: 3,
                        delivered: [(delivered_to.to_string(), 3)].into(),
                        reply_sources: ["203.0.113.10".parse().unwrap()].into(),
                        ..Default::default()
                    },
                    mismatches,
                }],
                message: None,
                diagnostics: None,
                timing: None,
            }],
            migrations: Vec::new(),
            lab_pictures: Vec::new(),
            kept_lab: None,
            seed: None,
            lab: None,
        }
    }

    /// The case `name` under `profile`: `vendor` against a passing
    /// reference; the `move-` cases depend on the profile.
    pub(crate) fn case(
        name: &str,
        profile: ConntrackProfile,
        vendor: ScenarioResult,
    ) -> ConformCase {
        let id = CaseId {
            name: case_name(name, profile),
            scenario: name.into(),
            file: format!("scenarios/{name}.yaml").into(),
            profile,
            profile_case: name.starts_with("move-"),
        };
        let reference = result("nftables", "web", Outcome::Passed);
        ConformCase::from_results(id, &Default::default(), vendor, reference)
    }

    pub(crate) fn passing() -> ScenarioResult {
        result("mutant:strict-never-flushes", "web", Outcome::Passed)
    }

    /// Two cases every report test shows: a run the driver ended as an
    /// error (`RunnerError::is_driver_fault`), and a case whose reference
    /// failed, so it is not judged.
    pub(crate) fn crashed_and_unjudged() -> (ConformCase, ConformCase) {
        let mut crashed = passing();
        crashed.head.outcome = Outcome::Error {
            reason: "driver `vpp` exited (status 1)".into(),
        };
        let mut unjudged = case("dual-stack", ConntrackProfile::Calico, passing());
        unjudged.verdict = CaseVerdict::ReferenceFailed {
            reason: "building the lab: no space left".into(),
        };
        (
            case("from-hosting-node-v4", ConntrackProfile::Calico, crashed),
            unjudged,
        )
    }

    /// A run whose probes landed on the wrong pod.
    pub(crate) fn failing() -> ScenarioResult {
        let failed = Outcome::Failed {
            reason: "step 2 (send icmp client -> 203.0.113.10) failed".into(),
        };
        result("mutant:strict-never-flushes", "web-b", failed)
    }

    /// A run whose stream, kept across a move, stayed on the old pod.
    pub(crate) fn failing_stream() -> ScenarioResult {
        let mut run = failing();
        let step = &mut run.steps[0];
        step.summary = "stop stream s1".into();
        step.lines[0].protocol = "icmp stream".into();
        run
    }

    fn verdict(vendor: &ScenarioResult, reference: &ScenarioResult) -> CaseVerdict {
        let none = Default::default();
        classify(
            vendor,
            reference,
            &CaseObservation::of(vendor, &none),
            &CaseObservation::of(reference, &none),
        )
    }

    /// The reference every table row below is judged against: it passed.
    fn passed_reference() -> ScenarioResult {
        result("nftables", "web", Outcome::Passed)
    }

    /// A reference that failed an expectation itself.
    fn failed_reference() -> ScenarioResult {
        let broken = Outcome::Failed {
            reason: "step 2 failed".into(),
        };
        result("nftables", "nowhere", broken)
    }

    /// Both runs pass their expectations, yet the replies came from
    /// different addresses: comparing observations, not verdicts, sees it.
    fn passed_replying_from_elsewhere() -> ScenarioResult {
        let mut vendor = result("mutant:x", "web", Outcome::Passed);
        vendor.steps[0].lines[0].observed.reply_sources = ["198.19.0.5".parse().unwrap()].into();
        vendor
    }

    fn failed_on_web_b() -> ScenarioResult {
        let failed = Outcome::Failed {
            reason: "step 2 failed".into(),
        };
        result("mutant:x", "web-b", failed)
    }

    /// A driver's fault ends the case as an error
    /// (`RunnerError::is_driver_fault`), not as a failed expectation.
    fn driver_exited() -> ScenarioResult {
        let mut vendor = result("exec:x", "web", Outcome::Passed);
        vendor.head.outcome = Outcome::Error {
            reason: "the driver exited (status 1)".into(),
        };
        vendor
    }

    fn differs_at_step(index: usize) -> CaseVerdict {
        CaseVerdict::Differs {
            at: Difference::Step(index),
            profile_decides: false,
        }
    }

    #[rstest::rstest]
    #[case::the_same_observations_match(
        result("mutant:x", "web", Outcome::Passed),
        passed_reference(),
        CaseVerdict::Matches
    )]
    #[case::a_passing_run_that_observes_otherwise_differs(
        passed_replying_from_elsewhere(),
        passed_reference(),
        differs_at_step(1)
    )]
    #[case::a_failing_run_differs_where_it_failed(
        failed_on_web_b(),
        passed_reference(),
        differs_at_step(1)
    )]
    #[case::a_dataplane_failure_is_a_driver_error(
        driver_exited(),
        passed_reference(),
        CaseVerdict::DriverError { reason: "the driver exited (status 1)".into() }
    )]
    #[case::a_failed_reference_is_not_judged(
        driver_exited(),
        failed_reference(),
        CaseVerdict::ReferenceFailed { reason: "step 2 failed".into() }
    )]
    fn a_vendor_run_is_judged_against_the_reference(
        #[case] vendor: ScenarioResult,
        #[case] reference: ScenarioResult,
        #[case] expected: CaseVerdict,
    ) {
        assert_eq!(verdict(&vendor, &reference), expected);
    }
}
