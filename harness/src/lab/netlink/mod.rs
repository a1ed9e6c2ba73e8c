//! The one home of the harness's rtnetlink calls, one file per kind of object
//! as rtnetlink itself has them ([`link`], [`address`], [`route`],
//! [`neighbour`]), each error naming its namespace; [`socket`] opens the
//! sockets inside namespaces.

mod address;
mod link;
mod neighbour;
mod route;
mod socket;

pub(crate) use link::VethEnd;
pub(crate) use route::Route;
pub use socket::with_member;
pub(crate) use socket::{create_members, NamespaceJob};

use rtnetlink::Handle;

use super::error::LabError;
use super::netns::Netns;

/// A namespace of the lab with its own netlink socket.
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

    fn fail(&self, action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LabError + '_ {
        let action = action.into();
        move |source| LabError::Netlink {
            namespace: self.name().to_string(),
            action,
            source,
        }
    }
}
