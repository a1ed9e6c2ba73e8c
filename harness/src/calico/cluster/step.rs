//! What the model is asked to do (a [`ClusterStep`]), what it answers (the
//! [`Effects`] to carry out, or Calico's refusal), and how a step's expected
//! error is judged against that answer: in one place, for `validate` and `run`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::super::conversion::PodPhase;
use super::super::diff::Changes;

/// One change to the cluster, as Kubernetes (and so Calico) sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterStep {
    /// A pod is scheduled on `node` and its sandbox set up (CNI ADD).
    CreatePod {
        name: String,
        namespace: String,
        node: String,
        annotations: BTreeMap<String, String>,
    },
    /// The pod is deleted: Felix loses its endpoint, then CNI DEL frees its
    /// addresses.
    DeletePod { name: String },
    /// The floating-IP annotation of a running pod is set (`Some`) or removed.
    Annotate {
        pod: String,
        floating_ips: Option<String>,
    },
    /// The pod's `status.phase` changes.
    SetPhase { pod: String, phase: PodPhase },
}

/// The kinds of step, for a generator that wants to know what it may do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    CreatePod,
    DeletePod,
    Annotate,
    SetPhase,
}

impl ClusterStep {
    pub fn kind(&self) -> StepKind {
        match self {
            ClusterStep::CreatePod { .. } => StepKind::CreatePod,
            ClusterStep::DeletePod { .. } => StepKind::DeletePod,
            ClusterStep::Annotate { .. } => StepKind::Annotate,
            ClusterStep::SetPhase { .. } => StepKind::SetPhase,
        }
    }

    /// The pod the step is about.
    pub fn pod(&self) -> &str {
        match self {
            ClusterStep::CreatePod { name, .. } | ClusterStep::DeletePod { name } => name,
            ClusterStep::Annotate { pod, .. } | ClusterStep::SetPhase { pod, .. } => pod,
        }
    }
}

/// A pod the lab must set up: its namespace, interface and addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodSetUp {
    pub name: String,
    pub namespace: String,
    pub node: String,
    /// The host-side interface (`cali` + hash, Calico's `VethNameForWorkload`).
    pub interface: String,
    pub addresses: Vec<IpAddr>,
}

/// A pod the lab must remove (after Felix's changes of the same step).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodRemoved {
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub addresses: Vec<IpAddr>,
}

/// A change of the pod that receives a floating IP (`None`: no pod).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HolderChange {
    pub floating_ip: IpAddr,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// What Felix (and BGP) change on the nodes, the fabric and in conntrack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FelixUpdate {
    /// NAT per node, floating-IP routes per member, conntrack deletions.
    pub changes: Changes,
    /// Pods whose own addresses' routes on their node go (`false`: Felix no
    /// longer has the endpoint) or come back (`true`). Felix's route table
    /// keeps a workload route only for an endpoint Felix has
    /// (felix/dataplane/linux/endpoint_mgr.go calculateRoutes): removals
    /// come before `changes`, so the conntrack cleanup of the pod's
    /// addresses follows the route's deletion as in Felix, restorations after.
    pub pod_routes: Vec<(String, bool)>,
    /// Floating IPs whose receiving pod changed, in address order.
    pub holders: Vec<HolderChange>,
}

impl FelixUpdate {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.pod_routes.is_empty() && self.holders.is_empty()
    }
}

/// What the dataplane and the lab must do to carry out one step, in this
/// order: route `blocks_claimed`, set up `set_up`, carry out `felix`, remove
/// `removed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Effects {
    /// Calico's own words when it carried the step out with an error (a
    /// datastore conversion that failed) or refused it as the step expected.
    pub calico_error: Option<String>,
    /// Annotation entries the datastore conversion dropped silently (not a
    /// plain IP address, or a family the pod has no address of).
    pub dropped_entries: Vec<String>,
    /// IPAM blocks a node claimed (even by a set-up that then failed: Calico
    /// keeps a block's affinity), each with its node.
    pub blocks_claimed: Vec<(String, IpNet)>,
    pub set_up: Vec<PodSetUp>,
    pub felix: FelixUpdate,
    pub removed: Vec<PodRemoved>,
}

/// Which part of Calico refused a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RefusedBy {
    /// The CNI plugin's IPAM (no pool, pools exhausted).
    Ipam,
    /// The CNI plugin reading the floating-IP annotation at set-up.
    CniAnnotation,
    /// The Kubernetes-datastore conversion of a running pod's annotation;
    /// carried out all the same: Felix loses the endpoint.
    Conversion,
    /// Felix, which would crash on what the datastore conversion gives it;
    /// the harness refuses the step rather than simulate a crash-looping
    /// Felix (see [`super::super::felix::felix_route_panic`]).
    FelixPanic,
}

/// Calico refusing a step, with its verbatim text. A refused step changes
/// nothing but the IPAM blocks it claimed on the way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CalicoRefusal {
    pub by: RefusedBy,
    pub text: String,
    pub blocks_claimed: Vec<(String, IpNet)>,
}

impl fmt::Display for CalicoRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A step the model cannot apply at all: it names something that does not
/// exist at this point (the scenario language reports these first).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStep {
    #[error("unknown node `{0}`")]
    UnknownNode(String),
    #[error("pod `{0}` already exists at this step")]
    PodExists(String),
    #[error("no pod `{0}` exists at this step")]
    NoSuchPod(String),
}

/// Why [`super::Cluster::apply`] did not carry out a step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepRefused {
    #[error("{0}")]
    Calico(CalicoRefusal),
    #[error(transparent)]
    Invalid(#[from] InvalidStep),
}

/// A step whose outcome is not the one it expects. Nothing of the step was
/// kept (but the blocks IPAM claimed). The texts are the ones `validate`
/// prints after the step's location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpectationMismatch {
    #[error(
        "Calico refuses to set up pod `{pod}`: {refusal} (add `expect: {{error: ...}}` to the step if that is the point)"
    )]
    SetUpRefused { pod: String, refusal: CalicoRefusal },
    #[error(
        "Calico rejects this floating-IP annotation: {text} (add `expect: {{error: ...}}` to the step if that is the point)"
    )]
    AnnotationRejected { text: String, by: RefusedBy },
    #[error(
        "the step expects pod set-up to fail with `{expected}`, but Calico accepts pod `{pod}`"
    )]
    SetUpAccepted { pod: String, expected: String },
    #[error("the step expects the error `{expected}`, but Calico accepts this annotation")]
    AnnotationAccepted { expected: String },
    #[error("the step expects the error `{expected}`, but Calico fails with `{actual}`")]
    OtherError { expected: String, actual: String },
    #[error("{0}")]
    Invalid(#[from] InvalidStep),
}

impl ExpectationMismatch {
    /// Which part of Calico spoke, when it did: the scenario language points
    /// an annotation's error at the annotation, the others at the step.
    pub fn refused_by(&self) -> Option<RefusedBy> {
        match self {
            ExpectationMismatch::SetUpRefused { refusal, .. } => Some(refusal.by),
            ExpectationMismatch::AnnotationRejected { by, .. } => Some(*by),
            _ => None,
        }
    }
}
