//! What a generated case is made of before the model reads it: a small
//! cluster and a list of abstract operations whose references (which node,
//! which pod, which floating IP) are indexes resolved against the cluster as
//! it is when the operation comes ([`super::script`]). Proptest generates and
//! shrinks these values: dropping an operation or lowering an index always
//! leaves a case the model can read, so every shrink step is a valid case.

use proptest::prelude::*;
use proptest::sample::Index;

use crate::calico::PodPhase;
use crate::vocab::{ConntrackProfile, Protocol};

/// Most nodes, external hosts, operations and floating-IP slots a case has:
/// small labs build fast and small cases read well.
pub const MAX_NODES: usize = 3;
pub const MAX_EXTERNALS: usize = 2;
pub const MAX_OPS: usize = 14;
pub const FLOATING_SLOTS: u8 = 4;

/// One generated case.
#[derive(Clone, Debug)]
pub struct CaseSpec {
    pub nodes: usize,
    pub externals: usize,
    pub dual_stack: bool,
    /// The CNI plugin's `feature_control.floating_ips`.
    pub cni_floating_ips: bool,
    /// Felix's `floatingIPs: Enabled`.
    pub felix_enabled: bool,
    pub floating_pool: FloatingPool,
    pub profile: ConntrackProfile,
    pub ops: Vec<Op>,
}

/// How the pool the floating IPs come from is set up (it is always disabled
/// for IPAM): which decides who learns their routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatingPool {
    /// Exported to BGP unencapsulated: the fabric and every node learn it.
    Plain,
    /// A VXLAN pool: exported, but only the fabric programs it.
    Vxlan,
    /// `disableBGPExport`: only the hosting node routes it.
    NoExport,
}

/// One operation. Indexes pick among what exists when it runs.
#[derive(Clone, Debug)]
pub enum Op {
    /// A new pod on a node; `reuse` takes the name of a deleted pod.
    CreatePod {
        node: Index,
        reuse: Option<Index>,
        annotation: Option<Annotation>,
    },
    DeletePod {
        pod: Index,
    },
    /// Set (`Some`) or remove the floating-IP annotation of a live pod.
    Annotate {
        pod: Index,
        value: Option<Annotation>,
    },
    SetPhase {
        pod: Index,
        phase: PodPhase,
    },
    Send {
        from: Index,
        to: Target,
        protocol: Protocol,
        /// UDP to a port nothing listens on (an ICMP error comes back).
        closed_port: bool,
        count: u32,
    },
    StartStream {
        from: Index,
        to: Target,
        protocol: Protocol,
    },
    StopStream {
        stream: Index,
    },
    Wait,
}

/// A floating-IP annotation's value.
#[derive(Clone, Debug)]
pub enum Annotation {
    /// A JSON list of these entries.
    List(Vec<Entry>),
    /// Not a JSON list of strings at all.
    Malformed(Malformed),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// `["203.0.113.10"` (unterminated).
    Unterminated,
    /// `203.0.113.10` (a bare address, not a list).
    BareAddress,
}

