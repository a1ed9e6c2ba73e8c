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
