//! Felix acting on what was staged: its view of the endpoints, the NAT,
//! routes and conntrack deletions that follow, the pods whose own routes
//! change, and the floating IPs whose pod changed.

use std::collections::BTreeMap;

use super::step::{FelixUpdate, HolderChange};
use super::Cluster;
use crate::calico::desired::ClusterState;
use crate::calico::endpoint::WorkloadEndpoint;

/// The endpoints Felix has (pods in name order), its switch, the pools and
/// each node's blocks (confd's).
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
        node_blocks: (cluster.config.network.nodes.iter())
            .map(|node| (node.name.clone(), cluster.ipam.node_blocks(&node.name)))
            .filter(|(_, blocks)| !blocks.is_empty())
            .collect(),
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
    restore_shadowed_routes(cluster, &changes, &mut pod_routes);
    FelixUpdate {
        changes,
        pod_routes,
        holders,
    }
}

/// A floating-IP route that took the place of a local pod's own route (one
/// route per CIDR on the node, the highest ifindex: felix/routetable/
/// route_table.go recalculateDesiredKernelRoute) goes with its claim, and
/// Felix's route table programs the pod's own route again, the CIDR's
/// remaining target (felix/dataplane/linux/endpoint_mgr.go calculateRoutes).
/// Found by scenarios/floating-ip-shadows-answers.yaml on every reference
/// dataplane: the pod's node had no route to it once the claim went.
fn restore_shadowed_routes(
    cluster: &Cluster,
    changes: &crate::calico::diff::Changes,
    pod_routes: &mut Vec<(String, bool)>,
) {
    for change in &changes.routes {
        for destination in &change.remove {
            let owner = (cluster.pods.values()).find(|pod| {
                pod.node == change.member
                    && pod.addresses.contains(destination)
                    && cluster.routed.contains(&pod.name)
            });
            if let Some(pod) = owner {
                let restore = (pod.name.clone(), true);
                if !pod_routes.contains(&restore) {
                    pod_routes.push(restore);
                }
            }
        }
    }
}
