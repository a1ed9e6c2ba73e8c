//! Floating-IP routes: Felix's device route on the hosting node, and under
//! model routing the routes BIRD would program everywhere else; each a /32 or
//! /128 with the routing protocol of whoever writes it in Calico, programmed
//! over the lab's rtnetlink calls ([`crate::lab::netlink`]) on a one-off
//! socket per member.

use std::net::IpAddr;

use crate::bgp::RoutingMode;
use crate::lab::netlink::{with_member, KeptMember, Member, Route};
use crate::lab::netns::Netns;
use crate::lab::spec::lab_of_namespace;
use crate::lab::{Family, LabError};

pub use crate::lab::netlink::FELIX_ROUTE_PROTOCOL;

/// The protocols of the floating-IP routes the control plane writes, and so
/// may remove, under `routing`: Felix's device routes always; the route
/// model's stand-ins for BIRD's routes only under model routing (under BIRD
/// those are BIRD's own).
pub(crate) fn owned_protocols(routing: RoutingMode) -> &'static [u8] {
    match routing {
        RoutingMode::Bird => &[FELIX_ROUTE_PROTOCOL],
        RoutingMode::Model => &[FELIX_ROUTE_PROTOCOL, BIRD_ROUTE_PROTOCOL],
    }
}

pub use crate::calico::routes::{FipRoute, RouteNext};

fn host_len(address: IpAddr) -> u8 {
    Family::of(&address).host_prefix()
}

/// Delete the floating-IP routes to `remove` (those carrying one of
/// `protocols`), then add (or replace) `add`, in `ns`, over a one-off netlink
/// socket; a route already gone is fine.
pub fn change_routes(
    ns: &Netns,
    protocols: &[u8],
    remove: &[IpAddr],
    add: &[FipRoute],
) -> Result<(), LabError> {
    if remove.is_empty() && add.is_empty() {
        return Ok(());
    }
    with_member(ns, |member| route_changes(member, protocols, remove, add))
}

/// [`change_routes`] over a socket kept in the member for many updates.
pub(crate) fn change_routes_kept(
    kept: &KeptMember,
    protocols: &[u8],
    remove: &[IpAddr],
    add: &[FipRoute],
) -> Result<(), LabError> {
    if remove.is_empty() && add.is_empty() {
        return Ok(());
    }
    kept.run(|member| route_changes(member, protocols, remove, add))
}

async fn route_changes(
    member: Member,
    protocols: &[u8],
    remove: &[IpAddr],
    add: &[FipRoute],
) -> Result<(), LabError> {
    for destination in remove {
        for protocol in protocols {
            member
                .remove_route(*destination, host_len(*destination), Some(*protocol))
                .await?;
        }
    }
    for route in add {
        let destination = route.destination;
        let (mut message, protocol) = match &route.next {
            RouteNext::Via(via) => (
                Route::via(destination, host_len(destination), *via),
                BIRD_ROUTE_PROTOCOL,
            ),
            RouteNext::Multipath(hops) => (
                Route::multipath(destination, host_len(destination), hops.clone()),
                BIRD_ROUTE_PROTOCOL,
            ),
            RouteNext::Device(dev) => {
                let index = member
                    .link_index(dev)
                    .await?
                    .ok_or_else(|| LabError::NoInterface {
                        lab: lab_of_namespace(member.name())
                            .unwrap_or_default()
                            .to_string(),
                        member: member.name().to_string(),
                        interface: dev.clone(),
                    })?;
                (
                    Route::dev(destination, host_len(destination), index),
                    FELIX_ROUTE_PROTOCOL,
                )
            }
        };
        // Felix's route table writes its device routes with its
        // DeviceRouteProtocol (endpoint_mgr.go calculateRoutes gives no
        // protocol, so routetable/route_table.go uses the default); a route
        // through another node is BIRD's (`proto bird`), which the route model
        // stands in for.
        message.protocol = Some(protocol);
        member.replace_route(message).await?;
    }
    Ok(())
}

/// Delete floating-IP routes (carrying one of `protocols`) from `ns`; a route
/// already gone is fine.
pub fn del_routes(ns: &Netns, protocols: &[u8], destinations: &[IpAddr]) -> Result<(), LabError> {
    change_routes(ns, protocols, destinations, &[])
}

/// Routing protocol number BIRD puts on the routes it programs
/// (`RTPROT_BIRD` in linux/rtnetlink.h; `ip route` shows `proto bird`).
pub const BIRD_ROUTE_PROTOCOL: u8 = 12;

/// The floating-IP routes `ns` holds: the host routes Felix and BIRD (or the
/// route model) wrote, less those to `pod_addresses`. Felix's routes to its
/// pods carry the same protocol as those to their floating IPs (Calico does
/// not tell them apart), so the caller names the pods' own addresses.
pub fn list_routes(ns: &Netns, pod_addresses: &[IpAddr]) -> Result<Vec<FipRoute>, LabError> {
    let mut found = host_routes(ns, FELIX_ROUTE_PROTOCOL)?;
    found.retain(|route| !pod_addresses.contains(&route.destination));
    found.extend(host_routes(ns, BIRD_ROUTE_PROTOCOL)?);
    found.sort();
    Ok(found)
}

/// The host routes (/32, /128) BIRD programmed in `ns`: the floating IPs it
/// carries (block routes are shorter).
pub fn list_bird_host_routes(ns: &Netns) -> Result<Vec<FipRoute>, LabError> {
    host_routes(ns, BIRD_ROUTE_PROTOCOL)
}

fn host_routes(ns: &Netns, protocol: u8) -> Result<Vec<FipRoute>, LabError> {
    with_member(ns, |member| async move {
        let names = member.link_names().await?;
        let mut found: Vec<FipRoute> = member
            .list_routes(protocol)
            .await?
            .into_iter()
            .filter(|route| route.prefix == host_len(route.destination))
            .filter_map(|route| {
                let next = match (route.via, route.dev.and_then(|i| names.get(&i))) {
                    _ if route.hops.len() > 1 => RouteNext::Multipath(route.hops),
                    (Some(via), _) => RouteNext::Via(via),
                    (None, Some(dev)) => RouteNext::Device(dev.clone()),
                    (None, None) => return None,
                };
                Some(FipRoute {
                    destination: route.destination,
                    next,
                })
            })
            .collect();
        found.sort();
        Ok(found)
    })
}
