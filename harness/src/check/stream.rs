//! The verdict on a stopped stream: what it delivered and lost, and whether,
//! once its floating IP moved, packets landed only at the pod the step names.

use std::collections::BTreeMap;

use super::delivery::{mismatches, AddressBook, DeliveryObserved, Mismatch};
use super::expectation::{StreamExpectation, TrafficExpectation};
use super::migration::{OwnerChange, StreamPacket};

/// Every mismatch between a stopped stream and what its stop step expects;
/// `changes` are the stream's floating-IP owner changes, in order.
pub fn stream_mismatches(
    expect: &StreamExpectation,
    observed: &DeliveryObserved,
    book: &AddressBook,
    packets: &[StreamPacket],
    changes: &[OwnerChange],
) -> Vec<Mismatch> {
    let traffic = TrafficExpectation {
        delivered_to: expect.delivered_to.clone(),
        loss: expect.loss,
        ..Default::default()
    };
    let mut out = mismatches(&traffic, observed, book);
    if let Some(expected_pod) = &expect.after_move_at {
        out.extend(after_move(expected_pod, packets, changes));
    }
    out
}

/// The `afterMoveAt` check. Judged by sequence numbers, not by capture times
/// (which lag under load): from the first packet `expected_pod` got after the
/// first change began, every later packet that was delivered must have been
/// delivered there.
fn after_move(
    expected_pod: &str,
    packets: &[StreamPacket],
    changes: &[OwnerChange],
) -> Option<Mismatch> {
    let mismatch = |actual: String| Mismatch {
        what: "after the move".into(),
        expected: format!("only {expected_pod}"),
        actual,
    };
    let Some(first) = changes.first() else {
        return Some(mismatch(
            "the floating IP never moved during the stream".into(),
        ));
    };
    let first_at_expected = packets
        .iter()
        .filter(|p| {
            p.delivered
                .as_ref()
                .is_some_and(|(pod, at)| pod == expected_pod && *at >= first.at_us)
        })
        .map(|p| p.sequence)
        .min();
    let Some(first_seq) = first_at_expected else {
        return Some(mismatch(format!(
            "nothing reached {expected_pod} after the move"
        )));
    };
    let mut elsewhere: BTreeMap<&str, u64> = BTreeMap::new();
    for packet in packets.iter().filter(|p| p.sequence > first_seq) {
        if let Some((pod, _)) = &packet.delivered {
            if pod != expected_pod {
                *elsewhere.entry(pod.as_str()).or_default() += 1;
            }
        }
    }
    if elsewhere.is_empty() {
        return None;
    }
    Some(mismatch(
        elsewhere
            .iter()
            .map(|(pod, n)| format!("{pod} ({n})"))
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: u64, pod: &str, at_us: u64) -> StreamPacket {
        StreamPacket {
            sequence,
            delivered: Some((pod.to_string(), at_us)),
            answered: true,
            sent_at_us: None,
        }
    }

    fn moved_at(at_us: u64) -> Vec<OwnerChange> {
        vec![OwnerChange {
            from: Some("a".into()),
            to: Some("b".into()),
            at_us,
        }]
    }

    fn actual(packets: &[StreamPacket], changes: &[OwnerChange]) -> Option<String> {
        after_move("b", packets, changes).map(|m| m.actual)
    }

    #[test]
    fn only_the_new_pod_after_its_first_packet_passes() {
        // Packet 2 reached a after the move began but before b's first: allowed.
        let packets = [
            at(0, "a", 100),
            at(1, "a", 900),
            at(2, "a", 1_100),
            at(3, "b", 1_200),
            at(4, "b", 1_300),
        ];
        assert_eq!(actual(&packets, &moved_at(1_000)), None);
    }

    #[test]
    fn later_packets_elsewhere_are_counted_per_pod() {
        // Capture times lag: packet 4 is stamped before packet 3 but comes after it.
        let packets = [
            at(0, "a", 100),
            at(3, "b", 1_300),
            at(4, "a", 1_250),
            at(5, "a", 1_400),
        ];
        assert_eq!(actual(&packets, &moved_at(1_000)), Some("a (2)".into()));
    }

    #[test]
    fn no_packet_at_the_new_pod_after_the_move_fails() {
        // b's only packet predates the move.
        let packets = [at(0, "b", 500), at(1, "a", 1_500)];
        assert_eq!(
            actual(&packets, &moved_at(1_000)),
            Some("nothing reached b after the move".into())
        );
    }

    #[test]
    fn a_stream_without_a_move_fails() {
        let packets = [at(0, "b", 500)];
        assert_eq!(
            actual(&packets, &[]),
            Some("the floating IP never moved during the stream".into())
        );
    }

    #[test]
    fn delivery_and_after_move_mismatches_come_in_that_order() {
        let expect = StreamExpectation {
            delivered_to: Some(super::super::Delivery::Pods(vec!["b".into()])),
            loss: None,
            after_move_at: Some("b".into()),
        };
        let observed = DeliveryObserved {
            sent: 2,
            answered: 2,
            delivered: BTreeMap::from([("a".to_string(), 2)]),
            ..Default::default()
        };
        let packets = [at(0, "a", 100), at(1, "a", 200)];
        let found = stream_mismatches(&expect, &observed, &AddressBook::default(), &packets, &[]);
        let names: Vec<&str> = found.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(names, ["delivered to", "after the move"]);
    }
}
