//! The model's prediction written as the scenario language's expectations:
//! what a `send` must observe, and what a stream must have reached by its
//! `stopStream`. A prediction the language cannot state exactly (outcomes of
//! different kinds, a packet to the sender's own address) gives `None`, and
//! the explorer leaves that step out rather than check less than the model
//! says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::calico::cluster::{Cluster, FelixUpdate};
use crate::calico::nat::NodeNatState;
use crate::calico::predict::{Flow, Landing, Packet, Prediction};
use crate::check::{Delivery, Loss, SeenAddress, StreamExpectation, TrafficExpectation};
use crate::vocab::Protocol;

/// What `count` packets of `packet`, one flow sent now, must show.
pub fn send_expectation(cluster: &Cluster, packet: &Packet) -> Option<TrafficExpectation> {
    let prediction = cluster.predict(packet).ok()?.as_sent(packet);
    let mut expect = expectation_of(cluster, &prediction, &packet.from)?;
    // What external hosts see is stated for pods' ICMP and UDP, whose
    // arrivals the hosts' captures record as the catalogue checks them
    // (a TCP or SCTP packet between external hosts, say, is not).
    let watched = matches!(packet.protocol, Protocol::Icmp | Protocol::Udp);
    if !watched || cluster.pod(&packet.from).is_none() {
        expect.seen_source = expect
            .seen_source
            .filter(|_| expect.delivered_to != Some(Delivery::None));
    }
    Some(expect)
}

