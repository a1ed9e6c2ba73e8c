//! `fip-harness explore`: random differential testing of a dataplane
//! against the Calico model, with shrinking.
//!
//! Proptest generates small cases ([`plan`]): a cluster of 1-3 nodes and
//! 1-2 external hosts, the switches, a floating pool, and operations in any
//! order: pods created (annotated or not, with floating IPs drawn from the
//! pools, duplicates, pod addresses, addresses outside every pool, bad
//! entries and malformed JSON), deleted and re-created, annotations set and
//! removed, phases changed, and traffic of every protocol from every kind of
//! sender to floating IPs, pods and hosts, as single sends and as streams
//! running across the changes. The Calico model ([`crate::calico::cluster`])
//! reads each case ([`script`]): it resolves every reference, gives Calico's
//! refusals as the steps' expected errors, and the prediction of every
//! packet ([`crate::calico::predict`]) becomes the step's expectation
//! ([`expect`]). The case is written as a scenario file ([`yaml`]), loaded
//! by the same loader as the catalogue, and run on the dataplane by the
//! runner: every observation is checked against the model's prediction by
//! the one judge ([`crate::check`]).
//!
//! The first failing case is shrunk by proptest's value trees ([`search`])
//! to the smallest case that still fails, and written with its seed as a
//! commented scenario file ([`write_finding`]) that `validate`, `run`, `up
//! --until-step` and `replay` take as it is.

pub mod expect;
pub mod plan;
pub mod script;
pub mod search;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use search::{search, Budget, Judge, Judgement, SearchOutcome, ShrinkLimits, Shrunk};

use crate::check::ScenarioResult;
use crate::runner::DataplaneChoice;
use crate::runner::{run_case_blocking, CaseCost, LabPool, PlannedCase, Room, RunOptions};
use crate::scenario::{self, Scenario};
use crate::seed::Seed;
use script::Script;

/// Where a search writes: the CNI configs its cases name, and its findings.
#[derive(Clone, Debug)]
pub struct ExploreDir {
    pub path: PathBuf,
}

impl ExploreDir {
    /// Make `path` and write the CNI configs the cases name there.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(path.join("cni"))?;
        for (file, on) in [(yaml::CNI_ON, true), (yaml::CNI_OFF, false)] {
            std::fs::write(path.join(file), yaml::cni_conflist(on))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// `script` as the scenario the runner takes, named `name`, loaded as
    /// if from a file of this folder (the loader's own checks included).
    pub fn scenario(&self, script: &Script, name: &str) -> Result<Scenario, String> {
        let text = yaml::render(script, name, &[]);
        let file = self.path.join(format!("{name}.yaml"));
        scenario::load_str(&text, &file).map_err(|errors| {
            let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            format!(
                "the generated scenario does not validate (the explorer's or the model's bug):\n{}\n{text}",
                lines.join("\n")
            )
        })
    }
}

/// Judges a case by running it on one dataplane: it fails when any check
/// of a step (the model's prediction) fails.
pub struct RunJudge {
    pub dir: ExploreDir,
    pub dataplane: DataplaneChoice,
    pub options: RunOptions,
    /// Labs reused between cases of the same shape (None: a lab per case).
    pub labs: Option<LabPool>,
    /// Where a case's first run that fails leaves its diagnostics bundle
    /// (the runner's, with every member's captures); the runs that shrink
    /// it leave none, to stay quick.
    pub bundles: Option<PathBuf>,
}

impl RunJudge {
    /// Run `script` as scenario `name` on `dataplane`.
    pub fn run(
        &self,
        script: &Script,
        name: &str,
        dataplane: &DataplaneChoice,
    ) -> Result<(Arc<Scenario>, ScenarioResult), String> {
        let scenario = Arc::new(self.dir.scenario(script, name)?);
        let result = self.run_scenario(&scenario, script, dataplane);
        Ok((scenario, result))
    }

