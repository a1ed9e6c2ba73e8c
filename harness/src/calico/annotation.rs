//! The pod annotation `cni.projectcalico.org/floatingIPs`, read as Calico's CNI
//! plugin reads it (cni-plugin `k8s.go`, CmdAddK8s) and checked as libcalico-go's
//! validator checks the workload endpoint's `ipNATs` before it is written.
//!
//! Order of checks, as in Calico: an absent or empty annotation means no
//! floating IPs; otherwise the CNI feature must be on (even for `[]`); then the
//! value must be a JSON list of strings; each entry is paired with the pod's
//! address of its family (IPv6 when it contains `:`); the endpoint is then
//! validated: every entry must be an IP address and the pod must have an address
//! of that family.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;
use thiserror::Error;

use super::cni_config::CniFeatureControl;
use super::endpoint::{veth_name_for_workload, IpNatPair, WorkloadEndpoint};

/// The annotation key Calico reads.
pub const FLOATING_IPS_ANNOTATION: &str = "cni.projectcalico.org/floatingIPs";

/// Why Calico rejects a pod's floating-IP annotation. The texts are Calico's.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AnnotationError {
    /// The CNI plugin's own check (`feature_control.floating_ips` off).
    #[error("requested feature is not enabled: floating_ips")]
    FeatureNotEnabled,
    /// The CNI plugin's `parseIPAddrs`. `reason` follows Go's encoding/json for
    /// type errors and end of input; other syntax errors use serde_json's words.
    #[error("failed to parse '{value}' as JSON: {reason}")]
    BadJson { value: String, reason: String },
    /// libcalico-go's validator on `IPNAT.ExternalIP` (ErrorValidation format).
    #[error("error with field ExternalIP = '{value}' (invalid IP address)")]
    InvalidIp { value: String },
    /// libcalico-go's `validateIPNAT`: internal and external families differ
    /// (the pod has no address of the floating IP's family).
    #[error("error with field ExternalIP = '{value}' (mismatched IP versions)")]
    MismatchedIpVersions { value: String },
}

/// Reads the annotation value (None when the pod has no such annotation) into
/// (internal, external) pairs for a pod with `pod_addresses`.
pub fn parse_floating_ips(
    annotation: Option<&str>,
    feature: &CniFeatureControl,
    pod_addresses: &[IpAddr],
) -> Result<Vec<IpNatPair>, AnnotationError> {
    let raw = match annotation {
        None | Some("") => return Ok(Vec::new()),
        Some(raw) => raw,
    };
    if !feature.floating_ips {
        return Err(AnnotationError::FeatureNotEnabled);
    }
    let entries = parse_string_list(raw)?;
    let v4 = pod_addresses.iter().copied().find(IpAddr::is_ipv4);
    let v6 = pod_addresses.iter().copied().find(IpAddr::is_ipv6);
    entries
        .into_iter()
        .map(|entry| {
            // Calico picks the family by the text, before any parsing.
            let internal = if entry.contains(':') { v6 } else { v4 };
            let external: IpAddr = entry.parse().map_err(|_| AnnotationError::InvalidIp {
                value: entry.clone(),
            })?;
            match internal {
                Some(internal) if internal.is_ipv4() == external.is_ipv4() => {
                    Ok(IpNatPair { internal, external })
                }
                _ => Err(AnnotationError::MismatchedIpVersions { value: entry }),
            }
        })
        .collect()
}

/// The workload endpoint the CNI plugin records for a pod whose addresses are
/// already allocated, with the floating IPs of its annotations.
pub fn workload_endpoint(
    namespace: &str,
    pod: &str,
    node: &str,
    addresses: &[IpAddr],
    annotations: &BTreeMap<String, String>,
    feature: &CniFeatureControl,
) -> Result<WorkloadEndpoint, AnnotationError> {
    let ip_nats = parse_floating_ips(
        annotations.get(FLOATING_IPS_ANNOTATION).map(String::as_str),
        feature,
        addresses,
    )?;
    Ok(WorkloadEndpoint {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        node: node.to_owned(),
        interface: veth_name_for_workload(namespace, pod),
        addresses: addresses.to_vec(),
        ip_nats,
    })
}

