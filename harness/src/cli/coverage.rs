//! `fip-harness coverage`: which pairs of floating-IP behaviour dimensions the
//! scenarios exercise, which no case can (and why), and the holes.

use std::path::PathBuf;
use std::process::ExitCode;

use fip_harness::coverage::coverage_of;
use fip_harness::scenario::load_catalogue;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Print the whole table as JSON: every pair of values, the scenarios
    /// that cover it or why none can.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let catalogue = load_catalogue(&args.paths);
    if !catalogue.errors.is_empty() {
        for error in &catalogue.errors {
            eprintln!("{error}");
        }
        anyhow::bail!(
            "{} error(s) in the scenarios; no coverage computed",
            catalogue.errors.len()
        );
    }
    let coverage = coverage_of(&catalogue.scenarios);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&coverage)?);
    } else {
        print!("{}", coverage.render_text());
    }
    Ok(ExitCode::SUCCESS)
}
