//! conform's JUnit XML: one test case per scenario and profile, failed when
//! it differs from the reference, an error when the driver failed, skipped
//! when the reference failed it (quick-junit, as `report::render_junit`).

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::observation::Difference;
use super::report::{render_case, ConformReport};
use super::verdict::CaseVerdict;

/// Render the report as JUnit XML.
pub fn render_conform_junit(report: &ConformReport) -> Result<String, quick_junit::SerializeError> {
    let mut junit = Report::new("fip-harness conform");
    let mut suite = TestSuite::new(format!("{} against {}", report.dataplane, report.reference));
    for case in &report.cases {
        let mut text = String::new();
        render_case(&mut text, case, &report.dataplane, &report.reference);
        let status = match &case.verdict {
            CaseVerdict::Matches => TestCaseStatus::success(),
            CaseVerdict::Differs { at } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(match at {
                    Difference::Step(index) => format!(
                        "observes otherwise than {} from step {}",
                        report.reference,
                        index + 1
                    ),
                    Difference::Moves => format!(
                        "a floating IP's move under a stream goes otherwise than on {}",
                        report.reference
                    ),
                });
                status.set_description(text);
                status
            }
            CaseVerdict::DriverError { reason } => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(reason.clone());
                status.set_description(text);
                status
            }
            CaseVerdict::ReferenceFailed { reason } => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(format!(
                    "the reference ({}) failed: {reason}",
                    report.reference
                ));
                status
            }
        };
        let mut test = TestCase::new(case.name.clone(), status);
        test.set_classname(case.file.display().to_string());
        test.set_time(std::time::Duration::from_millis(
            case.vendor_result.duration_ms,
        ));
        suite.add_test_case(test);
    }
    junit.add_test_suite(suite);
    junit.to_string()
}