/// The one value every item has, if they all have the same.
fn common<T: PartialEq + Copy>(values: impl IntoIterator<Item = T>) -> Option<T> {
    let mut values = values.into_iter();
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

fn expectation_of(
    cluster: &Cluster,
    prediction: &Prediction,
    sender: &str,
) -> Option<TrafficExpectation> {
    let landings: Vec<&Landing> = prediction.outcomes.iter().map(|o| &o.landing).collect();
    if landings.is_empty() {
        return None;
    }
    let pod_landings: Vec<_> = landings
        .iter()
        .filter_map(|landing| match landing {
            Landing::Pod {
                pod,
                seen_destination,
                seen_source,
                reply_source,
                quoted_destination,
            } => Some((
                pod.as_str(),
                *seen_destination,
                *seen_source,
                *reply_source,
                *quoted_destination,
            )),
            _ => None,
        })
        .collect();
    if pod_landings.len() == landings.len() {
        let pods: BTreeSet<String> = pod_landings.iter().map(|l| l.0.to_string()).collect();
        let own = |pod: &str, address: IpAddr| {
            cluster
                .pod(pod)
                .is_some_and(|p| p.addresses.contains(&address))
        };
        let seen = |pod: &str, address: IpAddr| {
            if own(pod, address) {
                SeenAddress::Pod
            } else {
                SeenAddress::Address(address)
            }
        };
        let replies = common(pod_landings.iter().map(|l| l.3));
        let loss = match replies {
            Some(Some(_)) => Some(Loss::Packets(0)),
            Some(None) => Some(Loss::Percent(100.0)),
            None => None,
        };
        return Some(TrafficExpectation {
            delivered_to: Some(if pods.len() == 1 {
                Delivery::Pods(pods.into_iter().collect())
            } else {
                Delivery::OneOf(pods.into_iter().collect())
            }),
            seen_destination: common(pod_landings.iter().map(|l| seen(l.0, l.1))),
            seen_source: common(pod_landings.iter().map(|l| {
                if l.2 == prediction.source {
                    SeenAddress::From
                } else {
                    SeenAddress::Address(l.2)
                }
            })),
            reply_source: replies.flatten(),
            quoted_destination: common(pod_landings.iter().map(|l| l.4)).flatten(),
            loss,
        });
    }
    // Nothing reaches a pod: the host that takes it may answer ICMP echo,
    // and an external host sees a source.
    let mut host_replies = Vec::new();
    let mut seen_sources = Vec::new();
    for landing in &landings {
        match landing {
            // A packet to the sending pod's own address never leaves it: the
            // engine would see the pod receive it.
            Landing::Host { host, .. } if cluster.pod(host).is_some() => return None,
            Landing::Host {
                host,
                reply_source,
                seen_source,
            } => {
                host_replies.push(*reply_source);
                // A host's packets to itself never pass its capture.
                if host != sender {
                    seen_sources.push(*seen_source);
                }
            }
            Landing::Dropped { .. } => host_replies.push(None),
            _ => return None,
        }
    }
    let reply_source = common(host_replies).flatten();
    // `seenSource` looks at what external hosts receive: stated when every
    // outcome reaches one, from the same source.
    let all_hosts = seen_sources.len() == landings.len();
    let seen_source = match common(seen_sources) {
        Some(Some(source)) if all_hosts => Some(if source == prediction.source {
            SeenAddress::From
        } else {
            SeenAddress::Address(source)
        }),
        _ => None,
    };
    Some(TrafficExpectation {
        delivered_to: Some(Delivery::None),
        reply_source,
        seen_source,
        loss: reply_source.map(|_| Loss::Packets(0)),
        ..TrafficExpectation::default()
    })
}

/// A running stream as the model follows it through every change.
#[derive(Clone, Debug)]
pub struct StreamTrack {
    flow: Flow,
    /// The pods each successive state of the cluster sends it to.
    states: Vec<BTreeSet<String>>,
    /// Whether the pod receiving its floating IP changed while it ran.
    moved: bool,
    /// The addresses each pod it reached had then: a pod deleted and
    /// created again under its name has others, and the checks judge what
    /// a pod received by the addresses it has at the stop.
    reached: BTreeMap<String, Vec<IpAddr>>,
    /// A pod it reached was deleted while it ran, and it reached another
    /// pod after.
    past_deleted: bool,
    /// A pod it reached is gone.
    lost_a_pod: bool,
    /// False once a state is one the language cannot state (ECMP among
    /// pods, a packet to the sender's own address): the stop then checks
    /// nothing.
    stated: bool,
}

impl StreamTrack {
    pub fn start(cluster: &Cluster, packet: Packet) -> Option<Self> {
        let mut flow = cluster.flow_for(&packet);
        // As a send sees it: an SCTP association whose INIT ACK does not
        // come back reaches nobody (`Prediction::as_sent`).
        let prediction = cluster.advance(&mut flow).ok()?.as_sent(&packet);
        let mut track = Self {
            flow,
            states: Vec::new(),
            moved: false,
            reached: BTreeMap::new(),
            past_deleted: false,
            lost_a_pod: false,
            stated: true,
        };
        track.note(cluster, &prediction);
        // An SCTP stream is an association: one that cannot start now
        // retries its INIT on the client's timer, not per packet, so when
        // its first DATA flows after a change is not the model's to say.
        let starts = !track.states.first().is_some_and(BTreeSet::is_empty);
        let association = track.flow.packet.protocol == crate::vocab::Protocol::Sctp;
        // A TCP stream connects when it starts: the runner fails its step
        // (and the loader refuses it) where nothing answers.
        let tcp = track.flow.packet.protocol == crate::vocab::Protocol::Tcp;
        let connects = !tcp || prediction.may_connect();
        (track.stated && connects && (starts || !association)).then_some(track)
    }

    /// Whether the language can still state where it goes.
    pub fn is_stated(&self) -> bool {
        self.stated
    }

    /// Whether the pod receiving its destination changed while it ran.
    pub fn moved(&self) -> bool {
        self.moved
    }

    /// Whether it reached another pod after a pod it reached was deleted.
    pub fn passed_a_deleted_pod(&self) -> bool {
        self.past_deleted
    }

    /// Its flow, with the conntrack entries it left.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Whether a pod receives its packets now (and so answers them).
    pub fn answered(&self) -> bool {
        self.states.last().is_some_and(|pods| !pods.is_empty())
    }

    /// Whether `update` gives the IPv6 floating IP the stream's sending pod
    /// sends to to that pod itself. Felix applies the pod's device route
    /// for it and the NAT in parallel (felix InternalDataplane.apply), so a
    /// packet of the stream (new, or following an entry made while nobody
    /// or another pod held it) can be routed untranslated back out of the
    /// interface it came in by; the kernel then sends the pod an ICMPv6
    /// redirect (net/ipv6/ip6_output.c ip6_forward, ndisc_send_redirect:
    /// IPv6 has no `send_redirects` switch), the pod takes the floating IP
    /// for on-link (net/ipv6/route.c rt6_do_redirect) and its packets to it
    /// die in its own namespace, unanswered neighbour solicitations, for
    /// seconds. Where the stream goes then is not the model's to say. Found
    /// by `fip-harness explore --dataplane nftables --seed 5101` (case 499,
    /// every reference dataplane alike, under the strict profile).
    fn redirected_to_itself(&self, update: &FelixUpdate) -> bool {
        let to = self.flow.packet.to;
        to.is_ipv6()
            && update.holders.iter().any(|change| {
                change.floating_ip == to && change.to.as_deref() == Some(self.sender())
            })
    }

    /// The sender, by name.
    /// Whether its sender sends until stopped, whatever the answers: not
    /// TCP or SCTP, whose stream ends when the connection breaks (a counted
    /// wait on it would then fail).
    pub fn sends_until_stopped(&self) -> bool {
        !matches!(self.flow.packet.protocol, Protocol::Tcp | Protocol::Sctp)
    }

    pub fn sender(&self) -> &str {
        &self.flow.packet.from
    }

    /// The cluster changed by `update`: Calico's (and the profile's)
    /// conntrack deletions take the flow's entries, then it goes on.
    pub fn follow(
        &mut self,
        cluster: &Cluster,
        update: &FelixUpdate,
        nat_before: &BTreeMap<String, NodeNatState>,
    ) {
        if self.redirected_to_itself(update) {
            self.stated = false;
        }
        self.flow.forget(&update.changes.conntrack);
        let nodes_before = self.flow.nodes();
        if update
            .holders
            .iter()
            .any(|change| change.floating_ip == self.flow.packet.to)
        {
            self.moved = true;
        }
        let readdressed = self.reached.iter().any(|(pod, addresses)| {
            cluster
                .pod(pod)
                .is_some_and(|now| now.addresses != *addresses)
        });
        if readdressed {
            self.stated = false;
        }
        if self.reached.keys().any(|pod| cluster.pod(pod).is_none()) {
            self.lost_a_pod = true;
        }
        match cluster.advance(&mut self.flow) {
            Ok(prediction) => self.note(cluster, &prediction),
            Err(_) => self.stated = false,
        }
        // A change that brings the stream to a node getting the floating
        // IP's DNAT in the same step races there under Felix's update order
        // (routes and NAT applied in parallel: felix InternalDataplane.apply),
        // and a packet that beats the DNAT pins the flow untranslated; the
        // strict profile's flush comes after and takes such an entry. Where
        // the stream goes then is not the model's to say (validate warns of
        // the same in the catalogue: scenario/oracle.rs raced_dnat).
        let raced = self
            .flow
            .meets_a_new_dnat(&nodes_before, nat_before, &cluster.felix().nat);
        if raced && cluster.config().profile == crate::vocab::ConntrackProfile::Calico {
            self.stated = false;
        }
    }

    fn note(&mut self, cluster: &Cluster, prediction: &Prediction) {
        let mut pods = BTreeSet::new();
        for outcome in &prediction.outcomes {
            match &outcome.landing {
                Landing::Pod { pod, .. } => {
                    if let Some(now) = cluster.pod(pod) {
                        let before = self.reached.insert(pod.clone(), now.addresses.clone());
                        if before.is_some_and(|before| before != now.addresses) {
                            self.stated = false;
                        }
                    }
                    if self.lost_a_pod && !self.reached.contains_key(pod) {
                        self.past_deleted = true;
                    }
                    pods.insert(pod.clone());
                }
                Landing::Host { host, .. } if cluster.pod(host).is_some() => self.stated = false,
                Landing::Host { .. } | Landing::Dropped { .. } => {}
            }
        }
        if pods.len() > 1 {
            self.stated = false;
        }
        if self.states.last() != Some(&pods) {
            self.states.push(pods);
        }
    }

    /// What its `stopStream` must find: every pod some state sent it to,
    /// and, after a single change of pod, the pod it ends at.
    pub fn expectation(&self) -> StreamExpectation {
        if !self.stated {
            return StreamExpectation::default();
        }
        let reached: BTreeSet<String> = self.states.iter().flatten().cloned().collect();
        let delivered_to = if reached.is_empty() {
            Delivery::None
        } else {
            Delivery::Pods(reached.into_iter().collect())
        };
        let after_move_at = match self.states.as_slice() {
            [_, last] if self.moved && last.len() == 1 => last.iter().next().cloned(),
            _ => None,
        };
        StreamExpectation {
            delivered_to: Some(delivered_to),
            loss: None,
            after_move_at,
        }
    }
}
