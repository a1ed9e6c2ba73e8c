//! A generated case read by the Calico model: each abstract operation
//! becomes a scenario step, its references resolved against the cluster as
//! the model holds it at that point, and each traffic step gets the
//! expectation the model's prediction makes. Operations the model cannot
//! apply (no pod yet, a step Calico's Felix would crash on) or whose
//! prediction the scenario language cannot state are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

mod claims;
mod config;
mod situations;

use config::family;
pub use config::{
    cluster_config, floating_address, outside_address, pools, profile_name, SPARE_POD,
    TINY_BLOCK_SIZE, TINY_POD_POOL,
};
pub use situations::Situation;

use super::expect::{send_expectation, StreamTrack};
use super::plan::{Annotation, BadEntry, CaseSpec, Entry, Malformed, Op, PodPool, Target};
use crate::calico::cluster::{
    Cluster, ClusterConfig, ClusterStep, ExpectationMismatch, FelixUpdate, RefusedBy,
};
use crate::calico::predict::Packet;
use crate::calico::{PodPhase, FLOATING_IPS_ANNOTATION};
use crate::check::{StreamExpectation, TrafficExpectation};
use crate::vocab::{IpFamily, Protocol, ECHO_PORT};

/// Node and external host names, in the addressing plan's order.
pub const NODE_NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];
pub const EXTERNAL_NAMES: [&str; 2] = ["client", "client-b"];
/// UDP port nothing listens on in a pod (its kernel answers port unreachable).
pub const CLOSED_PORT: u16 = 9;
/// How often a stream sends, and how long each state of the cluster lasts
/// while streams run (so that every state gets packets).
pub const STREAM_INTERVAL_MS: u64 = 5;
pub const SETTLE_WAIT_MS: u64 = 60;

/// A case as scenario steps, ready to render.
#[derive(Clone, Debug)]
pub struct Script {
    pub spec: CaseSpec,
    pub config: ClusterConfig,
    pub steps: Vec<ScriptStep>,
    /// Operations left out (impossible at their point, or unstated).
    pub left_out: usize,
    /// The situations its checks reach.
    pub situations: BTreeSet<Situation>,
}

#[derive(Clone, Debug)]
pub enum ScriptStep {
    CreatePod {
        name: String,
        node: String,
        annotation: Option<String>,
        expect_error: Option<String>,
    },
    DeletePod(String),
    Annotate {
        pod: String,
        value: Option<String>,
        expect_error: Option<String>,
    },
    SetPhase {
        pod: String,
        phase: PodPhase,
    },
    Send {
        protocol: Protocol,
        from: String,
        to: String,
        port: u16,
        count: u32,
        expect: TrafficExpectation,
    },
    StartStream {
        name: String,
        protocol: Protocol,
        from: String,
        to: String,
    },
    StopStream {
        name: String,
        expect: StreamExpectation,
    },
    WaitMs(u64),
    /// Until the stream named has sent this many more packets.
    WaitPackets(String, u64),
}

impl ScriptStep {
    /// Whether the step sends traffic (what shrinking counts as packets).
    pub fn is_traffic(&self) -> bool {
        matches!(
            self,
            ScriptStep::Send { .. }
                | ScriptStep::StartStream { .. }
                | ScriptStep::StopStream { .. }
        )
    }
}

/// Read `spec` with the model.
pub fn script(spec: &CaseSpec) -> Script {
    let config = cluster_config(spec);
    let mut reader = Reader {
        cluster: Cluster::new(config.clone()),
        spec,
        steps: Vec::new(),
        left_out: 0,
        situations: BTreeSet::new(),
        deleted: Vec::new(),
        next_pod: 0,
        streams: BTreeMap::new(),
        next_stream: 0,
    };
    if spec.pod_pool == PodPool::Tiny {
        reader.create_named(SPARE_POD.to_string(), 0, None);
    }
    for op in &spec.ops {
        if !reader.op(op) {
            reader.left_out += 1;
        }
    }
    let running: Vec<String> = reader.streams.keys().cloned().collect();
    for name in running {
        reader.stop_stream(&name);
    }
    Script {
        spec: spec.clone(),
        config,
        steps: reader.steps,
        left_out: reader.left_out,
        situations: reader.situations,
    }
}

struct Reader<'a> {
    cluster: Cluster,
    spec: &'a CaseSpec,
    steps: Vec<ScriptStep>,
    left_out: usize,
    situations: BTreeSet<Situation>,
    /// Names of deleted pods, for re-creations under the same name.
    deleted: Vec<String>,
    next_pod: usize,
    streams: BTreeMap<String, StreamTrack>,
    next_stream: usize,
}

