//! Pods of a [`Lab`]: wired into their nodes as Calico's CNI plugin does, and
//! unwired again.

use std::net::IpAddr;

use futures::future::{join_all, try_join_all};

use super::addressing::*;
use super::cluster::{check_members, create, job, Lab, PodState, NO_DAD};
use super::error::LabError;
use super::fabric::{default_of, uplink_end};
use super::netlink::{Member, Route, VethEnd};
use super::netns::Netns;
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
        let members = create(
            &self.rt,
            pods.iter()
                .zip(&names)
                // Only IPv6 needs its addresses usable at once.
                .map(|(p, n)| {
                    job(
                        n.clone(),
                        if p.addresses.iter().any(IpAddr::is_ipv6) {
                            &NO_DAD
                        } else {
                            &[]
                        },
                    )
                })
                .collect(),
        )
        .await;
        tracing::debug!(lab = %lab, pods = pods.len(), "pod namespaces created in {:?}", started.elapsed());
        let members = match members {
            Ok(m) => m,
            Err(e) => {
                // Keep the record exact: drop what was not made.
                for name in &names {
                    let _ = Netns::delete(name);
                }
                let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
                self.forget_pods(&names);
                let _ = self.record.write();
                return Err(e);
            }
        };
        let mut wired = Vec::new();
        for (pod, member) in pods.iter().zip(members) {
            let node = self.node_index(&pod.node)?;
            let state = &mut self.nodes[node];
            let host_ifindex = state.next_ifindex;
            state.next_ifindex += 1;
            wired.push((
                node,
                PodState {
                    spec: pod.clone(),
                    member,
                    host_ifindex,
                },
            ));
        }
        let results = join_all(
            wired
                .iter()
                .map(|(node, pod)| self.wire_pod(&self.nodes[*node].member, pod)),
        )
        .await;
        tracing::debug!(lab = %lab, "pods wired in {:?}", started.elapsed());
        // Keep even pods whose wiring failed, so teardown and remove_pod know them.
        for (_, pod) in wired {
            self.pods.insert(pod.spec.name.clone(), pod);
        }
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        // Every link add_pods makes is a veth with one end on a node, so the
        // nodes' links show any pair that reached the host namespace.
        let mut touched: Vec<&Member> = Vec::new();
        for node in &self.nodes {
            if pods.iter().any(|p| p.node == node.spec.name) {
                touched.push(&node.member);
            }
        }
        check_members(&lab, &touched).await?;
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

    async fn wire_pod(&self, node: &Member, pod: &PodState) -> Result<(), LabError> {
        let interface = pod.spec.interface.as_str();
        node.add_veth(
            VethEnd {
                name: interface,
                index: pod.host_ifindex,
                mac: Some(NODE_SIDE_MAC),
                controller: None,
            },
            uplink_end(),
            &pod.member.netns,
        )
        .await?;
        // Requests on one socket are handled in the order sent, so each side's
        // steps go out together instead of waiting for each answer in turn.
        let node_side = async {
            let mut steps: Vec<futures::future::BoxFuture<'_, Result<(), LabError>>> = vec![
                Box::pin(node.set_proxy_arp(pod.host_ifindex, interface)),
                Box::pin(node.set_proxy_delay_zero(pod.host_ifindex, interface)),
            ];
            for address in &pod.spec.addresses {
                steps.push(Box::pin(node.replace_route(Route::dev(
                    *address,
                    Family::of(address).host_prefix(),
                    pod.host_ifindex,
                ))));
            }
            try_join_all(steps).await
        };
        let pod_side = async {
            let member = &pod.member;
            let mut steps: Vec<futures::future::BoxFuture<'_, Result<(), LabError>>> = vec![
                Box::pin(member.link_up(IFINDEX_LO, "lo")),
                Box::pin(member.link_up(IFINDEX_ETH0, UPLINK)),
            ];
            for address in &pod.spec.addresses {
                let family = Family::of(address);
                steps.push(Box::pin(member.add_address(
                    IFINDEX_ETH0,
                    *address,
                    family.host_prefix(),
                    UPLINK,
                )));
            }
            for address in &pod.spec.addresses {
                let family = Family::of(address);
                let mut route = match family {
                    Family::V4 => Route::via(default_of(family), 0, POD_GATEWAY_V4.into()),
                    Family::V6 => Route::via(default_of(family), 0, POD_GATEWAY_V6.into()),
                };
                route.dev = Some(IFINDEX_ETH0);
                route.onlink = family == Family::V4;
                steps.push(Box::pin(member.replace_route(route)));
            }
            try_join_all(steps).await
        };
        futures::try_join!(node_side, pod_side)?;
        Ok(())
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
            if routed {
                node.replace_route(Route::dev(*address, prefix, pod.host_ifindex))
                    .await?;
            } else {
                node.remove_route(*address, prefix, None).await?;
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
        let namespace = pod.member.netns.name().to_string();
        drop(pod);
        Netns::delete(&namespace)?;
        self.forget_pods(&[name]);
        self.record.write()?;
        result
    }
}
