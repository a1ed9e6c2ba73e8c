//! Reducing what a sender and the captures recorded to the facts the checks
//! judge: once, here, for the runner's sends and streams and for the churn
//! benchmark's moves alike. The recording is read through [`Recording`], so
//! this stays pure (the traffic engine's `ProbeOutcome` implements it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{DeliveryObserved, StreamPacket};

/// A packet of the probe a captured pod (or external host) received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival<'a> {
    /// The pod's (or host's) name.
    pub pod: &'a str,
    pub sequence: u32,
    /// The addresses as the pod saw them.
    pub source: IpAddr,
    pub destination: IpAddr,
    pub at_unix_ns: u64,
}

/// A reply the sender got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub sequence: u32,
    /// The reply's source as the sender saw it.
    pub source: IpAddr,
    /// From the packet's send to the sender reading its reply.
    pub round_trip_ns: u64,
}

/// What was recorded of one probe run or stopped stream.
pub trait Recording {
    /// Packets sent, numbered `0..sent`.
    fn sent(&self) -> u32;
    /// Every packet of the probe a captured pod received (a packet may be
    /// seen more than once, and by more than one pod).
    fn arrivals(&self) -> impl Iterator<Item = Arrival<'_>>;
    /// Every reply the sender got.
    fn answers(&self) -> impl Iterator<Item = Answer>;
    /// The destinations inside the headers quoted by ICMP errors the sender got.
    fn quoted_destinations(&self) -> impl Iterator<Item = IpAddr>;
    /// When packet `sequence` was sent (Unix ns), if recorded.
    fn sent_at_unix_ns(&self, sequence: u32) -> Option<u64>;
}

/// The facts a send's expectation is judged on, counting each probe once
/// per pod however many copies the capture saw. What the external hosts
/// `hosts` received counts only as a source seen (`seenSource`): deliveries
/// are pods'.
pub fn delivery_observed(recording: &impl Recording, hosts: &[String]) -> DeliveryObserved {
    let mut per_pod: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut seen_destinations = BTreeSet::new();
    let mut seen_sources = BTreeSet::new();
    let mut destinations_by_pod: BTreeMap<String, BTreeSet<_>> = BTreeMap::new();
    for arrival in recording.arrivals() {
        if hosts.iter().any(|host| host == arrival.pod) {
            seen_sources.insert(arrival.source);
            continue;
        }
        destinations_by_pod
            .entry(arrival.pod.to_string())
            .or_default()
            .insert(arrival.destination);
        per_pod
            .entry(arrival.pod.to_string())
            .or_default()
            .insert(arrival.sequence);
        seen_destinations.insert(arrival.destination);
        seen_sources.insert(arrival.source);
    }
    let answered: BTreeSet<u32> = recording.answers().map(|a| a.sequence).collect();
    DeliveryObserved {
        sent: u64::from(recording.sent()),
        answered: answered.len() as u64,
        delivered: per_pod
            .into_iter()
            .map(|(pod, seqs)| (pod, seqs.len() as u64))
            .collect(),
        seen_destinations,
        seen_sources,
        reply_sources: recording.answers().map(|a| a.source).collect(),
        quoted_destinations: recording.quoted_destinations().collect(),
        destinations_by_pod,
    }
}

