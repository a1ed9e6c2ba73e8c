//! `fip-harness replay LAB SCENARIO --from-step N`: run a scenario's steps from
//! step N on against a lab `up --until-step N` (or `run --keep-on-failure`)
//! left, and print the same lines `run` prints. The lab is kept, in the state
//! the steps leave it, for another look or another replay after `up` again.

use std::path::PathBuf;
use std::process::ExitCode;

use fip_harness::bgp::RoutingMode;
use fip_harness::dataplane::BackendKind;
use fip_harness::report::RunSummary;
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{self, RunOptions, UpRecord};
use fip_harness::seed::Seed;

use super::choices::{Backend, Profile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kept lab (`fip-harness ls`).
    pub(super) lab: String,
    /// The scenario file the lab was brought up from.
    scenario: PathBuf,
    /// The first step to run (1-based); the steps before it are taken as done.
    #[arg(long, value_name = "N")]
    from_step: usize,
    /// Dataplane backend (default: the one `up` used).
    #[arg(long, value_enum, conflicts_with = "dataplane")]
    backend: Option<Backend>,
    /// Any dataplane, built-in or `mutant:<name>` (default: the one `up` used).
    #[arg(long, value_name = "DATAPLANE")]
    dataplane: Option<DataplaneChoice>,
    /// Conntrack profile (default: the one `up` used).
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Routing (default: the one `up` used).
    #[arg(long, value_enum)]
    routing: Option<super::routing::RoutingArg>,
    /// Fix every random choice (default: the seed `up` used).
    #[arg(long, value_name = "N")]
    seed: Option<Seed>,
    /// Where the diagnostics bundle of a failing step goes.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Print the case's result as JSON (the shape of one case of `run --json`).
    #[arg(long)]
    json: bool,
    /// Do not check the scenarios' expectations of traffic against the
    /// Calico model's prediction (a scenario the model disagrees with runs,
    /// and its run is judged against what it says).
    #[arg(long)]
    skip_model_check: bool,
    #[command(flatten)]
    calico: super::choices::CalicoArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    fip_harness::scenario::check_expectations_against_model(!args.skip_model_check);
    args.calico.apply();
    super::require_root_to_run_scenarios()?;
    let scenario = super::load_one_scenario(&args.scenario)?;
    let record = UpRecord::read(&args.lab);
    let recorded = |what: &str| {
        anyhow::anyhow!(
            "lab `{}` has no record of how `up` made it: give --{what}",
            args.lab
        )
    };
    let dataplane = match (args.dataplane, args.backend, &record) {
        (Some(choice), _, _) => choice,
        (None, Some(backend), _) => BackendKind::from(backend).into(),
        (None, None, Some(record)) => record
            .dataplane
            .parse()
            .map_err(|e| anyhow::anyhow!("the dataplane `up` recorded: {e}"))?,
        (None, None, None) => return Err(recorded("backend")),
    };
    let profile = match (args.profile, &record) {
        (Some(profile), _) => profile.into(),
        (None, Some(record)) => record.profile,
        (None, None) => return Err(recorded("profile")),
    };
    let routing: RoutingMode = match (args.routing, &record) {
        (Some(routing), _) => routing.into(),
        (None, Some(record)) => record
            .routing
            .parse()
            .map_err(|e| anyhow::anyhow!("the routing `up` recorded: {e}"))?,
        (None, None) => return Err(recorded("routing")),
    };
    let seed = args
        .seed
        .or(record.as_ref().and_then(|r| r.seed))
        .unwrap_or_else(Seed::random);
    if let Some(until) = record.as_ref().and_then(|r| r.until_step) {
        if until != args.from_step {
            eprintln!(
                "warning: lab `{}` was left in the state before step {until}, not before step {}",
                args.lab, args.from_step
            );
        }
    }
    std::fs::create_dir_all(&args.report_dir)?;
    let options = RunOptions {
        report_dir: Some(args.report_dir.clone()),
        keep_on_failure: true,
        routing,
        seed: Some(seed),
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(runner::replay_in_lab(
        &scenario,
        &dataplane,
        profile,
        &options,
        &args.lab,
        args.from_step,
    ));
    let passed = result.head.outcome.is_pass();
    if args.json {
        let summary = RunSummary::new(vec![result], 0);
        say!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        say!(
            "replaying steps {} to {} of {} in lab `{}` ({dataplane}, {routing} routing, seed {seed})",
            args.from_step,
            scenario.steps.len(),
            scenario.name,
            args.lab
        );
        say!("{}", super::run::result_lines(&result).trim_end());
        if passed {
            say!(
                "lab `{}` is kept: `fip-harness state {0}`, `fip-harness down {0}`",
                args.lab
            );
        }
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
