//! `fip-harness mutants`: run the catalogue against every deliberately broken
//! dataplane and print the mutation score, the survivors, and the case that
//! killed each of the others.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use fip_harness::dataplane::{BackendKind, DataplaneChoice};
use fip_harness::mutant::{self, Mutant, MUTANTS};
use fip_harness::report::ScenarioResult;
use fip_harness::runner::{self, PlanFilter, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Only the mutants whose name matches REGEX.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Only the scenarios whose name or a tag matches REGEX (`!REGEX`: the others).
    #[arg(long, value_name = "REGEX")]
    scenarios: Option<String>,
    /// Cases to run at once, each in its own lab.
    #[arg(long, short, default_value_t = 6)]
    jobs: usize,
    /// List the mutants and the bug each models, and run nothing.
    #[arg(long)]
    list: bool,
    /// Where diagnostics bundles of the killing cases go.
    #[arg(long, default_value = "reports/mutants")]
    report_dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pattern = args
        .filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("bad --filter")?;
    let mutants: Vec<&'static Mutant> = MUTANTS
        .iter()
        .filter(|m| pattern.as_ref().is_none_or(|p| p.is_match(m.name)))
        .collect();
    if args.list {
        for mutant in &mutants {
            say!("mutant:{:<24} {}", mutant.name, mutant.models);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if mutants.is_empty() {
        anyhow::bail!("no mutant matches");
    }
    super::require_root_to_run_scenarios()?;
    let scenarios = super::scenario_filter(args.scenarios.as_deref(), "--scenarios")?;
    // Mutants break the reference backend, so they run its cases.
    let filter = PlanFilter {
        dataplane: Some(DataplaneChoice::Builtin(BackendKind::NftMaps)),
        ..Default::default()
    };
    let cases: Vec<_> = runner::plan(&args.paths, &filter)
        .map_err(|errors| {
            for error in &errors {
                eprintln!("{error}");
            }
            anyhow::anyhow!("{} error(s) in the scenarios", errors.len())
        })?
        .into_iter()
        .filter(|case| scenarios.as_ref().is_none_or(|f| f.keeps(&case.scenario)))
        .collect();
    if cases.is_empty() {
        anyhow::bail!("no scenario matches");
    }
    super::signals::tear_down_labs_on_ctrl_c(|_| {
        eprintln!("interrupted: the labs of the running cases were removed");
    });
    let options = RunOptions {
        report_dir: Some(args.report_dir),
        keep_on_failure: false,
        ..RunOptions::default()
    };
    say!(
        "{} mutant(s) against {} case(s), {} at a time",
        mutants.len(),
        cases.len(),
        args.jobs.max(1)
    );
    let started = Instant::now();
    let progress = |mutant: &Mutant, result: &ScenarioResult| {
        let verdict = if result.outcome.is_pass() {
            "passed"
        } else {
            "FAILED"
        };
        tracing::info!(mutant = mutant.name, case = %result.case_name(), verdict);
    };
    let verdicts = mutant::run_mutants(&mutants, &cases, args.jobs, &options, &progress);
    say!("{}", mutant::render_verdicts(&verdicts).trim_end());
    say!("({:.1} s)", started.elapsed().as_secs_f64());
    let (killed, total) = mutant::mutation_score(&verdicts);
    Ok(if killed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
