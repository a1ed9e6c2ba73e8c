//! The pairs of dimension values no case can exercise, each with why: what
//! Calico does (cited), what the protocols do, what a dimension's value means,
//! or what the harness cannot express (named as the harness's limit, so it
//! reads as a gap, not as a law).

/// Why a pair cannot be exercised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// Calico's behaviour rules it out (the text cites where).
    Calico,
    /// The protocols rule it out.
    Protocol,
    /// The two values contradict each other by what they mean.
    Definition,
    /// The harness cannot express it (yet): a gap, not a law.
    Harness,
}

/// Every value of `a` in `a_values` is impossible with every value of `b` in
/// `b_values`; `b` = [`ANY`] (with no `b_values`) is every value of every
/// other dimension.
#[derive(Clone, Copy, Debug)]
pub struct Impossible {
    pub a: &'static str,
    pub a_values: &'static [&'static str],
    pub b: &'static str,
    pub b_values: &'static [&'static str],
    pub why: Why,
    pub text: &'static str,
}

/// A rule's `b` that stands for every other dimension.
pub const ANY: &str = "*";

const NOT_NOBODY: &[&str] = &[
    "one",
    "several-on-pod",
    "duplicate-on-node",
    "duplicate-across-nodes",
];
const GONE: &[&str] = &["removed", "holder-deleted", "holder-finished", "unclaimed"];
/// The changes after which nobody claims the floating IP any more.
const RELEASED: &[&str] = &["removed", "holder-deleted", "holder-finished"];
const ONE_CLAIM: &[&str] = &[
    "created",
    "added",
    "moved-on-node",
    "moved-across-nodes",
    "delete-recreate",
];

