//! Links: loopback and uplinks up, the fabric's bridges, veth pairs made
//! straight into two namespaces, proxy ARP, and lookups by name.

use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoData, InfoKind, InfoVeth, LinkAttribute,
};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec};

use super::{errno, Member};
use crate::lab::error::LabError;
use crate::lab::netns::Netns;

pub(crate) struct VethEnd<'a> {
    pub name: &'a str,
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub controller: Option<u32>,
}

impl Member {
    pub(crate) async fn link_up(&self, index: u32, what: &str) -> Result<(), LabError> {
        self.nl
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(self.fail(format!("set {what} up")))
    }

    pub(crate) async fn add_bridge(&self, name: &str, index: u32) -> Result<(), LabError> {
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
    /// namespace. The peer cannot come up in the same request (veth_open fails
    /// with ENOTCONN before the pair is joined): its namespace sets it up.
    pub(crate) async fn add_veth(
        &self,
        local: VethEnd<'_>,
        peer: VethEnd<'_>,
        peer_ns: &Netns,
    ) -> Result<(), LabError> {
        let mut peer_builder = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.name)
            .index(peer.index)
            .setns_by_fd(peer_ns.file().as_raw_fd());
        if let Some(mac) = peer.mac {
            peer_builder = peer_builder.address(mac.to_vec());
        }
        let mut builder =
            LinkMessageBuilder::<rtnetlink::LinkVeth>::new_with_info_kind(InfoKind::Veth)
                .name(local.name)
                .index(local.index)
                .up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_builder.build())));
        if let Some(mac) = local.mac {
            builder = builder.address(mac.to_vec());
        }
        if let Some(controller) = local.controller {
            builder = builder.controller(controller);
        }
        self.nl
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(self.fail(format!(
                "create veth {} (peer {} in {})",
                local.name,
                peer.name,
                peer_ns.name()
            )))
    }

    pub(crate) async fn delete_link(&self, index: u32, what: &str) -> Result<(), LabError> {
        match self.nl.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            other => other.map_err(self.fail(format!("delete {what}"))),
        }
    }

    /// Turn proxy ARP on for one interface (IFLA_INET_CONF), as Calico does for
    /// its host-side workload interfaces, without touching other interfaces.
    pub(crate) async fn set_proxy_arp(&self, index: u32, what: &str) -> Result<(), LabError> {
        let mut conf = InetDevConf::default();
        conf.proxy_arp = 1;
        let message = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]))
            .build();
        self.nl
            .link()
            .set(message)
            .execute()
            .await
            .map_err(self.fail(format!("enable proxy ARP on {what}")))
    }

    /// The MAC address of a link (IFLA_ADDRESS).
    pub(crate) async fn link_mac(&self, index: u32, what: &str) -> Result<Vec<u8>, LabError> {
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
    pub(crate) async fn link_index(&self, name: &str) -> Result<Option<u32>, LabError> {
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
    pub(crate) async fn peer_links(&self) -> Result<Vec<(String, i32)>, LabError> {
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
    ) -> Result<std::collections::HashMap<u32, String>, LabError> {
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
