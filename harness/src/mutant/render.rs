//! The rendering bugs: nft scripts that rewrite the chains (or add chains or
//! maps) of the map backend's table (`dataplane::nft_maps::TABLE`) after each
//! apply, so the node holds the mappings it was given through the wrong
//! rules. The map backend changes only map elements after its first apply,
//! so the rewritten chains stay.

use std::fmt::Write;

use super::nat_bug::NatBug;
use crate::dataplane::nft_maps::TABLE;
use crate::dataplane::NodeNatState;
use crate::vocab::addressing::UPLINK;

/// One family's table: its nft family, whether it is IPv4, its address type.
struct Family {
    name: &'static str,
    v4: bool,
    addr_type: &'static str,
}

const FAMILIES: [Family; 2] = [
    Family {
        name: "ip",
        v4: true,
        addr_type: "ipv4_addr",
    },
    Family {
        name: "ip6",
        v4: false,
        addr_type: "ipv6_addr",
    },
];

/// Both DNAT chains of `family` rewritten to one map lookup behind `prefix`
/// (a match, or nothing).
fn dnat_chains(script: &mut String, family: &Family, prefix: &str) {
    let at = format!("{} {TABLE}", family.name);
    for chain in ["prerouting", "output"] {
        let _ = writeln!(
            script,
            "flush chain {at} {chain}\nadd rule {at} {chain} {prefix}dnat to {} daddr map @fip-dnat",
            family.name
        );
    }
}

/// The nft script that rewrites the table for `bug` on a node holding
/// `state`; `None` for bugs that do not render differently.
pub(super) fn patch(bug: NatBug, state: &NodeNatState) -> Option<String> {
    let mut script = String::new();
    for family in &FAMILIES {
        let at = format!("{} {TABLE}", family.name);
        let mine = |internal: &std::net::IpAddr| internal.is_ipv4() == family.v4;
        match bug {
            NatBug::NoOutputDnat => {
                let _ = writeln!(script, "flush chain {at} output");
            }
            NatBug::DnatL4Only => {
                dnat_chains(&mut script, family, "meta l4proto { tcp, udp, sctp } ")
            }
            NatBug::DnatNoGre => dnat_chains(
                &mut script,
                family,
                "meta l4proto { tcp, udp, sctp, icmp, icmpv6 } ",
            ),
            NatBug::DnatNoSctp => dnat_chains(
                &mut script,
                family,
                "meta l4proto { tcp, udp, gre, icmp, icmpv6 } ",
            ),
            // The IPv4 list copied into the IPv6 table: `icmp` there is
            // IPv4's protocol 1, never ICMPv6's 58.
            NatBug::IcmpV6NotTranslated if !family.v4 => dnat_chains(
                &mut script,
                family,
                "meta l4proto { tcp, udp, sctp, gre, icmp } ",
            ),
            NatBug::IcmpV6NotTranslated => {}
            NatBug::DnatUplinkOnly => {
                let _ = writeln!(
                    script,
                    "flush chain {at} prerouting\nadd rule {at} prerouting iifname \"{UPLINK}\" dnat to {} daddr map @fip-dnat",
                    family.name
                );
            }
            NatBug::DnatPodsOnly => {
                let _ = writeln!(
                    script,
                    "flush chain {at} prerouting\nadd rule {at} prerouting iifname \"cali*\" dnat to {} daddr map @fip-dnat",
                    family.name
                );
            }
            NatBug::DnatPrefix => {
                let length = if family.v4 { 24 } else { 64 };
                for chain in ["prerouting", "output"] {
                    let _ = writeln!(script, "flush chain {at} {chain}");
                    for m in state.dnat.iter().filter(|m| mine(&m.internal)) {
                        let _ = writeln!(
                            script,
                            "add rule {at} {chain} {} daddr {}/{length} dnat to {}",
                            family.name,
                            network(m.external, length),
                            m.internal
                        );
                    }
                }
            }
            NatBug::SnatDestinationOnly => {
                pod_map(&mut script, family, "fip-snat-by-dst", state);
                let _ = writeln!(
                    script,
                    "flush chain {at} postrouting\nadd rule {at} postrouting snat to {} daddr map @fip-snat-by-dst",
                    family.name
                );
            }
            NatBug::SnatInInputHook => {
                let _ = writeln!(
                    script,
                    "flush chain {at} postrouting\n\
                     add chain {at} input {{ type nat hook input priority 100; policy accept; }}\n\
                     flush chain {at} input\n\
                     add rule {at} input snat to {0} saddr . {0} daddr map @fip-snat",
                    family.name
                );
            }
            NatBug::IcmpErrorsUntracked => {
                let errors = if family.v4 {
                    "icmp type { destination-unreachable, time-exceeded, parameter-problem }"
                } else {
                    "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem }"
                };
                let _ = writeln!(
                    script,
                    "add chain {at} raw-prerouting {{ type filter hook prerouting priority raw; policy accept; }}\n\
                     flush chain {at} raw-prerouting\nadd rule {at} raw-prerouting {errors} notrack"
                );
            }
            NatBug::SnatOnEgress => {
                pod_map(&mut script, family, "fip-egress", state);
                let _ = writeln!(
                    script,
                    "flush chain {at} postrouting\n\
                     add rule {at} postrouting snat to {0} saddr . {0} daddr map @fip-snat\n\
                     add rule {at} postrouting snat to {0} saddr map @fip-egress",
                    family.name
                );
            }
            _ => return None,
        }
    }
    Some(script)
}

/// A map `name` in `family`'s table holding each loopback SNAT mapping of
/// that family as pod address -> floating IP, and nothing else.
fn pod_map(script: &mut String, family: &Family, name: &str, state: &NodeNatState) {
    let at = format!("{} {TABLE}", family.name);
    let elements: Vec<String> = state
        .snat
        .iter()
        .filter(|m| m.internal.is_ipv4() == family.v4)
        .map(|m| format!("{} : {}", m.internal, m.external))
        .collect();
    let _ = writeln!(
        script,
        "add map {at} {name} {{ type {0} : {0}; }}\nflush map {at} {name}",
        family.addr_type
    );
    if !elements.is_empty() {
        let _ = writeln!(
            script,
            "add element {at} {name} {{ {} }}",
            elements.join(", ")
        );
    }
}

/// The network of `address` with a prefix of `length`.
fn network(address: std::net::IpAddr, length: u8) -> std::net::IpAddr {
    ipnet::IpNet::new(address, length)
        .map(|net| net.network())
        .unwrap_or(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{DnatMapping, SnatMapping};

    #[test]
    fn a_prefix_rule_catches_the_whole_network() {
        let fip = "203.0.113.10".parse().unwrap();
        let pod = "198.19.0.5".parse().unwrap();
        let state = NodeNatState::new([DnatMapping::new(fip, pod)], [SnatMapping::new(pod, fip)]);
        let script = patch(NatBug::DnatPrefix, &state).unwrap();
        assert!(script.contains(
            "add rule ip fiph-maps prerouting ip daddr 203.0.113.0/24 dnat to 198.19.0.5"
        ));
        assert!(patch(NatBug::StaleMappings, &state).is_none());
        // Only the IPv6 table loses ICMPv6.
        let icmp = patch(NatBug::IcmpV6NotTranslated, &state).unwrap();
        assert!(!icmp.contains("table ip fiph-maps") && !icmp.contains(" ip fiph-maps "));
        assert!(
            icmp.contains("ip6 fiph-maps prerouting meta l4proto { tcp, udp, sctp, gre, icmp }")
        );
    }
}
