//! A pure model of Calico's floating-IP semantics: CNI network config, Felix's
//! switch, the pod annotation, IP pools, block IPAM, workload endpoints and the
//! BGP advertisement rule. No I/O here: everything is unit-tested.

pub mod annotation;
pub mod cni;
pub mod cni_config;
pub mod conversion;
pub mod endpoint;
pub mod felix;
pub mod go_json;
pub mod ipam;
pub mod pool;
pub mod update_order;

pub use annotation::{
    parse_floating_ips, workload_endpoint, AnnotationError, ErroredField, FLOATING_IPS_ANNOTATION,
};
pub use cni::{cni_add, cni_del, ipam_handle, PodRequest, PodSetupError};
pub use cni_config::{
    parse_cni_config, CniConfigError, CniFeatureControl, CniNetworkConfig, TemplateValues,
};
pub use conversion::{felix_ip_nats, kdd_ip_nats, KddIpNats, PodPhase};
pub use endpoint::{veth_name_for_workload, IpNatPair, WorkloadEndpoint};
pub use felix::{felix_route_panic, nat_is_programmed, FelixFloatingIps};
pub use ipam::{BlockAffinity, IpFamily, Ipam, IpamError};
pub use pool::{
    floating_ip_reach, parse_ip_pool_manifests, Encapsulation, FloatingIpReach, IpPool, IpPoolSpec,
    PoolError,
};
pub use update_order::UpdateOrder;