    /// Run `script` as scenario `name` with `options` in place of the judge's.
    fn run_with(&self, script: &Script, name: &str, options: &RunOptions) -> Judgement {
        match self.dir.scenario(script, name) {
            Ok(scenario) => judgement_of(&self.run_scenario_with(
                &Arc::new(scenario),
                script,
                &self.dataplane,
                options,
            )),
            Err(invalid) => Judgement::NotJudged(invalid),
        }
    }

    /// Run `scenario` (the file of `script`) on `dataplane`.
    pub fn run_scenario(
        &self,
        scenario: &Arc<Scenario>,
        script: &Script,
        dataplane: &DataplaneChoice,
    ) -> ScenarioResult {
        self.run_scenario_with(scenario, script, dataplane, &self.options)
    }

    fn run_scenario_with(
        &self,
        scenario: &Arc<Scenario>,
        script: &Script,
        dataplane: &DataplaneChoice,
        options: &RunOptions,
    ) -> ScenarioResult {
        let case = PlannedCase {
            scenario: scenario.clone(),
            dataplane: dataplane.clone(),
            profile: script.spec.profile,
        };
        // Every job's lab counts against the host's one neighbour table, as
        // `run`'s do (runner::schedule): past it the kernel refuses entries
        // and a case fails for no reason of its own.
        let _room = Room::process().take(CaseCost::of(scenario).neighbours);
        match &self.labs {
            Some(labs) => labs.run_case(&case, options),
            None => run_case_blocking(&case, options),
        }
    }

    /// What the fingerprint check found left over after resets (empty when
    /// labs are not reused or not checked).
    pub fn reset_leaks(&self) -> Vec<String> {
        self.labs.as_ref().map(LabPool::leaks).unwrap_or_default()
    }
}

impl Judge for RunJudge {
    fn judge(&self, script: &Script, name: &str) -> Judgement {
        self.run_with(script, name, &self.options)
    }

    fn judge_first(&self, script: &Script, name: &str) -> Judgement {
        let options = RunOptions {
            report_dir: self.bundles.clone(),
            ..self.options.clone()
        };
        self.run_with(script, name, &options)
    }
}

/// A run's result as a judgement: a lab that could not be built judges
/// nothing.
pub fn judgement_of(result: &ScenarioResult) -> Judgement {
    use crate::check::Outcome;
    match &result.head.outcome {
        Outcome::Passed => Judgement::Pass,
        Outcome::Error { reason } if reason.starts_with("building the lab") => {
            Judgement::NotJudged(reason.clone())
        }
        _ => Judgement::Fail(result.failure_text()),
    }
}

/// Write the shrunk case of `shrunk` as `explore-<seed>-<case>.yaml` in
/// `dir`, commented with how it was found; its path.
pub fn write_finding(
    dir: &ExploreDir,
    seed: Seed,
    dataplane: &str,
    shrunk: &Shrunk,
) -> std::io::Result<PathBuf> {
    let name = format!("explore-{}-{}", seed.0, shrunk.index);
    let (steps, pods, hosts, packets) = search::size(&shrunk.shrunk);
    let mut comment = vec![
        format!(
            "Found by `fip-harness explore --dataplane {dataplane} --seed {}` (case {}),",
            seed.0, shrunk.index
        ),
        format!(
            "shrunk from {} steps to {steps} ({pods} pod(s), {hosts} host(s), {packets} packet(s) or stream(s)) in {} run(s){}.",
            shrunk.found.steps.len(),
            shrunk.runs,
            if shrunk.confirmed { "" } else { "; it did NOT fail again when run once more (flaky?)" },
        ),
        "Every expectation is the Calico model's prediction. Why it failed:".to_string(),
    ];
    comment.extend(shrunk.reason.lines().map(|line| format!("  {line}")));
    comment.push(format!(
        "For the catalogue: copy it to scenarios/, give it a name, and set cni: to ../fixtures/cni/calico-config-floating-ips-{}.yaml",
        if shrunk.shrunk.spec.cni_floating_ips { "on" } else { "off" }
    ));
    let text = yaml::render(&shrunk.shrunk, &name, &comment);
    let path = dir.path.join(format!("{name}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}
