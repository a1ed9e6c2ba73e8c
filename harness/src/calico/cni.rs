//! A pod set-up as Calico's CNI plugin does it (CmdAddK8s): allocate the pod's
//! addresses, read the floating-IP annotation, then write the endpoint to the
//! Kubernetes datastore (which converts the pod again); when any of it fails,
//! release the addresses and return Calico's error, so nothing leaks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use thiserror::Error;

use super::annotation::{workload_endpoint, AnnotationError, FLOATING_IPS_ANNOTATION};
use super::cni_config::CniFeatureControl;
use super::conversion::kdd_ip_nats;
use super::endpoint::WorkloadEndpoint;
use super::ipam::{IpFamily, Ipam, IpamError};

/// The pod being set up.
#[derive(Clone, Debug)]
pub struct PodRequest<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub node: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Why the CNI ADD failed; displays Calico's own text.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PodSetupError {
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
}

/// The IPAM handle of a pod (Calico uses the network name and container id; a
/// lab has one sandbox per pod, so namespace/name is unique).
pub fn ipam_handle(namespace: &str, pod: &str) -> String {
    format!("{namespace}/{pod}")
}

/// CNI ADD: an IPv4 address (and IPv6 when `dual_stack`), then the annotation.
pub fn cni_add(
    ipam: &mut Ipam,
    feature: &CniFeatureControl,
    dual_stack: bool,
    pod: &PodRequest<'_>,
) -> Result<WorkloadEndpoint, PodSetupError> {
    let handle = ipam_handle(pod.namespace, pod.name);
    let families: &[IpFamily] = if dual_stack {
        &[IpFamily::V4, IpFamily::V6]
    } else {
        &[IpFamily::V4]
    };
    let mut addresses = Vec::new();
    for family in families {
        match ipam.allocate(&handle, pod.node, *family) {
            Ok(address) => addresses.push(address),
            Err(error) => {
                ipam.release(&handle);
                return Err(error.into());
            }
        }
    }
    let written = workload_endpoint(
        pod.namespace,
        pod.name,
        pod.node,
        &addresses,
        pod.annotations,
        feature,
    )
    .and_then(|endpoint| {
        // Writing the endpoint in the Kubernetes datastore
        // (libcalico-go/lib/backend/k8s/resources/workloadendpoint.go Create
        // -> patchInAnnotations -> patchPodAnnotations) patches the pod's IP
        // annotations and converts the patched pod again
        // (PodToWorkloadEndpoints), which reads the floating-IP annotation its
        // own way: a key present but empty is a JSON error there although
        // CmdAddK8s skipped it (`if floatingIPs != ""`). CmdAddK8s then
        // releases the addresses and returns that error, whatever
        // `feature_control.floating_ips` says. What comes back, and what
        // Felix gets, is the converted endpoint.
        let annotation = pod.annotations.get(FLOATING_IPS_ANNOTATION);
        let nats = kdd_ip_nats(annotation.map(String::as_str), &endpoint.addresses)?;
        Ok(WorkloadEndpoint {
            ip_nats: nats.ip_nats,
            ..endpoint
        })
    });
    written.map_err(|error| {
        ipam.release(&handle);
        error.into()
    })
}

/// CNI DEL: frees the pod's addresses.
pub fn cni_del(ipam: &mut Ipam, namespace: &str, pod: &str) -> Vec<IpAddr> {
    ipam.release(&ipam_handle(namespace, pod))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calico::pool::IpPoolSpec;

    fn ipam() -> Ipam {
        Ipam::new(vec![
            IpPoolSpec {
                cidr: "198.19.0.0/16".into(),
                ..Default::default()
            }
            .into_pool("v4")
            .unwrap(),
            IpPoolSpec {
                cidr: "2001:db8:1::/48".into(),
                ..Default::default()
            }
            .into_pool("v6")
            .unwrap(),
        ])
    }

    fn annotated(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(FLOATING_IPS_ANNOTATION.to_owned(), value.to_owned())])
    }

    const ON: CniFeatureControl = CniFeatureControl {
        floating_ips: true,
        ip_addrs_no_ipam: false,
    };

    #[test]
    fn dual_stack_pod_gets_both_families_and_its_pairs() {
        let mut ipam = ipam();
        let annotations = annotated(r#"["203.0.113.10","2001:db8:f1::10"]"#);
        let pod = PodRequest {
            namespace: "default",
            name: "web",
            node: "node-a",
            annotations: &annotations,
        };
        let wep = cni_add(&mut ipam, &ON, true, &pod).unwrap();
        insta::assert_yaml_snapshot!(wep);
        assert_eq!(cni_del(&mut ipam, "default", "web").len(), 2);
        assert_eq!(ipam.allocated_count(), 0);
    }

    #[test]
    fn failed_setup_leaks_nothing() {
        let cases = [
            (CniFeatureControl::default(), r#"["203.0.113.10"]"#, false),
            (ON, "not json", true),
            (ON, r#"["x"]"#, true),
            (ON, r#"["2001:db8:f1::10"]"#, false),
        ];
        for (feature, value, dual_stack) in cases {
            let mut ipam = ipam();
            let annotations = annotated(value);
            let pod = PodRequest {
                namespace: "default",
                name: "web",
                node: "node-a",
                annotations: &annotations,
            };
            assert!(
                cni_add(&mut ipam, &feature, dual_stack, &pod).is_err(),
                "{value}"
            );
            assert_eq!(ipam.allocated_count(), 0, "{value} leaked an address");
            // The released address went to the back of Calico's queue
            // (ipam_block.go releaseByHandle, garbageCollect): the next pod
            // gets the next fresh one.
            let plain = BTreeMap::new();
            let next = PodRequest {
                name: "next",
                annotations: &plain,
                ..pod
            };
            let wep = cni_add(&mut ipam, &feature, false, &next).unwrap();
            assert_eq!(wep.addresses, vec!["198.19.0.1".parse::<IpAddr>().unwrap()]);
        }
    }

    /// `floatingIPs: ''` passes CmdAddK8s's own reading but not the
    /// datastore's conversion of the patched pod, with the feature on or off.
    #[test]
    fn an_empty_annotation_fails_when_the_endpoint_is_written() {
        for feature in [ON, CniFeatureControl::default()] {
            let mut ipam = ipam();
            let annotations = annotated("");
            let pod = PodRequest {
                namespace: "default",
                name: "web",
                node: "node-a",
                annotations: &annotations,
            };
            let error = cni_add(&mut ipam, &feature, true, &pod).unwrap_err();
            assert_eq!(
                error.to_string(),
                "failed to parse '' as JSON: unexpected end of JSON input"
            );
            assert_eq!(ipam.allocated_count(), 0);
        }
    }

    #[test]
    fn errors_are_calicos() {
        let mut ipam = ipam();
        let annotations = annotated(r#"["203.0.113.10"]"#);
        let pod = PodRequest {
            namespace: "default",
            name: "web",
            node: "node-a",
            annotations: &annotations,
        };
        let error = cni_add(&mut ipam, &CniFeatureControl::default(), false, &pod).unwrap_err();
        assert_eq!(
            error.to_string(),
            "requested feature is not enabled: floating_ips"
        );
        let mut empty = Ipam::new(vec![]);
        let error = cni_add(&mut empty, &ON, false, &pod).unwrap_err();
        insta::assert_snapshot!(error.to_string());
    }
}
