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

/// `up` with the driver keeps the lab and the driver's state: `state` shows
/// the dump it gave when the lab was kept, with the pod's interface from the
/// topology the harness sent and the mapping it applied, and the floating IP
/// as held, from the mappings of that dump; no driver process
/// outlives `up`, and `down` removes the lab.
#[test]
fn a_kept_lab_shows_the_drivers_dump() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "run `sudo -E cargo test --test driver_python`"
    );
    let run_dir = tempfile::tempdir().unwrap();
    let lab = common::lab_name("drpy");
    // Declared after the run directory, so it goes first: a failed assertion
    // must not leave the lab behind with its records removed under it.
    let _down = DownOnDrop(run_dir.path().to_path_buf(), lab.clone());
    let fip = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
            .current_dir(repo())
            .env(fip_harness::lab::registry::RUN_DIR_ENV, run_dir.path())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    fip(&[
        "up",
        "scenarios/from-external-v4.yaml",
        "--name",
        &lab,
        "--routing",
        "model",
        "--dataplane",
        "exec:drivers/nft-driver.py",
    ]);
    // The drivers ended with `up` (their environment names the lab's directory).
    let drivers = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("environ")).ok())
        .filter(|environ| String::from_utf8_lossy(environ).contains(&format!("/{lab}\0")))
        .count();
    let state: serde_json::Value = serde_json::from_str(&fip(&["state", &lab, "--json"])).unwrap();
    let node = state["dataplane"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"] == "node-a")
        .unwrap_or_else(|| panic!("no node-a in {state:#}"));
    let dump = node["driver_dump"].as_str().unwrap_or_default().to_string();
    let lines = fip(&["ls"]);
    fip(&["down", "--force", &lab]);
    assert!(dump.contains("dnat to 198.19.0.0"), "{dump}");
    // The floating IP is held, as the driver read its NAT back in that dump
    // (`mappings`), not "none held".
    assert_eq!(
        state["floating_ips"],
        serde_json::json!([{"floating_ip": "203.0.113.10", "holders": [
            {"pod": "web", "internal": "198.19.0.0", "node": "node-a"}
        ]}]),
        "{state:#}"
    );
    assert!(
        dump.contains("web on cali"),
        "the topology is in the dump: {dump}"
    );
    // ... and says so: from the driver's dump, with its time, the driver not
    // running any more (the kernel's NAT may have changed since).
    let source = state["source"].as_str().unwrap_or_default();
    assert!(
        source.starts_with("as the driver's dump of 20")
            && source.contains(" UTC said; the driver does not run now"),
        "{state:#}"
    );
    assert!(lines.contains(&lab), "{lines}");
    assert_eq!(drivers, 0, "a driver of lab {lab} still runs after `up`");
}

/// `down --force` of the test's lab in its run directory; a lab already
/// removed is fine.
struct DownOnDrop(std::path::PathBuf, String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
            .current_dir(repo())
            .env(fip_harness::lab::registry::RUN_DIR_ENV, &self.0)
            .args(["down", "--force", &self.1])
            .output();
    }
}
