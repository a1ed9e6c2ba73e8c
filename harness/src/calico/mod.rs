//! A pure model of Calico's floating-IP semantics: CNI network config, Felix's
//! switch, the pod annotation, IP pools, block IPAM, workload endpoints and
//! their Kubernetes-datastore conversion, Felix's NAT choice per node, the
//! floating-IP routes BGP spreads and the conntrack deletions Calico makes
//! ([`desired`], [`diff`]); the state machine that ties them together
//! ([`cluster::Cluster`]) and the prediction of where every packet lands in
//! it ([`predict`]). No I/O here: everything is unit-tested.

pub mod annotation;
pub mod cluster;
pub mod cni;
pub mod cni_config;
pub mod conntrack;
pub mod conversion;
pub mod desired;
#[cfg(test)]
pub(crate) mod desired_tests;
pub mod diff;
pub mod endpoint;
pub mod felix;
pub mod felix_state;
pub mod go_json;
pub mod incremental;
pub mod ipam;
pub mod nat;
pub mod pool;
pub mod predict;
pub mod release;
pub mod routes;
pub mod update_order;

pub use annotation::{
    parse_floating_ips, workload_endpoint, AnnotationError, ErroredField, FLOATING_IPS_ANNOTATION,
};
pub use cluster::{
    CalicoRefusal, Cluster, ClusterConfig, ClusterStep, Effects, ExpectationMismatch, RefusedBy,
};
pub use cni::{cni_add, cni_del, ipam_handle, PodRequest, PodSetupError};
pub use cni_config::{
    parse_cni_config, CniConfigError, CniFeatureControl, CniNetworkConfig, TemplateValues,
};
pub use conversion::{felix_ip_nats, kdd_ip_nats, KddIpNats, PodPhase};
pub use desired::{
    desired_state, ClusterState, DesiredState, FipConflict, FipOwner, NodeUplink, PodPlacement,
    Topology,
};
pub use diff::{diff, Changes, ConntrackDeletion, ConntrackMatch, ConntrackProfile, RouteChange};
pub use endpoint::{veth_name_for_workload, IpNatPair, WorkloadEndpoint};
pub use felix::{felix_route_panic, nat_is_programmed, FelixFloatingIps};
pub use ipam::{BlockAffinity, IpFamily, Ipam, IpamError};
pub use nat::{DnatMapping, NodeNatState, SnatMapping};
pub use pool::{
    floating_ip_reach, parse_ip_pool_manifests, Encapsulation, FloatingIpReach, IpPool, IpPoolSpec,
    PoolError,
};
pub use release::{Behaviour, Release, UnknownRelease};
pub use routes::{FipRoute, RouteNext};
pub use update_order::UpdateOrder;
