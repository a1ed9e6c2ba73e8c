//! One scenario on one backend and profile: build the lab, replay the steps
//! against the Calico model, the control plane and the traffic engine, check
//! every expectation, and tear the lab down (or keep it when asked).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::calico::{self, IpFamily, Ipam, PodRequest, WorkloadEndpoint};
use crate::check::{self, AddressBook, CheckLine, MigrationFigures};
use crate::control::{ClusterState, ControlPlane, LabMembers};
use crate::dataplane::{self, BackendKind};
use crate::lab::netns::Netns;
use crate::lab::spec::FABRIC;
use crate::lab::{Lab, LabSpec, MemberKind, NodeSpec, PodSpec};
use crate::report::{MigrationReport, Outcome, ScenarioResult, StepResult};
use crate::scenario::{
    Annotate, ConntrackProfile, CreatePod, Pod, Scenario, Send, StartStream, Step, StopStream,
    Target, TrafficExpectation,
};
use crate::traffic::{
    EndpointKind, EndpointSpec, ProbeSpec, StreamHandle, StreamSpec, TrafficEngine,
};

use super::diagnostics;
use super::observe::{delivery_observed, stream_packets};
use crate::traffic::now_unix_ns;

/// A check is tried again while it fails, like a connectivity checker: routes
/// and rules may need a moment after a change. Bounded in count and time.
const MAX_ATTEMPTS: u32 = 3;
const RETRY_BUDGET: Duration = Duration::from_secs(6);
/// Bucket width of the per-pod timeline of a migration.
const TIMELINE_BUCKET_MS: u64 = 10;

/// Where a run writes, and whether a failing lab stays up.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Diagnostics bundles and pcaps of failing steps go under here.
    pub report_dir: Option<PathBuf>,
    pub keep_on_failure: bool,
}

/// Run `scenario` on `backend` with `profile`. Never panics on a scenario
/// failure: the result says what happened.
pub async fn run_scenario(
    scenario: &Scenario,
    backend: BackendKind,
    profile: ConntrackProfile,
    lab_name: &str,
    options: &RunOptions,
) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult {
        name: scenario.name.clone(),
        file: scenario.source.clone(),
        backend: backend.to_string(),
        profile: profile_name(profile).to_string(),
        outcome: Outcome::Passed,
        duration_ms: 0,
        steps: Vec::new(),
        migrations: Vec::new(),
        kept_lab: None,
    };
    match ScenarioRun::start(scenario, backend, profile, lab_name, options).await {
        Err(reason) => result.outcome = Outcome::Error { reason },
        Ok(mut run) => {
            result.outcome = run.replay(&mut result).await;
            let keep = options.keep_on_failure && !result.outcome.is_pass();
            if keep {
                result.kept_lab = Some(run.lab.name().to_string());
                run.keep();
            } else if let Err(reason) = run.finish() {
                if result.outcome.is_pass() {
                    result.outcome = Outcome::Error { reason };
                }
            }
        }
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

/// Build `scenario`'s cluster and replay its pod and annotation steps (no
/// traffic, no waits), then leave the lab up. Returns what was built, for people.
pub async fn bring_up(
    scenario: &Scenario,
    backend: BackendKind,
    profile: ConntrackProfile,
    lab_name: &str,
) -> Result<String, String> {
    let mut run =
        ScenarioRun::start(scenario, backend, profile, lab_name, &RunOptions::default()).await?;
    for (index, step) in scenario.steps.iter().enumerate() {
        let outcome = match step {
            Step::CreatePod(create) => run.create_pod(create).await,
            Step::DeletePod(name) => run.delete_pod(name).await,
            Step::Annotate(annotate) => run.annotate(annotate).await,
            Step::Send(_) | Step::StartStream(_) | Step::StopStream(_) | Step::Wait(_) => Ok(()),
        };
        if let Err(message) = outcome {
            let _ = run.finish();
            return Err(format!(
                "step {} ({}): {message}",
                index + 1,
                summarise(step)
            ));
        }
    }
    let mut summary = String::new();
    for (name, endpoint) in &run.endpoints {
        let addresses: Vec<String> = endpoint.addresses.iter().map(ToString::to_string).collect();
        let floating: Vec<String> = endpoint
            .ip_nats
            .iter()
            .map(|nat| nat.external.to_string())
            .collect();
        summary.push_str(&format!(
            "pod {name} on {}: {} floating IPs [{}]\n",
            endpoint.node,
            addresses.join(", "),
            floating.join(", ")
        ));
    }
    run.keep();
    Ok(summary)
}

pub fn profile_name(profile: ConntrackProfile) -> &'static str {
    match profile {
        ConntrackProfile::Calico => "calico",
        ConntrackProfile::Strict => "strict",
    }
}

