//! How long a step's packets took ([`Timing`], kept in the step's result),
//! and the late leak: a packet of a send that expected nothing delivered,
//! arriving at a pod after the send's silence window closed
//! ([`late_leaks`]), which fails the step as a leak inside the window does.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::delivery::Mismatch;
use super::observe::{Arrival, Recording};
use super::result::{Outcome, ScenarioResult, StepResult};

/// The times of a step's probes (the last try's): for each probe that
/// arrived somewhere, how long from its send to its arrival (the kernel's
/// time at the capture), and for each answered probe, how long until the
/// sender read its answer; with the probe (or stream) id, and, for a send
/// that expects nothing delivered, when its window closed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// The probe (or stream) id its packets carry in their token.
    pub probe: u32,
    /// From send to arrival at a capture, in microseconds, one per packet
    /// and capture that saw it.
    pub arrivals_us: Vec<u64>,
    /// From send to the sender reading the answer, in microseconds, one per
    /// answered packet.
    pub replies_us: Vec<u64>,
    /// A send that expects nothing delivered: when its window closed (Unix
    /// ns); a packet of the probe that reaches a pod later is a late leak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_closed_unix_ns: Option<u64>,
}

impl Timing {
    /// The times of `recording`, probe `probe`. A packet stamped before its
    /// send (the clocks are read in a different order) took 0.
    pub fn of(recording: &impl Recording, probe: u32) -> Timing {
        let arrivals_us = recording
            .arrivals()
            .filter_map(|arrival| {
                let sent = recording.sent_at_unix_ns(arrival.sequence)?;
                Some(arrival.at_unix_ns.saturating_sub(sent) / 1000)
            })
            .collect();
        let replies_us = recording
            .answers()
            .map(|a| a.round_trip_ns / 1000)
            .collect();
        Timing {
            probe,
            arrivals_us,
            replies_us,
            window_closed_unix_ns: None,
        }
    }
}

