//! Workload endpoints: what Calico's CNI plugin records for a pod, including the
//! (internal, external) floating-IP pairs Felix turns into NAT.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// One floating-IP mapping as Calico stores it in the workload endpoint's
/// `ipNATs`: traffic to `external` is DNATed to `internal` (the pod's address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IpNatPair {
    pub internal: IpAddr,
    pub external: IpAddr,
}

/// A pod's workload endpoint: where it runs, its addresses and its floating IPs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEndpoint {
    /// Kubernetes namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Node hosting the pod.
    pub node: String,
    /// Host-side interface name (`cali` + hash), see [`veth_name_for_workload`].
    pub interface: String,
    /// The pod's own addresses (one per family at most).
    pub addresses: Vec<IpAddr>,
    /// Floating-IP pairs from the annotation; empty when none.
    pub ip_nats: Vec<IpNatPair>,
    /// The host-side interface's ifindex once the pod is wired (the lab
    /// reports it). Felix's route table breaks ties between routes to one
    /// address by it (felix/routetable/route_table.go
    /// recalculateDesiredKernelRoute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
}

/// The host-side veth name Calico gives a pod: `cali` followed by the first 11 hex
/// digits of SHA-1("<namespace>.<pod>") (Calico's `VethNameForWorkload`).
pub fn veth_name_for_workload(namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_name_matches_calico() {
        // SHA-1("default.nginx") starts c440f455693 (python3 hashlib); Calico keeps 11 digits.
        let name = veth_name_for_workload("default", "nginx");
        assert_eq!(name.len(), 15, "fits IFNAMSIZ");
        assert!(name.starts_with("cali"));
        assert_eq!(name, "calic440f455693");
        assert_ne!(name, veth_name_for_workload("kube-system", "nginx"));
    }
}
