//! Links: loopback and uplinks up, the fabric's bridges, veth pairs made
//! straight into two namespaces, proxy ARP, and lookups by name.

use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::LinkBridge;

use super::NetlinkError;
use super::{errno, Member};
use crate::ns::netns::Netns;

pub(crate) struct VethEnd<'a> {
    pub name: &'a str,
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub controller: Option<u32>,
}

impl Member {
    pub(crate) async fn link_up(&self, index: u32, what: &str) -> Result<(), NetlinkError> {
        self.nl
            .link()
            .set(super::requests::link_up(index))
            .execute()
            .await
            .map_err(self.fail(format!("set {what} up")))
    }

    pub(crate) async fn add_bridge(&self, name: &str, index: u32) -> Result<(), NetlinkError> {
        let message = LinkBridge::new(name).index(index).up().build();
        self.nl
            .link()
            .add(message)
            .execute()
            .await
            .map_err(self.fail(format!("create bridge {name}")))
    }

    /// Create a veth pair with this end (up) here and the peer directly in
    /// `peer_ns`, each with a fixed ifindex; the pair never touches the host
    /// namespace (see [`super::requests::veth`]).
    pub(crate) async fn add_veth(
        &self,
        local: VethEnd<'_>,
        peer: VethEnd<'_>,
        peer_ns: &Netns,
    ) -> Result<(), NetlinkError> {
        let peer_file = peer_ns.file()?;
        let message = super::requests::veth(&local, &peer, peer_file.as_raw_fd());
        self.nl
            .link()
            .add(message)
            .execute()
            .await
            .map_err(self.fail(format!(
                "create veth {} (peer {} in {})",
                local.name,
                peer.name,
                peer_ns.name()
            )))
    }

    pub(crate) async fn delete_link(&self, index: u32, what: &str) -> Result<(), NetlinkError> {
        match self.nl.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            other => other.map_err(self.fail(format!("delete {what}"))),
        }
    }

    /// The MAC address of a link (IFLA_ADDRESS).
    pub(crate) async fn link_mac(&self, index: u32, what: &str) -> Result<Vec<u8>, NetlinkError> {
        let mut links = self.nl.link().get().match_index(index).execute();
        let link = links
            .try_next()
            .await
            .map_err(self.fail(format!("look up link {what}")))?;
        Ok(link
            .into_iter()
            .flat_map(|link| link.attributes)
            .find_map(|attribute| match attribute {
                LinkAttribute::Address(mac) => Some(mac),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// The ifindex of a link by name, if it exists.
    pub(crate) async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut links = self.nl.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(Some(link.header.index)),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(self.fail(format!("look up link {name}"))(e)),
        }
    }

    /// The links whose peer is in another namespace: name and that namespace's
    /// id as this one sees it (IFLA_LINK_NETNSID). Dumping the links is also
    /// what makes the kernel give every peer namespace an id here.
    pub(crate) async fn peer_links(&self) -> Result<Vec<(String, i32)>, NetlinkError> {
        let mut peers = Vec::new();
        let mut links = self.nl.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(self.fail("list links"))? {
            let mut name = String::new();
            let mut peer_ns = None;
            for attribute in &link.attributes {
                match attribute {
                    LinkAttribute::IfName(n) => name = n.clone(),
                    LinkAttribute::LinkNetNsId(id) => peer_ns = Some(*id),
                    _ => {}
                }
            }
            if let Some(id) = peer_ns {
                peers.push((name, id));
            }
        }
        Ok(peers)
    }

    /// Every link's name by ifindex.
    pub(crate) async fn link_names(
        &self,
    ) -> Result<std::collections::HashMap<u32, String>, NetlinkError> {
        let mut names = std::collections::HashMap::new();
        let mut links = self.nl.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(self.fail("list links"))? {
            for attribute in &link.attributes {
                if let LinkAttribute::IfName(name) = attribute {
                    names.insert(link.header.index, name.clone());
                }
            }
        }
        Ok(names)
    }
}
