//! What one case observed, reduced to what any faithful dataplane must
//! observe alike: the record two runs of a scenario are compared by. It comes
//! from the check lines the runner already records (`report::StepResult`), so
//! comparing needs no second pass over the traffic.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{CheckLine, ScenarioResult};

/// One (source, destination, protocol) check as every faithful dataplane
/// must see it. Counts are left out (a probe lost to neighbour discovery is
/// not the dataplane's doing), and a stream's line keeps only its verdict:
/// how many packets a move loses, and when, is timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineObservation {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    /// The step's expectation held for this line.
    pub passed: bool,
    /// Whether any probe was answered (`None` for a stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<bool>,
    /// The pods that received probes: where packets landed (`None` for a
    /// stream, and where ECMP picks the pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<BTreeSet<String>>,
    /// Destination addresses the receiving pods saw (`None` for a stream;
    /// empty where ECMP picks the pod, as each pod has its own address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_destinations: Option<BTreeSet<IpAddr>>,
    /// Source addresses the receiving pods saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_sources: Option<BTreeSet<IpAddr>>,
    /// Source addresses of the replies the sender got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_sources: Option<BTreeSet<IpAddr>>,
    /// Destinations quoted inside the ICMP errors the sender got, where the
    /// step checks them (`quotedDestination`). Elsewhere an ICMP error is a
    /// by-product of a probe not delivered, and whether one comes back within
    /// the probe's wait is timing (a route being withdrawn, a neighbour
    /// lookup timing out), so it is not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quoted_destinations: Option<BTreeSet<IpAddr>>,
}

impl LineObservation {
    fn of(line: &CheckLine, chosen_by_ecmp: bool, quotes_checked: bool) -> Self {
        let o = &line.observed;
        let exact = !line.protocol.ends_with(" stream");
        let only_exact = |set: &BTreeSet<IpAddr>| exact.then(|| set.clone());
        LineObservation {
            source: line.source.clone(),
            destination: line.destination.clone(),
            protocol: line.protocol.clone(),
            passed: line.passed(),
            answered: exact.then_some(o.answered > 0),
            delivered_to: (exact && !chosen_by_ecmp).then(|| {
                o.delivered
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(pod, _)| pod.clone())
                    .collect()
            }),
            seen_destinations: exact.then(|| {
                if chosen_by_ecmp {
                    BTreeSet::new()
                } else {
                    o.seen_destinations.clone()
                }
            }),
            seen_sources: only_exact(&o.seen_sources),
            reply_sources: only_exact(&o.reply_sources),
            quoted_destinations: if quotes_checked {
                only_exact(&o.quoted_destinations)
            } else {
                None
            },
        }
    }
}

/// One step: its verdict and its check lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepObservation {
    pub index: usize,
    /// What the step does (`send icmp client -> 203.0.113.10`).
    pub summary: String,
    pub passed: bool,
    pub lines: Vec<LineObservation>,
}

/// A floating IP moving under a running stream: between which pods, and
/// whether the stream reached the new pod at all (how fast is timing, shown
/// beside the record but not compared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveObservation {
    pub stream: String,
    pub from_pod: String,
    pub to_pod: String,
    pub converged: bool,
}

/// What one case observed, step by step, as compared across dataplanes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseObservation {
    pub steps: Vec<StepObservation>,
    pub moves: Vec<MoveObservation>,
}

impl CaseObservation {
    /// The record of `result`, keeping of each step what `compared` says.
    pub fn of(result: &ScenarioResult, compared: &Compared) -> Self {
        CaseObservation {
            steps: result
                .steps
                .iter()
                .map(|step| StepObservation {
                    index: step.index,
                    summary: step.summary.clone(),
                    passed: step.passed,
                    lines: step
                        .lines
                        .iter()
                        .map(|line| {
                            LineObservation::of(
                                line,
                                compared.chosen_by_ecmp.contains(&step.index),
                                compared.quotes_checked.contains(&step.index),
                            )
                        })
                        .collect(),
                })
                .collect(),
            moves: result
                .migrations
                .iter()
                .map(|m| MoveObservation {
                    stream: m.stream.clone(),
                    from_pod: m.from_pod.clone(),
                    to_pod: m.to_pod.clone(),
                    converged: m.figures.convergence_ms.is_some(),
                })
                .collect(),
        }
    }

    /// Where `self` and `other` first part: the index of the first step that
    /// differs (or that only one of them ran), else the moves; `None` when
    /// they agree.
    pub fn first_difference(&self, other: &CaseObservation) -> Option<Difference> {
        let steps = self.steps.len().max(other.steps.len());
        (0..steps)
            .find(|&i| self.steps.get(i) != other.steps.get(i))
            .map(|i| {
                let step = self.steps.get(i).or(other.steps.get(i));
                Difference::Step(step.map_or(i, |s| s.index))
            })
            .or_else(|| (self.moves != other.moves).then_some(Difference::Moves))
    }
}

impl CaseObservation {
    /// The record's step at `at` is a stream's (every check line a
    /// stream's), or `at` is the moves under a stream: a flow that was
    /// there before a change, which the conntrack profile decides.
    pub fn kept_flow_at(&self, at: Difference) -> bool {
        match at {
            Difference::Moves => true,
            Difference::Step(index) => {
                self.steps
                    .iter()
                    .find(|s| s.index == index)
                    .is_some_and(|s| {
                        !s.lines.is_empty()
                            && s.lines.iter().all(|l| l.protocol.ends_with(" stream"))
                    })
            }
        }
    }
}

/// Where two records part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "at", content = "step")]
pub enum Difference {
    /// At the step of this index (0-based, as `StepResult::index`).
    Step(usize),
    /// Every step agrees, but a floating IP's move under a stream does not.
    Moves,
}

/// What of each step two runs are compared on, from the scenario's
/// expectations (`Compared::of`, in `conform`: the judge does not read
/// scenarios).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// Steps whose expectation lets ECMP pick among pods (`deliveredTo:
    /// {oneOf: [...]}`): each lab hashes flows with its own seed, so two runs
    /// may see different pods there, and which pod (and its address) is not
    /// compared.
    pub chosen_by_ecmp: BTreeSet<usize>,
    /// Steps that check the destination quoted in ICMP errors.
    pub quotes_checked: BTreeSet<usize>,
}
