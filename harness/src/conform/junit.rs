//! conform's JUnit XML: one test case per scenario and profile, failed when
//! it differs from the reference, an error when the driver failed, skipped
//! when the reference failed it (quick-junit, as `report::render_junit`).

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::difference::render_case;
use super::report::ConformReport;
use crate::check::CaseVerdict;
use crate::check::Difference;

/// Render the report as JUnit XML.
pub fn render_conform_junit(report: &ConformReport) -> Result<String, quick_junit::SerializeError> {
    let mut junit = Report::new("fip-harness conform");
    let mut suite = TestSuite::new(format!("{} against {}", report.dataplane, report.reference));
    // The verdict and the counts as the terminal prints them; the suite's own
    // tests, failures, errors and skipped are the same counts.
    suite.add_property(("verdict", report.verdict_line().as_str()));
    suite.add_property(("counts", report.counts.line().as_str()));
    for case in &report.cases {
        let mut text = String::new();
        render_case(&mut text, case, &report.dataplane, &report.reference);
        let status = match &case.verdict {
            CaseVerdict::Matches => TestCaseStatus::success(),
            CaseVerdict::Differs { at, .. } => {
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
            case.vendor_result.head.duration_ms,
        ));
        suite.add_test_case(test);
    }
    junit.add_test_suite(suite);
    junit.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::verdict_tests::{case, crashed_and_unjudged, failing, passing};
    use crate::scenario::ConntrackProfile;

    #[test]
    fn a_case_per_scenario_and_profile_failed_errored_or_skipped_by_verdict() {
        let (crashed, unjudged) = crashed_and_unjudged();
        let report = ConformReport::new(
            "exec:vpp-driver".into(),
            "nftables".into(),
            "bird".into(),
            1000,
            vec![
                case("from-external-v4", ConntrackProfile::Calico, failing()),
                case(
                    "move-on-one-node-strict",
                    ConntrackProfile::Strict,
                    passing(),
                ),
                crashed,
                unjudged,
            ],
        );
        insta::assert_snapshot!(render_conform_junit(&report).unwrap(), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="fip-harness conform" tests="4" failures="1" errors="1">
            <testsuite name="exec:vpp-driver against nftables" tests="4" disabled="1" errors="1" failures="1">
                <properties>
                    <property name="verdict" value="NOT conformant with Calico floating-IP semantics: 1/3 cases; differs: from-external-v4; driver errors: from-hosting-node-v4; not judged (the reference failed): dual-stack; conntrack profile: strict"/>
                    <property name="counts" value="4 case(s): 1 match, 1 differ, 1 driver error(s), 1 not judged"/>
                </properties>
                <testcase name="dual-stack" classname="scenarios/dual-stack.yaml" time="0.000">
                    <skipped message="the reference (nftables) failed: building the lab: no space left"/>
                </testcase>
                <testcase name="from-external-v4" classname="scenarios/from-external-v4.yaml" time="0.000">
                    <failure message="observes otherwise than nftables from step 2">DIFFERS from-external-v4:
          step 2: send icmp client -&gt; 203.0.113.10
            exec:vpp-driver | client -&gt; 203.0.113.10 icmp: delivered to web-b (3); pod saw dst - src -; replies from 203.0.113.10 (sent: 3, lost: 0)   &lt;---- WRONG
                            |       delivered to: web-b   &lt;---- EXPECTED web
            nftables        | client -&gt; 203.0.113.10 icmp: delivered to web (3); pod saw dst - src -; replies from 203.0.113.10 (sent: 3, lost: 0)
        </failure>
                </testcase>
                <testcase name="from-hosting-node-v4" classname="scenarios/from-hosting-node-v4.yaml" time="0.000">
                    <error message="driver `vpp` exited (status 1)">DRIVER ERROR from-hosting-node-v4: driver `vpp` exited (status 1)
        </error>
                </testcase>
                <testcase name="move-on-one-node-strict::strict" classname="scenarios/move-on-one-node-strict.yaml" time="0.000">
                </testcase>
            </testsuite>
        </testsuites>
        "#);
    }
}
