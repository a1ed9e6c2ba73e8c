//! `fip-harness up`: build a scenario's cluster, apply its pod and annotation
//! steps through the control plane (or, with `--until-step N`, every step
//! before N as `run` does), and leave the lab running for people to explore
//! with `exec`, `state` and their own tools, or to `replay` the rest in.

use std::path::PathBuf;
use std::process::ExitCode;

use fip_harness::calico::Behaviour;
use fip_harness::dataplane::BackendKind;
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{self, LabNaming, RunOptions, UpRecord};
use fip_harness::scenario::Scenario;
use fip_harness::seed::Seed;
use fip_harness::text::printable;

use super::choices::{Backend, Profile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file whose cluster to build.
    scenario: PathBuf,
    /// Lab name ([a-z0-9], at most 12); default: one made up.
    #[arg(long, conflicts_with = "prefix")]
    name: Option<String>,
    /// Make the lab's name up from this prefix ([a-z0-9], at most 8) and a
    /// few characters of its own.
    #[arg(long)]
    prefix: Option<String>,
    /// Dataplane backend [default: the scenario's release of Felix:
    /// nftables from v3.29, iptables before].
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Any dataplane, built-in, `mutant:<name>` or `exec:PATH [ARGS]`
    /// (overrides --backend).
    #[arg(long, value_name = "DATAPLANE")]
    dataplane: Option<DataplaneChoice>,
    /// Conntrack profile.
    #[arg(long, value_enum, default_value_t = Profile::Calico)]
    profile: Profile,
    /// Who programs the routes: BIRD, as Calico, or the harness's model.
    #[arg(long, value_enum, default_value_t)]
    routing: super::routing::RoutingArg,
    /// Bring the lab to the state before step N (1-based, as failures number
    /// them): every earlier step runs as in `run`, traffic and checks
    /// included; `replay LAB SCENARIO --from-step N` runs the rest.
    #[arg(long, value_name = "N")]
    until_step: Option<usize>,
    /// Fix every random choice (SCTP tags and TSNs, source ports, the lab's
    /// name); default: drawn and printed.
    #[arg(long, value_name = "N")]
    seed: Option<Seed>,
    /// Do not check the scenarios' expectations of traffic against the
    /// Calico model's prediction (a scenario the model disagrees with runs,
    /// and its run is judged against what it says).
    #[arg(long)]
    skip_model_check: bool,
    #[command(flatten)]
    calico: super::choices::CalicoArg,
}

impl Args {
    /// The dataplane asked for: --dataplane, else --backend (`None`: the
    /// scenario's release decides).
    pub(super) fn dataplane_choice(&self) -> Option<DataplaneChoice> {
        self.dataplane
            .clone()
            .or_else(|| self.backend.map(|b| BackendKind::from(b).into()))
    }

    /// The dataplane the lab gets: the one asked for, else the backend of the
    /// scenario's release of Felix. A built-in or mutant nftables backend under
    /// a release before Felix's nftables mode (v3.29: felix/nftables/table.go,
    /// commit a91c52b83a) is refused, as `run` refuses it.
    fn dataplane_for(&self, scenario: &Scenario) -> anyhow::Result<DataplaneChoice> {
        let Some(choice) = self.dataplane_choice() else {
            return Ok(scenario.felix_backend().into());
        };
        let release = scenario.calico;
        if !choice.is_exec()
            && choice.base() == BackendKind::Nftables
            && !release.has(Behaviour::NftablesMode)
        {
            anyhow::bail!(
                "{}: no nftables backend: {}",
                scenario.source.display(),
                Behaviour::NftablesMode.missing_in(release)
            );
        }
        Ok(choice)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    fip_harness::scenario::check_expectations_against_model(!args.skip_model_check);
    args.calico.apply();
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("building a lab creates network namespaces and needs root (try sudo)");
    }
    let scenario = super::load_one_scenario(&args.scenario)?;
    if let Some(step) = args.until_step {
        runner::check_step_number(&scenario, step).map_err(anyhow::Error::msg)?;
    }
    if let Some(prefix) = &args.prefix {
        runner::check_prefix(prefix).map_err(anyhow::Error::msg)?;
    }
    let seed = args.seed.unwrap_or_else(Seed::random);
    let dataplane = args.dataplane_for(&scenario)?;
    let naming = match (args.name, args.prefix) {
        (Some(name), _) => LabNaming::Exact(name),
        (None, Some(prefix)) => LabNaming::Prefix(prefix),
        (None, None) => LabNaming::MadeUp,
    };
    let lab = naming.name_for(Some(seed), &scenario.name);
    super::signals::tear_down_labs_on_ctrl_c(move |_| {
        eprintln!("interrupted: the lab was removed");
    });
    let options = RunOptions {
        routing: args.routing.into(),
        seed: Some(seed),
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime
        .block_on(runner::bring_up(
            &scenario,
            &dataplane,
            args.profile.into(),
            &options,
            &lab,
            args.until_step,
        ))
        .map_err(|reason| anyhow::anyhow!("lab `{}`: {reason}", printable(&lab)))?;
    let record = UpRecord::of(
        &scenario,
        &dataplane,
        args.profile.into(),
        &options,
        args.until_step,
    );
    if let Err(error) = record.write(&lab) {
        eprintln!("warning: `replay` will need --backend/--profile/--routing/--seed: {error}");
    }
    say!("{}", report.overview.render().trim_end());
    for (node, rules) in &report.rules {
        say!("  NAT rules of {node} ({dataplane}):");
        for line in rules.lines() {
            say!("    {line}");
        }
    }
    for (stream, step) in &report.deferred_streams {
        say!(
            "stream `{stream}` (step {step}) would still run at step {}: not started; `replay` starts it",
            args.until_step.unwrap_or_default()
        );
    }
    let failed = !report.result.head.outcome.is_pass();
    if failed {
        for line in report.result.failure_text().lines() {
            say!("{line}");
        }
    }
    let replay = match args.until_step {
        Some(step) => format!(
            "\nrun the remaining steps in it with `fip-harness replay {lab} {} --from-step {step}`,",
            args.scenario.display()
        ),
        None => String::new(),
    };
    say!(
        "lab `{lab}` is up ({} dataplane, {} routing, seed {seed}). Get in with `fip-harness exec {lab} <member> -- <command>`,\n\
         see its NAT with `fip-harness state {lab}`,{replay} remove it with `fip-harness down {lab}`.",
        dataplane,
        options.routing,
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
