//! A script written as a scenario file: the same language as the catalogue,
//! so `validate`, `run`, `up --until-step` and `replay` take it as it is.

use std::fmt::Write as _;

use super::plan::FloatingPool;
use super::script::{profile_name, Script, ScriptStep, STREAM_INTERVAL_MS};
use crate::calico::Encapsulation;
use crate::check::{Delivery, Loss, SeenAddress, StreamExpectation, TrafficExpectation};
use crate::vocab::ECHO_PORT;

/// The CNI network configs a case file names, relative to the file: the
/// explorer writes them beside its cases ([`cni_conflist`]).
pub const CNI_ON: &str = "cni/floating-ips-on.conflist";
pub const CNI_OFF: &str = "cni/floating-ips-off.conflist";

/// A raw Calico conflist with `feature_control.floating_ips` as given.
pub fn cni_conflist(floating_ips: bool) -> String {
    format!(
        r#"{{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {{
      "type": "calico",
      "datastore_type": "kubernetes",
      "mtu": 1440,
      "ipam": {{"type": "calico-ipam"}},
      "feature_control": {{"floating_ips": {floating_ips}}}
    }}
  ]
}}
"#
    )
}

/// The scenario file of `script`, named `name`, with `comment` lines first.
pub fn render(script: &Script, name: &str, comment: &[String]) -> String {
    let mut out = String::new();
    for line in comment {
        let _ = writeln!(out, "{}", format!("# {line}").trim_end());
    }
    let spec = &script.spec;
    let _ = writeln!(out, "name: {name}");
    let _ = writeln!(
        out,
        "description: A case `fip-harness explore` generated from the Calico model."
    );
    out.push_str("tags: [explore]\n");
    let _ = writeln!(out, "profile: {}", profile_name(spec.profile));
    // The release it was generated under (`--calico`), so that it replays so.
    let _ = writeln!(out, "calico: {}", crate::scenario::default_calico_release());
    out.push_str("cluster:\n");
    let cni = if spec.cni_floating_ips {
        CNI_ON
    } else {
        CNI_OFF
    };
    let _ = writeln!(out, "  cni: {cni}");
    let felix = if spec.felix_enabled {
        "Enabled"
    } else {
        "Disabled"
    };
    let _ = writeln!(out, "  felix: {{floatingIPs: {felix}}}");
    let _ = writeln!(out, "  dualStack: {}", spec.dual_stack);
    out.push_str("  pools:\n");
    for pool in &script.config.pools {
        let mut line = format!("    - {{name: {}, cidr: {}", pool.name, pool.cidr);
        if pool.disabled {
            line.push_str(", disabled: true");
            match spec.floating_pool {
                FloatingPool::Vxlan if pool.encapsulation == Encapsulation::Vxlan => {
                    line.push_str(", encapsulation: VXLAN")
                }
                FloatingPool::NoExport => line.push_str(", disableBGPExport: true"),
                _ => {}
            }
        }
        if pool.block_size == super::script::TINY_BLOCK_SIZE && !pool.disabled {
            let _ = write!(line, ", blockSize: {}", pool.block_size);
        }
        line.push('}');
        let _ = writeln!(out, "{line}");
    }
    let names = |hosts: &[crate::calico::cluster::HostAddresses]| {
        hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let network = &script.config.network;
    let _ = writeln!(out, "  nodes: [{}]", names(&network.nodes));
    let _ = writeln!(out, "  externals: [{}]", names(&network.externals));
    out.push_str("steps:\n");
    for step in &script.steps {
        step_text(&mut out, step);
    }
    out
}

/// An address as a YAML scalar: IPv6 quoted (one ending in `::` would read
/// as a mapping key).
fn address(address: &std::net::IpAddr) -> String {
    if address.is_ipv6() {
        format!("\"{address}\"")
    } else {
        address.to_string()
    }
}

/// A target or sender as written: IPv6 literals quoted.
fn scalar(text: &str) -> String {
    match text.parse::<std::net::IpAddr>() {
        Ok(parsed) => address(&parsed),
        Err(_) => text.to_string(),
    }
}

fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn double_quoted(text: &str) -> String {
    // A JSON string is a YAML double-quoted scalar.
    serde_json::to_string(text).expect("strings serialise")
}

fn step_text(out: &mut String, step: &ScriptStep) {
    match step {
        ScriptStep::CreatePod {
            name,
            node,
            annotation,
            expect_error,
        } => {
            let _ = writeln!(
                out,
                "  - createPod:\n      name: {name}\n      node: {node}"
            );
            if let Some(value) = annotation {
                let _ = writeln!(
                    out,
                    "      annotations:\n        {}: {}",
                    crate::calico::FLOATING_IPS_ANNOTATION,
                    single_quoted(value)
                );
            }
            expect_error_text(out, expect_error);
        }
        ScriptStep::DeletePod(name) => {
            let _ = writeln!(out, "  - deletePod: {name}");
        }
        ScriptStep::Annotate {
            pod,
            value,
            expect_error,
        } => {
            let _ = writeln!(out, "  - annotate:\n      pod: {pod}");
            match value {
                Some(value) => {
                    let _ = writeln!(out, "      floatingIPs: {}", single_quoted(value));
                }
                None => out.push_str("      remove: true\n"),
            }
            expect_error_text(out, expect_error);
        }
        ScriptStep::SetPhase { pod, phase } => {
            let _ = writeln!(
                out,
                "  - setPhase:\n      pod: {pod}\n      phase: {phase:?}"
            );
        }
        ScriptStep::Send {
            protocol,
            from,
            to,
            port,
            count,
            expect,
        } => {
            let _ = writeln!(
                out,
                "  - send:\n      protocol: {protocol}\n      from: {from}\n      to: {}",
                scalar(to)
            );
            if *port != ECHO_PORT {
                let _ = writeln!(out, "      port: {port}");
            }
            let _ = writeln!(out, "      count: {count}");
            traffic_expect_text(out, expect);
        }
        ScriptStep::StartStream {
            name,
            protocol,
            from,
            to,
        } => {
            let _ = writeln!(
                out,
                "  - startStream:\n      name: {name}\n      protocol: {protocol}\n      from: {from}\n      to: {}\n      interval: {STREAM_INTERVAL_MS}ms",
                scalar(to)
            );
        }
        ScriptStep::StopStream { name, expect } => {
            let _ = writeln!(out, "  - stopStream:\n      name: {name}");
            stream_expect_text(out, expect);
        }
        ScriptStep::WaitMs(ms) => {
            let _ = writeln!(out, "  - wait: {ms}ms");
        }
        ScriptStep::WaitPackets(stream, packets) => {
            let _ = writeln!(out, "  - wait: {{stream: {stream}, packets: {packets}}}");
        }
    }
}

fn expect_error_text(out: &mut String, expect_error: &Option<String>) {
    if let Some(text) = expect_error {
        let _ = writeln!(out, "      expect:\n        error: {}", double_quoted(text));
    }
}

fn delivery_text(delivery: &Delivery) -> String {
    match delivery {
        Delivery::None => "none".into(),
        Delivery::Pods(pods) if pods.len() == 1 => pods[0].clone(),
        Delivery::Pods(pods) => format!("[{}]", pods.join(", ")),
        Delivery::OneOf(pods) => format!("{{oneOf: [{}]}}", pods.join(", ")),
    }
}

fn seen_text(seen: &SeenAddress) -> String {
    match seen {
        SeenAddress::Pod => "pod".into(),
        SeenAddress::From => "from".into(),
        SeenAddress::Address(a) => address(a),
    }
}

fn loss_text(loss: &Loss) -> String {
    match loss {
        Loss::Packets(n) => n.to_string(),
        Loss::Percent(p) => format!("\"{p}%\""),
    }
}

fn traffic_expect_text(out: &mut String, expect: &TrafficExpectation) {
    if expect.is_empty() {
        return;
    }
    out.push_str("      expect:\n");
    let mut field = |key: &str, value: String| {
        let _ = writeln!(out, "        {key}: {value}");
    };
    if let Some(delivery) = &expect.delivered_to {
        field("deliveredTo", delivery_text(delivery));
    }
    if let Some(seen) = &expect.seen_destination {
        field("seenDestination", seen_text(seen));
    }
    if let Some(seen) = &expect.seen_source {
        field("seenSource", seen_text(seen));
    }
    if let Some(reply) = expect.reply_source {
        field("replySource", address(&reply));
    }
    if let Some(quoted) = expect.quoted_destination {
        field("quotedDestination", address(&quoted));
    }
    if let Some(loss) = &expect.loss {
        field("loss", loss_text(loss));
    }
}

fn stream_expect_text(out: &mut String, expect: &StreamExpectation) {
    if expect.is_empty() {
        return;
    }
    out.push_str("      expect:\n");
    if let Some(delivery) = &expect.delivered_to {
        let text = match delivery {
            // A stream's pods are a list even when one.
            Delivery::Pods(pods) => format!("[{}]", pods.join(", ")),
            other => delivery_text(other),
        };
        let _ = writeln!(out, "        deliveredTo: {text}");
    }
    if let Some(pod) = &expect.after_move_at {
        let _ = writeln!(out, "        afterMoveAt: {pod}");
    }
}
