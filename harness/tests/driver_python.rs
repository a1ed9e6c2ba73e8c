//! Root test: the protocol is language-neutral. drivers/nft-driver.py, a
//! driver in Python with only the standard library and `nft`, passes the
//! whole catalogue through `fip-harness run --dataplane
//! exec:drivers/nft-driver.py`, as a vendor would run it.

mod common;

use std::process::Command;

use common::{program, repo};

#[test]
fn the_python_driver_passes_the_catalogue() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "drivers run inside lab namespaces, which needs root: run `sudo -E cargo test --test driver_python`"
    );
    // Named here so a machine without it fails saying which package to install.
    program("python3");
    let reports = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .current_dir(repo())
        .args([
            "run",
            "scenarios",
            "--dataplane",
            "exec:drivers/nft-driver.py",
        ])
        .arg("--report-dir")
        .arg(reports.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.path().join("summary.json")).unwrap(),
    )
    .unwrap();
    let passed = summary["passed"].as_u64().unwrap();
    assert!(
        output.status.success() && summary["failed"] == 0,
        "the Python driver failed cases:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every case ran on the driver (its name is in each case's backend), and
    // every scenario of the catalogue is there.
    let cases = summary["scenarios"].as_array().unwrap();
    assert_eq!(cases.len() as u64, passed);
    assert!(cases
        .iter()
        .all(|case| case["backend"] == "exec:drivers/nft-driver.py"));
    let choice = "exec:drivers/nft-driver.py".parse().unwrap();
    let planned = fip_harness::runner::plan(
        &[repo().join("scenarios")],
        &fip_harness::runner::PlanFilter {
            dataplane: Some(choice),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(passed as usize, planned.len(), "every planned case ran");
}
