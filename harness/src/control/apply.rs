//! Programming the changes into a lab: NAT transactions, routes and the
//! conntrack deletions, in the update order ([`super::order`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::policy::{CalicoPolicy, ControlPolicy};
use super::routes::{change_routes_kept, del_routes, owned_protocols};
use super::routes::{FipRoute, RouteNext};
use crate::bgp::RoutingMode;
use crate::calico::desired::{
    desired_state, ClusterState, DesiredState, FipConflict, NodeUplink, Topology,
};
use crate::calico::diff::{diff, Changes, ConntrackProfile, RouteChange};
use crate::calico::incremental::{self, Memory};
use crate::calico::UpdateOrder;
use crate::dataplane::conntrack::ConntrackError;
use crate::dataplane::per_node::PerNode;
use crate::dataplane::{Dataplane, DataplaneError, NodeNatState};
use crate::lab::netlink::KeptMember;
use crate::lab::netns::Netns;
use crate::lab::LabError;

/// What the control plane needs from a lab: its members' namespaces and the
/// nodes' uplink addresses. The lab module implements it for a running lab.
pub trait LabNamespaces: Send + Sync {
    /// The namespace of a node, pod, external host or the fabric, by name.
    fn netns(&self, member: &str) -> Option<Netns>;
    /// A node's uplink address of one family (`v4` true for IPv4).
    fn uplink(&self, node: &str, v4: bool) -> Option<IpAddr>;
    fn nodes(&self) -> Vec<String>;
    /// The fabric's member name.
    fn fabric(&self) -> String;