/// Each packet of a stream: the pod that received it first and when, whether
/// it was answered, when it was sent; times in microseconds since
/// `started_unix_ns`.
pub fn stream_packets(recording: &impl Recording, started_unix_ns: u64) -> Vec<StreamPacket> {
    let since = |ns: u64| ns.saturating_sub(started_unix_ns) / 1000;
    let mut first_delivery: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    for arrival in recording.arrivals() {
        let at_us = since(arrival.at_unix_ns);
        first_delivery
            .entry(arrival.sequence)
            .and_modify(|(pod, at)| {
                if at_us < *at {
                    *pod = arrival.pod.to_string();
                    *at = at_us;
                }
            })
            .or_insert_with(|| (arrival.pod.to_string(), at_us));
    }
    let answered: BTreeSet<u32> = recording.answers().map(|a| a.sequence).collect();
    (0..recording.sent())
        .map(|seq| StreamPacket {
            sequence: u64::from(seq),
            delivered: first_delivery.remove(&seq),
            answered: answered.contains(&seq),
            sent_at_us: recording.sent_at_unix_ns(seq).map(since),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording written by hand: (pod, sequence, destination, at ns).
    struct Written {
        sent: u32,
        arrivals: Vec<(&'static str, u32, &'static str, u64)>,
        answers: Vec<(u32, &'static str)>,
        quoted: Vec<&'static str>,
        sent_at: Vec<u64>,
    }

    impl Recording for Written {
        fn sent(&self) -> u32 {
            self.sent
        }
        fn arrivals(&self) -> impl Iterator<Item = Arrival<'_>> {
            self.arrivals
                .iter()
                .map(|&(pod, sequence, dst, at)| Arrival {
                    pod,
                    sequence,
                    // What reaches the outside host comes from the node's uplink.
                    source: if pod == "outside" {
                        "198.19.0.1"
                    } else {
                        "198.19.0.9"
                    }
                    .parse()
                    .unwrap(),
                    destination: dst.parse().unwrap(),
                    at_unix_ns: at,
                })
        }
        fn answers(&self) -> impl Iterator<Item = Answer> {
            self.answers.iter().map(|&(sequence, src)| Answer {
                sequence,
                source: src.parse().unwrap(),
                round_trip_ns: 0,
            })
        }
        fn quoted_destinations(&self) -> impl Iterator<Item = IpAddr> {
            self.quoted.iter().map(|q| q.parse().unwrap())
        }
        fn sent_at_unix_ns(&self, sequence: u32) -> Option<u64> {
            self.sent_at.get(sequence as usize).copied()
        }
    }

    fn written() -> Written {
        Written {
            sent: 4,
            arrivals: vec![
                ("web-a", 0, "10.65.0.2", 5_000),
                ("web-a", 0, "10.65.0.2", 9_000), // a copy of probe 0
                ("web-a", 1, "10.65.0.2", 7_000),
                ("web-b", 1, "10.65.1.2", 6_000), // probe 1 reached web-b first
                ("web-b", 2, "10.65.1.2", 8_000),
            ],
            answers: vec![(0, "203.0.113.1"), (1, "203.0.113.1"), (1, "203.0.113.2")],
            quoted: vec!["203.0.113.7"],
            sent_at: vec![1_000, 2_000, 3_000],
        }
    }

    #[test]
    fn a_probe_counts_once_per_pod_and_once_answered() {
        let observed = delivery_observed(&written(), &[]);
        assert_eq!(observed.sent, 4);
        assert_eq!(observed.answered, 2, "probe 1 answered twice counts once");
        assert_eq!(observed.lost(), 2);
        let delivered: Vec<_> = observed.delivered.into_iter().collect();
        assert_eq!(delivered, [("web-a".into(), 2), ("web-b".into(), 2)]);
        assert_eq!(observed.seen_destinations.len(), 2);
        assert_eq!(observed.reply_sources.len(), 2);
        assert_eq!(
            observed.quoted_destinations.into_iter().collect::<Vec<_>>(),
            ["203.0.113.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            observed.destinations_by_pod["web-b"]
                .iter()
                .collect::<Vec<_>>(),
            [&"10.65.1.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn what_an_external_host_receives_is_only_a_source_seen() {
        let mut written = written();
        written.arrivals.push(("outside", 3, "203.0.113.5", 9_500));
        let observed = delivery_observed(&written, &["outside".to_string()]);
        assert!(!observed.delivered.contains_key("outside"));
        assert!(!observed.destinations_by_pod.contains_key("outside"));
        assert!(!observed
            .seen_destinations
            .contains(&"203.0.113.5".parse().unwrap()));
        assert!(observed
            .seen_sources
            .contains(&"198.19.0.1".parse().unwrap()));
    }

    #[test]
    fn a_stream_packet_goes_to_the_pod_that_received_it_first() {
        let packets = stream_packets(&written(), 1_000);
        let delivered: Vec<_> = packets.iter().map(|p| p.delivered.clone()).collect();
        assert_eq!(
            delivered,
            [
                Some(("web-a".into(), 4)),
                Some(("web-b".into(), 5)),
                Some(("web-b".into(), 7)),
                None,
            ]
        );
        let answered: Vec<_> = packets.iter().map(|p| p.answered).collect();
        assert_eq!(answered, [true, true, false, false]);
        let sent_at: Vec<_> = packets.iter().map(|p| p.sent_at_us).collect();
        assert_eq!(sent_at, [Some(0), Some(1), Some(2), None]);
    }
}
