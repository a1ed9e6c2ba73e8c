//! The Calico objects' part of a step: pod set-up as the CNI plugin does it
//! (IPAM, then the annotation), deletion (CNI DEL), and the pod updates that
//! reach Felix through the Kubernetes-datastore conversion (annotation,
//! phase). A step whose outcome is not what it expects is undone here, before
//! anything else sees it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::step::{
    CalicoRefusal, ClusterStep, Effects, ExpectationMismatch, InvalidStep, PodRemoved, PodSetUp,
    RefusedBy,
};
use super::{Cluster, FelixEndpoint, Pod};
use crate::calico::annotation::FLOATING_IPS_ANNOTATION;
use crate::calico::cni::{cni_add, cni_del, PodRequest, PodSetupError};
use crate::calico::conversion::{felix_ip_nats, PodPhase};
use crate::calico::felix::{felix_route_panic, FelixFloatingIps};

/// `None`: report what Calico does (a refusal is an error of its own);
/// `Some(expected)`: the step expects an error containing `expected` (or none).
type Judge<'a> = Option<Option<&'a str>>;

pub(super) fn stage(
    cluster: &mut Cluster,
    step: &ClusterStep,
    judge: Judge<'_>,
) -> Result<Effects, ExpectationMismatch> {
    match step {
        ClusterStep::CreatePod {
            name,
            namespace,
            node,
            annotations,
        } => create(cluster, name, namespace, node, annotations, judge),
        ClusterStep::DeletePod { name } => delete(cluster, name),
        ClusterStep::Annotate { pod, floating_ips } => {
            annotate(cluster, pod, floating_ips.as_deref(), judge)
        }
        ClusterStep::SetPhase { pod, phase } => set_phase(cluster, pod, *phase),
    }
}

/// Felix's view of a pod with these addresses, annotations and phase, the
/// entries the conversion dropped silently, and Felix's own refusal (a
/// crash) when it would have one.
pub(super) fn felix_endpoint(
    addresses: &[IpAddr],
    annotations: &BTreeMap<String, String>,
    phase: PodPhase,
    felix: FelixFloatingIps,
) -> (FelixEndpoint, Vec<String>, Option<String>) {
    let annotation = annotations.get(FLOATING_IPS_ANNOTATION).map(String::as_str);
    match felix_ip_nats(annotation, addresses, phase) {
        Ok(None) => (FelixEndpoint::Finished, Vec::new(), None),
        Ok(Some(nats)) => {
            let panic = felix_route_panic(&nats.ip_nats, felix)
                .err()
                .map(|e| e.to_string());
            (FelixEndpoint::Present(nats.ip_nats), nats.dropped, panic)
        }
        Err(error) => (
            FelixEndpoint::ConversionFailed(error.to_string()),
            Vec::new(),
            None,
        ),
    }
}

fn create(
    cluster: &mut Cluster,
    name: &str,
    namespace: &str,
    node: &str,
    annotations: &BTreeMap<String, String>,
    judge: Judge<'_>,
) -> Result<Effects, ExpectationMismatch> {
    if cluster.config.network.node(node).is_none() {
        return Err(InvalidStep::UnknownNode(node.to_string()).into());
    }
    if cluster.pods.contains_key(name) {
        return Err(InvalidStep::PodExists(name.to_string()).into());
    }
    let before = cluster.ipam.node_blocks(node);
    let request = PodRequest {
        namespace,
        name,
        node,
        annotations,
    };
    let config = &cluster.config;
    let verdict = cni_add(&mut cluster.ipam, &config.cni, config.dual_stack, &request);
    let blocks_claimed: Vec<(String, ipnet::IpNet)> = cluster
        .ipam
        .node_blocks(node)
        .into_iter()
        .filter(|block| !before.contains(block))
        .map(|block| (node.to_string(), block))
        .collect();
    let endpoint = match verdict {
        Ok(endpoint) => endpoint,
        Err(error) => {
            let refusal = CalicoRefusal {
                by: match error {
                    PodSetupError::Ipam(_) => RefusedBy::Ipam,
                    PodSetupError::Annotation(_) => RefusedBy::CniAnnotation,
                },
                text: error.to_string(),
                blocks_claimed: blocks_claimed.clone(),
            };
            return match judge.flatten() {
                Some(expected) if refusal.text.contains(expected) => Ok(Effects {
                    calico_error: Some(refusal.text),
                    blocks_claimed,
                    ..Effects::default()
                }),
                Some(expected) => Err(ExpectationMismatch::OtherError {
                    expected: expected.to_string(),
                    actual: refusal.text,
                }),
                None => Err(ExpectationMismatch::SetUpRefused {
                    pod: name.to_string(),
                    refusal,
                }),
            };
        }
    };
    if let Some(Some(expected)) = judge {
        cni_del(&mut cluster.ipam, namespace, name);
        return Err(ExpectationMismatch::SetUpAccepted {
            pod: name.to_string(),
            expected: expected.to_string(),
        });
    }
    // What Felix gets comes from the datastore conversion, which reads the
    // annotation its own way (`""` is a JSON error there): a failure leaves
    // Felix without the endpoint, the pod's set-up stands.
    let (felix, _, _) = felix_endpoint(
        &endpoint.addresses,
        annotations,
        PodPhase::Running,
        config.felix_floating_ips,
    );
    let made = cluster.interfaces_made.entry(node.to_string()).or_default();
    *made += 1;
    let pod = Pod {
        name: name.to_string(),
        namespace: namespace.to_string(),
        node: node.to_string(),
        annotations: annotations.clone(),
        phase: PodPhase::Running,
        addresses: endpoint.addresses.clone(),
        interface: endpoint.interface.clone(),
        interface_order: *made,
        felix,
    };
    // The CNI plugin routes the pod's addresses to its interface
    // (cni-plugin/pkg/dataplane/linux/dataplane_linux.go SetupRoutes).
    cluster.routed.insert(name.to_string());
    cluster.dirty.insert(name.to_string());
    cluster.pods.insert(name.to_string(), pod);
    Ok(Effects {
        blocks_claimed,
        set_up: vec![PodSetUp {
            name: name.to_string(),
            namespace: namespace.to_string(),
            node: node.to_string(),
            interface: endpoint.interface,
            addresses: endpoint.addresses,
        }],
        ..Effects::default()
    })
}