/// The `ipNATs` Felix sees after a pod *update* in Kubernetes-datastore mode.
///
/// Calico rebuilds the workload endpoint from the pod on every change
/// (libcalico-go's k8s conversion, `podToWorkloadEndpoint`), and that code reads
/// the annotation differently from the CNI plugin: no `feature_control` check
/// (only Felix's own switch then gates NAT); the key being present is enough,
/// so an empty value is a JSON error; an entry of a family the pod has no
/// address of is dropped silently instead of failing. A failed conversion means
/// the change never reaches Felix. Entries that are not IP addresses cannot be
/// programmed; the model rejects them like the endpoint validator does.
pub fn kdd_ip_nats(
    annotation: Option<&str>,
    pod_addresses: &[IpAddr],
) -> Result<Vec<IpNatPair>, AnnotationError> {
    let Some(raw) = annotation else {
        return Ok(Vec::new());
    };
    let v4 = pod_addresses.iter().copied().find(IpAddr::is_ipv4);
    let v6 = pod_addresses.iter().copied().find(IpAddr::is_ipv6);
    let mut pairs = Vec::new();
    for entry in parse_string_list(raw)? {
        let Some(internal) = (if entry.contains(':') { v6 } else { v4 }) else {
            continue;
        };
        let external: IpAddr = entry.parse().map_err(|_| AnnotationError::InvalidIp {
            value: entry.clone(),
        })?;
        if internal.is_ipv4() != external.is_ipv4() {
            return Err(AnnotationError::MismatchedIpVersions { value: entry });
        }
        pairs.push(IpNatPair { internal, external });
    }
    Ok(pairs)
}

/// `json.Unmarshal(value, &[]string)`, with Go's messages for type errors.
fn parse_string_list(raw: &str) -> Result<Vec<String>, AnnotationError> {
    let bad = |reason: String| AnnotationError::BadJson {
        value: raw.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        if e.is_eof() {
            bad("unexpected end of JSON input".to_owned())
        } else {
            let text = e.to_string();
            let reason = text
                .rfind(" at line ")
                .map_or(text.as_str(), |i| &text[..i]);
            bad(reason.to_owned())
        }
    })?;
    match value {
        // Go leaves a nil slice for `null`: no floating IPs, no error.
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(bad(format!(
                    "json: cannot unmarshal {} into Go value of type string",
                    go_json_kind(&other)
                ))),
            })
            .collect(),
        other => Err(bad(format!(
            "json: cannot unmarshal {} into Go value of type []string",
            go_json_kind(&other)
        ))),
    }
}

