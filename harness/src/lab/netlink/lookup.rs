//! Which route a member's main table uses for an address: the most specific
//! one that covers it, with every next hop of an ECMP route. For the report's
//! lab pictures, so they show the routes the kernel has, not the ones the
//! harness meant to program.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use super::Member;
use crate::lab::error::LabError;

/// Where a route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHopSeen {
    Gateway(IpAddr),
    /// Out of an interface (by index), with no gateway: a device route.
    Device(u32),
    /// Blackhole, unreachable or prohibit.
    Dropped,
}

/// A route as the kernel holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSeen {
    pub destination: IpNet,
    pub hops: Vec<NextHopSeen>,
}

impl Member {
    /// The main-table route the kernel would pick for `address` by prefix
    /// length (ties: the first listed, which is the lowest metric), if any.
    pub(crate) async fn route_to(&self, address: IpAddr) -> Result<Option<RouteSeen>, LabError> {
        let request = match address {
            IpAddr::V4(_) => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            IpAddr::V6(_) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        let mut routes = self.nl.route().get(request).execute();
        let mut best: Option<RouteSeen> = None;
        while let Some(message) = routes.try_next().await.map_err(self.fail("list routes"))? {
            let Some(route) = seen(&message) else {
                continue;
            };
            let longer = best
                .as_ref()
                .is_none_or(|b| route.destination.prefix_len() > b.destination.prefix_len());
            if route.destination.contains(&address) && longer {
                best = Some(route);
            }
        }
        Ok(best)
    }
}

/// A main-table route of `message`; the default route counts as `/0`.
fn seen(message: &RouteMessage) -> Option<RouteSeen> {
    let table = message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let destination = message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(a) => address(a),
            _ => None,
        })
        .or(match message.header.address_family {
            rtnetlink::packet_route::AddressFamily::Inet6 => {
                Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
            }
            _ => Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        })?;
    let destination = IpNet::new(destination, message.header.destination_prefix_length).ok()?;
    let hops = match message.header.kind {
        RouteType::BlackHole | RouteType::Unreachable | RouteType::Prohibit => {
            vec![NextHopSeen::Dropped]
        }
        RouteType::Unicast => hops(&message.attributes),
        _ => return None,
    };
    Some(RouteSeen { destination, hops })
}

/// The next hops of a unicast route: one, or each of a multipath route's.
fn hops(attributes: &[RouteAttribute]) -> Vec<NextHopSeen> {
    let single = |attributes: &[RouteAttribute], interface: Option<u32>| {
        let gateway = attributes.iter().find_map(|a| match a {
            RouteAttribute::Gateway(a) => address(a),
            _ => None,
        });
        let device = interface.or_else(|| {
            attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })
        });
        match (gateway, device) {
            (Some(gateway), _) => Some(NextHopSeen::Gateway(gateway)),
            (None, Some(device)) => Some(NextHopSeen::Device(device)),
            (None, None) => None,
        }
    };
    let multipath = attributes.iter().find_map(|a| match a {
        RouteAttribute::MultiPath(hops) => Some(hops),
        _ => None,
    });
    match multipath {
        Some(next_hops) => next_hops
            .iter()
            .filter_map(|hop| single(&hop.attributes, Some(hop.interface_index)))
            .collect(),
        None => single(attributes, None).into_iter().collect(),
    }
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}
