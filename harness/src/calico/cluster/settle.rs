//! Felix acting on what was staged: its view of the endpoints, the NAT,
//! routes and conntrack deletions that follow, the pods whose own routes
//! change, and the floating IPs whose pod changed.

use std::collections::BTreeMap;

use super::step::{FelixUpdate, HolderChange};
use super::Cluster;
use crate::calico::desired::ClusterState;
use crate::calico::endpoint::WorkloadEndpoint;

/// The endpoints Felix has (pods in name order), its switch and the pools.
pub(super) fn felix_view(cluster: &Cluster) -> ClusterState {
    ClusterState {
        endpoints: cluster
            .pods
            .values()
            .filter(|pod| pod.felix.is_present())
            .map(|pod| WorkloadEndpoint {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                node: pod.node.clone(),
                interface: pod.interface.clone(),
                addresses: pod.addresses.clone(),
                ip_nats: pod.felix.ip_nats().to_vec(),
                ifindex: Some(pod.interface_order),
            })
            .collect(),
        felix_floating_ips: cluster.config.felix_floating_ips.is_enabled(),
        calico: cluster.config.calico,
        pools: cluster.config.pools.clone(),
    }
}

pub(super) fn settle(cluster: &mut Cluster) -> FelixUpdate {
    let view = felix_view(cluster);
    let before: BTreeMap<_, _> = cluster.holders();
    let topology = cluster.config.network.topology();
    let changes = cluster.felix.update(&view, &topology);
    cluster.gre.forget(&changes.conntrack);
    let after = cluster.holders();
    let mut holders = Vec::new();
    for (floating_ip, pod) in &after {
        if before.get(floating_ip) != Some(pod) {
            holders.push(HolderChange {
                floating_ip: *floating_ip,
                from: before.get(floating_ip).cloned(),
                to: Some(pod.clone()),
            });
        }
    }
    for (floating_ip, pod) in &before {
        if !after.contains_key(floating_ip) {
            holders.push(HolderChange {
                floating_ip: *floating_ip,
                from: Some(pod.clone()),
                to: None,
            });
        }
    }
    holders.sort_by_key(|change| change.floating_ip);
    let mut pod_routes = Vec::new();
    for name in std::mem::take(&mut cluster.dirty) {
        let Some(pod) = cluster.pods.get(&name) else {
            continue;
        };
        let has = pod.felix.is_present();
        if has != cluster.routed.contains(&name) {
            pod_routes.push((name.clone(), has));
            if has {
                cluster.routed.insert(name);
            } else {
                cluster.routed.remove(&name);
            }
        }
    }
    FelixUpdate {
        changes,
        pod_routes,
        holders,
    }
}
