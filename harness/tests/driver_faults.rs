//! Root tests: a driver that crashes, hangs, answers garbage or cannot start
//! fails its case with a message that names the driver, the request it was
//! answering and the end of its stderr; its stderr is in the diagnostics
//! bundle; and the lab and every driver process are gone afterwards.
//!
//! Each driver is a small shell script that speaks the protocol until the
//! first `apply`, then misbehaves. Every wait is for an event (the harness's
//! exit); the hang is cut by the harness's own answer timeout, set short.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo;
use fip_harness::driver::TIMEOUT_ENV;
use fip_harness::lab::netns::Netns;
use fip_harness::lab::registry::RUN_DIR_ENV;
use fip_harness::runner::base36;

/// Answers `hello` and everything else with `ok` until the first `apply`,
/// where it runs `$MISBEHAVE`; records its pid (and its children's) in
/// `$PIDS` so the test can check they are gone.
const TOY_DRIVER: &str = r#"#!/bin/sh
echo "$$" >> "$PIDS"
echo "toy driver on $FIP_HARNESS_NODE" >&2
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
  case "$line" in
    *'"type":"hello"'*)
      printf '{"id":%s,"type":"hello","protocol":1,"name":"%s","version":"0.1","capabilities":{"families":["ipv4","ipv6"],"protocols":["icmp","gre","sctp","udp","tcp"],"owns_conntrack":false}}\n' "$id" "$(cat "$TOY_NAME_FILE" 2>/dev/null || echo toy)" ;;
    *'"type":"apply"'*)
      eval "$MISBEHAVE" ;;
    *)
      printf '{"id":%s,"type":"ok"}\n' "$id" ;;
  esac
done
"#;

struct Outcome {
    stdout: String,
    stderr: String,
    /// Bytes the run left in its report folder.
    report_bytes: u64,
    bundle_stderr: Vec<String>,
    pids: Vec<i32>,
    success: bool,
}

/// `run` one scenario with the toy driver misbehaving as `misbehave` (shell).
fn run_toy(misbehave: &str, driver: Option<&str>) -> Outcome {
    run_toy_named(misbehave, driver, "toy")
}

/// [`run_toy`] with the driver calling itself `name` in its `hello`.
fn run_toy_named(misbehave: &str, driver: Option<&str>, name: &str) -> Outcome {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "drivers run inside lab namespaces, which needs root: run `sudo -E cargo test --test driver_faults`"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("toy.sh");
    std::fs::write(&script, TOY_DRIVER).unwrap();
    let pids = dir.path().join("pids");
    let name_file = dir.path().join("name");
    std::fs::write(&name_file, name).unwrap();
    let reports = dir.path().join("reports");
    let run_dir = dir.path().join("run");
    let choice = match driver {
        Some(text) => text.to_string(),
        None => format!("exec:sh {}", script.display()),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .current_dir(repo())
        .env(RUN_DIR_ENV, &run_dir)
        .env(TIMEOUT_ENV, "2")
        .env("PIDS", &pids)
        .env("MISBEHAVE", misbehave)
        .env("TOY_NAME_FILE", &name_file)
        .args([
            "run",
            "scenarios/from-external-v4.yaml",
            "--routing",
            "model",
        ])
        .arg("--dataplane")
        .arg(&choice)
        .arg("--report-dir")
        .arg(&reports)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lab_prefix = format!("fiph-r{}", base36(child.id()));
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report_bytes = files_under(&reports, &|_| true)
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    // The lab is gone: no namespace of this process's labs, no record, no
    // pid file left in its run directory.
    let left = Netns::list_with_prefix(&lab_prefix);
    assert!(
        left.is_empty(),
        "namespaces left behind: {left:?}\n{stdout}"
    );
    let records = files_under(&run_dir, &|_| true);
    assert!(
        records
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "lock")),
        "the run directory still holds {records:?}"
    );
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for pid in &pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains("toy.sh") && !cmdline.contains("sleep"),
            "driver process {pid} still runs: {cmdline}"
        );
    }
    let bundle_stderr = files_under(&reports, &|p| p.ends_with("driver-stderr.txt"))
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    Outcome {
        stdout,
        stderr,
        report_bytes,
        bundle_stderr,
        pids,
        success: output.status.success(),
    }
}

fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path, keep));
        } else if keep(&path) {
            found.push(path);
        }
    }
    found
}

/// The case failed as an error of the driver, named with what it answered
/// and its last words, which the bundle keeps too.
fn assert_driver_fault(outcome: &Outcome, fault: &str, last_words: &str) {
    let text = &outcome.stdout;
    assert!(!outcome.success, "the run passed:\n{text}");
    assert!(text.contains("FAIL from-external-v4::exec:sh"), "{text}");
    for needle in [
        "dataplane driver `toy 0.1` (exec:sh ",
        "on node `node-a`",
        "answering `apply`",
        fault,
        "the end of its stderr:",
        last_words,
    ] {
        assert!(text.contains(needle), "`{needle}` is missing from:\n{text}");
    }
    assert!(
        outcome.bundle_stderr.iter().any(|s| s.contains(last_words)),
        "no driver-stderr.txt in the bundle holds `{last_words}`: {:?}",
        outcome.bundle_stderr
    );
    assert!(!outcome.pids.is_empty(), "the driver never ran");
}

#[test]
fn a_driver_that_crashes_fails_the_case_and_the_lab_goes() {
    let outcome = run_toy(
        "echo 'fatal: cannot attach to cali interfaces' >&2; exit 3",
        None,
    );
    assert_driver_fault(
        &outcome,
        "it exited (exit status 3)",
        "fatal: cannot attach to cali interfaces",
    );
}

#[test]
fn a_driver_that_hangs_is_killed_and_fails_the_case() {
    // The sleep is a child in the driver's process group: killing the
    // driver must take it too.
    let outcome = run_toy(
        "echo 'waiting for the map lock' >&2; sleep 600 & echo $! >> \"$PIDS\"; wait",
        None,
    );
    assert_driver_fault(
        &outcome,
        "no answer within 2s, so it was killed",
        "waiting for the map lock",
    );
    assert!(
        outcome.pids.len() >= 2,
        "the sleep was recorded: {:?}",
        outcome.pids
    );
}

#[test]
fn a_driver_that_answers_garbage_fails_the_case() {
    let outcome = run_toy("echo 'applying rules' >&2; echo 'apply: done!'", None);
    assert_driver_fault(
        &outcome,
        "it wrote a line that is not an answer of the protocol",
        "applying rules",
    );
    assert!(
        outcome.stdout.contains("apply: done!"),
        "the line is quoted"
    );
}

#[test]
fn a_driver_that_cannot_start_fails_the_case_naming_the_file() {
    let outcome = run_toy("true", Some("exec:/nonexistent/driver --flag"));
    let text = &outcome.stdout;
    assert!(!outcome.success, "{text}");
    for needle in [
        "dataplane driver exec:/nonexistent/driver --flag on node `node-a`",
        "could not start it: /nonexistent/driver: no such file",
    ] {
        assert!(text.contains(needle), "`{needle}` is missing from:\n{text}");
    }
}

/// Shell for a child that ignores SIGTERM and runs until killed.
const STUBBORN: &str = "sh -c 'trap \"\" TERM; while :; do sleep 1; done'";

/// What a driver starts and leaves running goes with the lab, even a child
/// that ignores SIGTERM, whether it stays in the driver's process group or
/// leaves it (`setsid`): the driver here answers every `apply` and exits at
/// `shutdown` as it should, leaving both behind.
#[test]
fn what_a_driver_leaves_running_goes_with_the_lab() {
    let outcome = run_toy(
        &format!(
            "{STUBBORN} & echo $! >> \"$PIDS\"; setsid {STUBBORN} & echo $! >> \"$PIDS\"; \
             printf '{{\"id\":%s,\"type\":\"ok\"}}\\n' \"$id\""
        ),
        None,
    );
    // run_toy checked that no recorded process runs any more.
    assert!(
        outcome.pids.len() >= 3,
        "{:?}\n{}",
        outcome.pids,
        outcome.stdout
    );
}

