//! JUnit XML, one test case per scenario and backend (quick-junit).

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::summary::RunSummary;
use crate::check::Outcome;

/// Render the run as JUnit XML.
pub fn render_junit(summary: &RunSummary) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("fip-harness");
    let mut suite = TestSuite::new("scenarios");
    if let Some(seed) = summary.seed {
        suite.add_property(("seed", seed.to_string().as_str()));
    }
    if let Some(interrupted) = &summary.interrupted {
        let line = interrupted.line(summary.scenarios.len());
        suite.add_property(("interrupted", line.as_str()));
    }
    for scenario in &summary.scenarios {
        let status = match &scenario.head.outcome {
            Outcome::Passed => TestCaseStatus::success(),
            Outcome::Failed { reason } | Outcome::Error { reason } => {
                let kind = if matches!(scenario.head.outcome, Outcome::Failed { .. }) {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut status = TestCaseStatus::non_success(kind);
                status.set_message(reason.clone());
                status.set_description(scenario.failure_text());
                status
            }
        };
        let mut case = TestCase::new(scenario.case_name(), status);
        case.set_classname(scenario.head.file.display().to_string());
        case.set_time(std::time::Duration::from_millis(scenario.head.duration_ms));
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CaseHead, ScenarioResult};

    fn result(name: &str, backend: &str, outcome: Outcome) -> ScenarioResult {
        ScenarioResult {
            head: CaseHead {
                name: name.into(),
                file: format!("scenarios/{name}.yaml").into(),
                backend: backend.into(),
                profile: "calico".into(),
                tags: vec![],
                routing: "bird".into(),
                outcome,
                duration_ms: 1500,
            },
            steps: vec![],
            migrations: vec![],
            lab_pictures: vec![],
            kept_lab: None,
            seed: Some(crate::seed::Seed(7)),
            lab: None,
        }
    }

    #[test]
    fn one_case_per_scenario_and_backend() {
        let summary = RunSummary::new(
            vec![
                result("icmp-external-v4", "nftables", Outcome::Passed),
                result("icmp-external-v4", "iptables", Outcome::Passed),
                result(
                    "move-across-nodes",
                    "iptables",
                    Outcome::Failed {
                        reason: "step 4: delivered to web-a, expected web-b".into(),
                    },
                ),
            ],
            4500,
        );
        let xml = render_junit(&summary).unwrap();
        insta::assert_snapshot!(xml);
    }
}
