//! `fip-harness completions SHELL` and `fip-harness man`: generated from the
//! command definitions, so they never drift from the real arguments.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write every page (fip-harness.1, fip-harness-run.1, ...) into DIR instead
    /// of printing the top page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// The top page lists the subcommands; `--dir` adds a page per subcommand, as
/// man(1) finds them (`man fip-harness-run`).
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            clap_mangen::generate_to(command, &dir).with_context(|| dir.display().to_string())?;
            println!("man pages written to {}", dir.display());
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
