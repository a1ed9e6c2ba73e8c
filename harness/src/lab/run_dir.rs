//! Where lab records and lock files live: the run directory.

use std::path::PathBuf;

/// Default run directory for lab records.
pub const DEFAULT_RUN_DIR: &str = "/run/fip-harness/labs";
/// Environment variable overriding [`DEFAULT_RUN_DIR`] (tests use a temp dir).
pub const RUN_DIR_ENV: &str = "FIP_HARNESS_RUN_DIR";

pub fn run_dir() -> PathBuf {
    std::env::var_os(RUN_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
}
