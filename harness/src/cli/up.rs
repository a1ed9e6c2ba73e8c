//! `fip-harness up`: build a scenario's cluster, apply its pod and annotation
//! steps through the control plane, and leave the lab running for people to
//! explore with `exec`, `state` and their own tools.

use std::path::PathBuf;
use std::process::ExitCode;

use fip_harness::dataplane::{BackendKind, DataplaneChoice};

use fip_harness::runner;
use fip_harness::scenario;

use super::choices::{Backend, Profile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file whose cluster to build.
    scenario: PathBuf,
    /// Lab name ([a-z0-9], at most 12); default: one made up.
    #[arg(long)]
    name: Option<String>,
    /// Dataplane backend.
    #[arg(long, value_enum, default_value_t = Backend::Nftables)]
    backend: Backend,
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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("building a lab creates network namespaces and needs root (try sudo)");
    }
    let scenario = match scenario::load_file(&args.scenario) {
        Ok(scenario) => scenario,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            anyhow::bail!("{} error(s) in {}", errors.0.len(), args.scenario.display());
        }
    };
    let lab = args.name.unwrap_or_else(runner::unique_lab_name);
    super::signals::tear_down_labs_on_ctrl_c(move |_| {
        eprintln!("interrupted: the lab was removed");
    });
    let dataplane = args
        .dataplane
        .unwrap_or_else(|| BackendKind::from(args.backend).into());
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime
        .block_on(runner::bring_up(
            &scenario,
            &dataplane,
            args.profile.into(),
            args.routing.into(),
            &lab,
        ))
        .map_err(|reason| anyhow::anyhow!("lab `{lab}`: {reason}"))?;
    say!("{}", summary.trim_end());
    say!(
        "lab `{lab}` is up ({} dataplane, {} routing). Get in with `fip-harness exec {lab} <member> -- <command>`,\n\
         see its NAT with `fip-harness state {lab}`, remove it with `fip-harness down {lab}`.",
        dataplane,
        fip_harness::bgp::RoutingMode::from(args.routing)
    );
    Ok(ExitCode::SUCCESS)
}
