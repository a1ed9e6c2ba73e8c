//! `fip-harness ls`: the labs on this host, from the registry and the pinned
//! namespaces: running (its owner runs), kept (left up on purpose), dead (its
//! owner died), and leftovers without a record. Root also sees other users'
//! rootless labs, read-only, with their owner (lab::rootless::other_users_labs).

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use fip_harness::lab::down::{labs_owned_elsewhere, orphan_labs, pinned_namespaces};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::registry::{incomplete_records, list_records, run_dir, LabRecord};
use fip_harness::lab::rootless::{other_users_labs, OtherUsersLab};
use fip_harness::lab::spec::namespace_prefix;
use fip_harness::text::printable;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the labs as JSON (a list of objects) instead of a table.
    #[arg(long)]
    json: bool,
}

/// One lab as `ls --json` shows it. Unknown numbers (a lab without a
/// record) are null.
#[derive(Debug, Serialize)]
struct LabRow {
    lab: String,
    pid: Option<u32>,
    /// `running`, `kept`, `dead` or `orphan`.
    state: String,
    namespaces: usize,
    nodes: Option<Vec<String>>,
    pods: Option<Vec<String>>,
    externals: Option<Vec<String>>,
    scenario: Option<PathBuf>,
    /// Why a lab is listed without a record, or whose it is.
    note: Option<String>,
    /// Root's view of another user's rootless lab: `name (uid N)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

/// What `ls` says of another user's rootless lab (root sees them).
fn others_note(lab: &OtherUsersLab) -> String {
    format!(
        "rootless lab of {}: read-only here; `fip-harness down {}` run by that user removes it",
        lab.owner(),
        lab.record.name
    )
}

/// Other users' rootless labs, for root only (a user cannot read the others').
fn others() -> Vec<OtherUsersLab> {
    if nix::unistd::Uid::effective().is_root() {
        other_users_labs()
    } else {
        Vec::new()
    }
}

/// What `ls` says of a lab a live process owns whose records it cannot see.
const ELSEWHERE: &str = "a process owns it, with its records in another run folder \
                         (FIP_HARNESS_RUN_DIR); `down` leaves it to that process";

/// The row of a lab with a record, `namespaces` of it pinned.
fn record_row(r: LabRecord, namespaces: usize) -> LabRow {
    LabRow {
        namespaces,
        state: r.state().to_string(),
        lab: r.name,
        pid: Some(r.pid),
        nodes: Some(r.nodes),
        pods: Some(r.pods),
        externals: Some(r.externals),
        scenario: r.scenario,
        note: None,
        owner: None,
    }
}

fn json_rows() -> (Vec<LabRow>, bool) {
    let mut failed = false;
    let mut rows = Vec::new();
    for record in list_records() {
        match record {
            Ok(r) => {
                let namespaces = Netns::list_with_prefix(&namespace_prefix(&r.name)).len();
                rows.push(record_row(r, namespaces));
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    for lab in labs_owned_elsewhere() {
        rows.push(LabRow {
            namespaces: Netns::list_with_prefix(&namespace_prefix(&lab)).len(),
            lab,
            pid: None,
            state: "running".into(),
            nodes: None,
            pods: None,
            externals: None,
            scenario: None,
            note: Some(ELSEWHERE.into()),
            owner: None,
        });
    }
    for lab in others() {
        let note = others_note(&lab);
        let owner = lab.owner();
        rows.push(LabRow {
            note: Some(note),
            owner: Some(owner),
            state: lab.state.to_string(),
            ..record_row(lab.record, lab.pinned)
        });
    }
    let orphans = orphan_labs()
        .into_iter()
        .map(|lab| (lab, format!("no record in {}", run_dir().display())));
    let half_written = incomplete_records().into_iter().map(|tmp| {
        let lab = tmp
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json.tmp"))
            .unwrap_or("?")
            .to_string();
        (lab, format!("half-written record {}", tmp.display()))
    });
    for (lab, note) in orphans.chain(half_written) {
        rows.push(LabRow {
            namespaces: Netns::list_with_prefix(&namespace_prefix(&lab)).len(),
            lab,
            pid: None,
            state: "orphan".into(),
            nodes: None,
            pods: None,
            externals: None,
            scenario: None,
            note: Some(note),
            owner: None,
        });
    }
    (rows, failed)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.json {
        let (rows, failed) = json_rows();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
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
    for lab in others() {
        let r = &lab.record;
        println!(
            "{:<12} {:>8} {:<7} {:>10} {:>5} {:>5} {:>9}  {} ({})",
            r.name,
            r.pid,
            lab.state,
            lab.pinned,
            r.nodes.len(),
            r.pods.len(),
            r.externals.len(),
            r.scenario
                .as_ref()
                .map(|p| printable(&p.display().to_string()).into_owned())
                .unwrap_or_else(|| "-".into()),
            others_note(&lab)
        );
    }
    // A normal user's labs are never pinned in the host's /run/netns (only
    // inside their own namespaces): the pins there are root's, not orphans.
    let root = nix::unistd::Uid::effective().is_root();
    let (orphans, elsewhere) = if root {
        (orphan_labs(), labs_owned_elsewhere())
    } else {
        (Vec::new(), Vec::new())
    };
    for lab in elsewhere {
        let pinned = Netns::list_with_prefix(&namespace_prefix(&lab)).len();
        println!(
            "{lab:<12} {:>8} {:<7} {pinned:>10} {:>5} {:>5} {:>9}  ({ELSEWHERE})",
            "-", "running", "?", "?", "?",
        );
    }
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
