//! The dimensions of floating-IP behaviour, as data: each a name and its
//! values, each value with what it means. A traffic check of a scenario
//! exercises one value of every dimension (a [`super::Point`]); the catalogue
//! should exercise every pair of values that Calico's semantics allow
//! (`super::rules` says which pairs are impossible, and why).
//!
//! Where a dimension comes from:
//! - `source`, `family`, `protocol`: who sends what to a floating IP. Felix
//!   jumps to cali-fip-dnat from both cali-PREROUTING and cali-OUTPUT
//!   (felix/rules/static.go), so traffic arriving at the node (from outside,
//!   from the fabric, from another node, from a pod of another node or of the
//!   same node) and traffic the node itself sends take different hooks; the
//!   holder reaching its own floating IP needs the loopback SNAT
//!   (felix/rules/nat.go SNATsToIptablesChains); its DNAT matches every
//!   protocol (DNATsToIptablesChains has no protocol match).
//! - `icmp-error`: an error the pod's kernel sends about a translated packet
//!   must quote the floating IP (conntrack's reverse NAT of related packets).
//! - `delivery`: what must happen to the packets: the holder gets them, ECMP
//!   picks one of several claimants across nodes (BIRD's `merge paths on`),
//!   or nobody gets them.
//! - `change`, `timing`: what last happened to the floating IP and whether
//!   a flow was running while it happened (Felix's updates, the conntrack
//!   deletions of felix/dataplane/linux/floating_ip_mgr.go and
//!   route_table.go, the profiles of `control::ConntrackProfile`).
//! - `claims`, `node-nat`: how many pods claim the floating IP, how many
//!   floating IPs its holder has, and how many other mappings its node holds
//!   (Felix's text-order choice among claims on one node, maps and chains with
//!   more than one entry, updates that touch one entry among others).
//! - `pool`: which IP pool the floating IP is in decides who routes it (confd
//!   bgp_processor.go processIPPool; `calico::FloatingIpReach`).
//! - `switches`: Felix's `floatingIPs` and the CNI plugin's
//!   `feature_control.floating_ips`, independent of each other.
//! - `profile`, `routing`: the harness's run modes (`calico`/`strict`
//!   conntrack, BIRD or the route model).

/// One dimension: its name and its values, each `(name, meaning)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dimension {
    pub name: &'static str,
    pub about: &'static str,
    pub values: &'static [(&'static str, &'static str)],
}

impl Dimension {
    /// Whether `value` is one of this dimension's values.
    pub fn has(&self, value: &str) -> bool {
        self.values.iter().any(|(v, _)| *v == value)
    }
}

