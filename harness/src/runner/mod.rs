//! Runs scenarios: plans the (scenario, backend, profile) cases of a catalogue,
//! runs each in a lab of its own, and describes failures for people.

mod case;
mod diagnostics;
mod observe;
mod pods;
mod replay;
mod send;
mod streams;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use replay::{bring_up, run_scenario, RunOptions};

use crate::dataplane::DataplaneChoice;
use crate::report::{Outcome, ScenarioResult};
use crate::scenario::{self, ConntrackProfile, Scenario, ScenarioError};

/// One scenario on one dataplane and conntrack profile.
#[derive(Clone, Debug)]
pub struct PlannedCase {
    pub scenario: Arc<Scenario>,
    pub dataplane: DataplaneChoice,
    pub profile: ConntrackProfile,
}

impl PlannedCase {
    /// `<scenario>::<backend>`, plus `::strict` for the strict profile: the
    /// name of the test and of the JUnit case.
    pub fn test_name(&self) -> String {
        match self.profile {
            ConntrackProfile::Calico => format!("{}::{}", self.scenario.name, self.dataplane),
            ConntrackProfile::Strict => {
                format!("{}::{}::strict", self.scenario.name, self.dataplane)
            }
        }
    }
}

/// Which cases of a catalogue to run.
#[derive(Clone, Debug, Default)]
pub struct PlanFilter {
    /// Only this dataplane, on the scenarios that list its base backend
    /// (else each scenario's own list of backends).
    pub dataplane: Option<DataplaneChoice>,
    /// Only this profile (else each scenario's own list).
    pub profile: Option<ConntrackProfile>,
}

/// Every case of the scenarios under `paths`; errors name file:line:column.
pub fn plan(
    paths: &[PathBuf],
    filter: &PlanFilter,
) -> Result<Vec<PlannedCase>, Vec<ScenarioError>> {
    let catalogue = scenario::load_catalogue(paths);
    if !catalogue.errors.is_empty() {
        return Err(catalogue.errors);
    }
    let mut cases = Vec::new();
    for scenario in catalogue.scenarios {
        let scenario = Arc::new(scenario);
        for backend in &scenario.backends {
            let dataplane = match filter.dataplane {
                Some(choice) if choice.base() != *backend => continue,
                Some(choice) => choice,
                None => DataplaneChoice::Builtin(*backend),
            };
            for profile in &scenario.profiles {
                if filter.profile.is_some_and(|p| p != *profile) {
                    continue;
                }
                cases.push(PlannedCase {
                    scenario: scenario.clone(),
                    dataplane,
                    profile: *profile,
                });
            }
        }
    }
    Ok(cases)
}

/// A lab name unique on this host for this process: `r<pid><n>` in base 36,
/// short enough for interface and namespace names.
pub fn unique_lab_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("r{}{}", base36(std::process::id()), base36(n))
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Run one case on a tokio runtime of its own (for threads of a test harness
/// or of `run --jobs`).
pub fn run_case_blocking(case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return replay::result_of(
                &case.scenario,
                case.dataplane,
                case.profile,
                Outcome::Error {
                    reason: format!("starting a tokio runtime: {error}"),
                },
            )
        }
    };
    let lab = unique_lab_name();
    runtime.block_on(run_scenario(
        &case.scenario,
        case.dataplane,
        case.profile,
        &lab,
        options,
    ))
}
