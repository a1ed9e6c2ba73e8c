//! A scenario's steps through the Calico model: each pod step's outcome (and
//! so its expected error) comes from [`crate::calico::Cluster`], and each
//! `send` and `stopStream` expectation is checked against the model's
//! prediction. `validate` and `run` both go through here; this file only
//! translates between the language and the model.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::model::{Scenario, Step, Target};
use crate::calico::cluster::{Cluster, ClusterConfig, ClusterStep, Network};
use crate::calico::cluster::{Effects, ExpectationMismatch};
use crate::calico::predict::{send_disagreements, Landing, Packet, Prediction, StreamWatch};
use crate::check::Mismatch;
use crate::vocab::{ConntrackProfile, IpFamily};

/// Whether loading checks written expectations of traffic against the
/// model's prediction (the process's setting; on unless a command's
/// `--skip-model-check` turns it off).
static CHECK_AGAINST_MODEL: AtomicBool = AtomicBool::new(true);

/// Check (`true`, the default) or not the expectations of traffic of every
/// scenario this process loads against the Calico model's prediction. Off,
/// a scenario whose expectations the model refuses still loads and its run
/// judges the traffic against what it says: to show the model wrong, or to
/// make a case fail on purpose.
pub fn check_expectations_against_model(on: bool) {
    CHECK_AGAINST_MODEL.store(on, Ordering::Relaxed);
}

pub(super) fn checking_expectations() -> bool {
    CHECK_AGAINST_MODEL.load(Ordering::Relaxed)
}

impl Step {
    /// The change this step makes to the cluster, if it is a pod step.
    pub fn cluster_step(&self) -> Option<ClusterStep> {
        Some(match self {
            Step::CreatePod(create) => ClusterStep::CreatePod {
                name: create.pod.name.clone(),
                namespace: create.pod.namespace.clone(),
                node: create.pod.node.clone(),
                annotations: create.pod.annotations.clone(),
            },
            Step::DeletePod(name) => ClusterStep::DeletePod { name: name.clone() },
            Step::Annotate(annotate) => ClusterStep::Annotate {
                pod: annotate.pod.clone(),
                floating_ips: annotate.floating_ips.clone(),
            },
            Step::SetPhase(set) => ClusterStep::SetPhase {
                pod: set.pod.clone(),
                phase: set.phase,
            },
            _ => return None,
        })
    }

    /// The error (a part of Calico's text) the step expects, if any.
    pub fn expected_error(&self) -> Option<&str> {
        match self {
            Step::CreatePod(create) => create.expect_error.as_deref(),
            Step::Annotate(annotate) => annotate.expect_error.as_deref(),
            _ => None,
        }
    }
}

impl Scenario {
    /// The Calico model of the scenario's cluster under `profile`, with no pods.
    pub fn model(&self, profile: ConntrackProfile) -> Cluster {
        Cluster::new(model_config(
            &self.cluster,
            self.cluster.nodes.iter().map(String::as_str),
            profile,
            self.calico,
        ))
    }
}

/// The model's configuration of a scenario's cluster (the nodes and external
/// hosts given by name, as many as the addressing plan holds).
pub(super) fn model_config<'a>(
    cluster: &super::model::Cluster,
    nodes: impl Iterator<Item = &'a str>,
    profile: ConntrackProfile,
    calico: crate::calico::Release,
) -> ClusterConfig {
    let nodes: Vec<&str> = nodes.take(super::limits::MAX_NODES).collect();
    let externals: Vec<&str> = cluster
        .externals
        .iter()
        .map(String::as_str)
        .take(super::limits::MAX_EXTERNALS)
        .collect();
    ClusterConfig {
        cni: cluster.cni.feature_control,
        felix_floating_ips: cluster.felix_floating_ips,
        dual_stack: cluster.dual_stack,
        pools: cluster.pools.clone(),
        network: Network::lab(&nodes, &externals, cluster.dual_stack),
        profile,
        calico,
    }
}

/// What the model says of one step.
pub(super) enum Verdict {
    /// A pod step: its effects, or how it differs from what it expects.
    Pod(Box<Result<Effects, ExpectationMismatch>>),
    /// A traffic step: where its expectation disagrees with the model, one
    /// line each (empty: it agrees).
    Traffic(Vec<String>),
    /// A step the model has nothing to say about.
    Nothing,
}