/// Every dimension, in the order tables print them.
pub const DIMENSIONS: &[Dimension] = &[
    Dimension {
        name: "source",
        about: "who sends to the floating IP",
        values: &[
            ("external", "a host outside the cluster, beyond the fabric"),
            ("fabric", "the fabric router itself"),
            ("other-node", "a node that does not host a claimant"),
            (
                "hosting-node",
                "the node of the pod holding the floating IP (once nobody does, of the last holder)",
            ),
            ("other-node-pod", "a pod on a node that does not host a claimant"),
            ("same-node-pod", "a pod on the holder's node, holding no floating IP"),
            (
                "holder",
                "the pod holding the floating IP itself (loopback; once nobody does, the last holder)",
            ),
            ("other-fip-holder", "a pod holding another floating IP"),
        ],
    },
    Dimension {
        name: "family",
        about: "the floating IP's address family",
        values: &[("ipv4", "IPv4"), ("ipv6", "IPv6")],
    },
    Dimension {
        name: "protocol",
        about: "what is sent",
        values: &[
            ("icmp", "ICMP or ICMPv6 echo"),
            ("gre", "GRE"),
            ("sctp", "an SCTP association"),
            ("udp", "UDP"),
            ("tcp", "TCP"),
        ],
    },
    Dimension {
        name: "icmp-error",
        about: "an ICMP error about the traffic, and its direction",
        values: &[
            ("none", "no ICMP error is checked"),
            (
                "from-pod",
                "the pod's kernel refuses the packet; the error reaches the sender quoting the floating IP",
            ),
        ],
    },
    Dimension {
        name: "delivery",
        about: "what must happen to the packets",
        values: &[
            ("holder", "the pod holding the floating IP receives them"),
            ("one-of", "one of the claimants on several nodes receives them (ECMP)"),
            ("nobody", "no pod receives them"),
        ],
    },
    Dimension {
        name: "change",
        about: "what last happened to the floating IP before the traffic (or under it)",
        values: &[
            ("unclaimed", "no pod has claimed it so far"),
            ("created", "claimed by a pod's annotation when the pod was set up"),
            ("added", "added to a running pod's annotation"),
            ("removed", "removed from its pod's annotation: nobody claims it"),
            ("moved-on-node", "moved to another pod of the same node"),
            ("moved-across-nodes", "moved to a pod of another node"),
            ("duplicate-made", "a second pod claimed it too"),
            ("duplicate-released", "one of several claimants let it go"),
            ("delete-recreate", "its pod was deleted and created again"),
            ("holder-deleted", "its pod was deleted: nobody claims it"),
            ("holder-finished", "its pod's phase became Succeeded or Failed"),
        ],
    },
    Dimension {
        name: "timing",
        about: "when the traffic runs against the change",
        values: &[
            ("settled", "probes sent after the change"),
            ("under-stream", "a stream running while the change happens"),
        ],
    },
    Dimension {
        name: "claims",
        about: "who claims the floating IP",
        values: &[
            ("one", "one pod, with this floating IP only"),
            ("several-on-pod", "one pod, with other floating IPs too"),
            ("duplicate-on-node", "several pods of one node (Felix picks by text order)"),
            ("duplicate-across-nodes", "pods of several nodes (ECMP)"),
            ("nobody", "no pod"),
        ],
    },
    Dimension {
        name: "node-nat",
        about: "the floating-IP mappings the holder's node has besides this one",
        values: &[
            ("alone", "this floating IP's mapping only"),
            ("with-others", "other floating IPs' mappings too"),
            ("empty", "no mapping at all"),
        ],
    },
    Dimension {
        name: "pool",
        about: "the IP pool the floating IP is in",
        values: &[
            ("exported", "an unencapsulated pool: exported to the fabric and the other nodes"),
            ("vxlan", "a VXLAN pool: exported to the fabric, not programmed on other nodes"),
            ("ipip", "an IPIP pool: exported to the fabric, not programmed on other nodes"),
            ("no-export", "a disableBGPExport pool: only the hosting node routes it"),
            ("outside", "outside every pool: only the hosting node routes it"),
        ],
    },
    Dimension {
        name: "switches",
        about: "Felix's floatingIPs and the CNI plugin's feature_control.floating_ips",
        values: &[
            ("both-on", "both enabled"),
            ("felix-off", "Felix's floatingIPs Disabled"),
            ("cni-off", "the CNI plugin's feature off (annotations added to running pods)"),
        ],
    },
    Dimension {
        name: "profile",
        about: "the conntrack profile the case runs under",
        values: &[
            ("calico", "Calico's conntrack deletions"),
            ("strict", "also the moved floating IP's flows deleted"),
        ],
    },
    Dimension {
        name: "routing",
        about: "who programs the routes",
        values: &[("bird", "BIRD, as Calico"), ("model", "the harness's route model")],
    },
];

/// The dimension called `name`.
pub fn dimension(name: &str) -> Option<&'static Dimension> {
    DIMENSIONS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_unique() {
        let mut names: Vec<&str> = DIMENSIONS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DIMENSIONS.len());
        for d in DIMENSIONS {
            let mut values: Vec<&str> = d.values.iter().map(|(v, _)| *v).collect();
            values.sort_unstable();
            values.dedup();
            assert_eq!(values.len(), d.values.len(), "{}", d.name);
            assert!(values.len() >= 2, "{} has one value", d.name);
        }
    }
}
