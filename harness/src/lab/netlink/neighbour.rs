//! Neighbour tables: the per-interface proxy ARP delay.

use rtnetlink::packet_route::neighbour_table::{
    NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Member;
use crate::lab::error::LabError;

impl Member {
    /// Make proxy ARP on one interface answer at once (RTM_SETNEIGHTBL, the
    /// netlink form of `net.ipv4.neigh.<if>.proxy_delay = 0`); otherwise the
    /// kernel delays each proxied reply by up to 0.8 s. Calico sets it too.
    pub(crate) async fn set_proxy_delay_zero(
        &self,
        index: u32,
        what: &str,
    ) -> Result<(), LabError> {
        let mut message = NeighbourTableMessage::default();
        message.header.family = AddressFamily::Inet;
        message.attributes = vec![
            NeighbourTableAttribute::Name("arp_cache".into()),
            NeighbourTableAttribute::Parms(vec![
                NeighbourTableParameter::Ifindex(index),
                NeighbourTableParameter::ProxyDelay(0),
            ]),
        ];
        self.request(
            RouteNetlinkMessage::SetNeighbourTable(message),
            format!("set proxy_delay 0 on {what}"),
        )
        .await?;
        Ok(())
    }
}
