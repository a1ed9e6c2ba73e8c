//! Runs scenarios: plans the (scenario, backend, profile) cases of a catalogue,
//! runs each in a lab of its own, and describes failures for people.

mod case;
mod dataplane;
mod diagnostics;
mod observe;
mod parallel;
mod pictures;
mod pods;
mod replay;
mod routing;
mod send;
mod settle;
mod streams;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use parallel::run_cases;
pub use replay::{bring_up, run_scenario, RunOptions};

use crate::bgp::RoutingMode;
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
            let dataplane = match &filter.dataplane {
                Some(choice) if choice.base() != *backend => continue,
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

/// A lab name unique on this host: `r<pid><n><random>` in base 36, at most 12
/// characters (the lab name rule). The random part, drawn once per process,
/// keeps a later process with a reused pid from meeting a lab a killed one left.
pub fn unique_lab_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SALT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| {
        // RandomState's keys come from the OS's random source.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        base36((random % (36u64.pow(4))) as u32)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("r{}{}", base36(std::process::id()), base36(n));
    let room = 12usize.saturating_sub(name.len());
    name.push_str(&format!("{salt:0>4}")[..room.min(4)]);
    name
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
/// or of `run --jobs`). A panic anywhere in the case fails that case with the
/// panic's message (its lab is removed as the panic unwinds through it); the
/// caller goes on with the next.
pub fn run_case_blocking(case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
    let started = std::time::Instant::now();
    let run = std::panic::AssertUnwindSafe(|| run_case_on_own_runtime(case, options));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let mut result = case_error(
            case,
            options.routing,
            format!("the harness panicked: {message}"),
        );
        result.duration_ms = started.elapsed().as_millis() as u64;
        result
    })
}

/// The result of a case the harness could not run.
fn case_error(case: &PlannedCase, routing: RoutingMode, reason: String) -> ScenarioResult {
    replay::result_of(
        &case.scenario,
        &case.dataplane,
        case.profile,
        routing,
        Outcome::Error { reason },
    )
}

/// A result of `case` with `outcome` and no steps (for unit tests elsewhere).
#[cfg(test)]
pub(crate) fn result_for_tests(case: &PlannedCase, outcome: Outcome) -> ScenarioResult {
    let mut result = case_error(case, RoutingMode::default(), String::new());
    result.outcome = outcome;
    result
}

fn run_case_on_own_runtime(case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
    // Fault injection for the root tests of `run` (tests/cli_signals.rs): a
    // case that panics must fail alone. Debug builds only.
    #[cfg(debug_assertions)]
    if std::env::var_os(PANIC_IN_CASE_ENV).is_some_and(|name| name == *case.scenario.name) {
        panic!("injected by {PANIC_IN_CASE_ENV}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return case_error(
                case,
                options.routing,
                format!("starting a tokio runtime: {error}"),
            )
        }
    };
    let lab = unique_lab_name();
    runtime.block_on(run_scenario(
        &case.scenario,
        &case.dataplane,
        case.profile,
        &lab,
        options,
    ))
}
