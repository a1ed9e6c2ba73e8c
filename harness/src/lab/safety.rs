//! Containment check: a lab proves after bring-up that it added no link and no
//! route to the namespace the harness runs in, and refuses to go on otherwise.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};

use super::netlink::Member;
use super::LabError;

/// The links and routes of the harness's own namespace at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    links: BTreeSet<(u32, String)>,
    routes: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("reading the host namespace's {what}: {source}")]
pub struct SnapshotError {
    what: &'static str,
    #[source]
    source: std::io::Error,
}

fn err(what: &'static str, e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

impl HostSnapshot {
    /// Read the links and routes of the namespace the calling thread is in. Call
    /// it from a tokio worker, which (by the crate's rule) never leaves the host
    /// namespace.
    pub async fn take() -> Result<Self, SnapshotError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| err("links", e))?;
        let task = tokio::spawn(connection);
        let result = async {
            let mut links = BTreeSet::new();
            let mut stream = handle.link().get().execute();
            while let Some(link) = stream.try_next().await.map_err(|e| err("links", e))? {
                let name = link
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                links.insert((link.header.index, name));
            }
            let mut routes = BTreeSet::new();
            for family in [rtnetlink::IpVersion::V4, rtnetlink::IpVersion::V6] {
                let request = match family {
                    rtnetlink::IpVersion::V4 => {
                        rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
                    }
                    rtnetlink::IpVersion::V6 => {
                        rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
                    }
                };
                let mut stream = handle.route().get(request).execute();
                while let Some(route) = stream.try_next().await.map_err(|e| err("routes", e))? {
                    routes.insert(describe_route(&route));
                }
            }
            Ok(Self { links, routes })
        }
        .await;
        drop(handle);
        task.abort();
        result
    }

    /// What `after` has that `self` had not, limited to what a lab could have
    /// made: links with the names labs use, routes into the lab's ranges.
    /// Other changes on a busy host (containers starting, router adverts) are
    /// not the lab's and would make the check flaky.
    pub fn lab_made_changes(&self, after: &HostSnapshot, ranges: &[ipnet::IpNet]) -> Vec<String> {
        let mut found = Vec::new();
        for (index, name) in after.links.difference(&self.links) {
            if is_lab_link_name(name) {
                found.push(format!(
                    "new link {name} (ifindex {index}) in the host namespace"
                ));
            }
        }
        for route in after.routes.difference(&self.routes) {
            let destination = route.split_whitespace().next().unwrap_or_default();
            let in_lab = destination
                .parse::<ipnet::IpNet>()
                .map(|net| {
                    ranges
                        .iter()
                        .any(|r| r.contains(&net.network()) || net.contains(&r.network()))
                })
                .unwrap_or(false);
            if in_lab && destination != "0.0.0.0/0" && destination != "::/0" {
                found.push(format!("new route {route} in the host namespace"));
            }
        }
        found
    }
}

fn is_lab_link_name(name: &str) -> bool {
    name == "eth0"
        || name == super::addressing::BRIDGE_NODES
        || name == super::addressing::BRIDGE_EXT
        || name.starts_with("cali")
        || ((name.starts_with('n') || name.starts_with('x'))
            && name.len() > 1
            && name[1..].bytes().all(|b| b.is_ascii_digit()))
}

fn describe_route(route: &rtnetlink::packet_route::route::RouteMessage) -> String {
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    let mut table = route.header.table as u32;
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = Some(address(a)),
            RouteAttribute::Gateway(a) => gateway = Some(address(a)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let destination = destination.unwrap_or_else(|| {
        if route.header.address_family == rtnetlink::packet_route::AddressFamily::Inet6 {
            "::".into()
        } else {
            "0.0.0.0".into()
        }
    });
    format!(
        "{destination}/{} table {table} via {} oif {}",
        route.header.destination_prefix_length,
        gateway.unwrap_or_default(),
        oif.unwrap_or_default()
    )
}

fn address(a: &RouteAddress) -> String {
    match a {
        RouteAddress::Inet(v4) => v4.to_string(),
        RouteAddress::Inet6(v6) => v6.to_string(),
        other => format!("{other:?}"),
    }
}

/// Links of a member whose peer lives in the host namespace (`host`: an open
/// handle on it; tests pass another lab namespace), as readable lines. The
/// links are dumped first, which makes the kernel give every peer namespace an
/// id as seen from the member; then, if the host namespace has an id there, no
/// link may carry it.
pub async fn links_into_host(
    member: &Member,
    host: &std::fs::File,
) -> Result<Vec<String>, LabError> {
    let peers = member.peer_links().await?;
    if peers.is_empty() {
        return Ok(vec![]);
    }
    let host_id = member.nsid_of(host).await?;
    Ok(peers
        .into_iter()
        .filter(|(_, id)| Some(*id) == host_id)
        .map(|(name, _)| {
            format!(
                "link {name} in {} has its peer in the host namespace",
                member.name()
            )
        })
        .collect())
}
