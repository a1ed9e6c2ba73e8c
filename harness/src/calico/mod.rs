//! A pure model of Calico's floating-IP semantics: CNI network config, Felix's
//! switch, the pod annotation, IP pools, block IPAM, workload endpoints and the
//! BGP advertisement rule. No I/O here: everything is unit-tested.

pub mod endpoint;

pub use endpoint::{veth_name_for_workload, IpNatPair, WorkloadEndpoint};
pub mod pool;

pub use pool::{floating_ip_is_advertised, Encapsulation, IpPool};
