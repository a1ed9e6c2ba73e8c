//! Exploration under `conform`: each generated case runs on the vendor's
//! dataplane and on the reference, and is judged as a catalogue case is
//! (observations compared, [`ConformCase`]); the first case that differs is
//! shrunk to the smallest one that still differs.

use std::sync::Arc;

use super::REFERENCE;
use crate::check::{CaseVerdict, ConformCase};
use crate::explore::script::Script;
use crate::explore::{Judge, Judgement, RunJudge};
use crate::runner::DataplaneChoice;

/// Judges a generated case as `conform` judges a catalogue case.
pub struct ConformJudge {
    /// Runs cases on the vendor's dataplane (its `dataplane`).
    pub vendor: RunJudge,
}

impl ConformJudge {
    /// The vendor's run and the reference's of `script`, compared.
    pub fn compare(&self, script: &Script, name: &str) -> Result<ConformCase, String> {
        let scenario = Arc::new(self.vendor.dir.scenario(script, name)?);
        let vendor = self
            .vendor
            .run_scenario(&scenario, script, &self.vendor.dataplane);
        let reference =
            self.vendor
                .run_scenario(&scenario, script, &DataplaneChoice::Builtin(REFERENCE));
        Ok(ConformCase::judge(
            &scenario,
            script.spec.profile,
            vendor,
            reference,
        ))
    }
}

impl Judge for ConformJudge {
    fn judge(&self, script: &Script, name: &str) -> Judgement {
        match self.compare(script, name) {
            Ok(case) => judgement_of(&case),
            Err(invalid) => Judgement::NotJudged(invalid),
        }
    }
}

/// A compared case as the explorer judges it, as `conform` judges a
/// catalogue case: a difference in a flow kept across a change under the
/// `strict` profile is the profile's to decide, not a fault against
/// Calico's semantics (`CaseVerdict::holds_calico_semantics`), so it is not
/// judged rather than shrunk as a failure.
fn judgement_of(case: &ConformCase) -> Judgement {
    match &case.verdict {
        CaseVerdict::Matches => Judgement::Pass,
        CaseVerdict::Differs {
            profile_decides: true,
            ..
        } => Judgement::NotJudged(format!(
            "{} differs from the reference ({REFERENCE}) only in a flow kept across a change, where the conntrack profile decides",
            case.name
        )),
        CaseVerdict::Differs { .. } => {
            let why = match case.vendor_result.head.outcome.is_pass() {
                true => "its checks pass, but what it observed differs".to_string(),
                false => case.vendor_result.failure_text(),
            };
            Judgement::Fail(format!("differs from the reference ({REFERENCE}): {why}"))
        }
        CaseVerdict::DriverError { reason } => Judgement::Fail(format!("driver error: {reason}")),
        // The reference disagrees with the model: a finding for the
        // model or the reference, not for the vendor.
        CaseVerdict::ReferenceFailed { reason } => Judgement::NotJudged(format!(
            "the reference ({REFERENCE}) fails this case itself: {reason}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::check::verdict_tests::{case, failing, failing_stream, passing};
    use crate::vocab::ConntrackProfile::{self, Calico, Strict};

    fn kind(judgement: &Judgement) -> &'static str {
        match judgement {
            Judgement::Pass => "pass",
            Judgement::Fail(_) => "fail",
            Judgement::NotJudged(_) => "not judged",
        }
    }

    #[rstest]
    #[case::matches(Calico, "move-x", false, "pass")]
    // A stream kept across a move under strict: the profile decides.
    #[case::strict_kept_flow(Strict, "move-x", true, "not judged")]
    // The same under Calico's own profile is a fault.
    #[case::calico_kept_flow(Calico, "move-x", true, "fail")]
    fn a_strict_difference_in_a_kept_flow_is_not_a_failure(
        #[case] profile: ConntrackProfile,
        #[case] name: &str,
        #[case] differs_in_stream: bool,
        #[case] expected: &str,
    ) {
        let vendor = match differs_in_stream {
            true => failing_stream(),
            false => passing(),
        };
        assert_eq!(kind(&judgement_of(&case(name, profile, vendor))), expected);
    }

    #[test]
    fn a_strict_difference_in_a_new_flow_is_a_failure() {
        assert_eq!(
            kind(&judgement_of(&case("move-x", Strict, failing()))),
            "fail"
        );
    }
}
