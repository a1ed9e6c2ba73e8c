//! Floating-IP routes inside a namespace over rtnetlink.
//!
//! Each call runs on a short-lived thread that enters the namespace and drives
//! its own single-threaded runtime, so no tokio worker ever changes namespace.

use std::future::Future;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use crate::lab::netns::{Netns, NetnsError};

/// Routing protocol number the harness puts on floating-IP routes, so they can
/// be told apart from pod and block routes (`ip route` shows `proto 241`).
pub const FIP_ROUTE_PROTOCOL: u8 = 241;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("namespace '{netns}': {action}: {reason}")]
    Failed {
        netns: String,
        action: String,
        reason: String,
    },
}

/// Where a floating-IP route leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteNext {
    /// A device route (the pod's cali interface on the hosting node).
    Device(String),
    /// Via the hosting node's uplink address (other nodes, the fabric).
    Via(IpAddr),
}

/// A floating IP's host route (/32 or /128).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FipRoute {
    pub destination: IpAddr,
    pub next: RouteNext,
}

impl std::fmt::Display for FipRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = if self.destination.is_ipv4() { 32 } else { 128 };
        match &self.next {
            RouteNext::Device(dev) => write!(f, "{}/{len} dev {dev}", self.destination),
            RouteNext::Via(via) => write!(f, "{}/{len} via {via}", self.destination),
        }
    }
}

/// Run `work` with an rtnetlink handle whose socket lives in `ns`.
fn in_netns<F, Fut, R>(ns: &Netns, action: &str, work: F) -> Result<R, NetlinkError>
where
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<R, String>>,
    R: Send,
{
    let failed = |reason: String| NetlinkError::Failed {
        netns: ns.name().to_string(),
        action: action.to_string(),
        reason,
    };
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            let result = work(handle).await;
            driver.abort();
            result
        })
    })?
    .map_err(failed)
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32, String> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(format!("no link named '{name}'")),
        Err(e) => Err(format!("link '{name}': {e}")),
    }
}

fn host_len(address: IpAddr) -> u8 {
    if address.is_ipv4() {
        32
    } else {
        128
    }
}

async fn route_message(handle: &Handle, route: &FipRoute) -> Result<RouteMessage, String> {
    let builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.destination, host_len(route.destination))
        .map_err(|e| e.to_string())?
        .protocol(RouteProtocol::Other(FIP_ROUTE_PROTOCOL));
    let builder = match &route.next {
        RouteNext::Device(dev) => builder
            .output_interface(index_of(handle, dev).await?)
            .scope(RouteScope::Link),
        RouteNext::Via(via) => builder.gateway(*via).map_err(|e| e.to_string())?,
    };
    // Felix's floating-IP route is a workload route at its normal priority
    // (felix/dataplane/linux/endpoint_mgr.go); BIRD programs a peer's route
    // at the same metric (bird_ipam.cfg's calico_kernel_programming). One
    // metric for both also lets a replace turn one kind into the other.
    let builder = builder.priority(crate::bgp::FELIX_NORMAL_ROUTE_PRIORITY);
    Ok(builder.build())
}

/// Add (or replace) floating-IP routes in `ns`.
pub fn add_routes(ns: &Netns, routes: &[FipRoute]) -> Result<(), NetlinkError> {
    in_netns(ns, "add floating-IP routes", |handle| async move {
        for route in routes {
            let message = route_message(&handle, route).await?;
            handle
                .route()
                .add(message)
                .replace()
                .execute()
                .await
                .map_err(|e| format!("{route}: {e}"))?;
        }
        Ok(())
    })
}

/// Delete floating-IP routes from `ns`; a route already gone is fine.
pub fn del_routes(ns: &Netns, destinations: &[IpAddr]) -> Result<(), NetlinkError> {
    in_netns(ns, "delete floating-IP routes", |handle| async move {
        for destination in destinations {
            let message = RouteMessageBuilder::<IpAddr>::new()
                .destination_prefix(*destination, host_len(*destination))
                .map_err(|e| e.to_string())?
                .protocol(RouteProtocol::Other(FIP_ROUTE_PROTOCOL))
                // Any scope, as `ip route del` asks: the default (universe)
                // never matches a device route (scope link), which then stayed.
                .scope(RouteScope::NoWhere)
                .build();
            match handle.route().del(message).execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e))
                    if e.code.map(|c| c.get()) == Some(-libc::ESRCH) => {}
                Err(e) => return Err(format!("{destination}: {e}")),
            }
        }
        Ok(())
    })
}

/// The floating-IP routes `ns` holds (those carrying [`FIP_ROUTE_PROTOCOL`]).
pub fn list_routes(ns: &Netns) -> Result<Vec<FipRoute>, NetlinkError> {
    in_netns(ns, "list routes", |handle| async move {
        let mut names = std::collections::HashMap::new();
        let mut links = handle.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(|e| e.to_string())? {
            for attribute in &link.attributes {
                if let LinkAttribute::IfName(name) = attribute {
                    names.insert(link.header.index, name.clone());
                }
            }
        }
        let mut found = Vec::new();
        for request in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let mut routes = handle.route().get(request).execute();
            while let Some(route) = routes.try_next().await.map_err(|e| e.to_string())? {
                if route.header.protocol != RouteProtocol::Other(FIP_ROUTE_PROTOCOL) {
                    continue;
                }
                let mut destination = None;
                let mut via = None;
                let mut device = None;
                for attribute in &route.attributes {
                    match attribute {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                            destination = Some(IpAddr::V4(*a))
                        }
                        RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                            destination = Some(IpAddr::V6(*a))
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet(a)) => {
                            via = Some(IpAddr::V4(*a))
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet6(a)) => {
                            via = Some(IpAddr::V6(*a))
                        }
                        RouteAttribute::Oif(index) => device = names.get(index).cloned(),
                        _ => {}
                    }
                }
                let next = match (via, device) {
                    (Some(via), _) => RouteNext::Via(via),
                    (None, Some(dev)) => RouteNext::Device(dev),
                    (None, None) => continue,
                };
                if let Some(destination) = destination {
                    found.push(FipRoute { destination, next });
                }
            }
        }
        found.sort();
        Ok(found)
    })
}
