//! Felix's own floating-IP switch (`FelixConfiguration.spec.floatingIPs`).

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_disabled() {
        assert_eq!(FelixFloatingIps::default(), FelixFloatingIps::Disabled);
    }
}
