//! Felix's own floating-IP switch (`FelixConfiguration.spec.floatingIPs`).

use serde::{Deserialize, Serialize};

use super::cni_config::CniFeatureControl;

/// `floatingIPs` in FelixConfiguration: Felix ignores workload endpoints'
/// `ipNATs` unless it is `Enabled`. Felix's default is `Disabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// Floating-IP NAT exists on a node only when the CNI plugin wrote `ipNATs` into
/// the workload endpoint (CNI `feature_control.floating_ips`) and Felix acts on
/// them (`floatingIPs: Enabled`).
pub fn nat_is_programmed(cni: &CniFeatureControl, felix: FelixFloatingIps) -> bool {
    cni.floating_ips && felix.is_enabled()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_disabled() {
        assert_eq!(FelixFloatingIps::default(), FelixFloatingIps::Disabled);
    }

    #[test]
    fn nat_needs_both_switches() {
        let on = CniFeatureControl {
            floating_ips: true,
            ..Default::default()
        };
        let off = CniFeatureControl::default();
        assert!(nat_is_programmed(&on, FelixFloatingIps::Enabled));
        assert!(!nat_is_programmed(&on, FelixFloatingIps::Disabled));
        assert!(!nat_is_programmed(&off, FelixFloatingIps::Enabled));
        assert!(!nat_is_programmed(&off, FelixFloatingIps::Disabled));
    }
}
