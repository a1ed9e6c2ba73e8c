//! Where a packet must land, for the cluster as it is now: which pod (or
//! host) receives it, with which destination and source, which address the
//! reply comes from, or where it is dropped.
//!
//! The model routes the packet as the lab's kernels do: a pod sends
//! everything to its node; a node translates what arrives at it or leaves it
//! with Felix's NAT of that node (the DNAT in the prerouting and output hooks,
//! the loopback SNAT in postrouting), then routes by longest prefix: its own
//! address, its pods' /32 (/128) routes and Felix's floating-IP device
//! routes, floating-IP routes learned over BGP, its own IPAM blocks (a
//! blackhole) and other nodes' (via them), the nodes' segment, and the
//! default route to the fabric. The fabric routes floating IPs and blocks to
//! nodes and has no default route. Each node keeps conntrack entries: the
//! first packet of a flow fixes its NAT there, later packets follow the
//! entry, whatever the rules say by then, until a deletion takes it
//! ([`Flow`]). GRE has no ports: every GRE packet between two addresses is
//! one flow whichever step sends it, and a new flow whose reply tuple an
//! older entry holds is dropped ([`GreTable`]).
//!
//! What the model does not say: timing (how long a move takes, loss during
//! it), the pod ECMP hashing picks (a prediction lists every candidate), the
//! rate-limited ICMP errors a router sends for a packet it has no route for,
//! and what a node or external host answers besides ICMP echo.

#[cfg(test)]
mod answer_tests;
mod expect;
#[cfg(test)]
mod gre_tests;
#[cfg(test)]
mod tests;
mod walk;

use std::net::IpAddr;

use serde::Serialize;

pub use crate::calico::conntrack::{
    Flow, GreTable, Packet, GRE_REPLIED_TIMEOUT, GRE_UNREPLIED_TIMEOUT,
};
pub use expect::{address_book, note_pods, observed, send_disagreements, StreamWatch};

use super::cluster::Cluster;
use crate::vocab::IpFamily;
use crate::vocab::{Protocol, ECHO_PORT, SCTP_CLIENT_PORT_BASE};

/// What becomes of a packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Prediction {
    /// The sender's address the packet leaves with.
    pub source: IpAddr,
    /// One outcome; several when ECMP picks one of them per flow.
    pub outcomes: Vec<Outcome>,
}

impl Prediction {
    /// The pods that receive the packet in some outcome.
    pub fn pods(&self) -> Vec<&str> {
        let mut pods: Vec<&str> = self
            .outcomes
            .iter()
            .filter_map(|o| o.landing.pod())
            .collect();
        pods.sort_unstable();
        pods.dedup();
        pods
    }

    /// What a send of `packet` observes of this first packet's fate, where
    /// the probe's payload needs a handshake answered first:
    /// - a TCP probe connects first and sends its payload (which the pod's
    ///   responder counts) only on a connection made, so a pod whose answer
    ///   (the SYN-ACK) does not return to the sender gets nothing
    ///   ([`DropReason::NoConnection`]). Found by `fip-harness explore` on
    ///   every reference dataplane: a pod claiming its own address beside
    ///   other floating IPs, and a pod whose address another pod claims.
    /// - an SCTP probe sends its DATA even without an association, with
    ///   verification tag 0. A node that saw the pod's INIT ACK pass has
    ///   learned the tag the peer expects, so to its conntrack that DATA
    ///   fails the verification-tag check (net/netfilter/
    ///   nf_conntrack_proto_sctp.c nf_conntrack_sctp_packet, RFC 9260 8.5)
    ///   and is taken as invalid: it has no entry, so no NAT. Untranslated,
    ///   a packet to a floating IP is routed to the holder's interface
    ///   still addressed to the floating IP, which the pod does not own
    ///   ([`DropReason::NoAssociation`]); a packet no node translated
    ///   arrives as it is. A pod answering itself (its own address as the
    ///   source) answers into the sender's own namespace, where the raw
    ///   client takes the INIT ACK. Found by `fip-harness explore
    ///   --dataplane iptables --seed 6001` (case 217, every reference
    ///   dataplane alike): a pod whose address another pod claims, sending
    ///   SCTP to a floating IP.
    pub fn as_sent(mut self, packet: &Packet) -> Self {
        let source = self.source;
        for outcome in &mut self.outcomes {
            let Landing::Pod {
                pod,
                seen_destination,
                seen_source,
                reply_source: None,
                quoted_destination: None,
            } = &outcome.landing
            else {
                continue;
            };
            let reason = match packet.protocol {
                Protocol::Tcp => DropReason::NoConnection,
                Protocol::Sctp => {
                    let answers = pod_answers(Protocol::Sctp, packet.port) == Answer::Reply;
                    let translated = *seen_destination != packet.to || *seen_source != source;
                    if !answers || *pod == packet.from || !translated {
                        continue;
                    }
                    DropReason::NoAssociation
                }
                _ => continue,
            };
            // The node that routed it to the pod: the path's member before it.
            let at = match reason {
                DropReason::NoAssociation => outcome.path.iter().rev().nth(1).cloned(),
                _ => None,
            };
            outcome.landing = Landing::Dropped {
                at: at.unwrap_or_else(|| pod.clone()),
                reason,
            };
        }
        self
    }

