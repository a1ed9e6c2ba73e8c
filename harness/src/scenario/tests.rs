//! Loading rules, on texts placed in scenarios/ so relative fixture paths resolve
//! (tests run with harness/ as the current directory).

use std::path::Path;

use super::*;
use crate::calico::Encapsulation;
use crate::check::Loss;

const HEAD: &str = "cluster:
  cni: ../fixtures/cni/calico-config-floating-ips-on.yaml
  felix: {floatingIPs: Enabled}
  nodes: [node-a, node-b]
  externals: [client]
";

fn load(text: &str) -> Result<Scenario, ScenarioErrors> {
    load_str(text, Path::new("../scenarios/test-case.yaml"))
}

/// The errors of `text`, with the repository's absolute path (errors show
/// referenced files resolved) as `<repo>`, so snapshots hold on any checkout.
fn errors(text: &str) -> String {
    let repo = Path::new("..").canonicalize().unwrap();
    load(text)
        .unwrap_err()
        .to_string()
        .replace(&repo.display().to_string(), "<repo>")
}

#[test]
fn example_scenarios_resolve() {
    for name in [
        "icmp-external-v4",
        "feature-off-in-cni",
        "move-across-nodes",
    ] {
        let scenario = load_file(Path::new(&format!("../scenarios/{name}.yaml"))).unwrap();
        insta::assert_yaml_snapshot!(name, scenario);
    }
}

#[test]
fn defaults() {
    let s = load(&format!("{HEAD}steps: []\n")).unwrap();
    assert_eq!(s.name, "test-case", "name defaults to the file stem");
    assert_eq!(s.backends.len(), 3, "every backend by default");
    assert_eq!(s.profiles, vec![ConntrackProfile::Calico]);
    assert_eq!(s.cluster.pools.len(), 1, "default IPv4 pool");
    assert_eq!(s.cluster.pools[0].cidr.to_string(), "198.19.0.0/16");
    assert!(s.cluster.cni_features().floating_ips);
    assert!(s.cluster.felix_floating_ips.is_enabled());
    let dual = load(&format!(
        "{HEAD}  dualStack: true\nprofile: strict\nsteps: []\n"
    ))
    .unwrap();
    assert_eq!(dual.cluster.pools[1].cidr.to_string(), "2001:db8:1::/48");
    assert_eq!(dual.profiles, vec![ConntrackProfile::Strict]);
    let felix_off = HEAD.replace("felix: {floatingIPs: Enabled}", "felix: {}");
    assert!(!load(&format!("{felix_off}steps: []\n"))
        .unwrap()
        .cluster
        .felix_floating_ips
        .is_enabled());
}

#[test]
fn send_defaults_and_loss() {
    let s = load(&format!(
        "{HEAD}steps:
  - createPod: {{name: web, node: node-a}}
  - send: {{protocol: udp, from: client, to: web, expect: {{deliveredTo: web}}}}
  - send: {{protocol: icmp, from: web, to: node-b/v6, expect: {{deliveredTo: none}}}}
"
    ))
    .unwrap();
    let Step::Send(first) = &s.steps[1] else {
        panic!()
    };
    assert_eq!((first.count, first.port), (DEFAULT_COUNT, DEFAULT_PORT));
    assert_eq!(first.interval, DEFAULT_INTERVAL);
    assert_eq!(first.expect.loss, Some(Loss::Packets(0)));
    let Step::Send(second) = &s.steps[2] else {
        panic!()
    };
    assert_eq!(second.expect.loss, None);
}

#[test]
fn inline_pool_with_modes() {
    let s = load(&format!(
        "{HEAD}  pools:
    - {{name: fip, cidr: 203.0.113.0/24, vxlanMode: Always, disabled: true}}
steps: []
"
    ))
    .unwrap();
    assert_eq!(s.cluster.pools[0].encapsulation, Encapsulation::Vxlan);
    assert_eq!(s.cluster.pools[1].name, "default-ipv4-ippool", "gap filled");
}

