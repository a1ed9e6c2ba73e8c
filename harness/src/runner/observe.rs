//! Turning what the traffic engine recorded into what checks and reports need.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{DeliveryObserved, StreamPacket};
use crate::traffic::ProbeOutcome;

/// Reduce a probe run (or a stopped stream) to the observed facts, counting
/// each probe once per pod however many copies the capture saw. What the
/// external hosts `hosts` received counts only as a source seen
/// (`seenSource`): deliveries are pods'.
pub fn delivery_observed(outcome: &ProbeOutcome, hosts: &[String]) -> DeliveryObserved {
    let mut per_pod: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut seen_destinations = BTreeSet::new();
    let mut seen_sources = BTreeSet::new();
    let mut destinations_by_pod: BTreeMap<String, BTreeSet<_>> = BTreeMap::new();
    for observation in &outcome.deliveries {
        if hosts.contains(&observation.endpoint) {
            seen_sources.insert(observation.src);
            continue;
        }
        destinations_by_pod
            .entry(observation.endpoint.clone())
            .or_default()
            .insert(observation.dst);
        per_pod
            .entry(observation.endpoint.clone())
            .or_default()
            .insert(observation.token.seq);
        seen_destinations.insert(observation.dst);
        seen_sources.insert(observation.src);
    }
    let answered: BTreeSet<u32> = outcome.replies.iter().map(|r| r.token.seq).collect();
    DeliveryObserved {
        sent: u64::from(outcome.sent),
        answered: answered.len() as u64,
        delivered: per_pod
            .into_iter()
            .map(|(pod, seqs)| (pod, seqs.len() as u64))
            .collect(),
        seen_destinations,
        seen_sources,
        reply_sources: outcome.replies.iter().map(|r| r.src).collect(),
        quoted_destinations: outcome.icmp_errors.iter().map(|e| e.quoted_dst).collect(),
        destinations_by_pod,
    }
}

/// Per-packet view of a stream, times in microseconds since `started_unix_ns`.
pub fn stream_packets(outcome: &ProbeOutcome, started_unix_ns: u64) -> Vec<StreamPacket> {
    let mut first_delivery: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    for observation in &outcome.deliveries {
        let at_us = observation.at_unix_ns.saturating_sub(started_unix_ns) / 1000;
        first_delivery
            .entry(observation.token.seq)
            .and_modify(|(pod, at)| {
                if at_us < *at {
                    *pod = observation.endpoint.clone();
                    *at = at_us;
                }
            })
            .or_insert((observation.endpoint.clone(), at_us));
    }
    let answered: BTreeSet<u32> = outcome.replies.iter().map(|r| r.token.seq).collect();
    (0..outcome.sent)
        .map(|seq| StreamPacket {
            sequence: u64::from(seq),
            delivered: first_delivery.remove(&seq),
            answered: answered.contains(&seq),
            sent_at_us: outcome
                .sent_at_unix_ns
                .get(seq as usize)
                .map(|at| at.saturating_sub(started_unix_ns) / 1000),
        })
        .collect()
}
