//! Floating-IP routes (the BIRD role): each a /32 or /128 tagged with the
//! harness's routing protocol number, programmed over the lab's rtnetlink calls
//! ([`crate::lab::netlink`]) on a one-off socket per member.

use std::net::IpAddr;

use crate::lab::netlink::{with_member, KeptMember, Member, Route};
use crate::lab::netns::Netns;
use crate::lab::spec::lab_of_namespace;
use crate::lab::{Family, LabError};

/// Routing protocol number the harness puts on floating-IP routes, so they can
/// be told apart from pod and block routes (`ip route` shows `proto 241`).
pub const FIP_ROUTE_PROTOCOL: u8 = 241;

pub use crate::calico::routes::{FipRoute, RouteNext};

fn host_len(address: IpAddr) -> u8 {
    Family::of(&address).host_prefix()
}

/// Delete the floating-IP routes to `remove`, then add (or replace) `add`,
/// in `ns`, over a one-off netlink socket; a route already gone is fine.
pub fn change_routes(ns: &Netns, remove: &[IpAddr], add: &[FipRoute]) -> Result<(), LabError> {
    if remove.is_empty() && add.is_empty() {
        return Ok(());
    }
    with_member(ns, |member| route_changes(member, remove, add))
}

/// [`change_routes`] over a socket kept in the member for many updates.
pub(crate) fn change_routes_kept(
    kept: &KeptMember,
    remove: &[IpAddr],
    add: &[FipRoute],
) -> Result<(), LabError> {
    if remove.is_empty() && add.is_empty() {
        return Ok(());
    }
    kept.run(|member| route_changes(member, remove, add))
}

async fn route_changes(
    member: Member,
    remove: &[IpAddr],
    add: &[FipRoute],
) -> Result<(), LabError> {
    for destination in remove {
        member
            .remove_route(
                *destination,
                host_len(*destination),
                Some(FIP_ROUTE_PROTOCOL),
            )
            .await?;
    }
    for route in add {
        let destination = route.destination;
        let mut message = match &route.next {
            RouteNext::Via(via) => Route::via(destination, host_len(destination), *via),
            RouteNext::Multipath(hops) => {
                Route::multipath(destination, host_len(destination), hops.clone())
            }
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
                Route::dev(destination, host_len(destination), index)
            }
        };
        message.protocol = Some(FIP_ROUTE_PROTOCOL);
        member.replace_route(message).await?;
    }
    Ok(())
}

/// Delete floating-IP routes from `ns`; a route already gone is fine.
pub fn del_routes(ns: &Netns, destinations: &[IpAddr]) -> Result<(), LabError> {
    change_routes(ns, destinations, &[])
}

/// Routing protocol number BIRD puts on the routes it programs
/// (`RTPROT_BIRD` in linux/rtnetlink.h; `ip route` shows `proto bird`).
pub const BIRD_ROUTE_PROTOCOL: u8 = 12;

/// The floating-IP routes `ns` holds (those carrying [`FIP_ROUTE_PROTOCOL`]).
pub fn list_routes(ns: &Netns) -> Result<Vec<FipRoute>, LabError> {
    host_routes(ns, FIP_ROUTE_PROTOCOL)
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
