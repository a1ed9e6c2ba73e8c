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
use super::NetlinkError;

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
    pub(crate) async fn route_to(
        &self,
        address: IpAddr,
    ) -> Result<Option<RouteSeen>, NetlinkError> {
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rtnetlink::packet_route::route::RouteNextHop;
    use rtnetlink::packet_route::AddressFamily;

    use super::*;

    fn message(prefix: u8, kind: RouteType, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.destination_prefix_length = prefix;
        message.header.kind = kind;
        message.attributes = attributes;
        message
    }

    fn gateway(last: u8) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 18, 0, last)))
    }

    fn fip() -> RouteAttribute {
        RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(203, 0, 113, 10)))
    }

    #[test]
    fn an_ecmp_route_lists_every_next_hop() {
        // What the fabric's BIRD installs for a floating IP two nodes claim.
        let hop = |last| {
            let mut hop = RouteNextHop::default();
            hop.interface_index = 1000;
            hop.attributes = vec![gateway(last)];
            hop
        };
        let route = seen(&message(
            32,
            RouteType::Unicast,
            vec![fip(), RouteAttribute::MultiPath(vec![hop(10), hop(11)])],
        ))
        .unwrap();
        assert_eq!(route.destination.to_string(), "203.0.113.10/32");
        assert_eq!(
            route.hops,
            [
                NextHopSeen::Gateway(Ipv4Addr::new(198, 18, 0, 10).into()),
                NextHopSeen::Gateway(Ipv4Addr::new(198, 18, 0, 11).into()),
            ]
        );
    }

    #[test]
    fn device_blackhole_default_and_other_tables() {
        let device = seen(&message(
            32,
            RouteType::Unicast,
            vec![fip(), RouteAttribute::Oif(101)],
        ));
        assert_eq!(device.unwrap().hops, [NextHopSeen::Device(101)]);
        let blackhole = seen(&message(26, RouteType::BlackHole, vec![fip()])).unwrap();
        assert_eq!(blackhole.hops, [NextHopSeen::Dropped]);
        // No destination: the default route, which covers every address.
        let default = seen(&message(0, RouteType::Unicast, vec![gateway(1)])).unwrap();
        assert_eq!(default.destination.to_string(), "0.0.0.0/0");
        // The local table's routes are not the ones forwarding uses.
        let mut local = message(32, RouteType::Local, vec![fip()]);
        local.header.table = 255;
        assert_eq!(seen(&local), None);
    }
}
