//! Routes: add or replace, remove by destination, and list by protocol.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteNextHop, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use super::NetlinkError;
use super::{errno, Member};

impl Member {
    /// Add or replace a route. `via` and `dev` may both be given (gateway on a
    /// given link); `onlink` skips the kernel's check that the gateway is reachable.
    pub(crate) async fn replace_route(&self, route: Route) -> Result<(), NetlinkError> {
        let message = self.message(&route)?;
        self.nl
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(self.fail(format!("add route {route}")))
    }

    /// Remove the main-table route to `destination/prefix`, whatever its next hop
    /// (and only if it carries `protocol`, when given); a missing route is not an
    /// error.
    pub(crate) async fn remove_route(
        &self,
        destination: IpAddr,
        prefix: u8,
        protocol: Option<u8>,
    ) -> Result<(), NetlinkError> {
        let route = Route {
            protocol,
            ..Route::unicast(destination, prefix)
        };
        self.delete_route(route).await
    }

    /// Remove the main-table route to `destination/prefix` only if it leads
    /// out of interface `dev` (the kernel matches the output interface given
    /// in the request); a route out of another interface stays, and a
    /// missing one is not an error.
    pub(crate) async fn remove_device_route(
        &self,
        destination: IpAddr,
        prefix: u8,
        dev: u32,
    ) -> Result<(), NetlinkError> {
        self.delete_route(Route::dev(destination, prefix, dev))
            .await
    }

    async fn delete_route(&self, route: Route) -> Result<(), NetlinkError> {
        let (destination, prefix, protocol) = (route.destination, route.prefix, route.protocol);
        let mut message = self.message(&route)?;
        // Match any scope and type: the kernel then deletes by destination (and
        // protocol) alone; a given scope would have to equal the route's.
        message.header.scope = RouteScope::NoWhere;
        message.header.kind = RouteType::Unspec;
        if protocol.is_none() {
            message.header.protocol = RouteProtocol::Unspec;
        }
        match self.nl.route().del(message).execute().await {
            Err(e) if errno(&e) == Some(libc::ESRCH) || errno(&e) == Some(libc::ENOENT) => Ok(()),
            other => other.map_err(self.fail(format!("remove route {destination}/{prefix}"))),
        }
    }

    /// The main-table routes (both families) whose protocol is `protocol`.
    pub(crate) async fn list_routes(&self, protocol: u8) -> Result<Vec<Route>, NetlinkError> {
        let mut found = Vec::new();
        for request in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let mut routes = self.nl.route().get(request).execute();
            while let Some(message) = routes.try_next().await.map_err(self.fail("list routes"))? {
                // Compared as numbers: the crate decodes well-known numbers
                // (12, BIRD's) into named variants, never `Other(n)`.
                if u8::from(message.header.protocol) == protocol {
                    found.extend(Route::from_message(&message));
                }
            }
        }
        Ok(found)
    }

    fn message(&self, route: &Route) -> Result<RouteMessage, NetlinkError> {
        route.message().map_err(|e| NetlinkError::Netlink {
            namespace: self.name().to_string(),
            action: format!("build route {route}"),
            source: rtnetlink::Error::InvalidNla(e),
        })
    }
}

/// Felix's `DeviceRouteProtocol` (felix/config/config_params.go, default 3,
/// RTPROT_BOOT; `ip route` shows `proto boot`): the protocol of every route
/// Felix's route table writes to a workload, for its addresses and its
/// floating IPs alike (felix/dataplane/linux/endpoint_mgr.go calculateRoutes).
/// The CNI plugin's own first route to a pod carries it too (SetupRoutes
/// leaves the protocol to the netlink library, whose default is RTPROT_BOOT),
/// so Felix finds it already right.
pub const FELIX_ROUTE_PROTOCOL: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Unicast,
    Blackhole,
}

#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub destination: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
    /// The gateways of an ECMP route (RTA_MULTIPATH), instead of `via`.
    pub hops: Vec<IpAddr>,
    pub dev: Option<u32>,
    pub onlink: bool,
    pub kind: RouteKind,
    /// The routing protocol number it carries (`ip route` shows `proto N`);
    /// `None` for rtnetlink's default (static).
    pub protocol: Option<u8>,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.destination, self.prefix)?;
        if self.kind == RouteKind::Blackhole {
            write!(f, " blackhole")?;
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        for hop in &self.hops {
            write!(f, " nexthop via {hop}")?;
        }
        if let Some(dev) = self.dev {
            write!(f, " dev #{dev}")?;
        }
        Ok(())
    }
}

