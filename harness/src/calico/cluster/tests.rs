//! The state machine against Calico's own tests (each case names the test it
//! comes from) and against properties that hold after any sequence of steps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rstest::rstest;

use super::*;
use crate::calico::annotation::FLOATING_IPS_ANNOTATION;
use crate::calico::nat::{DnatMapping, NodeNatState, SnatMapping};
use crate::calico::pool::IpPoolSpec;

pub(crate) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub(crate) fn pool(name: &str, cidr: &str, block_size: Option<u8>, disabled: bool) -> IpPool {
    IpPoolSpec {
        cidr: cidr.into(),
        block_size,
        disabled: Some(disabled),
        ..Default::default()
    }
    .into_pool(name)
    .unwrap()
}

/// The catalogue's usual cluster: pods from 198.19.0.0/16 (and
/// 2001:db8:1::/48 when dual stack), floating IPs in disabled pools.
pub(crate) fn config(felix: bool, cni: bool, dual_stack: bool) -> ClusterConfig {
    let mut pools = vec![
        pool("default-ipv4-ippool", "198.19.0.0/16", None, false),
        pool("floating-ipv4", "203.0.113.0/24", None, true),
    ];
    if dual_stack {
        pools.push(pool("default-ipv6-ippool", "2001:db8:1::/48", None, false));
        pools.push(pool("floating-ipv6", "2001:db8:f1::/64", None, true));
    }
    ClusterConfig {
        cni: CniFeatureControl {
            floating_ips: cni,
            ..Default::default()
        },
        felix_floating_ips: if felix {
            FelixFloatingIps::Enabled
        } else {
            FelixFloatingIps::Disabled
        },
        dual_stack,
        pools,
        network: Network::lab(&["node-a", "node-b"], &["client"], dual_stack),
        profile: ConntrackProfile::Calico,
        calico: Default::default(),
    }
}

pub(crate) fn create(name: &str, node: &str, floating_ips: Option<&str>) -> ClusterStep {
    ClusterStep::CreatePod {
        name: name.into(),
        namespace: "default".into(),
        node: node.into(),
        annotations: floating_ips
            .map(|v| BTreeMap::from([(FLOATING_IPS_ANNOTATION.to_string(), v.to_string())]))
            .unwrap_or_default(),
    }
}

pub(crate) fn annotate(pod: &str, value: Option<&str>) -> ClusterStep {
    ClusterStep::Annotate {
        pod: pod.into(),
        floating_ips: value.map(String::from),
    }
}

/// A node's floating-IP NAT (its workload dispatch and NAT-outgoing left out).
fn nat(cluster: &Cluster, node: &str) -> NodeNatState {
    let state = cluster.felix().nat.get(node).cloned().unwrap_or_default();
    NodeNatState {
        filter: None,
        ..state
    }
}

fn dnat(external: &str, internal: &str) -> DnatMapping {
    DnatMapping::new(ip(external), ip(internal))
}

fn snat(internal: &str, external: &str) -> SnatMapping {
    SnatMapping::new(ip(internal), ip(external))
}

