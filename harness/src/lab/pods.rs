//! Pods of a [`Lab`]: wired into their nodes as Calico's CNI plugin does, and
//! unwired again.

use std::net::IpAddr;

use super::addressing::*;
use super::cluster::{check_members, Lab, PodState};
use super::error::LabError;
use super::netlink::{Member, NextHopSeen, Route};
use super::netns::Netns;
use super::pod_wiring::{wire_pods, PodJob};
use super::spec::{namespace_name, PodSpec};

impl Lab {
    /// Wire one pod into its node (see [`Lab::add_pods`]).
    pub async fn add_pod(&mut self, pod: &PodSpec) -> Result<(), LabError> {
        self.add_pods(std::slice::from_ref(pod)).await
    }

    /// Wire pods into their nodes as Calico's CNI plugin does, all at once: a
    /// namespace each, `eth0` with the pod's /32 (/128) and a default route via
    /// 169.254.1.1 (fe80::ecee:eeff:feee:eeee), the node side `cali...` with
    /// proxy ARP and a route to each pod address.
    pub async fn add_pods(&mut self, pods: &[PodSpec]) -> Result<(), LabError> {
        let lab = self.spec.name.clone();
        let mut seen = std::collections::BTreeSet::new();
        for pod in pods {
            pod.validate(&lab)?;
            if self.pods.contains_key(&pod.name) || !seen.insert(pod.name.as_str()) {
                return Err(LabError::PodExists {
                    lab,
                    pod: pod.name.clone(),
                });
            }
            if self.member_kind(&pod.name).is_some() {
                return Err(super::spec::SpecError::Duplicate {
                    lab,
                    name: pod.name.clone(),
                }
                .into());
            }
            self.node_index(&pod.node)?;
        }
        let names: Vec<String> = pods.iter().map(|p| namespace_name(&lab, &p.name)).collect();
        self.record.namespaces.extend(names.iter().cloned());
        self.record.pods.extend(pods.iter().map(|p| p.name.clone()));
        self.record.write()?;

        let started = std::time::Instant::now();
        let mut states = Vec::new();
        for (pod, namespace) in pods.iter().zip(&names) {
            let node = self.node_index(&pod.node)?;
            let state = &mut self.nodes[node];
            let host_ifindex = state.next_ifindex;
            state.next_ifindex += 1;
            states.push((
                node,
                PodState {
                    spec: pod.clone(),
                    netns: Netns::by_name(namespace)?,
                    host_ifindex,
                },
            ));
        }
        let jobs: Vec<PodJob> = states
            .iter()
            .map(|(node, pod)| PodJob {
                spec: pod.spec.clone(),
                namespace: pod.netns.name().to_string(),
                node: self.nodes[*node].member.netns.clone(),
                host_ifindex: pod.host_ifindex,
            })
            .collect();
        // The work is system calls on dedicated threads, waited for off the
        // runtime's workers.
        let lab_name = lab.clone();
        let errors = tokio::task::spawn_blocking(move || wire_pods(&lab_name, &jobs))
            .await
            .map_err(|_| LabError::Panicked {
                lab: lab.clone(),
                what: "wiring pods",
            })?;
        tracing::debug!(lab = %lab, pods = pods.len(), "pods wired in {:?}", started.elapsed());
        // Keep even pods whose wiring failed, so teardown and remove_pod know them.
        for (_, pod) in states {
            self.pods.insert(pod.spec.name.clone(), pod);
        }
        if let Some(first) = errors.into_iter().next() {
            return Err(first);
        }
        // Every link add_pods makes is a veth with one end on a node, so the
        // nodes' links show any pair that reached the host namespace.
        let mut touched: Vec<&Member> = Vec::new();
        for node in &self.nodes {
            if pods.iter().any(|p| p.node == node.spec.name) {
                touched.push(&node.member);
            }
        }
        check_members(&lab, &touched).await?;
        // Both ends of each new pair carry traffic only once the kernel has
        // handled their carriers (see crate::ns::netlink::NotReady): the
        // node's side, and the pod's, each from its own namespace.
        super::ready::wait_ready(&lab, &touched).await?;
        let pod_namespaces: Vec<(Netns, bool)> = pods
            .iter()
            .filter_map(|p| {
                let uses_ipv6 = p.addresses.iter().any(|a| a.is_ipv6());
                self.pods.get(&p.name).map(|s| (s.netns.clone(), uses_ipv6))
            })
            .collect();
        super::ready::wait_ready_apart(&lab, pod_namespaces).await?;
        Ok(())
    }

