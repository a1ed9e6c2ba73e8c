//! Reading a scenario's steps in order: references must name what exists at
//! that step (nodes, live pods, running streams), limits hold, and every step
//! becomes a [`Step`]. What Calico makes of each step comes from the Calico
//! model ([`super::oracle`]): a pod set-up or annotation Calico refuses is an
//! error unless the step expects exactly that error, and every expectation of
//! traffic is checked against the model's prediction, under each conntrack
//! profile the scenario runs with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use super::load::{HostKind, Loader};
use super::located::Spanned;
use super::model::*;
use super::oracle::{checking_expectations, model_config, Oracle, Verdict};
use super::raw::*;
use super::risky::LiveIndex;
use super::values::{Delivery, Loss, Name};
use crate::calico::cluster::{ExpectationMismatch, RefusedBy};
use crate::calico::FLOATING_IPS_ANNOTATION;
use crate::check::{StreamExpectation, TrafficExpectation};
use crate::vocab::IpFamily;

/// A step that checks nothing passes whatever the dataplane does.
const EMPTY_EXPECT: &str =
    "this step's `expect` checks nothing, so it would pass whatever happens: say what must be observed";

/// What reading the steps needs besides the loader.
pub(super) struct Reading<'a> {
    hosts: &'a BTreeMap<String, HostKind>,
    /// Pods made anywhere in the scenario, for expectations that name them.
    ever: BTreeSet<String>,
    pub(super) oracle: Oracle,
    pub(super) index: LiveIndex,
    /// Running streams: where each was started, and its interval.
    streams: BTreeMap<String, (&'a Spanned<Name>, std::time::Duration)>,
    /// Per step, where a disagreement with the model's prediction points.
    traffic_at: Vec<Option<Spanned<()>>>,
    /// The scenario's `updateOrder`.
    update_order: crate::calico::UpdateOrder,
}

