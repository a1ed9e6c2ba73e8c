//! A case's and a step's results before anything ran: what `run`, `up` and
//! `replay` start from.

use super::choice::DataplaneChoice;
use super::options::RunOptions;
use super::step_text::summarise;
use crate::bgp::RoutingMode;
use crate::check::{CaseHead, Outcome, ScenarioResult, StepResult};
use crate::scenario::{ConntrackProfile, Scenario, Step};

/// The result of a case about to run in `lab_name`: passed so far, nothing run.
pub(super) fn fresh_result(
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    options: &RunOptions,
    lab_name: &str,
) -> ScenarioResult {
    let mut result = result_of(
        scenario,
        dataplane,
        profile,
        options.routing,
        Outcome::Passed,
    );
    result.seed = options.seed;
    result.lab = Some(lab_name.to_string());
    result
}

/// The result of a case with `outcome` and nothing run yet.
pub(super) fn result_of(
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    routing: RoutingMode,
    outcome: Outcome,
) -> ScenarioResult {
    ScenarioResult {
        head: CaseHead {
            name: scenario.name.clone(),
            file: scenario.source.clone(),
            backend: dataplane.to_string(),
            profile: profile_name(profile).to_string(),
            tags: scenario.tags.clone(),
            routing: routing.to_string(),
            outcome,
            duration_ms: 0,
        },
        steps: Vec::new(),
        migrations: Vec::new(),
        lab_pictures: Vec::new(),
        kept_lab: None,
        seed: None,
        lab: None,
    }
}

fn profile_name(profile: ConntrackProfile) -> &'static str {
    match profile {
        ConntrackProfile::Calico => "calico",
        ConntrackProfile::Strict => "strict",
    }
}

/// The result of step `index` before it runs: passed, nothing checked.
pub(super) fn fresh_step(index: usize, step: &Step) -> StepResult {
    StepResult {
        index,
        summary: summarise(step),
        passed: true,
        attempts: 1,
        lines: Vec::new(),
        message: None,
        diagnostics: None,
        timing: None,
    }
}
