//! Keyless GRE: every GRE packet between two addresses is one conntrack
//! flow, whichever step sent it, and its entries live on after the send.
//!
//! The kernel tracks GRE version 0 (what the harness sends: no key, no
//! PPTP) with both keys 0 (net/netfilter/nf_conntrack_proto_gre.c,
//! gre_pkt_to_tuple), so a tuple is only the two addresses. An entry lives
//! 30 s after its last packet while unreplied and 180 s once replied
//! (gre_timeouts: GRE_CT_UNREPLIED, GRE_CT_REPLIED), unless a deletion takes
//! it. NAT cannot make a keyless GRE tuple unique: nf_nat_core.c
//! nf_nat_l4proto_unique_tuple leaves a GRE tuple alone when the entry has
//! no master (not PPTP). So a new flow whose reply tuple an entry already
//! holds (in either direction) cannot be confirmed: nf_conntrack_core.c
//! __nf_conntrack_confirm finds the reply tuple in the table and
//! nf_ct_resolve_clash drops the packet (`insert_failed`), since the two
//! entries' tuples neither match nor mirror each other (nf_ct_can_merge) and
//! the clash is in the reply direction (nf_ct_resolve_clash_harder). Found
//! by `fip-harness explore --dataplane nft-maps --seed 4301` on every
//! reference dataplane: a pod holding a floating IP sends GRE to an external
//! host (entry `pod -> host`, no NAT: Felix's floating-IP SNAT is only for a
//! pod reaching its own floating IP); the host's GRE to the floating IP is
//! DNATed to the pod, whose reply tuple `pod -> host` is that entry's
//! original tuple, and is dropped until the entry goes.
//!
//! Other protocols' sends are new flows each time (a new ICMP identifier, a
//! new ephemeral port), so only GRE is remembered here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::flow::{Binding, Entries, Flow};
use super::Packet;
use crate::calico::diff::ConntrackDeletion;
use crate::vocab::Protocol;

/// How long an unreplied GRE entry lives after its last packet
/// (nf_conntrack_proto_gre.c gre_timeouts[GRE_CT_UNREPLIED]).
pub const GRE_UNREPLIED_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a replied one lives (gre_timeouts[GRE_CT_REPLIED]).
pub const GRE_REPLIED_TIMEOUT: Duration = Duration::from_secs(180);

/// The GRE flows the cluster's senders started, by sender and destination,
/// with the entries they left on the nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GreTable {
    flows: BTreeMap<(String, IpAddr), Kept>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Kept {
    flow: Flow,
    /// Time known to have passed since its last packet (the scenario's
    /// waits: the model knows no other clock, so an entry is taken to live
    /// until waits alone outlast its timeout).
    idle: Duration,
    replied: bool,
}

/// What a packet meets in the table at a node, besides its own flow's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Met {
    /// Another entry's tuple in the packet's direction: the packet follows
    /// that entry's NAT.
    Original(Binding),
    /// Another entry's reply tuple: the packet is that entry's reply, and
    /// its addresses become the entry's original ones, swapped.
    Reply { src: IpAddr, dst: IpAddr },
}

impl GreTable {
    /// The flow `packet` continues: the one GRE between its sender and
    /// destination left, or a new one.
    pub fn flow_for(&self, packet: &Packet) -> Flow {
        match self.flows.get(&key(packet)) {
            Some(kept) if packet.protocol == Protocol::Gre => Flow {
                packet: packet.clone(),
                ..kept.flow.clone()
            },
            _ => Flow::new(packet.clone()),
        }
    }

    /// `flow` sent packets now (`replied`: a pod answered them): keep its
    /// entries. Other protocols are not kept.
    pub fn keep(&mut self, flow: &Flow, replied: bool) {
        if flow.packet.protocol != Protocol::Gre {
            return;
        }
        let kept = self.flows.entry(key(&flow.packet)).or_insert(Kept {
            flow: flow.clone(),
            idle: Duration::ZERO,
            replied: false,
        });
        kept.flow = flow.clone();
        kept.idle = Duration::ZERO;
        kept.replied |= replied;
    }

    /// Calico's (and the profile's) deletions take the entries they select.
    pub fn forget(&mut self, deletions: &[ConntrackDeletion]) {
        for kept in self.flows.values_mut() {
            kept.flow.forget(deletions);
        }
        self.flows.retain(|_, kept| !kept.flow.nodes().is_empty());
    }

    /// `time` passes with no packet: entries idle past their timeout go.
    pub fn elapse(&mut self, time: Duration) {
        for kept in self.flows.values_mut() {
            kept.idle += time;
        }
        self.flows.retain(|_, kept| {
            let timeout = if kept.replied {
                GRE_REPLIED_TIMEOUT
            } else {
                GRE_UNREPLIED_TIMEOUT
            };
            kept.idle < timeout
        });
    }

    /// Every way the entries of flows other than `packet`'s may stand (one
    /// per ECMP branch of each flow, combined only as far as they differ).
    pub(crate) fn others(&self, packet: &Packet) -> Vec<Vec<&Entries>> {
        if packet.protocol != Protocol::Gre {
            return Vec::new();
        }
        let own = key(packet);
        self.flows
            .iter()
            .filter(|(k, _)| **k != own)
            .map(|(_, kept)| kept.flow.branches.iter().collect())
            .collect()
    }
}

fn key(packet: &Packet) -> (String, IpAddr) {
    (packet.from.clone(), packet.to)
}
