//! The Calico model: one pure state machine of what Calico holds for a
//! cluster and what it makes of every change, and the prediction of where any
//! packet must land in it ([`super::predict`]).
//!
//! [`Cluster`] holds the IP pools and block IPAM, the pods with their
//! annotations and phases, the CNI plugin's and Felix's switches, the
//! endpoints as Felix sees them (the Kubernetes-datastore conversion), Felix's
//! NAT choice per node and the floating-IP routes BGP spreads. It does no I/O
//! and is deterministic; its state serialises, so a test can snapshot it.
//!
//! [`Cluster::apply`] takes a [`ClusterStep`] and answers with the
//! [`Effects`] a dataplane and a lab must carry out (a pod set up with its
//! addresses and the blocks its node claimed; each node's NAT; routes;
//! conntrack deletions; the floating IPs whose pod changed, from and to), or
//! Calico's refusal with its own text. [`Cluster::apply_expecting`] does the
//! same for a step that expects an error (`expect: {error: ...}`): the one
//! place where a step's expected error is judged, for `validate` and `run`.
//! [`Cluster::stage`] and [`Cluster::settle`] split a step in two for a
//! caller that sets up many pods before Felix looks (one Felix computation
//! for the lot).
//!
//! A worked example: a pod with a floating IP on node-a, then where ICMP
//! from an external host to that floating IP lands.
//!
//! ```
//! use std::collections::BTreeMap;
//! use fip_harness::calico::cluster::{Cluster, ClusterConfig, ClusterStep, Network};
//! use fip_harness::calico::predict::{Landing, Packet};
//! use fip_harness::calico::{CniFeatureControl, FelixFloatingIps, IpPoolSpec};
//! use fip_harness::vocab::Protocol;
//!
//! let pool = |name: &str, cidr: &str, disabled| {
//!     IpPoolSpec { cidr: cidr.into(), disabled: Some(disabled), ..Default::default() }
//!         .into_pool(name)
//!         .unwrap()
//! };
//! let config = ClusterConfig {
//!     cni: CniFeatureControl { floating_ips: true, ..Default::default() },
//!     felix_floating_ips: FelixFloatingIps::Enabled,
//!     dual_stack: false,
//!     pools: vec![
//!         pool("default-ipv4-ippool", "198.19.0.0/16", false),
//!         pool("floating", "203.0.113.0/24", true),
//!     ],
//!     network: Network::lab(&["node-a", "node-b"], &["client"], false),
//!     profile: Default::default(),
//!     calico: Default::default(),
//! };
//! let mut cluster = Cluster::new(config);
//! let effects = cluster
//!     .apply(&ClusterStep::CreatePod {
//!         name: "web".into(),
//!         namespace: "default".into(),
//!         node: "node-a".into(),
//!         annotations: BTreeMap::from([(
//!             "cni.projectcalico.org/floatingIPs".into(),
//!             r#"["203.0.113.10"]"#.into(),
//!         )]),
//!     })
//!     .unwrap();
//! assert_eq!(effects.set_up[0].addresses, ["198.19.0.0".parse::<std::net::IpAddr>().unwrap()]);
//! assert_eq!(effects.felix.holders[0].to.as_deref(), Some("web"));
//!
//! let packet = Packet::new("client", "203.0.113.10".parse().unwrap(), Protocol::Icmp);
//! let prediction = cluster.predict(&packet).unwrap();
//! match &prediction.outcomes[0].landing {
//!     Landing::Pod { pod, seen_destination, reply_source, .. } => {
//!         assert_eq!(pod, "web");
//!         assert_eq!(seen_destination.to_string(), "198.19.0.0");
//!         assert_eq!(reply_source.unwrap().to_string(), "203.0.113.10");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

mod network;
mod pods;
#[cfg(test)]
#[cfg(test)]
mod properties;
mod settle;
mod step;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

pub use network::{HostAddresses, Network};
pub use step::{
    CalicoRefusal, ClusterStep, Effects, ExpectationMismatch, FelixUpdate, HolderChange,
    InvalidStep, PodRemoved, PodSetUp, RefusedBy, StepKind, StepRefused,
};

