//! Felix's own floating-IP switch (`FelixConfiguration.spec.floatingIPs`).

use serde::{Deserialize, Serialize};

use super::annotation::AnnotationError;
use super::endpoint::IpNatPair;

/// Felix's and confd's normal route priority (BGPConfiguration
/// `ipv4NormalRoutePriority` / `ipv6NormalRoutePriority`, default 1024;
/// confd/pkg/backends/calico/bgp_processor.go `getNormalRoutePriority`): the
/// metric of Felix's workload routes and of the peers' routes BIRD programs.
pub const NORMAL_ROUTE_PRIORITY: u32 = 1024;

/// `floatingIPs` in FelixConfiguration: Felix ignores workload endpoints'
/// `ipNATs` unless it is `Enabled`. Felix's default is `Disabled`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FelixFloatingIps {
    Enabled,
    #[default]
    Disabled,
}

impl FelixFloatingIps {
    pub fn is_enabled(self) -> bool {
        self == FelixFloatingIps::Enabled
    }
}

/// Floating-IP NAT (and the floating IPs' routes) exist on a node when Felix
/// acts on the endpoints' `ipNATs`: felix/dataplane/linux/floating_ip_mgr.go
/// OnUpdate and endpoint_mgr.go calculateRoutes test Felix's `FloatingIPs`
/// (or an OpenStack orchestrator) and nothing else. The CNI plugin's
/// `feature_control.floating_ips` only gates pod *set-up*: a pod set up
/// without the annotation and annotated later reaches Felix through the
/// Kubernetes-datastore conversion, which never reads the CNI config.
pub fn nat_is_programmed(felix: FelixFloatingIps) -> bool {
    felix.is_enabled()
}

/// What Felix does with a pair that mixes families (an IPv4-mapped IPv6
/// floating IP on a pod with IPv6, see [`super::conversion::KddIpNats`]): its
/// IPv6 endpoint manager (felix/dataplane/linux/endpoint_mgr.go
/// calculateRoutes) appends `/128` to the external address, which prints as
/// IPv4, and felix/ip/ip_addr.go MustParseCIDROrIP panics on the result. The
/// harness reports that instead of simulating a crash-looping Felix.
pub fn felix_route_panic(
    ip_nats: &[IpNatPair],
    felix: FelixFloatingIps,
) -> Result<(), AnnotationError> {
    if !nat_is_programmed(felix) {
        return Ok(());
    }
    match ip_nats
        .iter()
        .find(|p| p.internal.is_ipv6() && p.external.is_ipv4())
    {
        Some(pair) => Err(AnnotationError::FelixPanic {
            cidr: format!("{}/128", pair.external),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_disabled() {
        assert_eq!(FelixFloatingIps::default(), FelixFloatingIps::Disabled);
    }

    #[test]
    fn only_felix_switch_gates_nat() {
        assert!(nat_is_programmed(FelixFloatingIps::Enabled));
        assert!(!nat_is_programmed(FelixFloatingIps::Disabled));
    }

    #[test]
    fn mixed_family_pair_panics_felix_only_when_enabled() {
        let pair = IpNatPair {
            internal: "2001:db8:1::5".parse().unwrap(),
            external: "203.0.113.10".parse().unwrap(),
        };
        assert_eq!(
            felix_route_panic(&[pair], FelixFloatingIps::Disabled),
            Ok(())
        );
        let error = felix_route_panic(&[pair], FelixFloatingIps::Enabled).unwrap_err();
        insta::assert_snapshot!(error.to_string());
    }
}
