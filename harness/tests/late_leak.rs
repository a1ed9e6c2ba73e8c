//! A leak that arrives after its send's silence window still fails the case
//! (root): a real lab holds the leak in the kernel's neighbour queue for
//! one `retrans_time` (1 s), past the window, and `replay` must fail the
//! send with a `late leak` line. Without the late check the send passes:
//! nothing reached the pod while its window was open.
//!
//! The hold is the kernel's own: node-a learns an IPv6 pod's address by
//! neighbour discovery (Felix makes no static NDP entries), and the pod
//! drops the first neighbour solicitation (an nftables quota in its own
//! namespace, set between `up` and `replay`), so node-a keeps the probes
//! queued until its second solicitation, `retrans_time` later, is answered
//! (net/core/neighbour.c, `__neigh_event_send` queues, `neigh_timer_handler`
//! solicits again). tc netem would delay them too, but this kernel has none.

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

/// Removes the lab by name even when an assertion fails half-way.
struct LabGuard(String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = harness(&["down", &self.0]);
    }
}

/// One IPv6 pod holding a floating IP, and a send to it from outside whose
/// expectation (nothing delivered) is wrong on purpose; a wait keeps the
/// case going while the held probes arrive.
fn scenario(dir: &std::path::Path) -> String {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let text = r#"name: late-leak-v6
cluster:
  cni: FIXTURES/cni/calico-config-floating-ips-on.yaml
  felix:
    floatingIPs: Enabled
  dualStack: true
  pools:
    - manifest: FIXTURES/pools/floating-ips.yaml
  nodes: [node-a]
  externals: [client]
steps:
  - createPod: {name: web, node: node-a, annotations: {cni.projectcalico.org/floatingIPs: '["2001:db8:f1::10"]'}}
  - send: {protocol: icmp, from: client, to: "2001:db8:f1::10", expect: {deliveredTo: none}}
  - wait: 3s
"#
    .replace("FIXTURES", fixtures.to_str().unwrap());
    let file = dir.join("late-leak-v6.yaml");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_owned()
}

#[test]
fn a_leak_held_past_the_silence_window_fails_its_send() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test builds a lab and needs root: run `sudo -E cargo test` (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path());
    let lab = format!("ll{}", std::process::id() % 1_000_000);
    let _guard = LabGuard(lab.clone());
    // The model knows the expectation is wrong: skip its check to run it.
    let up = harness(&[
        "up",
        &file,
        "--name",
        &lab,
        "--until-step",
        "2",
        "--backend",
        "nftables",
        "--routing",
        "model",
        "--skip-model-check",
    ]);
    assert!(up.status.success(), "{}", text(&up));
    // The pod ignores node-a's first neighbour solicitation (a quota of
    // 100 bytes holds one), and answers the next.
    let drop_first = "add table ip6 latetest; \
        add chain ip6 latetest in { type filter hook input priority 0; }; \
        add rule ip6 latetest in icmpv6 type nd-neighbor-solicit quota until 100 bytes drop";
    let nft = harness(&["exec", &lab, "web", "--", "nft", drop_first]);
    assert!(nft.status.success(), "{}", text(&nft));

    let report = dir.path().join("report");
    let replay = harness(&[
        "replay",
        &lab,
        &file,
        "--from-step",
        "2",
        "--skip-model-check",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    let out = text(&replay);
    assert!(
        !replay.status.success(),
        "the late leak passed unseen:\n{out}"
    );
    assert!(
        out.contains("step 2 (send icmp client -> 2001:db8:f1::10) failed: a late leak: packet "),
        "{out}"
    );
    assert!(out.contains("reached web ("), "{out}");
    assert!(out.contains("after its window closed"), "{out}");
    // The quota was used up: the pod dropped one solicitation, so the
    // probes were held, not lost nor delivered at once.
    let rules = harness(&[
        "exec", &lab, "web", "--", "nft", "list", "table", "ip6", "latetest",
    ]);
    assert!(text(&rules).contains("used 100 bytes"), "{}", text(&rules));
}
