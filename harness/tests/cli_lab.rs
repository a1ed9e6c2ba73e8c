//! The commands people use on a live lab, as they run them (root): `up` a
//! scenario, `exec` ping to its floating IP from the external host, `state`,
//! `ls`, `down`; and `run` on a scenario whose expectation is wrong, which must
//! print expected against actual and leave a diagnostics bundle with pcaps.

mod common;

use std::process::Output;

use common::{harness, repo};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn lab_namespaces(lab: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(&format!("fiph-{lab}-")))
        .collect()
}

/// Removes the lab by name even when an assertion fails half-way.
struct LabGuard(String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = harness(&["down", &self.0]);
    }
}

/// `up scenarios/icmp-external-v4.yaml --name <lab>` with `flags` after.
fn up_icmp_external(lab: &str, flags: &[&str]) -> Output {
    let mut args = vec!["up", "scenarios/icmp-external-v4.yaml", "--name", lab];
    args.extend_from_slice(flags);
    harness(&args)
}

#[rstest::rstest]
#[case::nftables("nftables", 0)]
#[case::iptables("iptables", 1)]
fn up_then_ping_the_floating_ip_from_the_external_host(#[case] backend: &str, #[case] n: u32) {
    let lab = format!("u{}{n}", std::process::id());
    let _guard = LabGuard(lab.clone());
    let up = up_icmp_external(&lab, &["--backend", backend]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("203.0.113.10 -> web (198.19.0.0) on node-a"),
        "{}",
        text(&up)
    );

    let ping = harness(&[
        "exec",
        &lab,
        "client",
        "--",
        "ping",
        "-c1",
        "-W2",
        "203.0.113.10",
    ]);
    assert!(ping.status.success(), "{}", text(&ping));
    assert!(
        text(&ping).contains("from 203.0.113.10"),
        "the reply comes from the floating IP: {}",
        text(&ping)
    );

    let state = harness(&["state", &lab]);
    assert!(state.status.success(), "{}", text(&state));
    assert!(
        text(&state).contains("203.0.113.10"),
        "state shows the mapping: {}",
        text(&state)
    );
    assert!(text(&harness(&["ls"])).contains(&lab));

    let down = harness(&["down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(lab_namespaces(&lab), Vec::<String>::new());
}

/// Longer than a send step tries again for (runner/send.rs `RETRY_BUDGET`,
/// 6 s), so that a send started while the fabric's BIRD is held would fail.
const HELD: std::time::Duration = std::time::Duration::from_secs(10);

/// A stopped (SIGSTOP) BIRD of the test's own lab, continued when this goes,
/// even when an assertion fails.
struct Held(nix::unistd::Pid);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// Under BIRD a step that gives a pod a floating IP ends only once the fabric
/// routes it: with the fabric's BIRD held still for longer than the next
/// step's send tries, the send still reaches the pod at once after it, and
/// the fabric's route is BIRD's, through the hosting node.
#[test]
fn a_step_ends_only_once_bgp_carries_its_floating_ip() {
    let lab = format!("f{}", std::process::id());
    let _guard = LabGuard(lab.clone());
    let scenario = "harness/tests/data/annotate-then-send-v4.yaml";
    // Step 1 only: the pod runs and its block is routed everywhere.
    let up = harness(&["up", scenario, "--name", &lab, "--until-step", "2"]);
    assert!(up.status.success(), "{}", text(&up));
    let pid_file = fip_harness::lab::daemons::lab_dir(&lab).join("fabric.bird.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let held = Held(pid);
    let release = std::thread::spawn(move || {
        std::thread::sleep(HELD);
        drop(held);
    });
    let reports = tempfile::tempdir().unwrap();
    let replay = harness(&[
        "replay",
        &lab,
        scenario,
        "--from-step",
        "2",
        "--report-dir",
        reports.path().to_str().unwrap(),
    ]);
    release.join().unwrap();
    assert!(replay.status.success(), "{}", text(&replay));

    let route = harness(&[
        "exec",
        &lab,
        "fabric",
        "--",
        "ip",
        "-4",
        "route",
        "show",
        "203.0.113.10",
    ]);
    assert!(route.status.success(), "{}", text(&route));
    let node_a = harness(&[
        "exec", &lab, "node-a", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0",
    ]);
    let uplink = text(&node_a)
        .split_whitespace()
        .find_map(|word| word.strip_suffix("/24").map(str::to_string))
        .expect("node-a's uplink address");
    let route = text(&route);
    assert!(
        route.contains(&format!("via {uplink}")) && route.contains("proto bird"),
        "{route}"
    );
}

#[test]
fn a_wrong_expectation_shows_expected_against_actual_and_leaves_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let scenario = std::fs::read_to_string(repo().join("scenarios/icmp-external-v4.yaml"))
        .unwrap()
        .replace("../fixtures", fixtures.to_str().unwrap())
        .replace("name: icmp-external-v4", "name: wrong-reply-source")
        .replace("replySource: 203.0.113.10", "replySource: 203.0.113.99");
    let file = dir.path().join("wrong-reply-source.yaml");
    std::fs::write(&file, scenario).unwrap();
    let reports = dir.path().join("reports");

    // The model refuses the wrong expectation at validation: skip its check
    // to see the run judge it.
    let run = harness(&[
        "run",
        "--skip-model-check",
        file.to_str().unwrap(),
        "--backend",
        "nftables",
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let table: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("<----"))
        .map(str::trim)
        .collect();
    insta::assert_snapshot!(table.join("\n"), @r"
    client -> 203.0.113.10 icmp: delivered to web (3); pod saw dst 198.19.0.0 src 198.18.1.10; replies from 203.0.113.10 (sent: 3, lost: 0)   <---- WRONG
    reply source: 203.0.113.10   <---- EXPECTED 203.0.113.99
    ");
    assert!(text(&run).contains("0 passed, 1 failed"), "{}", text(&run));

    let bundle = reports.join("wrong-reply-source/nftables/step-2");
    for file in [
        "control-plane.json",
        "node-a/nftables.txt",
        "node-a/routes-v4.txt",
        "node-a/conntrack.txt",
        "fabric/routes-v4.txt",
        "client/addresses.txt",
        "web/neighbours.txt",
    ] {
        assert!(bundle.join(file).is_file(), "{file} in the bundle");
    }
    let rules = std::fs::read_to_string(bundle.join("node-a/nftables.txt")).unwrap();
    // Felix's rule for the floating IP, as `nft list ruleset` shows it.
    assert!(
        rules
            .lines()
            .any(|l| l.contains("ip daddr 203.0.113.10 counter packets")
                && l.contains("dnat to 198.19.0.0 comment \"cali:")),
        "{rules}"
    );
    let pcap = std::fs::read(bundle.join("web/capture.pcap")).unwrap();
    // Either byte order, micro- or nanosecond timestamps.
    let magic = u32::from_be_bytes(pcap[..4].try_into().unwrap());
    let magics = [0xa1b2_c3d4_u32, 0xa1b2_3c4d];
    assert!(
        magics.contains(&magic) || magics.contains(&magic.swap_bytes()),
        "a pcap file: {magic:#x}"
    );
    assert!(
        pcap.len() > 24 + 3 * 98,
        "the three echo requests are in it"
    );

    // The iptables backend's rules are in its bundle too: dumped through the
    // backend, with the legacy tools it writes with, not Debian's nft-based
    // `iptables-save`.
    let iptables_reports = dir.path().join("reports-iptables");
    // The model refuses the wrong expectation at validation: skip its check
    // to see the run judge it.
    let run = harness(&[
        "run",
        "--skip-model-check",
        file.to_str().unwrap(),
        "--backend",
        "iptables",
        "--report-dir",
        iptables_reports.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let rules = std::fs::read_to_string(
        iptables_reports.join("wrong-reply-source/iptables/step-2/node-a/nat-rules.txt"),
    )
    .unwrap();
    assert!(
        rules.lines().any(|l| l.starts_with("-A cali-fip-dnat")
            && l.contains("-d 203.0.113.10/32")
            && l.contains("--to-destination 198.19.0.0")),
        "{rules}"
    );

    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("wrong-reply-source::nftables"), "{junit}");
    assert!(junit.contains("<failure"), "{junit}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["scenarios"][0]["outcome"]["result"], "failed");
}

/// Felix's nftables mode came in v3.29: `up` under v3.28 refuses the
/// nftables backend before building anything, and without `--backend` the
/// lab gets the release's Felix, iptables.
#[test]
fn up_under_a_release_before_nftables_mode_uses_iptables_and_refuses_nftables() {
    let refused = format!("r{}", std::process::id());
    let _refused_guard = LabGuard(refused.clone());
    let up = up_icmp_external(&refused, &["--calico", "v3.28", "--backend", "nftables"]);
    assert!(!up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("icmp-external-v4.yaml: no nftables backend: Calico v3.28.5 lacks it: Felix's nftables mode"),
        "{}",
        text(&up)
    );
    assert_eq!(lab_namespaces(&refused), Vec::<String>::new());

    let lab = format!("i{}", std::process::id());
    let _guard = LabGuard(lab.clone());
    let up = up_icmp_external(&lab, &["--calico", "v3.28"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("NAT rules of node-a (iptables):"),
        "{}",
        text(&up)
    );
}
