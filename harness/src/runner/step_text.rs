//! How steps and their targets read in results, check lines and failure
//! text.

use std::net::IpAddr;

use crate::scenario::{Step, Target, Wait};

/// How a step reads in results and failure text (`send icmp client -> web`).
pub(super) fn summarise(step: &Step) -> String {
    match step {
        Step::CreatePod(c) => format!("create pod {} on {}", c.pod.name, c.pod.node),
        Step::DeletePod(name) => format!("delete pod {name}"),
        Step::SetPhase(s) => format!("set pod {} phase {:?}", s.pod, s.phase),
        Step::Annotate(a) => match &a.floating_ips {
            Some(value) => format!("annotate {} floatingIPs={value}", a.pod),
            None => format!("remove floatingIPs from {}", a.pod),
        },
        Step::Send(s) => format!("send {} {} -> {}", s.protocol, s.from, target_text(&s.to)),
        Step::StartStream(s) => format!(
            "start {} stream {} {} -> {}",
            s.protocol,
            s.name,
            s.from,
            target_text(&s.to)
        ),
        Step::StopStream(s) => format!("stop stream {}", s.name),
        Step::Wait(Wait::Time(d)) => format!("wait {d:?}"),
        Step::Wait(Wait::Packets(wait)) => {
            format!(
                "wait for {} packets of stream {}",
                wait.packets, wait.stream
            )
        }
    }
}

fn target_text(target: &Target) -> String {
    match target {
        Target::Address(a) => a.to_string(),
        Target::Host { name, .. } => name.clone(),
    }
}

/// A check line's destination: the address, or the host with its address.
pub(super) fn describe_target(target: &Target, resolved: IpAddr) -> String {
    match target {
        Target::Address(address) => address.to_string(),
        Target::Host { name, .. } => format!("{name} ({resolved})"),
    }
}
