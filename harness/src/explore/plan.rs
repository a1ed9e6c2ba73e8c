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
    /// The pods' IPv4 pool.
    pub pod_pool: PodPool,
    pub profile: ConntrackProfile,
    pub ops: Vec<Op>,
}

/// The pods' IPv4 pool: which addresses pods get, in which order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPool {
    /// `198.19.0.0/16` in blocks of 64: a node's pods get consecutive
    /// addresses of its own block.
    Wide,
    /// `198.19.0.8/29` and `198.19.0.16/28` in blocks of four, a pod
    /// created first on the first node: that node's next pods get `.9`,
    /// `.10` and `.11`, whose text order is not their numeric order: what
    /// Felix's text order of duplicate claims is about. (Blocks of one
    /// address, `blockSize: 32`, which Calico allows (20 to 32, and 116 to
    /// 128 for IPv6: api/pkg/apis/projectcalico/v3/ippool.go), would need
    /// no first pod; the catalogue's block-size-32 covers them, the
    /// generator does not draw them yet.)
    Tiny,
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
        from: Sender,
        to: Target,
        protocol: Protocol,
        /// UDP to a port nothing listens on (an ICMP error comes back).
        closed_port: bool,
        count: u32,
    },
    StartStream {
        from: Sender,
        to: Target,
        protocol: Protocol,
    },
    /// A pod that claims a floating IP sends to an external host: what the
    /// host sees as the source (no egress SNAT in Calico).
    Egress {
        claim: Index,
        external: Index,
        v6: bool,
        protocol: Protocol,
    },
    /// A pod sends to a floating IP it claims itself (the loopback case).
    Loopback {
        claim: Index,
        v6: bool,
        protocol: Protocol,
        closed_port: bool,
    },
    /// Another replica of a claimant: a new pod on a node with the same
    /// annotation (a Deployment scaled up), so the floating IP is claimed
    /// twice; then traffic to it.
    Replica {
        claim: Index,
        node: Index,
        from: Sender,
        protocol: Protocol,
    },
    /// A claimed floating IP changes hands, or its claimant goes.
    Change {
        claim: Index,
        change: Change,
    },
    /// A stream to a claimed floating IP, then a change of that claim while
    /// it runs: the conntrack deletions of Calico (and of the profile)
    /// decide where its packets go next.
    StreamAcross {
        from: Sender,
        claim: Index,
        v6: bool,
        protocol: Protocol,
        change: Change,
    },
    StopStream {
        stream: Index,
    },
    Wait,
}

/// Who sends.
#[derive(Clone, Debug)]
pub enum Sender {
    /// A member (external host, node or live pod, in that order) by index.
    Member(Index),
    /// A pod claiming a floating IP (the claim by index): to its own
    /// floating IP it is the loopback case.
    Claimant(Index),
    /// The node of a claimant, or another pod on that node.
    NearClaimant { claim: Index, member: Index },
}

/// What happens to a claim (a floating IP and a pod claiming it).
#[derive(Clone, Debug)]
pub enum Change {
    /// The annotation moves: the claimant's list loses the address, the
    /// other pod's gains it (`add_first`: in that order or the other).
    Move { to: MoveTo, add_first: bool },
    /// The claimant is deleted; then another pod may claim the address.
    Delete { then: Option<MoveTo> },
    /// The claimant is deleted and created again with the same name, node
    /// and annotation (a StatefulSet's pod restarting).
    Recreate,
}

/// Where a moved claim goes.
#[derive(Clone, Debug)]
pub enum MoveTo {
    /// A live pod other than the claimant, by index.
    Pod(Index),
    /// A new pod on a node, by index.
    NewPod(Index),
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
    /// An address some pod claims already (a duplicate claim), by index.
    Claimed { claim: Index, v6: bool },
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
    /// An address some live pod claims, by index (of that family when
    /// there is one).
    Claimed {
        claim: Index,
        v6: bool,
    },
}

