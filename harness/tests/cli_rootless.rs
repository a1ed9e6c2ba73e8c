//! The harness run by a user who is not root: `up` builds a lab in a user
//! namespace of its own and leaves a holder, `ls` shows it kept, `exec` and
//! `state` reach it through the holder, `down` removes it and ends the holder.
//!
//! The commands run in a user namespace made with `unshare --map-user`, where
//! this test's user is uid 4242 and has no capabilities: that works whether the
//! suite runs as root or as a normal user inside ci/test-runner's namespace,
//! so the rootless path is tested either way. One long-lived `sleep` holds that
//! namespace and every command joins it with `nsenter`, because a process can
//! enter a lab's namespaces only from the user namespace they were made in.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::{lab_name, repo};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::registry::{LabRecord, RUN_DIR_ENV};
use fip_harness::lab::spec::namespace_prefix;

const USER: &str = "4242";

/// A user namespace in which this process's user is the unprivileged `USER`.
struct Unprivileged {
    sleeper: Child,
}

impl Unprivileged {
    fn new() -> Self {
        let sleeper = Command::new("unshare")
            .args(["--user", "--map-user", USER, "--map-group", USER, "--"])
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (package util-linux)");
        let user = Self { sleeper };
        // Ready once unshare has become `sleep` inside the namespace.
        let comm = format!("/proc/{}/comm", user.sleeper.id());
        while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
            std::thread::yield_now();
        }
        user
    }

    /// `fip-harness ARGS` as the unprivileged user, records under `runtime`.
    fn fip(&self, runtime: &Path, args: &[&str]) -> Output {
        self.fip_with_path(runtime, args, &std::env::var_os("PATH").unwrap_or_default())
    }

    /// [`Unprivileged::fip`] with this PATH.
    fn fip_with_path(&self, runtime: &Path, args: &[&str], path: &std::ffi::OsStr) -> Output {
        Command::new("nsenter")
            .arg("--preserve-credentials")
            .args(["--user", "--target", &self.sleeper.id().to_string(), "--"])
            .arg(env!("CARGO_BIN_EXE_fip-harness"))
            .args(args)
            .current_dir(repo())
            .env("XDG_RUNTIME_DIR", runtime)
            .env("PATH", path)
            .env_remove(RUN_DIR_ENV)
            .output()
            .expect("nsenter (package util-linux)")
    }
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_user_who_is_not_root_brings_up_uses_and_removes_a_lab() {
    let user = Unprivileged::new();
    let runtime = tempfile::tempdir().unwrap();
    let lab = lab_name("rl");
    let scenario = "scenarios/icmp-external-v4.yaml";
    ok(&user.fip(
        runtime.path(),
        &["up", scenario, "--name", &lab, "--routing", "model"],
    ));

    // The record is in the user's runtime directory and names a live holder.
    let record_path = runtime.path().join(format!("fip-harness/labs/{lab}.json"));
    let record = LabRecord::read(&record_path).expect("the lab's record");
    let holder = record.holder.expect("a rootless lab names its holder");
    assert!(record.kept && holder.alive(), "{record:?}");
    // Nothing of it is pinned where this process (root, or the test runner's
    // namespace) pins namespaces.
    assert!(Netns::list_with_prefix(&namespace_prefix(&lab)).is_empty());

    let ls = ok(&user.fip(runtime.path(), &["ls"]));
    let line = ls.lines().find(|l| l.starts_with(&lab)).expect(&ls);
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[2], "kept", "{line}");
    assert_eq!(columns[3], "5", "fabric, two nodes, client, web: {line}");

    let ping = ["-c1", "-W5", "203.0.113.10"];
    let exec = [&["exec", &lab, "client", "--", "ping"][..], &ping[..]].concat();
    ok(&user.fip(runtime.path(), &exec));
    let state = ok(&user.fip(runtime.path(), &["state", &lab, "--no-rules"]));
    assert!(state.contains("203.0.113.10"), "{state}");

    let down = ok(&user.fip(runtime.path(), &["down", &lab]));
    assert_eq!(down.matches("removed namespace").count(), 5, "{down}");
    assert!(!record_path.exists());
    // SIGTERM ends the holder; wait for that event, not for a time.
    while holder.alive() {
        std::thread::yield_now();
    }
    let ls = ok(&user.fip(runtime.path(), &["ls"]));
    assert!(!ls.contains(&lab), "{ls}");
}