impl Route {
    /// A unicast route with no next hop yet.
    fn unicast(destination: IpAddr, prefix: u8) -> Self {
        Self {
            destination,
            prefix,
            via: None,
            hops: Vec::new(),
            dev: None,
            onlink: false,
            kind: RouteKind::Unicast,
            protocol: None,
        }
    }

    pub fn via(destination: IpAddr, prefix: u8, gateway: IpAddr) -> Self {
        Self {
            via: Some(gateway),
            ..Self::unicast(destination, prefix)
        }
    }

    /// An ECMP route through `gateways` (the kernel finds each one's link).
    pub fn multipath(destination: IpAddr, prefix: u8, gateways: Vec<IpAddr>) -> Self {
        Self {
            hops: gateways,
            ..Self::unicast(destination, prefix)
        }
    }

    pub fn dev(destination: IpAddr, prefix: u8, index: u32) -> Self {
        Self {
            dev: Some(index),
            ..Self::unicast(destination, prefix)
        }
    }

    pub fn blackhole(destination: IpAddr, prefix: u8) -> Self {
        Self {
            kind: RouteKind::Blackhole,
            ..Self::unicast(destination, prefix)
        }
    }

    /// The route a kernel message describes; `None` without a destination
    /// (default routes), which the harness never lists.
    fn from_message(message: &RouteMessage) -> Option<Self> {
        let address = |a: &RouteAddress| match a {
            RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
            RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
            _ => None,
        };
        let mut route = Self::unicast(
            message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    RouteAttribute::Destination(a) => address(a),
                    _ => None,
                })?,
            message.header.destination_prefix_length,
        );
        for attribute in &message.attributes {
            match attribute {
                RouteAttribute::Gateway(a) => route.via = address(a),
                RouteAttribute::Oif(index) => route.dev = Some(*index),
                RouteAttribute::MultiPath(hops) => {
                    route.hops = hops
                        .iter()
                        .flat_map(|hop| &hop.attributes)
                        .filter_map(|a| match a {
                            RouteAttribute::Gateway(a) => address(a),
                            _ => None,
                        })
                        .collect();
                }
                _ => {}
            }
        }
        if message.header.kind == RouteType::BlackHole {
            route.kind = RouteKind::Blackhole;
        }
        route.protocol = Some(u8::from(message.header.protocol));
        Some(route)
    }

    pub(crate) fn message(&self) -> Result<RouteMessage, String> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.destination, self.prefix)
            .map_err(|e| e.to_string())?;
        if let Some(via) = self.via {
            builder = builder.gateway(via).map_err(|e| e.to_string())?;
        }
        if let Some(dev) = self.dev {
            builder = builder.output_interface(dev);
        }
        if !self.hops.is_empty() {
            let hops = self
                .hops
                .iter()
                .map(|gateway| {
                    let mut hop = RouteNextHop::default();
                    hop.attributes.push(RouteAttribute::Gateway(match gateway {
                        IpAddr::V4(a) => RouteAddress::Inet(*a),
                        IpAddr::V6(a) => RouteAddress::Inet6(*a),
                    }));
                    hop
                })
                .collect();
            builder = builder.multipath(hops);
        }
        if self.onlink {
            builder = builder.onlink();
        }
        if let Some(protocol) = self.protocol {
            builder = builder.protocol(RouteProtocol::from(protocol));
        }
        let workload = self.kind == RouteKind::Unicast && self.via.is_none() && self.dev.is_some();
        match self.kind {
            RouteKind::Blackhole => builder = builder.kind(RouteType::BlackHole),
            RouteKind::Unicast if workload => builder = builder.scope(RouteScope::Link),
            RouteKind::Unicast => {}
        }
        if workload || self.protocol.is_some() {
            // Felix's workload routes (pod addresses, floating IPs) are at its
            // normal priority (felix/dataplane/linux/endpoint_mgr.go), and BIRD
            // programs a peer's route at the same metric (bird_ipam.cfg's
            // calico_kernel_programming): BIRD learns Felix's with it, and
            // calico_aggr keeps such /32s of a node's own block on the node.
            // One metric for the floating-IP routes of both kinds also lets a
            // replace turn one into the other.
            builder = builder.priority(crate::calico::felix::NORMAL_ROUTE_PRIORITY);
        }
        Ok(builder.build())
    }
}
