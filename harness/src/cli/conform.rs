//! `fip-harness conform`: run the catalogue on a vendor's dataplane and on
//! the reference in one run, compare what each observed, and write
//! conform.json, junit.xml and report.html beside a one-line verdict.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fip_harness::conform;
use fip_harness::conform::ConformJudge;
use fip_harness::explore::{Budget, ExploreDir, RunJudge, ShrinkLimits};
use fip_harness::runner::{DataplaneChoice, RunOptions};
use fip_harness::scenario::DurationValue;
use fip_harness::seed::Seed;

use super::progress::{Progress, Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dataplane to judge: a built-in backend by name or `mutant:<name>`
    /// (and, with the driver protocol, `exec:PATH [ARGS]`).
    #[arg(long, value_name = "DATAPLANE")]
    pub(super) dataplane: DataplaneChoice,
    /// The catalogue: scenario files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// A folder of scenarios of your own, run beside the catalogue (repeat for more).
    #[arg(long = "scenarios", value_name = "DIR")]
    extra: Vec<PathBuf>,
    /// Only the scenarios whose name or a tag matches REGEX (`!REGEX`: the others).
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Cases to run at once, each in its own lab.
    #[arg(long, short, default_value_t = 6)]
    jobs: usize,
    /// Who programs the routes: BIRD, as Calico, or the harness's model.
    #[arg(long, value_enum, default_value_t)]
    routing: super::routing::RoutingArg,
    /// Where conform.json, junit.xml, report.html and diagnostics bundles go.
    #[arg(long, default_value = "reports/conform")]
    report_dir: PathBuf,
    /// After the catalogue, explore generated cases on both dataplanes for
    /// this long (`2m`; `0s` skips it); reported apart from the catalogue.
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    explore_time: DurationValue,
    /// The exploration's seed (default: drawn and printed).
    #[arg(long, value_name = "N")]
    explore_seed: Option<Seed>,
    #[command(flatten)]
    calico: super::choices::CalicoArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let release = args.calico.apply();
    args.calico.check_backend(match &args.dataplane {
        DataplaneChoice::Builtin(kind) => Some(*kind),
        _ => None,
    })?;
    super::require_root_to_run_scenarios()?;
    let filter = super::scenario_filter(args.filter.as_deref(), "--filter")?;
    let paths: Vec<PathBuf> = args.paths.iter().chain(&args.extra).cloned().collect();
    let routing = args.routing.into();
    let pairs = conform::plan_pairs(&paths, args.dataplane.clone(), routing, filter.as_ref())
        .map_err(|errors| {
            for error in &errors {
                eprintln!("{error}");
            }
            anyhow::anyhow!(
                "{} error(s) in the scenarios; nothing was run",
                errors.len()
            )
        })?;
    if pairs.is_empty() {
        anyhow::bail!("no scenario matches");
    }
    std::fs::create_dir_all(&args.report_dir)
        .with_context(|| format!("creating {}", args.report_dir.display()))?;
    super::signals::tear_down_labs_on_ctrl_c(|_| {
        eprintln!("interrupted: the labs of the running cases were removed; no report written");
    });
    let options = RunOptions {
        report_dir: Some(args.report_dir.clone()),
        keep_on_failure: false,
        routing,
        ..RunOptions::default()
    };
    let vendor = &pairs[0].vendor.dataplane;
    say!(
        "{} case(s) on {vendor} and on the reference ({}), {} at a time",
        pairs.len(),
        conform::REFERENCE,
        args.jobs.max(1)
    );
    say!("{}", conform::release_line(release, &pairs));
    let progress = Progress::new(Style::from_environment(), pairs.len() * 2);
    let report = conform::run_conformance(vendor, &pairs, args.jobs, &options, &|case, result| {
        let verdict = if result.head.outcome.is_pass() {
            "PASS"
        } else {
            "FAIL"
        };
        progress.finished(
            &case.test_name(),
            &format!(
                "{verdict} {} ({:.2} s)\n",
                result.case_name(),
                result.head.duration_ms as f64 / 1000.0
            ),
        );
    });
    super::signals::defer_to_interrupt_handler();
    progress.clear();
    conform::write_conform_reports(&args.report_dir, &report)?;
    say!("{}", report.render_text().trim_end());
    say!(
        "reports: {}, {} and {} ({:.1} s)",
        args.report_dir.join("conform.json").display(),
        args.report_dir.join("junit.xml").display(),
        args.report_dir.join("report.html").display(),
        report.duration_ms as f64 / 1000.0
    );
    let explored_difference = explore(&args, &pairs[0].vendor.dataplane, routing)?;
    Ok(if report.conformant && !explored_difference {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The exploration after the catalogue: whether a generated case differed.
fn explore(
    args: &Args,
    vendor: &DataplaneChoice,
    routing: fip_harness::bgp::RoutingMode,
) -> anyhow::Result<bool> {
    if args.explore_time.0.is_zero() {
        return Ok(false);
    }
    let path = args.report_dir.join("explore");
    let dir = ExploreDir::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let seed = args.explore_seed.unwrap_or_else(Seed::random);
    let judge = ConformJudge {
        vendor: RunJudge {
            dir: dir.clone(),
            dataplane: vendor.clone(),
            options: RunOptions {
                routing,
                seed: Some(seed),
                ..RunOptions::default()
            },
            labs: None,
            bundles: None,
        },
    };
    say!("");
    let search = super::explore::Search {
        dir: &dir,
        seed,
        budget: Budget::Time(args.explore_time.0),
        jobs: args.jobs,
        limits: ShrinkLimits::default(),
        dataplane: vendor.to_string(),
        seed_flag: "--explore-seed",
    };
    search.run_and_report(&judge, "exploration: generated cases on")
}
