//! What a scenario tells the judge (`check`), which reads no scenarios: which
//! steps two runs are compared on how, and which case a run of it is.

use crate::check::{CaseId, Compared, ConformCase, Delivery, ScenarioResult, PROFILE_TAG};
use crate::scenario::{ConntrackProfile, Scenario, Step};

impl Compared {
    pub fn of(scenario: &Scenario) -> Self {
        let mut compared = Compared::default();
        for (index, step) in scenario.steps.iter().enumerate() {
            let (delivery, quoted) = match step {
                Step::Send(send) => (
                    send.expect.delivered_to.as_ref(),
                    send.expect.quoted_destination.is_some(),
                ),
                Step::StopStream(stop) => (stop.expect.delivered_to.as_ref(), false),
                _ => (None, false),
            };
            if matches!(delivery, Some(Delivery::OneOf(_))) {
                compared.chosen_by_ecmp.insert(index);
            }
            if quoted {
                compared.quotes_checked.insert(index);
            }
        }
        compared
    }
}

impl ConformCase {
    /// Compare the vendor's and the reference's runs of `scenario` under
    /// `profile`.
    pub fn judge(
        scenario: &Scenario,
        profile: ConntrackProfile,
        vendor_result: ScenarioResult,
        reference_result: ScenarioResult,
    ) -> Self {
        let case = CaseId {
            name: crate::check::case_name(&scenario.name, profile),
            scenario: scenario.name.clone(),
            file: scenario.source.clone(),
            profile,
            profile_case: scenario.tags.iter().any(|t| t == PROFILE_TAG),
        };
        Self::from_results(
            case,
            &Compared::of(scenario),
            vendor_result,
            reference_result,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load_file;
    use std::collections::BTreeSet;

    fn compared(file: &str) -> Compared {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(file);
        Compared::of(&load_file(&path).expect("a catalogue file loads"))
    }

    #[test]
    fn ecmp_picks_and_icmp_quotes_are_compared_only_where_the_step_says() {
        let duplicate = compared("duplicate-claim-across-nodes.yaml");
        assert_eq!(duplicate.chosen_by_ecmp, BTreeSet::from([2]));
        assert!(duplicate.quotes_checked.is_empty());
        let quotes = compared("icmp-error-quotes-floating-ip.yaml");
        assert!(quotes.chosen_by_ecmp.is_empty());
        assert_eq!(quotes.quotes_checked, BTreeSet::from([1]));
    }
}