    fn forget_pods(&mut self, pods: &[&str]) {
        let namespaces: Vec<String> = pods
            .iter()
            .map(|p| namespace_name(&self.spec.name, p))
            .collect();
        self.record.namespaces.retain(|ns| !namespaces.contains(ns));
        self.record
            .pods
            .retain(|name| !pods.contains(&name.as_str()));
    }

    /// Remove the node's routes to a pod's own addresses (`routed` false), or
    /// put them back. Felix's route table owns the routes on workload
    /// interfaces and keeps only those of endpoints it has
    /// (felix/dataplane/linux/endpoint_mgr.go calculateRoutes feeds
    /// felix/routetable/route_table.go, which deletes the rest): a pod Felix
    /// no longer has, such as a finished one, keeps its interface but loses
    /// its routes.
    pub async fn route_pod(&self, name: &str, routed: bool) -> Result<(), LabError> {
        let pod = self.pods.get(name).ok_or_else(|| LabError::NoMember {
            lab: self.spec.name.clone(),
            kind: "pod",
            name: name.to_string(),
        })?;
        let node = &self.nodes[self.node_index(&pod.spec.node)?].member;
        for address in &pod.spec.addresses {
            let prefix = Family::of(address).host_prefix();
            if !routed {
                // Only the pod's own route: a pod of the node claiming this
                // address as a floating IP may hold the route, and keeps it.
                node.remove_device_route(*address, prefix, pod.host_ifindex)
                    .await?;
            } else if !held_by_later_interface(node, *address, prefix, pod.host_ifindex).await? {
                node.replace_route(Route::dev(*address, prefix, pod.host_ifindex))
                    .await?;
            }
        }
        Ok(())
    }

    /// Unwire a pod: remove its host-side link (and so its routes) and its namespace.
    pub async fn remove_pod(&mut self, name: &str) -> Result<(), LabError> {
        let pod = self.pods.remove(name).ok_or_else(|| LabError::NoMember {
            lab: self.spec.name.clone(),
            kind: "pod",
            name: name.to_string(),
        })?;
        let node = self.node_index(&pod.spec.node)?;
        let result = self.nodes[node]
            .member
            .delete_link(pod.host_ifindex, &pod.spec.interface)
            .await;
        let namespace = pod.netns.name().to_string();
        drop(pod);
        Netns::delete(&namespace)?;
        self.forget_pods(&[name]);
        self.record.write()?;
        Ok(result?)
    }
}

/// Whether the node's route to `address/prefix` leads out of an interface
/// with a higher ifindex than `ifindex`: a pod of the node claiming the
/// address as a floating IP, created later. Felix's route table keeps one
/// target per CIDR, of one route class the highest ifindex
/// (felix/routetable/route_table.go recalculateDesiredKernelRoute), so a
/// pod whose endpoint comes back does not take the route from it.
async fn held_by_later_interface(
    node: &Member,
    address: IpAddr,
    prefix: u8,
    ifindex: u32,
) -> Result<bool, LabError> {
    let route = node.route_to(address).await?;
    Ok(route.is_some_and(|route| {
        route.destination.prefix_len() == prefix
            && (route.hops.iter())
                .any(|hop| matches!(hop, NextHopSeen::Device(dev) if *dev > ifindex))
    }))
}
