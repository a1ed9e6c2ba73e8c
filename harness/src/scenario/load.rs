//! Reading a scenario file: deserialise (value checks carry positions), read the
//! files it references, then check references in step order while replaying the
//! pod set-ups through the Calico model, so that a pod whose set-up Calico would
//! refuse is an error unless the step expects exactly that.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use super::error::{ScenarioError, ScenarioErrors};
use super::located::{deserialize_numbered, locate, split_yaml_error, Spanned};
use super::model::*;
use super::raw::*;
use super::values::{Delivery, Name};
use crate::calico::{
    cni_add, cni_del, kdd_ip_nats, parse_cni_config, parse_ip_pool_manifests, CniNetworkConfig,
    IpFamily, IpPool, IpPoolSpec, Ipam, PodRequest, PodSetupError, TemplateValues,
    FLOATING_IPS_ANNOTATION,
};
use crate::dataplane::BackendKind;

/// Reads and validates one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors(vec![ScenarioError {
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read scenario: {e}"),
        }])
    })?;
    load_str(&text, path)
}

/// Validates scenario `text` as if read from `path` (which names it in errors,
/// gives the default name and anchors relative paths).
pub fn load_str(text: &str, path: &Path) -> Result<Scenario, ScenarioErrors> {
    let raw: RawScenario = deserialize_numbered(text, None).map_err(|e| {
        let (line, column, message) = split_yaml_error(&e);
        ScenarioErrors(vec![ScenarioError {
            file: path.to_owned(),
            line,
            column,
            message,
        }])
    })?;
    let mut loader = Loader {
        file: path,
        dir: path.parent().unwrap_or(Path::new("")),
        text,
        errors: Vec::new(),
    };
    let scenario = loader.resolve(raw);
    match scenario {
        Some(s) if loader.errors.is_empty() => Ok(s),
        _ => Err(ScenarioErrors(loader.errors)),
    }
}

/// Where a scenario's `name:` value sits, when it has one (for catalogue checks).
pub(crate) fn name_position(text: &str) -> Option<(usize, usize)> {
    let raw: RawScenario = deserialize_numbered(text, None).ok()?;
    let name = raw.name?;
    let (line, column, _) = locate::<RawScenario>(text, name.index, "name");
    Some((line, column))
}

struct Loader<'a> {
    file: &'a Path,
    dir: &'a Path,
    text: &'a str,
    errors: Vec<ScenarioError>,
}

/// A host traffic can come from or go to, as known at some step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostKind {
    Node,
    External,
}

struct LivePod {
    addresses: Vec<IpAddr>,
    annotations: BTreeMap<String, String>,
    namespace: String,
}

