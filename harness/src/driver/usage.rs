//! Which messages and field values of the driver protocol a run exercised,
//! and in which labs: every request a session sends and every answer it gets
//! is recorded under its lab's name, so `conform` can say which cases
//! exercised each one and which none did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::protocol::{FlushRule, RequestBody, ResponseBody};
use crate::vocab::Protocol;

/// Every item of the protocol: `(item, what it is)`, requests first.
pub const ITEMS: &[(&str, &str)] = &[
    ("hello", "the first request"),
    (
        "topology without pods",
        "a node's interfaces before any pod",
    ),
    ("topology with pods", "a node's interfaces with its pods"),
    (
        "topology with an IPv6 pod",
        "a pod with an IPv6 address (dual stack)",
    ),
    (
        "apply with no mapping",
        "a node's whole NAT, empty in both families",
    ),
    ("apply ipv4 dnat", "an IPv4 floating IP's DNAT"),
    ("apply ipv4 snat", "an IPv4 loopback SNAT"),
    ("apply ipv6 dnat", "an IPv6 floating IP's DNAT"),
    ("apply ipv6 snat", "an IPv6 loopback SNAT"),
    (
        "flush orig_src_or_reply_src",
        "flows of a deleted pod, or of a floating IP whose route moved",
    ),
    (
        "flush orig_dst",
        "flows to a moved floating IP (the strict profile)",
    ),
    (
        "flush any",
        "every flow (only a broken control plane asks it)",
    ),
    ("dump", "the driver's own view of its node"),
    (
        "shutdown keep false",
        "the last request; remove what you put there",
    ),
    (
        "shutdown keep true",
        "the last request; leave the node as it is",
    ),
    (
        "answer hello",
        "the driver's name, version and capabilities",
    ),
    ("answer hello families ipv4", "the driver translates IPv4"),
    ("answer hello families ipv6", "the driver translates IPv6"),
    (
        "answer hello protocols icmp",
        "the driver translates ICMP and ICMPv6",
    ),
    ("answer hello protocols gre", "the driver translates GRE"),
    ("answer hello protocols sctp", "the driver translates SCTP"),
    ("answer hello protocols udp", "the driver translates UDP"),
    ("answer hello protocols tcp", "the driver translates TCP"),
    (
        "answer hello owns_conntrack true",
        "the driver keeps its own flow state",
    ),
    (
        "answer hello owns_conntrack false",
        "the kernel's conntrack is the flow state",
    ),
    ("answer ok", "done"),
    ("answer flushed", "how many flows a flush deleted"),
    ("answer dump", "text, JSON and the mappings read back"),
    (
        "answer dump with mappings",
        "a dump that reads the NAT in force back",
    ),
    ("answer error", "a request the driver could not carry out"),
];

static USED: Mutex<BTreeMap<&'static str, BTreeSet<String>>> = Mutex::new(BTreeMap::new());

/// Record that `lab`'s driver exchanged `items`.
pub(super) fn record(lab: &str, items: impl IntoIterator<Item = &'static str>) {
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    for item in items {
        used.entry(item).or_default().insert(lab.to_string());
    }
}

/// For each item, the labs whose drivers exchanged it so far in this process.
pub fn used() -> BTreeMap<&'static str, BTreeSet<String>> {
    USED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The items a request exercises.
pub(super) fn request_items(body: &RequestBody) -> Vec<&'static str> {
    match body {
        RequestBody::Hello(_) => vec!["hello"],
        RequestBody::Topology(topology) => {
            let mut items = vec![if topology.pods.is_empty() {
                "topology without pods"
            } else {
                "topology with pods"
            }];
            if topology
                .pods
                .iter()
                .any(|p| p.addresses.iter().any(|a| a.is_ipv6()))
            {
                items.push("topology with an IPv6 pod");
            }
            items
        }
        RequestBody::Apply(nat) => {
            let parts = [
                (!nat.ipv4.dnat.is_empty(), "apply ipv4 dnat"),
                (!nat.ipv4.snat.is_empty(), "apply ipv4 snat"),
                (!nat.ipv6.dnat.is_empty(), "apply ipv6 dnat"),
                (!nat.ipv6.snat.is_empty(), "apply ipv6 snat"),
            ];
            let items: Vec<&'static str> = parts
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, i)| *i)
                .collect();
            if items.is_empty() {
                vec!["apply with no mapping"]
            } else {
                items
            }
        }
        RequestBody::Flush(flush) => flush
            .rules
            .iter()
            .map(|rule| match rule {
                FlushRule::OrigSrcOrReplySrc { .. } => "flush orig_src_or_reply_src",
                FlushRule::OrigDst { .. } => "flush orig_dst",
                FlushRule::Any => "flush any",
            })
            .collect(),
        RequestBody::Dump => vec!["dump"],
        RequestBody::Shutdown(s) if s.keep => vec!["shutdown keep true"],
        RequestBody::Shutdown(_) => vec!["shutdown keep false"],
    }
}

/// The items an answer exercises.
pub(super) fn answer_items(body: &ResponseBody) -> Vec<&'static str> {
    match body {
        ResponseBody::Hello(hello) => {
            let caps = &hello.capabilities;
            let mut items = vec!["answer hello"];
            for family in &caps.families {
                items.push(match family {
                    super::protocol::Family::Ipv4 => "answer hello families ipv4",
                    super::protocol::Family::Ipv6 => "answer hello families ipv6",
                });
            }
            for protocol in &caps.protocols {
                items.push(match protocol {
                    Protocol::Icmp => "answer hello protocols icmp",
                    Protocol::Gre => "answer hello protocols gre",
                    Protocol::Sctp => "answer hello protocols sctp",
                    Protocol::Udp => "answer hello protocols udp",
                    Protocol::Tcp => "answer hello protocols tcp",
                });
            }
            items.push(if caps.owns_conntrack {
                "answer hello owns_conntrack true"
            } else {
                "answer hello owns_conntrack false"
            });
            items
        }
        ResponseBody::Ok => vec!["answer ok"],
        ResponseBody::Flushed { .. } => vec!["answer flushed"],
        ResponseBody::Dump(dump) if dump.mappings.is_some() => {
            vec!["answer dump", "answer dump with mappings"]
        }
        ResponseBody::Dump(_) => vec!["answer dump"],
        ResponseBody::Error { .. } => vec!["answer error"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::protocol::{Flush, NatState, Shutdown};

    #[test]
    fn every_item_a_message_gives_is_listed() {
        let known: BTreeSet<&str> = ITEMS.iter().map(|(i, _)| *i).collect();
        let requests = [
            RequestBody::Apply(NatState::default()),
            RequestBody::Flush(Flush {
                rules: vec![FlushRule::Any],
            }),
            RequestBody::Dump,
            RequestBody::Shutdown(Shutdown { keep: true }),
        ];
        for body in &requests {
            for item in request_items(body) {
                assert!(known.contains(item), "{item}");
            }
        }
        assert_eq!(
            request_items(&RequestBody::Apply(NatState::default())),
            ["apply with no mapping"]
        );
        for body in [
            ResponseBody::Ok,
            ResponseBody::Flushed { deleted: 1 },
            ResponseBody::Error {
                message: "x".into(),
            },
        ] {
            for item in answer_items(&body) {
                assert!(known.contains(item), "{item}");
            }
        }
    }
}