#[test]
fn pod_from_manifest_and_overrides() {
    let s = load(&format!(
        "{HEAD}steps:
  - createPod: {{manifest: ../fixtures/pods/web.yaml, node: node-b}}
"
    ))
    .unwrap();
    let Step::CreatePod(create) = &s.steps[0] else {
        panic!()
    };
    assert_eq!(create.pod.name, "web");
    assert_eq!(
        create.pod.node, "node-b",
        "the step's node overrides spec.nodeName"
    );
    assert_eq!(
        create
            .pod
            .annotations
            .get(crate::calico::FLOATING_IPS_ANNOTATION)
            .map(String::as_str),
        Some(r#"["203.0.113.10"]"#)
    );
}

#[test]
fn annotate_rules() {
    let ok = load(&format!(
        "{HEAD}steps:
  - createPod: {{name: web, node: node-a}}
  - annotate: {{pod: web, floatingIPs: 'nope', expect: {{error: failed to parse}}}}
  - annotate: {{pod: web, floatingIPs: '[\"203.0.113.10\"]'}}
  - annotate: {{pod: web, remove: true}}
"
    ))
    .unwrap();
    let Step::Annotate(remove) = &ok.steps[3] else {
        panic!()
    };
    assert_eq!(remove.floating_ips, None);
    // Updates follow the datastore conversion: no CNI feature check, a family
    // the pod lacks is dropped rather than refused.
    let cni_off = HEAD.replace("floating-ips-on", "floating-ips-off");
    let text = format!(
        "{cni_off}steps:
  - createPod: {{name: web, node: node-a}}
  - annotate: {{pod: web, floatingIPs: '[\"203.0.113.10\", \"2001:db8:f1::10\"]'}}
"
    );
    assert!(load(&text).is_ok(), "{}", errors(&text));
}

#[test]
fn rule_errors() {
    let cases = [
        // A bad annotation on annotate, without expectation.
        "  - createPod: {name: web, node: node-a}\n  - annotate: {pod: web, floatingIPs: '[1]'}\n",
        // Both or neither of floatingIPs/remove.
        "  - createPod: {name: web, node: node-a}\n  - annotate: {pod: web}\n",
        // Annotating or deleting a pod that is gone.
        "  - createPod: {name: web, node: node-a}\n  - deletePod: web\n  - deletePod: web\n",
        // A pod twice, a pod named like a node.
        "  - createPod: {name: web, node: node-a}\n  - createPod: {name: web, node: node-b}\n  - createPod: {name: client, node: node-b}\n",
        // v6 of a pod in a v4-only cluster.
        "  - createPod: {name: web, node: node-a}\n  - send: {protocol: icmp, from: client, to: web/v6, expect: {loss: 0}}\n",
        // A stream never stopped; a stream started twice.
        "  - startStream: {name: s1, protocol: icmp, from: client, to: node-a}\n  - startStream: {name: s1, protocol: icmp, from: client, to: node-a}\n",
        // deliveredTo / afterMoveAt naming no pod.
        "  - send: {protocol: icmp, from: client, to: node-a, expect: {deliveredTo: [ghost]}}\n  - startStream: {name: s1, protocol: icmp, from: client, to: node-a}\n  - stopStream: {name: s1, expect: {afterMoveAt: ghost}}\n",
        // Expected error text differs from Calico's.
        "  - createPod:\n      name: web\n      node: node-a\n      annotations: {cni.projectcalico.org/floatingIPs: '[\"x\"]'}\n      expect: {error: mismatched IP versions}\n",
        // Bad loss, bad seen address, a step with two kinds.
        "  - send: {protocol: icmp, from: client, to: node-a, expect: {loss: 'lots'}}\n",
        "  - send: {protocol: icmp, from: client, to: node-a, expect: {seenDestination: podd}}\n",
        "  - wait: 1s\n    send: {protocol: icmp, from: client, to: node-a}\n",
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|steps| errors(&format!("{HEAD}steps:\n{steps}")))
        .collect();
    insta::assert_yaml_snapshot!(rendered);
}

/// Every expectation of traffic is checked against the Calico model's
/// prediction: one that disagrees is an error naming both, at the
/// expectation.
#[test]
fn expectations_that_disagree_with_the_model() {
    const WEB: &str = "  - createPod:\n      name: web\n      node: node-a\n      annotations: {cni.projectcalico.org/floatingIPs: '[\"203.0.113.10\"]'}\n";
    let pools = "  pools: [{manifest: ../fixtures/pools/floating-ips.yaml}]\n";
    let cases = [
        // The replies come from the floating IP, not the pod.
        format!("{pools}steps:\n{WEB}  - send: {{protocol: icmp, from: client, to: 203.0.113.10, expect: {{deliveredTo: web, replySource: 198.19.0.0}}}}\n"),
        // Outside every pool the floating IP is not exported.
        format!("{WEB}  - send: {{protocol: icmp, from: client, to: 203.0.113.10, expect: {{deliveredTo: web}}}}\n"),
        // A closed UDP port answers with an ICMP error, not a reply.
        format!("{pools}steps:\n{WEB}  - send: {{protocol: udp, port: 9, from: client, to: 203.0.113.10, expect: {{deliveredTo: web}}}}\n"),
        // Under Calico's profile a flow keeps its pod across a move on one node.
        format!("{pools}profiles: [calico, strict]\nsteps:\n{WEB}  - createPod: {{name: web-b, node: node-a}}\n  - startStream: {{name: s1, protocol: icmp, from: client, to: 203.0.113.10}}\n  - annotate: {{pod: web, remove: true}}\n  - annotate: {{pod: web-b, floatingIPs: '[\"203.0.113.10\"]'}}\n  - stopStream: {{name: s1, expect: {{deliveredTo: [web, web-b], afterMoveAt: web-b}}}}\n"),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|text| {
            let text = if text.starts_with("  pools") {
                format!("{HEAD}{text}")
            } else {
                format!("{HEAD}steps:\n{text}")
            };
            errors(&text)
        })
        .collect();
    insta::assert_yaml_snapshot!(rendered);
}

#[test]
fn cluster_errors() {
    let cases = [
        HEAD.replace("calico-config-floating-ips-on.yaml", "../pods/web.yaml"),
        HEAD.replace("nodes: [node-a, node-b]", "nodes: []"),
        format!("{HEAD}steps:\n  - createPod: {{manifest: ../fixtures/pools/vxlan.yaml}}\n"),
        format!("{HEAD}steps:\n  - createPod: {{manifest: ../fixtures/cni/10-calico.conflist}}\n"),
        HEAD.replace("nodes: [node-a, node-b]", "nodes: [{name: node-a}, {name: node-a}]"),
        format!("{HEAD}  pools:\n    - {{name: p, cidr: 203.0.113.1/24}}\n    - {{manifest: x.yaml, cidr: 10.0.0.0/8}}\n    - {{cidr: 10.0.0.0/8}}\n"),
        format!("{HEAD}profile: strict\nprofiles: [calico]\n"),
        format!("{HEAD}backends: [vpp]\n"),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|text| {
            let text = if text.contains("steps:") {
                text.clone()
            } else {
                format!("{text}steps: []\n")
            };
            errors(&text)
        })
        .collect();
    insta::assert_yaml_snapshot!(rendered);
}

#[test]
fn risky_but_accepted_annotations_warn() {
    let s = load(&format!(
        "{HEAD}steps:
  - createPod: {{name: db, node: node-b}}
  - createPod: {{name: web, node: node-a, annotations: {{cni.projectcalico.org/floatingIPs: '[\"198.19.0.0\"]'}}}}
  - createPod: {{name: odd, node: node-a}}
  - annotate: {{pod: odd, floatingIPs: '[\"198.18.0.10\", \"bogus\", \"255.255.255.255\"]'}}
  - setPhase: {{pod: odd, phase: Succeeded}}
  - annotate: {{pod: odd, floatingIPs: 'not json'}}
"
    ))
    .unwrap();
    insta::assert_snapshot!(s.warnings.join("\n"));
    // A finished pod's annotation is never read, so a malformed one is no error.
    assert!(matches!(s.steps[4], Step::SetPhase(_)));
    assert!(errors(&format!(
        "{HEAD}steps:\n  - setPhase: {{pod: ghost, phase: Failed}}\n"
    ))
    .contains("no pod `ghost` exists at this step"));
}

/// Any pool setting beside `manifest:` makes the entry ambiguous, including the
/// settings read by the shared IP-pool definition (calico::pool).
#[test]
fn a_manifest_entry_takes_no_pool_settings() {
    for setting in ["blockSize: 27", "disabled: true", "natOutgoing: false"] {
        let text = HEAD.replace(
            "  externals: [client]\n",
            &format!(
                "  externals: [client]\n  pools:\n    - {{manifest: ../fixtures/pools/floating-ips.yaml, {setting}}}\n"
            ),
        );
        let message = errors(&format!("{text}steps: []\n"));
        assert!(
            message.contains("cluster.pools[0]: a pool entry is either `manifest:` alone"),
            "{setting}: {message}"
        );
    }
}

/// A send or stopStream whose `expect` checks nothing would pass whatever the
/// dataplane did, so it is refused.
#[test]
fn an_expectation_that_checks_nothing_is_an_error() {
    for steps in [
        "  - send: {protocol: icmp, from: client, to: node-a, expect: {}}\n",
        "  - startStream: {name: s, protocol: icmp, from: client, to: node-a}\n  - stopStream: {name: s, expect: {}}\n",
    ] {
        let message = errors(&format!("{HEAD}steps:\n{steps}"));
        assert!(message.contains("checks nothing"), "{steps}: {message}");
    }
    assert!(load(&format!(
        "{HEAD}steps:\n  - send: {{protocol: icmp, from: client, to: node-a, expect: {{loss: 0}}}}\n"
    ))
    .is_ok());
}

/// A TCP stream connects when it starts: one to an address where the model
/// says no pod answers fails at start, so loading refuses it, at its `to`.
#[test]
fn a_tcp_stream_to_where_nothing_answers_is_refused() {
    // Outside every pool the floating IP is not exported: the client's
    // packets reach nobody.
    const WEB: &str = "  - createPod:\n      name: web\n      node: node-a\n      annotations: {cni.projectcalico.org/floatingIPs: '[\"203.0.113.10\"]'}\n";
    let stream = |protocol: &str| {
        format!(
            "{HEAD}steps:\n{WEB}  - startStream: {{name: s1, protocol: {protocol}, from: client, to: 203.0.113.10}}\n  - stopStream: {{name: s1, expect: {{deliveredTo: none}}}}\n"
        )
    };
    let message = errors(&stream("tcp"));
    insta::assert_snapshot!(message);
    assert!(load(&stream("udp")).is_ok(), "{}", errors(&stream("udp")));
}

/// A stream across a floating IP's move to another node in Felix's update
/// order races the new node's route against its DNAT: loading warns at the
/// claim and names the way out; `updateOrder: ordered` loads without it.
#[test]
fn a_stream_across_a_move_to_another_node_in_felix_order_warns() {
    let text = |order: &str| {
        format!(
            "{HEAD}  pools: [{{manifest: ../fixtures/pools/floating-ips.yaml}}]
{order}steps:
  - createPod: {{name: web-a, node: node-a, annotations: {{cni.projectcalico.org/floatingIPs: '[\"203.0.113.10\"]'}}}}
  - createPod: {{name: web-b, node: node-b}}
  - startStream: {{name: s1, protocol: icmp, from: client, to: 203.0.113.10}}
  - annotate: {{pod: web-a, remove: true}}
  - annotate: {{pod: web-b, floatingIPs: '[\"203.0.113.10\"]'}}
  - stopStream: {{name: s1, expect: {{deliveredTo: [web-a, web-b], afterMoveAt: web-b}}}}
"
        )
    };
    let felix = load(&text("")).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(felix.warnings.join("\n"));
    let ordered = load(&text("updateOrder: ordered\n")).unwrap();
    assert_eq!(ordered.warnings, Vec::<String>::new());
}

const STREAM: &str =
    "  - startStream: {name: s1, protocol: icmp, from: client, to: node-a, interval: 2ms}\n";
const STOP: &str = "  - stopStream: {name: s1, expect: {loss: 0}}\n";

/// `wait: {stream, packets}` reads into a counted wait with the stream's
/// interval and the default bound; a duration wait is still a time.
#[test]
fn a_counted_wait_reads_its_stream_packets_and_bound() {
    let text = format!(
        "{HEAD}steps:\n{STREAM}  - wait: {{stream: s1, packets: 25}}\n  - wait: {{stream: s1, packets: 2000, within: 5s}}\n  - wait: 100ms\n{STOP}"
    );
    let scenario = load(&text).unwrap_or_else(|_| panic!("{}", errors(&text)));
    let waits: Vec<&Wait> = (scenario.steps.iter())
        .filter_map(|step| match step {
            Step::Wait(wait) => Some(wait),
            _ => None,
        })
        .collect();
    let counted = PacketWait {
        stream: "s1".into(),
        packets: 25,
        within: limits::PACKET_WAIT_FLOOR,
        interval: std::time::Duration::from_millis(2),
    };
    assert_eq!(waits[0], &Wait::Packets(counted.clone()));
    assert_eq!(waits[0].nominal(), std::time::Duration::from_millis(50));
    let long = PacketWait {
        packets: 2000,
        within: std::time::Duration::from_secs(5),
        ..counted
    };
    assert_eq!(waits[1], &Wait::Packets(long));
    assert_eq!(waits[2], &Wait::Time(std::time::Duration::from_millis(100)));
}

/// A counted wait names a running stream, counts at least one packet, and
/// its bound leaves time for them; errors point at the value at fault.
#[test]
fn counted_wait_errors() {
    let cases = [
        // No such stream; a stream already stopped.
        format!("{STREAM}  - wait: {{stream: s2, packets: 25}}\n{STOP}"),
        format!("{STREAM}{STOP}  - wait: {{stream: s1, packets: 25}}\n"),
        // Zero packets; more than a send may have; longer than a wait may last.
        format!("{STREAM}  - wait: {{stream: s1, packets: 0}}\n{STOP}"),
        format!("{STREAM}  - wait: {{stream: s1, packets: 4000000}}\n{STOP}"),
        format!("  - startStream: {{name: s1, protocol: icmp, from: client, to: node-a, interval: 10ms}}\n  - wait: {{stream: s1, packets: 90000}}\n{STOP}"),
        // A bound the packets cannot keep, a bound over the limit.
        format!("{STREAM}  - wait: {{stream: s1, packets: 100, within: 100ms}}\n{STOP}"),
        format!("{STREAM}  - wait: {{stream: s1, packets: 100, within: 11m}}\n{STOP}"),
        // Unknown key, neither a duration nor a mapping, a bad duration.
        format!("{STREAM}  - wait: {{stream: s1, count: 25}}\n{STOP}"),
        format!("{STREAM}  - wait: [s1, 25]\n{STOP}"),
        format!("{STREAM}  - wait: 10 parsecs\n{STOP}"),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|steps| errors(&format!("{HEAD}steps:\n{steps}")))
        .collect();
    insta::assert_yaml_snapshot!(rendered);
}
