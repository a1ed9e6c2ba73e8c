//! The kept-lab case: a dataplane that lives on after the harness that
//! started it. One scenario is brought up to its last step and kept, as `up`
//! keeps a lab (a driver is asked for its `dump` and told `shutdown` with
//! `keep: true`), then taken over as `replay` takes a lab over (a fresh copy
//! of the driver says `hello`, gets the topology and the same whole NAT over
//! what its predecessor left in place) and its last step is run; then the lab
//! is removed. On the vendor's dataplane and on the reference alike, compared
//! as any case is. It is how an agent restart on a live node goes: a driver
//! that cannot start over state it left itself (a table that already exists,
//! a pinned map) fails it.

use crate::check::ScenarioResult;
use crate::check::{CaseId, Compared, ConformCase, PROFILE_TAG};
use crate::lab::down::down_lab;
use crate::runner::{
    bring_up, case_error, case_runtime, replay_in_lab, DataplaneChoice, PlannedCase, RunOptions,
};

/// The scenario the kept-lab case uses, when the run has it.
pub const KEPT_SCENARIO: &str = "from-external-v4";

/// `case` (of the catalogue) run as the kept-lab case on `vendor` and on
/// `reference`, and judged.
pub fn kept_case(
    vendor: &PlannedCase,
    reference: &PlannedCase,
    options: &RunOptions,
) -> ConformCase {
    let scenario = &vendor.scenario;
    let id = CaseId {
        name: format!("{}::kept", scenario.name),
        scenario: scenario.name.clone(),
        file: scenario.source.clone(),
        profile: vendor.profile,
        profile_case: scenario.tags.iter().any(|t| t == PROFILE_TAG),
    };
    let vendor_result = kept_run(vendor, options);
    let reference_result = kept_run(reference, options);
    ConformCase::from_results(id, &Compared::of(scenario), vendor_result, reference_result)
}

/// Bring `case` up to its last step and keep it, take the lab over and run
/// that step, then remove the lab.
fn kept_run(case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
    let last = case.scenario.steps.len();
    let lab = options
        .naming
        .name_for(options.seed, &format!("{}::kept", case.test_name()));
    let runtime = match case_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            return case_error(case, options, format!("starting a tokio runtime: {error}"))
        }
    };
    let kept = runtime.block_on(bring_up(
        &case.scenario,
        &case.dataplane,
        case.profile,
        options,
        &lab,
        Some(last),
    ));
    let result = match kept {
        Err(reason) => case_error(
            case,
            options,
            format!("bringing the lab up to step {last}: {reason}"),
        ),
        Ok(up) if !up.result.head.outcome.is_pass() => up.result,
        Ok(_) => runtime.block_on(replay_in_lab(
            &case.scenario,
            &case.dataplane,
            case.profile,
            options,
            &lab,
            last,
        )),
    };
    let down = down_lab(&lab);
    if !down.errors.is_empty() {
        tracing::warn!(lab, errors = ?down.errors, "removing the kept-lab case's lab");
    }
    let mut result = result;
    result.kept_lab = None;
    result
}

/// Whether `choice` is a dataplane the kept-lab case means anything for: one
/// that lives beyond single calls (an external driver).
pub fn applies_to(choice: &DataplaneChoice) -> bool {
    matches!(choice, DataplaneChoice::Exec(_))
}
