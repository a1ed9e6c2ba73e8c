//! Which points of the dimensions a scenario exercises: its steps replayed
//! over who claims each floating IP, and every `send` and every stream to a
//! floating IP turned into one [`Point`] per profile and routing it runs
//! under.
//!
//! Who claims a floating IP is Felix's view of the pods' annotations: the
//! Kubernetes-datastore conversion (`calico::kdd_ip_nats`, bad entries
//! dropped) of live pods that are not finished (`calico::felix_ip_nats`).
//! A pod whose set-up the step expects to fail never exists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use super::dimensions::DIMENSIONS;
use crate::calico::{felix_ip_nats, Encapsulation, PodPhase, FLOATING_IPS_ANNOTATION};
use crate::check::Delivery;
use crate::scenario::{Scenario, Step, Target};
use crate::vocab::ConntrackProfile;

/// One value of every dimension, by dimension name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Point(pub BTreeMap<&'static str, &'static str>);

impl Point {
    /// The value of dimension `name`.
    pub fn get(&self, name: &str) -> &'static str {
        self.0.get(name).copied().unwrap_or("")
    }
}

/// A point and where it was exercised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exercised {
    pub scenario: String,
    /// 1-based, as failures number steps.
    pub step: usize,
    pub point: Point,
}

#[derive(Clone, Debug)]
struct LivePod {
    node: String,
    floating_ips: BTreeSet<IpAddr>,
}

/// The floating IPs' claims as the steps go.
#[derive(Default)]
struct Claims {
    pods: BTreeMap<String, LivePod>,
    /// The last change of each floating IP, and the pods that last held it.
    changes: BTreeMap<IpAddr, &'static str>,
    last_holders: BTreeMap<IpAddr, Vec<(String, String)>>,
    /// Pods deleted, with the floating IPs they held.
    deleted: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl Claims {
    /// (pod, node) of every pod claiming `ip`.
    fn claimants(&self, ip: IpAddr) -> Vec<(String, String)> {
        self.pods
            .iter()
            .filter(|(_, p)| p.floating_ips.contains(&ip))
            .map(|(name, p)| (name.clone(), p.node.clone()))
            .collect()
    }

    fn all_floating_ips(&self) -> BTreeSet<IpAddr> {
        self.pods
            .values()
            .flat_map(|p| p.floating_ips.iter().copied())
            .collect()
    }

    /// Apply `step`, recording the change of every floating IP it touches.
    fn apply(&mut self, scenario: &Scenario, step: &Step) {
        let before: BTreeMap<IpAddr, Vec<(String, String)>> = self
            .all_floating_ips()
            .into_iter()
            .map(|ip| (ip, self.claimants(ip)))
            .collect();
        let dual = scenario.cluster.dual_stack;
        match step {
            Step::CreatePod(create) if create.expect_error.is_none() => {
                let annotation = create.pod.annotations.get(FLOATING_IPS_ANNOTATION);
                self.pods.insert(
                    create.pod.name.clone(),
                    LivePod {
                        node: create.pod.node.clone(),
                        floating_ips: felix_view(annotation.map(String::as_str), dual),
                    },
                );
            }
            Step::DeletePod(name) => {
                if let Some(pod) = self.pods.remove(name) {
                    self.deleted.insert(name.clone(), pod.floating_ips);
                }
            }
            Step::Annotate(annotate) if annotate.expect_error.is_none() => {
                if let Some(pod) = self.pods.get_mut(&annotate.pod) {
                    pod.floating_ips = felix_view(annotate.floating_ips.as_deref(), dual);
                }
            }
            Step::Annotate(annotate) => {
                // A value the conversion rejects: Felix loses the endpoint.
                if let Some(pod) = self.pods.get_mut(&annotate.pod) {
                    pod.floating_ips.clear();
                }
            }
            Step::SetPhase(set) if finished(set.phase) => {
                if let Some(pod) = self.pods.get_mut(&set.pod) {
                    pod.floating_ips.clear();
                }
            }
            _ => return,
        }
        let touched: BTreeSet<IpAddr> = before
            .keys()
            .copied()
            .chain(self.all_floating_ips())
            .collect();
        for ip in touched {
            let old = before.get(&ip).cloned().unwrap_or_default();
            let new = self.claimants(ip);
            if old == new {
                continue;
            }
            if let Some(change) = self.classify(ip, step, &old, &new) {
                self.changes.insert(ip, change);
            }
            if !old.is_empty() {
                self.last_holders.insert(ip, old);
            }
        }
    }

    /// What went from claimants `old` to `new` of `ip` by `step`.
    fn classify(
        &self,
        ip: IpAddr,
        step: &Step,
        old: &[(String, String)],
        new: &[(String, String)],
    ) -> Option<&'static str> {
        let moved = |from: &[(String, String)], to: &[(String, String)]| {
            let from_nodes: BTreeSet<&String> = from.iter().map(|(_, n)| n).collect();
            if to.iter().all(|(_, n)| from_nodes.contains(n)) {
                "moved-on-node"
            } else {
                "moved-across-nodes"
            }
        };
        Some(match (old.is_empty(), new.is_empty()) {
            (true, true) => return None,
            (true, false) => {
                let previous = self.last_holders.get(&ip);
                let recreated = matches!(step, Step::CreatePod(c)
                    if self.deleted.get(&c.pod.name).is_some_and(|ips| ips.contains(&ip)));
                match previous {
                    _ if recreated => "delete-recreate",
                    Some(prev) if prev.iter().all(|p| !new.contains(p)) => moved(prev, new),
                    _ if matches!(step, Step::CreatePod(_)) => "created",
                    _ => "added",
                }
            }
            (false, true) => match step {
                Step::DeletePod(_) => "holder-deleted",
                Step::SetPhase(_) => "holder-finished",
                _ => "removed",
            },
            (false, false) => {
                let grew = new.len() > old.len() && old.iter().all(|p| new.contains(p));
                let shrank = new.len() < old.len() && new.iter().all(|p| old.contains(p));
                match self.last_holders.get(&ip) {
                    _ if grew => "duplicate-made",
                    // The one left was the duplicate: the floating IP moved to it.
                    Some(sole) if shrank && new.len() == 1 && sole.len() == 1 && sole != new => {
                        moved(sole, new)
                    }
                    _ if shrank => "duplicate-released",
                    _ => moved(old, new),
                }
            }
        })
    }
}

