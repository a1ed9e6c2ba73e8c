//! Mutants: deliberately broken dataplanes and control planes, each modelling
//! a plausible real bug. The catalogue must fail on every one of them; a
//! mutant that passes every case names a bug the catalogue cannot see.
//!
//! A mutant breaks either the NAT a node holds ([`NatBug`]: [`MutantDataplane`]
//! wraps the reference dataplane) or what the control plane decides
//! ([`PolicyBug`]: [`MutantPolicy`] overrides a hook of
//! `control::ControlPolicy`). Neither `dataplane/` nor `control/` names them:
//! mutants wrap from outside, as smoltcp's fault injector wraps a device, and
//! the runner's dataplane choice (`runner::DataplaneChoice`) asks
//! [`Mutant::wrap`] for the broken pair.
//!
//! To add one: a variant of [`NatBug`] (`nat_bug.rs`; bend the state in `nat.rs`'s `bend`,
//! or rewrite the map backend's chains in its `patch`) or of [`PolicyBug`]
//! (a hook in `policy.rs`), and an entry in [`MUTANTS`] with the real bug it
//! models. `fip-harness mutants` and `cargo test --test mutants` then run the
//! catalogue against it (`crate::mutation`).

mod nat;
mod nat_bug;
mod policy;
mod render;
mod timing;

use std::sync::Arc;
use std::time::Duration;

pub use nat::MutantDataplane;
pub use nat_bug::NatBug;
pub use policy::{MutantPolicy, PolicyBug};

use crate::control::{CalicoPolicy, ControlPolicy};
use crate::dataplane::{backend, Dataplane};
use crate::vocab::BackendKind;

/// The backend mutants break: a case runs on a mutant wherever it runs on
/// this backend.
pub const REFERENCE: BackendKind = BackendKind::NftMaps;

/// One deliberately broken dataplane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mutant {
    /// Selected as `mutant:<name>`.
    pub name: &'static str,
    /// The class of bug it belongs to (hook choice, protocol lists, ...).
    pub class: &'static str,
    /// The real-world bug it models, in one line.
    pub models: &'static str,
    pub bug: Bug,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    Nat(NatBug),
    Policy(PolicyBug),
}

