//! `fip-harness down <lab>...|--all`: remove labs from their names alone.

use std::process::ExitCode;

use fip_harness::lab::down::{down_all, down_lab_with, DownReport, Owner};
use fip_harness::lab::registry::registry_labs;
use fip_harness::lab::rootless::other_users_lab;
use fip_harness::text::printable;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labs to remove.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    labs: Vec<String>,
    /// Remove every lab and every `fiph-` namespace on this host.
    #[arg(long)]
    all: bool,
    /// Also remove labs whose owning process still runs (a `run` in progress,
    /// a bring-up under way).
    #[arg(long)]
    force: bool,
}

impl Args {
    /// The one lab named, when just one is (not `--all`).
    pub(super) fn single_lab(&self) -> Option<&str> {
        match self.labs.as_slice() {
            [lab] if !self.all => Some(lab),
            _ => None,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.single_lab().is_none() && !nix::unistd::Uid::effective().is_root() {
        return one_child_per_lab(&args);
    }
    let owner = if args.force {
        Owner::Ignore
    } else {
        Owner::Respect
    };
    let reports: Vec<(String, DownReport)> = if args.all {
        vec![("--all".to_string(), down_all(owner))]
    } else {
        args.labs
            .iter()
            .map(|lab| (lab.clone(), down_lab_with(lab, owner)))
            .collect()
    };
    let mut failed = false;
    for (what, report) in reports {
        for ns in &report.removed_namespaces {
            println!("removed namespace {ns}");
        }
        for record in &report.removed_records {
            println!("removed record {}", record.display());
        }
        let nothing = report.removed_namespaces.is_empty()
            && report.removed_records.is_empty()
            && report.errors.is_empty();
        // Another user's rootless lab of that name is theirs: root's down
        // never touches it (lab::rootless::others), and says whose it is.
        let theirs = match nix::unistd::Uid::effective().is_root() && !args.all {
            true => other_users_lab(&what),
            false => Vec::new(),
        };
        for lab in &theirs {
            let text = format!(
                "{}: a rootless lab of {} is left alone: root's `down` never removes \
                 another user's lab; `fip-harness down {}` run by that user does",
                printable(&what),
                lab.owner(),
                printable(&what)
            );
            if nothing {
                eprintln!("error: {text}");
                failed = true;
            } else {
                println!("{text}");
            }
        }
        if nothing && theirs.is_empty() {
            println!("{}: nothing to remove", printable(&what));
        }
        for e in &report.errors {
            eprintln!("error: {}: {e}", printable(&what));
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Rootless, several labs: each may live in namespaces of its own, and a
/// process can join only one user namespace (at start-up), so `down` of each
/// lab runs as a child process of its own.
fn one_child_per_lab(args: &Args) -> anyhow::Result<ExitCode> {
    let labs = if args.all {
        let mut labs = registry_labs();
        labs.sort();
        labs.dedup();
        labs
    } else {
        args.labs.clone()
    };
    if labs.is_empty() {
        println!("--all: nothing to remove");
    }
    let exe = std::env::current_exe()?;
    let mut failed = false;
    for lab in labs {
        let mut child = std::process::Command::new(&exe);
        child.arg("down");
        if args.force {
            child.arg("--force");
        }
        failed |= !child.arg(&lab).status()?.success();
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
