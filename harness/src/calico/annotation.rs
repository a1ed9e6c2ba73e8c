//! The pod annotation `cni.projectcalico.org/floatingIPs` at pod set-up, read as
//! Calico's CNI plugin reads it (cni-plugin/pkg/k8s/k8s.go, CmdAddK8s) and
//! checked as libcalico-go's validator checks the workload endpoint the plugin
//! writes (libcalico-go/lib/validator/v3/validator.go, Validate).
//!
//! Order, as in Calico: an absent or empty annotation means no floating IPs;
//! otherwise the CNI feature must be on (even for `[]`); then the value must be
//! a JSON list of strings (Go's encoding/json, [`super::go_json`]); each entry is
//! paired with the pod's address of the family its *text* suggests (IPv6 when it
//! contains `:`), without parsing it; then the validator runs over every pair.
//! What reaches Felix afterwards is a different reading: [`super::conversion`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use super::cni_config::CniFeatureControl;
use super::endpoint::{veth_name_for_workload, IpNatPair, WorkloadEndpoint};
use super::go_json::unmarshal_string_list;

/// The annotation key Calico reads.
pub const FLOATING_IPS_ANNOTATION: &str = "cni.projectcalico.org/floatingIPs";

/// Why Calico refuses a pod's floating-IP annotation. The texts are Calico's.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AnnotationError {
    /// cni-plugin/pkg/k8s/k8s.go CmdAddK8s: `feature_control.floating_ips` off.
    #[error("requested feature is not enabled: floating_ips")]
    FeatureNotEnabled,
    /// cni-plugin/pkg/k8s/k8s.go parseIPAddrs, and the same words in
    /// libcalico-go's k8s conversion: Go's encoding/json text as `reason`.
    #[error("failed to parse '{value}' as JSON: {reason}")]
    BadJson { value: String, reason: String },
    /// Calico's bug: libcalico-go validator.go validateIPNAT calls
    /// `Version()` (a value-receiver method) on the nil `*IP` that
    /// `cnet.ParseCIDROrIP` returns for an entry that is not an address, or for
    /// the internal address `"<nil>"` the plugin writes when the pod lacks the
    /// entry's family. cni-plugin/pkg/plugin/plugin.go cmdAdd recovers the
    /// panic and returns this text followed by `\nStack trace:\n` and a
    /// goroutine dump. The harness stops at the first line: the dump names
    /// Calico's build (paths, addresses) and is not the same on two nodes; a
    /// scenario's `expect: {error: ...}` matches a part of this line, which the
    /// real message also contains.
    #[error(
        "Calico CNI panicked during ADD: runtime error: invalid memory address or nil pointer dereference"
    )]
    CniPanic,
    /// libcalico-go's validator errors (lib/errors/errors.go ErrorValidation).
    #[error("{}", validation_text(.0))]
    Validation(Vec<ErroredField>),
    /// Felix's logrus panic in its route calculation
    /// (felix/ip/ip_addr.go MustParseCIDROrIP, net.ParseCIDR's error text);
    /// see [`super::felix::felix_route_panic`].
    #[error(
        "Felix panics: Failed to parse CIDR cidr=\"{cidr}\" error=invalid CIDR address: {cidr}"
    )]
    FelixPanic { cidr: String },
}

/// One field the validator rejects (lib/errors/errors.go ErroredField).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErroredField {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ErroredField {
    /// ErroredField.String: `%s = '%v'`, then ` (%s)` when there is a reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = '{}'", self.name, self.value)?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        Ok(())
    }
}

/// ErrorValidation.Error: one field inline, several as a list (two spaces
/// after the dash, a newline after each, as Calico writes it).
fn validation_text(fields: &[ErroredField]) -> String {
    match fields {
        [] => "unknown validation error".to_owned(),
        [one] => format!("error with field {one}"),
        many => {
            let mut text = "error with the following fields:\n".to_owned();
            for field in many {
                text.push_str(&format!("-  {field}\n"));
            }
            text
        }
    }
}

/// go-playground validator's built-in `ip` tag failing, as validator.go
/// extractReason words it for a tag without Calico's `Reason: ` prefix (the
/// reason itself starts with `Reason: ` and ends with a space).
fn ip_tag_failure(field: &'static str, value: &str) -> ErroredField {
    ErroredField {
        name: field,
        value: value.to_owned(),
        reason: format!("Reason: failed to validate Field: {field} because of Tag: ip "),
    }
}

