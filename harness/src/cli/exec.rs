//! `fip-harness exec <lab> <member> -- CMD...`: run a command inside a node,
//! pod, external host or the fabric of a lab, with this terminal's stdio.

use std::process::ExitCode;

use anyhow::Context;
use fip_harness::lab::netns::Netns;
use fip_harness::lab::spec::{check_lab_name, namespace_name, namespace_prefix};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lab name.
    pub(super) lab: String,
    /// Node, pod, external host, or `fabric`.
    member: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_lab_name(&args.lab)?;
    let prefix = namespace_prefix(&args.lab);
    let members: Vec<String> = Netns::list_with_prefix(&prefix)
        .iter()
        .filter_map(|ns| ns.strip_prefix(&prefix).map(str::to_string))
        .collect();
    if members.is_empty() {
        anyhow::bail!(
            "no lab named '{}' is up (`fip-harness ls` lists labs)",
            args.lab
        );
    }
    if !members.contains(&args.member) {
        anyhow::bail!(
            "lab '{}' has no member '{}'; its members: {}",
            args.lab,
            fip_harness::text::printable(&args.member),
            members.join(", ")
        );
    }
    let name = namespace_name(&args.lab, &args.member);
    let netns = Netns::open(&name).with_context(|| format!("opening {name}"))?;
    let status = netns
        .command(&args.command[0])
        .args(&args.command[1..])
        .status()
        .with_context(|| format!("running {:?} in {name}", args.command[0]))?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Killed by a signal: report it as the shell does.
        None => {
            use std::os::unix::process::ExitStatusExt;
            ExitCode::from(128u8.saturating_add(status.signal().unwrap_or(0) as u8))
        }
    })
}
