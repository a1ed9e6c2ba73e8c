//! How a run goes: where it writes, whether a failing lab stays up, its
//! routing, seed and lab names (shared by every entry point of the runner).

use std::path::PathBuf;

use crate::bgp::RoutingMode;
use crate::seed::Seed;

/// Where a run writes, and whether a failing lab stays up.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Diagnostics bundles and pcaps of failing steps go under here.
    pub report_dir: Option<PathBuf>,
    pub keep_on_failure: bool,
    /// BIRD (the default) or the harness's route model.
    pub routing: RoutingMode,
    /// Fixes every random choice of the case (see [`crate::seed`]); None: the
    /// OS's randomness, as before seeds existed.
    pub seed: Option<Seed>,
    /// How the case's lab is named.
    pub naming: super::naming::LabNaming,
}