/// One entry of an annotation's list.
#[derive(Clone, Debug)]
pub enum Entry {
    /// Slot `slot` of the floating pool, of that family.
    Floating { slot: u8, v6: bool },
    /// A live pod's own address (a floating IP that shadows a pod).
    PodAddress { pod: Index, v6: bool },
    /// An address outside every pool.
    Outside { v6: bool },
    /// Not a plain IP address.
    Bad(BadEntry),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadEntry {
    Cidr,
    NotAnAddress,
    Empty,
}

/// Where traffic goes.
#[derive(Clone, Debug)]
pub enum Target {
    Floating {
        slot: u8,
        v6: bool,
    },
    /// A member (external host, node or live pod, in that order) by index.
    Member {
        member: Index,
        v6: bool,
    },
    Outside {
        v6: bool,
    },
}

/// Every case: small topologies, switches mostly on, operations in any order.
pub fn case_strategy() -> impl Strategy<Value = CaseSpec> {
    (
        1..=MAX_NODES,
        1..=MAX_EXTERNALS,
        prop::bool::weighted(0.35),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        floating_pool(),
        prop_oneof![3 => Just(ConntrackProfile::Calico), 1 => Just(ConntrackProfile::Strict)],
        prop::collection::vec(op(), 1..=MAX_OPS),
    )
        .prop_map(
            |(nodes, externals, dual_stack, cni, felix, floating_pool, profile, ops)| CaseSpec {
                nodes,
                externals,
                dual_stack,
                cni_floating_ips: cni,
                felix_enabled: felix,
                floating_pool,
                profile,
                ops,
            },
        )
}

fn floating_pool() -> impl Strategy<Value = FloatingPool> {
    prop_oneof![
        6 => Just(FloatingPool::Plain),
        1 => Just(FloatingPool::Vxlan),
        1 => Just(FloatingPool::NoExport),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        3 => Just(Protocol::Icmp),
        1 => Just(Protocol::Gre),
        1 => Just(Protocol::Sctp),
        1 => Just(Protocol::Udp),
        1 => Just(Protocol::Tcp),
    ]
}

fn phase() -> impl Strategy<Value = PodPhase> {
    prop_oneof![
        Just(PodPhase::Running),
        Just(PodPhase::Pending),
        Just(PodPhase::Succeeded),
        Just(PodPhase::Failed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<Index>(), prop::option::weighted(0.2, any::<Index>()),
              prop::option::weighted(0.6, annotation()))
            .prop_map(|(node, reuse, annotation)| Op::CreatePod { node, reuse, annotation }),
        5 => (any::<Index>(), target(), protocol(), prop::bool::weighted(0.1), 1..=3u32)
            .prop_map(|(from, to, protocol, closed_port, count)| Op::Send {
                from, to, protocol, closed_port, count,
            }),
        3 => (any::<Index>(), prop::option::weighted(0.8, annotation()))
            .prop_map(|(pod, value)| Op::Annotate { pod, value }),
        1 => any::<Index>().prop_map(|pod| Op::DeletePod { pod }),
        1 => (any::<Index>(), phase()).prop_map(|(pod, phase)| Op::SetPhase { pod, phase }),
        1 => (any::<Index>(), target(), stream_protocol())
            .prop_map(|(from, to, protocol)| Op::StartStream { from, to, protocol }),
        1 => any::<Index>().prop_map(|stream| Op::StopStream { stream }),
        1 => Just(Op::Wait),
    ]
}

/// Streams of the protocols whose flows conntrack follows per flow.
fn stream_protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        2 => Just(Protocol::Icmp),
        1 => Just(Protocol::Udp),
        1 => Just(Protocol::Sctp),
    ]
}

fn annotation() -> impl Strategy<Value = Annotation> {
    prop_oneof![
        12 => prop::collection::vec(entry(), 0..=3).prop_map(Annotation::List),
        1 => Just(Annotation::Malformed(Malformed::Unterminated)),
        1 => Just(Annotation::Malformed(Malformed::BareAddress)),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        10 => (0..FLOATING_SLOTS, prop::bool::weighted(0.3))
            .prop_map(|(slot, v6)| Entry::Floating { slot, v6 }),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(pod, v6)| Entry::PodAddress { pod, v6 }),
        1 => any::<bool>().prop_map(|v6| Entry::Outside { v6 }),
        1 => prop_oneof![
            Just(BadEntry::Cidr),
            Just(BadEntry::NotAnAddress),
            Just(BadEntry::Empty)
        ]
        .prop_map(Entry::Bad),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => (0..FLOATING_SLOTS, prop::bool::weighted(0.3))
            .prop_map(|(slot, v6)| Target::Floating { slot, v6 }),
        3 => (any::<Index>(), prop::bool::weighted(0.3))
            .prop_map(|(member, v6)| Target::Member { member, v6 }),
        1 => any::<bool>().prop_map(|v6| Target::Outside { v6 }),
    ]
}
