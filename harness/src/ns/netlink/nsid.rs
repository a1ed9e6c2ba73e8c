//! Namespace ids: how one namespace names another (RTM_GETNSID), which is how
//! a link's peer namespace is told (IFLA_LINK_NETNSID).

use std::fs::File;
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::Member;
use super::NetlinkError;

impl Member {
    /// The id this member's namespace has given the namespace `other` (an open
    /// file on it), if any.
    pub(crate) async fn nsid_of(&self, other: &File) -> Result<Option<i32>, NetlinkError> {
        let mut message = NsidMessage::default();
        message.attributes = vec![NsidAttribute::Fd(other.as_raw_fd() as u32)];
        let answers = self
            .request(
                RouteNetlinkMessage::GetNsId(message),
                "look up a namespace id".into(),
            )
            .await?;
        Ok(answers.iter().rev().find_map(|answer| match answer {
            RouteNetlinkMessage::NewNsId(m) => m.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                _ => None,
            }),
            _ => None,
        }))
    }
}
