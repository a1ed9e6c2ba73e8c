//! `--routing bird|model`, shared by `run` and `up`, mapped onto the library's
//! [`RoutingMode`].

use fip_harness::bgp::RoutingMode;

/// Who programs the routes of members that do not host a floating IP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RoutingArg {
    /// BIRD in every node and the fabric, configured as calico/node does.
    #[default]
    Bird,
    /// The harness's route model: every route programmed at once, no BGP.
    Model,
}

impl From<RoutingArg> for RoutingMode {
    fn from(arg: RoutingArg) -> Self {
        match arg {
            RoutingArg::Bird => RoutingMode::Bird,
            RoutingArg::Model => RoutingMode::Model,
        }
    }
}
