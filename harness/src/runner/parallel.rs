//! Running a list of cases several at a time, each in a lab of its own.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::{run_case_blocking, PlannedCase, RunOptions};
use crate::check::ScenarioResult;

/// Run `cases`, `jobs` at a time (labs wait on the kernel far more than they
/// compute, so more jobs than cores pay), calling `finished` after each.
/// Results come back in the order of `cases`; once the process is
/// interrupted no case starts, and those not run are `None`.
pub fn run_cases(
    cases: &[PlannedCase],
    jobs: usize,
    options: &RunOptions,
    finished: &(dyn Fn(&PlannedCase, &ScenarioResult) + Sync),
) -> Vec<Option<ScenarioResult>> {
    let queue = Mutex::new((0..cases.len()).collect::<VecDeque<_>>());
    let results = Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, cases.len().max(1)) {
            scope.spawn(|| loop {
                if crate::lab::signals::is_cancelled() {
                    break;
                }
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(index) = next else { break };
                // A panic in the case is caught there and fails only that case.
                let result = run_case_blocking(&cases[index], options);
                finished(&cases[index], &result);
                results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
