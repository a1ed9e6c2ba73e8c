//! Replaying a scenario's steps in order: references must name what exists at
//! that step (nodes, live pods, running streams), and every pod set-up and
//! annotation change goes through the Calico model, so one that Calico would
//! refuse is an error unless the step expects exactly that error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use super::limits::{MAX_EXTERNALS, MAX_NODES};
use super::load::{HostKind, Loader};
use super::located::Spanned;
use super::model::*;
use super::raw::*;
use super::risky::{risky_floating_ip, Holder, LiveIndex};
use super::values::{Delivery, Loss, Name};
use crate::calico::{
    cni_add, cni_del, felix_ip_nats, felix_route_panic, CniNetworkConfig, IpFamily, IpPool, Ipam,
    PodPhase, PodRequest, PodSetupError, FLOATING_IPS_ANNOTATION,
};
use crate::check::{StreamExpectation, TrafficExpectation};
use crate::vocab::addressing::{external_address, node_uplink};

/// A step that checks nothing passes whatever the dataplane does.
const EMPTY_EXPECT: &str =
    "this step's `expect` checks nothing, so it would pass whatever happens: say what must be observed";

struct LivePod {
    addresses: Vec<IpAddr>,
    annotations: BTreeMap<String, String>,
    namespace: String,
    phase: PodPhase,
    /// The floating IPs Felix has for it now.
    floating_ips: Vec<IpAddr>,
}