fn finished(phase: PodPhase) -> bool {
    phase.is_finished()
}

/// The floating IPs Felix gets from `annotation` on a running pod (one
/// stand-in address per family the pod has: only the externals matter here).
fn felix_view(annotation: Option<&str>, dual_stack: bool) -> BTreeSet<IpAddr> {
    let mut addresses: Vec<IpAddr> = vec!["198.19.255.254".parse().expect("an address")];
    if dual_stack {
        addresses.push("2001:db8:ffff::fffe".parse().expect("an address"));
    }
    match felix_ip_nats(annotation, &addresses, PodPhase::Running) {
        Ok(Some(nats)) => nats.ip_nats.iter().map(|n| n.external).collect(),
        _ => BTreeSet::new(),
    }
}

/// Every floating IP any annotation of the scenario names.
fn named_floating_ips(scenario: &Scenario) -> BTreeSet<IpAddr> {
    let texts = scenario.steps.iter().filter_map(|step| match step {
        Step::CreatePod(c) => c.pod.annotations.get(FLOATING_IPS_ANNOTATION).cloned(),
        Step::Annotate(a) => a.floating_ips.clone(),
        _ => None,
    });
    let dual = true;
    texts.flat_map(|t| felix_view(Some(&t), dual)).collect()
}

/// Every point `scenario` exercises.
pub fn exercised(scenario: &Scenario) -> Vec<Exercised> {
    let floating_ips = named_floating_ips(scenario);
    let mut claims = Claims::default();
    let mut out = Vec::new();
    // Streams running: name -> (start step, the point's state at start).
    let mut running: BTreeMap<&str, (usize, Traffic, Claims)> = BTreeMap::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        match step {
            Step::Send(send) => {
                let Target::Address(ip) = send.to else {
                    continue;
                };
                if !floating_ips.contains(&ip) {
                    continue;
                }
                let traffic = Traffic {
                    from: send.from.clone(),
                    ip,
                    protocol: send.protocol.to_string(),
                    icmp_error: send.expect.quoted_destination.is_some(),
                    delivery: send.expect.delivered_to.clone(),
                };
                let change = claims.changes.get(&ip).copied().unwrap_or("unclaimed");
                for point in points(scenario, &claims, &claims, &traffic, change, "settled") {
                    out.push(Exercised {
                        scenario: scenario.name.clone(),
                        step: index + 1,
                        point,
                    });
                }
            }
            Step::StartStream(start) => {
                let Target::Address(ip) = start.to else {
                    continue;
                };
                if !floating_ips.contains(&ip) {
                    continue;
                }
                let traffic = Traffic {
                    from: start.from.clone(),
                    ip,
                    protocol: start.protocol.to_string(),
                    icmp_error: false,
                    delivery: None,
                };
                running.insert(&start.name, (index, traffic, claims.snapshot()));
            }
            Step::StopStream(stop) => {
                let Some((_, mut traffic, at_start)) = running.remove(stop.name.as_str()) else {
                    continue;
                };
                traffic.delivery = stop.expect.delivered_to.clone();
                let before = at_start.changes.get(&traffic.ip).copied();
                let now = claims.changes.get(&traffic.ip).copied();
                let (change, timing) =
                    if now != before || claims.changed_since(&at_start, traffic.ip) {
                        (now.unwrap_or("unclaimed"), "under-stream")
                    } else {
                        (now.unwrap_or("unclaimed"), "settled")
                    };
                // Who sent is judged when the stream started; the rest is the
                // state the stream ends in, with the change that led there.
                for point in points(scenario, &at_start, &claims, &traffic, change, timing) {
                    out.push(Exercised {
                        scenario: scenario.name.clone(),
                        step: index + 1,
                        point,
                    });
                }
            }
            other => claims.apply(scenario, other),
        }
    }
    out
}

