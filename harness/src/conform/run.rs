//! Planning and running a conformance run: every case the vendor's dataplane
//! runs, paired with the reference's run of the same scenario and profile.

use std::path::PathBuf;
use std::time::Instant;

use super::kept::{self, KEPT_SCENARIO};
use super::protocol::protocol_items;
use super::report::ConformReport;
use super::REFERENCE;
use crate::check::ConformCase;
use crate::check::ScenarioResult;
use crate::runner::DataplaneChoice;
use crate::runner::{self, PlanFilter, PlannedCase, RunOptions};
use crate::scenario::{ScenarioError, ScenarioFilter};
use crate::vocab::{BackendKind, ConntrackProfile};

/// One scenario and profile, on the vendor's dataplane and on the reference.
#[derive(Clone, Debug)]
pub struct CasePair {
    pub vendor: PlannedCase,
    pub reference: PlannedCase,
}

/// The pairs of the scenarios under `paths` that `filter` keeps: each case
/// the vendor's dataplane runs, beside the reference's run of the same
/// scenario and profile. A case the reference does not run (a scenario
/// limited to other backends) has nothing to be compared with and is left
/// out. Errors name file:line:column.
pub fn plan_pairs(
    paths: &[PathBuf],
    vendor: DataplaneChoice,
    routing: crate::bgp::RoutingMode,
    filter: Option<&ScenarioFilter>,
) -> Result<Vec<CasePair>, Vec<ScenarioError>> {
    let plan = |dataplane| {
        runner::plan(
            paths,
            &PlanFilter {
                dataplane: Some(dataplane),
                profile: None,
                routing,
            },
        )
    };
    // The reference is the scenario's release of Felix: nftables mode, or
    // iptables before v3.29 (Scenario::felix_backend).
    let mut references = plan(DataplaneChoice::Builtin(REFERENCE))?;
    references.extend(plan(DataplaneChoice::Builtin(BackendKind::Iptables))?);
    let vendors = plan(vendor)?;
    Ok(vendors
        .into_iter()
        .filter(|case| filter.is_none_or(|f| f.keeps(&case.scenario)))
        .filter_map(|vendor| {
            let at = references.iter().position(|r| {
                r.scenario.name == vendor.scenario.name
                    && r.profile == vendor.profile
                    && r.dataplane.base() == vendor.scenario.felix_backend()
            })?;
            Some(CasePair {
                reference: references.swap_remove(at),
                vendor,
            })
        })
        .collect())
}

/// Which Calico release the verdict stands for: `judged against Calico
/// v3.32.1`, and the scenarios that pin another with `calico:`.
pub fn release_line(release: crate::calico::Release, pairs: &[CasePair]) -> String {
    let mut pinned: Vec<String> = pairs
        .iter()
        .map(|pair| &pair.vendor.scenario)
        .filter(|scenario| scenario.calico != release)
        .map(|scenario| format!("{} ({})", scenario.name, scenario.calico))
        .collect();
    pinned.dedup();
    let mut line = format!("judged against Calico {release}");
    if !pinned.is_empty() {
        line.push_str(&format!("; pinned by `calico:`: {}", pinned.join(", ")));
    }
    line
}

/// Run every pair of `vendor`'s, `jobs` cases at a time (a pair's two runs next to each
/// other), calling `finished` after each run, and judge each pair. Pairs
/// left unfinished by an interruption are not in the report.
pub fn run_conformance(
    vendor: &DataplaneChoice,
    pairs: &[CasePair],
    jobs: usize,
    options: &RunOptions,
    finished: &(dyn Fn(&PlannedCase, &ScenarioResult) + Sync),
) -> ConformReport {
    let started = Instant::now();
    let cases: Vec<PlannedCase> = pairs
        .iter()
        .flat_map(|pair| [pair.vendor.clone(), pair.reference.clone()])
        .collect();
    let mut results = runner::run_cases(&cases, jobs, options, finished);
    rerun_failed_references(&cases, &mut results, jobs, options, finished);
    let mut results = results.into_iter();
    let mut judged = Vec::new();
    let kept_pair = pairs.iter().find(|p| {
        p.vendor.scenario.name == KEPT_SCENARIO && p.vendor.profile == ConntrackProfile::Calico
    });
    for pair in pairs {
        if let (Some(Some(vendor)), Some(Some(reference))) = (results.next(), results.next()) {
            judged.push(ConformCase::judge(
                &pair.vendor.scenario,
                pair.vendor.profile,
                vendor,
                reference,
            ));
        }
    }
    if let Some(pair) = kept_pair.filter(|_| kept::applies_to(vendor)) {
        judged.push(kept::kept_case(&pair.vendor, &pair.reference, options));
    }
    let protocol =
        kept::applies_to(vendor).then(|| protocol_items(&judged, &crate::driver::usage::used()));
    ConformReport::new(
        vendor.to_string(),
        REFERENCE.to_string(),
        options.routing.to_string(),
        started.elapsed().as_millis() as u64,
        judged,
    )
    .with_protocol(protocol)
}

/// Run once more each reference case (the odd entries of `cases`) that
/// failed. The reference passes the catalogue, so its failure is the lab's
/// or the machine's (a stream's move not converged in its wait on a loaded
/// machine), never a finding; a second failure leaves the case not judged.
/// The vendor's runs are never rerun: an intermittent difference there is a
/// finding.
fn rerun_failed_references(
    cases: &[PlannedCase],
    results: &mut [Option<ScenarioResult>],
    jobs: usize,
    options: &RunOptions,
    finished: &(dyn Fn(&PlannedCase, &ScenarioResult) + Sync),
) {
    let failed: Vec<usize> = (1..cases.len())
        .step_by(2)
        .filter(|&i| matches!(&results[i], Some(r) if !r.head.outcome.is_pass()))
        .collect();
    if failed.is_empty() {
        return;
    }
    let again: Vec<PlannedCase> = failed.iter().map(|&i| cases[i].clone()).collect();
    for case in &again {
        tracing::info!(case = %case.test_name(), "the reference failed: running it once more");
    }
    let rerun = runner::run_cases(&again, jobs, options, finished);
    for (index, result) in failed.into_iter().zip(rerun) {
        if result.is_some() {
            results[index] = result;
        }
    }
}