use super::cni_config::CniFeatureControl;
use super::conversion::PodPhase;
use super::desired::{ClusterState, DesiredState};
use super::diff::ConntrackProfile;
use super::endpoint::IpNatPair;
use super::felix::FelixFloatingIps;
use super::felix_state::FelixState;
use super::ipam::Ipam;
use super::pool::IpPool;

/// What a cluster is made of, fixed for its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterConfig {
    /// The CNI plugin's `feature_control`.
    pub cni: CniFeatureControl,
    /// Felix's `floatingIPs`.
    pub felix_floating_ips: FelixFloatingIps,
    /// Pods get an IPv6 address too.
    pub dual_stack: bool,
    pub pools: Vec<IpPool>,
    /// The nodes, external hosts and fabric, with their addresses.
    pub network: Network,
    /// What happens to established flows when floating IPs change: Calico's
    /// deletions, or those and the harness's `strict` ones.
    pub profile: ConntrackProfile,
    /// The Calico release the model stands for (crate::calico::release).
    pub calico: crate::calico::Release,
}

/// Felix's view of one pod (the Kubernetes-datastore conversion of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FelixEndpoint {
    /// Felix has the endpoint, with these floating-IP pairs.
    Present(Vec<IpNatPair>),
    /// A finished pod owns no addresses, so Felix gets a deletion
    /// ([`PodPhase::is_finished`]).
    Finished,
    /// The conversion fails (Calico's text): Felix ends up without the
    /// endpoint ([`super::conversion::kdd_ip_nats`]).
    ConversionFailed(String),
}

impl FelixEndpoint {
    pub fn ip_nats(&self) -> &[IpNatPair] {
        match self {
            FelixEndpoint::Present(nats) => nats,
            _ => &[],
        }
    }

    pub fn is_present(&self) -> bool {
        matches!(self, FelixEndpoint::Present(_))
    }
}

/// A live pod as Calico holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub annotations: BTreeMap<String, String>,
    pub phase: PodPhase,
    pub addresses: Vec<IpAddr>,
    /// The host-side interface (`cali` + hash).
    pub interface: String,
    /// Creation order of the pod's interface on its node, from 1: the
    /// kernel numbers a namespace's links in creation order, so this orders
    /// them as their ifindexes do, which is what Felix's route table
    /// compares (see [`super::desired::desired_state`]).
    pub interface_order: u32,
    /// What Felix gets for the pod.
    pub felix: FelixEndpoint,
}

/// The cluster: what Calico holds, and what Felix made of it at the last
/// [`Cluster::settle`].
#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    config: ClusterConfig,
    #[serde(serialize_with = "ipam_state")]
    ipam: Ipam,
    pods: BTreeMap<String, Pod>,
    /// Interfaces made on each node so far (never reused, as ifindexes).
    interfaces_made: BTreeMap<String, u32>,
    /// Felix's state as of the last settle.
    felix: FelixState,
    /// Pods whose own routes their node holds (Felix had them at the last settle).
    routed: BTreeSet<String>,
    /// Pods staged since the last settle, whose routes may change.
    #[serde(skip)]
    dirty: BTreeSet<String>,
    /// The keyless GRE flows senders started, with their conntrack entries
    /// (the kernel's, not Calico's: kept here so every prediction sees them).
    #[serde(skip)]
    gre: crate::calico::conntrack::GreTable,
}

impl Cluster {
    /// A cluster with no pods.
    pub fn new(config: ClusterConfig) -> Self {
        let ipam = Ipam::new(config.pools.clone());
        let felix = FelixState::new(config.profile);
        let mut cluster = Self {
            config,
            ipam,
            pods: BTreeMap::new(),
            interfaces_made: BTreeMap::new(),
            felix,
            routed: BTreeSet::new(),
            dirty: BTreeSet::new(),
            gre: Default::default(),
        };
        // Felix starts on every node, with nothing to program.
        cluster.settle();
        cluster
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The keyless GRE flows senders started, with their entries.
    pub fn gre(&self) -> &crate::calico::conntrack::GreTable {
        &self.gre
    }

    pub(crate) fn gre_mut(&mut self) -> &mut crate::calico::conntrack::GreTable {
        &mut self.gre
    }

    /// The live pods, by name.
    pub fn pods(&self) -> &BTreeMap<String, Pod> {
        &self.pods
    }

    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.get(name)
    }