    /// A connection (TCP's handshake) to the packet's destination can
    /// complete in some outcome: a pod answers it, or a host's own stack
    /// takes it (whose TCP answers are not predicted, so not ruled out).
    pub fn may_connect(&self) -> bool {
        self.outcomes.iter().any(|outcome| match &outcome.landing {
            Landing::Pod { reply_source, .. } => reply_source.is_some(),
            Landing::Host { .. } => true,
            Landing::Dropped { .. } => false,
        })
    }
}

/// One way the packet goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The members it crosses, sender first.
    pub path: Vec<String>,
    pub landing: Landing,
}

/// Where a packet ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Landing {
    /// A pod receives it, addressed to itself.
    Pod {
        pod: String,
        seen_destination: IpAddr,
        seen_source: IpAddr,
        /// Where the reply comes from, when the pod answers: always the
        /// address the sender used (the node that translated the packet
        /// translates the reply back).
        reply_source: Option<IpAddr>,
        /// When the pod answers with an ICMP error instead (UDP to a closed
        /// port): the destination the error quotes, as the sender sees it.
        quoted_destination: Option<IpAddr>,
    },
    /// A host's own stack takes it (a node's, an external host's, the
    /// fabric's, or the sending pod's own address).
    Host {
        host: String,
        /// The echo reply's source (ICMP); other protocols' answers are not
        /// predicted.
        reply_source: Option<IpAddr>,
        /// The source an external host sees (where `seenSource` looks);
        /// `None` at a node, the fabric or the sending pod itself.
        seen_source: Option<IpAddr>,
    },
    /// Nothing receives it.
    Dropped { at: String, reason: DropReason },
}

impl Landing {
    /// The pod that receives the packet.
    pub fn pod(&self) -> Option<&str> {
        match self {
            Landing::Pod { pod, .. } => Some(pod),
            _ => None,
        }
    }
}

/// Why nothing receives a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DropReason {
    /// A node's blackhole for its own IPAM blocks: the address has no pod
    /// (or Felix no longer routes it).
    Blackhole,
    /// A router with no route for it (the fabric has no default route).
    NoRoute,
    /// It went round between routers until its TTL ran out.
    Loop,
    /// It reached a host that is not its destination and does not forward.
    NotForwarded,
    /// A node routes it to a pod's interface still addressed to something
    /// the pod does not own (no NAT on the way): the node asks for that
    /// address's neighbour on the interface, the pod never answers, and the
    /// packet waits in the neighbour queue until it is dropped.
    NoNeighbour,
    /// It comes from (or goes to) a workload interface Felix has no
    /// endpoint for: Felix's dispatch chains drop it ("Unknown interface",
    /// felix/rules/dispatch.go WorkloadDispatchChains).
    UnknownInterface,
    /// The entry its flow would make on a node has a reply tuple another
    /// entry holds (keyless GRE, [`GreTable`]): the kernel cannot confirm it.
    ConntrackClash,
    /// A TCP connection's first packet reaches the pod, but no answer of
    /// the pod gets back to the sender: the handshake never completes, so
    /// nothing is sent on the connection ([`Prediction::as_sent`]).
    NoConnection,
    /// An SCTP association's first packet reaches the pod through a node's
    /// NAT, but the pod's INIT ACK does not get back to the sender: the
    /// sender's DATA, without the peer's tag, is invalid to that node's
    /// conntrack and goes on untranslated, to an address the pod does not
    /// own ([`Prediction::as_sent`]).
    NoAssociation,
}

