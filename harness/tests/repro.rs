//! Reproducing a failure as people do it (root): `up --until-step` brings a
//! lab to the state before a move, `replay --from-step` runs the move and
//! the rest in that kept lab and fails as `run` does; `--json` of `ls`,
//! `state`, `list` and `run` keep their shapes; two runs with one seed send
//! the same SCTP tags and TSNs and the same source ports, and the bundle of
//! a failing step has a pcap per member and a README.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{harness, repo};
use serde_json::Value;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn need_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests build labs and need root: run `sudo -E cargo test` (CI runs as root)"
    );
}

/// Removes the lab by name even when an assertion fails half-way.
struct LabGuard(String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = harness(&["down", &self.0]);
    }
}

/// A copy of a catalogue scenario under a new name, with `edits` applied and
/// its fixtures found from `dir`.
fn scenario_copy(dir: &Path, from: &str, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let mut text = std::fs::read_to_string(repo().join("scenarios").join(from))
        .unwrap()
        .replace("../fixtures", fixtures.to_str().unwrap())
        .replace(
            &format!("name: {}", from.trim_end_matches(".yaml")),
            &format!("name: {name}"),
        );
    for (old, new) in edits {
        assert!(text.contains(old), "{old} in {from}");
        text = text.replace(old, new);
    }
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// The shape of a JSON value: every leaf replaced by its type, every array
/// by the shape of its first element, so a snapshot pins the keys and types
/// and not the values of one run.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => match items.first() {
            Some(first) => Value::Array(vec![shape(first)]),
            None => Value::Array(Vec::new()),
        },
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

