//! Properties of the model that hold after any sequence of steps, checked
//! with proptest over random sequences (shrunk to the shortest failing one).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::tests::{config, pool, without_blocks};
use super::*;
use crate::calico::annotation::FLOATING_IPS_ANNOTATION;
use crate::calico::desired::desired_state;
use crate::calico::diff::diff;
use crate::calico::predict::{Landing, Packet};
use crate::vocab::Protocol;

const PODS: [&str; 4] = ["p0", "p1", "p2", "p3"];
const NODES: [&str; 2] = ["node-a", "node-b"];
/// Annotation entries: good, shared, shadowing a pod, of the other family,
/// not an address.
const ENTRIES: [&str; 6] = [
    "203.0.113.10",
    "203.0.113.11",
    "198.19.0.9",
    "2001:db8:f1::10",
    "203.0.113.10/32",
    "bogus",
];

fn annotation() -> impl Strategy<Value = Option<String>> {
    let list = |entries: Vec<&str>| Some(serde_json::to_string(&entries).unwrap());
    prop_oneof![
        // Mostly the two good floating IPs, so that claims meet often.
        4 => proptest::sample::subsequence(ENTRIES[..2].to_vec(), 0..=2).prop_map(list),
        2 => proptest::sample::subsequence(ENTRIES.to_vec(), 0..=3).prop_map(list),
        1 => Just(Some("[".to_string())),
        1 => Just(None),
    ]
}

fn step() -> impl Strategy<Value = ClusterStep> {
    let pod = proptest::sample::select(PODS.to_vec());
    prop_oneof![
        3 => (pod.clone(), proptest::sample::select(NODES.to_vec()), annotation()).prop_map(
            |(name, node, value)| ClusterStep::CreatePod {
                name: name.into(),
                namespace: "default".into(),
                node: node.into(),
                annotations: value
                    .map(|v| BTreeMap::from([(FLOATING_IPS_ANNOTATION.to_string(), v)]))
                    .unwrap_or_default(),
            }
        ),
        1 => pod.clone().prop_map(|name| ClusterStep::DeletePod { name: name.into() }),
        3 => (pod.clone(), annotation()).prop_map(|(pod, floating_ips)| ClusterStep::Annotate {
            pod: pod.into(),
            floating_ips,
        }),
        1 => (pod, proptest::sample::select(vec![PodPhase::Running, PodPhase::Succeeded]))
            .prop_map(|(pod, phase)| ClusterStep::SetPhase { pod: pod.into(), phase }),
    ]
}

fn run(steps: &[ClusterStep], cni: bool) -> (Cluster, Vec<Result<Effects, StepRefused>>) {
    let mut config = config(true, cni, false);
    // Blocks of four from .8: node-a's pods at .8 to .11, where the order
    // of the addresses as text (".10" < ".8") is not their numeric order.
    config.pools[0] = pool("pods", "198.19.0.8/29", Some(30), false);
    let mut cluster = Cluster::new(config);
    let outcomes = steps.iter().map(|step| cluster.apply(step)).collect();
    (cluster, outcomes)
}

/// Felix's rule for a floating IP: of every endpoint claiming it, the
/// internal address earliest as text (felix/dataplane/linux/
/// floating_ip_mgr.go CompleteDeferredWork, per node; across nodes the same
/// comparison among the nodes' winners).
fn felix_pick(cluster: &Cluster) -> BTreeMap<IpAddr, String> {
    let mut best: BTreeMap<IpAddr, (String, String)> = BTreeMap::new();
    for pod in cluster.pods().values() {
        for pair in pod.felix.ip_nats() {
            let text = pair.internal.to_string();
            let keep = best.get(&pair.external).is_some_and(|(t, _)| *t <= text);
            if !keep {
                best.insert(pair.external, (text, pod.name.clone()));
            }
        }
    }
    best.into_iter().map(|(ip, (_, pod))| (ip, pod)).collect()
}

proptest! {
    #[test]
    fn each_floating_ips_holder_is_the_one_felixs_rules_pick(
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        let (cluster, _) = run(&steps, true);
        prop_assert_eq!(cluster.holders(), felix_pick(&cluster));
    }

    #[test]
    fn ipam_never_hands_out_an_address_twice(
        steps in proptest::collection::vec(step(), 0..16),
    ) {
        let (cluster, _) = run(&steps, true);
        let mut seen = BTreeSet::new();
        for pod in cluster.pods().values() {
            for address in &pod.addresses {
                prop_assert!(seen.insert(*address), "{} handed out twice", address);
            }
        }
    }

    #[test]
    fn a_refused_step_changes_nothing_but_the_blocks_it_claimed(
        steps in proptest::collection::vec(step(), 0..10),
        last in step(),
    ) {
        // Felix's switch off in the CNI config: annotated set-ups are refused.
        let (mut cluster, _) = run(&steps, false);
        let before = without_blocks(&cluster);
        if cluster.apply(&last).is_err() {
            prop_assert_eq!(without_blocks(&cluster), before);
        }
    }

    #[test]
    fn step_by_step_felix_is_felix_computed_afresh(
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        let (cluster, _) = run(&steps, true);
        let afresh = desired_state(&cluster.felix_view(), &cluster.config().network.topology());
        prop_assert_eq!(cluster.felix(), &afresh);
    }

    #[test]
    fn felixs_part_of_the_changes_is_the_change_of_felixs_part(
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        // Under BIRD the lab applies Felix's part of each step's changes to
        // what Felix held: the same as the change between Felix's parts.
        let mut cluster = Cluster::new(config(true, true, false));
        for step in &steps {
            let before = cluster.felix().clone();
            if let Ok(effects) = cluster.apply(step) {
                let whole = diff(&before.felix_part(), &cluster.felix().felix_part(), ConntrackProfile::Calico);
                prop_assert_eq!(effects.felix.changes.felix_part(&before), whole);
            }
        }
    }

    #[test]
    fn replies_come_from_the_address_the_client_sent_to(
        steps in proptest::collection::vec(step(), 0..12),
        protocol in proptest::sample::select(Protocol::ALL.to_vec()),
    ) {
        let (cluster, _) = run(&steps, true);
        let senders = ["client", "node-a", "node-b"].into_iter().chain(PODS);
        for from in senders.filter(|s| cluster.pod(s).is_some() || !s.starts_with('p')) {
            for floating_ip in cluster.holders().keys() {
                let packet = Packet::new(from, *floating_ip, protocol);
                for outcome in cluster.predict(&packet).unwrap().outcomes {
                    if let Landing::Pod { reply_source: Some(reply), .. } = outcome.landing {
                        prop_assert_eq!(reply, *floating_ip);
                    }
                }
            }
        }
    }
}