/// A driver's name is copied into every message about it: a huge one is cut
/// where it is read, so neither the terminal nor the reports grow with it.
#[test]
fn a_huge_driver_name_is_cut_where_it_is_read() {
    let huge = "N".repeat(10 << 20);
    let outcome = run_toy_named("exit 3", None, &huge);
    let printed = outcome.stdout.len() + outcome.stderr.len();
    assert!(printed < 200_000, "{printed} bytes printed");
    assert!(
        outcome.report_bytes < 2_000_000,
        "{} bytes of reports",
        outcome.report_bytes
    );
    assert!(
        outcome.stdout.contains("more bytes]"),
        "the cut is said: {}",
        outcome.stdout
    );
}

/// A driver that closes its stdout and keeps running is said to have done
/// exactly that, not to have exited.
#[test]
fn a_driver_that_closes_stdout_is_not_said_to_have_exited() {
    let outcome = run_toy("exec >&-; echo 'closing my stdout' >&2; sleep 600", None);
    assert_driver_fault(
        &outcome,
        "it closed its stdout without exiting",
        "closing my stdout",
    );
    assert!(!outcome.stdout.contains("it exited"), "{}", outcome.stdout);
}

/// `exec:driver.sh` names a program on PATH, as a shell reads a bare name;
/// with a file of that name in the current folder, the message says to
/// write `exec:./driver.sh`, and never blames the script's interpreter.
#[test]
fn a_bare_driver_name_in_the_current_folder_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("driver.sh"),
        TOY_DRIVER.replace("/bin/sh", "/bin/bash"),
    )
    .unwrap();
    let scenario = repo().join("scenarios/from-external-v4.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .current_dir(dir.path())
        .env(RUN_DIR_ENV, dir.path().join("run"))
        .args(["run", scenario.to_str().unwrap(), "--routing", "model"])
        .args(["--dataplane", "exec:driver.sh", "--report-dir"])
        .arg(dir.path().join("reports"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("`driver.sh` is not on PATH; to run the file `driver.sh` of the current folder, write exec:./driver.sh"),
        "{text}"
    );
    assert!(
        !text.contains("bash") && !text.contains("PROGRAMS"),
        "{text}"
    );
}

/// Both nodes' drivers refuse the same `apply`: each node's error is on a
/// line of its own, with its stderr under it, and each is said once, on
/// the terminal and in report.html (whose reason keeps its lines).
#[test]
fn errors_of_two_nodes_are_each_said_once_on_lines_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("toy.sh");
    std::fs::write(&script, TOY_DRIVER).unwrap();
    let reports = dir.path().join("reports");
    let misbehave = r#"echo "refusing on $FIP_HARNESS_NODE" >&2; echo "second line" >&2; printf '{"id":%s,"type":"error","message":"no luck on %s"}\n' "$id" "$FIP_HARNESS_NODE""#;
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .current_dir(repo())
        .env(RUN_DIR_ENV, dir.path().join("run"))
        .env("PIDS", dir.path().join("pids"))
        .env("MISBEHAVE", misbehave)
        .args([
            "run",
            "scenarios/move-across-nodes.yaml",
            "--routing",
            "model",
        ])
        .arg("--dataplane")
        .arg(format!("exec:sh {}", script.display()))
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    for node in ["node-a", "node-b"] {
        let error = format!("no luck on {node}");
        assert_eq!(stdout.matches(&error).count(), 1, "{stdout}");
        let line = stdout.lines().find(|l| l.contains(&error)).unwrap();
        assert!(
            line.trim_start().starts_with("- dataplane driver"),
            "{line}"
        );
        assert_eq!(line.matches("no luck on").count(), 1, "{line}");
        let html = std::fs::read_to_string(reports.join("report.html")).unwrap();
        assert_eq!(html.matches(&error).count(), 1, "{error} in report.html");
        // Each node's error starts a line of the reason, and the page shows
        // the reason's lines as lines.
        let starts = format!(
            "\n- dataplane driver `toy 0.1` (exec:sh {}) on node `{node}`",
            script.display()
        );
        assert!(
            html.contains(&starts),
            "{node}'s error does not start a line"
        );
        assert!(
            html.contains("white-space: pre-wrap; }"),
            "report.html joins the reason's lines"
        );
    }
}
