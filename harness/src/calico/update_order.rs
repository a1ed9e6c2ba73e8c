//! How a node's Felix applies one batch of changes, as a choice the harness
//! runs with: Calico's own order, or the harness's stricter one. The control
//! plane carries it out (`control::order`, which says what each does).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How an update is applied (`control::order` says what each order does).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UpdateOrder {
    /// Felix's: every node on its own, routes in parallel with NAT.
    #[default]
    Felix,
    /// The harness's: all NAT, then all routes, then conntrack.
    Ordered,
}

impl UpdateOrder {
    pub const ALL: [UpdateOrder; 2] = [UpdateOrder::Felix, UpdateOrder::Ordered];
}

impl std::fmt::Display for UpdateOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpdateOrder::Felix => "felix",
            UpdateOrder::Ordered => "ordered",
        })
    }
}

impl FromStr for UpdateOrder {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "felix" => Ok(UpdateOrder::Felix),
            "ordered" => Ok(UpdateOrder::Ordered),
            other => Err(format!(
                "unknown update order `{other}`: felix (Calico's) or ordered"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parse_and_print_as_named() {
        for order in UpdateOrder::ALL {
            assert_eq!(order.to_string().parse::<UpdateOrder>(), Ok(order));
        }
        assert_eq!(UpdateOrder::default(), UpdateOrder::Felix);
        assert!("fifo".parse::<UpdateOrder>().unwrap_err().contains("felix"));
    }
}
