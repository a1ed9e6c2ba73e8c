//! Figures of a floating-IP move measured by a background stream: packets per pod
//! over time, the convergence time, loss, and packets that still reached the old
//! pod after the move.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One packet of a stream, as the traffic engine attributed it. Times are
/// microseconds since the stream started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamPacket {
    pub sequence: u64,
    /// The pod that received it and when, if any did.
    pub delivered: Option<(String, u64)>,
    /// Whether the sender got a reply.
    pub answered: bool,
    /// When the sender sent it, if the engine recorded it (a lost packet has
    /// no other time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_us: Option<u64>,
}

/// A change of the pod that receives a stream's floating IP (`None`: no pod),
/// in microseconds since the stream started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerChange {
    pub from: Option<String>,
    pub to: Option<String>,
    pub at_us: u64,
}

/// A floating IP moving from one pod to another during a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub from_pod: String,
    pub to_pod: String,
    /// When the change that gives the floating IP to `to_pod` started, in
    /// microseconds since the stream started.
    pub gained_at_us: u64,
}

impl Move {
    /// The move in a stream's owner changes (in order), if one pod lost the
    /// floating IP and another gained it. A move may come in two steps (remove,
    /// then set): the first pod to lose it and the last to gain it are paired.
    pub fn of(changes: &[OwnerChange]) -> Option<Move> {
        let from_pod = changes.iter().find_map(|c| c.from.clone())?;
        let to_pod = changes.iter().rev().find_map(|c| c.to.clone())?;
        // Convergence and late packets count from the start of the change that
        // gives the floating IP to the new pod; a gap before it (the floating IP
        // taken away first) shows in the loss.
        let gained_at_us = changes
            .iter()
            .find(|c| c.to.as_ref() == Some(&to_pod))
            .map(|c| c.at_us)
            .unwrap_or_default();
        Some(Move {
            from_pod,
            to_pod,
            gained_at_us,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationFigures {
    pub sent: u64,
    pub lost: u64,
    /// Packets received per pod in each time bucket (bucket start in ms since the
    /// stream began).
    pub timeline: BTreeMap<String, BTreeMap<u64, u64>>,
    pub bucket_ms: u64,
    /// When the control plane started giving the floating IP to the new pod,
    /// in ms since the stream began.
    pub moved_at_ms: f64,
    /// From that moment to the first packet at the new pod; None if none arrived.
    pub convergence_ms: Option<f64>,
    /// Packets the old pod received after that moment.
    pub late_at_old_pod: u64,
}

impl MigrationFigures {
    /// Work out the figures of `moved`, bucketing the timeline by `bucket_ms`.
    pub fn compute(packets: &[StreamPacket], moved: &Move, bucket_ms: u64) -> Self {
        let (old_pod, new_pod) = (moved.from_pod.as_str(), moved.to_pod.as_str());
        let moved_at_us = moved.gained_at_us;
        let bucket_us = bucket_ms.max(1) * 1000;
        let mut timeline: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
        let mut first_at_new: Option<u64> = None;
        let mut late_at_old_pod = 0;
        for packet in packets {
            let Some((pod, at)) = &packet.delivered else {
                continue;
            };
            *timeline
                .entry(pod.clone())
                .or_default()
                .entry(at / bucket_us * bucket_ms.max(1))
                .or_default() += 1;
            if pod == new_pod && *at >= moved_at_us {
                first_at_new = Some(first_at_new.map_or(*at, |t| t.min(*at)));
            }
            if pod == old_pod && *at > moved_at_us {
                late_at_old_pod += 1;
            }
        }
        let sent = packets.len() as u64;
        let lost = packets.iter().filter(|p| !p.answered).count() as u64;
        MigrationFigures {
            sent,
            lost,
            timeline,
            bucket_ms: bucket_ms.max(1),
            moved_at_ms: moved_at_us as f64 / 1000.0,
            convergence_ms: first_at_new.map(|t| (t - moved_at_us) as f64 / 1000.0),
            late_at_old_pod,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sequence: u64, pod: Option<&str>, at_us: u64) -> StreamPacket {
        StreamPacket {
            sequence,
            delivered: pod.map(|p| (p.to_string(), at_us)),
            answered: pod.is_some(),
            sent_at_us: None,
        }
    }

    fn a_to_b(gained_at_us: u64) -> Move {
        Move {
            from_pod: "a".into(),
            to_pod: "b".into(),
            gained_at_us,
        }
    }

    fn change(from: Option<&str>, to: Option<&str>, at_us: u64) -> OwnerChange {
        OwnerChange {
            from: from.map(Into::into),
            to: to.map(Into::into),
            at_us,
        }
    }

    #[test]
    fn a_move_in_two_steps_counts_from_the_gain() {
        // Taken from a at 1 ms, given to b at 4 ms.
        let changes = [
            change(Some("a"), None, 1_000),
            change(None, Some("b"), 4_000),
        ];
        assert_eq!(Move::of(&changes), Some(a_to_b(4_000)));
    }

    #[test]
    fn a_floating_ip_only_given_or_only_taken_is_no_move() {
        assert_eq!(Move::of(&[change(None, Some("b"), 1_000)]), None);
        assert_eq!(Move::of(&[change(Some("a"), None, 1_000)]), None);
        assert_eq!(Move::of(&[]), None);
    }

    #[test]
    fn move_figures() {
        // 1 ms stream: a and b each 3 packets, two lost in between, one late at a.
        let packets = vec![
            packet(0, Some("a"), 1_000),
            packet(1, Some("a"), 2_000),
            packet(2, Some("a"), 3_100), // after the move at 3 ms: late
            packet(3, None, 4_000),
            packet(4, None, 5_000),
            packet(5, Some("b"), 6_200),
            packet(6, Some("b"), 7_000),
            packet(7, Some("b"), 8_000),
        ];
        let figures = MigrationFigures::compute(&packets, &a_to_b(3_000), 5);
        insta::assert_yaml_snapshot!(figures, @r"
        sent: 8
        lost: 2
        timeline:
          a:
            0: 3
          b:
            5: 3
        bucketMs: 5
        movedAtMs: 3
        convergenceMs: 3.2
        lateAtOldPod: 1
        ");
    }

    #[test]
    fn no_packet_at_the_new_pod_means_no_convergence() {
        let packets = vec![packet(0, Some("a"), 1_000), packet(1, Some("a"), 9_000)];
        let figures = MigrationFigures::compute(&packets, &a_to_b(3_000), 10);
        assert_eq!(figures.convergence_ms, None);
        assert_eq!(figures.late_at_old_pod, 1);
    }
}