/// Go's `net.ParseIP` (Rust's parser agrees on what matters here: both refuse
/// zones and IPv4 octets with leading zeros).
pub(crate) fn go_parse_ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// What libcalico-go lib/net ParseCIDROrIP returns when it does not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoCidrOrIp {
    Address(IpAddr),
    /// Empty text: `net.ParseCIDR` fails, but the fallback
    /// `net.IP.UnmarshalText` accepts it as the nil `IP` (no bytes), whose
    /// lib/net `IP.Version` is 0.
    Nil,
}

impl GoCidrOrIp {
    fn version(self) -> u8 {
        match self {
            GoCidrOrIp::Address(address) => go_ip_version(address),
            GoCidrOrIp::Nil => 0,
        }
    }
}

/// libcalico-go lib/net ParseCIDROrIP: a CIDR (`net.ParseCIDR`: decimal prefix
/// length up to the address's bit length) gives its address, else a plain IP
/// (`IP.UnmarshalText`, which takes `""` as the nil IP); `None` is its error.
fn go_parse_cidr_or_ip(text: &str) -> Option<GoCidrOrIp> {
    if text.is_empty() {
        return Some(GoCidrOrIp::Nil);
    }
    let Some((address, prefix)) = text.split_once('/') else {
        return go_parse_ip(text).map(GoCidrOrIp::Address);
    };
    let address = go_parse_ip(address)?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let valid_prefix = !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix.parse::<u32>().is_ok_and(|n| n <= bits);
    valid_prefix.then_some(GoCidrOrIp::Address(address))
}

/// libcalico-go lib/net `IP.Version`: 4 whenever `To4()` works, which
/// includes IPv4-mapped IPv6 addresses.
pub(crate) fn go_ip_version(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 4,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => 4,
        IpAddr::V6(_) => 6,
    }
}

/// The pod address k8s.go pairs an entry with: by the text alone (`:` means
/// IPv6), before anything parses it. `None` is the zero `net.IPNet` whose
/// address prints as `<nil>`.
pub(crate) fn internal_for(entry: &str, pod_addresses: &[IpAddr]) -> Option<IpAddr> {
    let want_v6 = entry.contains(':');
    pod_addresses
        .iter()
        .copied()
        .find(|a| a.is_ipv6() == want_v6)
}

/// Reads the annotation value (None when the pod has no such annotation) into
/// (internal, external) pairs for a pod with `pod_addresses`, or Calico's error.
pub fn parse_floating_ips(
    annotation: Option<&str>,
    feature: &CniFeatureControl,
    pod_addresses: &[IpAddr],
) -> Result<Vec<IpNatPair>, AnnotationError> {
    // k8s.go CmdAddK8s: `if floatingIPs != ""`.
    let raw = match annotation {
        None | Some("") => return Ok(Vec::new()),
        Some(raw) => raw,
    };
    if !feature.floating_ips {
        return Err(AnnotationError::FeatureNotEnabled);
    }
    let entries = unmarshal_string_list(raw).map_err(|reason| AnnotationError::BadJson {
        value: raw.to_owned(),
        reason,
    })?;
    validate_ip_nats(&entries, pod_addresses)
}

