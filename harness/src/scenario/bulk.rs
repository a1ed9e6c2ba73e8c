//! Bulk steps. Before the steps are replayed, each `createPods` becomes one
//! `createPod` per pod and each `sends` one `send` per sender and protocol,
//! every value pointing back at the bulk key it came from, so every check of
//! a single step (names, nodes, IPAM, Calico's verdict on the annotation,
//! what a send may expect) applies to each, with its error placed on the bulk
//! step's own text.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::limits::MAX_PODS;
use super::load::Loader;
use super::located::Spanned;
use super::raw::{RawCreatePod, RawCreatePods, RawSend, RawSends, RawStep};
use super::values::Name;
use crate::calico::FLOATING_IPS_ANNOTATION;

/// The `index`-th address of `range`, counting its network address as 0;
/// None past its end.
pub(crate) fn nth_address(range: IpNet, index: u32) -> Option<IpAddr> {
    match range {
        IpNet::V4(net) => {
            let size = 1u64 << (32 - net.prefix_len());
            (u64::from(index) < size)
                .then(|| Ipv4Addr::from(u32::from(net.network()) + index).into())
        }
        IpNet::V6(net) => {
            let host_bits = 128 - u32::from(net.prefix_len());
            let fits = host_bits >= 32 || u64::from(index) < (1u64 << host_bits);
            fits.then(|| Ipv6Addr::from(u128::from(net.network()) + u128::from(index)).into())
        }
    }
}

