//! `fip-harness describe-cli` (hidden): the command line's own definition, for
//! the test that holds README.md and docs/ to it (harness/tests/docs.rs).
//! Without `--parse` it prints every visible command with its long options;
//! with `--parse` it reads command lines as JSON arrays of arguments, one a
//! line on stdin, and answers each with `ok` or `error <kind>: <clap's
//! message>` (the kind as clap names it: `UnknownArgument`, ...), so
//! that a documented command is parsed by the very definition users meet.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde::Serialize;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Parse command lines (JSON arrays of the arguments after `fip-harness`,
    /// one a line on stdin) instead of describing the commands.
    #[arg(long)]
    parse: bool,
}

/// One visible command: its path under `fip-harness` and its long options.
#[derive(Serialize)]
struct Described {
    command: String,
    options: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if args.parse {
        for line in std::io::stdin().lock().lines() {
            let words: Vec<String> = serde_json::from_str(&line?)?;
            writeln!(out, "{}", parse_answer(&words))?;
        }
    } else {
        let mut command = Cli::command();
        command.build();
        let mut described = Vec::new();
        describe(&command, "", &mut described);
        writeln!(out, "{}", serde_json::to_string_pretty(&described)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `ok`, or clap's error kind and message on one line. Asking for help or the version is a
/// command line that works.
fn parse_answer(words: &[String]) -> String {
    let argv = std::iter::once("fip-harness").chain(words.iter().map(String::as_str));
    match Cli::try_parse_from(argv) {
        Ok(_) => "ok".into(),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            "ok".into()
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default().to_owned();
            format!(
                "error {:?}: {}",
                e.kind(),
                first.trim_start_matches("error: ")
            )
        }
    }
}

/// Every visible subcommand of `command` (not `help`), depth first.
fn describe(command: &clap::Command, path: &str, into: &mut Vec<Described>) {
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let name = format!("{path}{}", sub.get_name());
        let options = sub
            .get_arguments()
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .collect();
        into.push(Described {
            command: name.clone(),
            options,
        });
        describe(sub, &format!("{name} "), into);
    }
}
