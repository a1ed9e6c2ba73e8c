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
//! To add one: a variant of [`NatBug`] (bend the state in `nat.rs`'s `bend`,
//! or rewrite the map backend's chains in its `patch`) or of [`PolicyBug`]
//! (a hook in `policy.rs`), and an entry in [`MUTANTS`] with the real bug it
//! models. `fip-harness mutants` and `cargo test --test mutants` then run the
//! catalogue against it (`crate::mutation`).

mod nat;
mod policy;

use std::sync::Arc;
use std::time::Duration;

pub use nat::{MutantDataplane, NatBug};
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
        models: "DNAT only in prerouting: traffic the node itself sends to a floating IP is not translated",
        bug: Bug::Nat(NatBug::NoOutputDnat),
    },
    Mutant {
        name: "no-loopback-snat",
        models: "no loopback SNAT: a pod reaching its own floating IP sees its own address as the source",
        bug: Bug::Nat(NatBug::NoLoopbackSnat),
    },
    Mutant {
        name: "snat-on-egress",
        models: "SNAT keyed on the source only: every packet a pod sends leaves with its floating IP as source",
        bug: Bug::Nat(NatBug::SnatOnEgress),
    },
    Mutant {
        name: "dnat-l4-only",
        models: "DNAT matched on tcp/udp/sctp like a Service rule: ICMP and GRE to a floating IP are not translated",
        bug: Bug::Nat(NatBug::DnatL4Only),
    },
    Mutant {
        name: "ipv6-ignored",
        models: "only the ip table is programmed: IPv6 floating IPs get no NAT at all",
        bug: Bug::Nat(NatBug::Ipv6Ignored),
    },
    Mutant {
        name: "duplicate-numeric-order",
        models: "duplicate claims on a node resolved by numeric address order instead of Felix's text order",
        bug: Bug::Policy(PolicyBug::NumericClaimOrder),
    },
    Mutant {
        name: "dnat-wrong-pod",
        models: "off-by-one in the DNAT target: the floating IP lands on the neighbouring address of the node's block",
        bug: Bug::Nat(NatBug::DnatOffByOne),
    },
    Mutant {
        name: "stale-mappings",
        models: "incremental updates that only add: mappings stay behind after a floating IP moves or its pod goes",
        bug: Bug::Nat(NatBug::StaleMappings),
    },
    Mutant {
        name: "strict-never-flushes",
        models: "the strict profile's conntrack deletions are computed but never sent",
        bug: Bug::Policy(PolicyBug::NeverFlushByDestination),
    },
    Mutant {
        name: "flush-everything",
        models: "conntrack flushed entirely on every change, breaking flows Calico keeps",
        bug: Bug::Policy(PolicyBug::FlushEverything),
    },
    Mutant {
        name: "felix-switch-ignored",
        models: "DNAT programmed from ipNATs even while Felix's floatingIPs switch is Disabled",
        bug: Bug::Policy(PolicyBug::IgnoreFelixSwitch),
    },
    Mutant {
        name: "late-200ms",
        models: "the dataplane answers before its rules are in force: each change lands 200 ms later",
        bug: Bug::Nat(NatBug::Late(Duration::from_millis(200))),
    },
];

impl Mutant {
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
        assert!(MUTANTS.len() >= 12);
        assert_eq!(find("no-such-bug"), None);
    }
}
