//! The large benchmarks run tiny, as people run them (root): `bench churn`
//! prints its table for every backend and every sampled move converges;
//! `bench scale` builds and tears down its lab. Neither leaves a namespace
//! behind. No figure is judged here: that is what the benchmarks are for.

mod common;

use std::process::{Command, Output, Stdio};

use common::repo;

/// Run the harness and return its output and pid (its labs are named after it).
fn harness_with_pid(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fip-harness");
    let pid = child.id();
    (child.wait_with_output().expect("wait for fip-harness"), pid)
}

fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// The cells of the table row starting with `label`.
fn row<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row `{label}` in:\n{text}"));
    line[label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn a_tiny_churn_reports_every_backend_in_both_orders_and_converges_when_ordered() {
    let (output, pid) = harness_with_pid(&[
        "bench",
        "churn",
        "--nodes",
        "2",
        "--pods",
        "4",
        "--rate",
        "4",
        "--seconds",
        "2",
        "--sample",
        "3",
        "--interval-ms",
        "5",
    ]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for backend in ["nftables", "iptables", "nft-maps"] {
        assert!(text.lines().any(|l| l.contains(backend)), "{text}");
    }
    for phase in ["churn", "drain"] {
        let converged = row(&text, &format!("{phase}: sampled moves converged"));
        assert_eq!(
            converged.len(),
            6,
            "one cell per backend and update order: {converged:?}"
        );
        // Columns alternate Felix's order and the ordered one, per backend.
        // Under Felix's order a sampled stream may never reach its new pod:
        // its first packet after the move can beat the new node's DNAT and
        // pin the flow un-NATed (docs/benchmarks.md), as in Calico. Under
        // the ordered mode every sampled move converges.
        for (column, cell) in converged.iter().enumerate() {
            let (done, measured) = cell.split_once(" / ").expect("`n / m`");
            assert_ne!(measured, "0", "{phase}: no move was measured:\n{text}");
            if column % 2 == 1 {
                assert_eq!(
                    done, measured,
                    "{phase}: a sampled move never converged in the ordered mode:\n{text}"
                );
            }
        }
        let moves = row(&text, &format!("{phase}: moves / updates"));
        let expected = if phase == "churn" { "8 /" } else { "4 / 1" };
        assert!(moves.iter().all(|c| c.starts_with(expected)), "{moves:?}");
    }
    for line in [
        "machine at start: load",
        "baseline:",
        "target churn convergence p99",
    ] {
        assert!(text.contains(line), "`{line}` missing:\n{text}");
    }
    let left = namespaces_with_prefix(&format!("fiph-bc{}", pid % 100_000));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_small_scale_lab_is_built_timed_and_removed() {
    let (output, pid) = harness_with_pid(&["bench", "scale", "--nodes", "3", "--pods", "4"]);
    assert_says(
        &output,
        &[
            "12 pods",
            "per pod",
            "peak RSS",
            "baseline:",
            "target 12 pods built and torn down",
        ],
    );
    let left = namespaces_with_prefix(&format!("fiph-bs{pid}-"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_tiny_explore_bench_runs_the_same_cases_both_ways_and_says_where_the_time_went() {
    let (output, _) = harness_with_pid(&["bench", "explore", "--cases", "3", "--jobs", "1"]);
    assert_says(
        &output,
        &[
            "explorer: 3 case(s)",
            "(3 passed, 0 not judged)",
            "building and removing labs",
            "pod steps",
            "baseline: the same 3 case(s) as files",
            "ratio:",
            "machine at end: load",
            "target 1000 explored cases a minute",
        ],
    );
}

/// Both binaries (here the same one) run the same file back to back, and
/// each says how many of its cases passed.
#[test]
fn a_catalogue_bench_runs_the_baseline_and_this_binary_on_the_same_files() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/icmp-external-v4.yaml"
    );
    let (output, _) = harness_with_pid(&[
        "bench",
        "catalogue",
        "--baseline",
        env!("CARGO_BIN_EXE_fip-harness"),
        scenario,
    ]);
    assert_says(
        &output,
        &[
            "back to back, each at its default --jobs",
            "  baseline (",
            "  this (",
            "s, 3 passed, 0 failed; load ",
            "ratio: ",
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.matches("3 passed, 0 failed").count(), 2, "{text}");
}

/// The run succeeded and its output has every one of `lines`.
fn assert_says(output: &Output, lines: &[&str]) {
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in lines {
        assert!(text.contains(line), "`{line}` missing:\n{text}");
    }
}