fn delete(cluster: &mut Cluster, name: &str) -> Result<Effects, ExpectationMismatch> {
    let pod = cluster
        .pods
        .remove(name)
        .ok_or_else(|| InvalidStep::NoSuchPod(name.to_string()))?;
    // Felix sees the endpoint go first; CNI DEL then frees the addresses
    // (the lab removes the interface in between).
    cni_del(&mut cluster.ipam, &pod.namespace, &pod.name);
    cluster.routed.remove(name);
    cluster.dirty.insert(name.to_string());
    Ok(Effects {
        removed: vec![PodRemoved {
            name: pod.name,
            namespace: pod.namespace,
            node: pod.node,
            addresses: pod.addresses,
        }],
        ..Effects::default()
    })
}

/// A running pod's annotation changes. The pod object changes whatever
/// Calico makes of it, and Felix's view follows from it through the
/// datastore conversion (no CNI feature check). A conversion that fails is
/// Calico's error, carried out (Felix loses the endpoint); a Felix that would
/// crash is refused (nothing changes).
fn annotate(
    cluster: &mut Cluster,
    name: &str,
    value: Option<&str>,
    judge: Judge<'_>,
) -> Result<Effects, ExpectationMismatch> {
    let felix_switch = cluster.config.felix_floating_ips;
    let pod = cluster
        .pods
        .get(name)
        .ok_or_else(|| InvalidStep::NoSuchPod(name.to_string()))?;
    let mut annotations = pod.annotations.clone();
    match value {
        Some(value) => annotations.insert(FLOATING_IPS_ANNOTATION.into(), value.into()),
        None => annotations.remove(FLOATING_IPS_ANNOTATION),
    };
    let (felix, dropped, panic) =
        felix_endpoint(&pod.addresses, &annotations, pod.phase, felix_switch);
    let error = match (&felix, &panic) {
        (_, Some(text)) => Some((text.clone(), RefusedBy::FelixPanic)),
        (FelixEndpoint::ConversionFailed(text), None) => {
            Some((text.clone(), RefusedBy::Conversion))
        }
        _ => None,
    };
    let expected = judge.flatten();
    match (&error, expected) {
        (None, Some(expected)) => {
            return Err(ExpectationMismatch::AnnotationAccepted {
                expected: expected.to_string(),
            })
        }
        (Some((text, by)), None) if judge.is_some() || *by == RefusedBy::FelixPanic => {
            return Err(ExpectationMismatch::AnnotationRejected {
                text: text.clone(),
                by: *by,
            })
        }
        (Some((text, _)), Some(expected)) if !text.contains(expected) => {
            return Err(ExpectationMismatch::OtherError {
                expected: expected.to_string(),
                actual: text.clone(),
            })
        }
        _ => {}
    }
    let calico_error = error.as_ref().map(|(text, _)| text.clone());
    if panic.is_none() {
        let pod = cluster.pods.get_mut(name).expect("looked up above");
        pod.annotations = annotations;
        pod.felix = felix;
        cluster.dirty.insert(name.to_string());
    }
    Ok(Effects {
        calico_error,
        dropped_entries: dropped,
        ..Effects::default()
    })
}

/// A pod's phase changes: a finished pod owns no addresses, so Felix loses
/// its endpoint; one that runs again is converted anew.
fn set_phase(
    cluster: &mut Cluster,
    name: &str,
    phase: PodPhase,
) -> Result<Effects, ExpectationMismatch> {
    let felix_switch = cluster.config.felix_floating_ips;
    let pod = cluster
        .pods
        .get_mut(name)
        .ok_or_else(|| InvalidStep::NoSuchPod(name.to_string()))?;
    let (felix, _, panic) = felix_endpoint(&pod.addresses, &pod.annotations, phase, felix_switch);
    pod.phase = phase;
    // A Felix that would crash on the pod is not simulated: it keeps its
    // last view (only an annotate step can bring that about, and it is
    // refused there).
    if panic.is_none() {
        pod.felix = felix;
    }
    cluster.dirty.insert(name.to_string());
    Ok(Effects::default())
}
