//! Situations a generated case reaches, noted as the model reads it: each
//! is what some class of dataplane bug needs before it can show, and the
//! generator's tests count them over generated cases (no lab involved).

use super::super::expect::StreamTrack;
use crate::calico::cluster::Cluster;
use crate::calico::predict::Packet;
use crate::check::{Delivery, TrafficExpectation};
use crate::vocab::{ConntrackProfile, Protocol};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Situation {
    /// A pod claiming a floating IP sends to an external host, which sees
    /// a source (SNAT on egress would show there).
    EgressSeenSource,
    /// ICMPv6 echo to an IPv6 floating IP reaches its pod.
    Icmpv6ToFloating,
    /// A pod reaches its own IPv6 floating IP (the loopback SNAT's case).
    LoopbackV6,
    /// An ICMP error quotes a floating IP (UDP to a closed port through
    /// the DNAT).
    ErrorQuotingFloating,
    /// Traffic to a floating IP two pods of one node claim, the winner's
    /// address earliest as text but not as a number.
    DuplicateTextOrder,
    /// Traffic to a floating IP pods of two nodes claim.
    DuplicateAcrossNodes,
    /// A stream to a floating IP that moves while it runs, by profile.
    StreamAcrossMoveCalico,
    StreamAcrossMoveStrict,
    /// A stream whose pod was deleted while it ran, then went to another
    /// pod.
    StreamPastDeletedPod,
    /// A pod claims an address inside an IPAM block of its own node, which
    /// Calico's BIRD does not export (confd's bird_aggr.cfg.template
    /// `calico_aggr`; `calico::desired`): the other members reach it by
    /// the block's route.
    ClaimInOwnBlock,
    /// A pod claims another live pod's address: answers to that pod may
    /// go to the claimant.
    ClaimOfAnotherPodsAddress,
    /// A pod claims its own address beside other floating IPs.
    OwnAddressBesideOthers,
}

/// What the claims of the cluster reach now.
pub(super) fn of_claims(cluster: &Cluster) -> Vec<Situation> {
    let reached = [
        (
            claim_in_own_block as fn(&Cluster) -> bool,
            Situation::ClaimInOwnBlock,
        ),
        (
            claims_another_pods_address,
            Situation::ClaimOfAnotherPodsAddress,
        ),
        (
            claims_own_address_beside_others,
            Situation::OwnAddressBesideOthers,
        ),
    ];
    (reached.into_iter())
        .filter(|(reaches, _)| reaches(cluster))
        .map(|(_, situation)| situation)
        .collect()
}

/// Whether some pod claims another live pod's address: Felix on the
/// claimant's node routes it to the claimant (endpoint_mgr.go
/// calculateRoutes gives an endpoint's NAT IPs as route targets; on a
/// shared node route_table.go recalculateDesiredKernelRoute keeps the higher
/// ifindex), so the answers that node sends the shadowed pod go to the
/// claimant (`calico::predict::walk` follows them back).
fn claims_another_pods_address(cluster: &Cluster) -> bool {
    let pods = cluster.pods();
    pods.values().any(|claimant| {
        (claimant.felix.ip_nats().iter()).any(|nat| {
            (pods.values())
                .any(|owner| owner.name != claimant.name && owner.addresses.contains(&nat.external))
        })
    })
}

/// Whether some pod claims its own address beside other floating IPs: the
/// loopback SNAT may then take its own address (the text-earliest), and
/// the pod answers itself when it reaches the others
/// (`calico::predict::walk`, `Prediction::as_sent` for TCP).
fn claims_own_address_beside_others(cluster: &Cluster) -> bool {
    cluster.pods().values().any(|pod| {
        let nats = pod.felix.ip_nats();
        let own = nats.iter().any(|nat| pod.addresses.contains(&nat.external));
        own && nats
            .iter()
            .any(|nat| !pod.addresses.contains(&nat.external))
    })
}

/// Whether some pod claims an address inside one of its node's blocks.
fn claim_in_own_block(cluster: &Cluster) -> bool {
    cluster.pods().values().any(|pod| {
        let blocks = cluster.node_blocks(&pod.node);
        (pod.felix.ip_nats().iter()).any(|nat| blocks.iter().any(|b| b.contains(&nat.external)))
    })
}

/// What a send of `packet` expecting `expect` reaches.
pub fn of_send(cluster: &Cluster, packet: &Packet, expect: &TrafficExpectation) -> Vec<Situation> {
    let mut found = Vec::new();
    let owns = |pod: &str| {
        cluster
            .pod(pod)
            .is_some_and(|p| p.addresses.contains(&packet.to))
    };
    let delivered: Vec<&String> = match &expect.delivered_to {
        Some(Delivery::Pods(pods)) => pods.iter().collect(),
        _ => Vec::new(),
    };
    let through_dnat = !delivered.is_empty() && !delivered.iter().any(|p| owns(p));
    let claimant = cluster
        .pod(&packet.from)
        .is_some_and(|p| !p.felix.ip_nats().is_empty());
    if claimant && expect.seen_source.is_some() && expect.delivered_to == Some(Delivery::None) {
        found.push(Situation::EgressSeenSource);
    }
    if through_dnat && packet.to.is_ipv6() {
        if packet.protocol == Protocol::Icmp {
            found.push(Situation::Icmpv6ToFloating);
        }
        if delivered == [&packet.from] {
            found.push(Situation::LoopbackV6);
        }
    }
    if through_dnat && expect.quoted_destination == Some(packet.to) {
        found.push(Situation::ErrorQuotingFloating);
    }
    for conflict in &cluster.felix().conflicts {
        if conflict.external != packet.to {
            continue;
        }
        let lowest = (conflict.losers.iter())
            .chain([&conflict.winner])
            .min()
            .copied();
        if conflict.across_nodes {
            found.push(Situation::DuplicateAcrossNodes);
        } else if lowest != Some(conflict.winner) {
            found.push(Situation::DuplicateTextOrder);
        }
    }
    found
}

/// What a stream reached by its stop.
pub fn of_stream(track: &StreamTrack, profile: ConntrackProfile) -> Vec<Situation> {
    let mut found = Vec::new();
    if !track.is_stated() || !track.moved() {
        return found;
    }
    found.push(match profile {
        ConntrackProfile::Calico => Situation::StreamAcrossMoveCalico,
        ConntrackProfile::Strict => Situation::StreamAcrossMoveStrict,
    });
    if track.passed_a_deleted_pod() {
        found.push(Situation::StreamPastDeletedPod);
    }
    found
}