/// felix/dataplane/linux/floating_ip_mgr_test.go, "with floatingIPs
/// enabled" / "disabled": an endpoint at 10.0.240.2 and 2001:db8:2::2 with
/// two floating IPs per family gets a DNAT for each and one SNAT per family,
/// to the earliest floating IP; none with Felix's switch off; none once the
/// endpoint is removed. (The test's OpenStack case, NAT despite the switch,
/// has no Kubernetes counterpart.)
#[rstest]
#[case::enabled(true, false, 4, 2)]
#[case::disabled(false, false, 0, 0)]
#[case::enabled_then_removed(true, true, 0, 0)]
fn floating_ip_manager(
    #[case] felix: bool,
    #[case] remove: bool,
    #[case] dnats: usize,
    #[case] snats: usize,
) {
    let mut config = config(felix, true, true);
    config.pools = vec![
        pool("v4", "10.0.240.2/32", Some(32), false),
        pool("v6", "2001:db8:2::2/128", Some(128), false),
    ];
    let mut cluster = Cluster::new(config);
    let value = r#"["172.16.1.3","172.18.1.4","2001:db8:3::2","2001:db8:4::2"]"#;
    cluster
        .apply(&create("pod-11", "node-a", Some(value)))
        .unwrap();
    if remove {
        cluster
            .apply(&ClusterStep::DeletePod {
                name: "pod-11".into(),
            })
            .unwrap();
    }
    let state = nat(&cluster, "node-a");
    let expected = NodeNatState::new(
        [
            dnat("172.16.1.3", "10.0.240.2"),
            dnat("172.18.1.4", "10.0.240.2"),
            dnat("2001:db8:3::2", "2001:db8:2::2"),
            dnat("2001:db8:4::2", "2001:db8:2::2"),
        ],
        [
            snat("10.0.240.2", "172.16.1.3"),
            snat("2001:db8:2::2", "2001:db8:3::2"),
        ],
    );
    assert_eq!(state.dnat.len(), dnats);
    assert_eq!(state.snat.len(), snats);
    if dnats > 0 {
        assert_eq!(state, expected);
    }
    assert_eq!(nat(&cluster, "node-b"), NodeNatState::default());
}

/// cni-plugin/tests/calico_cni_k8s_test.go, "using floatingIPs annotation to
/// assign a DNAT": the endpoint's IPNATs pair the pod's address with 1.1.1.1;
/// with the feature off, set-up fails. libcalico-go/lib/backend/k8s/
/// conversion/conversion_test.go "should find the right address family
/// target for dual stack floating IPs": each entry pairs with the pod's
/// address of its family.
#[rstest]
#[case::assigns_a_dnat(true, false, r#"["1.1.1.1"]"#, Ok(vec![("172.16.0.0", "1.1.1.1")]))]
#[case::feature_off(
    false,
    false,
    r#"["1.1.1.1"]"#,
    Err("requested feature is not enabled: floating_ips")
)]
#[case::dual_stack(true, true, r#"["1.1.1.1","fd80:100:100::10"]"#,
    Ok(vec![("172.16.0.0", "1.1.1.1"), ("fd5f:8067::", "fd80:100:100::10")]))]
fn cni_and_conversion(
    #[case] cni: bool,
    #[case] dual_stack: bool,
    #[case] value: &str,
    #[case] expected: Result<Vec<(&str, &str)>, &str>,
) {
    let mut config = config(true, cni, dual_stack);
    config.pools = vec![
        pool("pods", "172.16.0.0/16", None, false),
        pool("pods-v6", "fd5f:8067::/64", None, false),
        pool("floating", "1.1.1.0/24", None, true),
    ];
    let mut cluster = Cluster::new(config);
    let outcome = cluster.apply(&create("pod", "node-a", Some(value)));
    match expected {
        Ok(pairs) => {
            outcome.unwrap();
            let got: Vec<(String, String)> = cluster.pods()["pod"]
                .felix
                .ip_nats()
                .iter()
                .map(|p| (p.internal.to_string(), p.external.to_string()))
                .collect();
            let want: Vec<(String, String)> = pairs
                .iter()
                .map(|(i, e)| (i.to_string(), e.to_string()))
                .collect();
            assert_eq!(got, want);
        }
        Err(text) => {
            let StepRefused::Calico(refusal) = outcome.unwrap_err() else {
                panic!("not Calico's refusal")
            };
            assert_eq!(refusal.text, text);
            assert!(cluster.pods().is_empty());
        }
    }
}

/// A step's expected error is judged in one place: each row is a step, what
/// it expects, and the outcome (`Ok` with Calico's error when there is one,
/// or the mismatch's text).
#[rstest]
#[case::accepted_as_expected(create("web", "node-a", Some(r#"["203.0.113.10"]"#)), None, Ok(None))]
#[case::refused_as_expected(
    create("web", "node-a", Some("[")),
    Some("failed to parse '[' as JSON"),
    Ok(Some("failed to parse '[' as JSON: unexpected end of JSON input"))
)]
#[case::refused_unexpectedly(create("web", "node-a", Some("[")), None,
    Err("Calico refuses to set up pod `web`: failed to parse '[' as JSON: unexpected end of JSON input (add `expect: {error: ...}` to the step if that is the point)"))]