impl Loader<'_> {
    pub(super) fn steps(
        &mut self,
        raw: &RawScenario,
        cluster: &Cluster,
        hosts: &BTreeMap<String, HostKind>,
        profiles: &[ConntrackProfile],
        calico: crate::calico::Release,
    ) -> Vec<Step> {
        self.check_scale(raw);
        let pods_made: Vec<Option<(Pod, Option<PathBuf>)>> = raw
            .steps
            .iter()
            .map(|step| match &step.value {
                RawStep::CreatePod(create) => self.pod_of(create, step),
                _ => None,
            })
            .collect();
        let nodes = || cluster.nodes.iter().map(String::as_str);
        let first = profiles.first().copied().unwrap_or_default();
        let mut reading = Reading {
            hosts,
            ever: pods_made
                .iter()
                .flatten()
                .map(|(p, _)| p.name.clone())
                .collect(),
            oracle: Oracle::new(model_config(cluster, nodes(), first, calico)),
            index: LiveIndex::default(),
            streams: BTreeMap::new(),
            traffic_at: Vec::new(),
            update_order: raw.update_order.unwrap_or_default(),
        };
        let mut steps = Vec::new();
        for (step, made) in raw.steps.iter().zip(pods_made) {
            let traffic_at = match &step.value {
                RawStep::Send(send) => Some(delivery_or(&send.expect.delivered_to, &send.to)),
                RawStep::StopStream(stop) => {
                    Some(delivery_or(&stop.expect.delivered_to, &stop.name))
                }
                RawStep::StartStream(start) => Some(start.to.index_only()),
                _ => None,
            };
            if let Some(read) = self.step(&mut reading, step, made) {
                reading.traffic_at.push(traffic_at);
                steps.push(read);
            }
        }
        for (name, (start, _)) in std::mem::take(&mut reading.streams) {
            self.error_at(start, format!("stream `{name}` is never stopped"));
        }
        // The other profiles: only what traffic sees can differ.
        for profile in profiles.iter().skip(1).filter(|_| checking_expectations()) {
            let mut oracle = Oracle::new(model_config(cluster, nodes(), *profile, calico));
            for (step, at) in steps.iter().zip(&reading.traffic_at) {
                if let (Verdict::Traffic(lines), Some(at)) = (oracle.step(step), at) {
                    for line in lines {
                        self.error_at(
                            at,
                            format!(
                                "under the {} conntrack profile, {line}",
                                profile_name(*profile)
                            ),
                        );
                    }
                }
            }
        }
        steps
    }

    /// One step read (or None when there is nothing to run), its errors reported.
    fn step<'r>(
        &mut self,
        reading: &mut Reading<'r>,
        step: &'r Spanned<RawStep>,
        made: Option<(Pod, Option<PathBuf>)>,
    ) -> Option<Step> {
        let errors = self.errors.len();
        let read = match &step.value {
            // Expanded into createPod and send steps before reading (scenario/bulk.rs).
            RawStep::CreatePods(_) | RawStep::Sends(_) => return None,
            RawStep::CreatePod(create) => self.create_pod(reading, step, create, made?)?,
            RawStep::DeletePod(name) => {
                if reading.oracle.cluster().pod(name.as_str()).is_none() {
                    self.error_at(name, format!("no pod `{}` exists at this step", name.value));
                }
                Step::DeletePod(name.to_string())
            }
            RawStep::Annotate(annotate) => self.annotate(reading, step, annotate)?,
            RawStep::SetPhase(set) => {
                if reading.oracle.cluster().pod(set.pod.as_str()).is_none() {
                    let message = format!("no pod `{}` exists at this step", set.pod.value);
                    self.error_at(&set.pod, message);
                }
                Step::SetPhase(SetPhase {
                    pod: set.pod.to_string(),
                    phase: set.phase,
                })
            }
            RawStep::Send(send) => self.send(reading, send),
            RawStep::StartStream(start) => self.start_stream(reading, start),
            RawStep::StopStream(stop) => self.stop_stream(reading, stop),
            RawStep::Wait(RawWait::Time(duration)) => {
                self.check_wait(duration);
                Step::Wait(Wait::Time(duration.0))
            }
            RawStep::Wait(RawWait::Packets(wait)) => self.packet_wait(reading, wait),
        };
        // A step the language already refused says nothing more.
        if self.errors.len() == errors {
            self.judge(reading, step, &read);
        }
        Some(read)
    }

    /// The model's verdict on `read`, reported where it belongs.
    fn judge(&mut self, reading: &mut Reading<'_>, step: &Spanned<RawStep>, read: &Step) {
        let before = match read {
            Step::Annotate(Annotate { pod: name, .. })
            | Step::SetPhase(SetPhase { pod: name, .. })
            | Step::DeletePod(name) => Some(name.clone()),
            _ => None,
        }
        .and_then(|name| reading.oracle.cluster().pod(&name).cloned());
        match reading.oracle.step(read) {
            Verdict::Pod(outcome) => match *outcome {
                Err(mismatch) => {
                    let at = self.mismatch_at(step, &mismatch);
                    self.error_at(&at, mismatch.to_string());
                }
                Ok(effects) => {
                    self.warn_race(reading, step);
                    if let Some(pod) = &before {
                        reading
                            .index
                            .remove(&pod.name, &pod.addresses, &floating_ips(pod));
                    }
                    let annotated = annotation_at(step);
                    for entry in &effects.dropped_entries {
                        let pod = read.cluster_step().map(|s| s.pod().to_string());
                        self.warn_at(&annotated, format!(
                        "Calico drops `{entry}` silently (not a plain IP address, or a family pod `{}` has no address of)",
                        pod.unwrap_or_default()
                    ));
                    }
                    let name = read.cluster_step().map(|s| s.pod().to_string());
                    if let Some(pod) = name.and_then(|n| reading.oracle.cluster().pod(&n).cloned())
                    {
                        let fips = floating_ips(&pod);
                        if !matches!(read, Step::SetPhase(_)) {
                            self.warn_risky(
                                &annotated,
                                &pod.name,
                                &pod.addresses,
                                &fips,
                                &reading.oracle.cluster().config().network,
                                &reading.index,
                            );
                        }
                        reading.index.add(&pod.name, &pod.addresses, &fips);
                    }
                }
            },
            // After an error, the model's cluster is not the one the
            // scenario meant: its verdicts on traffic would only repeat it.
            Verdict::Traffic(_) if !self.errors.is_empty() || !checking_expectations() => {}
            Verdict::Traffic(lines) => {
                let at = reading.traffic_at_now(step);
                for line in lines {
                    self.error_at(&at, line);
                }
            }
            Verdict::Nothing => {}
        }
    }

    /// A running stream reaches, after this step, a node that gets the
    /// floating IP's DNAT in this same step (the floating IP moved there
    /// from another node, or was claimed there), in Felix's update order:
    /// each node applies its routes in parallel with its NAT
    /// (felix/dataplane/linux/int_dataplane.go `InternalDataplane.apply`),
    /// so the new route can bring a packet there before the DNAT exists;
    /// that entry, without NAT, then pins the stream untranslated (nftables
    /// and iptables do so at random). Which comes first is a race the model
    /// cannot say: the scenario should run `updateOrder: ordered`.
    fn warn_race(&mut self, reading: &Reading<'_>, step: &Spanned<RawStep>) {
        if reading.update_order != crate::calico::UpdateOrder::Felix {
            return;
        }
        for floating_ip in reading.oracle.raced_dnat() {
            self.warn_at(
                step,
                format!(
                    "a running stream to {floating_ip} reaches a node that gets its DNAT at this step: in Felix's update order the node's route and its DNAT race, and a packet that beats the DNAT pins the stream there untranslated; write `updateOrder: ordered` for a stream that must follow the change"
                ),
            );
        }
    }

    /// Where a step's outcome that differs from its expectation is reported:
    /// Calico's words about an annotation at the annotation, the rest at the step.
    fn mismatch_at(&self, step: &Spanned<RawStep>, mismatch: &ExpectationMismatch) -> Spanned<()> {
        match mismatch.refused_by() {
            Some(RefusedBy::CniAnnotation | RefusedBy::Conversion | RefusedBy::FelixPanic) => {
                annotation_at(step)
            }
            _ => step.index_only(),
        }
    }

    fn create_pod(
        &mut self,
        reading: &mut Reading<'_>,
        step: &Spanned<RawStep>,
        create: &RawCreatePod,
        (pod, manifest): (Pod, Option<PathBuf>),
    ) -> Option<Step> {
        // Errors about manifest-sourced values point at the step's `manifest:`.
        let name_span: Spanned<()> = match (&create.name, &create.manifest) {
            (Some(n), _) => n.index_only(),
            (None, Some(m)) => m.index_only(),
            _ => step.index_only(),
        };
        if let Some(kind) = reading.hosts.get(&pod.name) {
            let what = if *kind == HostKind::Node {
                "a node"
            } else {
                "an external host"
            };
            let message = format!("duplicate name `{}`: already {what}", pod.name);
            self.error_at(&name_span, message);
            return None;
        }
        if reading.oracle.cluster().pod(&pod.name).is_some() {
            let message = format!("pod `{}` already exists at this step", pod.name);
            self.error_at(&name_span, message);
            return None;
        }
        if reading.hosts.get(&pod.node) != Some(&HostKind::Node) {
            let at = match (&create.node, &create.manifest) {
                (Some(n), _) => n.index_only(),
                (None, Some(m)) => m.index_only(),
                _ => step.index_only(),
            };
            self.error_at(&at, format!("unknown node `{}`", pod.node));
            return None;
        }
        Some(Step::CreatePod(CreatePod {
            pod,
            manifest,
            expect_error: create.expect.as_ref().map(|e| e.error.clone()),
        }))
    }

    fn annotate(
        &mut self,
        reading: &mut Reading<'_>,
        step: &Spanned<RawStep>,
        annotate: &RawAnnotate,
    ) -> Option<Step> {
        let value = match (&annotate.floating_ips, annotate.remove) {
            (Some(v), false) => Some(v.value.clone()),
            (None, true) => None,
            _ => {
                self.error_at(
                    step,
                    "annotate takes either `floatingIPs` or `remove: true`",
                );
                return None;
            }
        };
        if reading
            .oracle
            .cluster()
            .pod(annotate.pod.as_str())
            .is_none()
        {
            let message = format!("no pod `{}` exists at this step", annotate.pod.value);
            self.error_at(&annotate.pod, message);
        }
        Some(Step::Annotate(Annotate {
            pod: annotate.pod.to_string(),
            floating_ips: value,
            expect_error: annotate.expect.as_ref().map(|e| e.error.clone()),
        }))
    }

    fn send(&mut self, reading: &mut Reading<'_>, send: &RawSend) -> Step {
        self.check_send_limits(send);
        self.check_endpoints(&send.from, &send.to, reading);
        self.check_port(send.protocol, send.port.as_ref());
        self.check_delivery(send.expect.delivered_to.as_ref(), &reading.ever);
        let delivered_to = send.expect.delivered_to.as_ref().map(|d| d.value.clone());
        let loss = send.expect.loss.or(match delivered_to {
            Some(Delivery::Pods(_) | Delivery::OneOf(_)) => Some(Loss::Packets(0)),
            _ => None,
        });
        let expect = TrafficExpectation {
            delivered_to,
            seen_destination: send.expect.seen_destination,
            seen_source: send.expect.seen_source,
            reply_source: send.expect.reply_source.map(|a| a.0),
            loss,
            quoted_destination: send.expect.quoted_destination.map(|a| a.0),
        };
        if expect.is_empty() {
            self.error_at(&send.to, EMPTY_EXPECT.to_string());
        }
        Step::Send(Send {
            protocol: send.protocol,
            from: send.from.to_string(),
            to: send.to.value.clone(),
            count: send.count.as_ref().map_or(DEFAULT_COUNT, |c| c.value),
            interval: send.interval.as_ref().map_or(DEFAULT_INTERVAL, |d| d.0),
            port: send.port.as_ref().map_or(DEFAULT_PORT, |p| p.value),
            expect,
        })
    }

    fn start_stream<'r>(&mut self, reading: &mut Reading<'r>, start: &'r RawStartStream) -> Step {
        self.check_interval(start.interval.as_ref());
        self.check_endpoints(&start.from, &start.to, reading);
        self.check_port(start.protocol, start.port.as_ref());
        let interval = start.interval.as_ref().map_or(DEFAULT_INTERVAL, |d| d.0);
        if reading
            .streams
            .insert(start.name.to_string(), (&start.name, interval))
            .is_some()
        {
            let message = format!("stream `{}` is already running", start.name.value);
            self.error_at(&start.name, message);
        }
        Step::StartStream(StartStream {
            name: start.name.to_string(),
            protocol: start.protocol,
            from: start.from.to_string(),
            to: start.to.value.clone(),
            interval,
            port: start.port.as_ref().map_or(DEFAULT_PORT, |p| p.value),
        })
    }

    /// `wait: {stream: s1, packets: 25}`: the stream must be running here.
    fn packet_wait(&mut self, reading: &Reading<'_>, wait: &RawPacketWait) -> Step {
        let interval = match reading.streams.get(wait.stream.as_str()) {
            Some((_, interval)) => *interval,
            None => {
                let message = format!(
                    "stream `{}` is not running at this step (never started, or already stopped): a wait counts the packets of a running stream",
                    wait.stream.value
                );
                self.error_at(&wait.stream, message);
                DEFAULT_INTERVAL
            }
        };
        Step::Wait(Wait::Packets(PacketWait {
            stream: wait.stream.to_string(),
            packets: wait.packets.value,
            within: self.check_packet_wait(wait, interval),
            interval,
        }))
    }

    fn stop_stream(&mut self, reading: &mut Reading<'_>, stop: &RawStopStream) -> Step {
        if reading.streams.remove(stop.name.as_str()).is_none() {
            self.error_at(
                &stop.name,
                format!(
                    "stream `{}` is not running at this step (never started, or already stopped)",
                    stop.name.value
                ),
            );
        }
        self.check_delivery(stop.expect.delivered_to.as_ref(), &reading.ever);
        if let Some(at) = &stop.expect.after_move_at {
            if !reading.ever.contains(at.as_str()) {
                self.error_at(at, format!("no pod named `{}` in this scenario", at.value));
            }
        }
        let expect = StreamExpectation {
            delivered_to: stop.expect.delivered_to.as_ref().map(|d| d.value.clone()),
            loss: stop.expect.loss,
            after_move_at: stop.expect.after_move_at.as_ref().map(|a| a.to_string()),
        };
        if expect.is_empty() {
            self.error_at(&stop.name, EMPTY_EXPECT.to_string());
        }
        Step::StopStream(StopStream {
            name: stop.name.to_string(),
            expect,
        })
    }

    fn check_endpoints(
        &mut self,
        from: &Spanned<Name>,
        to: &Spanned<Target>,
        reading: &Reading<'_>,
    ) {
        let cluster = reading.oracle.cluster();
        if !reading.hosts.contains_key(from.as_str()) && cluster.pod(from.as_str()).is_none() {
            self.error_at(
                from,
                format!(
                    "unknown sender `{}`: no node, external host or live pod has this name",
                    from.value
                ),
            );
        }
        if let Target::Host { name, family } = &to.value {
            let is_pod = cluster.pod(name).is_some();
            if !reading.hosts.contains_key(name) && !is_pod {
                self.error_at(
                    to,
                    format!(
                        "unknown target `{name}`: no node, external host or live pod has this name"
                    ),
                );
            } else if is_pod && *family == IpFamily::V6 && !cluster.config().dual_stack {
                self.error_at(
                    to,
                    format!("pod `{name}` has no IPv6 address: the cluster is not dual stack"),
                );
            }
        }
    }

    fn check_port(&mut self, protocol: Protocol, port: Option<&Spanned<u16>>) {
        if let Some(port) = port {
            if !protocol.has_ports() {
                self.error_at(port, "`port` applies to udp, tcp and sctp only");
            }
        }
    }

    fn check_delivery(&mut self, delivery: Option<&Spanned<Delivery>>, ever: &BTreeSet<String>) {
        if let Some(spanned) = delivery {
            if let Delivery::Pods(pods) | Delivery::OneOf(pods) = &spanned.value {
                for pod in pods {
                    if !ever.contains(pod) {
                        self.error_at(spanned, format!("no pod named `{pod}` in this scenario"));
                    }
                }
            }
        }
    }
}