/// The impossible pairs.
pub const IMPOSSIBLE: &[Impossible] = &[
    Impossible {
        a: "source",
        a_values: &["fabric"],
        b: ANY,
        b_values: &[],
        why: Why::Harness,
        text: "the scenario language sends from nodes, external hosts and pods, not from the \
               fabric router (a `send`'s `from` names no fabric); traffic from beyond the \
               fabric is the `external` source",
    },
    Impossible {
        a: "change",
        a_values: GONE,
        b: "claims",
        b_values: NOT_NOBODY,
        why: Why::Definition,
        text: "after its last claim went (or before any), nobody claims the floating IP",
    },
    Impossible {
        a: "change",
        a_values: ONE_CLAIM,
        b: "claims",
        b_values: &["nobody", "duplicate-on-node", "duplicate-across-nodes"],
        why: Why::Definition,
        text: "one step changes one pod: after it gains the floating IP alone, exactly one pod claims it",
    },
    Impossible {
        a: "change",
        a_values: &["duplicate-made"],
        b: "claims",
        b_values: &["nobody", "one", "several-on-pod"],
        why: Why::Definition,
        text: "a duplicate made leaves two claimants or more",
    },
    Impossible {
        a: "change",
        a_values: &["duplicate-released"],
        b: "claims",
        b_values: &["nobody"],
        why: Why::Definition,
        text: "a duplicate released leaves one claimant or more",
    },
    Impossible {
        a: "claims",
        a_values: &["nobody"],
        b: "node-nat",
        b_values: &["alone"],
        why: Why::Definition,
        text: "`alone` is the floating IP's own mapping, which needs a claim",
    },
    Impossible {
        a: "claims",
        a_values: NOT_NOBODY,
        b: "node-nat",
        b_values: &["empty"],
        why: Why::Definition,
        text: "a claimed floating IP has its mapping on its node",
    },
    Impossible {
        a: "change",
        a_values: &["created", "added", "moved-on-node", "moved-across-nodes", "delete-recreate", "duplicate-made", "duplicate-released"],
        b: "node-nat",
        b_values: &["empty"],
        why: Why::Definition,
        text: "after this change a pod claims the floating IP, so its node has its mapping",
    },
    Impossible {
        a: "change",
        a_values: &["unclaimed"],
        b: "delivery",
        b_values: &["holder", "one-of"],
        why: Why::Definition,
        text: "no pod has ever claimed the floating IP, so none can receive its traffic",
    },
    Impossible {
        a: "change",
        a_values: &["unclaimed"],
        b: "source",
        b_values: &["holder"],
        why: Why::Definition,
        text: "no pod has claimed the floating IP yet, so no pod holds it",
    },
    Impossible {
        a: "change",
        a_values: &["unclaimed"],
        b: "timing",
        b_values: &["under-stream"],
        why: Why::Definition,
        text: "`under-stream` is a change during a stream; `unclaimed` is no change at all",
    },
    Impossible {
        a: "change",
        a_values: &["unclaimed"],
        b: "icmp-error",
        b_values: &["from-pod"],
        why: Why::Definition,
        text: "no pod has claimed the floating IP, so no pod can refuse its traffic",
    },
    Impossible {
        a: "change",
        a_values: GONE,
        b: "node-nat",
        b_values: &["alone"],
        why: Why::Definition,
        text: "`alone` is the floating IP's own mapping, which needs a claim",
    },
    Impossible {
        a: "change",
        a_values: &["unclaimed"],
        b: "node-nat",
        b_values: &["with-others"],
        why: Why::Definition,
        text: "`node-nat` counts the mappings of the node that holds (or last held) the \
               floating IP; no node has held it yet",
    },
    Impossible {
        a: "change",
        a_values: &["unclaimed"],
        b: "source",
        b_values: &["hosting-node", "same-node-pod"],
        why: Why::Definition,
        text: "the hosting node is the holder's (or, once nobody claims, the last holder's); \
               no pod has claimed the floating IP yet",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "protocol",
        b_values: &["icmp", "tcp", "sctp"],
        why: Why::Protocol,
        text: "an echo request is answered, not refused; a closed TCP port answers with a RST \
               (RFC 9293 3.10.7.1) and an out-of-the-blue SCTP packet with an ABORT (RFC 9260 8.4), \
               not with an ICMP error",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "protocol",
        b_values: &["gre"],
        why: Why::Harness,
        text: "a host without GRE answers protocol unreachable, but every pod of a lab answers GRE",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "timing",
        b_values: &["under-stream"],
        why: Why::Harness,
        text: "a stream's check has no quoted destination (`quotedDestination` is a `send` expectation)",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "delivery",
        b_values: &["nobody"],
        why: Why::Definition,
        text: "the pod's kernel refuses a packet that reached it",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "switches",
        b_values: &["felix-off"],
        why: Why::Calico,
        text: "with Felix's floatingIPs Disabled no packet to a floating IP reaches a pod \
               (felix/dataplane/linux/floating_ip_mgr.go programs nothing), so none is refused",
    },
    Impossible {
        a: "switches",
        a_values: &["felix-off"],
        b: "delivery",
        b_values: &["holder", "one-of"],
        why: Why::Calico,
        text: "with Felix's floatingIPs Disabled there is no DNAT and no route to a pod \
               (floating_ip_mgr.go, endpoint_mgr.go calculateRoutes)",
    },
    Impossible {
        a: "switches",
        a_values: &["cni-off"],
        b: "change",
        b_values: &["created", "delete-recreate"],
        why: Why::Calico,
        text: "with the CNI plugin's feature off, a pod set up with the annotation fails \
               (cni-plugin/pkg/k8s: `requested feature is not enabled: floating_ips`)",
    },
    Impossible {
        a: "family",
        a_values: &["ipv6"],
        b: "pool",
        b_values: &["ipip"],
        why: Why::Calico,
        text: "IPIP is not supported on IPv6 pools (api/pkg/apis/projectcalico/v3/ippool.go, \
               the IPPool's validation rule)",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "source",
        b_values: &["holder", "same-node-pod", "hosting-node"],
        why: Why::Calico,
        text: "on a claimant's node the node's own DNAT (cali-fip-dnat from PREROUTING and OUTPUT, \
               felix/rules/static.go) picks its claimant before any route is looked up",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "pool",
        b_values: &["outside", "no-export"],
        why: Why::Calico,
        text: "a floating IP BIRD does not export has no ECMP route anywhere \
               (confd bgp_processor.go processIPPool)",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "claims",
        b_values: &["nobody"],
        why: Why::Definition,
        text: "one-of picks among claimants",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "claims",
        b_values: &["nobody"],
        why: Why::Definition,
        text: "the error quotes the floating IP because a claim's DNAT took the packet to the pod",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "change",
        b_values: RELEASED,
        why: Why::Definition,
        text: "the error quotes the floating IP because a claim's DNAT took the packet to the \
               pod; after this change nobody claims it",
    },
    Impossible {
        a: "icmp-error",
        a_values: &["from-pod"],
        b: "node-nat",
        b_values: &["empty"],
        why: Why::Definition,
        text: "the error quotes the floating IP because a claim's DNAT took the packet to the \
               pod; `empty` is a node without that mapping",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "timing",
        b_values: &["under-stream"],
        why: Why::Harness,
        text: "a stream's check names the pods it reached (`deliveredTo: [..]`); `oneOf` is a \
               `send` expectation",
    },
    Impossible {
        a: "source",
        a_values: &["holder"],
        b: "change",
        b_values: &["holder-deleted"],
        why: Why::Definition,
        text: "once nobody claims it, the holder is the pod that last held it: a deleted pod \
               sends nothing",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "claims",
        b_values: &["one", "several-on-pod", "duplicate-on-node"],
        why: Why::Definition,
        text: "one-of is a choice among claimants on several nodes",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "change",
        b_values: &[
            "created",
            "added",
            "moved-on-node",
            "moved-across-nodes",
            "delete-recreate",
            "removed",
            "holder-deleted",
            "holder-finished",
        ],
        why: Why::Definition,
        text: "one-of is a choice among claimants on several nodes; after this change one pod \
               claims the floating IP, or none",
    },
    Impossible {
        a: "delivery",
        a_values: &["one-of"],
        b: "node-nat",
        b_values: &["empty"],
        why: Why::Definition,
        text: "`empty` is a node without the floating IP's mapping: nobody claims it",
    },
    Impossible {
        a: "claims",
        a_values: &["several-on-pod"],
        b: "node-nat",
        b_values: &["alone"],
        why: Why::Definition,
        text: "the holder's other floating IPs are mappings of its node too",
    },
];