#[test]
fn exec_into_a_lab_nobody_holds_says_it_is_not_up() {
    let user = Unprivileged::new();
    let runtime = tempfile::tempdir().unwrap();
    let out = user.fip(runtime.path(), &["exec", "nolab", "client", "--", "true"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no lab named 'nolab' is up"), "{stderr}");
}

#[test]
fn conform_runs_for_a_user_who_is_not_root() {
    let user = Unprivileged::new();
    let runtime = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let out = user.fip(
        runtime.path(),
        &[
            "conform",
            "--explore-time",
            "0s",
            "--dataplane",
            "nft-maps",
            "--routing",
            "model",
            "--report-dir",
            reports.path().to_str().unwrap(),
            "scenarios/icmp-external-v4.yaml",
        ],
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("conformant with Calico floating-IP semantics: 1/1 cases"),
        "{stdout}"
    );
}

/// A kernel that refuses, inside a user namespace, what a chosen backend
/// needs makes `run` stop at start with one line naming the refusal and what
/// to do, before any lab is built, and a backend that does not need it
/// still runs. No kernel can be made to refuse on demand, so an `nft` ahead
/// on PATH refuses NAT rules in the words Linux 6.18 refuses a payload write
/// there with, and hands every other ruleset to the real nft.
#[test]
fn a_refused_kernel_feature_is_one_line_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let user = Unprivileged::new();
    let runtime = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let nft = bin.path().join("nft");
    let real = common::program("nft");
    let script = format!(
        "#!/bin/sh\nrules=$(cat)\ncase \"$rules\" in *dnat*)\n  echo '/dev/stdin:4:5-30: \
         Error: Could not process rule: Operation not permitted' >&2; exit 1;;\nesac\n\
         printf '%s\\n' \"$rules\" | exec {} \"$@\"\n",
        real.display()
    );
    std::fs::write(&nft, script).unwrap();
    std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(std::iter::once(bin.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let lab = lab_name("rp");
    let scenario = "scenarios/icmp-external-v4.yaml";
    let args = ["run", scenario, "--backend", "nftables", "--report-dir"];
    let reports = runtime.path().join("reports");
    let args = [
        &args[..],
        &[reports.to_str().unwrap(), "--keep-on-failure", &lab],
    ]
    .concat();
    let out = user.fip_with_path(runtime.path(), &args, &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let refusal = stderr
        .lines()
        .find(|l| l.contains("this kernel refuses nf_tables NAT rules"))
        .unwrap_or_else(|| panic!("no refusal line in:\n{stderr}"));
    assert!(refusal.contains("Operation not permitted"), "{refusal}");
    assert!(refusal.contains("run fip-harness as root"), "{refusal}");
    // Before any lab: no case ran, nothing was recorded or kept.
    assert!(!stderr.contains("FAIL") && !reports.exists(), "{stderr}");
    let records = runtime.path().join("fip-harness/labs");
    let left: Vec<_> = std::fs::read_dir(&records)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // The iptables backend needs no nf_tables NAT: the probe lets it through.
    let args = [
        "run",
        scenario,
        "--backend",
        "iptables",
        "--routing",
        "model",
    ];
    let args = [&args[..], &["--report-dir", reports.to_str().unwrap()]].concat();
    let stdout = ok(&user.fip_with_path(runtime.path(), &args, &path));
    assert!(
        stdout.contains("PASS icmp-external-v4::iptables"),
        "{stdout}"
    );
}

/// A lab record (wrong, or forged) that names as its holder a live process
/// that is not one: `state` says what that process is instead of calling it
/// gone, and `down` removes the record without joining or signalling it.
#[test]
fn a_live_process_a_record_wrongly_names_as_holder_is_said_to_be_no_holder() {
    use fip_harness::lab::registry::process_start_time;
    use fip_harness::lab::rootless::NsHolder;
    let user = Unprivileged::new();
    let runtime = tempfile::tempdir().unwrap();
    let lab = lab_name("fh");
    let mut decoy = Command::new("sleep")
        .arg("infinity")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ends with the test, whatever happens.
    struct Reap<'a>(&'a mut Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = NsHolder {
        pid: decoy.id(),
        start_time: process_start_time(decoy.id()).unwrap(),
    };
    let record = LabRecord {
        name: lab.clone(),
        pid: holder.pid,
        start_time: Some(holder.start_time),
        kept: true,
        holder: Some(holder),
        namespaces: vec![format!("fiph-{lab}-fabric")],
        created: 0,
        scenario: None,
        nodes: vec![],
        externals: vec![],
        pods: vec![],
    };
    let labs = runtime.path().join("fip-harness/labs");
    std::fs::create_dir_all(&labs).unwrap();
    let record_path = labs.join(format!("{lab}.json"));
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let decoy = Reap(&mut decoy);

    let state = user.fip(runtime.path(), &["state", &lab]);
    let said = String::from_utf8_lossy(&state.stderr).into_owned();
    assert!(!state.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "names process {} as the holder of its namespaces, but process {} is `sleep infinity`, \
             not `fip-harness hold {lab}`",
            holder.pid, holder.pid
        )) && !said.contains("is gone"),
        "{said}"
    );

    let down = user.fip(runtime.path(), &["down", &lab]);
    let said = String::from_utf8_lossy(&down.stderr).into_owned();
    assert!(down.status.success(), "{said}");
    assert!(said.contains("the record is wrong or forged"), "{said}");
    assert!(!record_path.exists(), "down left the record");
    let running = decoy.0.try_wait().unwrap().is_none();
    assert!(
        running,
        "down signalled a process that is not the lab's holder"
    );
}

/// Another user's rootless lab, seen by root: `ls` lists it with its owner,
/// read-only, and `down` of its name leaves it alone and says whose it is.
/// The user is a bare uid (no account needed) run through `setpriv`; it needs
/// the real root, so under ci/test-runner's user namespace it is skipped.
#[test]
fn root_sees_a_users_rootless_lab_and_leaves_it_alone() {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    if !uid_map.split_whitespace().eq(["0", "0", "4294967295"]) {
        eprintln!("skipped: needs the host's root to run a command as another uid");
        return;
    }
    let uid = (42_000 + std::process::id() % 1000).to_string();
    let lab = lab_name("ru");
    let as_user = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_fip-harness"))
            .args(args)
            .current_dir(repo())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove(RUN_DIR_ENV)
            .env("HOME", "/")
            .output()
            .expect("setpriv (package util-linux)")
    };
    let as_root = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fip-harness"))
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let scenario = "scenarios/icmp-external-v4.yaml";
    let up = as_user(&["up", scenario, "--name", &lab, "--routing", "model"]);
    let ls = as_root(&["ls"]);
    let ls_json = as_root(&["ls", "--json"]);
    let down = as_root(&["down", &lab]);
    let record = std::path::PathBuf::from(format!("/tmp/fip-harness-{uid}/labs/{lab}.json"));
    let still_there = record.exists();
    let user_down = as_user(&["down", &lab]);
    let _ = std::fs::remove_dir_all(format!("/tmp/fip-harness-{uid}"));

    ok(&up);
    let ls = ok(&ls);
    let line = ls.lines().find(|l| l.starts_with(&lab)).expect(&ls);
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[2], "kept", "{line}");
    assert_eq!(
        columns[3], "5",
        "its namespaces, through its holder: {line}"
    );
    assert!(
        line.contains(&format!("rootless lab of uid {uid}: read-only here")),
        "{line}"
    );
    let rows: serde_json::Value = serde_json::from_str(&ok(&ls_json)).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["lab"] == lab.as_str())
        .expect("the lab in ls --json");
    assert_eq!(row["owner"], format!("uid {uid}").as_str(), "{row}");
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(!down.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "a rootless lab of uid {uid} is left alone: root's `down` never removes"
        )),
        "{said}"
    );
    assert!(still_there, "root's down removed the user's record");
    let user_down = ok(&user_down);
    assert_eq!(
        user_down.matches("removed namespace").count(),
        5,
        "{user_down}"
    );
}