/// Every mutant, in the order `fip-harness mutants` reports them.
pub const MUTANTS: &[Mutant] = &[
    Mutant {
        name: "no-output-dnat",
        class: "hook choice",
        models: "DNAT only in prerouting: traffic the node itself sends to a floating IP is not translated",
        bug: Bug::Nat(NatBug::NoOutputDnat),
    },
    Mutant {
        name: "no-loopback-snat",
        class: "loopback NAT",
        models: "no loopback SNAT: a pod reaching its own floating IP sees its own address as the source",
        bug: Bug::Nat(NatBug::NoLoopbackSnat),
    },
    Mutant {
        name: "snat-on-egress",
        class: "match fields",
        models: "SNAT keyed on the source only: every packet a pod sends leaves with its floating IP as source",
        bug: Bug::Nat(NatBug::SnatOnEgress),
    },
    Mutant {
        name: "dnat-l4-only",
        class: "protocol lists",
        models: "DNAT matched on tcp/udp/sctp like a Service rule: ICMP and GRE to a floating IP are not translated",
        bug: Bug::Nat(NatBug::DnatL4Only),
    },
    Mutant {
        name: "ipv6-ignored",
        class: "family mix-up",
        models: "only the ip table is programmed: IPv6 floating IPs get no NAT at all",
        bug: Bug::Nat(NatBug::Ipv6Ignored),
    },
    Mutant {
        name: "duplicate-numeric-order",
        class: "keys and ordering",
        models: "duplicate claims on a node resolved by numeric address order instead of Felix's text order",
        bug: Bug::Policy(PolicyBug::NumericClaimOrder),
    },
    Mutant {
        name: "dnat-wrong-pod",
        class: "off by one",
        models: "off-by-one in the DNAT target: the floating IP lands on the neighbouring address of the node's block",
        bug: Bug::Nat(NatBug::DnatOffByOne),
    },
    Mutant {
        name: "stale-mappings",
        class: "incremental updates",
        models: "incremental updates that only add: mappings stay behind after a floating IP moves or its pod goes",
        bug: Bug::Nat(NatBug::StaleMappings),
    },
    Mutant {
        name: "strict-never-flushes",
        class: "conntrack flushes",
        models: "the strict profile's conntrack deletions are computed but never sent",
        bug: Bug::Policy(PolicyBug::NeverFlushByDestination),
    },
    Mutant {
        name: "flush-everything",
        class: "conntrack flushes",
        models: "conntrack flushed entirely on every change, breaking flows Calico keeps",
        bug: Bug::Policy(PolicyBug::FlushEverything),
    },
    Mutant {
        name: "felix-switch-ignored",
        class: "configuration switches",
        models: "DNAT programmed from ipNATs even while Felix's floatingIPs switch is Disabled",
        bug: Bug::Policy(PolicyBug::IgnoreFelixSwitch),
    },
    Mutant {
        name: "late-200ms",
        class: "async agents",
        models: "the dataplane answers before its rules are in force: each change lands 200 ms later",
        bug: Bug::Nat(NatBug::Late(Duration::from_millis(200))),
    },
    // An allow-list of the protocols a parser knows (eBPF NATs keep one):
    // GRE is the one people forget, having no ports.
    Mutant {
        name: "dnat-no-gre",
        class: "protocol lists",
        models: "DNAT for icmp, tcp, udp and sctp only: GRE to a floating IP is not translated",
        bug: Bug::Nat(NatBug::DnatNoGre),
    },
    // An L4 parser written for TCP, UDP and ICMP, as early eBPF NATs had.
    Mutant {
        name: "dnat-no-sctp",
        class: "protocol lists",
        models: "DNAT for every protocol but SCTP: an SCTP association to a floating IP never starts",
        bug: Bug::Nat(NatBug::DnatNoSctp),
    },
    // The IPv4 rule copied into the ip6 table: `meta l4proto icmp` there
    // matches protocol 1, and ICMPv6 is 58.
    Mutant {
        name: "icmpv6-not-translated",
        class: "family mix-up",
        models: "the IPv6 table's protocol list says icmp, not icmpv6: ICMPv6 echo to an IPv6 floating IP is not translated",
        bug: Bug::Nat(NatBug::IcmpV6NotTranslated),
    },
    // The loopback SNAT rendered once, into the ip table only.
    Mutant {
        name: "ipv6-no-loopback-snat",
        class: "family mix-up",
        models: "the loopback SNAT exists for IPv4 only: a pod reaching its own IPv6 floating IP sees its own address",
        bug: Bug::Nat(NatBug::Ipv6NoLoopbackSnat),
    },
    // A TC/XDP program attached to the host's main interface only.
    Mutant {
        name: "dnat-uplink-only",
        class: "match on interface",
        models: "DNAT only for packets arriving on the uplink: pods of the hosting node do not reach its floating IPs",
        bug: Bug::Nat(NatBug::DnatUplinkOnly),
    },
    // A program attached to the workloads' interfaces only, as a
    // workload-side hook is.
    Mutant {
        name: "dnat-pods-only",
        class: "match on interface",
        models: "DNAT only for packets arriving from a cali* interface: traffic from outside the node is not translated",
        bug: Bug::Nat(NatBug::DnatPodsOnly),
    },
    // The pool's CIDR used where the address's host prefix belongs, in an
    // LPM map or a route.
    Mutant {
        name: "dnat-prefix-24",
        class: "prefix length",
        models: "each floating IP matched as its /24 (/64): every address of the network lands on one pod",
        bug: Bug::Nat(NatBug::DnatPrefix),
    },
    // A port to a map keyed by one address dropped the `-s INT` of `-s INT -d INT`.
    Mutant {
        name: "snat-destination-only",
        class: "match fields",
        models: "the loopback SNAT matches the destination only: every pod reaching a floating-IP pod is SNATed to its floating IP",
        bug: Bug::Nat(NatBug::SnatDestinationOnly),
    },
    // "Traffic into the pod" read as the nat input hook, which sees only
    // packets for the node itself.
    Mutant {
        name: "snat-in-input-hook",
        class: "hook choice",
        models: "the loopback SNAT in the nat input hook instead of postrouting: it never sees packets forwarded to a pod",
        bug: Bug::Nat(NatBug::SnatInInputHook),
    },
    // A raw-table notrack for ICMP errors, or an eBPF NAT that parses no
    // ICMP error: the quoted header keeps the pod's address.
    Mutant {
        name: "icmp-errors-untracked",
        class: "ICMP error translation",
        models: "ICMP errors are not tracked, so the header an error quotes is not translated back to the floating IP",
        bug: Bug::Nat(NatBug::IcmpErrorsUntracked),
    },
    // Iterating a pod's floating IPs into a map: the last write wins.
    Mutant {
        name: "snat-last-wins",
        class: "keys and ordering",
        models: "the loopback SNAT picks the pod's text-greatest floating IP (the last written) instead of Felix's earliest",
        bug: Bug::Nat(NatBug::SnatLastWins),
    },
    // A BPF map indexed by workload address instead of by floating IP.
    Mutant {
        name: "dnat-keyed-by-pod",
        class: "keys and ordering",
        models: "the DNAT map keyed by the pod: a pod with several floating IPs keeps one of them",
        bug: Bug::Nat(NatBug::DnatKeyedByPod),
    },
    // An agent that attaches to the workload interfaces once and never
    // reads a later topology.
    Mutant {
        name: "topology-frozen",
        class: "topology handling",
        models: "the node translates only to the pods it had when it first got a mapping: pods created later are ignored",
        bug: Bug::Nat(NatBug::TopologyFrozen),
    },
    // Updates handed to a worker pool without sequencing: the older state
    // can land last.
    Mutant {
        name: "updates-reordered",
        class: "atomicity of updates",
        models: "every other update of a node lands 300 ms late on a worker of its own, after the next one: the older state wins",
        bug: Bug::Nat(NatBug::Reordered(Duration::from_millis(300))),
    },
    // A debounce that drops the trailing update instead of delaying it.
    Mutant {
        name: "lost-trailing-update",
        class: "async agents",
        models: "an update within 100 ms of the last one taken is dropped: quick successive changes leave a stale state",
        bug: Bug::Nat(NatBug::LostTrailing(Duration::from_millis(100))),
    },
    // `conntrack -D -d ADDR` where Calico deletes by `-s ADDR` and `-r ADDR`.
    Mutant {
        name: "flush-by-destination",
        class: "conntrack flush direction",
        models: "a deleted pod's flows deleted by original destination, not source or reply source: flows DNATed to it stay",
        bug: Bug::Policy(PolicyBug::FlushByDestination),
    },
    // The strict deletions keyed on the wrong direction.
    Mutant {
        name: "strict-flush-by-source",
        class: "conntrack flush direction",
        models: "the strict profile deletes a moved floating IP's flows by source, which never matches a DNATed flow",
        bug: Bug::Policy(PolicyBug::StrictFlushBySource),
    },
    // A reconciler that only writes the routes it wants.
    Mutant {
        name: "routes-never-removed",
        class: "route withdrawal",
        models: "routes are added and replaced, never removed: a moved floating IP keeps its device route on the old node",
        bug: Bug::Policy(PolicyBug::RoutesNeverRemoved),
    },
    // A route filter that keeps only the pod's IPAM addresses.
    Mutant {
        name: "no-floating-ip-route",
        class: "route programming",
        models: "the floating IP's device route on the hosting node is never programmed: BIRD has nothing to export",
        bug: Bug::Policy(PolicyBug::NoFloatingIpRoute),
    },
    // A cluster-wide owner election where Calico has none.
    Mutant {
        name: "duplicate-arbitrated-globally",
        class: "topology handling",
        models: "claims on several nodes arbitrated cluster-wide: the losers' nodes lose the NAT Felix gives each node's own claimant",
        bug: Bug::Policy(PolicyBug::DuplicateArbitratedGlobally),
    },
];

