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
    // And the same tests as a normal user, so a rootless-only failure fails CI.
    let position = |wanted: &str| ci.lines().position(|line| line == wanted);
    let as_user = position("ci/test-as-user").expect(".ci/run runs ci/test-as-user");
    assert!(position(&commands[1]) < Some(as_user), "{ci}");
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

/// A folder of stand-ins for the programs `ci/install-deps.sh` asks about
/// the machine (`id`, `dpkg-query`) or changes it with (`apt-get`, `sudo`),
/// each writing what it was asked to a log, and a folder with every other
/// program of the system, so a PATH of the two is this machine without the
/// real ones (and without `sudo` unless the case adds its stand-in).
struct FakeMachine {
    dir: tempfile::TempDir,
}

const STOOD_IN: [&str; 5] = [
    "id",
    "dpkg-query",
    "apt-get",
    "debconf-set-selections",
    "sudo",
];

impl FakeMachine {
    fn new(with_sudo: bool) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (fake, real) = (dir.path().join("fake"), dir.path().join("real"));
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        for system in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            for entry in std::fs::read_dir(system).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let link = real.join(&name);
                if STOOD_IN.iter().any(|s| name == *s) || link.exists() {
                    continue;
                }
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
        let mut scripts = vec![
            ("id", r#"[ "$1" = -u ] && echo "$FAKE_UID""#),
            (
                "dpkg-query",
                r#"[ "$FAKE_INSTALLED" = yes ] && echo "install ok installed""#,
            ),
            ("apt-get", r#"echo "apt-get $*" >> "$FAKE_LOG""#),
            ("debconf-set-selections", "cat > /dev/null"),
        ];
        if with_sudo {
            scripts.push((
                "sudo",
                r#"echo "sudo $*" >> "$FAKE_LOG"; [ "$1" = -- ] && shift; FAKE_UID=0 exec "$@""#,
            ));
        }
        for (name, body) in scripts {
            let path = fake.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir }
    }

    /// `command` run by bash in the repository, as `uid` with every package
    /// installed or none: (success, stderr, the stand-ins' log).
    fn run(&self, command: &str, uid: u32, installed: bool) -> (bool, String, String) {
        let log = self.dir.path().join("log");
        let _ = std::fs::remove_file(&log);
        let path = format!(
            "{}:{}",
            self.dir.path().join("fake").display(),
            self.dir.path().join("real").display()
        );
        let output = std::process::Command::new(self.dir.path().join("real/bash"))
            .args(["-c", command])
            .current_dir(repo())
            .env_clear()
            .env("PATH", path)
            .env("FAKE_UID", uid.to_string())
            .env("FAKE_INSTALLED", if installed { "yes" } else { "no" })
            .env("FAKE_LOG", &log)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }
}

/// The README's first command begins with installing the packages: that part
/// works as root on a machine without `sudo` (containers, CI images), as a
/// normal user with `sudo`, and without `sudo` it says what to do.
#[rstest::rstest]
#[case::root_without_sudo_nothing_missing(0, true, false, true, &[][..], "")]
#[case::root_without_sudo_installs(0, false, false, true, &["apt-get install"][..], "")]
#[case::user_raised_with_sudo(1001, false, true, true, &["sudo -- /", "ci/install-deps.sh", "apt-get install"][..], "with sudo")]
#[case::user_without_sudo_is_told_what_to_do(1001, false, false, false, &[][..], "sudo is not installed: run `su -c")]
#[case::user_without_sudo_nothing_missing(1001, true, false, true, &[][..], "")]
fn the_readme_install_step_works_with_and_without_sudo(
    #[case] uid: u32,
    #[case] installed: bool,
    #[case] with_sudo: bool,
    #[case] succeeds: bool,
    #[case] logged: &[&str],
    #[case] said: &str,
) {
    let first = readme_commands()[0].clone();
    let install = first.split(" && ").next().unwrap();
    let machine = FakeMachine::new(with_sudo);
    let (ok, stderr, log) = machine.run(install, uid, installed);
    assert_eq!(ok, succeeds, "`{install}`: {stderr}\n{log}");
    assert!(stderr.contains(said), "`{install}` said: {stderr}");
    for part in logged {
        assert!(
            log.contains(part),
            "`{install}` ran:\n{log}\nstderr: {stderr}"
        );
    }
    if logged.is_empty() {
        assert_eq!(log, "", "`{install}` changed the machine; stderr: {stderr}");
    }
    if log.contains("apt-get install") {
        assert!(
            log.contains("bird") && log.contains("nftables"),
            "installs the missing packages: {log}"
        );
    }
}
