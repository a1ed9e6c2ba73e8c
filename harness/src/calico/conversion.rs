//! What Felix gets for a pod in Kubernetes-datastore mode: libcalico-go's pod
//! to workload-endpoint conversion, then the syncer's update processor.
//!
//! In KDD mode the CNI plugin never stores the `ipNATs` it validated at set-up
//! (libcalico-go/lib/backend/k8s/resources/workloadendpoint.go only patches the
//! pod's IP annotations): every view Felix has of a pod, at creation and after
//! every change, comes from this path. It reads the annotation its own way:
//! - no CNI `feature_control` check (it has no access to the CNI config): only
//!   Felix's own `floatingIPs` switch gates the NAT ([`super::felix`]);
//! - a finished pod (phase Succeeded or Failed) owns no addresses, so its
//!   annotation is not even read and the endpoint is filtered out: Felix sees a
//!   deletion;
//! - the key being present is enough to parse, so `""` is a JSON error, and a
//!   JSON error fails the conversion;
//! - an entry whose family the pod lacks is dropped; an entry that is not a
//!   plain IP address (a CIDR, a word) is dropped one layer later. Silently:
//!   Calico logs nothing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::annotation::{go_ip_version, go_parse_ip, internal_for, AnnotationError};
use super::endpoint::IpNatPair;
use super::go_json::unmarshal_string_list;

/// A pod's `status.phase`, as far as Calico cares.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PodPhase {
    Pending,
    #[default]
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    /// libcalico-go/lib/backend/k8s/conversion/conversion.go IsFinished
    /// (Succeeded, Failed, and the non-standard "Completed" the harness has no
    /// use for): "Pod is in a 'finished' state so no longer owns its IP(s)."
    pub fn is_finished(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// The floating IPs Felix receives for a pod, and the entries dropped on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KddIpNats {
    /// In annotation order. A pair may mix families: `::ffff:a.b.c.d` on a pod
    /// with IPv6 is paired with the IPv6 address but parses as IPv4, as in
    /// Calico's model.IPNAT ([`super::felix::felix_route_panic`] says what
    /// Felix then does).
    pub ip_nats: Vec<IpNatPair>,
    /// Entries dropped silently: not a plain IP address, or a family the pod
    /// has no address of.
    pub dropped: Vec<String>,
}

/// Felix's view of a pod's floating IPs (KDD conversion + update processor).
///
/// `Err` is the conversion failing: libcalico-go's watcher then reports a
/// WatchError, restarts the watch at the same revision, and after
/// `MaxErrorsPerRevision` (5) failures re-lists, where the pod is skipped
/// ("unable to process resource, skipping", resources/list_pager.go) and
/// watchercache.go finishResync sends a delete for it: Felix ends up with no
/// endpoint for the pod at all, as for a finished pod.
pub fn kdd_ip_nats(
    annotation: Option<&str>,
    pod_addresses: &[IpAddr],
) -> Result<KddIpNats, AnnotationError> {
    let mut nats = KddIpNats::default();
    // workload_endpoint_default.go podToDefaultWorkloadEndpoint: parsed only
    // when the key exists and the pod has addresses.
    let Some(raw) = annotation else {
        return Ok(nats);
    };
    if pod_addresses.is_empty() {
        return Ok(nats);
    }
    let entries = unmarshal_string_list(raw).map_err(|reason| AnnotationError::BadJson {
        value: raw.to_owned(),
        reason,
    })?;
    for entry in entries {
        // podToDefaultWorkloadEndpoint drops a family the pod lacks; then
        // syncersv1/updateprocessors/workloadendpointprocessor.go
        // ConvertV2ToV1IPNAT drops what `cnet.ParseIP` refuses.
        match (internal_for(&entry, pod_addresses), go_parse_ip(&entry)) {
            (Some(internal), Some(external)) => {
                // cnet.ParseIP keeps IPv4-mapped addresses as 4 bytes.
                let external = match external {
                    IpAddr::V6(v6) if go_ip_version(external) == 4 => {
                        IpAddr::V4(v6.to_ipv4_mapped().expect("mapped"))
                    }
                    other => other,
                };
                nats.ip_nats.push(IpNatPair { internal, external });
            }
            _ => nats.dropped.push(entry),
        }
    }
    Ok(nats)
}

