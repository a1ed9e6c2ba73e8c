//! `fip-harness run`: run scenarios, each case in a lab of its own, print
//! progress and failures, and write JUnit XML, a JSON summary and report.html.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use fip_harness::report::{
    render_html, render_junit, write_summary, write_text, Interrupted, RunSummary, ScenarioResult,
    SummaryFile,
};
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{self, LabNaming, PlanFilter, PlannedCase, RunOptions};
use fip_harness::seed::Seed;

use super::choices::{Backend, Profile};
use super::progress::{Progress, Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Only the scenarios whose name or a tag matches REGEX (`!REGEX`: the others).
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Cases to run at once, each in its own lab (default: twelve per core, at
    /// most 32); the longest start first, and only as many labs as the
    /// host's neighbour table has room for run together.
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Leave the lab of a failing case up, and say how to get into it. With a
    /// value, the lab is named after it: the name itself for one case, a
    /// prefix (at most 8 characters) when the run has several.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    keep_on_failure: Option<String>,
    /// Fix every random choice (SCTP tags and TSNs, source ports, lab
    /// names); default: drawn, printed and written to the reports, so that
    /// `--seed` replays a run.
    #[arg(long, value_name = "N")]
    seed: Option<Seed>,
    /// Print the summary (summary.json's content) on stdout instead of lines;
    /// the lines go to stderr.
    #[arg(long)]
    json: bool,
    /// Only this dataplane backend (default: each scenario's own list).
    #[arg(long, value_enum, conflicts_with = "dataplane")]
    backend: Option<Backend>,
    /// Only this dataplane: a built-in backend by name, `mutant:<name>` (a
    /// deliberately broken one, see `fip-harness mutants --list`), or
    /// `exec:PATH [ARGS]`, an external driver on every node
    /// (docs/driver-protocol.md; quote the whole choice for the shell).
    #[arg(long, value_name = "DATAPLANE")]
    dataplane: Option<DataplaneChoice>,
    /// Only this conntrack profile (default: each scenario's own list).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Who programs the routes: BIRD, as Calico, or the harness's model.
    #[arg(long, value_enum, default_value_t)]
    routing: super::routing::RoutingArg,
    /// Where junit.xml, summary.json and diagnostics bundles go.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Do not check the scenarios' expectations of traffic against the
    /// Calico model's prediction (a scenario the model disagrees with runs,
    /// and its run is judged against what it says).
    #[arg(long)]
    skip_model_check: bool,
    #[command(flatten)]
    calico: super::choices::CalicoArg,
}

impl Args {
    /// The one dataplane asked for, if any (else each scenario's own list).
    pub(super) fn dataplane_choice(&self) -> Option<DataplaneChoice> {
        self.dataplane
            .clone()
            .or_else(|| self.backend.map(|b| DataplaneChoice::Builtin(b.into())))
    }
}

impl Args {
    /// The backend a built-in or mutant choice runs on (a driver stands in
    /// for whichever Felix the scenario's release has).
    fn builtin_base(&self) -> Option<fip_harness::dataplane::BackendKind> {
        let chosen = self.dataplane_choice().filter(|c| !c.is_exec());
        chosen.map(|c| c.base())
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    fip_harness::scenario::check_expectations_against_model(!args.skip_model_check);
    args.calico.apply_checking(args.builtin_base())?;
    super::require_root_to_run_scenarios()?;
    let cases = planned_cases(&args)?;
    std::fs::create_dir_all(&args.report_dir)
        .with_context(|| format!("creating {}", args.report_dir.display()))?;
    let started = Instant::now();
    let total = cases.len();
    let results = Arc::new(Mutex::new(Vec::<ScenarioResult>::new()));
    report_on_interrupt(
        Arc::clone(&results),
        args.report_dir.clone(),
        started,
        total,
    );

    let seed = args.seed.unwrap_or_else(Seed::random);
    let options = RunOptions {
        report_dir: Some(args.report_dir.clone()),
        keep_on_failure: args.keep_on_failure.is_some(),
        routing: args.routing.into(),
        seed: Some(seed),
        naming: lab_naming(args.keep_on_failure.as_deref(), total)?,
    };
    let json = args.json;
    // With --json, stdout carries the summary alone.
    let line = |text: &str| {
        if json {
            eprintln!("{text}");
        } else {
            say!("{text}");
        }
    };
    let jobs = args.jobs.unwrap_or_else(runner::default_jobs).max(1);
    line(&format!(
        "running {total} case(s), {jobs} at a time, seed {seed}"
    ));
    let style = if json {
        Style {
            colour: false,
            status_line: false,
        }
    } else {
        Style::from_environment()
    };
    let progress = Progress::new(style, total);
    let on_start = |case: &PlannedCase| progress.started(&case.test_name());
    let on_finish = |case: &PlannedCase, result: &ScenarioResult| {
        let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
        // Once interrupted, a case whose lab was removed under it did not
        // finish; checked under the lock the handler reads with.
        if fip_harness::lab::signals::is_cancelled() {
            return;
        }
        if json {
            eprint!("{}", result_lines(result));
        } else {
            progress.finished(&case.test_name(), &result_lines(result));
        }
        results.push(result.clone());
    };
    let before = runner::PhaseTimes::now();
    runner::run_cases_with(&cases, jobs, &options, &on_start, &on_finish);
    let spent = runner::PhaseTimes::now().since(before);
    super::signals::defer_to_interrupt_handler();
    progress.clear();
    let results = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let summary = write_reports(&args.report_dir, results, started, None)?;
    for (backend, median) in &summary.median_convergence_ms {
        line(&format!(
            "median migration convergence ({backend}, {} routing): {median:.1} ms",
            options.routing
        ));
    }
    line(&spent.breakdown(started.elapsed()));
    line(&format!(
        "reports: {}, {} and {} ({:.1} s)",
        args.report_dir.join("junit.xml").display(),
        args.report_dir.join("summary.json").display(),
        args.report_dir.join("report.html").display(),
        summary.duration_ms as f64 / 1000.0
    ));
    line(&format!(
        "{} passed, {} failed (seed {seed}: `--seed {seed}` replays the same random choices)",
        summary.passed, summary.failed
    ));
    if json {
        say!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Once interrupted (the labs are already gone: the handler removes them
/// first), write the reports of the cases that finished, saying so.
fn report_on_interrupt(
    results: Arc<Mutex<Vec<ScenarioResult>>>,
    report_dir: PathBuf,
    started: Instant,
    total: usize,
) {
    super::signals::tear_down_labs_on_ctrl_c(move |code| {
        let finished = results.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let interrupted = Interrupted {
            signal: if code == 130 { "SIGINT" } else { "SIGTERM" }.to_string(),
            planned: total,
        };
        eprintln!(
            "{}; the labs of the others were removed",
            interrupted.line(finished.len())
        );
        match write_reports(&report_dir, finished, started, Some(interrupted)) {
            Ok(summary) => eprintln!(
                "reports of the finished cases: {} and {} ({} passed, {} failed)",
                report_dir.join("junit.xml").display(),
                report_dir.join("summary.json").display(),
                summary.passed,
                summary.failed
            ),
            Err(error) => eprintln!("error: {error:#}"),
        }
    });
}

/// Write junit.xml, summary.json (with a file per case under `cases/`) and
/// report.html for `results` to `dir`; summary.json's content is returned.
fn write_reports(
    dir: &Path,
    mut results: Vec<ScenarioResult>,
    started: Instant,
    interrupted: Option<Interrupted>,
) -> anyhow::Result<SummaryFile> {
    results.sort_by_key(|r| r.case_name());
    let mut summary = RunSummary::new(results, started.elapsed().as_millis() as u64);
    summary.interrupted = interrupted;
    let junit = render_junit(&summary).context("rendering JUnit XML")?;
    let junit_path = dir.join("junit.xml");
    write_text(&junit_path, &junit)?;
    let file = write_summary(dir, &summary)?;
    let html_path = dir.join("report.html");
    write_text(&html_path, &render_html(&summary, "fip-harness run"))?;
    Ok(file)
}

/// How the labs of `total` cases are named: after `--keep-on-failure=NAME`
/// when given (the name for one case, a prefix for several), else made up.
fn lab_naming(keep: Option<&str>, total: usize) -> anyhow::Result<LabNaming> {
    Ok(match keep {
        None | Some("") => LabNaming::MadeUp,
        Some(name) if total == 1 => {
            fip_harness::lab::spec::check_lab_name(name)?;
            LabNaming::Exact(name.to_string())
        }
        Some(prefix) => {
            runner::check_prefix(prefix).map_err(anyhow::Error::msg)?;
            LabNaming::Prefix(prefix.to_string())
        }
    })
}

/// A case's verdict line and, when it failed, its checks indented below.
pub(super) fn result_lines(result: &ScenarioResult) -> String {
    let verdict = if result.head.outcome.is_pass() {
        "PASS"
    } else {
        "FAIL"
    };
    let mut line = format!(
        "{verdict} {} ({:.2} s)",
        result.case_name(),
        result.head.duration_ms as f64 / 1000.0
    );
    for migration in &result.migrations {
        if let Some(ms) = migration.figures.convergence_ms {
            line.push_str(&format!(
                " [move {} -> {}: converged in {ms:.1} ms ({} routing), lost {}, {} late at the old pod]",
                migration.from_pod,
                migration.to_pod,
                result.head.routing,
                migration.figures.lost,
                migration.figures.late_at_old_pod
            ));
        }
    }
    line.push('\n');
    if !result.head.outcome.is_pass() {
        for text in result.failure_text().lines() {
            line.push_str(&format!("    {text}\n"));
        }
    }
    line
}

/// The cases `args` select, their scenarios' warnings printed once each; an
/// error when a scenario does not load or none matches.
fn planned_cases(args: &Args) -> anyhow::Result<Vec<PlannedCase>> {
    let filter = super::scenario_filter(args.filter.as_deref(), "--filter")?;
    let plan_filter = PlanFilter {
        dataplane: args.dataplane_choice(),
        profile: args.profile.map(Into::into),
        routing: args.routing.into(),
    };
    let cases: Vec<PlannedCase> = match runner::plan(&args.paths, &plan_filter) {
        Ok(cases) => cases,
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            anyhow::bail!(
                "{} error(s) in the scenarios; nothing was run",
                errors.len()
            );
        }
    }
    .into_iter()
    .filter(|case| filter.as_ref().is_none_or(|f| f.keeps(&case.scenario)))
    .collect();
    if cases.is_empty() {
        anyhow::bail!("no scenario matches");
    }
    // Once per scenario, not per backend and profile.
    let mut warned = std::collections::BTreeSet::new();
    for case in &cases {
        if warned.insert(&case.scenario.name) {
            for warning in &case.scenario.warnings {
                eprintln!("{warning}");
            }
        }
    }
    Ok(cases)
}