/// Who receives `fip` according to `state --json`.
fn holders(state: &Value, fip: &str) -> Vec<String> {
    state["floating_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["floating_ip"] == fip)
        .flat_map(|f| f["holders"].as_array().unwrap().clone())
        .map(|h| h["pod"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn up_until_the_move_then_replay_reproduces_its_failure_in_the_kept_lab() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    // The stream's expectation is wrong on purpose: after the move the
    // packets go to web-b, the scenario says web-a.
    let file = scenario_copy(
        dir.path(),
        "move-across-nodes.yaml",
        "wrong-move",
        &[("afterMoveAt: web-b", "afterMoveAt: web-a")],
    );
    let file = file.to_str().unwrap();
    let lab = format!("rr{}", std::process::id() % 1_000_000);
    let _guard = LabGuard(lab.clone());

    up_until_step_5_keeps_the_lab_and_says_how_to_replay(file, &lab);
    ls_and_state_show_the_kept_lab_before_the_move(&lab);
    replay_from_step_5_fails_as_run_does(file, &lab, dir.path());

    // The lab was kept, moved: web-b holds the floating IP now.
    let state = json_of(&harness(&["state", &lab, "--json"]));
    assert_eq!(holders(&state, "203.0.113.10"), ["web-b"]);

    replaying_into_a_lab_not_kept_is_refused(file);

    let down = harness(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        !std::path::Path::new(&format!("/run/netns/fiph-{lab}-node-a")).exists(),
        "down removed the lab"
    );
}

/// Steps 1-4: the pods, the stream's start (left for replay), the wait.
/// The model refuses the wrong expectation: skip its check to run it.
fn up_until_step_5_keeps_the_lab_and_says_how_to_replay(file: &str, lab: &str) {
    let up = harness(&[
        "up",
        "--skip-model-check",
        file,
        "--name",
        lab,
        "--backend",
        "nftables",
        "--until-step",
        "5",
        "--seed",
        "7",
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let shown = text(&up);
    let members = shown.find("members:").expect("members first");
    let holder = shown.find("203.0.113.10 -> web-a").expect("the holder");
    let rules = shown.find("NAT rules of node-a").expect("rules after");
    assert!(members < holder && holder < rules, "{shown}");
    assert!(shown.contains("stream `s1` (step 3)"), "{shown}");
    assert!(
        shown.contains(&format!("fip-harness replay {lab}")),
        "{shown}"
    );
}

/// `ls --json` shows the lab kept; `state --json` shows web-a holding the
/// floating IP, BIRD's routes and the hosting node's dataplane.
fn ls_and_state_show_the_kept_lab_before_the_move(lab: &str) {
    let ls = harness(&["ls", "--json"]);
    assert!(ls.status.success(), "{}", text(&ls));
    let row = json_of(&ls)
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["lab"] == lab)
        .cloned()
        .expect("the lab in `ls --json`");
    assert_eq!(row["state"], "kept");
    insta::assert_json_snapshot!("ls_json_shape", shape(&row));

    let state = harness(&["state", lab, "--json"]);
    assert!(state.status.success(), "{}", text(&state));
    let state = json_of(&state);
    assert_eq!(holders(&state, "203.0.113.10"), ["web-a"]);
    assert!(
        state["bird"].as_array().is_some_and(|b| !b.is_empty()),
        "BIRD's protocols and routes: {state}"
    );
    // The shape of a hosting node's entry (the fabric, listed first, holds
    // only BIRD's routes and no rules).
    let mut hosting = state.clone();
    hosting["dataplane"] = serde_json::Value::Array(
        state["dataplane"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["member"] == "node-a")
            .cloned()
            .collect(),
    );
    insta::assert_json_snapshot!("state_json_shape", shape(&hosting));
}

/// The move and the rest, in the kept lab: the same failure `run` reports.
fn replay_from_step_5_fails_as_run_does(file: &str, lab: &str, dir: &Path) {
    let reports = dir.join("reports");
    let replay = harness(&[
        "replay",
        "--skip-model-check",
        lab,
        file,
        "--from-step",
        "5",
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(replay.status.code(), Some(1), "{}", text(&replay));
    let shown = text(&replay);
    assert!(shown.contains("FAIL wrong-move::nftables"), "{shown}");
    assert!(shown.contains("step 8 (stop stream s1) failed"), "{shown}");
    assert!(shown.contains("<---- WRONG"), "{shown}");
    // The stream `up` left out ran across the move: replay measured it.
    assert!(
        shown.contains("[move web-a -> web-b: converged in"),
        "{shown}"
    );
    assert!(shown.contains("seed 7"), "the seed `up` used: {shown}");
    let bundle = reports.join("wrong-move/nftables/step-8");
    assert!(bundle.join("README.txt").is_file(), "{shown}");
}

/// Replaying into a lab that is not kept is refused without touching it.
fn replaying_into_a_lab_not_kept_is_refused(file: &str) {
    let refused = harness(&[
        "replay",
        "--skip-model-check",
        "rrnosuchlab",
        file,
        "--from-step",
        "5",
        "--backend",
        "nftables",
        "--profile",
        "calico",
        "--routing",
        "bird",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("cannot be taken over"),
        "{}",
        text(&refused)
    );
}

/// The source ports, SCTP verification tags and INIT fields of the IPv4
/// frames the member sent, from a pcap (Ethernet); each once, as how often a
/// packet is retransmitted depends on timing, not on choices.
fn sent_choices(pcap: &Path, sender: &str) -> std::collections::BTreeSet<String> {
    let sender: std::net::Ipv4Addr = sender.parse().unwrap();
    let file = std::fs::File::open(pcap).unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut found = std::collections::BTreeSet::new();
    while let Some(packet) = reader.next_packet() {
        let data = packet.unwrap().data;
        if data.len() < 34 || data[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &data[14..];
        let header = usize::from(ip[0] & 0x0f) * 4;
        if ip[12..16] != sender.octets() || ip.len() < header + 8 {
            continue;
        }
        let l4 = &ip[header..];
        let port = u16::from_be_bytes([l4[0], l4[1]]);
        let choice = match ip[9] {
            17 => format!("udp sport {port}"),
            6 => format!("tcp sport {port}"),
            132 if l4.len() >= 16 => {
                let word = |at: usize| u32::from_be_bytes(l4[at..at + 4].try_into().unwrap());
                let mut choice = format!("sctp sport {port} vtag {:#x}", word(4));
                // INIT: the initiate tag and initial TSN it chose.
                if l4[12] == 1 && l4.len() >= 32 {
                    choice.push_str(&format!(" init tag {:#x} tsn {:#x}", word(16), word(28)));
                }
                choice
            }
            _ => continue,
        };
        found.insert(choice);
    }
    found
}

#[test]
fn one_seed_sends_the_same_tags_and_ports_and_the_bundle_has_a_pcap_per_member() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let sends = |protocol: &str| {
        format!(
            "  - send:\n      protocol: {protocol}\n      from: client\n      to: 203.0.113.10\n      count: 2\n      expect:\n        deliveredTo: web\n"
        )
    };
    // SCTP, UDP and TCP sends, then a send whose reply source is wrong, so
    // the run fails and leaves its bundle.
    let steps = format!(
        "steps:\n  - createPod:\n      name: web\n      node: node-a\n      annotations:\n        cni.projectcalico.org/floatingIPs: '[\"203.0.113.10\"]'\n{}{}{}  - send:\n      protocol: icmp\n      from: client\n      to: 203.0.113.10\n      expect:\n        replySource: 203.0.113.99\n",
        sends("sctp"),
        sends("udp"),
        sends("tcp")
    );
    let source = std::fs::read_to_string(repo().join("scenarios/icmp-external-v4.yaml")).unwrap();
    let head = &source[..source.find("steps:").unwrap()];
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let scenario = format!("{head}{steps}")
        .replace("../fixtures", fixtures.to_str().unwrap())
        .replace("name: icmp-external-v4", "name: seeded-sends");
    let file = dir.path().join("seeded-sends.yaml");
    std::fs::write(&file, scenario).unwrap();

    let run = |seed: &str, reports: &str| {
        let reports = dir.path().join(reports);
        let output = harness(&[
            "run",
            "--skip-model-check",
            file.to_str().unwrap(),
            "--backend",
            "nftables",
            "--seed",
            seed,
            "--json",
            "--report-dir",
            reports.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        (
            json_of(&output),
            reports.join("seeded-sends/nftables/step-5"),
        )
    };
    let (summary, first) = run("99", "first");
    let (_, second) = run("99", "second");
    let (_, other) = run("100", "other");

    assert_eq!(summary["seed"], 99, "the seed is in the summary");
    assert_eq!(summary["scenarios"][0]["seed"], 99);
    insta::assert_json_snapshot!("run_json_shape", shape(&summary));
    let junit = std::fs::read_to_string(dir.path().join("first/junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<property name="seed" value="99"/>"#),
        "{junit}"
    );

    // The client's address in the lab's plan (external host 0).
    let client = "198.18.1.10";
    let choices = sent_choices(&first.join("client/capture.pcap"), client);
    for kind in ["sctp sport", "init tag", "udp sport", "tcp sport"] {
        assert!(
            choices.iter().any(|c| c.contains(kind)),
            "{kind} in {choices:?}"
        );
    }
    assert_eq!(
        choices,
        sent_choices(&second.join("client/capture.pcap"), client)
    );
    assert_ne!(
        choices,
        sent_choices(&other.join("client/capture.pcap"), client),
        "another seed chooses otherwise"
    );

    // A pcap per member that sends or receives, and what each file is.
    for member in ["client", "node-a", "node-b", "web"] {
        let pcap = std::fs::read(first.join(member).join("capture.pcap")).unwrap();
        assert!(pcap.len() > 24, "{member}'s capture has frames");
    }
    let readme = std::fs::read_to_string(first.join("README.txt")).unwrap();
    for file in [
        "capture.pcap",
        "nat-rules.txt",
        "conntrack.txt",
        "control-plane.json",
    ] {
        assert!(readme.contains(file), "{file} in README.txt");
    }
    let rules = std::fs::read_to_string(first.join("node-a/nat-rules.txt")).unwrap();
    assert!(
        rules.contains("203.0.113.10"),
        "the backend's dump: {rules}"
    );
    let conntrack = std::fs::read_to_string(first.join("node-a/conntrack.txt")).unwrap();
    assert!(
        conntrack.contains("203.0.113.10"),
        "the crate's listing: {conntrack}"
    );
}

#[test]
fn list_json_keeps_its_shape() {
    let list = harness(&["list", "--json", "scenarios"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed = json_of(&list);
    assert!(listed.as_array().unwrap().len() > 30);
    insta::assert_json_snapshot!("list_json_shape", shape(&listed));
}