/// Felix's floating IPs for a pod in `phase`: none for a finished pod, whose
/// endpoint Felix no longer has (see [`PodPhase::is_finished`]).
pub fn felix_ip_nats(
    annotation: Option<&str>,
    pod_addresses: &[IpAddr],
    phase: PodPhase,
) -> Result<Option<KddIpNats>, AnnotationError> {
    if phase.is_finished() {
        return Ok(None);
    }
    kdd_ip_nats(annotation, pod_addresses).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_V4: &str = "198.19.0.5";
    const POD_V6: &str = "2001:db8:1::5";

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn ips(nats: &KddIpNats) -> Vec<String> {
        nats.ip_nats
            .iter()
            .map(|p| format!("{} -> {}", p.external, p.internal))
            .collect()
    }

    #[test]
    fn bad_entries_are_dropped_and_the_rest_kept() {
        let got = kdd_ip_nats(
            Some(r#"["bogus","203.0.113.20","203.0.113.10/32","","2001:db8:f1::10"]"#),
            &addrs(&[POD_V4]),
        )
        .unwrap();
        assert_eq!(ips(&got), ["203.0.113.20 -> 198.19.0.5"]);
        assert_eq!(
            got.dropped,
            ["bogus", "203.0.113.10/32", "", "2001:db8:f1::10"]
        );
    }

    #[test]
    fn no_feature_check_and_null_or_empty_list_are_nothing() {
        let pod = addrs(&[POD_V4]);
        assert_eq!(kdd_ip_nats(None, &pod), Ok(KddIpNats::default()));
        assert_eq!(kdd_ip_nats(Some("[]"), &pod), Ok(KddIpNats::default()));
        assert_eq!(kdd_ip_nats(Some("null"), &pod), Ok(KddIpNats::default()));
    }

    #[test]
    fn conversion_errors_are_gos_words() {
        let pod = addrs(&[POD_V4]);
        let errors: Vec<String> = ["", "[", r#"["a"].x"#, "[1]"]
            .iter()
            .map(|a| kdd_ip_nats(Some(a), &pod).unwrap_err().to_string())
            .collect();
        insta::assert_yaml_snapshot!(errors);
    }

    #[test]
    fn mapped_ipv4_on_a_pod_with_ipv6_pairs_across_families() {
        let got = kdd_ip_nats(
            Some(r#"["::ffff:203.0.113.10"]"#),
            &addrs(&[POD_V4, POD_V6]),
        )
        .unwrap();
        assert_eq!(ips(&got), ["203.0.113.10 -> 2001:db8:1::5"]);
        // On a pod without IPv6 the entry has no partner and is dropped.
        let v4_only = kdd_ip_nats(Some(r#"["::ffff:203.0.113.10"]"#), &addrs(&[POD_V4]));
        assert_eq!(v4_only.unwrap().dropped, ["::ffff:203.0.113.10"]);
    }

    #[test]
    fn finished_pods_have_no_endpoint_even_with_a_malformed_annotation() {
        let pod = addrs(&[POD_V4]);
        for phase in [PodPhase::Succeeded, PodPhase::Failed] {
            assert_eq!(felix_ip_nats(Some("not json"), &pod, phase), Ok(None));
        }
        let running = felix_ip_nats(Some(r#"["203.0.113.10"]"#), &pod, PodPhase::Running);
        assert_eq!(
            ips(&running.unwrap().unwrap()),
            ["203.0.113.10 -> 198.19.0.5"]
        );
    }
}