/// Every packet of the send timed by `timing` that reached a pod after its
/// window closed (`seen`: everything that carried its probe id, up to the
/// end of the case; `hosts`: the external hosts, which receive no
/// deliveries), as one mismatch each: what arrived where, and how long
/// after the window. Empty when the send expected something delivered.
///
/// A send that expects nothing delivered is judged when its window closes
/// (`runner::send::SILENCE_WINDOW`); what comes later would have passed
/// unseen, so a leak delayed past the window would hide. Every packet here
/// arrived after the send was judged: those that came in time failed it then.
pub fn late_leaks(timing: &Timing, seen: &[Arrival<'_>], hosts: &[String]) -> Vec<Mismatch> {
    let Some(closed) = timing.window_closed_unix_ns else {
        return Vec::new();
    };
    let mut told = BTreeSet::new();
    seen.iter()
        .filter(|arrival| !hosts.iter().any(|host| host == arrival.pod))
        .filter(|arrival| told.insert((arrival.pod, arrival.sequence)))
        .map(|arrival| Mismatch {
            what: "late leak".into(),
            expected: "nothing delivered, up to the end of the case".into(),
            actual: format!(
                "packet {} of probe {} reached {} ({} -> {}) {}",
                arrival.sequence,
                timing.probe,
                arrival.pod,
                arrival.source,
                arrival.destination,
                after(arrival.at_unix_ns, closed),
            ),
        })
        .collect()
}

/// Whether `step` is a send that expected nothing delivered and saw
/// nothing reach a pod in its window: whatever reaches one later is late.
/// (One that failed in its window says so already.)
pub fn awaits_late_leaks(step: &StepResult) -> bool {
    step.passed
        && step
            .timing
            .as_ref()
            .is_some_and(|t| t.window_closed_unix_ns.is_some())
}

/// Judge `result`'s silent sends ([`awaits_late_leaks`]) again on `seen`,
/// what carried each probe id to a capture up to the end of the case: each
/// whose probe reached a pod after its window fails, with a `late leak`
/// mismatch per packet on its line (and the packet counted as delivered
/// there). The case's outcome: `outcome`, or when that passed, a failure
/// naming the first such step. Also the indexes of the steps that failed.
pub fn judge_late_leaks(
    result: &mut ScenarioResult,
    outcome: Outcome,
    seen: &BTreeMap<u32, Vec<Arrival<'_>>>,
    hosts: &[String],
) -> (Outcome, Vec<usize>) {
    let mut outcome = outcome;
    let mut failed = Vec::new();
    for step in result.steps.iter_mut().filter(|s| awaits_late_leaks(s)) {
        let Some(timing) = &step.timing else { continue };
        let arrivals = seen.get(&timing.probe).map_or(&[][..], Vec::as_slice);
        let leaks = late_leaks(timing, arrivals, hosts);
        let Some(first) = leaks.first() else { continue };
        if outcome.is_pass() {
            outcome = Outcome::Failed {
                reason: format!(
                    "step {} ({}) failed: a late leak: {}",
                    step.index + 1,
                    step.summary,
                    first.actual
                ),
            };
        }
        if let Some(line) = step.lines.first_mut() {
            let packets: BTreeSet<(&str, u32)> = arrivals
                .iter()
                .filter(|a| !hosts.iter().any(|h| h == a.pod))
                .map(|a| (a.pod, a.sequence))
                .collect();
            for (pod, _) in packets {
                *line.observed.delivered.entry(pod.to_string()).or_default() += 1;
            }
            line.mismatches.extend(leaks);
        }
        step.passed = false;
        failed.push(step.index);
    }
    (outcome, failed)
}

/// How long after `closed` a packet stamped `at` came, or that it came as
/// the window was closing (stamped before the close, read after it).
fn after(at: u64, closed: u64) -> String {
    match at.checked_sub(closed) {
        Some(ns) if ns >= 1_000_000 => format!("{} ms after its window closed", ns / 1_000_000),
        Some(ns) => format!("{} µs after its window closed", ns / 1000),
        None => "as its window closed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(pod: &'static str, sequence: u32, at_unix_ns: u64) -> Arrival<'static> {
        Arrival {
            pod,
            sequence,
            source: "198.19.0.9".parse().unwrap(),
            destination: "10.65.0.2".parse().unwrap(),
            at_unix_ns,
        }
    }

    fn silent(closed: u64) -> Timing {
        Timing {
            probe: 17,
            window_closed_unix_ns: Some(closed),
            ..Timing::default()
        }
    }

    #[test]
    fn a_packet_that_reaches_a_pod_after_the_window_is_a_late_leak() {
        let closed = 5_000_000_000;
        let seen = [arrival("web", 2, closed + 412_000_000)];
        let leaks = late_leaks(&silent(closed), &seen, &[]);
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].what, "late leak");
        assert_eq!(
            leaks[0].actual,
            "packet 2 of probe 17 reached web (198.19.0.9 -> 10.65.0.2) 412 ms after its window closed"
        );
    }

    #[test]
    fn each_packet_and_pod_is_told_once_and_hosts_receive_no_deliveries() {
        let closed = 1_000_000;
        let seen = [
            arrival("web", 0, closed + 10),
            // The same packet seen twice at the same pod (two copies).
            arrival("web", 0, closed + 20),
            arrival("web-b", 0, closed + 30),
            arrival("outside", 1, closed + 40),
        ];
        let leaks = late_leaks(&silent(closed), &seen, &["outside".into()]);
        let pods: Vec<&str> = leaks
            .iter()
            .map(|m| m.actual.split(" reached ").nth(1).unwrap())
            .map(|rest| rest.split(' ').next().unwrap())
            .collect();
        assert_eq!(pods, ["web", "web-b"]);
    }

    #[test]
    fn a_send_that_expected_delivery_has_no_late_leaks() {
        let expecting = Timing {
            probe: 3,
            ..Timing::default()
        };
        assert!(late_leaks(&expecting, &[arrival("web", 0, 9)], &[]).is_empty());
        assert!(late_leaks(&silent(9), &[], &[]).is_empty());
    }

    /// A case whose step 2, a silent send, passed in its window, and whose
    /// step 3 expected delivery (no window).
    fn case_with_a_silent_send(closed: u64) -> ScenarioResult {
        let mut result = crate::check::verdict_tests::result("nftables", "web", Outcome::Passed);
        let mut silent_step = result.steps[0].clone();
        silent_step.index = 1;
        result.steps[0].index = 0;
        silent_step.summary = "send icmp client -> 203.0.113.99".into();
        silent_step.lines[0].observed.delivered.clear();
        silent_step.timing = Some(silent(closed));
        let mut answered = result.steps[0].clone();
        answered.index = 2;
        answered.timing = Some(Timing {
            probe: 18,
            ..Timing::default()
        });
        result.steps = vec![result.steps[0].clone(), silent_step, answered];
        result
    }

    #[test]
    fn a_late_leak_fails_its_send_and_the_case() {
        let closed = 7_000_000_000;
        let mut result = case_with_a_silent_send(closed);
        let late = [arrival("web", 1, closed + 900_000_000)];
        let seen = BTreeMap::from([(17, late.to_vec()), (18, vec![arrival("web", 0, 1)])]);
        let (outcome, failed) = judge_late_leaks(&mut result, Outcome::Passed, &seen, &[]);
        assert_eq!(failed, [1]);
        let Outcome::Failed { reason } = outcome else {
            panic!("the case still passes: {outcome:?}");
        };
        assert_eq!(
            reason,
            "step 2 (send icmp client -> 203.0.113.99) failed: a late leak: packet 1 of probe 17 \
             reached web (198.19.0.9 -> 10.65.0.2) 900 ms after its window closed"
        );
        let step = &result.steps[1];
        assert!(!step.passed);
        assert_eq!(step.lines[0].observed.delivered["web"], 1);
        assert!(!step.lines[0].passed());
        // The send that expected delivery is not judged again.
        assert!(result.steps[2].passed && result.steps[2].lines[0].passed());
    }

    #[test]
    fn without_late_arrivals_the_verdict_stands() {
        let mut result = case_with_a_silent_send(1_000);
        let failed_before = Outcome::Failed {
            reason: "step 3 failed".into(),
        };
        let (outcome, failed) =
            judge_late_leaks(&mut result, failed_before.clone(), &BTreeMap::new(), &[]);
        assert_eq!(outcome, failed_before);
        assert!(failed.is_empty() && result.steps.iter().all(|s| s.passed));
        // A late leak after another step failed first: the reason stays the
        // first failure's, the silent send is marked failed all the same.
        let seen = BTreeMap::from([(17, vec![arrival("web", 0, 2_000)])]);
        let (outcome, failed) = judge_late_leaks(&mut result, failed_before.clone(), &seen, &[]);
        assert_eq!((outcome, failed), (failed_before, vec![1]));
    }

    /// Two packets sent at 1 000 and 2 000 ns: the first arrived at two
    /// pods and was answered, the second arrived before its send's stamp.
    struct TwoPackets;

    impl Recording for TwoPackets {
        fn sent(&self) -> u32 {
            2
        }
        fn arrivals(&self) -> impl Iterator<Item = Arrival<'_>> {
            [
                arrival("web", 0, 41_000),
                arrival("web-b", 0, 9_000),
                arrival("web", 1, 1_500),
            ]
            .into_iter()
        }
        fn answers(&self) -> impl Iterator<Item = super::super::Answer> {
            std::iter::once(super::super::Answer {
                sequence: 0,
                source: "203.0.113.10".parse().unwrap(),
                round_trip_ns: 77_000,
            })
        }
        fn quoted_destinations(&self) -> impl Iterator<Item = std::net::IpAddr> {
            std::iter::empty()
        }
        fn sent_at_unix_ns(&self, sequence: u32) -> Option<u64> {
            [1_000, 2_000].get(sequence as usize).copied()
        }
    }

    #[test]
    fn times_run_from_each_packets_send_to_each_arrival_and_answer() {
        let timing = Timing::of(&TwoPackets, 5);
        assert_eq!(timing.probe, 5);
        assert_eq!(timing.arrivals_us, [40, 8, 0]);
        assert_eq!(timing.replies_us, [77]);
        assert_eq!(timing.window_closed_unix_ns, None);
    }

    #[test]
    fn a_packet_stamped_as_the_window_closed_says_so() {
        let leaks = late_leaks(&silent(1_000), &[arrival("web", 0, 999)], &[]);
        assert!(leaks[0].actual.ends_with("as its window closed"));
    }
}
