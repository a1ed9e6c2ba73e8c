//! What can go wrong talking netlink inside a namespace; each error names
//! the namespace. The lab wraps these with the same texts (`LabError`).

use crate::ns::netns::NetnsError;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{namespace}: {action}: {source}")]
    Netlink {
        namespace: String,
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{namespace}: opening a netlink socket: {source}")]
    Socket {
        namespace: String,
        #[source]
        source: std::io::Error,
    },
}
