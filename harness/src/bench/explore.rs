//! `bench explore`: generated cases a minute, as `explore` runs them (in
//! process, `--jobs` at a time), against the baseline a person would use
//! without it: the same cases written as scenario files and run by
//! `fip-harness run`, one lab per case. Prints the share of the explorer's
//! case time spent building labs, carrying out pod steps (control plane and
//! dataplane) and sending traffic, and the machine's load.

use std::path::Path;
use std::time::{Duration, Instant};

use super::error::Context;

use crate::explore::{search, yaml, Budget, ExploreDir, RunJudge, ShrinkLimits};
use crate::runner::{DataplaneChoice, LabPool, PhaseTimes, RunOptions};
use crate::seed::Seed;

use super::figures::{print_load, print_target};

/// The target: explored cases a minute on a 2-core machine.
const TARGET_PER_MINUTE: f64 = 1000.0;

/// What `bench explore` measures (the CLI's flags of the same names).
#[derive(Debug, Clone)]
pub struct Options {
    /// Cases to generate (the same ones for both runs).
    pub cases: u64,
    /// Cases at a time, for the explorer and for `run --jobs`.
    pub jobs: usize,
    /// The dataplane both run on.
    pub dataplane: DataplaneChoice,
    /// The cases' seed.
    pub seed: Seed,
    /// Run a case in a lab an earlier case of its shape left, reset in
    /// between (`explore --reuse-labs`), or build a lab per case (the default).
    pub reuse_labs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cases: 60,
            jobs: 2,
            dataplane: DataplaneChoice::Builtin(crate::vocab::BackendKind::NftMaps),
            seed: Seed(1),
            reuse_labs: false,
        }
    }
}

/// Run the benchmark. The baseline runs this process's own executable as
/// `fip-harness run`: call it from the `fip-harness` binary.
pub fn run(args: Options) -> super::Result<()> {
    let scratch = std::env::temp_dir().join(format!("fip-bench-explore-{}", std::process::id()));
    let dir = ExploreDir::create(&scratch).context("writing the CNI configs")?;
    let measured = measure(&args, &dir);
    let _ = std::fs::remove_dir_all(&scratch);
    measured
}

fn measure(args: &Options, dir: &ExploreDir) -> super::Result<()> {
    say!(
        "bench explore: {} generated case(s) (seed {}) on {}, {} at a time, model routing",
        args.cases,
        args.seed.0,
        args.dataplane,
        args.jobs
    );
    print_load("start");
    let judge = RunJudge {
        dir: dir.clone(),
        dataplane: args.dataplane.clone(),
        options: RunOptions {
            routing: crate::vocab::RoutingMode::Model,
            seed: Some(args.seed),
            ..RunOptions::default()
        },
        labs: args.reuse_labs.then(|| LabPool::new(false)),
        bundles: None,
    };
    let before = PhaseTimes::now();
    let outcome = search(
        args.seed,
        Budget::Cases(args.cases),
        args.jobs,
        &judge,
        ShrinkLimits {
            max_runs: 0,
            max_time: Duration::ZERO,
        },
        &|_, _| {},
    );
    let counts = judge.labs.as_ref().map(LabPool::counts);
    drop(judge);
    let phases = PhaseTimes::now().since(before);
    let explorer = per_minute(outcome.cases, outcome.elapsed);
    say!(
        "explorer: {} case(s) in {:.1} s = {explorer:.0} a minute ({} passed, {} not judged{})",
        outcome.cases,
        outcome.elapsed.as_secs_f64(),
        outcome.passed,
        outcome.not_judged,
        if outcome.failure.is_some() {
            ", a failure: the search stopped there"
        } else {
            ""
        }
    );
    if let Some(counts) = counts {
        say!(
            "labs: {} built, {} reused (reset in between), {} reset(s) failed",
            counts.built,
            counts.reused,
            counts.reset_failures
        );
    } else {
        say!("labs: one built for each case (--reuse-labs reuses them)");
    }
    print_shares(&phases);
    let (baseline_cases, baseline_time) = baseline(args, &dir.path, outcome.cases)?;
    let baseline = per_minute(baseline_cases, baseline_time);
    say!(
        "baseline: the same {baseline_cases} case(s) as files through `fip-harness run --jobs {}` (one lab per case) in {:.1} s = {baseline:.0} a minute",
        args.jobs,
        baseline_time.as_secs_f64()
    );
    say!(
        "ratio: {:.2}x the baseline",
        explorer / baseline.max(f64::EPSILON)
    );
    print_load("end");
    print_target(
        &format!("{TARGET_PER_MINUTE:.0} explored cases a minute"),
        &format!("{explorer:.0} a minute"),
        explorer >= TARGET_PER_MINUTE,
    );
    Ok(())
}

fn per_minute(cases: u64, time: Duration) -> f64 {
    cases as f64 * 60.0 / time.as_secs_f64().max(f64::EPSILON)
}

fn print_shares(phases: &PhaseTimes) {
    let total = phases.total().as_secs_f64().max(f64::EPSILON);
    let share = |d: Duration| 100.0 * d.as_secs_f64() / total;
    say!(
        "explorer's case time (summed over jobs, {:.1} s): building and removing labs {:.0}%, resetting reused labs {:.0}%, pod steps (control plane and dataplane) {:.0}%, traffic {:.0}%",
        total,
        share(phases.lab),
        share(phases.reset),
        share(phases.pods),
        share(phases.traffic())
    );
    say!(
        "  traffic: sends answered or delivered {:.0}%, sends expecting silence (waiting out their windows) {:.0}%, streams and waits {:.0}%",
        share(phases.sends),
        share(phases.silent),
        share(phases.streams)
    );
}

/// The first `cases` cases as files in `folder`, run by `fip-harness run`.
fn baseline(args: &Options, folder: &Path, cases: u64) -> super::Result<(u64, Duration)> {
    let files = folder.join("baseline");
    std::fs::create_dir_all(&files)?;
    std::fs::create_dir_all(files.join("cni"))?;
    for file in [yaml::CNI_ON, yaml::CNI_OFF] {
        std::fs::copy(folder.join(file), files.join(file))?;
    }
    for index in 0..cases {
        let script = crate::explore::script::script(&search::case(args.seed, index));
        let name = format!("bench-{index}");
        std::fs::write(
            files.join(format!("{name}.yaml")),
            yaml::render(&script, &name, &[]),
        )?;
    }
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg(&files)
        .args(["--dataplane", &args.dataplane.to_string()])
        .args(["--routing", "model", "--jobs", &args.jobs.to_string()])
        .arg("--seed")
        .arg(args.seed.0.to_string())
        .arg("--report-dir")
        .arg(folder.join("baseline-reports"))
        .output()
        .context("running fip-harness run")?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let ran = stdout
        .lines()
        .filter(|l| l.starts_with("PASS ") || l.starts_with("FAIL "))
        .count() as u64;
    Ok((ran, elapsed))
}
