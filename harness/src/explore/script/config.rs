//! The cluster a case runs on, as the model and the scenario file have it:
//! switches, the lab's members and the pools, and the addresses traffic
//! and annotations name.

use std::net::IpAddr;

use super::{EXTERNAL_NAMES, NODE_NAMES};
use crate::calico::cluster::{ClusterConfig, Network};
use crate::calico::{CniFeatureControl, Encapsulation, FelixFloatingIps, IpPool, IpPoolSpec};
use crate::explore::plan::{CaseSpec, FloatingPool, PodPool};
use crate::vocab::ConntrackProfile;

/// The model's configuration of a case's cluster.
pub fn cluster_config(spec: &CaseSpec) -> ClusterConfig {
    ClusterConfig {
        cni: CniFeatureControl {
            floating_ips: spec.cni_floating_ips,
            ..Default::default()
        },
        felix_floating_ips: if spec.felix_enabled {
            FelixFloatingIps::Enabled
        } else {
            FelixFloatingIps::Disabled
        },
        dual_stack: spec.dual_stack,
        pools: pools(spec),
        network: Network::lab(
            &NODE_NAMES[..spec.nodes],
            &EXTERNAL_NAMES[..spec.externals],
            spec.dual_stack,
        ),
        profile: spec.profile,
        calico: crate::scenario::default_calico_release(),
    }
}

/// The pools of a case, as its scenario file lists them: the pods' pools
/// (the loader's defaults, written out) and the disabled floating pools.
pub fn pools(spec: &CaseSpec) -> Vec<IpPool> {
    let mut specs = match spec.pod_pool {
        PodPool::Wide => vec![pool_spec("default-ipv4-ippool", "198.19.0.0/16", false)],
        PodPool::Tiny => [
            ("tiny-ipv4-ippool", TINY_POD_POOL),
            ("more-ipv4-ippool", MORE_POD_POOL),
        ]
        .into_iter()
        .map(|(name, cidr)| {
            let (name, mut pool) = pool_spec(name, cidr, false);
            pool.block_size = Some(TINY_BLOCK_SIZE);
            (name, pool)
        })
        .collect(),
    };
    if spec.dual_stack {
        specs.push(pool_spec("default-ipv6-ippool", "2001:db8:1::/48", false));
    }
    specs.push(pool_spec("floating-ipv4", "203.0.113.0/24", true));
    if spec.dual_stack {
        specs.push(pool_spec("floating-ipv6", "2001:db8:f1::/64", true));
    }
    specs
        .into_iter()
        .map(|(name, mut pool)| {
            if pool.disabled == Some(true) {
                match spec.floating_pool {
                    FloatingPool::Plain => {}
                    FloatingPool::Vxlan => pool.encapsulation = Some(Encapsulation::Vxlan),
                    FloatingPool::NoExport => pool.disable_bgp_export = Some(true),
                }
            }
            pool.into_pool(name)
                .expect("the explorer's pools are valid")
        })
        .collect()
}

fn pool_spec(name: &'static str, cidr: &str, disabled: bool) -> (&'static str, IpPoolSpec) {
    let spec = IpPoolSpec {
        cidr: cidr.into(),
        disabled: Some(disabled),
        ..Default::default()
    };
    (name, spec)
}

/// The tiny pods' pools ([`PodPool::Tiny`]): the first node's block is
/// `198.19.0.8/30`, the other nodes' blocks come after it.
pub const TINY_POD_POOL: &str = "198.19.0.8/29";
pub const MORE_POD_POOL: &str = "198.19.0.16/28";
pub const TINY_BLOCK_SIZE: u8 = 30;
/// The pod the script creates first on the first node in a tiny pool, so
/// that the node's next pods get `.9`, `.10`, `.11`.
pub const SPARE_POD: &str = "spare";

/// Floating-pool slot `slot` of a family.
pub fn floating_address(slot: u8, v6: bool) -> IpAddr {
    if v6 {
        format!("2001:db8:f1::1{slot}").parse().expect("valid")
    } else {
        format!("203.0.113.1{slot}").parse().expect("valid")
    }
}

/// An address outside every pool and every lab segment.
pub fn outside_address(v6: bool) -> IpAddr {
    let text = if v6 {
        "2001:db8:f9::10"
    } else {
        "198.51.100.10"
    };
    text.parse().expect("valid")
}

/// The profile's name in a scenario file.
pub fn profile_name(profile: ConntrackProfile) -> &'static str {
    match profile {
        ConntrackProfile::Calico => "calico",
        ConntrackProfile::Strict => "strict",
    }
}

/// The address family `v6` asks for.
pub(super) fn family(v6: bool) -> crate::vocab::IpFamily {
    if v6 {
        crate::vocab::IpFamily::V6
    } else {
        crate::vocab::IpFamily::V4
    }
}
