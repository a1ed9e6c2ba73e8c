//! The model's conntrack: the entries a flow leaves on the nodes it crosses
//! ([`Flow`]) and the keyless GRE flows the cluster remembers across sends
//! ([`GreTable`]), keyed by the [`Packet`] that started them. Below both the
//! cluster, which holds the table, and the prediction, which walks packets
//! through it ([`super::predict`]).

mod flow;
mod gre;

use std::net::IpAddr;

use serde::Serialize;

pub use flow::Flow;
pub(crate) use flow::{Binding, Egress, Entries, EntryKey};
pub(crate) use gre::Met;
pub use gre::{GreTable, GRE_REPLIED_TIMEOUT, GRE_UNREPLIED_TIMEOUT};

use crate::vocab::{IpFamily, Protocol, ECHO_PORT};

/// A packet to predict: from a member (pod, node, external host or the
/// fabric, by name) to an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub from: String,
    pub to: IpAddr,
    pub protocol: Protocol,
    /// Destination port (udp, tcp, sctp).
    pub port: u16,
}

impl Packet {
    /// A packet to the echo port.
    pub fn new(from: &str, to: IpAddr, protocol: Protocol) -> Self {
        Self {
            from: from.to_string(),
            to,
            protocol,
            port: ECHO_PORT,
        }
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.to)
    }
}