impl Claims {
    fn snapshot(&self) -> Claims {
        Claims {
            pods: self.pods.clone(),
            changes: self.changes.clone(),
            last_holders: self.last_holders.clone(),
            deleted: self.deleted.clone(),
        }
    }

    /// Whether who claims `ip` differs from `then`.
    fn changed_since(&self, then: &Claims, ip: IpAddr) -> bool {
        self.claimants(ip) != then.claimants(ip)
    }
}

/// One traffic check to a floating IP.
struct Traffic {
    from: String,
    ip: IpAddr,
    protocol: String,
    icmp_error: bool,
    delivery: Option<Delivery>,
}

/// The points of `traffic` with the floating IP claimed as `claims` says
/// (the sender's kind as `at_start` says), one per profile and routing the
/// scenario runs under.
fn points(
    scenario: &Scenario,
    at_start: &Claims,
    claims: &Claims,
    traffic: &Traffic,
    change: &'static str,
    timing: &'static str,
) -> Vec<Point> {
    let ip = traffic.ip;
    let claimants = claims.claimants(ip);
    let nodes: BTreeSet<&str> = claimants.iter().map(|(_, n)| n.as_str()).collect();
    let claim = match claimants.as_slice() {
        [] => "nobody",
        [(pod, _)] if claims.pods[pod].floating_ips.len() > 1 => "several-on-pod",
        [_] => "one",
        _ if nodes.len() > 1 => "duplicate-across-nodes",
        _ => "duplicate-on-node",
    };
    // The node the floating IP is (or was last) on.
    let node = claimants
        .first()
        .or_else(|| claims.last_holders.get(&ip).and_then(|h| h.first()))
        .map(|(_, n)| n.clone());
    let others_on_node = node.as_ref().is_some_and(|node| {
        claims
            .pods
            .values()
            .filter(|p| &p.node == node)
            .any(|p| p.floating_ips.iter().any(|other| *other != ip))
    });
    let node_nat = match (claimants.is_empty(), others_on_node) {
        (_, true) => "with-others",
        (false, false) => "alone",
        (true, false) => "empty",
    };
    let cluster = &scenario.cluster;
    let source = source_kind(scenario, at_start, &traffic.from, ip);
    let delivery = match &traffic.delivery {
        Some(Delivery::None) => "nobody",
        Some(Delivery::OneOf(_)) => "one-of",
        Some(Delivery::Pods(_)) => "holder",
        None if claimants.is_empty() => "nobody",
        None if nodes.len() > 1 => "one-of",
        None => "holder",
    };
    let pool = match cluster.pools.iter().find(|p| p.cidr.contains(&ip)) {
        None => "outside",
        Some(p) if p.disable_bgp_export => "no-export",
        Some(p) => match p.encapsulation {
            Encapsulation::None => "exported",
            Encapsulation::Vxlan => "vxlan",
            Encapsulation::Ipip => "ipip",
        },
    };
    let switches = if !cluster.felix_floating_ips.is_enabled() {
        "felix-off"
    } else if !cluster.cni_features().floating_ips {
        "cni-off"
    } else {
        "both-on"
    };
    let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let mut out = Vec::new();
    for profile in &scenario.profiles {
        for routing in &scenario.routings {
            let values = [
                ("source", source),
                ("family", family),
                ("protocol", protocol_value(&traffic.protocol)),
                (
                    "icmp-error",
                    if traffic.icmp_error {
                        "from-pod"
                    } else {
                        "none"
                    },
                ),
                ("delivery", delivery),
                ("change", change),
                ("timing", timing),
                ("claims", claim),
                ("node-nat", node_nat),
                ("pool", pool),
                ("switches", switches),
                ("profile", profile_value(*profile)),
                ("routing", routing_value(&routing.to_string())),
            ];
            debug_assert_eq!(values.len(), DIMENSIONS.len());
            out.push(Point(values.into_iter().collect()));
        }
    }
    out
}

