//! `fip-harness validate`: check scenario files, print every error as
//! `file:line:col: message`, exit non-zero on any.

use std::path::PathBuf;
use std::process::ExitCode;

use fip_harness::scenario::load_catalogue;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
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
    let catalogue = load_catalogue(&args.paths);
    for error in &catalogue.errors {
        eprintln!("{error}");
    }
    // Warnings do not fail validation: Calico accepts what they point at.
    for warning in catalogue.scenarios.iter().flat_map(|s| &s.warnings) {
        eprintln!("{warning}");
    }
    if catalogue.errors.is_empty() {
        println!("{} scenario(s) valid", catalogue.scenarios.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} error(s); {} scenario(s) valid",
            catalogue.errors.len(),
            catalogue.scenarios.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