#[case::accepted_unexpectedly(create("web", "node-a", None), Some("requested feature"),
    Err("the step expects pod set-up to fail with `requested feature`, but Calico accepts pod `web`"))]
#[case::refused_otherwise(create("web", "node-a", Some("[")), Some("nil pointer"),
    Err("the step expects the error `nil pointer`, but Calico fails with `failed to parse '[' as JSON: unexpected end of JSON input`"))]
#[case::conversion_fails_as_expected(
    annotate("plain", Some("x")),
    Some("invalid character 'x'"),
    Ok(Some("failed to parse 'x' as JSON: invalid character 'x' looking for beginning of value"))
)]
#[case::conversion_fails_unexpectedly(annotate("plain", Some("x")), None,
    Err("Calico rejects this floating-IP annotation: failed to parse 'x' as JSON: invalid character 'x' looking for beginning of value (add `expect: {error: ...}` to the step if that is the point)"))]
#[case::annotation_accepted_unexpectedly(
    annotate("plain", Some("[]")),
    Some("JSON"),
    Err("the step expects the error `JSON`, but Calico accepts this annotation")
)]
#[case::no_such_pod(
    annotate("ghost", None),
    None,
    Err("no pod `ghost` exists at this step")
)]
fn expected_errors(
    #[case] step: ClusterStep,
    #[case] expected: Option<&str>,
    #[case] outcome: Result<Option<&str>, &str>,
) {
    let mut cluster = Cluster::new(config(true, true, false));
    cluster.apply(&create("plain", "node-b", None)).unwrap();
    let before = without_blocks(&cluster);
    let got = cluster.apply_expecting(&step, expected);
    match outcome {
        Ok(error) => assert_eq!(got.unwrap().calico_error.as_deref(), error),
        Err(text) => {
            assert_eq!(got.unwrap_err().to_string(), text);
            // A step that does not go as expected leaves nothing behind but
            // the block its node claimed.
            assert_eq!(without_blocks(&cluster), before);
        }
    }
}

/// The cluster's state without the IPAM blocks claimed so far.
pub(crate) fn without_blocks(cluster: &Cluster) -> serde_json::Value {
    let mut state = serde_json::to_value(cluster).unwrap();
    state["ipam"]["blocks"] = serde_json::Value::Null;
    state
}

