//! Root tests: races and signals against the real binary. Two `up` of one
//! name at once, SIGINT/SIGTERM during bring-up and during `run`, a case that
//! panics, a closed stdout, owners that are alive or dead. Each child gets a
//! run directory of its own, so nobody else's labs are seen or touched. No
//! timing thresholds: every wait is for an event (a file, a line, an exit).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use common::{lab_name, repo};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::registry::{process_start_time, LabRecord, RUN_DIR_ENV};
use fip_harness::lab::spec::namespace_prefix;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn fip(run_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fip-harness"));
    command.current_dir(repo()).env(RUN_DIR_ENV, run_dir);
    command
}

fn pinned(lab: &str) -> Vec<String> {
    Netns::list_with_prefix(&namespace_prefix(lab))
}

/// Names of the files in the run directory (records, half-written records, locks).
fn run_dir_files(run_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Remove a lab the test made, in the child's run directory.
fn down(run_dir: &Path, lab: &str) {
    let out = fip(run_dir)
        .args(["down", "--force", lab])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(pinned(lab).is_empty());
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Processes still running whose command line names `run_dir` (BIRD names
/// its configuration, socket and pid file there); killed by pid on the way,
/// so that a failing test leaves none.
fn daemons_left(run_dir: &Path) -> Vec<i32> {
    let mark = run_dir.display().to_string();
    let left: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&mark))
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z"))
        })
        .collect();
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    left
}

fn code(status: ExitStatus) -> Option<i32> {
    status.code()
}

#[test]
fn of_two_ups_of_one_name_the_loser_creates_and_removes_nothing() {
    for round in 0..3 {
        let run = tempfile::tempdir().unwrap();
        let lab = lab_name(&format!("race{round}"));
        let spawn = || {
            fip(run.path())
                .args(["up", "scenarios/icmp-external-v4.yaml", "--name", &lab])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn(), spawn());
        let outputs = [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ];
        let winners: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
        let losers: Vec<_> = outputs.iter().filter(|o| !o.status.success()).collect();
        assert_eq!(winners.len(), 1, "exactly one `up` wins: {outputs:?}");
        let refusal = String::from_utf8_lossy(&losers[0].stderr);
        assert!(
            refusal.contains("being built or used by another process")
                || refusal.contains("already exists"),
            "the loser says why: {refusal}"
        );
        // The winner's lab is whole: every namespace its record names is pinned.
        let record = LabRecord::read(&run.path().join(format!("{lab}.json"))).unwrap();
        let missing: Vec<&String> = record
            .namespaces
            .iter()
            .filter(|ns| !fip_harness::lab::netns::pin_path(ns).exists())
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: the loser removed {missing:?}"
        );
        // And `ls` shows it as kept, not dead.
        let ls = fip(run.path()).arg("ls").output().unwrap();
        let listing = String::from_utf8_lossy(&ls.stdout);
        let line = listing.lines().find(|l| l.starts_with(&lab)).unwrap();
        assert!(line.contains(" kept "), "{listing}");
        down(run.path(), &lab);
    }
}

/// Start `up`, signal it once `ready` says bring-up is under way, and check
/// that nothing of the lab is left. Returns false if bring-up finished first.
fn interrupt_bring_up(sig: Signal, ready: impl Fn(&Path, &str) -> bool) -> bool {
    let run = tempfile::tempdir().unwrap();
    let lab = lab_name(&format!("s{}", sig as i32));
    let mut child = fip(run.path())
        .args(["up", "scenarios/move-across-nodes.yaml", "--name", &lab])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let finished_first = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if ready(run.path(), &lab) {
            signal(&child, sig);
            break None;
        }
        std::thread::yield_now();
    };
    let output = child.wait_with_output().unwrap();
    if finished_first.is_some_and(|s| s.success()) {
        down(run.path(), &lab);
        return false;
    }
    let expected = if sig == Signal::SIGINT { 130 } else { 143 };
    assert_eq!(code(output.status), Some(expected), "{output:?}");
    assert!(
        pinned(&lab).is_empty(),
        "left after {sig}: {:?}",
        pinned(&lab)
    );
    // No record, half-written record or lock file: `ls` has nothing to show.
    let left: Vec<String> = run_dir_files(run.path())
        .into_iter()
        .filter(|f| f.starts_with(&lab))
        .collect();
    assert!(left.is_empty(), "files left after {sig}: {left:?}");
    let daemons = daemons_left(run.path());
    assert!(daemons.is_empty(), "BIRD left after {sig}: {daemons:?}");
    true
}

