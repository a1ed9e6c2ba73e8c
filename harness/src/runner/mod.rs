//! Runs scenarios: plans the (scenario, backend, profile) cases of a catalogue,
//! runs each in a lab of its own, and describes failures for people.

mod bird;
mod build;
mod case;
mod choice;
mod dataplane;
mod diagnostics;
mod error;
mod late;
mod live_streams;
mod naming;
mod options;
mod parallel;
mod phases;
mod pictures;
mod pods;
mod replay;
mod repro;
mod results;
mod reuse;
mod routing;
mod schedule;
mod send;
mod settle;
mod step_text;
mod streams;
mod up_record;

use std::path::PathBuf;
use std::sync::Arc;

pub use choice::{ChoiceError, ChosenDataplane, DataplaneChoice};
pub use error::RunnerError;
pub use naming::{base36, check_prefix, seeded_lab_name, unique_lab_name, LabNaming};
pub use options::RunOptions;
pub use parallel::{run_cases, run_cases_with};
pub use phases::PhaseTimes;
pub use replay::run_scenario;
pub use repro::{bring_up, check_step_number, replay_in_lab, streams_across, UpReport};
pub use reuse::{LabPool, PoolCounts};
pub use schedule::{
    default_jobs, neighbour_budget, neighbour_need, CaseCost, Entries, LabSize, Room, Schedule,
    Taken,
};
pub use up_record::UpRecord;

use crate::bgp::RoutingMode;
use crate::check::{Outcome, ScenarioResult};
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
    /// The run's routing: scenarios that do not hold under it are left out.
    pub routing: RoutingMode,
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
        if !scenario.routings.contains(&filter.routing) {
            continue;
        }
        let scenario = Arc::new(scenario);
        for backend in &scenario.backends {
            // A driver stands in for the scenario's release of Felix.
            let base = |choice: &DataplaneChoice| match choice {
                DataplaneChoice::Exec(_) => scenario.felix_backend(),
                other => other.base(),
            };
            let dataplane = match &filter.dataplane {
                Some(choice) if base(choice) != *backend => continue,
                Some(choice) => choice.clone(),
                None => DataplaneChoice::Builtin(*backend),
            };
            for profile in &scenario.profiles {
                if filter.profile.is_some_and(|p| p != *profile) {
                    continue;
                }
                cases.push(PlannedCase {
                    scenario: scenario.clone(),
                    dataplane: dataplane.clone(),
                    profile: *profile,
                });
            }
        }
    }
    Ok(cases)
}

/// Debug builds panic in the case of this scenario name (for tests).
pub const PANIC_IN_CASE_ENV: &str = "FIP_HARNESS_TEST_PANIC_IN";

/// Run one case on a tokio runtime of its own (for threads of a test harness
/// or of `run --jobs`). A panic anywhere in the case fails that case with the
/// panic's message (its lab is removed as the panic unwinds through it); the
/// caller goes on with the next.
pub fn run_case_blocking(case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
    let started = std::time::Instant::now();
    let run = std::panic::AssertUnwindSafe(|| run_case_on_own_runtime(case, options));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let mut result = case_panicked(case, options, &*panic);
        result.head.duration_ms = started.elapsed().as_millis() as u64;
        result
    })
}

/// The result of a case whose run panicked: an error naming the panic's
/// message (for `run_case_blocking` and the lab pool alike).
pub(crate) fn case_panicked(
    case: &PlannedCase,
    options: &RunOptions,
    panic: &(dyn std::any::Any + Send),
) -> ScenarioResult {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    case_error(case, options, format!("the harness panicked: {message}"))
}

/// The runtime one case runs on: two workers (labs wait on the kernel far
/// more than they compute, and several cases run at once).
pub fn case_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// The result of a case the harness could not run.
pub fn case_error(case: &PlannedCase, options: &RunOptions, reason: String) -> ScenarioResult {
    let mut result = results::result_of(
        &case.scenario,
        &case.dataplane,
        case.profile,
        options.routing,
        Outcome::Error { reason },
    );
    result.seed = options.seed;
    result
}

/// A result of `case` with `outcome` and no steps (for unit tests elsewhere).
#[cfg(test)]
pub(crate) fn result_for_tests(case: &PlannedCase, outcome: Outcome) -> ScenarioResult {
    let mut result = case_error(case, &RunOptions::default(), String::new());
    result.head.outcome = outcome;
    result
}

fn run_case_on_own_runtime(case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
    // Fault injection for the root tests of `run` (tests/cli_signals.rs): a
    // case that panics must fail alone. Debug builds only.
    #[cfg(debug_assertions)]
    if std::env::var_os(PANIC_IN_CASE_ENV).is_some_and(|name| name == *case.scenario.name) {
        panic!("injected by {PANIC_IN_CASE_ENV}");
    }
    let runtime = match case_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            return case_error(case, options, format!("starting a tokio runtime: {error}"))
        }
    };
    let lab = options.naming.name_for(options.seed, &case.test_name());
    runtime.block_on(run_scenario(
        &case.scenario,
        &case.dataplane,
        case.profile,
        &lab,
        options,
    ))
}
