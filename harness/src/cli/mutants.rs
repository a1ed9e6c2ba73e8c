//! `fip-harness mutants`: run the catalogue against every deliberately broken
//! dataplane and print the mutation score, the survivors, and the case that
//! killed each of the others.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use fip_harness::dataplane::BackendKind;
use fip_harness::mutant::{Mutant, MUTANTS};
use fip_harness::mutation;
use fip_harness::report::ScenarioResult;
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{self, PlanFilter, RunOptions};
use fip_harness::scenario::DurationValue;
use fip_harness::seed::Seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Only the mutants whose name matches REGEX.
    #[arg(long = "mutants", value_name = "REGEX")]
    mutants: Option<String>,
    // One meaning per flag name: `--filter` picks scenarios in every command
    // (`--scenarios DIR` adds a folder, in conform).
    /// Only the scenarios whose name or a tag matches REGEX (`!REGEX`: the others).
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Cases to run at once, each in its own lab.
    #[arg(long, short, default_value_t = 6)]
    jobs: usize,
    /// List the mutants and the bug each models, and run nothing.
    #[arg(long)]
    list: bool,
    /// Where diagnostics bundles of the killing cases go.
    #[arg(long, default_value = "reports/mutants")]
    report_dir: PathBuf,
    /// After the catalogue, explore each mutant for this long (`1m`; `0s`,
    /// the default, skips it) and say which of the two killed it.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    explore_time: DurationValue,
    /// The exploration's seed (default: drawn and printed).
    #[arg(long, value_name = "N")]
    explore_seed: Option<Seed>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pattern = args
        .mutants
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("bad --mutants")?;
    let mutants: Vec<&'static Mutant> = MUTANTS
        .iter()
        .filter(|m| pattern.as_ref().is_none_or(|p| p.is_match(m.name)))
        .collect();
    if args.list {
        for mutant in &mutants {
            say!(
                "mutant:{:<30} [{}] {}",
                mutant.name,
                mutant.class,
                mutant.models
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if mutants.is_empty() {
        anyhow::bail!("no mutant matches");
    }
    super::require_root_to_run_scenarios()?;
    let scenarios = super::scenario_filter(args.filter.as_deref(), "--filter")?;
    // Mutants break nft-maps (the harness's fast backend, which the catalogue
    // shows observes as Felix's nftables does), so they run its cases.
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
    // A case that fails on the unbroken backend would kill every mutant
    // without their bugs doing anything: the catalogue runs there first and
    // kills count only on the cases that pass.
    say!(
        "{} mutant(s) against {} case(s), {} at a time, after the unbroken {} runs them",
        mutants.len(),
        cases.len(),
        args.jobs.max(1),
        BackendKind::NftMaps
    );
    let started = Instant::now();
    let progress = |mutant: &Mutant, result: &ScenarioResult| {
        let verdict = if result.head.outcome.is_pass() {
            "passed"
        } else {
            "FAILED"
        };
        tracing::info!(mutant = mutant.name, case = %result.case_name(), verdict);
    };
    let run = mutation::score_catalogue(&mutants, cases, args.jobs, &options, &progress);
    super::signals::defer_to_interrupt_handler();
    let verdicts = run.verdicts;
    say!("{}", mutation::render_verdicts(&verdicts).trim_end());
    if !args.explore_time.0.is_zero() {
        let seed = args.explore_seed.unwrap_or_else(Seed::random);
        let report_dir = options.report_dir.as_deref().unwrap_or(Path::new("."));
        super::mutants_explore::compare(
            &verdicts,
            args.explore_time.0,
            seed,
            args.jobs,
            report_dir,
        )?;
        super::signals::defer_to_interrupt_handler();
    }
    if !run.excluded.is_empty() {
        say!(
            "{} case(s) excluded, as they fail on the unbroken {} (a kill there would not be the bug's):",
            run.excluded.len(),
            BackendKind::NftMaps
        );
        for (case, failure) in &run.excluded {
            say!("  {case}");
            for line in failure.lines().take(3) {
                say!("      {line}");
            }
        }
    }
    say!("({:.1} s)", started.elapsed().as_secs_f64());
    let (killed, total) = mutation::mutation_score(&verdicts);
    Ok(if killed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