/// What kind of sender `from` is to the floating IP `ip`, with claims as
/// `claims` says. Once nobody claims it, the pods that last held it stand for
/// its holders: their node and its pods are where a mapping left behind would
/// still take the traffic.
fn source_kind(scenario: &Scenario, claims: &Claims, from: &str, ip: IpAddr) -> &'static str {
    let cluster = &scenario.cluster;
    let mut claimants = claims.claimants(ip);
    if claimants.is_empty() {
        claimants = claims.last_holders.get(&ip).cloned().unwrap_or_default();
    }
    let nodes: BTreeSet<&str> = claimants.iter().map(|(_, n)| n.as_str()).collect();
    let pod = claims.pods.get(from);
    if cluster.externals.iter().any(|x| x == from) {
        "external"
    } else if from == crate::vocab::names::FABRIC {
        "fabric"
    } else if cluster.nodes.iter().any(|n| n == from) {
        if nodes.contains(from) {
            "hosting-node"
        } else {
            "other-node"
        }
    } else if claimants.iter().any(|(p, _)| p == from) {
        "holder"
    } else if pod.is_some_and(|p| !p.floating_ips.is_empty()) {
        "other-fip-holder"
    } else if pod.is_some_and(|p| nodes.contains(p.node.as_str())) {
        "same-node-pod"
    } else {
        "other-node-pod"
    }
}

/// The dimension's own spelling of a value the scenario gives as text.
fn known(dimension: &str, text: &str) -> &'static str {
    super::dimensions::dimension(dimension)
        .and_then(|d| d.values.iter().find(|(v, _)| *v == text))
        .map_or("", |(v, _)| *v)
}

fn protocol_value(text: &str) -> &'static str {
    known("protocol", text)
}

fn profile_value(profile: ConntrackProfile) -> &'static str {
    match profile {
        ConntrackProfile::Calico => "calico",
        ConntrackProfile::Strict => "strict",
    }
}

fn routing_value(text: &str) -> &'static str {
    known("routing", text)
}
