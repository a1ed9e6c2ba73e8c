//! What a run leaves behind: the JSON summary (with migration figures) and JUnit
//! XML, one test case per scenario and backend. Diagnostics bundles and pcaps are
//! written by the runner into the same report directory.

mod junit;
mod picture;
mod summary;

pub use junit::render_junit;
pub use picture::{FloatingIpRoute, LabPicture, MemberPicture, NodePicture, PodPicture, RouteHop};
pub use summary::{MigrationReport, Outcome, RunSummary, ScenarioResult, StepResult};