#[test]
fn an_interrupt_during_bring_up_leaves_nothing_behind() {
    let record_written = |run: &Path, lab: &str| run.join(format!("{lab}.json")).exists();
    let some_pinned = |n: usize| move |_: &Path, lab: &str| pinned(lab).len() >= n;
    // The fabric's BIRD has its pid file; the nodes' are still starting.
    let bird_starting = |run: &Path, lab: &str| run.join(lab).join("fabric.bird.pid").exists();
    // The name is claimed (its lock file), nothing else made yet.
    let claimed = |run: &Path, lab: &str| run.join(format!("{lab}.lock")).exists();
    let mut interrupted = 0;
    for _ in 0..3 {
        interrupted += usize::from(interrupt_bring_up(Signal::SIGINT, claimed));
        interrupted += usize::from(interrupt_bring_up(Signal::SIGTERM, claimed));
        interrupted += usize::from(interrupt_bring_up(Signal::SIGINT, record_written));
        interrupted += usize::from(interrupt_bring_up(Signal::SIGINT, some_pinned(2)));
        interrupted += usize::from(interrupt_bring_up(Signal::SIGTERM, some_pinned(4)));
        interrupted += usize::from(interrupt_bring_up(Signal::SIGTERM, bird_starting));
    }
    assert!(interrupted > 0, "no signal landed during bring-up");
}

fn summary_cases(report_dir: &Path) -> usize {
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_dir.join("summary.json")).unwrap()).unwrap();
    summary["scenarios"].as_array().unwrap().len()
}

const THREE: [&str; 3] = [
    "scenarios/icmp-external-v4.yaml",
    "scenarios/from-external-v4.yaml",
    "scenarios/from-external-v6.yaml",
];

/// `run` of `files` on nftables with the calico profile, one case at a time.
fn run_one_at_a_time(run_dir: &Path, files: &[&str], reports: &Path) -> Command {
    let mut command = fip(run_dir);
    command.arg("run").args(files);
    command.args([
        "--backend",
        "nftables",
        "--profile",
        "calico",
        "--jobs",
        "1",
    ]);
    command.arg("--report-dir").arg(reports);
    command
}

#[test]
fn an_interrupted_run_says_so_and_reports_what_finished() {
    let run = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut child = run_one_at_a_time(run.path(), &THREE, reports.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
        .expect("a first case finishes");
    // The labs of this run right now (the next case's, being built or run).
    let labs: Vec<String> = run_dir_files(run.path())
        .iter()
        .filter_map(|f| f.split('.').next().map(str::to_string))
        .collect();
    signal(&child, Signal::SIGINT);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        code(output.status),
        Some(130),
        "{first}\n{rest:?}\n{stderr}"
    );
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let finished = summary_cases(reports.path());
    assert!(
        (1..3).contains(&finished),
        "{finished} case(s) in the summary"
    );
    let junit = std::fs::read_to_string(reports.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), finished, "{junit}");
    // Every report says the run was cut short, not only the terminal: a
    // run stopped early is not a run of fewer cases that all passed.
    let said = format!("interrupted by SIGINT: {finished} of 3 case(s) finished");
    assert!(stderr.contains(&said), "{stderr}");
    assert!(
        junit.contains(&format!("name=\"interrupted\" value=\"{said}\"")),
        "{junit}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["interrupted"],
        serde_json::json!({"signal": "SIGINT", "planned": 3}),
        "{summary}"
    );
    let html = std::fs::read_to_string(reports.path().join("report.html")).unwrap();
    assert!(html.contains(&said), "report.html does not say: {said}");
    for lab in labs {
        assert!(
            pinned(&lab).is_empty(),
            "lab {lab} left: {:?}",
            pinned(&lab)
        );
    }
}