/// Why `(a, x)` with `(b, y)` is impossible, if it is.
pub fn impossible(a: &str, x: &str, b: &str, y: &str) -> Option<&'static Impossible> {
    let side = |rule: &Impossible, a: &str, x: &str, b: &str, y: &str| {
        rule.a == a
            && rule.a_values.contains(&x)
            && (rule.b == ANY || (rule.b == b && rule.b_values.contains(&y)))
    };
    IMPOSSIBLE
        .iter()
        .find(|rule| side(rule, a, x, b, y) || side(rule, b, y, a, x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coverage::dimensions::dimension;

    #[test]
    fn every_rule_names_real_dimensions_and_values() {
        for rule in IMPOSSIBLE {
            for (name, values) in [(rule.a, rule.a_values), (rule.b, rule.b_values)] {
                if name == ANY {
                    assert!(values.is_empty(), "{ANY} has no values of its own");
                    continue;
                }
                let d = dimension(name).unwrap_or_else(|| panic!("no dimension {name}"));
                for v in values {
                    assert!(d.has(v), "{name} has no value {v}");
                }
            }
            assert_ne!(rule.a, rule.b);
        }
        assert!(impossible("protocol", "tcp", "icmp-error", "from-pod").is_some());
        assert!(impossible("protocol", "udp", "icmp-error", "from-pod").is_none());
        // A rule over every other dimension holds both ways round.
        assert!(impossible("source", "fabric", "profile", "strict").is_some());
        assert!(impossible("routing", "bird", "source", "fabric").is_some());
        assert!(impossible("routing", "bird", "source", "external").is_none());
    }
}
