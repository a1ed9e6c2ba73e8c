//! A scenario's written expectations against the prediction, judged by the
//! same code that judges what a run observes ([`crate::check::mismatches`]):
//! the prediction becomes the observation the engine would make if Calico's
//! semantics held, for each way ECMP may send the flow.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::{Landing, Outcome, Packet, PredictError, Prediction};
use crate::calico::cluster::{Cluster, FelixUpdate};
use crate::calico::conntrack::Flow;
use crate::check::{
    mismatches, AddressBook, DeliveryObserved, Mismatch, PodsHad, StreamExpectation,
    TrafficExpectation,
};

/// What the engine would observe for `count` packets of one flow going the
/// `outcome` way.
pub fn observed(outcome: &Outcome, count: u64) -> DeliveryObserved {
    let mut seen = DeliveryObserved {
        sent: count,
        ..DeliveryObserved::default()
    };
    match &outcome.landing {
        Landing::Pod {
            pod,
            seen_destination,
            seen_source,
            reply_source,
            quoted_destination,
        } => {
            seen.delivered.insert(pod.clone(), count);
            seen.seen_destinations.insert(*seen_destination);
            seen.seen_sources.insert(*seen_source);
            seen.destinations_by_pod
                .insert(pod.clone(), BTreeSet::from([*seen_destination]));
            if let Some(reply) = reply_source {
                seen.answered = count;
                seen.reply_sources.insert(*reply);
            }
            seen.quoted_destinations.extend(*quoted_destination);
        }
        Landing::Host {
            reply_source,
            seen_source,
            ..
        } => {
            if let Some(reply) = reply_source {
                seen.answered = count;
                seen.reply_sources.insert(*reply);
            }
            // An external host's capture notes the source it sees.
            if let Some(source) = seen_source {
                seen.seen_sources.insert(*source);
            }
        }
        Landing::Dropped { .. } => {}
    }
    seen
}

/// The addresses `pod` / `from` in an expectation stand for: every live
/// pod's own, and the sender's.
pub fn address_book(cluster: &Cluster, sender: &str) -> AddressBook {
    let network = &cluster.config().network;
    let sender_addresses = match cluster.pod(sender) {
        Some(pod) => pod.addresses.clone(),
        None => network
            .node(sender)
            .or_else(|| network.external(sender))
            .map(|host| host.addresses.clone())
            .unwrap_or_default(),
    };
    AddressBook {
        pod_addresses: cluster
            .pods()
            .values()
            .map(|pod| (pod.name.clone(), pod.addresses.clone()))
            .collect(),
        sender_addresses,
    }
}

/// Note every live pod's addresses in `had` (see [`PodsHad`]).
pub fn note_pods(cluster: &Cluster, had: &mut PodsHad) {
    for pod in cluster.pods().values() {
        had.entry(pod.name.clone())
            .or_default()
            .extend(pod.addresses.iter().copied());
    }
}

/// Where `expect` disagrees with the model for `count` packets of `packet`
/// (one flow): the check's own mismatch lines, with the model's prediction
/// as the actual side, for the first ECMP outcome that disagrees.
pub fn send_disagreements(
    cluster: &Cluster,
    packet: &Packet,
    count: u32,
    expect: &TrafficExpectation,
) -> Result<(Prediction, Vec<Mismatch>), PredictError> {
    let prediction = cluster.predict(packet)?.as_sent(packet);
    let book = address_book(cluster, &packet.from);
    let found = prediction
        .outcomes
        .iter()
        .map(|outcome| mismatches(expect, &observed(outcome, u64::from(count)), &book))
        .find(|found| !found.is_empty())
        .unwrap_or_default();
    Ok((prediction, found))
}

/// A stream as the model sees it: its flow's conntrack entries, and every
/// pod it reached from its start to now.
#[derive(Clone, Debug, Serialize)]
pub struct StreamWatch {
    pub flow: Flow,
    /// Every pod some state of the cluster sent the stream to.
    pub reached: BTreeSet<String>,
    /// The destinations each of those pods saw.
    destinations: BTreeMap<String, BTreeSet<IpAddr>>,
    /// Whether the stream's destination changed pod while it ran.
    pub moved: bool,
    /// Where the stream's packets go now.
    pub now: Prediction,
    /// The addresses each pod had while the stream ran.
    #[serde(skip)]
    had: PodsHad,
}

impl StreamWatch {
    /// A stream starting now.
    pub fn start(cluster: &Cluster, packet: Packet) -> Result<Self, PredictError> {
        let mut flow = cluster.flow_for(&packet);
        let now = cluster.advance(&mut flow)?;
        let mut watch = Self {
            flow,
            reached: BTreeSet::new(),
            destinations: BTreeMap::new(),
            moved: false,
            now,
            had: PodsHad::new(),
        };
        note_pods(cluster, &mut watch.had);
        watch.note();
        Ok(watch)
    }

    /// The cluster changed by `update`: Calico's (and the profile's)
    /// conntrack deletions take the flow's entries, then its packets go on.
    pub fn step(&mut self, cluster: &Cluster, update: &FelixUpdate) -> Result<(), PredictError> {
        self.flow.forget(&update.changes.conntrack);
        if update
            .holders
            .iter()
            .any(|change| change.floating_ip == self.flow.packet.to)
        {
            self.moved = true;
        }
        note_pods(cluster, &mut self.had);
        self.now = cluster.advance(&mut self.flow)?;
        self.note();
        Ok(())
    }

    fn note(&mut self) {
        for outcome in &self.now.outcomes {
            if let Landing::Pod {
                pod,
                seen_destination,
                ..
            } = &outcome.landing
            {
                self.reached.insert(pod.clone());
                self.destinations
                    .entry(pod.clone())
                    .or_default()
                    .insert(*seen_destination);
            }
        }
    }

    /// Where the stop step's expectation disagrees with the model. Loss is
    /// not judged: it depends on how long the cluster took to change.
    pub fn disagreements(&self, cluster: &Cluster, expect: &StreamExpectation) -> Vec<Mismatch> {
        let traffic = TrafficExpectation {
            delivered_to: expect.delivered_to.clone(),
            ..TrafficExpectation::default()
        };
        let seen = DeliveryObserved {
            delivered: self.reached.iter().map(|pod| (pod.clone(), 1)).collect(),
            destinations_by_pod: self.destinations.clone(),
            ..DeliveryObserved::default()
        };
        let book = address_book(cluster, &self.flow.packet.from).with_earlier(&self.had);
        let mut found = mismatches(&traffic, &seen, &book);
        // A stream's packets are not counted: name the pods alone.
        for mismatch in &mut found {
            if mismatch.what == "delivered to" {
                mismatch.actual = match self.reached.is_empty() {
                    true => "no pod".to_string(),
                    false => self.reached.iter().cloned().collect::<Vec<_>>().join(", "),
                };
            }
        }
        if let Some(expected) = &expect.after_move_at {
            let mismatch = |actual: String| Mismatch {
                what: "after the move".into(),
                expected: format!("only {expected}"),
                actual,
            };
            let now = self.now.pods();
            if !self.moved {
                found.push(mismatch(
                    "the floating IP never moved during the stream".into(),
                ));
            } else if now != [expected.as_str()] || self.now.outcomes.len() != 1 {
                found.push(mismatch(if now.is_empty() {
                    "no pod receives the stream at its end".into()
                } else {
                    now.join(", ")
                }));
            }
        }
        found
    }
}
