//! What a run leaves behind: the JSON summary (with migration figures) and JUnit
//! XML, one test case per scenario and backend. Diagnostics bundles and pcaps are
//! written by the runner into the same report directory.

mod junit;
mod overview;
mod summary;

pub use junit::render_junit;
pub use overview::{FloatingIpHolder, Holder, LabOverview, MemberAddresses};
pub use summary::{MigrationReport, Outcome, RunSummary, ScenarioResult, StepResult};