/// A stream that is running, and what a move during it needs.
struct RunningStream {
    spec: StartStream,
    target: IpAddr,
    handle: StreamHandle,
    started_unix_ns: u64,
}

/// A change of the pod that receives a floating IP.
#[derive(Clone, Debug)]
struct Move {
    floating_ip: IpAddr,
    from: Option<String>,
    to: Option<String>,
    at_unix_ns: u64,
}

struct ScenarioRun<'a> {
    scenario: &'a Scenario,
    lab: Lab,
    engine: TrafficEngine,
    control: ControlPlane,
    backend: BackendKind,
    ipam: Ipam,
    /// Live pods (scenario view, with their current annotations).
    pods: BTreeMap<String, Pod>,
    /// Their workload endpoints, as Calico's datastore holds them.
    endpoints: BTreeMap<String, WorkloadEndpoint>,
    streams: BTreeMap<String, RunningStream>,
    moves: Vec<Move>,
    /// IPAM blocks the lab routes already.
    routed_blocks: std::collections::BTreeSet<ipnet::IpNet>,
    /// Which pod receives each floating IP now.
    owners: BTreeMap<IpAddr, String>,
    options: RunOptions,
}

impl<'a> ScenarioRun<'a> {
    async fn start(
        scenario: &'a Scenario,
        backend: BackendKind,
        profile: ConntrackProfile,
        lab_name: &str,
        options: &RunOptions,
    ) -> Result<ScenarioRun<'a>, String> {
        let cluster = &scenario.cluster;
        let spec = LabSpec {
            name: lab_name.to_string(),
            nodes: cluster
                .nodes
                .iter()
                .map(|name| NodeSpec {
                    name: name.clone(),
                    blocks: Vec::new(),
                })
                .collect(),
            externals: cluster.externals.clone(),
            dual_stack: cluster.dual_stack,
        };
        let lab = Lab::build_for(spec, Some(scenario.source.clone()))
            .await
            .map_err(|e| format!("building the lab: {e}"))?;
        let engine = TrafficEngine::new(lab_name);
        for node in &cluster.nodes {
            let netns = lab.netns(node).map_err(|e| e.to_string())?.clone();
            engine
                .add_endpoint(EndpointSpec {
                    name: node.clone(),
                    netns,
                    kind: EndpointKind::Node,
                    addresses: Vec::new(),
                    interface: None,
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        for external in &cluster.externals {
            let netns = lab.netns(external).map_err(|e| e.to_string())?.clone();
            engine
                .add_endpoint(EndpointSpec::external(external, netns))
                .await
                .map_err(|e| e.to_string())?;
        }
        let members = LabMembers::of(&lab).map_err(|e| e.to_string())?;
        let control = ControlPlane::new(
            std::sync::Arc::new(members),
            dataplane::backend(backend),
            profile,
        );
        Ok(ScenarioRun {
            scenario,
            lab,
            engine,
            control,
            backend,
            ipam: Ipam::new(cluster.pools.clone()),
            pods: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            streams: BTreeMap::new(),
            moves: Vec::new(),
            owners: BTreeMap::new(),
            routed_blocks: Default::default(),
            options: options.clone(),
        })
    }

    /// Run every step in order; stop at the first failing one (later steps build
    /// on it) after writing its diagnostics.
    async fn replay(&mut self, result: &mut ScenarioResult) -> Outcome {
        for (index, step) in self.scenario.steps.iter().enumerate() {
            self.engine.begin_step(index as u32);
            let mut step_result = StepResult {
                index,
                summary: summarise(step),
                passed: true,
                attempts: 1,
                lines: Vec::new(),
                message: None,
                diagnostics: None,
            };
            let outcome = match step {
                Step::CreatePod(create) => self.create_pod(create).await,
                Step::DeletePod(name) => self.delete_pod(name).await,
                Step::Annotate(annotate) => self.annotate(annotate).await,
                Step::Send(send) => self.send(index, send, &mut step_result).await,
                Step::StartStream(start) => self.start_stream(index, start).await,
                Step::StopStream(stop) => self.stop_stream(stop, &mut step_result, result).await,
                Step::Wait(duration) => {
                    tokio::time::sleep(*duration).await;
                    Ok(())
                }
            };
            if let Err(message) = outcome {
                step_result.passed = false;
                step_result.message = Some(message);
            }
            if !step_result.lines.iter().all(CheckLine::passed) {
                step_result.passed = false;
            }
            let passed = step_result.passed;
            if !passed {
                step_result.diagnostics = self.write_diagnostics(index);
            }
            let summary = step_result.summary.clone();
            let message = step_result.message.clone();
            result.steps.push(step_result);
            if !passed {
                self.stop_all_streams().await;
                let mut reason = format!("step {} ({summary}) failed", index + 1);
                if let Some(message) = message {
                    reason.push_str(&format!(": {message}"));
                }
                return Outcome::Failed { reason };
            }
        }
        if !self.streams.is_empty() {
            let names: Vec<String> = self.streams.keys().cloned().collect();
            self.stop_all_streams().await;
            return Outcome::Failed {
                reason: format!("streams never stopped: {}", names.join(", ")),
            };
        }
        Outcome::Passed
    }

    async fn create_pod(&mut self, create: &CreatePod) -> Result<(), String> {
        let pod = &create.pod;
        let request = PodRequest {
            namespace: &pod.namespace,
            name: &pod.name,
            node: &pod.node,
            annotations: &pod.annotations,
        };
        let setup = calico::cni_add(
            &mut self.ipam,
            &self.scenario.cluster.cni_features(),
            self.scenario.cluster.dual_stack,
            &request,
        );
        match (setup, &create.expect_error) {
            (Err(error), Some(expected)) => {
                let text = error.to_string();
                if !text.contains(expected.as_str()) {
                    return Err(format!(
                        "pod set-up failed with `{text}`, expected an error containing `{expected}`"
                    ));
                }
                let leaked = self
                    .ipam
                    .addresses_of(&calico::ipam_handle(&pod.namespace, &pod.name))
                    .to_vec();
                if !leaked.is_empty() {
                    return Err(format!("failed pod set-up leaked addresses {leaked:?}"));
                }
                Ok(())
            }
            (Err(error), None) => Err(format!("pod set-up failed: {error}")),
            (Ok(endpoint), Some(expected)) => {
                // Undo the set-up so nothing of the unexpected pod stays around.
                calico::cni_del(&mut self.ipam, &pod.namespace, &pod.name);
                Err(format!(
                    "pod set-up succeeded with addresses {:?}, expected an error containing `{expected}`",
                    endpoint.addresses
                ))
            }
            (Ok(endpoint), None) => {
                // IPAM may have claimed a block for the node on this or on an
                // earlier (failed) set-up: route every block not routed yet.
                let new_blocks: Vec<_> = self
                    .ipam
                    .node_blocks(&pod.node)
                    .into_iter()
                    .filter(|block| !self.routed_blocks.contains(block))
                    .collect();
                if !new_blocks.is_empty() {
                    self.routed_blocks.extend(new_blocks.iter().copied());
                    self.lab
                        .add_node_blocks(&pod.node, &new_blocks)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let spec = PodSpec::new(
                    &pod.name,
                    &pod.namespace,
                    &pod.node,
                    endpoint.addresses.clone(),
                );
                if let Err(error) = self.lab.add_pod(&spec).await {
                    calico::cni_del(&mut self.ipam, &pod.namespace, &pod.name);
                    return Err(format!("wiring the pod: {error}"));
                }
                let netns = self
                    .lab
                    .netns(&pod.name)
                    .map_err(|e| e.to_string())?
                    .clone();
                self.engine
                    .add_endpoint(EndpointSpec::pod(
                        &pod.name,
                        netns,
                        endpoint.addresses.clone(),
                        "eth0",
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                self.pods.insert(pod.name.clone(), pod.clone());
                self.endpoints.insert(pod.name.clone(), endpoint);
                self.sync_control().await
            }
        }
    }

    async fn delete_pod(&mut self, name: &str) -> Result<(), String> {
        let pod = self
            .pods
            .remove(name)
            .ok_or_else(|| format!("no pod `{name}` is running"))?;
        self.endpoints.remove(name);
        // Felix sees the endpoint go first: rules and routes, then the pod's
        // interface and namespace, then its addresses return to IPAM.
        self.sync_control().await?;
        self.engine
            .remove_endpoint(name)
            .await
            .map_err(|e| e.to_string())?;
        self.lab.remove_pod(name).await.map_err(|e| e.to_string())?;
        calico::cni_del(&mut self.ipam, &pod.namespace, &pod.name);
        Ok(())
    }

    async fn annotate(&mut self, annotate: &Annotate) -> Result<(), String> {
        let pod = self
            .pods
            .get(&annotate.pod)
            .ok_or_else(|| format!("no pod `{}` is running", annotate.pod))?;
        let mut annotations = pod.annotations.clone();
        match &annotate.floating_ips {
            Some(value) => {
                annotations.insert(calico::FLOATING_IPS_ANNOTATION.into(), value.clone())
            }
            None => annotations.remove(calico::FLOATING_IPS_ANNOTATION),
        };
        // With the Kubernetes datastore, Calico re-derives the workload endpoint
        // from the pod on every update: a changed annotation takes effect on the
        // running pod, by the update path's rules (no CNI feature check; entries
        // of a family the pod lacks are dropped).
        let current = &self.endpoints[&annotate.pod];
        let endpoint = calico::kdd_ip_nats(
            annotations
                .get(calico::FLOATING_IPS_ANNOTATION)
                .map(String::as_str),
            &current.addresses,
        )
        .map(|nats| WorkloadEndpoint {
            ip_nats: nats.ip_nats,
            ..current.clone()
        });
        match (endpoint, &annotate.expect_error) {
            (Err(error), Some(expected)) if error.to_string().contains(expected.as_str()) => Ok(()),
            (Err(error), _) => Err(format!("annotation rejected: {error}")),
            (Ok(_), Some(expected)) => Err(format!(
                "annotation accepted, expected an error containing `{expected}`"
            )),
            (Ok(endpoint), None) => {
                let pod = self.pods.get_mut(&annotate.pod).expect("checked above");
                pod.annotations = annotations;
                self.endpoints.insert(annotate.pod.clone(), endpoint);
                self.sync_control().await
            }
        }
    }

    /// Hand the current endpoints to the control plane and note any floating IP
    /// whose receiving pod changed.
    async fn sync_control(&mut self) -> Result<(), String> {
        let cluster = &self.scenario.cluster;
        let state = ClusterState {
            endpoints: self.endpoints.values().cloned().collect(),
            cni_floating_ips: cluster.cni_features().floating_ips,
            felix_floating_ips: cluster.felix_floating_ips.is_enabled(),
            pools: cluster.pools.clone(),
        };
        // A move starts when the control plane starts changing the dataplane,
        // so convergence figures include the time the change takes to apply.
        let at_unix_ns = now_unix_ns();
        // The applier runs its per-node transactions on threads of its own and
        // waits for them: keep this worker free for the traffic meanwhile.
        let applied = tokio::task::block_in_place(|| self.control.update(&state))
            .map_err(|e| format!("control plane: {e}"))?;
        for conflict in &applied.conflicts {
            tracing::info!(?conflict, "several pods claim one floating IP");
        }
        let owners: BTreeMap<IpAddr, String> = self
            .control
            .current()
            .owners
            .iter()
            .map(|(ip, owner)| (*ip, owner.pod.clone()))
            .collect();
        for (floating_ip, pod) in &owners {
            if self.owners.get(floating_ip) != Some(pod) {
                self.moves.push(Move {
                    floating_ip: *floating_ip,
                    from: self.owners.get(floating_ip).cloned(),
                    to: Some(pod.clone()),
                    at_unix_ns,
                });
            }
        }
        for (floating_ip, pod) in &self.owners {
            if !owners.contains_key(floating_ip) {
                self.moves.push(Move {
                    floating_ip: *floating_ip,
                    from: Some(pod.clone()),
                    to: None,
                    at_unix_ns,
                });
            }
        }
        self.owners = owners;
        Ok(())
    }

    async fn send(
        &mut self,
        index: usize,
        send: &Send,
        step: &mut StepResult,
    ) -> Result<(), String> {
        let to = self.resolve(&send.to)?;
        let book = self.address_book(&send.from)?;
        let deadline = Instant::now() + RETRY_BUDGET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut spec = ProbeSpec::new(&send.from, to, send.protocol);
            spec.count = send.count;
            spec.interval = send.interval;
            spec.port = send.port;
            spec.step = index as u32;
            if expects_silence(&send.expect) {
                // Nothing will answer: don't wait long for it.
                spec.timeout = Duration::from_millis(300);
            }
            let outcome = self
                .engine
                .probe(spec)
                .await
                .map_err(|e| format!("sending: {e}"))?;
            let observed = delivery_observed(&outcome);
            let mismatches = check::mismatches(&send.expect, &observed, &book);
            let line = CheckLine {
                source: send.from.clone(),
                destination: describe_target(&send.to, to),
                protocol: send.protocol.to_string(),
                observed,
                mismatches,
            };
            let done = line.passed() || attempt >= MAX_ATTEMPTS || Instant::now() >= deadline;
            if done {
                step.attempts = attempt;
                step.lines = vec![line];
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start_stream(&mut self, index: usize, start: &StartStream) -> Result<(), String> {
        let target = self.resolve(&start.to)?;
        let mut spec = StreamSpec::new(&start.from, target, start.protocol, start.interval);
        spec.port = start.port;
        spec.step = index as u32;
        let started_unix_ns = now_unix_ns();
        let handle = self
            .engine
            .start_stream(spec)
            .await
            .map_err(|e| format!("starting stream: {e}"))?;
        self.streams.insert(
            start.name.clone(),
            RunningStream {
                spec: start.clone(),
                target,
                handle,
                started_unix_ns,
            },
        );
        Ok(())
    }

    async fn stop_stream(
        &mut self,
        stop: &StopStream,
        step: &mut StepResult,
        result: &mut ScenarioResult,
    ) -> Result<(), String> {
        let stream = self
            .streams
            .remove(&stop.name)
            .ok_or_else(|| format!("stream `{}` is not running", stop.name))?;
        let outcome = stream
            .handle
            .stop()
            .await
            .map_err(|e| format!("stopping stream: {e}"))?;
        let observed = delivery_observed(&outcome);
        let book = self.address_book(&stream.spec.from)?;
        let expect = TrafficExpectation {
            delivered_to: stop.expect.delivered_to.clone(),
            loss: stop.expect.loss,
            ..Default::default()
        };
        let mut mismatches = check::mismatches(&expect, &observed, &book);
        let packets = stream_packets(&outcome, stream.started_unix_ns);
        let moves: Vec<&Move> = self
            .moves
            .iter()
            .filter(|m| m.floating_ip == stream.target && m.at_unix_ns >= stream.started_unix_ns)
            .collect();
        // A move is one pod losing the floating IP and another gaining it,
        // possibly in two steps (remove, then set): pair them up.
        let old_pod = moves.iter().find_map(|m| m.from.clone());
        let new_pod = moves.iter().rev().find_map(|m| m.to.clone());
        if let (Some(old_pod), Some(new_pod)) = (&old_pod, &new_pod) {
            // Convergence and late packets count from the start of the change
            // that gives the floating IP to the new pod; a gap before it (the
            // floating IP taken away first) shows in the loss.
            let gained_ns = moves
                .iter()
                .find(|m| m.to.as_ref() == Some(new_pod))
                .map(|m| m.at_unix_ns)
                .unwrap_or_default();
            let moved_at_us = gained_ns.saturating_sub(stream.started_unix_ns) / 1000;
            result.migrations.push(MigrationReport {
                stream: stop.name.clone(),
                protocol: stream.spec.protocol.to_string(),
                from_pod: old_pod.clone(),
                to_pod: new_pod.clone(),
                figures: MigrationFigures::compute(
                    &packets,
                    old_pod,
                    new_pod,
                    moved_at_us,
                    TIMELINE_BUCKET_MS,
                ),
            });
        }
        if let Some(expected_pod) = &stop.expect.after_move_at {
            match moves.first() {
                None => mismatches.push(check::Mismatch {
                    what: "after the move".into(),
                    expected: format!("only {expected_pod}"),
                    actual: "the floating IP never moved during the stream".into(),
                }),
                Some(first) => {
                    // Judged by sequence numbers, not by capture times (which
                    // lag under load): from the first packet the expected pod
                    // got after the move began, every later packet that was
                    // delivered must have been delivered there.
                    let moved_us = first.at_unix_ns.saturating_sub(stream.started_unix_ns) / 1000;
                    let first_at_expected = packets
                        .iter()
                        .filter(|p| {
                            p.delivered
                                .as_ref()
                                .is_some_and(|(pod, at)| pod == expected_pod && *at >= moved_us)
                        })
                        .map(|p| p.sequence)
                        .min();
                    let mut elsewhere: BTreeMap<String, u64> = BTreeMap::new();
                    if let Some(first_seq) = first_at_expected {
                        for packet in packets.iter().filter(|p| p.sequence > first_seq) {
                            if let Some((pod, _)) = &packet.delivered {
                                if pod != expected_pod {
                                    *elsewhere.entry(pod.clone()).or_default() += 1;
                                }
                            }
                        }
                    }
                    if first_at_expected.is_none() || !elsewhere.is_empty() {
                        let actual = if first_at_expected.is_none() {
                            format!("nothing reached {expected_pod} after the move")
                        } else {
                            elsewhere
                                .iter()
                                .map(|(pod, n)| format!("{pod} ({n})"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        mismatches.push(check::Mismatch {
                            what: "after the move".into(),
                            expected: format!("only {expected_pod}"),
                            actual,
                        });
                    }
                }
            }
        }
        if !mismatches.is_empty() && !outcome.sctp_events.is_empty() {
            step.message = Some(format!(
                "SCTP association events: {}",
                compact_events(&outcome.sctp_events)
            ));
        }
        step.lines = vec![CheckLine {
            source: stream.spec.from.clone(),
            destination: describe_target(&stream.spec.to, stream.target),
            protocol: format!("{} stream", stream.spec.protocol),
            observed,
            mismatches,
        }];
        Ok(())
    }

    async fn stop_all_streams(&mut self) {
        for (_, stream) in std::mem::take(&mut self.streams) {
            let _ = stream.handle.stop().await;
        }
    }

    /// The address a target names.
    fn resolve(&self, target: &Target) -> Result<IpAddr, String> {
        let (name, family) = match target {
            Target::Address(address) => return Ok(*address),
            Target::Host { name, family } => (name, *family),
        };
        let found = match self.lab.member_kind(name) {
            Some(MemberKind::Pod) => self.endpoints.get(name).and_then(|endpoint| {
                endpoint
                    .addresses
                    .iter()
                    .copied()
                    .find(|a| IpFamily::of(a) == family)
            }),
            Some(MemberKind::Node) => self
                .lab
                .node_uplink(name, family)
                .map_err(|e| e.to_string())?,
            Some(MemberKind::External) => self
                .lab
                .external_address(name, family)
                .map_err(|e| e.to_string())?,
            Some(MemberKind::Fabric) | None => None,
        };
        found.ok_or_else(|| format!("`{name}` has no {family:?} address in this lab"))
    }

    /// The sender's own addresses, and every pod's, for `from` / `pod` checks.
    fn address_book(&self, sender: &str) -> Result<AddressBook, String> {
        let sender_addresses = match self.lab.member_kind(sender) {
            Some(MemberKind::Pod) => self
                .endpoints
                .get(sender)
                .map(|e| e.addresses.clone())
                .unwrap_or_default(),
            Some(MemberKind::Node) => [IpFamily::V4, IpFamily::V6]
                .into_iter()
                .filter_map(|f| self.lab.node_uplink(sender, f).ok().flatten())
                .collect(),
            Some(MemberKind::External) => [IpFamily::V4, IpFamily::V6]
                .into_iter()
                .filter_map(|f| self.lab.external_address(sender, f).ok().flatten())
                .collect(),
            _ => return Err(format!("`{sender}` is not a pod, node or external host")),
        };
        Ok(AddressBook {
            pod_addresses: self
                .endpoints
                .iter()
                .map(|(name, e)| (name.clone(), e.addresses.clone()))
                .collect(),
            sender_addresses,
        })
    }

    /// Write the step's bundle and pcaps; None when there is no report dir.
    fn write_diagnostics(&self, index: usize) -> Option<PathBuf> {
        let root = self.options.report_dir.as_ref()?;
        let dir = root
            .join(&self.scenario.name)
            .join(self.backend.to_string())
            .join(format!("step-{}", index + 1));
        let cluster = &self.scenario.cluster;
        let members: Vec<(String, Netns)> = std::iter::once(FABRIC.to_string())
            .chain(cluster.nodes.iter().cloned())
            .chain(cluster.externals.iter().cloned())
            .chain(self.pods.keys().cloned())
            .filter_map(|name| {
                let netns = self.lab.netns(&name).ok()?.clone();
                Some((name, netns))
            })
            .collect();
        let mut bundle = diagnostics::write_bundle(&dir, &members);
        if bundle.is_ok() {
            for pod in self.pods.keys() {
                // The whole run so far: a stream's packets belong to the step
                // that started it, and what led up to a failure matters too.
                let path = dir.join(pod).join("capture.pcap");
                if let Err(error) = self.engine.write_pcap(pod, None, &path) {
                    tracing::warn!(%error, pod, "could not write pcap");
                }
            }
            if let Ok(state) = serde_json::to_string_pretty(self.control.current()) {
                let _ = std::fs::write(dir.join("control-plane.json"), state);
            }
        }
        match bundle.as_mut() {
            Ok(path) => Some(path.clone()),
            Err(error) => {
                tracing::warn!(%error, "could not write the diagnostics bundle");
                None
            }
        }
    }

    fn keep(self) {
        self.lab.keep();
    }

    fn finish(self) -> Result<(), String> {
        drop(self.engine);
        self.lab
            .teardown()
            .map_err(|e| format!("tearing down: {e}"))
    }
}

fn expects_silence(expect: &TrafficExpectation) -> bool {
    matches!(expect.delivered_to, Some(crate::scenario::Delivery::None))
        || expect.quoted_destination.is_some()
}

fn describe_target(target: &Target, resolved: IpAddr) -> String {
    match target {
        Target::Address(address) => address.to_string(),
        Target::Host { name, .. } => format!("{name} ({resolved})"),
    }
}

/// SCTP events in order, with repeats folded (`INIT sent x3`).
fn compact_events(events: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run = 0;
    for (i, event) in events.iter().enumerate() {
        run += 1;
        if events.get(i + 1) != Some(event) {
            out.push(if run > 1 {
                format!("{event} x{run}")
            } else {
                event.clone()
            });
            run = 0;
        }
    }
    out.join(", ")
}

fn summarise(step: &Step) -> String {
    match step {
        Step::CreatePod(c) => format!("create pod {} on {}", c.pod.name, c.pod.node),
        Step::DeletePod(name) => format!("delete pod {name}"),
        Step::Annotate(a) => match &a.floating_ips {
            Some(value) => format!("annotate {} floatingIPs={value}", a.pod),
            None => format!("remove floatingIPs from {}", a.pod),
        },
        Step::Send(s) => format!("send {} {} -> {}", s.protocol, s.from, target_text(&s.to)),
        Step::StartStream(s) => format!(
            "start {} stream {} {} -> {}",
            s.protocol,
            s.name,
            s.from,
            target_text(&s.to)
        ),
        Step::StopStream(s) => format!("stop stream {}", s.name),
        Step::Wait(d) => format!("wait {d:?}"),
    }
}

fn target_text(target: &Target) -> String {
    match target {
        Target::Address(a) => a.to_string(),
        Target::Host { name, .. } => name.clone(),
    }
}
