//! `fip-harness schema`: print the JSON Schema of scenario files, the one
//! committed as schema/scenario.schema.json for editors; with `--driver`, that
//! of the driver protocol (schema/driver-protocol.schema.json).

use std::io::Write;
use std::process::ExitCode;

use fip_harness::scenario::scenario_schema_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The driver protocol's schema instead of the scenario files'.
    #[arg(long)]
    driver: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schema = if args.driver {
        fip_harness::driver::driver_schema_json()
    } else {
        scenario_schema_json()
    };
    std::io::stdout().write_all(schema.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