/// The model following a scenario step by step.
pub(super) struct Oracle {
    cluster: Cluster,
    streams: BTreeMap<String, StreamWatch>,
    /// Floating IPs whose running stream the last step brought to a node
    /// that got their DNAT in that same step (Felix's route and NAT race
    /// there).
    raced_dnat: Vec<IpAddr>,
}

impl Oracle {
    pub fn new(config: ClusterConfig) -> Self {
        Self {
            cluster: Cluster::new(config),
            streams: BTreeMap::new(),
            raced_dnat: Vec::new(),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Apply `step` to the model. Pod steps are staged, and Felix acts on
    /// them when traffic next looks (at once while a stream runs, so the
    /// stream sees every change).
    pub fn step(&mut self, step: &Step) -> Verdict {
        if let Some(change) = step.cluster_step() {
            self.raced_dnat.clear();
            let staged = self.cluster.stage_expecting(&change, step.expected_error());
            if staged.is_ok() && !self.streams.is_empty() {
                let nat_before = self.cluster.felix().nat.clone();
                let update = self.cluster.settle();
                for watch in self.streams.values_mut() {
                    let nodes_before = watch.flow.nodes();
                    // A stream whose sender went keeps what it had reached.
                    let _ = watch.step(&self.cluster, &update);
                    let to = watch.flow.packet.to;
                    let raced = watch.flow.meets_a_new_dnat(
                        &nodes_before,
                        &nat_before,
                        &self.cluster.felix().nat,
                    );
                    // The strict profile's flush of the floating IP's
                    // entries comes after the new NAT (control/order.rs):
                    // an entry the race made goes with it.
                    if raced && self.cluster.config().profile == ConntrackProfile::Calico {
                        self.raced_dnat.push(to);
                    }
                }
            }
            return Verdict::Pod(Box::new(staged));
        }
        match step {
            Step::Send(send) => {
                self.cluster.settle();
                let Some(to) = self.resolve(&send.to) else {
                    return Verdict::Nothing;
                };
                let packet = Packet {
                    port: send.port,
                    ..Packet::new(&send.from, to, send.protocol)
                };
                let verdict =
                    match send_disagreements(&self.cluster, &packet, send.count, &send.expect) {
                        Ok((prediction, found)) => lines(&found, &prediction),
                        Err(error) => vec![error.to_string()],
                    };
                // Its conntrack entries stay (keyless GRE: calico::predict::GreTable).
                let _ = self.cluster.sent(&packet);
                Verdict::Traffic(verdict)
            }
            Step::StartStream(start) => {
                self.cluster.settle();
                let Some(to) = self.resolve(&start.to) else {
                    return Verdict::Nothing;
                };
                let packet = Packet {
                    port: start.port,
                    ..Packet::new(&start.from, to, start.protocol)
                };
                match StreamWatch::start(&self.cluster, packet) {
                    Ok(watch) => {
                        let refused = unconnected(&watch.now, start.protocol);
                        self.streams.insert(start.name.clone(), watch);
                        Verdict::Traffic(refused.into_iter().collect())
                    }
                    Err(error) => Verdict::Traffic(vec![error.to_string()]),
                }
            }
            Step::StopStream(stop) => match self.streams.remove(&stop.name) {
                Some(watch) => {
                    let found = watch.disagreements(&self.cluster, &stop.expect);
                    let answered = !watch.now.pods().is_empty();
                    self.cluster.stream_stopped(&watch.flow, answered);
                    Verdict::Traffic(lines(&found, &watch.now))
                }
                None => Verdict::Nothing,
            },
            // A counted wait takes its packets' time at the stream's
            // interval when the stream keeps time; the model's clock only
            // ages idle keyless GRE entries (timeouts of 30 s and more,
            // calico::conntrack::gre), far beyond any stream wait's slack.
            Step::Wait(wait) => {
                self.cluster.elapse(wait.nominal());
                Verdict::Nothing
            }
            _ => Verdict::Nothing,
        }
    }

    /// The floating IPs whose running stream the last pod step brought to
    /// a node that got their DNAT in that step.
    pub fn raced_dnat(&self) -> &[IpAddr] {
        &self.raced_dnat
    }

    fn resolve(&self, target: &Target) -> Option<IpAddr> {
        resolve(&self.cluster, target)
    }
}

/// The address `target` names in `cluster` now, if it names one: a pod's
/// (live in the model), a node's or an external host's, of the family asked.
pub fn resolve(cluster: &Cluster, target: &Target) -> Option<IpAddr> {
    let (name, family) = match target {
        Target::Address(address) => return Some(*address),
        Target::Host { name, family } => (name, *family),
    };
    let network = &cluster.config().network;
    let addresses = match cluster.pod(name) {
        Some(pod) => &pod.addresses,
        None => {
            &network
                .node(name)
                .or_else(|| network.external(name))?
                .addresses
        }
    };
    addresses
        .iter()
        .copied()
        .find(|a| IpFamily::of(a) == family)
}

/// Why a stream of `protocol` cannot start where `now` says its packets go:
/// a TCP stream connects when it starts (`traffic`'s TCP stream fails its
/// step when the handshake does not complete), so a destination where no
/// pod answers refuses it ([`Prediction::may_connect`]). Other protocols
/// start whatever the network does.
fn unconnected(now: &Prediction, protocol: crate::vocab::Protocol) -> Option<String> {
    if protocol != crate::vocab::Protocol::Tcp {
        return None;
    }
    (!now.may_connect()).then(|| {
        format!(
            "a TCP stream connects when it starts, but the Calico model predicts no answer: {}",
            describe(now)
        )
    })
}

/// Each disagreement as the line `validate` prints, with the model's view.
fn lines(found: &[Mismatch], prediction: &Prediction) -> Vec<String> {
    found
        .iter()
        .map(|m| {
            format!(
                "{}: the step expects {}, the Calico model predicts {} ({})",
                m.what,
                m.expected,
                m.actual,
                describe(prediction)
            )
        })
        .collect()
}

/// The model's prediction in a few words: `client -> fabric -> node-a -> web:
/// web sees 198.19.0.0 from 198.18.1.10, replies from 203.0.113.10`.
pub(super) fn describe(prediction: &Prediction) -> String {
    let ways: Vec<String> = prediction
        .outcomes
        .iter()
        .map(|outcome| {
            let what = match &outcome.landing {
                Landing::Pod {
                    pod,
                    seen_destination,
                    seen_source,
                    reply_source,
                    quoted_destination,
                } => {
                    let mut text = format!("{pod} sees {seen_destination} from {seen_source}");
                    match (reply_source, quoted_destination) {
                        (Some(reply), _) => text.push_str(&format!(", replies from {reply}")),
                        (None, Some(quoted)) => {
                            text.push_str(&format!(", an ICMP error quotes {quoted}"))
                        }
                        (None, None) => text.push_str(", no reply"),
                    }
                    text
                }
                Landing::Host { host, .. } => format!("{host} itself takes it"),
                Landing::Dropped { at, reason } => {
                    format!("dropped at {at} ({})", drop_words(*reason))
                }
            };
            format!("{}: {what}", outcome.path.join(" -> "))
        })
        .collect();
    match ways.len() {
        1 => ways.into_iter().next().unwrap_or_default(),
        _ => format!("ECMP picks one way per flow: {}", ways.join("; ")),
    }
}

fn drop_words(reason: crate::calico::predict::DropReason) -> &'static str {
    use crate::calico::predict::DropReason::*;
    match reason {
        Blackhole => "its blackhole for its own blocks",
        NoRoute => "no route",
        Loop => "a routing loop",
        NotForwarded => "not forwarded",
        NoNeighbour => "the pod does not own that address",
        UnknownInterface => "Felix has no endpoint for the pod's interface (\"Unknown interface\")",
        ConntrackClash => "another conntrack entry holds its reply tuple",
        NoConnection => "TCP's handshake gets no answer back, so the connection is never made",
        NoAssociation => "SCTP's INIT ACK never gets back, so its DATA, without the peer's tag, is invalid to the translating node's conntrack and goes on untranslated",
    }
}
