//! Hostile input: `fip-harness validate` on every file of tests/hostile/ and on
//! cases that cannot live in git (a FIFO, a symlink loop, a deeply nested file,
//! a file over the size limit, an empty folder, /etc/passwd as a scenario).
//! Each must end with located errors (or pass, for a BOM), never a panic, within
//! a hang guard and under a memory limit; its output is an insta snapshot.
//! Runs without root.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::repo;

/// A hang guard, not a performance threshold: each case takes well under a
/// second; a case that hangs (a FIFO read, /dev/zero) would never end.
const HANG_GUARD: Duration = Duration::from_secs(120);
/// Address space for the child: a file that makes it grow without bound fails.
const MEMORY_LIMIT: u64 = 2 << 30;

/// (exit code, stdout + stderr) of `validate path`.
fn validate(path: &Path) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fip-harness"));
    command
        .arg("validate")
        .arg(path)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG_GUARD {
            child.kill().unwrap();
            panic!("validate {} did not end", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// Checks every case shares, then the text with machine paths replaced.
fn checked(path: &Path, tmp: Option<&Path>) -> String {
    let (code, text) = validate(path);
    assert!(
        matches!(code, Some(0 | 1)),
        "{}: exit {code:?} (a panic or a signal): {text}",
        path.display()
    );
    assert!(!text.contains("panicked"), "{text}");
    // Nothing of /etc/passwd or /etc/shadow is ever quoted.
    assert!(!text.contains("root:"), "{text}");
    let shown = path.display().to_string();
    for line in text.lines().filter(|l| !l.contains("scenario(s) valid")) {
        let place: Vec<&str> = line
            .strip_prefix(&shown)
            .unwrap_or(line)
            .splitn(4, ':')
            .collect();
        assert!(
            place.len() == 4
                && place[1].parse::<usize>().is_ok()
                && place[2].parse::<usize>().is_ok(),
            "every error is located (file:line:column): {line}"
        );
    }
    let mut text = text.replace(
        &repo().canonicalize().unwrap().display().to_string(),
        "<repo>",
    );
    if let Some(tmp) = tmp {
        text = text.replace(&tmp.canonicalize().unwrap().display().to_string(), "<tmp>");
        text = text.replace(&tmp.display().to_string(), "<tmp>");
    }
    text
}

#[test]
fn every_file_of_the_corpus_gives_its_expected_error() {
    let dir = repo().join("harness/tests/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is there");
    for file in files {
        let relative = file.strip_prefix(repo()).unwrap().to_owned();
        let name = file.file_stem().unwrap().to_str().unwrap().to_string();
        let text = checked(&relative, None);
        // A normal user (ci/test-runner's namespace) cannot read /etc/shadow
        // at all: the refusal then says so, still showing none of it.
        if name == "manifest-etc-shadow" && std::fs::File::open("/etc/shadow").is_err() {
            let refused = "cannot read a Calico IPPool manifest: `/etc/shadow`: permission denied";
            assert!(text.contains(refused), "{text}");
            continue;
        }
        insta::assert_snapshot!(format!("hostile__{name}"), text);
    }
}

#[test]
fn inputs_that_cannot_live_in_git_are_refused_with_a_location() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut cases: Vec<(&str, PathBuf)> = Vec::new();

    let fifo = root.join("fifo/x.yaml");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    cases.push(("fifo", fifo));

    let looped = root.join("loop");
    std::fs::create_dir_all(&looped).unwrap();
    std::fs::write(looped.join("a.yaml"), "name: a\n").unwrap();
    std::os::unix::fs::symlink(".", looped.join("l1")).unwrap();
    std::os::unix::fs::symlink(".", looped.join("l2")).unwrap();
    cases.push(("symlink-loop", looped));

    let self_link = root.join("self.yaml");
    std::os::unix::fs::symlink(&self_link, &self_link).unwrap();
    cases.push(("self-symlink", self_link));

    let deep = root.join("deep.yaml");
    std::fs::write(&deep, format!("name: {}\n", "[".repeat(200_000))).unwrap();
    cases.push(("deep-nesting", deep));

    let deep_block = root.join("deep-block.yaml");
    let block: String = (0..600)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    std::fs::write(&deep_block, block).unwrap();
    cases.push(("deep-block-nesting", deep_block));

    let big = root.join("big.yaml");
    std::fs::write(&big, "#".repeat(3 << 20)).unwrap();
    cases.push(("too-big", big));

    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    cases.push(("empty-folder", empty));

    cases.push(("etc-passwd", PathBuf::from("/etc/passwd")));

    for (name, path) in cases {
        let text = checked(&path, Some(root));
        assert!(text.contains("1 error(s)"), "{name}: {text}");
        insta::assert_snapshot!(format!("generated__{name}"), text);
    }
}
