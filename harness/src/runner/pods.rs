//! Pod steps: create (CNI ADD, then the pod's wiring and traffic endpoint),
//! delete (in Felix's order) and annotate (Calico's datastore update path);
//! each ends by handing the endpoints to the control plane, which is where a
//! floating IP changes pod.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::case::{FloatingIpChange, ScenarioRun};
use crate::calico::{self, PodRequest, WorkloadEndpoint};
use crate::control::{ClusterState, FipRoute};
use crate::lab::PodSpec;
use crate::scenario::{Annotate, CreatePod, SetPhase};
use crate::traffic::{now_unix_ns, EndpointSpec};

impl ScenarioRun<'_> {
    pub(super) async fn create_pod(&mut self, create: &CreatePod) -> Result<(), String> {
        self.create_pods(&[create])
            .await
            .pop()
            .expect("one result per pod")
    }

    /// Consecutive pod creations as one: each pod's CNI ADD in order (stopping
    /// at the first that fails), then the successful pods wired by one
    /// `add_pods` (one pass over the lab instead of one per pod) and one
    /// control-plane update. One result per pod, in order; pods after a
    /// failure are not created and get the failure's "not run" result.
    pub(super) async fn create_pods(&mut self, creates: &[&CreatePod]) -> Vec<Result<(), String>> {
        let mut results: Vec<Result<(), String>> = Vec::new();
        let mut wired: Vec<(&CreatePod, WorkloadEndpoint)> = Vec::new();
        for create in creates {
            match self.cni_add(create) {
                Ok(Some(endpoint)) => {
                    wired.push((create, endpoint));
                    results.push(Ok(()));
                }
                Ok(None) => results.push(Ok(())),
                Err(message) => {
                    results.push(Err(message));
                    break;
                }
            }
        }
        if let Err(message) = self.wire_pods(&wired).await {
            // The whole wiring failed: every pod of it reports why.
            for (index, create) in creates.iter().enumerate().take(results.len()) {
                if wired.iter().any(|(w, _)| std::ptr::eq(*w, *create)) {
                    results[index] = Err(message.clone());
                }
            }
        }
        results
    }

    /// CNI ADD of one pod, checked against its expected error. `Some` with the
    /// endpoint when the pod is to be wired, `None` when it failed as expected.
    fn cni_add(&mut self, create: &CreatePod) -> Result<Option<WorkloadEndpoint>, String> {
        let pod = &create.pod;
        let request = PodRequest {
            namespace: &pod.namespace,
            name: &pod.name,
            node: &pod.node,
            annotations: &pod.annotations,
        };
        let setup = calico::cni_add(
            &mut self.ipam,
            &self.scenario.cluster.cni_features(),
            self.scenario.cluster.dual_stack,
            &request,
        );
        match (setup, &create.expect_error) {
            (Err(error), Some(expected)) => {
                let text = error.to_string();
                if !text.contains(expected.as_str()) {
                    return Err(format!(
                        "pod set-up failed with `{text}`, expected an error containing `{expected}`"
                    ));
                }
                let leaked = self
                    .ipam
                    .addresses_of(&calico::ipam_handle(&pod.namespace, &pod.name))
                    .to_vec();
                if !leaked.is_empty() {
                    return Err(format!("failed pod set-up leaked addresses {leaked:?}"));
                }
                Ok(None)
            }
            (Err(error), None) => Err(format!("pod set-up failed: {error}")),
            (Ok(endpoint), Some(expected)) => {
                // Undo the set-up so nothing of the unexpected pod stays around.
                calico::cni_del(&mut self.ipam, &pod.namespace, &pod.name);
                Err(format!(
                    "pod set-up succeeded with addresses {:?}, expected an error containing `{expected}`",
                    endpoint.addresses
                ))
            }
            (Ok(endpoint), None) => Ok(Some(endpoint)),
        }
    }

    /// Route the nodes' new blocks, wire the pods in one pass, give each its
    /// traffic endpoint, then hand the endpoints to the control plane once.
    async fn wire_pods(&mut self, pods: &[(&CreatePod, WorkloadEndpoint)]) -> Result<(), String> {
        if pods.is_empty() {
            return Ok(());
        }
        let undo = |run: &mut Self| {
            for (create, _) in pods {
                calico::cni_del(&mut run.ipam, &create.pod.namespace, &create.pod.name);
            }
        };
        // IPAM may have claimed a block for a node on this or on an earlier
        // (failed) set-up: route every block not routed yet.
        let mut nodes: Vec<&str> = pods.iter().map(|(c, _)| c.pod.node.as_str()).collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            let new_blocks: Vec<_> = self
                .ipam
                .node_blocks(node)
                .into_iter()
                .filter(|block| !self.routed_blocks.contains(block))
                .collect();
            if !new_blocks.is_empty() {
                self.routed_blocks.extend(new_blocks.iter().copied());
                self.route_blocks(node, &new_blocks).await?;
            }
        }
        let specs: Vec<PodSpec> = pods
            .iter()
            .map(|(create, endpoint)| {
                let pod = &create.pod;
                PodSpec::new(
                    &pod.name,
                    &pod.namespace,
                    &pod.node,
                    endpoint.addresses.clone(),
                )
            })
            .collect();
        let wired = if self.adopting {
            self.lab.adopt_pods(&specs).await
        } else {
            self.lab.add_pods(&specs).await
        };
        if let Err(error) = wired {
            undo(self);
            return Err(format!("wiring the pod: {error}"));
        }
        for (create, endpoint) in pods {
            let pod = &create.pod;
            let netns = self
                .lab
                .netns(&pod.name)
                .map_err(|e| e.to_string())?
                .clone();
            self.engine
                .add_endpoint(EndpointSpec::pod(
                    &pod.name,
                    netns,
                    endpoint.addresses.clone(),
                    "eth0",
                ))
                .await
                .map_err(|e| e.to_string())?;
            self.pods.insert(pod.name.clone(), pod.clone());
            let ifindex = self.lab.pod_ifindex(&pod.name);
            self.endpoints.insert(
                pod.name.clone(),
                WorkloadEndpoint {
                    ifindex,
                    ..endpoint.clone()
                },
            );
        }
        // The dataplane learns the interfaces before a mapping names them.
        let mut nodes: Vec<&str> = pods.iter().map(|(c, _)| c.pod.node.as_str()).collect();
        nodes.sort();
        nodes.dedup();
        self.send_topology(&nodes).await?;
        self.sync_control().await
    }

    pub(super) async fn delete_pod(&mut self, name: &str) -> Result<(), String> {
        let pod = self
            .pods
            .remove(name)
            .ok_or_else(|| format!("no pod `{name}` is running"))?;
        self.endpoints.remove(name);
        self.phases.remove(name);
        self.unrouted.remove(name);
        // Felix sees the endpoint go first: rules and routes, then the pod's
        // interface and namespace, then its addresses return to IPAM.
        self.sync_control().await?;
        self.engine
            .remove_endpoint(name)
            .await
            .map_err(|e| e.to_string())?;
        if self.adopting {
            self.lab.forget_pod(name);
        } else {
            self.lab.remove_pod(name).await.map_err(|e| e.to_string())?;
        }
        calico::cni_del(&mut self.ipam, &pod.namespace, &pod.name);
        self.send_topology(&[pod.node.as_str()]).await
    }

    pub(super) async fn annotate(&mut self, annotate: &Annotate) -> Result<(), String> {
        let pod = self
            .pods
            .get_mut(&annotate.pod)
            .ok_or_else(|| format!("no pod `{}` is running", annotate.pod))?;
        match &annotate.floating_ips {
            Some(value) => pod
                .annotations
                .insert(calico::FLOATING_IPS_ANNOTATION.into(), value.clone()),
            None => pod.annotations.remove(calico::FLOATING_IPS_ANNOTATION),
        };
        // The pod object changes whatever Calico makes of it; Felix's view
        // follows from it on the sync below.
        let verdict = self.felix_view(&annotate.pod).map(|_| ());
        match (verdict, &annotate.expect_error) {
            (Err(error), Some(expected)) if error.to_string().contains(expected.as_str()) => {}
            (Err(error), _) => return Err(format!("annotation rejected: {error}")),
            (Ok(()), Some(expected)) => {
                return Err(format!(
                    "annotation accepted, expected an error containing `{expected}`"
                ))
            }
            (Ok(()), None) => {}
        }
        self.sync_control().await
    }

    pub(super) async fn set_phase(&mut self, set: &SetPhase) -> Result<(), String> {
        if !self.pods.contains_key(&set.pod) {
            return Err(format!("no pod `{}` is running", set.pod));
        }
        self.phases.insert(set.pod.clone(), set.phase);
        self.sync_control().await
    }

    /// The endpoint Felix has for a live pod, rebuilt from the pod as
    /// Calico's Kubernetes-datastore conversion does on every change
    /// ([`calico::felix_ip_nats`]): `Ok(None)` when Felix has none (a finished
    /// pod), `Err` when the conversion fails (Felix then loses the endpoint
    /// after the watcher's resync) or Felix would panic on it.
    fn felix_view(&self, name: &str) -> Result<Option<WorkloadEndpoint>, calico::AnnotationError> {
        let (Some(pod), Some(endpoint)) = (self.pods.get(name), self.endpoints.get(name)) else {
            return Ok(None);
        };
        let phase = self.phases.get(name).copied().unwrap_or_default();
        let annotation = pod
            .annotations
            .get(calico::FLOATING_IPS_ANNOTATION)
            .map(String::as_str);
        let Some(nats) = calico::felix_ip_nats(annotation, &endpoint.addresses, phase)? else {
            return Ok(None);
        };
        calico::felix_route_panic(&nats.ip_nats, self.scenario.cluster.felix_floating_ips)?;
        Ok(Some(WorkloadEndpoint {
            ip_nats: nats.ip_nats,
            ..endpoint.clone()
        }))
    }

    /// Felix's endpoints: every live pod the conversion gives one for. A pod
    /// whose view fails is left out, as Felix ends up without it; a Felix
    /// panic is not simulated (the step that caused it had to expect it).
    pub(super) fn felix_endpoints(&self) -> Vec<WorkloadEndpoint> {
        self.endpoints
            .keys()
            .filter_map(|name| self.felix_view(name).ok().flatten())
            .collect()
    }

    /// Felix's route table keeps a workload route only for an endpoint Felix
    /// has: a pod that is finished, or whose conversion fails, loses the
    /// node's routes to its addresses (and gets them back if Felix has it
    /// again). A Felix that would panic changes nothing: it is not running.
    /// Removals come before the control-plane update, so the conntrack
    /// cleanup of the pod's addresses follows the route's deletion as in
    /// Felix (felix/routetable/route_table.go); restorations after it.
    async fn route_felix_endpoints(&mut self, restore: bool) -> Result<(), String> {
        let names: Vec<String> = self.endpoints.keys().cloned().collect();
        for name in names {
            let has_endpoint = match self.felix_view(&name) {
                Ok(view) => view.is_some(),
                Err(calico::AnnotationError::FelixPanic { .. }) => continue,
                Err(_) => false,
            };
            let routed = !self.unrouted.contains(&name);
            if has_endpoint == routed || has_endpoint != restore {
                continue;
            }
            self.lab
                .route_pod(&name, has_endpoint)
                .await
                .map_err(|e| e.to_string())?;
            if has_endpoint {
                self.unrouted.remove(&name);
            } else {
                self.unrouted.insert(name);
            }
        }
        Ok(())
    }

    /// Hand the current endpoints to the control plane and note any floating IP
    /// whose receiving pod changed.
    pub(super) async fn sync_control(&mut self) -> Result<(), String> {
        self.route_felix_endpoints(false).await?;
        let expected = self.sync_nat_and_floating_routes().await?;
        self.route_felix_endpoints(true).await?;
        // Under BIRD the step ends once BGP carries what it changed, so the
        // next step's traffic does not race it (see runner/settle.rs).
        self.wait_routes_settled(&expected)
    }

    /// Returns the floating-IP routes the route model gives every member.
    async fn sync_nat_and_floating_routes(
        &mut self,
    ) -> Result<BTreeMap<String, BTreeSet<FipRoute>>, String> {
        let cluster = &self.scenario.cluster;
        let state = ClusterState {
            endpoints: self.felix_endpoints(),
            felix_floating_ips: cluster.felix_floating_ips.is_enabled(),
            pools: cluster.pools.clone(),
        };
        // A move starts when the control plane starts changing the dataplane,
        // so convergence figures include the time the change takes to apply.
        let at_unix_ns = now_unix_ns();
        // The applier runs its per-node transactions on threads of its own and
        // waits for them: keep this worker free for the traffic meanwhile.
        if self.adopting {
            self.control.assume(&state);
        } else {
            let applied = match tokio::task::block_in_place(|| self.control.update(&state)) {
                Ok(applied) => applied,
                Err(error) => return Err(self.control_fault(error)),
            };
            for conflict in &applied.conflicts {
                tracing::info!(?conflict, "several pods claim one floating IP");
            }
        }
        let owners: BTreeMap<IpAddr, String> = self
            .control
            .current()
            .owners
            .iter()
            .map(|(ip, owner)| (*ip, owner.pod.clone()))
            .collect();
        for (floating_ip, pod) in &owners {
            if self.owners.get(floating_ip) != Some(pod) {
                self.owner_changes.push(FloatingIpChange {
                    floating_ip: *floating_ip,
                    from: self.owners.get(floating_ip).cloned(),
                    to: Some(pod.clone()),
                    at_unix_ns,
                });
            }
        }
        for (floating_ip, pod) in &self.owners {
            if !owners.contains_key(floating_ip) {
                self.owner_changes.push(FloatingIpChange {
                    floating_ip: *floating_ip,
                    from: Some(pod.clone()),
                    to: None,
                    at_unix_ns,
                });
            }
        }
        let before: Vec<IpAddr> = self.owners.keys().copied().collect();
        self.owners = owners;
        if self.adopting {
            return Ok(BTreeMap::new());
        }
        self.wait_withdrawn(&before)?;
        Ok(match self.bird {
            Some(_) => self.control.model_routes(&state),
            None => BTreeMap::new(),
        })
    }
}
