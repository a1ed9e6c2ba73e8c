//! How `run` prints as people see it: plain lines when piped; on a terminal a
//! status line and colour, but no colour when NO_COLOR is set. The terminal is
//! a real pseudo-terminal made by util-linux `script`. Needs root (labs).

mod common;

use std::path::Path;
use std::process::Command;

use common::repo;

/// SGR sequences (colour); the status line's erase (`\x1b[K`) is not one.
const COLOUR: [&str; 3] = ["\x1b[31m", "\x1b[1;31m", "\x1b[32m"];

/// A copy of scenarios/icmp-external-v4.yaml whose reply source is wrong, so
/// that the output has a FAIL line and `<---- WRONG` marks to colour.
fn failing_scenario(dir: &Path) -> String {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let text = std::fs::read_to_string(repo().join("scenarios/icmp-external-v4.yaml"))
        .unwrap()
        .replace("../fixtures", fixtures.to_str().unwrap())
        .replace("name: icmp-external-v4", "name: coloured-output")
        .replace("replySource: 203.0.113.10", "replySource: 203.0.113.99");
    let file = dir.join("coloured-output.yaml");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_owned()
}

fn run_args(dir: &Path) -> Vec<String> {
    vec![
        "run".into(),
        // The model refuses the wrong expectation: skip its check to run it.
        "--skip-model-check".into(),
        failing_scenario(dir),
        "--backend".into(),
        "nftables".into(),
        "--report-dir".into(),
        dir.join("reports").to_str().unwrap().to_owned(),
    ]
}

/// `fip-harness run ...` on a pseudo-terminal; what the terminal showed.
fn on_a_terminal(dir: &Path, no_color: Option<&str>) -> String {
    let command = format!(
        "{} {}",
        env!("CARGO_BIN_EXE_fip-harness"),
        run_args(dir).join(" ")
    );
    let mut script = Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .current_dir(repo());
    script.env_remove("NO_COLOR");
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let output = script.output().expect("util-linux `script`");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn need_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "`run` builds labs and needs root: run the tests with `cargo test`, which starts them \
         through ci/test-runner (root, or a user namespace of its own)"
    );
}

#[test]
fn piped_output_is_plain_lines() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(run_args(dir.path()))
        .current_dir(repo())
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL coloured-output::nftables"),
        "{stdout}"
    );
    assert!(stdout.contains("   <---- WRONG"), "{stdout}");
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\r'),
        "{stdout:?}"
    );
}

/// Logs asked for with RUST_LOG go to stderr; written to a file (not a
/// terminal) they carry no colour codes, NO_COLOR or not.
#[test]
fn logs_to_a_file_are_plain() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args([
            "run",
            "scenarios/icmp-external-v4.yaml",
            "--backend",
            "nftables",
        ])
        .arg("--report-dir")
        .arg(&reports)
        .current_dir(repo())
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DEBUG"),
        "debug logs were asked for: {stderr}"
    );
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

#[test]
fn a_terminal_gets_progress_and_colour_unless_no_color() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let coloured = on_a_terminal(dir.path(), None);
    assert!(
        coloured.contains("\x1b[31mFAIL\x1b[0m coloured-output::nftables"),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("\x1b[1;31m<---- WRONG\x1b[0m"),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("[0/1] running: coloured-output::nftables"),
        "{coloured:?}"
    );

    let plain = on_a_terminal(dir.path(), Some("1"));
    assert!(
        plain.contains("FAIL coloured-output::nftables"),
        "{plain:?}"
    );
    assert!(
        plain.contains("[0/1] running: coloured-output::nftables"),
        "{plain:?}"
    );
    for code in COLOUR {
        assert!(
            !plain.contains(code),
            "NO_COLOR=1 yet {code:?} in {plain:?}"
        );
    }
}

/// A floating IP given up, then a run of sends that expect silence from three
/// senders; only `peer`, beside the pod that held it, can still reach it, and
/// only when the dataplane keeps the old mapping (`mutant:stale-mappings`).
/// `protocols` (a YAML list's items) from three senders to a floating IP
/// nobody holds, one send per sender and protocol (senders outermost).
fn silent_run_scenario(dir: &Path, protocols: &str) -> String {
    common::three_pod_scenario(
        dir,
        "silent-run",
        &format!(
            "  - annotate: {{pod: web, remove: true}}\n  - sends: {{from: [client, far, peer], protocols: [{protocols}], to: 203.0.113.10, expect: {{deliveredTo: none}}}}\n"
        ),
    )
}

/// Run `scenario` on `dataplane` (calico profile); its stdout.
fn run_on(dir: &Path, scenario: &str, dataplane: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args([
            "run",
            scenario,
            "--profile",
            "calico",
            "--dataplane",
            dataplane,
        ])
        .arg("--report-dir")
        .arg(dir.join(dataplane.replace(':', "-")))
        .current_dir(repo())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Consecutive sends that expect silence have their probes in flight
/// together (runner/send.rs, `silent_run`), yet each is judged alone: a leak
/// by the fifth of six fails that step, says where the packets arrived, and
/// the same run on a sound dataplane passes (no probe is taken for another's).
#[test]
fn a_leak_in_a_run_of_silent_sends_fails_the_send_that_leaked() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let scenario = silent_run_scenario(dir.path(), "icmp, udp");
    let sound = run_on(dir.path(), &scenario, "nftables");
    assert!(sound.contains("PASS silent-run::nftables"), "{sound}");
    let leaking = run_on(dir.path(), &scenario, "mutant:stale-mappings");
    assert!(
        leaking.contains("step 9 (send icmp peer -> 203.0.113.10) failed"),
        "{leaking}"
    );
    assert!(
        leaking.contains("peer -> 203.0.113.10 icmp: delivered to web ("),
        "{leaking}"
    );
    assert!(leaking.contains(")   <---- EXPECTED no pod"), "{leaking}");
}

/// A TCP or SCTP send that expects silence waits for its handshake's answer
/// (a SYN-ACK, an INIT ACK) no longer than its silence window
/// (`ProbeSpec::handshake`), yet a leak still completes the handshake, sends
/// its payload and fails the step where it arrived.
#[rstest::rstest]
#[case::tcp("tcp")]
#[case::sctp("sctp")]
fn a_handshake_to_a_leak_completes_within_the_silence_window(#[case] protocol: &str) {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let scenario = silent_run_scenario(dir.path(), protocol);
    let sound = run_on(dir.path(), &scenario, "nftables");
    assert!(sound.contains("PASS silent-run::nftables"), "{sound}");
    let leaking = run_on(dir.path(), &scenario, "mutant:stale-mappings");
    assert!(
        leaking.contains(&format!(
            "step 7 (send {protocol} peer -> 203.0.113.10) failed"
        )),
        "{leaking}"
    );
    assert!(
        leaking.contains(&format!(
            "peer -> 203.0.113.10 {protocol}: delivered to web ("
        )),
        "{leaking}"
    );
}
