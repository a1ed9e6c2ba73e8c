//! Every external program the harness, its tests, benchmarks and diagnostics
//! spawn must be known to `programs::PROGRAMS` (so a missing one is reported
//! with its package), and `ci/install-deps.sh` must install that package, so a
//! fresh machine goes green with the README's two commands. Runs without root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fip_harness::programs::{package_of, PROGRAMS};
use regex::Regex;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The ways the code names a program it spawns. Each is a pattern whose first
/// group is the program.
fn spawn_patterns() -> Vec<Regex> {
    [
        // Command::new("x"), netns.command("x"), require_program("x"), program("x")
        r#"(?:Command::new|\.command|program)\(\s*"([^"\s]+)""#,
        // dataplane::exec::run_in(node, "x", ...)
        r#"run_in\(\s*[^,()]+,\s*"([^"\s]+)""#,
        // the diagnostics table: ("file.txt", "x", &[...])
        r#"\(\s*"[\w.-]+\.txt",\s*"([^"\s]+)""#,
        // per-family tool names: Family::V4 => "iptables-legacy-restore"
        r#"Family::V[46]\s*=>\s*"([\w-]*tables[\w-]*)""#,
        // `fip-harness exec <lab> <member> -- x ...` in tests
        r#""--",\s*"([^"\s]+)""#,
        // drivers/: the interpreter of a script (`#!/usr/bin/env python3`)
        r"(?m)^#!\S*/env\s+(\S+)",
        // drivers/: a program a Python driver runs (`subprocess.run(["nft", ...`)
        r#"subprocess\.\w+\(\s*\[\s*"([^"\s]+)""#,
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap())
    .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            rust_files(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// (program, where it is spawned) for every spawn the patterns find.
fn spawned_programs() -> Vec<(String, String)> {
    let root = repo();
    let mut files = Vec::new();
    for dir in ["harness/src", "harness/tests", "ci"] {
        rust_files(&root.join(dir), &mut files);
    }
    // The drivers shipped beside the harness, in any language.
    files.extend(
        std::fs::read_dir(root.join("drivers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_file()),
    );
    files.sort();
    // The table itself (its unit tests name made-up programs) is not a spawn.
    files.retain(|f| !f.ends_with("harness/src/programs.rs"));
    let comment = Regex::new(r"(?m)^\s*//.*$").unwrap();
    let patterns = spawn_patterns();
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Comments mention programs without spawning them; blank them out
        // (same length, so line numbers stay right).
        let text = if file.extension().is_some_and(|e| e == "rs") {
            comment.replace_all(&text, |c: &regex::Captures| " ".repeat(c[0].len()))
        } else {
            text.as_str().into()
        };
        for pattern in &patterns {
            for capture in pattern.captures_iter(&text) {
                let program = capture.get(1).unwrap();
                let line = text[..program.start()].lines().count();
                let shown = file.strip_prefix(&root).unwrap_or(&file).display();
                found.push((program.as_str().to_string(), format!("{shown}:{line}")));
            }
        }
    }
    found
}

/// The packages in install-deps.sh's `packages=(...)` list.
fn installed_packages() -> BTreeSet<String> {
    let script = std::fs::read_to_string(repo().join("ci/install-deps.sh")).unwrap();
    let list = Regex::new(r"(?m)^packages=\(([^)]*)\)").unwrap();
    let captures = list
        .captures(&script)
        .expect("ci/install-deps.sh has a `packages=(...)` line");
    captures[1].split_whitespace().map(str::to_string).collect()
}

/// Programs spawned under a name that is not a program (a path the user gave,
/// the harness binary itself).
fn not_a_program(name: &str) -> bool {
    name.starts_with("fip-harness") || name.starts_with("CARGO_BIN_EXE")
}

#[test]
fn the_scan_finds_the_programs_we_know_are_spawned() {
    // Guards the patterns themselves: if the code changes how it spawns, this
    // fails instead of the check below passing on an empty list.
    let found: BTreeSet<String> = spawned_programs().into_iter().map(|(p, _)| p).collect();
    for expected in [
        "conntrack",
        "nft",
        "iptables-legacy-restore",
        "ip6tables-legacy-save",
        "iptables-legacy-save",
        "ip",
        "ping",
        "tshark",
        // drivers/nft-driver.py's interpreter
        "python3",
    ] {
        assert!(
            found.contains(expected),
            "scan missed `{expected}`: {found:?}"
        );
    }
}

#[test]
fn every_spawned_program_has_a_package() {
    let unknown: Vec<String> = spawned_programs()
        .into_iter()
        .filter(|(program, _)| !not_a_program(program) && package_of(program).is_none())
        .map(|(program, at)| format!("`{program}` spawned at {at}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "add these programs and their Debian packages to harness/src/programs.rs PROGRAMS \
         (and the package to ci/install-deps.sh):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn install_deps_installs_every_package() {
    let installed = installed_packages();
    let missing: BTreeSet<String> = PROGRAMS
        .iter()
        .filter(|(_, package)| !installed.contains(*package))
        .map(|(program, package)| format!("{package} (for `{program}`)"))
        .collect();
    assert!(
        missing.is_empty(),
        "ci/install-deps.sh does not install: {missing:?}"
    );
}

/// The README's first code block: the two commands for a fresh machine.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md starts with a ```sh block");
    block.lines().map(str::to_string).collect()
}

#[test]
fn ci_runs_the_readme_test_command_verbatim() {
    let commands = readme_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|line| line == commands[1]),
        ".ci/run does not run the README's test command `{}` verbatim",
        commands[1]
    );
}

#[test]
fn test_binaries_start_through_the_runner_and_its_programs_are_installed() {
    let config = std::fs::read_to_string(repo().join(".cargo/config.toml")).unwrap();
    assert!(config.contains(r#"runner = "ci/test-runner""#), "{config}");
    let runner = std::fs::read_to_string(repo().join("ci/test-runner")).unwrap();
    // The commands ci/test-runner runs, each at the start of a line or after `exec`.
    let command = Regex::new(r"(?m)^\s*(?:exec\s+)?([a-z][\w-]*)\s").unwrap();
    let builtins = [
        "if", "fi", "set", "shift", "exec", "echo", "why", "setting", "elif", "exit", "else",
        "export",
    ];
    let programs: BTreeSet<&str> = command
        .captures_iter(&runner)
        .map(|c| c.get(1).unwrap().as_str())
        .filter(|p| !builtins.contains(p))
        .collect();
    for expected in ["unshare", "mount", "ip"] {
        assert!(
            programs.contains(expected),
            "scan missed {expected}: {programs:?}"
        );
    }
    let installed = installed_packages();
    for program in programs {
        let package = package_of(program)
            .unwrap_or_else(|| panic!("ci/test-runner runs `{program}`: add it to PROGRAMS"));
        assert!(
            installed.contains(package),
            "install-deps.sh lacks {package}"
        );
    }
}
