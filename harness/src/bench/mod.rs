//! Benchmarks (`fip-harness bench ...`): each measures a figure and, in the
//! same run, the baseline it is compared with, and prints both, the ratio
//! and the machine's load. The CLI maps its flags to each bench's `Options`.

/// A line of a benchmark's output, on stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[macro_use]
mod error;

pub use error::BenchError;

/// What a bench's steps return.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

pub mod catalogue;
pub mod churn;
mod churn_figures;
mod churn_plan;
mod churn_report;
pub mod dataplane;
mod dataplane_bird;
mod dataplane_lab;
pub mod explore;
mod figures;
pub mod lab;
mod lab_script;
pub mod scale;
pub mod traffic;
