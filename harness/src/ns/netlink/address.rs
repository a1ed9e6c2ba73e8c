//! Addresses on a member's links: added as the lab is wired, listed for
//! people (`up`, `state`).

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use serde::{Deserialize, Serialize};

use super::NetlinkError;
use super::{with_member, Member};
use crate::ns::netns::Netns;

/// One address of a member, on the link that holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for LinkAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.interface, self.address, self.prefix)
    }
}

impl Member {
    pub(crate) async fn add_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix: u8,
        what: &str,
    ) -> Result<(), NetlinkError> {
        let mut request = self.nl.address().add(index, address, prefix).replace();
        *request.message_mut() = super::requests::address(index, address, prefix);
        request
            .execute()
            .await
            .map_err(self.fail(format!("add address {address}/{prefix} to {what}")))
    }

    /// The member's addresses people care about: not loopback's, not IPv6
    /// link-local ones (every link has one), sorted.
    pub(crate) async fn addresses(&self) -> Result<Vec<LinkAddress>, NetlinkError> {
        let names = self.link_names().await?;
        let mut found = Vec::new();
        let mut messages = self.nl.address().get().execute();
        while let Some(message) = messages
            .try_next()
            .await
            .map_err(self.fail("list addresses"))?
        {
            let interface = names
                .get(&message.header.index)
                .cloned()
                .unwrap_or_else(|| format!("if{}", message.header.index));
            for attribute in &message.attributes {
                let AddressAttribute::Address(address) = attribute else {
                    continue;
                };
                let link_local =
                    matches!(address, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
                if address.is_loopback() || link_local {
                    continue;
                }
                found.push(LinkAddress {
                    interface: interface.clone(),
                    address: *address,
                    prefix: message.header.prefix_len,
                });
            }
        }
        found.sort();
        Ok(found)
    }
}

/// The addresses of the namespace `ns` (see [`Member::addresses`]).
pub fn list_addresses(ns: &Netns) -> Result<Vec<LinkAddress>, NetlinkError> {
    with_member(ns, |member| async move { member.addresses().await })
}