impl Reading<'_> {
    /// Where the current step's disagreement with the model points.
    fn traffic_at_now(&self, step: &Spanned<RawStep>) -> Spanned<()> {
        match &step.value {
            RawStep::Send(send) => delivery_or(&send.expect.delivered_to, &send.to),
            RawStep::StopStream(stop) => delivery_or(&stop.expect.delivered_to, &stop.name),
            RawStep::StartStream(start) => start.to.index_only(),
            _ => step.index_only(),
        }
    }
}

/// The `deliveredTo` of an expectation when it has one, else `fallback`.
fn delivery_or<T>(delivered_to: &Option<Spanned<Delivery>>, fallback: &Spanned<T>) -> Spanned<()> {
    delivered_to
        .as_ref()
        .map_or_else(|| fallback.index_only(), |d| d.index_only())
}

/// Where Calico's words about a step's floating-IP annotation point: the
/// annotation's value, else the pod's manifest, else the step.
fn annotation_at(step: &Spanned<RawStep>) -> Spanned<()> {
    match &step.value {
        RawStep::CreatePod(create) => create
            .annotations
            .get(FLOATING_IPS_ANNOTATION)
            .map(|v| v.index_only())
            .or_else(|| create.manifest.as_ref().map(|m| m.index_only()))
            .unwrap_or_else(|| step.index_only()),
        RawStep::Annotate(annotate) => annotate
            .floating_ips
            .as_ref()
            .map_or_else(|| step.index_only(), |v| v.index_only()),
        _ => step.index_only(),
    }
}

/// The floating IPs Felix has for `pod`.
fn floating_ips(pod: &crate::calico::cluster::Pod) -> Vec<IpAddr> {
    pod.felix.ip_nats().iter().map(|p| p.external).collect()
}

fn profile_name(profile: ConntrackProfile) -> &'static str {
    match profile {
        ConntrackProfile::Calico => "calico",
        ConntrackProfile::Strict => "strict",
    }
}
