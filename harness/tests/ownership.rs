//! Who owns a lab is read from its namespaces, not from one run folder's
//! records: a process that looks in another run folder (FIP_HARNESS_RUN_DIR)
//! sees a lab another process is building or using as running, and `down`
//! leaves it alone. Needs root (a lab).

mod common;

use std::process::Command;

use common::{node, repo, TestLab};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::registry::RUN_DIR_ENV;
use fip_harness::lab::spec::namespace_prefix;

/// `fip-harness ARGS` with its records in `run_dir`.
fn harness_in(run_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(args)
        .current_dir(repo())
        .env(RUN_DIR_ENV, run_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_lab_owned_by_a_process_with_another_run_folder_is_left_alone() {
    let name = common::lab_name("own");
    let lab = TestLab::build(
        &name,
        vec![node("node-a", &["198.19.0.0/26"])],
        &["client"],
        &[],
    );
    let pinned = Netns::list_with_prefix(&namespace_prefix(&name));
    assert_eq!(pinned.len(), 3, "{pinned:?}");
    let elsewhere = tempfile::tempdir().unwrap();

    let (_, ls) = harness_in(elsewhere.path(), &["ls"]);
    let row = ls
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{ls}"));
    assert!(
        row.contains("running") && row.contains("another run folder"),
        "{row}"
    );

    let (removed, said) = harness_in(elsewhere.path(), &["down", &name]);
    assert!(!removed, "{said}");
    assert!(said.contains("another run folder"), "{said}");
    assert_eq!(
        Netns::list_with_prefix(&namespace_prefix(&name)),
        pinned,
        "down removed namespaces of a lab another process owns: {said}"
    );
    // Looking left nothing behind in the other folder (no lock file).
    let left: Vec<_> = std::fs::read_dir(elsewhere.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    // Once its owner is done, nobody holds it: the namespaces are gone.
    lab.teardown().unwrap();
    assert!(Netns::list_with_prefix(&namespace_prefix(&name)).is_empty());
}

/// A record whose owner pid now names another live process (the pid was
/// reused, and the record names that process's true start time, as a stale
/// or forged one can): the process does not hold the lab's lock, so `ls`
/// says `dead`, not `running`, and `down` may remove the lab. Needs no root.
#[test]
fn a_live_process_under_the_owners_pid_is_not_the_owner() {
    use fip_harness::lab::registry::{process_start_time, LabRecord};
    let run_dir = tempfile::tempdir().unwrap();
    let mut impostor = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = impostor.id();
    let name = "newcomer3pid";
    let record = LabRecord {
        name: name.into(),
        pid,
        start_time: process_start_time(pid),
        kept: false,
        holder: None,
        namespaces: Vec::new(),
        created: 0,
        scenario: None,
        nodes: vec!["node-a".into()],
        externals: Vec::new(),
        pods: Vec::new(),
    };
    std::fs::write(
        run_dir.path().join(format!("{name}.json")),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let (_, ls) = harness_in(run_dir.path(), &["ls"]);
    let _ = impostor.kill();
    let _ = impostor.wait();
    let row = ls
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{ls}"));
    assert!(
        row.contains(" dead ") && !row.contains("running"),
        "a live non-owner under the record's pid shows as the owner: {row}"
    );
}
