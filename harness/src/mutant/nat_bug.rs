//! The dataplane bugs a mutant carries: what [`super::nat`] wraps a
//! dataplane with and [`super::render`] writes into its table.

use std::time::Duration;

/// One dataplane bug. Each names its class and how it happens in real code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatBug {
    /// Hook choice: the output chain has no DNAT, so the node's own traffic
    /// is not translated (a dataplane that hooks only packets arriving on an
    /// interface, as a TC/XDP program does).
    NoOutputDnat,
    /// No loopback SNAT mappings.
    NoLoopbackSnat,
    /// SNAT of every packet from a pod with a floating IP, not only loopback.
    SnatOnEgress,
    /// Protocol list: DNAT only for tcp, udp and sctp.
    DnatL4Only,
    /// Protocol list: DNAT for every protocol but GRE (an allow-list of the
    /// protocols a parser knows, GRE forgotten).
    DnatNoGre,
    /// Protocol list: DNAT for every protocol but SCTP (an L4 parser that
    /// knows TCP, UDP and ICMP only, as early eBPF NATs did).
    DnatNoSctp,
    /// Family mix-up: the IPv6 table's protocol list copied from the IPv4
    /// one says `icmp` (protocol 1), so ICMPv6 (58) is not translated.
    IcmpV6NotTranslated,
    /// Family mix-up: IPv6 mappings are dropped.
    Ipv6Ignored,
    /// Family mix-up: the loopback SNAT exists for IPv4 only (its rule was
    /// rendered into the ip table alone).
    Ipv6NoLoopbackSnat,
    /// Match on interface: DNAT only for packets arriving on the uplink (a
    /// program attached to the host's main interface, not to the workloads').
    DnatUplinkOnly,
    /// Match on interface: DNAT only for packets arriving from a pod's
    /// `cali*` interface (attached to workload interfaces only).
    DnatPodsOnly,
    /// Prefix length: each floating IP matched as its /24 (/64), the length
    /// of the pool's CIDR, not the /32 (/128) of one address.
    DnatPrefix,
    /// Match fields: the loopback SNAT matches the destination only (`-d
    /// INT`, the `-s INT` lost in a port to a map keyed by one address), so
    /// every packet to a pod that holds a floating IP is SNATed.
    SnatDestinationOnly,
    /// Hook choice: the loopback SNAT in the nat input hook, which sees only
    /// packets for the node itself, never the ones forwarded to a pod.
    SnatInInputHook,
    /// ICMP error translation: ICMP errors are not tracked (a raw-table
    /// `notrack`, or an eBPF NAT that parses no ICMP error), so conntrack
    /// never reverses the NAT in the header they quote.
    IcmpErrorsUntracked,
    /// Keys and ordering in maps: the loopback SNAT takes the text-greatest
    /// floating IP of the pod (the last one written to a map wins), not the
    /// earliest as Felix picks it.
    SnatLastWins,
    /// Keys in maps: the DNAT map keyed by the pod, so a pod with several
    /// floating IPs keeps one (the last written).
    DnatKeyedByPod,
    /// DNAT to the address after the right one.
    DnatOffByOne,
    /// Mappings are never removed, only replaced by a newer one of the same key.
    StaleMappings,
    /// Topology handling: the pods known when the node first got a mapping
    /// are the only ones it ever translates to (an agent that attaches to
    /// the workload interfaces when it first has work, and never reads a
    /// later topology).
    TopologyFrozen,
    /// Async agent: `apply` returns at once; the rules land this much later.
    Late(Duration),
    /// Async agent: every other apply of a node lands this much later, on a
    /// worker of its own, so it lands after the next one (updates applied
    /// concurrently without sequencing: the older state wins).
    Reordered(Duration),
    /// Async agent: an apply within this long of the last one taken is
    /// dropped (a debounce without its trailing update).
    LostTrailing(Duration),
}