impl Mutant {
    /// Whether the bug shows only where BIRD carries the routes: it breaks
    /// the hosting nodes' device routes, which BIRD exports, while under
    /// the harness's model routing the fabric and the other nodes get the
    /// model's routes whatever a node holds (and a node's DNAT comes before
    /// its routes).
    pub fn needs_bird(&self) -> bool {
        matches!(
            self.bug,
            Bug::Policy(PolicyBug::RoutesNeverRemoved | PolicyBug::NoFloatingIpRoute)
        )
    }

    /// The reference dataplane and Calico's control policy, one of them
    /// broken: a NAT bug wraps the dataplane, a policy bug overrides a hook.
    pub fn wrap(&self) -> (Arc<dyn Dataplane>, Arc<dyn ControlPolicy>) {
        let reference = backend(REFERENCE);
        match self.bug {
            Bug::Nat(bug) => (
                Arc::new(MutantDataplane::wrap(bug, reference)),
                Arc::new(CalicoPolicy),
            ),
            Bug::Policy(bug) => (reference, Arc::new(MutantPolicy(bug))),
        }
    }
}

/// The mutant called `name`.
pub fn find(name: &str) -> Option<&'static Mutant> {
    MUTANTS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_findable() {
        for mutant in MUTANTS {
            assert_eq!(find(mutant.name), Some(mutant));
        }
        let mut names: Vec<&str> = MUTANTS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MUTANTS.len());
        assert!(MUTANTS.len() >= 30);
        assert_eq!(find("no-such-bug"), None);
    }
}