impl Loader<'_> {
    pub(super) fn steps(
        &mut self,
        raw: &RawScenario,
        cni: &CniNetworkConfig,
        pools: &[IpPool],
        hosts: &BTreeMap<String, HostKind>,
    ) -> Vec<Step> {
        self.check_scale(raw);
        let features = cni.feature_control;
        let dual_stack = raw.cluster.dual_stack;
        // Pods made anywhere in the scenario, for expectations that name them.
        let mut pods_made: Vec<Option<(Pod, Option<PathBuf>)>> = Vec::new();
        for step in &raw.steps {
            pods_made.push(match &step.value {
                RawStep::CreatePod(create) => self.pod_of(create, step),
                _ => None,
            });
        }
        let ever: BTreeSet<String> = pods_made
            .iter()
            .flatten()
            .map(|(p, _)| p.name.clone())
            .collect();
        let mut ipam = Ipam::new(pools.to_vec());
        let mut live: BTreeMap<String, LivePod> = BTreeMap::new();
        let mut index = LiveIndex::default();
        let mut streams: BTreeMap<String, &Spanned<Name>> = BTreeMap::new();
        let mut steps = Vec::new();

        for (step, made) in raw.steps.iter().zip(pods_made) {
            match &step.value {
                // Expanded into createPod steps before replay (scenario/bulk.rs).
                RawStep::CreatePods(_) => {}
                RawStep::CreatePod(create) => {
                    let Some((pod, manifest)) = made else {
                        continue;
                    };
                    // Errors about manifest-sourced values point at the step's `manifest:`.
                    let name_span: &Spanned<_> = match (&create.name, &create.manifest) {
                        (Some(n), _) => &n.index_only(),
                        (None, Some(m)) => &m.index_only(),
                        _ => &step.index_only(),
                    };
                    if let Some(kind) = hosts.get(&pod.name) {
                        let what = if *kind == HostKind::Node {
                            "a node"
                        } else {
                            "an external host"
                        };
                        self.error_at(
                            name_span,
                            format!("duplicate name `{}`: already {what}", pod.name),
                        );
                        continue;
                    }
                    if live.contains_key(&pod.name) {
                        self.error_at(
                            name_span,
                            format!("pod `{}` already exists at this step", pod.name),
                        );
                        continue;
                    }
                    if hosts.get(&pod.node) != Some(&HostKind::Node) {
                        let at = match (&create.node, &create.manifest) {
                            (Some(n), _) => n.index_only(),
                            (None, Some(m)) => m.index_only(),
                            _ => step.index_only(),
                        };
                        self.error_at(&at, format!("unknown node `{}`", pod.node));
                        continue;
                    }
                    let request = PodRequest {
                        namespace: &pod.namespace,
                        name: &pod.name,
                        node: &pod.node,
                        annotations: &pod.annotations,
                    };
                    let expect_error = create.expect.as_ref().map(|e| e.error.clone());
                    let verdict = cni_add(&mut ipam, &features, dual_stack, &request);
                    let annotation_at = create
                        .annotations
                        .get(FLOATING_IPS_ANNOTATION)
                        .map(|v| v.index_only())
                        .or_else(|| create.manifest.as_ref().map(|m| m.index_only()))
                        .unwrap_or_else(|| step.index_only());
                    match (verdict, &expect_error) {
                        (Ok(wep), None) => {
                            // The endpoint written is the datastore's
                            // conversion, which is what Felix gets.
                            let floating_ips = wep.ip_nats.iter().map(|p| p.external).collect();
                            let new_pod = LivePod {
                                addresses: wep.addresses,
                                annotations: pod.annotations.clone(),
                                namespace: pod.namespace.clone(),
                                phase: PodPhase::Running,
                                floating_ips,
                            };
                            self.warn_risky(&annotation_at, &pod.name, &new_pod, &index, raw);
                            index.add(&pod.name, &new_pod.addresses, &new_pod.floating_ips);
                            live.insert(pod.name.clone(), new_pod);
                        }
                        (Ok(_), Some(expected)) => {
                            cni_del(&mut ipam, &pod.namespace, &pod.name);
                            self.error_at(step, format!(
                                "the step expects pod set-up to fail with `{expected}`, but Calico accepts pod `{}`",
                                pod.name
                            ));
                        }
                        (Err(error), None) => {
                            let at = match error {
                                PodSetupError::Annotation(_) => annotation_at,
                                PodSetupError::Ipam(_) => step.index_only(),
                            };
                            self.error_at(&at, format!(
                                "Calico refuses to set up pod `{}`: {error} (add `expect: {{error: ...}}` to the step if that is the point)",
                                pod.name
                            ));
                        }
                        (Err(error), Some(expected)) => {
                            if !error.to_string().contains(expected.as_str()) {
                                self.error_at(step, format!(
                                    "the step expects the error `{expected}`, but Calico fails with `{error}`"
                                ));
                            }
                        }
                    }
                    steps.push(Step::CreatePod(CreatePod {
                        pod,
                        manifest,
                        expect_error,
                    }));
                }
                RawStep::DeletePod(name) => {
                    match live.remove(name.as_str()) {
                        Some(pod) => {
                            index.remove(name.as_str(), &pod.addresses, &pod.floating_ips);
                            cni_del(&mut ipam, &pod.namespace, name.as_str());
                        }
                        None => self
                            .error_at(name, format!("no pod `{}` exists at this step", name.value)),
                    }
                    steps.push(Step::DeletePod(name.to_string()));
                }
                RawStep::Annotate(annotate) => {
                    let value = match (&annotate.floating_ips, annotate.remove) {
                        (Some(v), false) => Some(v),
                        (None, true) => None,
                        _ => {
                            self.error_at(
                                step,
                                "annotate takes either `floatingIPs` or `remove: true`",
                            );
                            continue;
                        }
                    };
                    let expect_error = annotate.expect.as_ref().map(|e| e.error.clone());
                    match live.get_mut(annotate.pod.as_str()) {
                        None => self.error_at(
                            &annotate.pod,
                            format!("no pod `{}` exists at this step", annotate.pod.value),
                        ),
                        Some(pod) => {
                            // A pod update reaches Felix through the datastore
                            // conversion, not through the CNI plugin.
                            let felix = raw.cluster.felix.floating_ips;
                            let verdict =
                                felix_ip_nats(value.map(|v| v.as_str()), &pod.addresses, pod.phase)
                                    .and_then(|nats| match &nats {
                                        Some(n) => {
                                            felix_route_panic(&n.ip_nats, felix).map(|()| nats)
                                        }
                                        None => Ok(nats),
                                    });
                            match (verdict, &expect_error, value) {
                                (Ok(nats), None, _) => {
                                    match value {
                                        Some(v) => {
                                            pod.annotations.insert(FLOATING_IPS_ANNOTATION.into(), v.value.clone());
                                        }
                                        None => {
                                            pod.annotations.remove(FLOATING_IPS_ANNOTATION);
                                        }
                                    }
                                    let nats = nats.unwrap_or_default();
                                    index.remove(annotate.pod.as_str(), &pod.addresses, &pod.floating_ips);
                                    pod.floating_ips = nats.ip_nats.iter().map(|p| p.external).collect();
                                    index.add(annotate.pod.as_str(), &pod.addresses, &pod.floating_ips);
                                    let at = value.map_or_else(|| step.index_only(), |v| v.index_only());
                                    for entry in &nats.dropped {
                                        self.warn_at(&at, format!(
                                            "Calico drops `{entry}` silently (not a plain IP address, or a family pod `{}` has no address of)",
                                            annotate.pod.value
                                        ));
                                    }
                                    if let Some(pod) = live.get(annotate.pod.as_str()) {
                                        self.warn_risky(&at, annotate.pod.as_str(), pod, &index, raw);
                                    }
                                }
                                (Ok(_), Some(expected), _) => self.error_at(step, format!(
                                    "the step expects the error `{expected}`, but Calico accepts this annotation"
                                )),
                                (Err(error), None, Some(v)) => self.error_at(v, format!(
                                    "Calico rejects this floating-IP annotation: {error} (add `expect: {{error: ...}}` to the step if that is the point)"
                                )),
                                (Err(error), Some(expected), _) => {
                                    if !error.to_string().contains(expected.as_str()) {
                                        self.error_at(step, format!(
                                            "the step expects the error `{expected}`, but Calico fails with `{error}`"
                                        ));
                                    }
                                }
                                (Err(_), None, None) => {}
                            }
                        }
                    }
                    steps.push(Step::Annotate(Annotate {
                        pod: annotate.pod.to_string(),
                        floating_ips: value.map(|v| v.value.clone()),
                        expect_error,
                    }));
                }
                RawStep::SetPhase(set) => {
                    match live.get_mut(set.pod.as_str()) {
                        Some(pod) => pod.phase = set.phase,
                        None => self.error_at(
                            &set.pod,
                            format!("no pod `{}` exists at this step", set.pod.value),
                        ),
                    }
                    steps.push(Step::SetPhase(SetPhase {
                        pod: set.pod.to_string(),
                        phase: set.phase,
                    }));
                }
                RawStep::Send(send) => {
                    self.check_send_limits(send);
                    self.check_endpoints(&send.from, &send.to, hosts, &live, dual_stack);
                    self.check_port(send.protocol, send.port.as_ref());
                    self.check_delivery(send.expect.delivered_to.as_ref(), &ever);
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
                    steps.push(Step::Send(Send {
                        protocol: send.protocol,
                        from: send.from.to_string(),
                        to: send.to.value.clone(),
                        count: send.count.as_ref().map_or(DEFAULT_COUNT, |c| c.value),
                        interval: send.interval.as_ref().map_or(DEFAULT_INTERVAL, |d| d.0),
                        port: send.port.as_ref().map_or(DEFAULT_PORT, |p| p.value),
                        expect,
                    }));
                }
                RawStep::StartStream(start) => {
                    self.check_interval(start.interval.as_ref());
                    self.check_endpoints(&start.from, &start.to, hosts, &live, dual_stack);
                    self.check_port(start.protocol, start.port.as_ref());
                    if streams
                        .insert(start.name.to_string(), &start.name)
                        .is_some()
                    {
                        self.error_at(
                            &start.name,
                            format!("stream `{}` is already running", start.name.value),
                        );
                    }
                    steps.push(Step::StartStream(StartStream {
                        name: start.name.to_string(),
                        protocol: start.protocol,
                        from: start.from.to_string(),
                        to: start.to.value.clone(),
                        interval: start.interval.as_ref().map_or(DEFAULT_INTERVAL, |d| d.0),
                        port: start.port.as_ref().map_or(DEFAULT_PORT, |p| p.value),
                    }));
                }
                RawStep::StopStream(stop) => {
                    if streams.remove(stop.name.as_str()).is_none() {
                        self.error_at(&stop.name, format!("stream `{}` is not running at this step (never started, or already stopped)", stop.name.value));
                    }
                    self.check_delivery(stop.expect.delivered_to.as_ref(), &ever);
                    if let Some(at) = &stop.expect.after_move_at {
                        if !ever.contains(at.as_str()) {
                            self.error_at(
                                at,
                                format!("no pod named `{}` in this scenario", at.value),
                            );
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
                    steps.push(Step::StopStream(StopStream {
                        name: stop.name.to_string(),
                        expect,
                    }));
                }
                RawStep::Wait(duration) => {
                    self.check_wait(duration);
                    steps.push(Step::Wait(duration.0))
                }
            }
        }
        for (name, start) in streams {
            self.error_at(start, format!("stream `{name}` is never stopped"));
        }
        steps
    }

    /// Warnings for floating IPs Calico accepts but that shadow something:
    /// `pod`'s own against every live pod and host, and every live pod's
    /// against `pod`'s addresses.
    fn warn_risky<T>(
        &mut self,
        at: &Spanned<T>,
        name: &str,
        pod: &LivePod,
        index: &LiveIndex,
        raw: &RawScenario,
    ) {
        let families = [IpFamily::V4, IpFamily::V6];
        let nodes: Vec<(String, IpAddr)> = if pod.floating_ips.is_empty() {
            Vec::new()
        } else {
            raw.cluster
                .nodes
                .value
                .iter()
                // Past the limits (already an error) the addressing plan has no
                // address to compare with.
                .take(MAX_NODES)
                .enumerate()
                .flat_map(|(i, n)| {
                    families.map(|f| (format!("node `{}`", n.value.name), node_uplink(i, f)))
                })
                .chain(
                    raw.cluster
                        .externals
                        .iter()
                        .take(MAX_EXTERNALS)
                        .enumerate()
                        .flat_map(|(j, x)| {
                            families.map(|f| {
                                (
                                    format!("external host `{}`", x.value.name),
                                    external_address(j, f),
                                )
                            })
                        }),
                )
                .collect()
        };
        let mut warnings = Vec::new();
        for external in &pod.floating_ips {
            let pods = LiveIndex::others(&index.own, external, name).map(|other| Holder {
                what: format!("pod `{other}`"),
                address: external,
            });
            let hosts =
                nodes
                    .iter()
                    .filter(|(_, address)| address == external)
                    .map(|(what, address)| Holder {
                        what: what.clone(),
                        address,
                    });
            warnings.extend(risky_floating_ip(*external, name, pods.chain(hosts)));
        }
        for address in &pod.addresses {
            for other in LiveIndex::others(&index.floating, address, name) {
                let mine = [Holder {
                    what: format!("pod `{name}`"),
                    address,
                }];
                warnings.extend(
                    risky_floating_ip(*address, other, mine)
                        .into_iter()
                        .filter(|w| w.contains("'s address")),
                );
            }
        }
        for warning in warnings {
            self.warn_at(at, warning);
        }
    }

    fn check_endpoints(
        &mut self,
        from: &Spanned<Name>,
        to: &Spanned<Target>,
        hosts: &BTreeMap<String, HostKind>,
        live: &BTreeMap<String, LivePod>,
        dual_stack: bool,
    ) {
        if !hosts.contains_key(from.as_str()) && !live.contains_key(from.as_str()) {
            self.error_at(
                from,
                format!(
                    "unknown sender `{}`: no node, external host or live pod has this name",
                    from.value
                ),
            );
        }
        if let Target::Host { name, family } = &to.value {
            let is_pod = live.contains_key(name);
            if !hosts.contains_key(name) && !is_pod {
                self.error_at(
                    to,
                    format!(
                        "unknown target `{name}`: no node, external host or live pod has this name"
                    ),
                );
            } else if is_pod && *family == IpFamily::V6 && !dual_stack {
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