impl Loader<'_> {
    /// The steps with every `createPods` replaced by its `createPod`s and
    /// every `sends` by its `send`s. A bulk step with an error becomes
    /// nothing (its error is reported here).
    pub(super) fn expand_bulk(&mut self, steps: Vec<Spanned<RawStep>>) -> Vec<Spanned<RawStep>> {
        let mut out = Vec::with_capacity(steps.len());
        let mut pods = 0usize;
        for step in steps {
            let index = step.index;
            let expanded = match step.value {
                RawStep::CreatePods(bulk) => {
                    let made = self.bulk_pods(&bulk, pods);
                    pods += made.len();
                    made.into_iter().map(RawStep::CreatePod).collect()
                }
                RawStep::Sends(bulk) => self
                    .bulk_sends(bulk)
                    .into_iter()
                    .map(RawStep::Send)
                    .collect(),
                other => {
                    pods += usize::from(matches!(other, RawStep::CreatePod(_)));
                    vec![other]
                }
            };
            out.extend(expanded.into_iter().map(|value| Spanned { value, index }));
        }
        out
    }

    /// The sends of one `sends`: one per sender and protocol, or none after
    /// an error.
    fn bulk_sends(&mut self, bulk: RawSends) -> Vec<RawSend> {
        for (list, what, len) in [
            (bulk.from.index, "`from`", bulk.from.value.len()),
            (
                bulk.protocols.index,
                "`protocols`",
                bulk.protocols.value.len(),
            ),
        ] {
            if len == 0 {
                let at = Spanned {
                    value: (),
                    index: list,
                };
                self.error_at(&at, format!("{what} is empty: give at least one"));
                return Vec::new();
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for sender in &bulk.from.value {
            if !seen.insert(sender.value.clone()) {
                self.error_at(sender, format!("`{}` is listed twice", sender.value));
                return Vec::new();
            }
        }
        let mut protocols = bulk.protocols.value.clone();
        protocols.sort_unstable_by_key(|p| p.to_string());
        protocols.dedup();
        if protocols.len() < bulk.protocols.value.len() {
            self.error_at(&bulk.protocols, "a protocol is listed twice");
            return Vec::new();
        }
        let mut sends = Vec::new();
        for sender in &bulk.from.value {
            for protocol in &bulk.protocols.value {
                sends.push(RawSend {
                    protocol: *protocol,
                    from: sender.clone(),
                    to: bulk.to.clone(),
                    count: bulk.count.clone(),
                    interval: bulk.interval.clone(),
                    port: bulk.port.clone(),
                    expect: bulk.expect.clone(),
                });
            }
        }
        sends
    }

    /// The pods of one `createPods`, or none after an error. `before`: pods
    /// the scenario creates in earlier steps (the limit is per scenario).
    fn bulk_pods(&mut self, bulk: &RawCreatePods, before: usize) -> Vec<RawCreatePod> {
        let count = bulk.count.value;
        if count == 0 {
            self.error_at(&bulk.count, "count 0 creates no pod: give at least 1");
            return Vec::new();
        }
        if before.saturating_add(count as usize) > MAX_PODS {
            self.error_at(
                &bulk.count,
                format!(
                    "count {count} makes {} pods in this scenario: at most {MAX_PODS}",
                    before.saturating_add(count as usize)
                ),
            );
            return Vec::new();
        }
        // The longest name is the last; if it is usable, every name is.
        let last = format!("{}-{}", bulk.name_prefix.value, count - 1);
        let last_name = match last.parse::<Name>() {
            Ok(name) => name,
            Err(e) => {
                self.error_at(
                    &bulk.name_prefix,
                    format!("with count {count} the last pod is named `{last}`: {e}"),
                );
                return Vec::new();
            }
        };
        if !self.check_member_name(&bulk.name_prefix, &last_name) {
            return Vec::new();
        }
        if let Some(range) = &bulk.floating_ips {
            if nth_address(range.value.0, count - 1).is_none() {
                self.error_at(
                    range,
                    format!(
                        "the range {} holds fewer than {count} addresses, one floating IP per pod",
                        range.value.0
                    ),
                );
                return Vec::new();
            }
        }
        (0..count)
            .map(|i| {
                let name = format!("{}-{i}", bulk.name_prefix.value)
                    .parse::<Name>()
                    .expect("shorter than the last name, which parsed");
                let mut annotations = BTreeMap::new();
                if let Some(range) = &bulk.floating_ips {
                    let address = nth_address(range.value.0, i).expect("checked: the range fits");
                    annotations.insert(
                        FLOATING_IPS_ANNOTATION.to_string(),
                        Spanned {
                            value: format!("[\"{address}\"]"),
                            index: range.index,
                        },
                    );
                }
                RawCreatePod {
                    name: Some(Spanned {
                        value: name,
                        index: bulk.name_prefix.index,
                    }),
                    namespace: bulk.namespace.clone(),
                    node: Some(bulk.node.clone()),
                    manifest: None,
                    annotations,
                    expect: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::{load_str, Step};

    const HEAD: &str = "cluster:
  cni: ../fixtures/cni/calico-config-floating-ips-on.yaml
  felix: {floatingIPs: Enabled}
  nodes: [node-a, node-b]
  externals: [client]
steps:
";

    fn load(steps: &str) -> Result<crate::scenario::Scenario, String> {
        load_str(
            &format!("{HEAD}{steps}"),
            Path::new("../scenarios/bulk-case.yaml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn create_pods_makes_one_create_pod_each_with_the_next_floating_ip() {
        let scenario = load(
            "  - createPods: {count: 3, node: node-b, namePrefix: web, namespace: shop, floatingIPs: 203.0.113.8/30}\n\
             \x20 - send: {protocol: icmp, from: node-b, to: 203.0.113.10, expect: {deliveredTo: [web-2]}}\n",
        )
        .unwrap();
        let pods: Vec<_> = scenario
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::CreatePod(create) => Some(&create.pod),
                _ => None,
            })
            .collect();
        assert_eq!(pods.len(), 3);
        for (i, pod) in pods.iter().enumerate() {
            assert_eq!(pod.name, format!("web-{i}"));
            assert_eq!(pod.node, "node-b");
            assert_eq!(pod.namespace, "shop");
            assert_eq!(
                pod.annotations[FLOATING_IPS_ANNOTATION],
                format!("[\"203.0.113.{}\"]", 8 + i)
            );
        }
        let plain = load("  - createPods: {count: 2, node: node-a, namePrefix: db}\n").unwrap();
        let Step::CreatePod(first) = &plain.steps[0] else {
            panic!("a createPod step");
        };
        assert!(first.pod.annotations.is_empty());
    }

    #[test]
    fn errors_point_at_the_bulk_step() {
        let cases = [
            "  - createPods: {count: 0, node: node-a, namePrefix: web}\n",
            "  - createPod: {name: one, node: node-a}\n  - createPods: {count: 10000, node: node-a, namePrefix: web}\n",
            &format!(
                "  - createPods: {{count: 10, node: node-a, namePrefix: {}}}\n",
                "w".repeat(50)
            ),
            "  - createPods: {count: 5, node: node-a, namePrefix: web, floatingIPs: 203.0.113.0/30}\n",
            "  - createPods: {count: 2, node: node-z, namePrefix: web}\n",
            "  - createPod: {name: web-1, node: node-a}\n  - createPods: {count: 2, node: node-b, namePrefix: web}\n",
            "  - createPods: {count: 2, node: node-a, namePrefix: web, floatingIPs: 203.0.113.0/30, extra: 1}\n",
        ];
        let rendered: Vec<String> = cases.iter().map(|c| load(c).unwrap_err()).collect();
        insta::assert_yaml_snapshot!(rendered);
    }

    #[test]
    fn sends_makes_one_send_per_sender_and_protocol_in_order() {
        let scenario = load(
            "  - createPod: {name: web, node: node-a, annotations: {cni.projectcalico.org/floatingIPs: '[\"203.0.113.10\"]'}}\n\
             \x20 - createPod: {name: peer, node: node-a}\n\
             \x20 - sends: {from: [node-a, peer], protocols: [gre, icmp], to: 203.0.113.10, count: 2, expect: {deliveredTo: web, seenSource: from}}\n",
        )
        .unwrap();
        let sends: Vec<String> = scenario
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Send(send) => Some(format!(
                    "{} {} x{} {:?}",
                    send.from, send.protocol, send.count, send.expect.seen_source
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            sends,
            [
                "node-a gre x2 Some(From)",
                "node-a icmp x2 Some(From)",
                "peer gre x2 Some(From)",
                "peer icmp x2 Some(From)"
            ]
        );
    }

    #[test]
    fn sends_errors_point_at_the_bulk_step() {
        let pod = "  - createPod: {name: web, node: node-a}\n";
        let cases = [
            "  - sends: {from: [], protocols: [icmp], to: web, expect: {deliveredTo: web}}\n",
            "  - sends: {from: [client], protocols: [], to: web, expect: {deliveredTo: web}}\n",
            "  - sends: {from: [client, client], protocols: [icmp], to: web, expect: {deliveredTo: web}}\n",
            "  - sends: {from: [client], protocols: [icmp, icmp], to: web, expect: {deliveredTo: web}}\n",
            "  - sends: {from: [client, nobody], protocols: [icmp], to: web, expect: {deliveredTo: web}}\n",
            "  - sends: {from: [client], protocols: [icmp, smtp], to: web, expect: {deliveredTo: web}}\n",
        ];
        let rendered: Vec<String> = cases
            .iter()
            .map(|c| load(&format!("{pod}{c}")).unwrap_err())
            .collect();
        insta::assert_yaml_snapshot!(rendered);
    }

    #[test]
    fn nth_address_counts_from_the_network_address_and_stops_at_the_end() {
        let v4: IpNet = "198.19.64.0/30".parse().unwrap();
        assert_eq!(nth_address(v4, 0), Some("198.19.64.0".parse().unwrap()));
        assert_eq!(nth_address(v4, 3), Some("198.19.64.3".parse().unwrap()));
        assert_eq!(nth_address(v4, 4), None);
        let v6: IpNet = "2001:db8::/120".parse().unwrap();
        assert_eq!(nth_address(v6, 255), Some("2001:db8::ff".parse().unwrap()));
        assert_eq!(nth_address(v6, 256), None);
        let wide: IpNet = "2001:db8::/64".parse().unwrap();
        assert_eq!(
            nth_address(wide, u32::MAX),
            Some("2001:db8::ffff:ffff".parse().unwrap())
        );
        let one: IpNet = "192.0.2.7/32".parse().unwrap();
        assert_eq!(nth_address(one, 0), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(nth_address(one, 1), None);
    }
}