/// Every case: small topologies, switches mostly on, operations in any order.
pub fn case_strategy() -> impl Strategy<Value = CaseSpec> {
    (
        1..=MAX_NODES,
        1..=MAX_EXTERNALS,
        prop::bool::weighted(0.5),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        floating_pool(),
        prop_oneof![3 => Just(PodPool::Wide), 1 => Just(PodPool::Tiny)],
        prop_oneof![2 => Just(ConntrackProfile::Calico), 1 => Just(ConntrackProfile::Strict)],
        prop::collection::vec(op(), 1..=MAX_OPS),
    )
        .prop_map(
            |(nodes, externals, dual_stack, cni, felix, floating_pool, pod_pool, profile, ops)| {
                CaseSpec {
                    nodes,
                    externals,
                    dual_stack,
                    cni_floating_ips: cni,
                    felix_enabled: felix,
                    floating_pool,
                    pod_pool,
                    profile,
                    ops,
                }
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
        2 => Just(Protocol::Udp),
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

/// IPv6 as often as not where the case is dual-stack.
fn v6() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<Index>(), prop::option::weighted(0.2, any::<Index>()),
              prop::option::weighted(0.6, annotation()))
            .prop_map(|(node, reuse, annotation)| Op::CreatePod { node, reuse, annotation }),
        5 => (sender(), target(), protocol(), prop::bool::weighted(0.35), 1..=3u32)
            .prop_map(|(from, to, protocol, closed_port, count)| Op::Send {
                from, to, protocol, closed_port, count,
            }),
        3 => (any::<Index>(), prop::option::weighted(0.8, annotation()))
            .prop_map(|(pod, value)| Op::Annotate { pod, value }),
        1 => any::<Index>().prop_map(|pod| Op::DeletePod { pod }),
        1 => (any::<Index>(), phase()).prop_map(|(pod, phase)| Op::SetPhase { pod, phase }),
        1 => (sender(), target(), stream_protocol())
            .prop_map(|(from, to, protocol)| Op::StartStream { from, to, protocol }),
        1 => any::<Index>().prop_map(|stream| Op::StopStream { stream }),
        1 => Just(Op::Wait),
        1 => (any::<Index>(), any::<Index>(), v6(), protocol())
            .prop_map(|(claim, external, v6, protocol)| Op::Egress { claim, external, v6, protocol }),
        1 => (any::<Index>(), v6(), protocol(), prop::bool::weighted(0.35))
            .prop_map(|(claim, v6, protocol, closed_port)| Op::Loopback { claim, v6, protocol, closed_port }),
        2 => (any::<Index>(), any::<Index>(), sender(), protocol())
            .prop_map(|(claim, node, from, protocol)| Op::Replica { claim, node, from, protocol }),
        1 => (any::<Index>(), change()).prop_map(|(claim, change)| Op::Change { claim, change }),
        2 => (sender(), any::<Index>(), v6(), stream_protocol(), change())
            .prop_map(|(from, claim, v6, protocol, change)| Op::StreamAcross {
                from, claim, v6, protocol, change,
            }),
    ]
}

fn sender() -> impl Strategy<Value = Sender> {
    prop_oneof![
        4 => any::<Index>().prop_map(Sender::Member),
        1 => any::<Index>().prop_map(Sender::Claimant),
        1 => (any::<Index>(), any::<Index>())
            .prop_map(|(claim, member)| Sender::NearClaimant { claim, member }),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (move_to(), any::<bool>()).prop_map(|(to, add_first)| Change::Move { to, add_first }),
        2 => prop::option::weighted(0.7, move_to()).prop_map(|then| Change::Delete { then }),
        1 => Just(Change::Recreate),
    ]
}

fn move_to() -> impl Strategy<Value = MoveTo> {
    prop_oneof![
        2 => any::<Index>().prop_map(MoveTo::Pod),
        1 => any::<Index>().prop_map(MoveTo::NewPod),
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

/// A floating-pool slot: the first one half the time, so that claims meet.
fn slot() -> impl Strategy<Value = u8> {
    prop_oneof![1 => Just(0u8), 1 => 0..FLOATING_SLOTS]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        10 => (slot(), v6()).prop_map(|(slot, v6)| Entry::Floating { slot, v6 }),
        5 => (any::<Index>(), v6()).prop_map(|(claim, v6)| Entry::Claimed { claim, v6 }),
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
        4 => (slot(), v6()).prop_map(|(slot, v6)| Target::Floating { slot, v6 }),
        6 => (any::<Index>(), v6()).prop_map(|(claim, v6)| Target::Claimed { claim, v6 }),
        3 => (any::<Index>(), v6()).prop_map(|(member, v6)| Target::Member { member, v6 }),
        1 => any::<bool>().prop_map(|v6| Target::Outside { v6 }),
    ]
}