impl Reader<'_> {
    /// Carry out one operation; false when it was left out.
    fn op(&mut self, op: &Op) -> bool {
        match op {
            Op::CreatePod {
                node,
                reuse,
                annotation,
            } => self.create_pod(node.index(self.spec.nodes), reuse.as_ref(), annotation),
            Op::DeletePod { pod } => match self.pod_name(pod) {
                Some(name) => self.delete_pod(name),
                None => false,
            },
            Op::Annotate { pod, value } => match self.pod_name(pod) {
                Some(name) => {
                    let floating_ips = value.as_ref().and_then(|v| self.annotation_text(v));
                    if value.is_some() && floating_ips.is_none() {
                        return false;
                    }
                    self.pod_step(ClusterStep::Annotate {
                        pod: name,
                        floating_ips,
                    })
                }
                None => false,
            },
            Op::SetPhase { pod, phase } => match self.pod_name(pod) {
                Some(name) => self.pod_step(ClusterStep::SetPhase {
                    pod: name,
                    phase: *phase,
                }),
                None => false,
            },
            Op::Send {
                from,
                to,
                protocol,
                closed_port,
                count,
            } => match (self.resolve_sender(from), self.target(to)) {
                (Some(from), Some(to)) => self.send(from, to, *protocol, *closed_port, *count),
                _ => false,
            },
            Op::StartStream { from, to, protocol } => {
                match (self.resolve_sender(from), self.target(to)) {
                    (Some(from), Some(to)) => self.start_stream(from, to, *protocol),
                    _ => false,
                }
            }
            Op::Egress {
                claim,
                external,
                v6,
                protocol,
            } => self.egress(claim, external, *v6, *protocol),
            Op::Loopback {
                claim,
                v6,
                protocol,
                closed_port,
            } => self.loopback(claim, *v6, *protocol, *closed_port),
            Op::Replica {
                claim,
                node,
                from,
                protocol,
            } => self.replica(claim, node, from, *protocol),
            Op::Change { claim, change } => match self.claim(claim, None) {
                Some(claim) => self.change(&claim, change),
                None => false,
            },
            Op::StreamAcross {
                from,
                claim,
                v6,
                protocol,
                change,
            } => self.stream_across(from, claim, *v6, *protocol, change),
            Op::StopStream { stream } => {
                let names: Vec<String> = self.streams.keys().cloned().collect();
                if names.is_empty() {
                    return false;
                }
                let name = names[stream.index(names.len())].clone();
                self.stop_stream(&name);
                true
            }
            Op::Wait => {
                self.wait(SETTLE_WAIT_MS);
                true
            }
        }
    }

    /// Delete pod `name`; a stream ends before the pod sending it goes.
    fn delete_pod(&mut self, name: String) -> bool {
        let sending: Vec<String> = (self.streams.iter())
            .filter(|(_, track)| track.sender() == name)
            .map(|(stream, _)| stream.clone())
            .collect();
        for stream in sending {
            self.stop_stream(&stream);
        }
        self.pod_step(ClusterStep::DeletePod { name })
    }

    fn create_pod(
        &mut self,
        node: usize,
        reuse: Option<&proptest::sample::Index>,
        annotation: &Option<Annotation>,
    ) -> bool {
        let text = match annotation {
            Some(annotation) => match self.annotation_text(annotation) {
                Some(text) => Some(text),
                None => return false,
            },
            None => None,
        };
        let name = match reuse {
            Some(index) if !self.deleted.is_empty() => {
                self.deleted[index.index(self.deleted.len())].clone()
            }
            _ => format!("web-{}", self.next_pod),
        };
        self.create_named(name, node, text)
    }

    /// Create pod `name` (new, or the name of a deleted pod) on node
    /// `node` with the floating-IP annotation `text`.
    fn create_named(&mut self, name: String, node: usize, text: Option<String>) -> bool {
        let reused = match self.deleted.iter().position(|d| *d == name) {
            Some(at) => {
                self.deleted.remove(at);
                true
            }
            None => false,
        };
        let annotations = text
            .iter()
            .map(|t| (FLOATING_IPS_ANNOTATION.to_string(), t.clone()))
            .collect();
        let step = ClusterStep::CreatePod {
            name: name.clone(),
            namespace: "default".into(),
            node: NODE_NAMES[node].into(),
            annotations,
        };
        let done = self.pod_step(step);
        if !reused && done {
            self.next_pod += 1;
        }
        if (reused && !done) || (done && self.cluster.pod(&name).is_none()) {
            // Free again: never set up, or Calico refused it.
            self.deleted.push(name);
        }
        done
    }

    /// Apply a pod step to the model; with Calico's error as the step's
    /// expected error when Calico refuses it.
    fn pod_step(&mut self, step: ClusterStep) -> bool {
        let mut trial = self.cluster.clone();
        let expect_error = match trial.apply_expecting(&step, None) {
            Ok(_) => None,
            Err(ExpectationMismatch::SetUpRefused { refusal, .. }) => Some(refusal.text),
            Err(ExpectationMismatch::AnnotationRejected { text, by }) => {
                if by == RefusedBy::FelixPanic {
                    // The harness refuses what would crash-loop Felix.
                    return false;
                }
                Some(text)
            }
            Err(_) => return false,
        };
        let nat_before = self.cluster.felix().nat.clone();
        let effects = match self.cluster.apply_expecting(&step, expect_error.as_deref()) {
            Ok(effects) => effects,
            Err(_) => return false,
        };
        self.streams_follow(&effects.felix, &nat_before, |reader| {
            reader.record_pod_step(step, expect_error)
        });
        (self.situations).extend(situations::of_claims(&self.cluster));
        true
    }

    fn record_pod_step(&mut self, step: ClusterStep, expect_error: Option<String>) {
        let script_step = match step {
            ClusterStep::CreatePod {
                name,
                node,
                annotations,
                ..
            } => ScriptStep::CreatePod {
                name,
                node,
                annotation: annotations.get(FLOATING_IPS_ANNOTATION).cloned(),
                expect_error,
            },
            ClusterStep::DeletePod { name } => {
                self.deleted.push(name.clone());
                ScriptStep::DeletePod(name)
            }
            ClusterStep::Annotate { pod, floating_ips } => ScriptStep::Annotate {
                pod,
                value: floating_ips,
                expect_error,
            },
            ClusterStep::SetPhase { pod, phase } => ScriptStep::SetPhase { pod, phase },
        };
        self.steps.push(script_step);
    }

    /// Running streams see every change: their flows lose the conntrack
    /// entries Calico deletes, and go where the cluster now sends them. A
    /// stream the change would take where the language cannot follow it
    /// stops before the change (`record` writes it). Each state lasts a
    /// while, so that it gets packets.
    fn streams_follow(
        &mut self,
        update: &FelixUpdate,
        nat_before: &BTreeMap<String, crate::calico::nat::NodeNatState>,
        record: impl FnOnce(&mut Self),
    ) {
        let mut followed = BTreeMap::new();
        let mut stopping = Vec::new();
        for (name, track) in &self.streams {
            let mut next = track.clone();
            next.follow(&self.cluster, update, nat_before);
            if next.is_stated() {
                followed.insert(name.clone(), next);
            } else {
                stopping.push(name.clone());
            }
        }
        for name in stopping {
            self.stop_stream(&name);
        }
        record(self);
        if !followed.is_empty() {
            self.streams = followed;
            self.wait(SETTLE_WAIT_MS);
        }
    }

    /// A wait step: the model's clock moves on too (keyless GRE entries
    /// time out by it). While a stream that cannot lose its connection runs,
    /// it counts that stream's packets: `ms` of its interval.
    fn wait(&mut self, ms: u64) {
        let counted = self
            .streams
            .iter()
            .find(|(_, track)| track.sends_until_stopped());
        self.steps.push(match counted {
            Some((stream, _)) => ScriptStep::WaitPackets(stream.clone(), ms / STREAM_INTERVAL_MS),
            None => ScriptStep::WaitMs(ms),
        });
        self.cluster.elapse(std::time::Duration::from_millis(ms));
    }

    /// Live pods, by name.
    fn pod_name(&self, index: &proptest::sample::Index) -> Option<String> {
        let pods: Vec<&String> = self.cluster.pods().keys().collect();
        (!pods.is_empty()).then(|| pods[index.index(pods.len())].clone())
    }

    /// Members that send: external hosts, nodes, live pods.
    fn members(&self) -> Vec<String> {
        EXTERNAL_NAMES[..self.spec.externals]
            .iter()
            .chain(&NODE_NAMES[..self.spec.nodes])
            .map(|s| s.to_string())
            .chain(self.cluster.pods().keys().cloned())
            .collect()
    }

    fn v6(&self, v6: bool) -> bool {
        v6 && self.spec.dual_stack
    }

    fn annotation_text(&self, annotation: &Annotation) -> Option<String> {
        let entries = match annotation {
            Annotation::Malformed(Malformed::Unterminated) => {
                return Some(r#"["203.0.113.10""#.to_string())
            }
            Annotation::Malformed(Malformed::BareAddress) => return Some("203.0.113.10".into()),
            Annotation::List(entries) => entries,
        };
        let mut texts = Vec::new();
        for entry in entries {
            let text = match entry {
                Entry::Floating { slot, v6 } => floating_address(*slot, self.v6(*v6)).to_string(),
                Entry::PodAddress { pod, v6 } => {
                    let name = self.pod_name(pod)?;
                    let family = family(self.v6(*v6));
                    let pod = self.cluster.pod(&name)?;
                    pod.addresses
                        .iter()
                        .find(|a| IpFamily::of(a) == family)?
                        .to_string()
                }
                Entry::Outside { v6 } => outside_address(self.v6(*v6)).to_string(),
                Entry::Claimed { claim, v6 } => match self.claim(claim, Some(*v6)) {
                    Some((address, _)) => address.to_string(),
                    None => floating_address(0, self.v6(*v6)).to_string(),
                },
                Entry::Bad(BadEntry::Cidr) => "203.0.113.0/24".into(),
                Entry::Bad(BadEntry::NotAnAddress) => "not-an-ip".into(),
                Entry::Bad(BadEntry::Empty) => String::new(),
            };
            texts.push(text);
        }
        Some(serde_json::to_string(&texts).expect("strings serialise"))
    }

    /// The target as the scenario names it, and its address now.
    fn target(&self, target: &Target) -> Option<(String, IpAddr)> {
        match target {
            Target::Floating { slot, v6 } => {
                let address = floating_address(*slot, self.v6(*v6));
                Some((address.to_string(), address))
            }
            Target::Outside { v6 } => {
                let address = outside_address(self.v6(*v6));
                Some((address.to_string(), address))
            }
            // Slot 0 of the floating pool while nobody claims anything.
            Target::Claimed { claim, v6 } => {
                let address = match self.claim(claim, Some(*v6)) {
                    Some((address, _)) => address,
                    None => floating_address(0, self.v6(*v6)),
                };
                Some((address.to_string(), address))
            }
            Target::Member { member, v6 } => {
                let members = self.members();
                let name = &members[member.index(members.len())];
                let v6 = self.v6(*v6);
                let address = self.member_address(name, family(v6))?;
                let text = if v6 {
                    format!("{name}/v6")
                } else {
                    name.clone()
                };
                Some((text, address))
            }
        }
    }

    fn member_address(&self, name: &str, family: IpFamily) -> Option<IpAddr> {
        if let Some(pod) = self.cluster.pod(name) {
            return pod
                .addresses
                .iter()
                .copied()
                .find(|a| IpFamily::of(a) == family);
        }
        let network = &self.cluster.config().network;
        network
            .node(name)
            .or_else(|| network.external(name))
            .and_then(|host| host.of_family(family))
    }

    fn sender(&self, from: &proptest::sample::Index) -> String {
        let members = self.members();
        members[from.index(members.len())].clone()
    }

    /// `count` packets from `from` to `(to_text, address)`, to a closed
    /// port when `closed_port` and UDP.
    fn send(
        &mut self,
        from: String,
        (to_text, address): (String, IpAddr),
        protocol: Protocol,
        closed_port: bool,
        count: u32,
    ) -> bool {
        let port = if closed_port && protocol == Protocol::Udp {
            CLOSED_PORT
        } else {
            ECHO_PORT
        };
        let packet = Packet {
            port,
            ..Packet::new(&from, address, protocol)
        };
        let Some(expect) = send_expectation(&self.cluster, &packet) else {
            return false;
        };
        (self.situations).extend(situations::of_send(&self.cluster, &packet, &expect));
        self.steps.push(ScriptStep::Send {
            protocol,
            from,
            to: to_text,
            port,
            count,
            expect,
        });
        // Its conntrack entries stay (keyless GRE: calico::predict::GreTable).
        let _ = self.cluster.sent(&packet);
        true
    }

    fn start_stream(
        &mut self,
        from: String,
        (to_text, address): (String, IpAddr),
        protocol: Protocol,
    ) -> bool {
        let packet = Packet::new(&from, address, protocol);
        let Some(track) = StreamTrack::start(&self.cluster, packet) else {
            return false;
        };
        let name = format!("s{}", self.next_stream);
        self.next_stream += 1;
        self.streams.insert(name.clone(), track);
        self.steps.push(ScriptStep::StartStream {
            name,
            protocol,
            from,
            to: to_text,
        });
        // The stream's first state gets packets too.
        self.wait(SETTLE_WAIT_MS);
        true
    }

    fn stop_stream(&mut self, name: &str) {
        if let Some(track) = self.streams.remove(name) {
            self.cluster.stream_stopped(track.flow(), track.answered());
            (self.situations).extend(situations::of_stream(&track, self.spec.profile));
            self.steps.push(ScriptStep::StopStream {
                name: name.to_string(),
                expect: track.expectation(),
            });
        }
    }
}
