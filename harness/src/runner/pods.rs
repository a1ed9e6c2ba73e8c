//! Pod steps: the Calico model decides (set-up with its addresses and the
//! blocks its node claimed, deletion, annotation and phase changes, what
//! Felix does about each), and the case carries the model's effects out:
//! blocks routed, pods wired with their traffic endpoints, Felix's NAT,
//! routes and conntrack deletions applied, pods' own routes dropped and
//! restored, removed pods unwired.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use std::sync::Arc;

use super::case::ScenarioRun;
use super::error::RunnerError;
use super::live_streams::FloatingIpChange;
use crate::calico::cluster::{ClusterStep, Effects, PodSetUp};
use crate::control::FipRoute;
use crate::lab::PodSpec;
use crate::scenario::{Annotate, CreatePod, SetPhase, Step};
use crate::traffic::{now_unix_ns, EndpointSpec};

impl ScenarioRun<'_> {
    pub(super) async fn create_pod(&mut self, create: &CreatePod) -> Result<(), RunnerError> {
        self.create_pods(&[create])
            .await
            .pop()
            .expect("one result per pod")
    }

    /// Consecutive pod creations as one: each pod through the model in
    /// order (stopping at the first whose outcome is not the one its step
    /// expects), then the pods set up wired by one `add_pods` (one pass over
    /// the lab instead of one per pod) and one Felix update. One result per
    /// pod, in order; pods after a failure are not created.
    pub(super) async fn create_pods(
        &mut self,
        creates: &[&CreatePod],
    ) -> Vec<Result<(), RunnerError>> {
        let mut results: Vec<Result<(), RunnerError>> = Vec::new();
        let mut staged = Effects::default();
        for create in creates {
            let step = Step::CreatePod((*create).clone());
            let change = step.cluster_step().expect("a pod step");
            match self.model.stage_expecting(&change, step.expected_error()) {
                Ok(effects) => {
                    staged.blocks_claimed.extend(effects.blocks_claimed);
                    staged.set_up.extend(effects.set_up);
                    results.push(Ok(()));
                }
                Err(mismatch) => {
                    results.push(Err(mismatch.into()));
                    break;
                }
            }
        }
        if let Err(error) = self.set_up(&staged).await {
            // The whole wiring failed: every pod of it reports why.
            let error = Arc::new(error);
            for (result, create) in results.iter_mut().zip(creates) {
                if staged.set_up.iter().any(|p| p.name == create.pod.name) {
                    *result = Err(RunnerError::Shared(Arc::clone(&error)));
                }
            }
        }
        results
    }

    /// Route the blocks nodes claimed, wire the pods set up in one pass,
    /// give each its traffic endpoint, let Felix act once, then wait until
    /// BGP carries the new blocks (it exports them meanwhile).
    async fn set_up(&mut self, effects: &Effects) -> Result<(), RunnerError> {
        let mut blocks: BTreeMap<&str, Vec<ipnet::IpNet>> = BTreeMap::new();
        for (node, block) in &effects.blocks_claimed {
            blocks.entry(node).or_default().push(*block);
        }
        for (node, new) in blocks {
            self.route_blocks(node, &new).await?;
        }
        if !effects.set_up.is_empty() {
            self.wire_pods(&effects.set_up).await?;
        }
        self.wait_blocks_exported(&effects.blocks_claimed)
    }

    /// Wire the pods set up in one pass, give each its traffic endpoint,
    /// then let Felix act once.
    async fn wire_pods(&mut self, set_up: &[PodSetUp]) -> Result<(), RunnerError> {
        let specs: Vec<PodSpec> = set_up
            .iter()
            .map(|pod| PodSpec::new(&pod.name, &pod.namespace, &pod.node, pod.addresses.clone()))
            .collect();
        let wired = if self.mode.adopting {
            self.lab.adopt_pods(&specs).await
        } else {
            self.lab.add_pods(&specs).await
        };
        wired.map_err(RunnerError::Wiring)?;
        for PodSetUp {
            name, addresses, ..
        } in set_up
        {
            let netns = self.lab.netns(name)?.clone();
            self.engine
                .add_endpoint(EndpointSpec::pod(name, netns, addresses.clone(), "eth0"))
                .await?;
        }
        // The dataplane learns the interfaces before a mapping names them.
        let nodes: BTreeSet<&str> = set_up.iter().map(|p| p.node.as_str()).collect();
        self.send_topology(&nodes.into_iter().collect::<Vec<_>>())
            .await?;
        self.sync_felix().await
    }

    pub(super) async fn delete_pod(&mut self, name: &str) -> Result<(), RunnerError> {
        let effects = self.model.stage(&ClusterStep::DeletePod {
            name: name.to_string(),
        })?;
        // Felix sees the endpoint go first: rules and routes, then the pod's
        // interface and namespace (the model freed its addresses).
        self.sync_felix().await?;
        for removed in &effects.removed {
            self.engine.remove_endpoint(&removed.name).await?;
            if self.mode.adopting {
                self.lab.forget_pod(&removed.name);
            } else {
                self.lab.remove_pod(&removed.name).await?;
            }
            self.send_topology(&[removed.node.as_str()]).await?;
        }
        Ok(())
    }

    pub(super) async fn annotate(&mut self, annotate: &Annotate) -> Result<(), RunnerError> {
        self.pod_update(Step::Annotate(annotate.clone())).await
    }

    pub(super) async fn set_phase(&mut self, set: &SetPhase) -> Result<(), RunnerError> {
        self.pod_update(Step::SetPhase(set.clone())).await
    }

    /// A change to a running pod, as Calico's datastore conversion gives it
    /// to Felix, which then acts on it.
    async fn pod_update(&mut self, step: Step) -> Result<(), RunnerError> {
        let change = step.cluster_step().expect("a pod step");
        self.model.stage_expecting(&change, step.expected_error())?;
        self.sync_felix().await
    }

    /// Felix (and BGP) act on what the model staged: the pods whose own
    /// routes go lose them first (so the conntrack cleanup of their
    /// addresses follows the route's deletion, as in Felix), then the
    /// control plane carries out the NAT, routes and conntrack deletions,
    /// then the pods whose routes come back get them; every change of a
    /// floating IP's pod is noted with the moment the update started.
    pub(super) async fn sync_felix(&mut self) -> Result<(), RunnerError> {
        let held_before: Vec<IpAddr> = self.model.holders().keys().copied().collect();
        let update = self.model.settle();
        self.note_pods_in_streams();
        self.route_pods(&update.pod_routes, false).await?;
        // A move starts when the control plane starts changing the dataplane,
        // so convergence figures include the time the change takes to apply.
        let at_unix_ns = now_unix_ns();
        let view = self.model.felix_view();
        if self.mode.adopting {
            self.control.assume(&view);
        } else {
            // The applier runs its per-node transactions on threads of its own
            // and waits for them: keep this worker free for the traffic.
            let applied = tokio::task::block_in_place(|| {
                self.control
                    .carry_out(&view, self.model.felix(), &update.changes)
            });
            match applied {
                Ok(applied) => {
                    for conflict in &applied.conflicts {
                        tracing::info!(?conflict, "several pods claim one floating IP");
                    }
                }
                Err(error) => return Err(RunnerError::Control(error)),
            }
        }
        self.streams
            .moves
            .extend(update.holders.iter().map(|change| FloatingIpChange {
                floating_ip: change.floating_ip,
                from: change.from.clone(),
                to: change.to.clone(),
                at_unix_ns,
            }));
        if self.mode.adopting {
            return self.route_pods(&update.pod_routes, true).await;
        }
        self.wait_withdrawn(&held_before)?;
        let expected: BTreeMap<String, BTreeSet<FipRoute>> = match self.bird {
            Some(_) => self.control.carried_routes(&view, self.model.felix()),
            None => BTreeMap::new(),
        };
        self.route_pods(&update.pod_routes, true).await?;
        // Under BIRD the step ends once BGP carries what it changed, so the
        // next step's traffic does not race it (see runner/settle.rs).
        self.wait_routes_settled(&expected)
    }

    /// Drop (`routed` false) or restore the node's routes to the pods'
    /// own addresses that `changes` name with that value.
    async fn route_pods(
        &mut self,
        changes: &[(String, bool)],
        routed: bool,
    ) -> Result<(), RunnerError> {
        if self.mode.adopting {
            return Ok(());
        }
        for (pod, _) in changes.iter().filter(|(_, r)| *r == routed) {
            self.lab.route_pod(pod, routed).await?;
        }
        Ok(())
    }
}