    /// Blocks claimed by `node`, lowest first.
    pub fn node_blocks(&self, node: &str) -> Vec<ipnet::IpNet> {
        self.ipam.node_blocks(node)
    }

    /// What Felix and BGP hold everywhere as of the last settle: each node's
    /// NAT, each member's floating-IP routes, who holds each floating IP.
    pub fn felix(&self) -> &DesiredState {
        self.felix.current()
    }

    /// The pod that receives each floating IP (as of the last settle).
    pub fn holders(&self) -> BTreeMap<IpAddr, String> {
        self.felix()
            .owners
            .iter()
            .map(|(ip, owner)| (*ip, owner.pod.clone()))
            .collect()
    }

    /// Whether the node routes `pod`'s own addresses (Felix has its endpoint).
    pub fn is_routed(&self, pod: &str) -> bool {
        self.routed.contains(pod)
    }

    /// What Felix reads now: the endpoints it has, its switch, the pools.
    pub fn felix_view(&self) -> ClusterState {
        settle::felix_view(self)
    }

    /// The kinds of step that can apply now: pods can always be created;
    /// the others need a live pod.
    pub fn possible_steps(&self) -> Vec<StepKind> {
        if self.pods.is_empty() {
            vec![StepKind::CreatePod]
        } else {
            vec![
                StepKind::CreatePod,
                StepKind::DeletePod,
                StepKind::Annotate,
                StepKind::SetPhase,
            ]
        }
    }

    /// Carry out `step` and let Felix act on it: the effects, or why not.
    pub fn apply(&mut self, step: &ClusterStep) -> Result<Effects, StepRefused> {
        let mut effects = self.stage(step)?;
        effects.felix = self.settle();
        Ok(effects)
    }

    /// [`Cluster::apply`] for a step that expects an error containing
    /// `expected` (or none): the step's outcome must be that one. An expected
    /// refusal is `Ok`, with Calico's text in [`Effects::calico_error`].
    pub fn apply_expecting(
        &mut self,
        step: &ClusterStep,
        expected: Option<&str>,
    ) -> Result<Effects, ExpectationMismatch> {
        let mut effects = self.stage_expecting(step, expected)?;
        effects.felix = self.settle();
        Ok(effects)
    }

    /// The Calico objects' part of `step` (pods, IPAM, Felix's view of the
    /// pod), without Felix acting on it yet: [`Effects::felix`] is empty
    /// until [`Cluster::settle`].
    pub fn stage(&mut self, step: &ClusterStep) -> Result<Effects, StepRefused> {
        pods::stage(self, step, None).map_err(|mismatch| match mismatch {
            ExpectationMismatch::Invalid(invalid) => StepRefused::Invalid(invalid),
            ExpectationMismatch::SetUpRefused { refusal, .. } => StepRefused::Calico(refusal),
            ExpectationMismatch::AnnotationRejected { text, by } => {
                StepRefused::Calico(CalicoRefusal {
                    by,
                    text,
                    blocks_claimed: Vec::new(),
                })
            }
            other => unreachable!("no expectation, yet {other}"),
        })
    }

    /// [`Cluster::stage`] of a step that expects an error containing `expected`.
    pub fn stage_expecting(
        &mut self,
        step: &ClusterStep,
        expected: Option<&str>,
    ) -> Result<Effects, ExpectationMismatch> {
        pods::stage(self, step, Some(expected))
    }

    /// Felix (and BGP) act on everything staged since the last settle.
    pub fn settle(&mut self) -> FelixUpdate {
        settle::settle(self)
    }
}

/// IPAM as a snapshot shows it: the blocks with their nodes, and the
/// addresses each handle holds.
fn ipam_state<S: serde::Serializer>(ipam: &Ipam, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct View<'a> {
        blocks: Vec<super::ipam::BlockAffinity>,
        allocations: &'a BTreeMap<String, Vec<IpAddr>>,
    }
    View {
        blocks: ipam.block_affinities(),
        allocations: ipam.allocations(),
    }
    .serialize(s)
}