#[test]
fn a_refused_set_up_keeps_only_the_block_it_claimed() {
    let mut cluster = Cluster::new(config(true, false, false));
    let refusal = cluster
        .apply(&create("web", "node-a", Some(r#"["203.0.113.10"]"#)))
        .unwrap_err();
    let StepRefused::Calico(refusal) = refusal else {
        panic!("{refusal}")
    };
    assert_eq!(refusal.by, RefusedBy::CniAnnotation);
    assert_eq!(
        refusal.blocks_claimed,
        [("node-a".to_string(), "198.19.0.0/26".parse().unwrap())]
    );
    assert!(cluster.pods().is_empty());
    // The next pod of the node gets an address of the kept block (the next
    // one: the refused pod's went to the back of the block's queue).
    let effects = cluster.apply(&create("plain", "node-a", None)).unwrap();
    assert_eq!(effects.set_up[0].addresses, [ip("198.19.0.1")]);
    assert!(effects.blocks_claimed.is_empty());
}

#[test]
fn a_move_across_nodes_says_from_and_to_and_every_change() {
    let mut cluster = Cluster::new(config(true, true, false));
    cluster
        .apply(&create("web-a", "node-a", Some(r#"["203.0.113.10"]"#)))
        .unwrap();
    cluster.apply(&create("web-b", "node-b", None)).unwrap();
    let removed = cluster.apply(&annotate("web-a", None)).unwrap();
    let added = cluster
        .apply(&annotate("web-b", Some(r#"["203.0.113.10"]"#)))
        .unwrap();
    insta::assert_yaml_snapshot!([removed, added]);
    assert_eq!(cluster.holders()[&ip("203.0.113.10")], "web-b");
}

#[test]
fn a_finished_pod_loses_its_endpoint_and_its_routes_until_it_runs_again() {
    let mut cluster = Cluster::new(config(true, true, false));
    cluster
        .apply(&create("web", "node-a", Some(r#"["203.0.113.10"]"#)))
        .unwrap();
    let set = |phase| ClusterStep::SetPhase {
        pod: "web".into(),
        phase,
    };
    let finished = cluster.apply(&set(PodPhase::Succeeded)).unwrap();
    assert_eq!(finished.felix.pod_routes, [("web".to_string(), false)]);
    assert_eq!(finished.felix.holders[0].to, None);
    assert!(!cluster.is_routed("web"));
    let running = cluster.apply(&set(PodPhase::Running)).unwrap();
    assert_eq!(running.felix.pod_routes, [("web".to_string(), true)]);
    assert_eq!(running.felix.holders[0].to.as_deref(), Some("web"));
}

/// floating-ip-shadows-answers: web, created after mate on their node,
/// claims mate's address, so node-a's one route for it leads to web (the
/// higher ifindex); once the claim goes, Felix programs mate's own route
/// again (route_table.go keeps the CIDR's remaining target).
#[test]
fn a_pods_own_route_comes_back_when_a_claim_of_its_address_goes() {
    let mut cluster = Cluster::new(config(true, true, false));
    cluster.apply(&create("mate", "node-a", None)).unwrap();
    cluster.apply(&create("web", "node-a", None)).unwrap();
    let claimed = cluster
        .apply(&annotate("web", Some(r#"["198.19.0.0"]"#)))
        .unwrap();
    assert!(claimed.felix.pod_routes.is_empty());
    let released = cluster.apply(&annotate("web", None)).unwrap();
    assert_eq!(released.felix.pod_routes, [("mate".to_string(), true)]);
    // A claim of a free address gives no pod its route back.
    cluster
        .apply(&annotate("web", Some(r#"["198.19.0.9"]"#)))
        .unwrap();
    let freed = cluster.apply(&annotate("web", None)).unwrap();
    assert!(freed.felix.pod_routes.is_empty());
}

#[test]
fn a_failed_conversion_is_carried_out_and_a_felix_crash_refused() {
    let mut cluster = Cluster::new(config(true, true, true));
    cluster
        .apply(&create("web", "node-a", Some(r#"["203.0.113.10"]"#)))
        .unwrap();
    let failed = cluster.apply(&annotate("web", Some("[1]"))).unwrap();
    assert_eq!(
        failed.calico_error.as_deref(),
        Some("failed to parse '[1]' as JSON: json: cannot unmarshal number into Go value of type string")
    );
    assert_eq!(failed.felix.pod_routes, [("web".to_string(), false)]);
    assert!(cluster.holders().is_empty());
    // An IPv4-mapped address on a dual-stack pod would crash Felix: refused,
    // nothing changes.
    let before = serde_json::to_value(&cluster).unwrap();
    let crash = cluster
        .apply(&annotate("web", Some(r#"["::ffff:203.0.113.10"]"#)))
        .unwrap_err();
    assert!(crash.to_string().starts_with("Felix panics"), "{crash}");
    assert_eq!(serde_json::to_value(&cluster).unwrap(), before);
}

#[test]
fn dropped_entries_are_reported_and_the_rest_kept() {
    let mut cluster = Cluster::new(config(true, true, false));
    cluster.apply(&create("web", "node-a", None)).unwrap();
    let effects = cluster
        .apply(&annotate(
            "web",
            Some(r#"["bogus", "203.0.113.20", "203.0.113.10/32"]"#),
        ))
        .unwrap();
    assert_eq!(effects.dropped_entries, ["bogus", "203.0.113.10/32"]);
    assert_eq!(
        cluster.holders().keys().copied().collect::<Vec<_>>(),
        [ip("203.0.113.20")]
    );
}
