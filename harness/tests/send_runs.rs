//! Sends side by side (runner/send.rs, `send_run`): consecutive sends fly
//! at once, and a stopped stream waits for its late replies while the sends
//! after it go; yet every step is judged alone and the first failing step,
//! in step order, is the one reported. Needs root (labs).

mod common;

use std::path::Path;
use std::process::Command;

use common::{repo, three_pod_scenario as scenario};

fn need_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "`run` builds labs and needs root: run the tests with `cargo test`, which starts them \
         through ci/test-runner (root, or a user namespace of its own)"
    );
}

/// Run `scenario` on nftables (calico profile, the model's check skipped:
/// some expectations are wrong on purpose); its stdout.
fn run(dir: &Path, scenario: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(["run", "--skip-model-check", scenario])
        .args(["--profile", "calico", "--dataplane", "nftables"])
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .current_dir(repo())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Five answered sends from three senders: `far`'s UDP (step 5) and
/// `client`'s UDP (step 7) by `wrong`, the others right.
fn answered_sends(wrong: [&str; 2]) -> String {
    format!(
        "  - send: {{protocol: icmp, from: client, to: 203.0.113.10, expect: {{deliveredTo: web, loss: 0}}}}
  - send: {{protocol: udp, from: far, to: 203.0.113.10, expect: {{deliveredTo: {}, loss: 0}}}}
  - send: {{protocol: icmp, from: peer, to: 203.0.113.10, expect: {{deliveredTo: web, loss: 0}}}}
  - send: {{protocol: udp, from: client, to: 203.0.113.10, expect: {{deliveredTo: {}, loss: 0}}}}
  - send: {{protocol: icmp, from: far, to: 203.0.113.10, expect: {{deliveredTo: web, loss: 0}}}}
",
        wrong[0], wrong[1]
    )
}

/// Answered sends in flight together are each judged by their own probes (a
/// run with every expectation right passes), and of two wrong ones the
/// earlier step is the failure reported, whichever lands first.
#[test]
fn sends_in_flight_together_are_judged_alone_and_fail_in_step_order() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let right = scenario(dir.path(), "answered-run", &answered_sends(["web", "web"]));
    let output = run(dir.path(), &right);
    assert!(output.contains("PASS answered-run::nftables"), "{output}");
    let wrong = scenario(dir.path(), "answered-run", &answered_sends(["peer", "far"]));
    let output = run(dir.path(), &wrong);
    assert!(
        output.contains("step 5 (send udp far -> 203.0.113.10) failed"),
        "{output}"
    );
    assert!(
        output.contains("far -> 203.0.113.10 udp: delivered to web ("),
        "{output}"
    );
    assert!(!output.contains("step 7 ("), "{output}");
}

/// A stream stopped when its floating IP is gone (its last packets lost:
/// it waits for them), then sends from its own sender and protocol and from
/// others. `stream_to` is what the stop expects, `sends_to` the sends.
fn stream_then_sends(stream_to: &str, sends_to: &str) -> String {
    format!(
        "  - startStream: {{name: s, protocol: icmp, from: client, to: 203.0.113.10, interval: 2ms}}
  - wait: 100ms
  - annotate: {{pod: web, remove: true}}
  - wait: 300ms
  - stopStream: {{name: s, expect: {{deliveredTo: [{stream_to}]}}}}
  - sends: {{from: [client, peer], protocols: [icmp, udp], to: 203.0.113.10, expect: {{deliveredTo: {sends_to}}}}}
"
    )
}

/// The sends after a stopped stream run while it drains, but it is judged
/// as before: a right run passes, and when both the stop and the sends are
/// wrong the stop (step 8) is the failure reported.
#[test]
fn a_stopped_stream_is_judged_before_the_sends_that_ran_while_it_drained() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let right = scenario(dir.path(), "drain-run", &stream_then_sends("web", "none"));
    let output = run(dir.path(), &right);
    assert!(output.contains("PASS drain-run::nftables"), "{output}");
    let wrong = scenario(dir.path(), "drain-run", &stream_then_sends("far", "far"));
    let output = run(dir.path(), &wrong);
    assert!(output.contains("step 8 (stop stream s) failed"), "{output}");
    assert!(!output.contains("step 9 ("), "{output}");
}

/// A counted wait lasts until its stream has sent that many more packets: at
/// 20ms a packet, 30 packets take 600ms, and the stream stopped right after
/// has sent at least 31 (the one `startStream` waits for, then the wait's
/// 30). A wait that ended early (at once, or after a fixed short time)
/// leaves it a handful.
#[test]
fn a_counted_wait_waits_for_that_many_of_its_streams_packets() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let steps = "  - startStream: {name: s1, protocol: icmp, from: client, to: 203.0.113.10, interval: 20ms}
  - wait: {stream: s1, packets: 30}
  - stopStream: {name: s1, expect: {deliveredTo: [web]}}
";
    let file = scenario(dir.path(), "counted-wait", steps);
    let output = run(dir.path(), &file);
    assert!(output.contains("PASS counted-wait::nftables"), "{output}");
    let case = dir.path().join("reports/cases/counted-wait--nftables.json");
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case).unwrap()).unwrap();
    let stop = case["steps"].as_array().unwrap().last().unwrap().clone();
    assert!(stop["summary"].as_str().unwrap().contains("stop"), "{stop}");
    let sent = stop["lines"][0]["observed"]["sent"].as_u64().unwrap();
    assert!(sent >= 31, "the stream sent {sent} packets: {stop}");
}