fn go_json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const ON: CniFeatureControl = CniFeatureControl {
        floating_ips: true,
        ip_addrs_no_ipam: false,
    };
    const OFF: CniFeatureControl = CniFeatureControl {
        floating_ips: false,
        ip_addrs_no_ipam: false,
    };
    const POD_V4: &str = "198.19.0.5";
    const POD_V6: &str = "2001:db8:1::5";

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<IpNatPair> {
        list.iter()
            .map(|(i, e)| IpNatPair {
                internal: i.parse().unwrap(),
                external: e.parse().unwrap(),
            })
            .collect()
    }

    #[rstest]
    #[case::v4(r#"["203.0.113.10"]"#, &[POD_V4], &[(POD_V4, "203.0.113.10")])]
    #[case::v6(r#"["2001:db8:f1::10"]"#, &[POD_V6], &[(POD_V6, "2001:db8:f1::10")])]
    #[case::dual_stack(
        r#"["203.0.113.10", "2001:db8:f1::10"]"#,
        &[POD_V4, POD_V6],
        &[(POD_V4, "203.0.113.10"), (POD_V6, "2001:db8:f1::10")]
    )]
    #[case::several_per_family(
        r#"["203.0.113.10","203.0.113.11","2001:db8:f1::a","2001:db8:f1::b"]"#,
        &[POD_V4, POD_V6],
        &[(POD_V4, "203.0.113.10"), (POD_V4, "203.0.113.11"),
          (POD_V6, "2001:db8:f1::a"), (POD_V6, "2001:db8:f1::b")]
    )]
    #[case::empty_list("[]", &[POD_V4], &[])]
    #[case::json_null("null", &[POD_V4], &[])]
    #[case::empty_annotation("", &[POD_V4], &[])]
    fn accepted(#[case] annotation: &str, #[case] pod: &[&str], #[case] expected: &[(&str, &str)]) {
        let got = parse_floating_ips(Some(annotation), &ON, &addrs(pod)).unwrap();
        assert_eq!(got, pairs(expected));
    }

    #[rstest]
    #[case::feature_off("feature_off", r#"["203.0.113.10"]"#, OFF, &[POD_V4])]
    #[case::feature_off_even_for_empty_list("feature_off_empty_list", "[]", OFF, &[POD_V4])]
    #[case::bad_json("bad_json", r#"["203.0.113.10""#, ON, &[POD_V4])]
    #[case::bad_json_syntax("bad_json_syntax", "203.0.113.10", ON, &[POD_V4])]
    #[case::not_a_list("not_a_list", r#""203.0.113.10""#, ON, &[POD_V4])]
    #[case::not_strings("not_strings", "[1]", ON, &[POD_V4])]
    #[case::not_an_ip("not_an_ip", r#"["203.0.113.300"]"#, ON, &[POD_V4])]
    #[case::cidr_is_not_an_ip("cidr", r#"["203.0.113.10/32"]"#, ON, &[POD_V4])]
    #[case::v6_without_pod_v6("v6_on_v4_pod", r#"["2001:db8:f1::10"]"#, ON, &[POD_V4])]
    #[case::v4_without_pod_v4("v4_on_v6_pod", r#"["203.0.113.10"]"#, ON, &[POD_V6])]
    #[case::first_error_wins("first_error_wins", r#"["bogus", "2001:db8:f1::10"]"#, ON, &[POD_V4])]
    fn rejected(
        #[case] name: &str,
        #[case] annotation: &str,
        #[case] feature: CniFeatureControl,
        #[case] pod: &[&str],
    ) {
        let error = parse_floating_ips(Some(annotation), &feature, &addrs(pod)).unwrap_err();
        insta::assert_snapshot!(format!("annotation_{name}"), error.to_string());
    }

    #[test]
    fn absent_annotation_is_fine_with_feature_off() {
        assert_eq!(
            parse_floating_ips(None, &OFF, &addrs(&[POD_V4])),
            Ok(vec![])
        );
    }

    #[test]
    fn calico_texts_are_verbatim() {
        let e = |a: &str, f, p: &[&str]| {
            parse_floating_ips(Some(a), f, &addrs(p))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("[]", &OFF, &[POD_V4]),
            "requested feature is not enabled: floating_ips"
        );
        assert!(e("[", &ON, &[POD_V4]).starts_with("failed to parse '[' as JSON: "));
        assert!(e(r#"["x"]"#, &ON, &[POD_V4]).contains("invalid IP address"));
        assert!(e(r#"["::1"]"#, &ON, &[POD_V4]).contains("mismatched IP versions"));
    }

    #[test]
    fn pod_updates_follow_the_kdd_conversion() {
        let v4_only = addrs(&[POD_V4]);
        // No CNI feature check, and a family the pod lacks is dropped.
        assert_eq!(
            kdd_ip_nats(Some(r#"["203.0.113.10","2001:db8:f1::10"]"#), &v4_only),
            Ok(pairs(&[(POD_V4, "203.0.113.10")]))
        );
        assert_eq!(kdd_ip_nats(None, &v4_only), Ok(vec![]));
        assert_eq!(kdd_ip_nats(Some("[]"), &v4_only), Ok(vec![]));
        let errors: Vec<String> = ["", "[", r#"["bogus"]"#]
            .iter()
            .map(|a| kdd_ip_nats(Some(a), &v4_only).unwrap_err().to_string())
            .collect();
        insta::assert_yaml_snapshot!(errors);
    }

    #[test]
    fn endpoint_carries_pairs() {
        let annotations = BTreeMap::from([(
            FLOATING_IPS_ANNOTATION.to_owned(),
            r#"["203.0.113.10"]"#.to_owned(),
        )]);
        let wep = workload_endpoint(
            "default",
            "web",
            "node-a",
            &addrs(&[POD_V4]),
            &annotations,
            &ON,
        )
        .unwrap();
        insta::assert_yaml_snapshot!(wep);
    }
}
