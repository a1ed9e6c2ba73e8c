//! Root tests: everything a lab's daemons start goes with the lab, for
//! certain: a driver's child that ignores SIGTERM and stays in its process
//! group, and a grandchild that double-forks out of it into a network
//! namespace of its own (where a search of the lab's namespaces cannot find
//! it), after `run`, after `up` + `down`, and after the harness is killed
//! with SIGKILL mid-run + `down`. BIRD runs in the same place.
//!
//! Every process the driver starts carries a marker unique to the test in
//! its command line; afterwards no running process may carry it. Waits are
//! for events (a file appearing, the harness exiting), each bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::repo;
use fip_harness::lab::registry::RUN_DIR_ENV;
use fip_harness::runner::base36;

/// Speaks the protocol; at the first `apply` it starts `stubborn` twice: a
/// child left in its process group, and (through `setsid` and a subshell that
/// exits at once) a grandchild in a new network namespace. Each writes its
/// pid to `$PIDS`. Answers `ok` to everything else.
const DRIVER: &str = r#"#!/bin/sh
stubborn() { exec sh -c 'trap "" TERM; echo $$ >> "$PIDS"; while :; do sleep 1; done' "$MARKER"; }
started=
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/^{"id":\([0-9]*\),.*/\1/p')
  case "$line" in
    *'"type":"hello"'*)
      printf '{"id":%s,"type":"hello","protocol":1,"name":"trees","version":"0.1","capabilities":{"families":["ipv4","ipv6"],"protocols":["icmp","gre","sctp","udp","tcp"],"owns_conntrack":false}}\n' "$id" ;;
    *'"type":"apply"'*)
      if [ -z "$started" ]; then
        started=1
        (stubborn) &
        setsid sh -c '(unshare -n sh -c "trap \"\" TERM; echo \$\$ >> \"\$PIDS\"; while :; do sleep 1; done" "$MARKER" &)'
      fi
      printf '{"id":%s,"type":"ok"}\n' "$id" ;;
    *)
      printf '{"id":%s,"type":"ok"}\n' "$id" ;;
  esac
done
"#;

/// Whether this is the host's own root. The lab's cgroup, which these tests
/// are about, is made only there: in a user namespace (ci/test-runner's, for a
/// normal user) no cgroup can be made and teardown falls back to searching the
/// lab's namespaces, which a driver's SIGTERM-ignoring descendants outlive
/// (docs/rootless.md), so these tests are skipped there.
fn host_root() -> bool {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    uid_map.split_whitespace().eq(["0", "0", "4294967295"])
}

const SKIPPED: &str = "skipped: the lab's cgroup needs the host's root (see docs/rootless.md)";

struct Setup {
    _dir: tempfile::TempDir,
    script: PathBuf,
    pids: PathBuf,
    run_dir: PathBuf,
    reports: PathBuf,
    marker: String,
}

