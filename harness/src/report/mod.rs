//! What a run leaves behind: the JSON summary (with migration figures), JUnit
//! XML (one test case per scenario and backend) and report.html (the same
//! results for people, with a plot per move and pictures of the lab; any
//! command holding a [`RunSummary`] renders it with [`render_html`]).
//! Diagnostics bundles and pcaps are written by the runner into the same
//! report directory.

mod html;
mod html_case;
mod junit;
mod lab_svg;
mod picture;
mod plot;
mod summary;
#[cfg(test)]
mod test_data;

pub use html::render_html;
pub use junit::render_junit;
pub use lab_svg::lab_svg;
pub use picture::{FloatingIpRoute, LabPicture, MemberPicture, NodePicture, PodPicture, RouteHop};
pub use plot::{migration_svg, PlotError};
pub use summary::{MigrationReport, Outcome, RunSummary, ScenarioResult, StepResult};