#[test]
fn a_panicking_case_fails_alone_and_the_run_goes_on() {
    let run = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let output = run_one_at_a_time(run.path(), &THREE[..2], reports.path())
        .env(fip_harness::runner::PANIC_IN_CASE_ENV, "icmp-external-v4")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(code(output.status), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL icmp-external-v4::nftables"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the harness panicked: injected by"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS from-external-v4::nftables"),
        "{stdout}"
    );
    assert_eq!(summary_cases(reports.path()), 2);
    assert!(run_dir_files(run.path())
        .iter()
        .all(|f| !f.ends_with(".json")));
}

#[test]
fn a_closed_stdout_ends_quietly_and_reports_are_still_written() {
    let run = tempfile::tempdir().unwrap();
    // `list | head -1`
    let mut list = fip(run.path())
        .args(["list", "scenarios"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(list.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let output = list.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!first.is_empty());
    assert!(stderr.is_empty(), "quiet: {stderr}");
    // `run ... | head -0`: the reader is gone before the first line.
    let reports = tempfile::tempdir().unwrap();
    let mut child = fip(run.path())
        .args([
            "run",
            THREE[0],
            "--backend",
            "nftables",
            "--profile",
            "calico",
        ])
        .arg("--report-dir")
        .arg(reports.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(summary_cases(reports.path()), 1);
}

/// `bench lab ... | head -0`: every bench line goes through the quiet writer,
/// so a reader that is gone ends nothing early and panics nothing.
#[test]
fn bench_with_a_closed_stdout_ends_quietly() {
    let run = tempfile::tempdir().unwrap();
    let mut child = fip(run.path())
        .args(["bench", "lab", "--nodes", "1", "--pods", "1", "--runs", "1"])
        .args(["--settle-ms", "0", "--no-baseline"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bench_lab = format!("bl{}", child.id());
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{stderr}");
    assert!(pinned(&bench_lab).is_empty(), "the bench removed its lab");
}

fn write_record(run_dir: &Path, lab: &str, pid: u32, start_time: Option<u64>) -> PathBuf {
    let record = serde_json::json!({
        "name": lab, "pid": pid, "start_time": start_time, "kept": false,
        "namespaces": [], "created": 0, "scenario": null,
        "nodes": [], "externals": [], "pods": [],
    });
    let path = run_dir.join(format!("{lab}.json"));
    std::fs::create_dir_all(run_dir).unwrap();
    std::fs::write(&path, record.to_string()).unwrap();
    path
}

#[test]
fn down_of_a_lab_whose_owner_runs_needs_force() {
    let run = tempfile::tempdir().unwrap();
    let lab = lab_name("own");
    let me = std::process::id();
    let path = write_record(run.path(), &lab, me, process_start_time(me));
    // An owner holds its lab's lock while it builds and uses the lab (lab::claim).
    let lock = std::fs::File::create(run.path().join(format!("{lab}.lock"))).unwrap();
    lock.lock().unwrap();
    let ls = fip(run.path()).arg("ls").output().unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).contains(" running "));
    let refused = fip(run.path()).args(["down", &lab]).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!("belongs to process {me}")),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(path.exists(), "refused, so kept");
    let forced = fip(run.path())
        .args(["down", "--force", &lab])
        .output()
        .unwrap();
    assert!(forced.status.success(), "{forced:?}");
    assert!(!path.exists());
}

#[test]
fn a_reused_pid_does_not_make_a_dead_lab_alive() {
    let run = tempfile::tempdir().unwrap();
    let lab = lab_name("reuse");
    // Our pid, but another start time: the pid was reused by this process.
    let me = std::process::id();
    let other_start = process_start_time(me).map(|t| t + 1);
    write_record(run.path(), &lab, me, other_start);
    let ls = fip(run.path()).arg("ls").output().unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    let line = listing.lines().find(|l| l.starts_with(&lab)).unwrap();
    assert!(line.contains(" dead "), "{listing}");
    let out = fip(run.path()).args(["down", &lab]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_half_written_record_is_listed_and_removed_by_down() {
    let run = tempfile::tempdir().unwrap();
    let lab = lab_name("tmp");
    let tmp = run.path().join(format!("{lab}.json.tmp"));
    std::fs::write(&tmp, "").unwrap();
    let ls = fip(run.path()).arg("ls").output().unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("half-written record"), "{listing}");
    assert!(
        listing.contains(&format!("fip-harness down {lab}")),
        "{listing}"
    );
    let out = fip(run.path()).args(["down", &lab]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!tmp.exists());
}
