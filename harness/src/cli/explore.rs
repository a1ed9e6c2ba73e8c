//! `fip-harness explore`: generate cases from the Calico model, run them on a
//! dataplane, shrink the first failure and write it as a scenario file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use fip_harness::explore::{self, Budget, ExploreDir, Judge, Judgement, RunJudge, ShrinkLimits};
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{LabPool, RunOptions};
use fip_harness::scenario::DurationValue;
use fip_harness::seed::Seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dataplane to explore: a built-in backend by name, `mutant:<name>`
    /// or `exec:PATH [ARGS]`.
    #[arg(long, value_name = "DATAPLANE", default_value = "nft-maps")]
    dataplane: DataplaneChoice,
    /// How many cases to generate and run (default 100, unless --time).
    #[arg(long, value_name = "N", conflicts_with = "time")]
    budget: Option<u64>,
    /// How long to go on generating cases (`90s`, `2m`).
    #[arg(long, value_name = "DURATION")]
    time: Option<DurationValue>,
    /// The search's seed: the same seed generates the same cases in the same
    /// order (default: drawn and printed).
    #[arg(long, value_name = "N")]
    seed: Option<Seed>,
    /// Cases to run at once, each in its own lab (default: twelve per core,
    /// at most 32, as `run`); only as many labs as half the host's neighbour
    /// table has room for run together.
    #[arg(long, short, default_value_t = fip_harness::runner::default_jobs())]
    jobs: usize,
    /// Who programs the routes: the harness's model (the default here: fast)
    /// or BIRD, as Calico.
    #[arg(long, value_enum, default_value = "model")]
    routing: super::routing::RoutingArg,
    /// Most cases to run while shrinking a failure.
    #[arg(long, value_name = "N", default_value_t = 400)]
    max_shrink_runs: u32,
    /// Where the shrunk scenario (and the CNI configs it names) is written.
    #[arg(long, default_value = "reports/explore")]
    report_dir: PathBuf,
    /// Run a case in a lab an earlier case of the same shape left, reset in
    /// between (by default every case builds its own lab: today's reset
    /// costs more than a build, docs/benchmarks.md).
    #[arg(long)]
    reuse_labs: bool,
    /// After every reset, compare the lab's fingerprint with the lab as
    /// built; a difference fails the run (for CI and debugging).
    #[arg(long, requires = "reuse_labs")]
    check_reset: bool,
    #[command(flatten)]
    calico: super::choices::CalicoArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.calico.apply();
    args.calico.check_backend(match &args.dataplane {
        DataplaneChoice::Exec(_) => None,
        other => Some(other.base()),
    })?;
    super::require_root_to_run_scenarios()?;
    let seed = args.seed.unwrap_or_else(Seed::random);
    let budget = match (args.budget, args.time) {
        (_, Some(time)) => Budget::Time(time.0),
        (Some(n), None) => Budget::Cases(n),
        (None, None) => Budget::Cases(100),
    };
    let dir = ExploreDir::create(&args.report_dir)
        .with_context(|| format!("creating {}", args.report_dir.display()))?;
    super::signals::tear_down_labs_on_ctrl_c(|_| {
        eprintln!("interrupted: the labs of the running cases were removed");
    });
    let judge = RunJudge {
        dir: dir.clone(),
        dataplane: args.dataplane.clone(),
        options: RunOptions {
            routing: args.routing.into(),
            seed: Some(seed),
            ..RunOptions::default()
        },
        labs: args.reuse_labs.then(|| LabPool::new(args.check_reset)),
        bundles: Some(dir.path.join("bundles")),
    };
    let limits = ShrinkLimits {
        max_runs: args.max_shrink_runs,
        ..ShrinkLimits::default()
    };
    let search = Search {
        dir: &dir,
        seed,
        budget,
        jobs: args.jobs,
        limits,
        dataplane: args.dataplane.to_string(),
        seed_flag: "--seed",
    };
    let found = search.run_and_report(&judge, "exploring")?;
    let leaks = judge.reset_leaks();
    if let Some(labs) = &judge.labs {
        let counts = labs.counts();
        say!(
            "labs: {} built, {} reused (reset in between{}), {} reset(s) failed",
            counts.built,
            counts.reused,
            if args.check_reset {
                ", each reset lab checked against its fingerprint as built"
            } else {
                ""
            },
            counts.reset_failures
        );
    }
    drop(judge);
    if !leaks.is_empty() {
        say!(
            "a reused lab was not as built after its reset ({} difference(s)):",
            leaks.len()
        );
        for leak in &leaks {
            say!("  {leak}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(if found {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One search and what it printed: `explore`'s whole output, and the
/// exploration part of `conform`'s.
pub(super) struct Search<'a> {
    pub dir: &'a ExploreDir,
    pub seed: Seed,
    pub budget: Budget,
    pub jobs: usize,
    pub limits: ShrinkLimits,
    pub dataplane: String,
    /// The option that gives the seed back (`--seed`, `--explore-seed`).
    pub seed_flag: &'static str,
}

impl Search<'_> {
    /// Search with `judge`, print the outcome, write the shrunk case;
    /// whether a case failed.
    pub fn run_and_report(&self, judge: &dyn Judge, what: &str) -> anyhow::Result<bool> {
        say!(
            "{what} {} ({}), seed {}, {} at a time",
            self.dataplane,
            describe(self.budget),
            self.seed.0,
            self.jobs.max(1)
        );
        let outcome = explore::search(
            self.seed,
            self.budget,
            self.jobs,
            judge,
            self.limits,
            &|index, judged| {
                if let Judgement::Fail(_) = judged {
                    say!("case {index} fails: shrinking it");
                }
            },
        );
        super::signals::defer_to_interrupt_handler();
        let minutes = outcome.elapsed.as_secs_f64() / 60.0;
        say!(
            "{} case(s) in {:.1} s ({:.0} a minute): {} passed, {} not judged; {} operation(s) the model left out",
            outcome.cases,
            outcome.elapsed.as_secs_f64(),
            outcome.cases as f64 / minutes.max(f64::EPSILON),
            outcome.passed,
            outcome.not_judged,
            outcome.left_out
        );
        if let Some(reason) = &outcome.not_judged_reason {
            say!("first case not judged: {}", first_line(reason));
        }
        let Some(shrunk) = &outcome.failure else {
            say!(
                "no failure on {} (seed {}: `{} {}` replays this search)",
                self.dataplane,
                self.seed.0,
                self.seed_flag,
                self.seed.0
            );
            return Ok(false);
        };
        let path = explore::write_finding(self.dir, self.seed, &self.dataplane, shrunk)
            .context("writing the shrunk scenario")?;
        let (steps, ..) = explore::search::size(&shrunk.shrunk);
        say!(
            "FAIL case {} on {} (found after {:.1} s), shrunk from {} to {steps} step(s) in {} run(s) ({:.1} s){}",
            shrunk.index,
            self.dataplane,
            outcome.time_to_failure.unwrap_or_default().as_secs_f64(),
            shrunk.found.steps.len(),
            shrunk.runs,
            shrunk.shrink_time.as_secs_f64(),
            if shrunk.confirmed { "" } else { " (did not fail again: flaky?)" }
        );
        for line in shrunk.reason.lines() {
            say!("    {line}");
        }
        say!("shrunk scenario: {}", path.display());
        say!(
            "replay it: fip-harness run {} --dataplane {}",
            path.display(),
            shell_word(&self.dataplane)
        );
        Ok(true)
    }
}

fn describe(budget: Budget) -> String {
    match budget {
        Budget::Cases(n) => format!("{n} case(s)"),
        Budget::Time(t) => format!("for {}", seconds(t)),
    }
}

fn seconds(t: Duration) -> String {
    format!("{:.0} s", t.as_secs_f64())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn shell_word(text: &str) -> String {
    shlex::try_quote(text)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| text.to_string())
}