impl Loader<'_> {
    fn error_at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let (line, column, message) =
            locate::<RawScenario>(self.text, spanned.index, &message.into());
        self.errors.push(ScenarioError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        });
    }

    fn referenced(&self, relative: &str) -> PathBuf {
        normalize(&self.dir.join(relative))
    }

    fn resolve(&mut self, raw: RawScenario) -> Option<Scenario> {
        let name = match &raw.name {
            Some(name) => name.value.to_string(),
            None => self.default_name()?,
        };
        let nodes: Vec<String> = raw
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.to_string())
            .collect();
        let cni = self.read_cni(&raw.cluster.cni, nodes.first());
        let pools = self.read_pools(raw.cluster.pools.as_deref(), raw.cluster.dual_stack);
        let hosts = self.hosts(&raw.cluster.nodes, &raw.cluster.externals);
        let backends = raw
            .backends
            .clone()
            .unwrap_or_else(|| vec![BackendKind::Nftables, BackendKind::Iptables]);
        let profiles = match (&raw.profiles, &raw.profile) {
            (Some(_), Some(one)) => {
                self.error_at(one, "give either `profile` or `profiles`, not both");
                Vec::new()
            }
            (Some(list), None) => list.clone(),
            (None, Some(one)) => vec![one.value],
            (None, None) => vec![ConntrackProfile::Calico, ConntrackProfile::Strict],
        };
        let cni = cni?;
        let steps = self.steps(&raw, &cni, &pools, &hosts);
        Some(Scenario {
            name,
            description: raw.description,
            tags: raw.tags,
            source: self.file.to_owned(),
            backends,
            profiles,
            cluster: Cluster {
                cni,
                cni_source: self.referenced(&raw.cluster.cni),
                felix_floating_ips: raw.cluster.felix.floating_ips,
                dual_stack: raw.cluster.dual_stack,
                pools,
                nodes,
                externals: raw
                    .cluster
                    .externals
                    .iter()
                    .map(|n| n.name.to_string())
                    .collect(),
            },
            steps,
        })
    }

    fn default_name(&mut self) -> Option<String> {
        let stem = self.file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        match stem.parse::<Name>() {
            Ok(name) => Some(name.to_string()),
            Err(e) => {
                self.errors.push(ScenarioError {
                    file: self.file.to_owned(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "the file name gives no valid scenario name; add `name:` ({e})"
                    ),
                });
                None
            }
        }
    }

    fn read_cni(
        &mut self,
        cni: &Spanned<String>,
        first_node: Option<&String>,
    ) -> Option<CniNetworkConfig> {
        let path = self.referenced(cni);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.error_at(
                    cni,
                    format!("cannot read CNI config `{}`: {e}", path.display()),
                );
                return None;
            }
        };
        let values = TemplateValues {
            node_name: first_node.cloned().unwrap_or_else(|| "node".into()),
            ..TemplateValues::default()
        };
        match parse_cni_config(&text, &values) {
            Ok(config) => Some(config),
            Err(e) => {
                self.error_at(cni, format!("bad CNI config `{}`: {e}", path.display()));
                None
            }
        }
    }

    fn read_pools(
        &mut self,
        entries: Option<&[Spanned<RawPoolEntry>]>,
        dual_stack: bool,
    ) -> Vec<IpPool> {
        let mut pools: Vec<IpPool> = Vec::new();
        for entry in entries.unwrap_or_default() {
            if let Some(manifest) = &entry.manifest {
                let inline = entry.name.is_some()
                    || entry.cidr.is_some()
                    || entry.block_size.is_some()
                    || entry.encapsulation.is_some()
                    || entry.ipip_mode.is_some()
                    || entry.vxlan_mode.is_some()
                    || entry.disable_bgp_export.is_some()
                    || entry.nat_outgoing.is_some()
                    || entry.disabled.is_some();
                if inline {
                    self.error_at(
                        entry,
                        "a pool entry is either `manifest:` alone or an inline pool",
                    );
                    continue;
                }
                let path = self.referenced(manifest);
                match std::fs::read_to_string(&path) {
                    Err(e) => self.error_at(
                        manifest,
                        format!("cannot read pool manifest `{}`: {e}", path.display()),
                    ),
                    Ok(text) => match parse_ip_pool_manifests(&text) {
                        Ok(found) => pools.extend(found),
                        Err(e) => self.errors.push(ScenarioError {
                            file: path,
                            line: e.line,
                            column: e.column,
                            message: e.message,
                        }),
                    },
                }
                continue;
            }
            let (Some(name), Some(cidr)) = (&entry.name, &entry.cidr) else {
                self.error_at(
                    entry,
                    "an inline pool needs `name` and `cidr` (or use `manifest:`)",
                );
                continue;
            };
            let spec = IpPoolSpec {
                cidr: cidr.0.to_string(),
                block_size: entry.block_size,
                encapsulation: entry.encapsulation,
                ipip_mode: entry.ipip_mode,
                vxlan_mode: entry.vxlan_mode,
                disable_bgp_export: entry.disable_bgp_export,
                nat_outgoing: entry.nat_outgoing,
                disabled: entry.disabled,
                ..IpPoolSpec::default()
            };
            match spec.into_pool(name.as_str()) {
                Ok(pool) => pools.push(pool),
                Err(e) => self.error_at(entry, e.to_string()),
            }
        }
        let mut seen = BTreeSet::new();
        for pool in &pools {
            if !seen.insert(pool.name.clone()) {
                self.errors.push(ScenarioError {
                    file: self.file.to_owned(),
                    line: 1,
                    column: 1,
                    message: format!("cluster.pools: two pools are named `{}`", pool.name),
                });
            }
        }
        // IPAM needs an enabled pool per family in use; the defaults fill a gap.
        let has_enabled = |pools: &[IpPool], v4: bool| {
            pools
                .iter()
                .any(|p| !p.disabled && p.cidr.addr().is_ipv4() == v4)
        };
        if !has_enabled(&pools, true) {
            pools.push(default_pool("default-ipv4-ippool", "198.19.0.0/16"));
        }
        if dual_stack && !has_enabled(&pools, false) {
            pools.push(default_pool("default-ipv6-ippool", "2001:db8:1::/48"));
        }
        pools
    }

    fn hosts(
        &mut self,
        nodes: &Spanned<Vec<Spanned<NodeEntry>>>,
        externals: &[Spanned<NodeEntry>],
    ) -> BTreeMap<String, HostKind> {
        let mut hosts = BTreeMap::new();
        if nodes.is_empty() {
            self.error_at(nodes, "a cluster needs at least one node");
        }
        let all = nodes
            .iter()
            .map(|n| (n, HostKind::Node))
            .chain(externals.iter().map(|n| (n, HostKind::External)));
        for (entry, kind) in all {
            let name = entry.name.to_string();
            if hosts.insert(name.clone(), kind).is_some() {
                self.error_at(entry, format!("duplicate name `{name}` (names are unique across nodes, externals and pods)"));
            }
        }
        hosts
    }

    /// The pod a createPod step makes (reading its manifest), or None after an error.
    fn pod_of(
        &mut self,
        create: &RawCreatePod,
        step: &Spanned<RawStep>,
    ) -> Option<(Pod, Option<PathBuf>)> {
        let mut annotations: BTreeMap<String, String> = BTreeMap::new();
        let (mut name, mut namespace, mut node, mut manifest_path) = (None, None, None, None);
        if let Some(manifest) = &create.manifest {
            if create.name.is_some() {
                self.error_at(step, "createPod takes `name` or `manifest`, not both");
                return None;
            }
            let path = self.referenced(manifest);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    self.error_at(
                        manifest,
                        format!("cannot read pod manifest `{}`: {e}", path.display()),
                    );
                    return None;
                }
            };
            let pod: PodManifest = match serde_yaml::from_str(&text) {
                Ok(pod) => pod,
                Err(e) => {
                    let (line, column, message) = split_yaml_error(&e);
                    self.errors.push(ScenarioError {
                        file: path,
                        line,
                        column,
                        message,
                    });
                    return None;
                }
            };
            if pod.api_version != "v1" || pod.kind != "Pod" {
                self.errors.push(ScenarioError {
                    file: path,
                    line: 1,
                    column: 1,
                    message: format!(
                        "expected apiVersion v1 and kind Pod, found {} {}",
                        pod.api_version, pod.kind
                    ),
                });
                return None;
            }
            name = Some(pod.metadata.name.to_string());
            namespace = pod.metadata.namespace.map(|n| n.to_string());
            node = pod.spec.node_name.map(|n| n.to_string());
            annotations = pod.metadata.annotations;
            manifest_path = Some(path);
        }
        if let Some(n) = &create.name {
            name = Some(n.to_string());
        }
        if let Some(n) = &create.namespace {
            namespace = Some(n.to_string());
        }
        if let Some(n) = &create.node {
            node = Some(n.to_string());
        }
        annotations.extend(
            create
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone())),
        );
        let Some(name) = name else {
            self.error_at(step, "createPod needs `name` (or `manifest`)");
            return None;
        };
        let Some(node) = node else {
            self.error_at(
                step,
                format!("pod `{name}` has no node: give `node` (or spec.nodeName in its manifest)"),
            );
            return None;
        };
        Some((
            Pod {
                name,
                namespace: namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
                node,
                annotations,
            },
            manifest_path,
        ))
    }

    fn steps(
        &mut self,
        raw: &RawScenario,
        cni: &CniNetworkConfig,
        pools: &[IpPool],
        hosts: &BTreeMap<String, HostKind>,
    ) -> Vec<Step> {
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
        let mut streams: BTreeMap<String, &Spanned<Name>> = BTreeMap::new();
        let mut steps = Vec::new();

        for (step, made) in raw.steps.iter().zip(pods_made) {
            match &step.value {
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
                            live.insert(
                                pod.name.clone(),
                                LivePod {
                                    addresses: wep.addresses,
                                    annotations: pod.annotations.clone(),
                                    namespace: pod.namespace.clone(),
                                },
                            );
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
                            let verdict = kdd_ip_nats(value.map(|v| v.as_str()), &pod.addresses);
                            match (verdict, &expect_error, value) {
                                (Ok(_), None, _) => match value {
                                    Some(v) => {
                                        pod.annotations.insert(FLOATING_IPS_ANNOTATION.into(), v.value.clone());
                                    }
                                    None => {
                                        pod.annotations.remove(FLOATING_IPS_ANNOTATION);
                                    }
                                },
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
                RawStep::Send(send) => {
                    self.check_endpoints(&send.from, &send.to, hosts, &live, dual_stack);
                    self.check_port(send.protocol, send.port.as_ref());
                    self.check_delivery(send.expect.delivered_to.as_ref(), &ever);
                    let delivered_to = send.expect.delivered_to.as_ref().map(|d| d.value.clone());
                    let loss = send.expect.loss.or(match delivered_to {
                        Some(Delivery::Pods(_)) => Some(Loss::Packets(0)),
                        _ => None,
                    });
                    steps.push(Step::Send(Send {
                        protocol: send.protocol,
                        from: send.from.to_string(),
                        to: send.to.value.clone(),
                        count: send.count.unwrap_or(DEFAULT_COUNT),
                        interval: send.interval.map_or(DEFAULT_INTERVAL, |d| d.0),
                        port: send.port.as_ref().map_or(DEFAULT_PORT, |p| p.value),
                        expect: TrafficExpectation {
                            delivered_to,
                            seen_destination: send.expect.seen_destination,
                            seen_source: send.expect.seen_source,
                            reply_source: send.expect.reply_source.map(|a| a.0),
                            loss,
                            quoted_destination: send.expect.quoted_destination.map(|a| a.0),
                        },
                    }));
                }
                RawStep::StartStream(start) => {
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
                        interval: start.interval.map_or(DEFAULT_INTERVAL, |d| d.0),
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
                    steps.push(Step::StopStream(StopStream {
                        name: stop.name.to_string(),
                        expect: StreamExpectation {
                            delivered_to: stop
                                .expect
                                .delivered_to
                                .as_ref()
                                .map(|d| d.value.clone()),
                            loss: stop.expect.loss,
                            after_move_at: stop
                                .expect
                                .after_move_at
                                .as_ref()
                                .map(|a| a.to_string()),
                        },
                    }));
                }
                RawStep::Wait(duration) => steps.push(Step::Wait(duration.0)),
            }
        }
        for (name, start) in streams {
            self.error_at(start, format!("stream `{name}` is never stopped"));
        }
        steps
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
            if let Delivery::Pods(pods) = &spanned.value {
                for pod in pods {
                    if !ever.contains(pod) {
                        self.error_at(spanned, format!("no pod named `{pod}` in this scenario"));
                    }
                }
            }
        }
    }
}

impl<T> Spanned<T> {
    /// The position handle of this value, without the value.
    fn index_only(&self) -> Spanned<()> {
        Spanned {
            value: (),
            index: self.index,
        }
    }
}

fn default_pool(name: &str, cidr: &str) -> IpPool {
    IpPoolSpec {
        cidr: cidr.into(),
        ..IpPoolSpec::default()
    }
    .into_pool(name)
    .expect("default pool is valid")
}

/// `a/b/../c` -> `a/c`, without touching the file system (paths in messages stay
/// as the user wrote them, minus the detours).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                if matches!(last, Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
