//! `fip-harness ls`: the labs on this host, from the registry and the pinned
//! namespaces: running (its owner runs), kept (left up on purpose), dead (its
//! owner died), and leftovers without a record.

use std::process::ExitCode;

use fip_harness::lab::netns::Netns;
use fip_harness::lab::registry::{
    incomplete_records, list_records, orphan_labs, pinned_namespaces, run_dir,
};
use fip_harness::lab::spec::namespace_prefix;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    println!(
        "{:<12} {:>8} {:<7} {:>10} {:>5} {:>5} {:>9}  SCENARIO",
        "LAB", "PID", "STATE", "NAMESPACES", "NODES", "PODS", "EXTERNALS"
    );
    for record in list_records() {
        match record {
            Ok(r) => {
                let pinned = pinned_namespaces(&r).len();
                println!(
                    "{:<12} {:>8} {:<7} {:>10} {:>5} {:>5} {:>9}  {}",
                    r.name,
                    r.pid,
                    r.state(),
                    pinned,
                    r.nodes.len(),
                    r.pods.len(),
                    r.externals.len(),
                    r.scenario
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    // A normal user's labs are never pinned in the host's /run/netns (only
    // inside their own namespaces): the pins there are root's, not orphans.
    let orphans = if nix::unistd::Uid::effective().is_root() {
        orphan_labs()
    } else {
        Vec::new()
    };
    for lab in orphans {
        let pinned = Netns::list_with_prefix(&namespace_prefix(&lab)).len();
        println!(
            "{lab:<12} {:>8} {:<7} {pinned:>10} {:>5} {:>5} {:>9}  (no record in {}; `fip-harness down {lab}` removes it)",
            "-", "orphan", "?", "?", "?",
            run_dir().display()
        );
    }
    for tmp in incomplete_records() {
        let lab = tmp
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json.tmp"))
            .unwrap_or("?");
        println!(
            "{lab:<12} {:>8} {:<7} {:>10} {:>5} {:>5} {:>9}  (half-written record {}; `fip-harness down {lab}` removes it)",
            "-", "orphan", "-", "?", "?", "?",
            tmp.display()
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
