//! How a lab's floating-IP and block routes reach the nodes that do not host
//! them and the fabric.

use serde::{Deserialize, Serialize};

/// Which routing a case runs under.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// Calico's: BIRD in every node and the fabric, configured as calico/node
    /// renders it, learns Felix's routes and programs everyone else's.
    #[default]
    Bird,
    /// The harness's fast stand-in: the control plane programs on every
    /// member the routes BGP would give, the moment it applies a change.
    Model,
}

impl RoutingMode {
    pub fn name(self) -> &'static str {
        match self {
            RoutingMode::Bird => "bird",
            RoutingMode::Model => "model",
        }
    }
}

impl std::fmt::Display for RoutingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RoutingMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "bird" => Ok(RoutingMode::Bird),
            "model" => Ok(RoutingMode::Model),
            other => Err(format!("unknown routing `{other}` (bird or model)")),
        }
    }
}
