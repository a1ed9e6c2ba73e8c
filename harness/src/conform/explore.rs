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
        let case = match self.compare(script, name) {
            Ok(case) => case,
            Err(invalid) => return Judgement::NotJudged(invalid),
        };
        match &case.verdict {
            CaseVerdict::Matches => Judgement::Pass,
            CaseVerdict::Differs { .. } => {
                let why = match case.vendor_result.head.outcome.is_pass() {
                    true => "its checks pass, but what it observed differs".to_string(),
                    false => case.vendor_result.failure_text(),
                };
                Judgement::Fail(format!("differs from the reference ({REFERENCE}): {why}"))
            }
            CaseVerdict::DriverError { reason } => {
                Judgement::Fail(format!("driver error: {reason}"))
            }
            // The reference disagrees with the model: a finding for the
            // model or the reference, not for the vendor.
            CaseVerdict::ReferenceFailed { reason } => Judgement::NotJudged(format!(
                "the reference ({REFERENCE}) fails this case itself: {reason}"
            )),
        }
    }
}
