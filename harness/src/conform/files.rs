//! What `conform` leaves in its report directory: conform.json (the verdict,
//! the counts, and one small entry per case), `cases/<case>.json` (one case's
//! observations and both runs in full), junit.xml and report.html. Every one
//! of them shows the same counts and verdict line as the terminal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::difference::side_by_side;
use super::junit::render_conform_junit;
use super::protocol::ProtocolItem;
use super::report::{profile_name, ConformReport};
use crate::check::{CaseVerdict, ConformCase, ProfileResult, VerdictCounts};
use crate::report::{
    render_comparison_html, write_case_files, write_json, write_text, ComparedCase, ComparisonPage,
    Mark, ReportFileError,
};
use crate::scenario::ConntrackProfile;

/// A report of `conform` that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ConformFileError {
    #[error(transparent)]
    File(#[from] ReportFileError),
    #[error("rendering JUnit XML: {0}")]
    Junit(#[from] quick_junit::SerializeError),
}

/// One case in conform.json: which case, its verdict, and its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformCaseEntry {
    pub name: String,
    pub scenario: String,
    pub file: PathBuf,
    pub profile: ConntrackProfile,
    pub profile_case: bool,
    #[serde(flatten)]
    pub verdict: CaseVerdict,
    /// `cases/<case>.json` under the report directory: the whole
    /// [`ConformCase`], both runs included.
    pub detail: PathBuf,
}

impl ConformCaseEntry {
    pub fn matches(&self) -> bool {
        self.verdict == CaseVerdict::Matches
    }
}

/// conform.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformSummary {
    pub dataplane: String,
    pub reference: String,
    pub routing: String,
    pub duration_ms: u64,
    /// The verdict line, as the terminal prints it.
    pub verdict: String,
    /// As [`ConformReport`]'s fields of the same names.
    pub conformant: bool,
    pub judged: usize,
    pub matched: usize,
    pub counts: VerdictCounts,
    pub profiles: Vec<ProfileResult>,
    pub cases: Vec<ConformCaseEntry>,
    /// For an external driver: each message and field value of the driver
    /// protocol, with the cases that exercised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Vec<ProtocolItem>>,
}

impl ConformSummary {
    fn new(report: &ConformReport, details: Vec<PathBuf>) -> Self {
        ConformSummary {
            dataplane: report.dataplane.clone(),
            reference: report.reference.clone(),
            routing: report.routing.clone(),
            duration_ms: report.duration_ms,
            verdict: report.verdict_line(),
            conformant: report.conformant,
            judged: report.judged,
            matched: report.matched,
            counts: report.counts,
            profiles: report.profiles.clone(),
            cases: report
                .cases
                .iter()
                .zip(details)
                .map(|(case, detail)| ConformCaseEntry {
                    name: case.name.clone(),
                    scenario: case.scenario.clone(),
                    file: case.file.clone(),
                    profile: case.profile,
                    profile_case: case.profile_case,
                    verdict: case.verdict.clone(),
                    detail,
                })
                .collect(),
            protocol: report.protocol.clone(),
        }
    }
}

/// Write conform.json, a file per case, junit.xml and report.html for
/// `report` into `dir`; conform.json's content is returned.
pub fn write_conform_reports(
    dir: &Path,
    report: &ConformReport,
) -> Result<ConformSummary, ConformFileError> {
    let details = write_case_files(dir, report.cases.iter().map(|c| (c.name.clone(), c)))?;
    let summary = ConformSummary::new(report, details);
    write_json(&dir.join("conform.json"), &summary)?;
    write_text(&dir.join("junit.xml"), &render_conform_junit(report)?)?;
    write_text(&dir.join("report.html"), &render_conform_html(report))?;
    Ok(summary)
}

/// report.html of a conform run: the verdict line as its headline, the counts
/// line, and each case with its mark and both runs.
pub fn render_conform_html(report: &ConformReport) -> String {
    let cases = report
        .cases
        .iter()
        .map(|case| compared_case(case, report))
        .collect();
    render_comparison_html(&ComparisonPage {
        title: format!(
            "fip-harness conform: {} against {}",
            report.dataplane, report.reference
        ),
        verdict: report.verdict_line(),
        passed: report.conformant,
        counts: report.counts.line(),
        cases,
    })
}

fn compared_case<'a>(case: &'a ConformCase, report: &ConformReport) -> ComparedCase<'a> {
    let (mark, reason) = match &case.verdict {
        CaseVerdict::Matches => (Mark::Matches, None),
        CaseVerdict::Differs { .. } => (Mark::Differs, None),
        CaseVerdict::DriverError { reason } => (Mark::DriverError, Some(reason.clone())),
        CaseVerdict::ReferenceFailed { reason } => (
            Mark::NotJudged,
            Some(format!(
                "the reference ({}) failed: {reason}",
                report.reference
            )),
        ),
    };
    ComparedCase {
        name: case.name.clone(),
        file: case.file.clone(),
        profile: profile_name(case.profile).to_string(),
        mark,
        reason,
        difference: side_by_side(case, &report.dataplane, &report.reference),
        runs: vec![&case.vendor_result, &case.reference_result],
    }
}