    fn topology(&self) -> Topology {
        Topology {
            nodes: self
                .nodes()
                .into_iter()
                .map(|name| NodeUplink {
                    uplinks: [true, false]
                        .into_iter()
                        .filter_map(|v4| self.uplink(&name, v4))
                        .collect(),
                    name,
                })
                .collect(),
            fabric: self.fabric(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("lab has no member '{0}'")]
    UnknownMember(String),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Conntrack(#[from] ConntrackError),
    /// One line per error (each node's driver has its own), never joined.
    #[error("{} errors while applying:{}", .0.len(), each_on_its_line(.0))]
    Several(Vec<ControlError>),
}

/// `errors`, each on a line of its own after `- `, its own lines (a
/// driver's stderr) indented under it.
fn each_on_its_line(errors: &[ControlError]) -> String {
    errors
        .iter()
        .map(|e| format!("\n- {}", e.to_string().replace('\n', "\n  ")))
        .collect()
}

/// The outcome of one update.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub changes: Changes,
    pub conflicts: Vec<FipConflict>,
    /// Conntrack entries deleted.
    pub conntrack_deleted: usize,
    /// From the start of the update to the changes computed.
    pub computed: Duration,
    /// From the start of the update to every node's NAT applied (before routes).
    pub nat_applied: Duration,
    /// From the start of the update to every member's routes applied (before
    /// the conntrack deletions).
    pub routes_applied: Duration,
    /// From the start of the update to the last change applied.
    pub elapsed: Duration,
}

/// The Felix + BGP role of one lab.
pub struct ControlPlane {
    lab: Arc<dyn LabNamespaces>,
    dataplane: Arc<dyn Dataplane>,
    profile: ConntrackProfile,
    policy: Arc<dyn ControlPolicy>,
    routing: RoutingMode,
    order: UpdateOrder,
    current: DesiredState,
    /// What `current` was computed from, for incremental updates.
    memory: Option<Memory>,
    /// A netlink socket per member whose routes an update changed, kept for
    /// the next updates (taken out while in use).
    route_sockets: PerNode<KeptMember>,
}

impl ControlPlane {
    /// A control plane that believes the lab holds nothing yet.
    pub fn new(
        lab: Arc<dyn LabNamespaces>,
        dataplane: Arc<dyn Dataplane>,
        profile: ConntrackProfile,
    ) -> Self {
        Self {
            lab,
            dataplane,
            profile,
            policy: Arc::new(CalicoPolicy),
            routing: RoutingMode::Model,
            order: UpdateOrder::default(),
            current: DesiredState::default(),
            memory: None,
            route_sockets: PerNode::default(),
        }
    }

    /// The same control plane deciding through `policy` instead of Calico's
    /// rules (a mutant's control-plane bug).
    pub fn with_policy(mut self, policy: Arc<dyn ControlPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Who programs the routes of the members that do not host a floating
    /// IP. [`RoutingMode::Model`] (the default here, for labs without BIRD):
    /// this control plane, as BGP would. [`RoutingMode::Bird`]: BIRD, so
    /// this control plane keeps to Felix's part, the device route on the
    /// hosting node.
    pub fn with_routing(mut self, routing: RoutingMode) -> Self {
        self.routing = routing;
        self
    }

    /// How each update reaches the lab ([`UpdateOrder::Felix`] unless told).
    pub fn with_order(mut self, order: UpdateOrder) -> Self {
        self.order = order;
        self
    }

    pub(super) fn lab(&self) -> &Arc<dyn LabNamespaces> {
        &self.lab
    }

    pub fn current(&self) -> &DesiredState {
        &self.current
    }

    /// The floating-IP routes BGP should carry for `cluster`: what the route
    /// model (`--routing model`) would program besides Felix's device routes,
    /// per member. Under BIRD the runner waits for BIRD to agree with it.
    pub fn model_routes(&self, cluster: &ClusterState) -> BTreeMap<String, BTreeSet<FipRoute>> {
        let view = self.policy.cluster_view(cluster);
        let mut desired = desired_state(&view, &self.lab.topology());
        self.policy.adjust_desired(&mut desired);
        carried(desired)
    }

    /// [`Self::model_routes`] when the Calico model's `desired` state of
    /// `cluster` is at hand: Calico's own policy takes its routes as they
    /// are, a policy that changes something decides again.
    pub fn carried_routes(
        &self,
        cluster: &ClusterState,
        desired: &DesiredState,
    ) -> BTreeMap<String, BTreeSet<FipRoute>> {
        if self.policy.changes_nothing() {
            carried(desired.clone())
        } else {
            self.model_routes(cluster)
        }
    }

    /// The nodes' dataplane, for what the runner tells it directly (pods'
    /// interfaces) and asks of it (health, diagnostics, shutdown).
    pub fn dataplane(&self) -> &Arc<dyn Dataplane> {
        &self.dataplane
    }

    /// Bring the lab to what `cluster` asks for, changing only what differs.
    /// When only a few endpoints changed since the last update, only what they
    /// touch is recomputed (see [`incremental`]).
    pub fn update(&mut self, cluster: &ClusterState) -> Result<Applied, ControlError> {
        let started = Instant::now();
        let topology = self.lab.topology();
        // The incremental path only for Calico's own policy: a mutant's hooks
        // need the whole desired state.
        let changed = self
            .memory
            .as_ref()
            .filter(|_| self.policy.changes_nothing())
            .and_then(|memory| incremental::changed_endpoints(memory, cluster, &topology));
        let routing = self.routing;
        let (changes, next) = match (changed, self.memory.as_ref()) {
            (Some(changed), Some(memory)) => {
                let (changes, patch) = incremental::changes(
                    &self.current,
                    memory,
                    cluster,
                    changed,
                    self.profile,
                    |desired| keep_routing_routes(routing, desired),
                );
                (changes, Next::Patch(patch))
            }
            _ => {
                let desired = self.whole_desired(cluster, &topology);
                let mut changes = diff(&self.current, &desired, self.profile);
                self.policy.adjust_changes(&mut changes, &desired);
                (changes, Next::Whole(desired, topology))
            }
        };
        let computed = started.elapsed();
        let (conntrack_deleted, phases) = self.apply_in_order(self.order, &changes, started)?;
        tracing::debug!(
            ?computed,
            nat = ?phases.nat,
            routes = ?phases.routes,
            applied = ?started.elapsed() - computed,
            nodes = changes.nat.len(),
            conntrack_deleted,
            "control plane update"
        );
        match next {
            Next::Patch(patch) => {
                let memory = self.memory.as_mut().expect("a patch needs a memory");
                incremental::commit(&mut self.current, memory, cluster, patch);
            }
            Next::Whole(desired, topology) => {
                self.current = desired;
                self.memory = Some(Memory {
                    cluster: cluster.clone(),
                    topology,
                });
            }
        }
        Ok(Applied {
            changes,
            conflicts: self.current.conflicts.clone(),
            conntrack_deleted,
            computed,
            nat_applied: phases.nat,
            routes_applied: phases.routes,
            elapsed: started.elapsed(),
        })
    }

    /// Carry out what the Calico model decided: `changes` take the lab from
    /// the model's last state to `desired`, the state of Felix's view
    /// `cluster`. Calico's own policy applies them as they are (under BIRD
    /// Felix's part: BIRD carries the rest); a policy that changes something
    /// (a mutant) decides again from `cluster` through its hooks.
    pub fn carry_out(
        &mut self,
        cluster: &ClusterState,
        desired: &DesiredState,
        changes: &Changes,
    ) -> Result<Applied, ControlError> {
        if !self.policy.changes_nothing() {
            return self.update(cluster);
        }
        let started = Instant::now();
        let changes = match self.routing {
            RoutingMode::Bird => changes.felix_part(&self.current),
            RoutingMode::Model => changes.clone(),
        };
        let (conntrack_deleted, phases) = self.apply_in_order(self.order, &changes, started)?;
        self.current = desired.clone();
        keep_routing_routes(self.routing, &mut self.current);
        // The model keeps the memory of what it computed from.
        self.memory = None;
        Ok(Applied {
            changes,
            conflicts: self.current.conflicts.clone(),
            conntrack_deleted,
            computed: Duration::ZERO,
            nat_applied: phases.nat,
            routes_applied: phases.routes,
            elapsed: started.elapsed(),
        })
    }

    /// Believe the lab already holds what `cluster` asks for, without
    /// touching it: for a lab taken over after another process brought it to
    /// this state (`replay`). Nothing is applied and no conntrack entry is
    /// deleted, so the lab stays exactly as that process left it.
    pub fn assume(&mut self, cluster: &ClusterState) {
        let topology = self.lab.topology();
        self.current = self.whole_desired(cluster, &topology);
        self.memory = Some(Memory {
            cluster: cluster.clone(),
            topology,
        });
    }

    /// What the whole lab must hold for `cluster`, through the policy.
    fn whole_desired(&self, cluster: &ClusterState, topology: &Topology) -> DesiredState {
        let view = self.policy.cluster_view(cluster);
        let mut desired = desired_state(&view, topology);
        keep_routing_routes(self.routing, &mut desired);
        self.policy.adjust_desired(&mut desired);
        desired
    }

    /// Remove the NAT and floating-IP routes from every member.
    pub fn teardown(&mut self) -> Result<(), ControlError> {
        self.route_sockets.forget_all();
        let mut errors = Vec::new();
        for node in self.lab.nodes() {
            match self.lab.netns(&node) {
                Some(ns) => {
                    if let Err(e) = self.dataplane.remove(&ns) {
                        errors.push(e.into());
                    }
                }
                None => errors.push(ControlError::UnknownMember(node)),
            }
        }
        for (member, routes) in &self.current.routes {
            let destinations: Vec<IpAddr> = routes.iter().map(|r| r.destination).collect();
            if let Some(ns) = self.lab.netns(member) {
                if let Err(e) = del_routes(&ns, owned_protocols(self.routing), &destinations) {
                    errors.push(e.into());
                }
            }
        }
        self.current = DesiredState::default();
        self.memory = None;
        collect(errors)
    }

    pub(super) fn member(&self, name: &str) -> Result<Netns, ControlError> {
        self.lab
            .netns(name)
            .ok_or_else(|| ControlError::UnknownMember(name.to_string()))
    }

    pub(super) fn apply_member(
        &self,
        member: &str,
        nat: Option<&NodeNatState>,
        routes: Option<&RouteChange>,
    ) -> Result<(), ControlError> {
        let ns = self.member(member)?;
        let started = Instant::now();
        if let Some(state) = nat {
            self.dataplane.apply(&ns, state)?;
        }
        tracing::debug!(member, nat = ?started.elapsed(), "member NAT applied");
        if let Some(change) = routes {
            let kept = match self.route_sockets.take(&ns) {
                Some(kept) => kept,
                None => KeptMember::open(&ns).map_err(LabError::from)?,
            };
            // A socket that failed is dropped; the next update opens anew.
            change_routes_kept(
                &kept,
                owned_protocols(self.routing),
                &change.remove,
                &change.add,
            )?;
            self.route_sockets.put(&ns, kept);
        }
        Ok(())
    }

    /// Apply `changes` in the control plane's [`UpdateOrder`]; returns how
    /// many conntrack entries went.
    pub fn apply(&self, changes: &Changes) -> Result<usize, ControlError> {
        Ok(self.apply_in_order(self.order, changes, Instant::now())?.0)
    }
}

/// The routes of `desired` BGP carries: all but the device routes.
fn carried(desired: DesiredState) -> BTreeMap<String, BTreeSet<FipRoute>> {
    desired
        .routes
        .into_iter()
        .map(|(member, routes)| {
            let carried = routes
                .into_iter()
                .filter(|route| !matches!(route.next, RouteNext::Device(_)))
                .collect();
            (member, carried)
        })
        .collect()
}

/// Under BIRD the control plane keeps to Felix's device routes: BIRD carries
/// the rest.
fn keep_routing_routes(routing: RoutingMode, desired: &mut DesiredState) {
    if routing == RoutingMode::Bird {
        *desired = desired.felix_part();
    }
}

/// What `current` becomes once an update's changes are applied.
enum Next {
    Patch(incremental::Patch),
    Whole(DesiredState, Topology),
}

pub(super) fn collect(mut errors: Vec<ControlError>) -> Result<(), ControlError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(ControlError::Several(errors)),
    }
}
