//! The one home of the harness's rtnetlink calls, one file per kind of object
//! as rtnetlink itself has them ([`link`], [`address`], [`route`],
//! [`nsid`]), and whether links carry traffic yet ([`ready`]), each error naming its namespace; [`socket`] opens the sockets
//! inside namespaces; [`requests`] builds the messages of a pod's wiring,
//! which [`batch`] sends many at a time on a plain blocking socket.

mod address;
mod batch;
mod error;
mod link;
mod lookup;
mod nsid;
mod ready;
mod requests;
mod route;
mod socket;

pub use address::{list_addresses, LinkAddress};
pub(crate) use batch::{Batch, BatchSocket, Create};
pub use error::NetlinkError;
pub(crate) use link::VethEnd;
pub use lookup::{NextHopSeen, RouteSeen};
pub use ready::{wait_ready_in, NotReady};
pub(crate) use requests::{
    address as address_message, link_up, permanent_arp, veth, workload_host_side_v4,
};
pub(crate) use route::Route;
pub use route::FELIX_ROUTE_PROTOCOL;
pub(crate) use socket::{create_members, NamespaceJob};
pub(crate) use socket::{with_member, KeptMember};

use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::Handle;

use super::netns::Netns;

/// A namespace with its own netlink socket.
#[derive(Clone, Debug)]
pub struct Member {
    pub netns: Netns,
    pub nl: Handle,
}

/// A netlink error's errno, if the kernel sent one.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Member {
    pub fn name(&self) -> &str {
        self.netns.name()
    }

    fn fail(
        &self,
        action: impl Into<String>,
    ) -> impl FnOnce(rtnetlink::Error) -> NetlinkError + '_ {
        let action = action.into();
        move |source| NetlinkError::Netlink {
            namespace: self.name().to_string(),
            action,
            source,
        }
    }

    /// Send a request rtnetlink has no builder for and collect the kernel's
    /// answers; an error answer fails with `action`.
    async fn request(
        &self,
        message: RouteNetlinkMessage,
        action: String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let fail = self.fail(action);
        let mut handle = self.nl.clone();
        let mut responses = match handle.request(request) {
            Ok(r) => r,
            Err(e) => return Err(fail(e)),
        };
        let mut answers = Vec::new();
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(fail(rtnetlink::Error::NetlinkError(e)))
                }
                NetlinkPayload::InnerMessage(answer) => answers.push(answer),
                _ => {}
            }
        }
        Ok(answers)
    }
}
