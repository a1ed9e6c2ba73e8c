//! A full disk, for real: a tmpfs of a few pages, filled, mounted in a mount
//! namespace of the command's own (so nothing of it reaches the host). A full
//! report folder or run folder ends `run` with "disk full: PATH" and leaves
//! no half-written file, temporary file or lock file. Needs root (labs).

mod common;

use std::process::Command;

use common::repo;
use fip_harness::lab::registry::RUN_DIR_ENV;

/// Runs `fip-harness run` (a small catalogue case) inside a private mount
/// namespace where `full` is a filled tmpfs; `report_dir_is_full` chooses
/// whether the report folder or the run folder is the full one. Returns
/// (exit status, what it printed, the files left in the full folder).
fn run_on_a_full_disk(report_dir_is_full: bool) -> (i32, String, Vec<String>) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "mounting a tmpfs and building labs needs root: run the tests with `cargo test`"
    );
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let other = dir.path().join("other");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let (reports, run_dir) = if report_dir_is_full {
        (&full, &other)
    } else {
        (&other, &full)
    };
    // The last line printed is the full folder's listing, after the run.
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs "$FULL" || exit 99
        dd if=/dev/zero of="$FULL/fill" bs=4k 2>/dev/null
        "$HARNESS" run scenarios/icmp-external-v4.yaml --backend nftables --routing model \
            --report-dir "$REPORTS"
        status=$?
        echo "LEFT:$(ls -A "$FULL" | tr '\n' ' ')"
        exit $status
    "#;
    let output = Command::new(common::program("unshare"))
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .current_dir(repo())
        .env("FULL", &full)
        .env("REPORTS", reports)
        .env(RUN_DIR_ENV, run_dir)
        .env("HARNESS", env!("CARGO_BIN_EXE_fip-harness"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    // A case's failure is a line on stdout, the run's own error on stderr.
    let stderr = format!("{}{stdout}", String::from_utf8_lossy(&output.stderr));
    assert_ne!(output.status.code(), Some(99), "no tmpfs: {stderr}");
    let left = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LEFT:"))
        .unwrap_or_else(|| panic!("no listing in {stdout}\n{stderr}"))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    (output.status.code().unwrap_or(-1), stderr, left)
}

#[test]
fn a_full_report_folder_is_named_and_left_without_half_files() {
    let (status, stderr, left) = run_on_a_full_disk(true);
    assert_ne!(status, 0, "{stderr}");
    assert!(stderr.contains("disk full: "), "{stderr}");
    assert!(stderr.contains("/full/"), "names the path: {stderr}");
    // Only the filler: no truncated junit.xml or summary.json, no temporary file.
    assert_eq!(left, ["fill"], "{stderr}");
}

#[test]
fn a_full_run_folder_is_named_and_left_without_records_or_locks() {
    let (status, stderr, left) = run_on_a_full_disk(false);
    assert_ne!(status, 0, "{stderr}");
    assert!(stderr.contains("disk full: "), "{stderr}");
    assert!(!stderr.contains("did not start"), "{stderr}");
    // No `.json.tmp`, no `.lock`: only the filler.
    assert_eq!(left, ["fill"], "{stderr}");
}