/// Why a packet cannot be predicted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PredictError {
    #[error("unknown sender `{0}`: no node, external host or live pod has this name")]
    UnknownSender(String),
    #[error("`{sender}` has no {family} address in this cluster")]
    NoAddress { sender: String, family: IpFamily },
}

/// What a pod's responders answer (traffic/responder.rs): ICMP echo (the
/// kernel), GRE echo, SCTP on ports below the clients' range, UDP and TCP
/// echo on the echo port. UDP to another port gets the kernel's ICMP port
/// unreachable; TCP a reset.
pub(crate) fn pod_answers(protocol: Protocol, port: u16) -> Answer {
    match protocol {
        Protocol::Icmp | Protocol::Gre => Answer::Reply,
        Protocol::Sctp if port < SCTP_CLIENT_PORT_BASE => Answer::Reply,
        Protocol::Udp | Protocol::Tcp if port == ECHO_PORT => Answer::Reply,
        Protocol::Udp => Answer::PortUnreachable,
        Protocol::Sctp | Protocol::Tcp => Answer::Silent,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Reply,
    PortUnreachable,
    Silent,
}

impl Cluster {
    /// Where `packet`, the first of a new flow, lands now (for GRE: the
    /// next packet of the flow earlier GRE between the same two ends left,
    /// [`GreTable`]).
    pub fn predict(&self, packet: &Packet) -> Result<Prediction, PredictError> {
        let mut flow = self.flow_for(packet);
        self.advance(&mut flow)
    }

    /// Where the next packets of an established `flow` land now, following
    /// the conntrack entries its earlier packets left on the nodes (which
    /// [`Flow::forget`] takes away as Calico and the profile delete them).
    pub fn advance(&self, flow: &mut Flow) -> Result<Prediction, PredictError> {
        walk::advance(self, flow)
    }

    /// The flow a packet sent now belongs to: for GRE, the one earlier GRE
    /// between the same two ends left; otherwise a new one.
    pub fn flow_for(&self, packet: &Packet) -> Flow {
        self.gre().flow_for(packet)
    }

    /// `packet` was sent now: remember the entries it leaves (GRE only) and
    /// say where it went.
    pub fn sent(&mut self, packet: &Packet) -> Result<Prediction, PredictError> {
        let mut flow = self.flow_for(packet);
        let prediction = self.advance(&mut flow)?;
        self.gre_mut().keep(&flow, answered(&prediction));
        Ok(prediction)
    }

    /// A stream's `flow` stopped (`replied`: a pod answered it): remember
    /// its entries (GRE only).
    pub fn stream_stopped(&mut self, flow: &Flow, replied: bool) {
        self.gre_mut().keep(flow, replied);
    }

    /// `time` passed with no packet (a scenario's wait).
    pub fn elapse(&mut self, time: std::time::Duration) {
        self.gre_mut().elapse(time);
    }
}

/// Whether a pod answered in some outcome of `prediction` (its reply
/// passed the entries: they are replied).
fn answered(prediction: &Prediction) -> bool {
    prediction.outcomes.iter().any(|outcome| {
        matches!(
            outcome.landing,
            Landing::Pod {
                reply_source: Some(_),
                ..
            }
        )
    })
}