/// The validator over the endpoint's `ipNATs`, pair by pair as go-playground
/// walks them: the field tags (`omitempty,ip`, internalapi IPNAT) first, then
/// the struct-level validateIPNAT. Errors are collected; a panic anywhere wins
/// over all of them.
fn validate_ip_nats(
    entries: &[String],
    pod_addresses: &[IpAddr],
) -> Result<Vec<IpNatPair>, AnnotationError> {
    let mut fields = Vec::new();
    let mut pairs = Vec::new();
    for entry in entries {
        let internal = internal_for(entry, pod_addresses);
        if !entry.is_empty() && go_parse_ip(entry).is_none() {
            fields.push(ip_tag_failure("ExternalIP", entry));
        }
        let (Some(internal), Some(external)) = (internal, go_parse_cidr_or_ip(entry)) else {
            return Err(AnnotationError::CniPanic);
        };
        // An empty entry (`""`, or `null` in the list) passes the `omitempty`
        // tag and parses as the nil IP of version 0: a mismatch, no panic.
        if go_ip_version(internal) != external.version() {
            fields.push(ErroredField {
                name: "ExternalIP",
                value: entry.clone(),
                reason: "mismatched IP versions".to_owned(),
            });
        }
        if let GoCidrOrIp::Address(external) = external {
            pairs.push(IpNatPair { internal, external });
        }
    }
    if fields.is_empty() {
        Ok(pairs)
    } else {
        Err(AnnotationError::Validation(fields))
    }
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
        ifindex: None,
    })
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
    #[case::feature_off_even_for_null("feature_off_null", "null", OFF, &[POD_V4])]
    #[case::bad_json("bad_json", r#"["203.0.113.10""#, ON, &[POD_V4])]
    #[case::bad_json_syntax("bad_json_syntax", "203.0.113.10", ON, &[POD_V4])]
    #[case::trailing_garbage("trailing_garbage", r#"["203.0.113.10"].x"#, ON, &[POD_V4])]
    #[case::not_a_list("not_a_list", r#""203.0.113.10""#, ON, &[POD_V4])]
    #[case::not_strings("not_strings", "[1]", ON, &[POD_V4])]
    #[case::not_an_ip("not_an_ip", r#"["203.0.113.300"]"#, ON, &[POD_V4])]
    #[case::empty_entry("empty_entry", r#"[""]"#, ON, &[POD_V4])]
    #[case::null_entry("null_entry", "[null]", ON, &[POD_V4])]
    #[case::empty_after_an_address("empty_after_an_address", r#"["203.0.113.10",""]"#, ON, &[POD_V4])]
    #[case::empty_entry_dual_stack("empty_entry_dual_stack", r#"[""]"#, ON, &[POD_V4, POD_V6])]
    #[case::cidr_is_not_an_ip("cidr", r#"["203.0.113.10/32"]"#, ON, &[POD_V4])]
    #[case::two_cidrs("two_cidrs", r#"["203.0.113.10/32","2001:db8:f1::/64"]"#, ON, &[POD_V4, POD_V6])]
    #[case::cidr_of_missing_family("cidr_of_missing_family", r#"["2001:db8:f1::/64"]"#, ON, &[POD_V4])]
    #[case::mapped_v4_on_dual_stack("mapped_v4_on_dual_stack", r#"["::ffff:203.0.113.10"]"#, ON, &[POD_V4, POD_V6])]
    #[case::mapped_v4_on_v4_pod("mapped_v4_on_v4_pod", r#"["::ffff:203.0.113.10"]"#, ON, &[POD_V4])]
    #[case::v6_without_pod_v6("v6_on_v4_pod", r#"["2001:db8:f1::10"]"#, ON, &[POD_V4])]
    #[case::v4_without_pod_v4("v4_on_v6_pod", r#"["203.0.113.10"]"#, ON, &[POD_V6])]
    #[case::panic_wins_over_field_errors("panic_wins", r#"["203.0.113.10/32", "bogus"]"#, ON, &[POD_V4])]
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
        assert_eq!(
            parse_floating_ips(Some(""), &OFF, &addrs(&[POD_V4])),
            Ok(vec![])
        );
    }

    #[test]
    fn calico_texts_are_verbatim() {
        let e = |a: &str, p: &[&str]| {
            parse_floating_ips(Some(a), &ON, &addrs(p))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(r#"["bogus"]"#, &[POD_V4]),
            "Calico CNI panicked during ADD: runtime error: invalid memory address or nil pointer dereference"
        );
        assert_eq!(
            e(r#"["2001:db8:f1::10"]"#, &[POD_V4]),
            e(r#"["bogus"]"#, &[POD_V4])
        );
        assert_eq!(
            e(r#"["203.0.113.10/32"]"#, &[POD_V4]),
            "error with field ExternalIP = '203.0.113.10/32' (Reason: failed to validate Field: ExternalIP because of Tag: ip )"
        );
        assert_eq!(
            e(r#"["::ffff:203.0.113.10"]"#, &[POD_V4, POD_V6]),
            "error with field ExternalIP = '::ffff:203.0.113.10' (mismatched IP versions)"
        );
        // ParseCIDROrIP("") falls back to net.IP.UnmarshalText, which takes
        // empty text: a version mismatch, not the nil dereference.
        for empty in [r#"[""]"#, "[null]", r#"["203.0.113.10",""]"#] {
            assert_eq!(
                e(empty, &[POD_V4]),
                "error with field ExternalIP = '' (mismatched IP versions)",
                "{empty}"
            );
        }
        assert_eq!(
            e("x", &[POD_V4]),
            "failed to parse 'x' as JSON: invalid character 'x' looking for beginning of value"
        );
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
