//! Running a list of cases several at a time, each in a lab of its own.

use std::sync::Mutex;

use super::schedule::{neighbour_budget, CaseCost, Schedule};
use super::{run_case_blocking, PlannedCase, RunOptions};
use crate::check::ScenarioResult;

/// Run `cases`, `jobs` at a time (labs wait on the kernel far more than they
/// compute, so more jobs than cores pay), the longest first and only as many
/// labs as the host's neighbour table has room for ([`Schedule`]), calling
/// `started` before and `finished` after each. Results come back in the order
/// of `cases`; once the process is interrupted no case starts, and those not
/// run are `None`.
pub fn run_cases(
    cases: &[PlannedCase],
    jobs: usize,
    options: &RunOptions,
    finished: &(dyn Fn(&PlannedCase, &ScenarioResult) + Sync),
) -> Vec<Option<ScenarioResult>> {
    run_cases_with(cases, jobs, options, &|_| {}, finished)
}

/// [`run_cases`], calling `started` as each case starts.
pub fn run_cases_with(
    cases: &[PlannedCase],
    jobs: usize,
    options: &RunOptions,
    started: &(dyn Fn(&PlannedCase) + Sync),
    finished: &(dyn Fn(&PlannedCase, &ScenarioResult) + Sync),
) -> Vec<Option<ScenarioResult>> {
    let costs = cases.iter().map(|c| CaseCost::of(&c.scenario)).collect();
    let schedule = Schedule::new(costs, neighbour_budget());
    let results = Mutex::new(vec![None; cases.len()]);
    let stop = crate::lab::signals::is_cancelled;
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, cases.len().max(1)) {
            scope.spawn(|| {
                while let Some(index) = schedule.next(&stop) {
                    started(&cases[index]);
                    // A panic in the case is caught there and fails only that case.
                    let result = run_case_blocking(&cases[index], options);
                    schedule.done(index);
                    finished(&cases[index], &result);
                    results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
