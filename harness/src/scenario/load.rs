//! Reading a scenario file: deserialise (value checks carry positions), read the
//! files it references, then check references in step order while replaying the
//! pod set-ups through the Calico model, so that a pod whose set-up Calico would
//! refuse is an error unless the step expects exactly that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use super::error::{ScenarioError, ScenarioErrors};
use super::input::{
    excerpt, has_kind, is_scenario_shaped, read_text, too_deep, MAX_NESTING, NOT_A_SCENARIO,
};
use super::located::{deserialize_numbered, locate, split_yaml_error, Spanned};
use super::model::*;
use super::raw::*;
use super::values::Name;
use crate::calico::{
    parse_cni_config, parse_ip_pool_manifests, CniNetworkConfig, IpPool, IpPoolSpec, TemplateValues,
};
use crate::vocab::RoutingMode;

/// Reads and validates one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let (_, text) = read_text(path).map_err(|message| {
        ScenarioErrors(vec![ScenarioError {
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read scenario: {message}"),
        }])
    })?;
    load_str(&text, path)
}

/// Validates scenario `text` as if read from `path` (which names it in errors,
/// gives the default name and anchors relative paths).
pub fn load_str(text: &str, path: &Path) -> Result<Scenario, ScenarioErrors> {
    let one = |line, column, message| {
        ScenarioErrors(vec![ScenarioError {
            file: path.to_owned(),
            line,
            column,
            message,
        }])
    };
    if let Some((line, column)) = too_deep(text) {
        return Err(one(
            line,
            column,
            format!("nested deeper than {MAX_NESTING} levels; a scenario needs a handful"),
        ));
    }
    if !is_scenario_shaped(text) {
        // Nothing of a file that is not a scenario is quoted: it could be a
        // secret (`validate /etc/shadow`, or a symbolic link to it).
        return Err(one(1, 1, NOT_A_SCENARIO.into()));
    }
    let raw: RawScenario = deserialize_numbered(text, None).map_err(|e| {
        let (mut line, mut column, message) = split_yaml_error(&e);
        if (line, column) == (1, 1) {
            // yaml_serde places a duplicate key of the top mapping at 1:1.
            if let Some(at) = duplicate_key_position(text, &message) {
                (line, column) = at;
            }
        }
        one(line, column, clearer_yaml_message(line, &message))
    })?;
    let mut loader = Loader {
        file: path,
        dir: path.parent().unwrap_or(Path::new("")),
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let scenario = loader.resolve(raw);
    // A `createPods` step's pods share its positions, so one fault (an
    // unknown node) would otherwise be reported once per pod.
    loader.errors.dedup();
    loader.warnings.dedup();
    match scenario {
        Some(mut s) if loader.errors.is_empty() => {
            s.warnings = loader.warnings.iter().map(ToString::to_string).collect();
            Ok(s)
        }
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

/// The `kind`s a pool manifest file may hold.
const POOL_KINDS: &[&str] = &["IPPool", "IPPoolList", "List"];

/// Where the second of two equal keys is, for "duplicate field `key`".
fn duplicate_key_position(text: &str, message: &str) -> Option<(usize, usize)> {
    let key = message.split('`').nth(1)?;
    let mut seen = BTreeSet::new();
    text.lines().enumerate().find_map(|(n, line)| {
        let content = line.trim_start();
        let indent = line.len() - content.len();
        let is_key = content
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'));
        (is_key && !seen.insert(indent)).then_some((n + 1, indent + 1))
    })
}

/// yaml_serde's message made plainer where it was found unclear.
fn clearer_yaml_message(line: usize, message: &str) -> String {
    if message.contains("while parsing a flow sequence")
        || message.contains("while parsing a flow mapping")
    {
        let (open, close) = if message.contains("sequence") {
            ('[', ']')
        } else {
            ('{', '}')
        };
        return format!(
            "a `{open}` opened before here is not closed: add the missing `{close}` (or the `,` between items)"
        );
    }
    if message.starts_with("duplicate field") || message.contains(": duplicate field") {
        return format!("{message} (a key given twice in one mapping)");
    }
    if line == 1 && message.starts_with("invalid type:") {
        // Quoting the content of a file that is not a scenario could leak it.
        return NOT_A_SCENARIO.into();
    }
    excerpt(message)
}

pub(super) struct Loader<'a> {
    file: &'a Path,
    dir: &'a Path,
    text: &'a str,
    pub(super) errors: Vec<ScenarioError>,
    /// Things Calico accepts that are probably mistakes (`file:line:col: warning: ...`).
    warnings: Vec<ScenarioError>,
}

/// A host traffic can come from or go to, as known at some step.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum HostKind {
    Node,
    External,
}

impl Loader<'_> {
    fn located<T>(&self, spanned: &Spanned<T>, message: String) -> ScenarioError {
        let (line, column, message) = locate::<RawScenario>(self.text, spanned.index, &message);
        ScenarioError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }

    pub(super) fn error_at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let error = self.located(spanned, message.into());
        self.errors.push(error);
    }

    pub(super) fn warn_at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let mut warning = self.located(spanned, message.into());
        warning.message = format!("warning: {}", warning.message);
        self.warnings.push(warning);
    }

    /// A manifest file's path (as referenced, for the model and for errors in
    /// it) and text, if it is YAML of one of `kinds`; otherwise an error at the
    /// reference that names the resolved path and shows none of the file.
    fn read_manifest(
        &mut self,
        at: &Spanned<String>,
        what: &str,
        kinds: &[&str],
    ) -> Option<(PathBuf, String)> {
        match read_text(&self.referenced(at)) {
            Err(e) => {
                self.error_at(at, format!("cannot read {what} manifest: {e}"));
                None
            }
            Ok((path, text)) if !has_kind(&text, kinds) => {
                self.error_at(
                    at,
                    format!(
                        "`{}` is not {what} manifest (no `kind: {}` line); its content is not shown",
                        path.display(),
                        kinds[0]
                    ),
                );
                None
            }
            Ok((_, text)) => Some((self.referenced(at), text)),
        }
    }

    fn referenced(&self, relative: &str) -> PathBuf {
        normalize(&self.dir.join(relative))
    }

    fn resolve(&mut self, mut raw: RawScenario) -> Option<Scenario> {
        raw.steps = self.expand_bulk(std::mem::take(&mut raw.steps));
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
        let calico = self.release(raw.calico.as_ref());
        self.check_pools(&raw, &pools, calico);
        let backends = self.backends(raw.backends.as_ref(), calico);
        let profiles = match (&raw.profiles, &raw.profile) {
            (Some(_), Some(one)) => {
                self.error_at(one, "give either `profile` or `profiles`, not both");
                Vec::new()
            }
            (Some(list), None) => list.clone(),
            (None, Some(one)) => vec![one.value],
            // Calico's own behaviour is what most cases check; a case that shows
            // the difference names both profiles.
            (None, None) => vec![ConntrackProfile::Calico],
        };
        // A case that holds under one routing only says so, and why, in its
        // description.
        let routings = raw
            .routings
            .clone()
            .unwrap_or_else(|| vec![RoutingMode::Bird, RoutingMode::Model]);
        let cluster = Cluster {
            cni: cni?,
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
        };
        let steps = self.steps(&raw, &cluster, &hosts, &profiles, calico);
        Some(Scenario {
            name,
            description: raw.description,
            tags: raw.tags,
            source: self.file.to_owned(),
            backends,
            calico,
            profiles,
            routings,
            update_order: raw.update_order.unwrap_or_default(),
            cluster,
            steps,
            warnings: Vec::new(),
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
        let (path, text) = match read_text(&self.referenced(cni)) {
            Ok(read) => read,
            Err(e) => {
                self.error_at(cni, format!("cannot read CNI config: {e}"));
                return None;
            }
        };
        // A CNI network config is a JSON object, or the calico-config
        // ConfigMap carrying one; anything else is not quoted.
        if !text.trim_start().starts_with('{') && !has_kind(&text, &[]) {
            self.error_at(
                cni,
                format!(
                    "`{}` is not a CNI network config (a JSON object or the calico-config \
                     ConfigMap); its content is not shown",
                    path.display()
                ),
            );
            return None;
        }
        let values = TemplateValues {
            node_name: first_node.cloned().unwrap_or_else(|| "node".into()),
            ..TemplateValues::default()
        };
        match parse_cni_config(&text, &values) {
            Ok(config) => Some(config),
            Err(e) => {
                let message = excerpt(&e.to_string());
                self.error_at(
                    cni,
                    format!("bad CNI config `{}`: {message}", path.display()),
                );
                None
            }
        }
    }

    fn read_pools(
        &mut self,
        entries: Option<&[Spanned<RawPoolEntry>]>,
        dual_stack: bool,
    ) -> Vec<IpPool> {
        let mut located: Vec<(IpPool, &Spanned<RawPoolEntry>)> = Vec::new();
        for entry in entries.unwrap_or_default() {
            if let Some(manifest) = &entry.manifest {
                let inline = entry.name.is_some()
                    || entry.cidr.is_some()
                    || entry.settings_on(String::new()) != IpPoolSpec::default();
                if inline {
                    self.error_at(
                        entry,
                        "a pool entry is either `manifest:` alone or an inline pool",
                    );
                    continue;
                }
                match self.read_manifest(manifest, "a Calico IPPool", POOL_KINDS) {
                    None => {}
                    Some((path, text)) => match parse_ip_pool_manifests(&text) {
                        Ok(found) => located.extend(found.into_iter().map(|p| (p, entry))),
                        Err(e) => self.errors.push(ScenarioError {
                            file: path,
                            line: e.line,
                            column: e.column,
                            message: excerpt(&e.message),
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
            match entry
                .settings_on(cidr.0.to_string())
                .into_pool(name.as_str())
            {
                Ok(pool) => located.push((pool, entry)),
                Err(e) => self.error_at(entry, e.to_string()),
            }
        }
        self.check_pools_fit(&located);
        let mut pools: Vec<IpPool> = located.into_iter().map(|(pool, _)| pool).collect();
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
    pub(super) fn pod_of(
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
            let (path, text) = self.read_manifest(manifest, "a Kubernetes Pod", &["Pod"])?;
            let pod: PodManifest = match yaml_serde::from_str(&text) {
                Ok(pod) => pod,
                Err(e) => {
                    let (line, column, message) = split_yaml_error(&e);
                    self.errors.push(ScenarioError {
                        file: path,
                        line,
                        column,
                        message: excerpt(&message),
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
}

impl<T> Spanned<T> {
    /// The position handle of this value, without the value.
    pub(super) fn index_only(&self) -> Spanned<()> {
        Spanned {
            value: (),
            index: self.index,
        }
    }
}

/// A pool as calico-node creates its default ones: `natOutgoing` on for
/// IPv4 and off for IPv6 (node/pkg/lifecycle/startup/startup.go
/// `CALICO_IPV4POOL_NAT_OUTGOING` default true, `CALICO_IPV6POOL_NAT_OUTGOING`
/// default false).
fn default_pool(name: &str, cidr: &str) -> IpPool {
    IpPoolSpec {
        cidr: cidr.into(),
        nat_outgoing: Some(!cidr.contains(':')),
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
