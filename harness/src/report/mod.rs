//! What a run leaves behind: the JSON summary (counts, and one file per case
//! with its steps and migration figures), JUnit
//! XML (one test case per scenario and backend) and report.html (the same
//! results for people, with a plot per move and pictures of the lab; any
//! command holding a [`RunSummary`] renders it with [`render_html`]).
//! Diagnostics bundles and pcaps are written by the runner into the same
//! report directory.

mod compare_html;
mod escape;
mod files;
mod html;
mod html_case;
mod junit;
mod lab_svg;
mod overview;
mod plot;
mod summary;
#[cfg(test)]
mod test_data;

pub use compare_html::{render_comparison_html, ComparedCase, ComparisonPage, Mark, SideBySide};
pub use files::{
    file_stem, write_case_files, write_json, write_summary, write_text, CaseEntry, ReportFileError,
    SummaryFile, CASES_DIR,
};
pub use html::render_html;
pub use junit::render_junit;
pub use lab_svg::lab_svg;
pub use overview::{FloatingIpHolder, Holder, LabOverview, MemberAddresses};
pub use plot::{migration_svg, PlotError};
pub use summary::{Interrupted, RunSummary};
// The results it renders are the judge's (`check`): named here as well.
pub use crate::check::{
    CaseHead, FloatingIpRoute, LabPicture, MemberPicture, MigrationReport, NodePicture, Outcome,
    PodPicture, RouteHop, ScenarioResult, StepResult,
};
