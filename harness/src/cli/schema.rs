//! `fip-harness schema`: print the JSON Schema of scenario files, the one
//! committed as schema/scenario.schema.json for editors.

use std::io::Write;
use std::process::ExitCode;

use fip_harness::scenario::scenario_schema_json;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(scenario_schema_json().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