fn setup(tag: &str) -> Setup {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "drivers run inside lab namespaces, which needs root: run `sudo -E cargo test --test process_trees`"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("trees.sh");
    std::fs::write(&script, DRIVER).unwrap();
    let marker = format!(
        "newcomer2-{tag}-{}",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    Setup {
        script,
        pids: dir.path().join("pids"),
        run_dir: dir.path().join("run"),
        reports: dir.path().join("reports"),
        marker,
        _dir: dir,
    }
}

impl Setup {
    fn harness(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fip-harness"));
        command
            .current_dir(repo())
            .env(RUN_DIR_ENV, &self.run_dir)
            .env("PIDS", &self.pids)
            .env("MARKER", &self.marker)
            .args(args);
        command
    }

    /// `run` of a two-node scenario with the driver.
    fn run_with_driver(&self) -> Command {
        let mut command = self.harness(&[
            "run",
            "scenarios/from-external-v4.yaml",
            "--routing",
            "model",
        ]);
        command
            .arg("--dataplane")
            .arg(self.driver())
            .arg("--report-dir")
            .arg(&self.reports);
        command
    }

    fn driver(&self) -> String {
        format!("exec:sh {}", self.script.display())
    }

    /// Wait until both stubborn processes wrote their pids.
    fn wait_for_both(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::fs::read_to_string(&self.pids)
            .unwrap_or_default()
            .lines()
            .count()
            < 2
        {
            assert!(
                Instant::now() < deadline,
                "the driver's children never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Running processes whose command line carries the test's marker.
    fn survivors(&self) -> Vec<(i32, String)> {
        marked(&self.marker)
    }

    fn assert_none_survive(&self, after: &str) {
        let left = self.survivors();
        // Leave nothing behind for the next test, whatever happened.
        for (pid, _) in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(
            left.is_empty(),
            "after {after}, the driver's descendants still run: {left:?}"
        );
    }
}

/// Running processes (not zombies) whose command line contains `marker`.
fn marked(marker: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if cmdline.contains(marker) && !zombie {
            found.push((pid, cmdline));
        }
    }
    found
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_drivers_descendants_end_with_run() {
    if !host_root() {
        eprintln!("{SKIPPED}");
        return;
    }
    let setup = setup("run");
    let output = setup.run_with_driver().output().unwrap();
    // The toy driver programs nothing, so the case fails: what matters is
    // what is left once `run` returned.
    assert!(
        output_text(&output).contains("from-external-v4"),
        "{}",
        output_text(&output)
    );
    setup.wait_for_both();
    setup.assert_none_survive("run");
}

#[test]
fn a_drivers_descendants_end_with_down_of_a_kept_lab() {
    if !host_root() {
        eprintln!("{SKIPPED}");
        return;
    }
    let setup = setup("down");
    let lab = format!("newcomer2d{}", base36(std::process::id() % 1296));
    let driver = setup.driver();
    let up = setup
        .harness(&[
            "up",
            "scenarios/from-external-v4.yaml",
            "--routing",
            "model",
        ])
        .args(["--name", &lab, "--dataplane", &driver])
        .output()
        .unwrap();
    let down = setup.harness(&["down", &lab]).output().unwrap();
    assert!(up.status.success(), "{}", output_text(&up));
    assert!(down.status.success(), "{}", output_text(&down));
    setup.wait_for_both();
    setup.assert_none_survive("up + down");
}

#[test]
fn a_drivers_descendants_end_with_down_after_the_harness_is_killed() {
    if !host_root() {
        eprintln!("{SKIPPED}");
        return;
    }
    let setup = setup("kill");
    let mut child = setup
        .run_with_driver()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    setup.wait_for_both();
    child.kill().unwrap();
    child.wait().unwrap();
    // The lab's name (seeded) from its lock file in the run folder.
    let lab = std::fs::read_dir(&setup.run_dir)
        .unwrap()
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".lock").map(str::to_string)
        })
        .expect("the killed run left its lab's lock file");
    let down = setup.harness(&["down", &lab]).output().unwrap();
    assert!(down.status.success(), "{}", output_text(&down));
    setup.assert_none_survive("kill -9 + down");
}

/// BIRD runs in the lab's cgroup (where the machine has one to give), so
/// whatever it is, it goes with the lab.
#[test]
fn bird_runs_in_the_labs_cgroup_and_goes_with_down() {
    if !host_root() {
        eprintln!("{SKIPPED}");
        return;
    }
    let setup = setup("bird");
    let lab = format!("newcomer2b{}", base36(std::process::id() % 1296));
    let up = setup
        .harness(&["up", "scenarios/from-external-v4.yaml", "--routing", "bird"])
        .args(["--name", &lab])
        .output()
        .unwrap();
    let lab_dir = setup.run_dir.join(&lab);
    let birds: Vec<i32> = std::fs::read_dir(&lab_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let cgroups: Vec<String> = birds
        .iter()
        .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default())
        .collect();
    let cgroup_dir = std::fs::read_to_string(lab_dir.join("cgroup")).unwrap_or_default();
    let down = setup.harness(&["down", &lab]).output().unwrap();
    assert!(up.status.success(), "{}", output_text(&up));
    assert!(down.status.success(), "{}", output_text(&down));
    assert!(
        !birds.is_empty(),
        "no BIRD pid file in {}",
        lab_dir.display()
    );
    if cgroup_available() {
        for text in &cgroups {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("0::") && l.ends_with(&format!("/fiph-{lab}"))),
                "BIRD is not in the lab's cgroup: {text}"
            );
        }
        assert!(
            !Path::new(cgroup_dir.trim()).exists(),
            "the lab's cgroup {cgroup_dir} is still there"
        );
    }
    let left = marked(&lab_dir.display().to_string());
    assert!(left.is_empty(), "BIRD still runs: {left:?}");
}

/// Whether this machine gives root a cgroup2 to make labs' cgroups in (the
/// test machines and CI do; without one, teardown searches namespaces).
fn cgroup_available() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(" - cgroup2 "))
}
