//! What people want first about a live lab (`up`, `state`): every member with
//! its addresses, and which pod holds each floating IP; rules come after, in
//! the commands' own sections.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::lab::netlink::LinkAddress;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabOverview {
    pub lab: String,
    pub members: Vec<MemberAddresses>,
    pub floating_ips: Vec<FloatingIpHolder>,
    /// Where the floating IPs come from when it is not the kernel now: an
    /// exec: driver's last dump, and when it was taken (`state` of a kept lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why the floating IPs held cannot be known (a driver's dump that did
    /// not read its NAT back); the list is then not shown as complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// One member (fabric, node, external host or pod) and its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberAddresses {
    pub member: String,
    /// `fabric`, `node`, `external` or `pod`.
    pub kind: String,
    /// A pod's node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub addresses: Vec<LinkAddress>,
}

/// Who receives a floating IP: the pod (or pods, when several nodes hold a
/// DNAT for it) and the node whose NAT sends it there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FloatingIpHolder {
    pub floating_ip: IpAddr,
    pub holders: Vec<Holder>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Holder {
    /// The pod, or `?` when no pod of the lab has the address.
    pub pod: String,
    pub internal: IpAddr,
    pub node: String,
}

impl LabOverview {
    /// Members then floating IPs, as aligned text.
    pub fn render(&self) -> String {
        let mut text = format!("lab `{}`\n  members:\n", self.lab);
        let width = self
            .members
            .iter()
            .map(|m| m.member.len())
            .max()
            .unwrap_or(0);
        for member in &self.members {
            let kind = match &member.node {
                Some(node) => format!("{} on {node}", member.kind),
                None => member.kind.clone(),
            };
            let addresses: Vec<String> = member.addresses.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                text,
                "    {:width$}  {kind:<16}  {}",
                member.member,
                if addresses.is_empty() {
                    "-".to_string()
                } else {
                    addresses.join(", ")
                }
            );
        }
        let source = self
            .source
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        if let Some(why) = &self.unknown {
            let _ = writeln!(text, "  floating IPs: not known: {why}");
            if self.floating_ips.is_empty() {
                return text;
            }
            text.push_str("  floating IPs the other nodes hold:\n");
        } else if self.floating_ips.is_empty() {
            let _ = writeln!(text, "  floating IPs: none held{source}");
            return text;
        } else {
            let _ = writeln!(text, "  floating IPs{source}:");
        }
        for fip in &self.floating_ips {
            let holders: Vec<String> = fip
                .holders
                .iter()
                .map(|h| format!("{} ({}) on {}", h.pod, h.internal, h.node))
                .collect();
            let _ = writeln!(text, "    {} -> {}", fip.floating_ip, holders.join(", "));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_first_then_who_holds_each_floating_ip() {
        let address = |interface: &str, address: &str, prefix| LinkAddress {
            interface: interface.into(),
            address: address.parse().unwrap(),
            prefix,
        };
        let overview = LabOverview {
            lab: "rr1".into(),
            members: vec![
                MemberAddresses {
                    member: "node-a".into(),
                    kind: "node".into(),
                    node: None,
                    addresses: vec![address("eth0", "198.18.1.10", 24)],
                },
                MemberAddresses {
                    member: "web".into(),
                    kind: "pod".into(),
                    node: Some("node-a".into()),
                    addresses: vec![address("eth0", "198.19.0.0", 32)],
                },
            ],
            source: None,
            unknown: None,
            floating_ips: vec![FloatingIpHolder {
                floating_ip: "203.0.113.10".parse().unwrap(),
                holders: vec![Holder {
                    pod: "web".into(),
                    internal: "198.19.0.0".parse().unwrap(),
                    node: "node-a".into(),
                }],
            }],
        };
        insta::assert_snapshot!(overview.render());
        insta::assert_json_snapshot!(overview);
    }

    /// A kept lab with an exec: driver: the floating IPs come from its last
    /// dump, and say so with its time; a dump that did not read the NAT back
    /// makes them not known rather than "none held".
    #[rstest::rstest]
    #[case::from_the_dump(None, "  floating IPs: none held (as the dump of T said)\n")]
    #[case::not_known(
        Some("node-a's dump did not say"),
        "  floating IPs: not known: node-a's dump did not say\n"
    )]
    fn a_drivers_dump_is_named_as_the_source(#[case] unknown: Option<&str>, #[case] line: &str) {
        let overview = LabOverview {
            lab: "rr1".into(),
            members: vec![],
            floating_ips: vec![],
            source: Some("as the dump of T said".into()),
            unknown: unknown.map(str::to_string),
        };
        assert_eq!(overview.render(), format!("lab `rr1`\n  members:\n{line}"));
    }
}
