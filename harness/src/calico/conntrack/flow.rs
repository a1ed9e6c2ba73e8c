//! A flow's conntrack entries on the nodes it crosses: the NAT its first
//! packet got there, which its later packets keep until a deletion takes the
//! entry (Calico's, or the `strict` profile's).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::Packet;
use crate::calico::diff::ConntrackDeletion;

/// The original tuple of an entry on a node, as the node saw the packet arrive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct EntryKey {
    pub node: String,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// The NAT an entry fixed: the new destination (DNAT) and source (SNAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) struct Binding {
    pub dnat: Option<IpAddr>,
    pub snat: Option<IpAddr>,
    /// Where the packets left when `snat` is a masquerade (Felix's
    /// cali-nat-outgoing): the kernel remembers that interface
    /// (`nf_conn_nat.masq_index`).
    pub masquerade_out: Option<Egress>,
}

/// The kind of interface a node's packet leaves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) enum Egress {
    /// The node's uplink (to the fabric or another member, tunnels included).
    Uplink,
    /// A pod's interface on the node.
    Workload,
}

pub(crate) type Entries = BTreeMap<EntryKey, Binding>;

/// An established flow (a stream: one ICMP identifier, one UDP or TCP port
/// pair, one SCTP association) and the conntrack entries it left. ECMP may
/// have sent it one of several ways: one set of entries per way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub packet: Packet,
    #[serde(serialize_with = "branches_text")]
    pub(crate) branches: Vec<Entries>,
}

impl Flow {
    /// A flow no packet of which has been sent yet.
    pub fn new(packet: Packet) -> Self {
        Self {
            packet,
            branches: vec![Entries::new()],
        }
    }

    /// Take away the entries `deletions` select, on their nodes: the entry's
    /// original source and destination are the key, its reply source the
    /// DNAT's target (or the original destination).
    pub fn forget(&mut self, deletions: &[ConntrackDeletion]) {
        for entries in &mut self.branches {
            entries.retain(|key, binding| {
                let reply_src = binding.dnat.unwrap_or(key.dst);
                !deletions.iter().any(|deletion| {
                    deletion.node == key.node
                        && deletion.matching.selects(key.src, key.dst, reply_src)
                })
            });
        }
    }

    /// The nodes that hold an entry of the flow.
    pub fn nodes(&self) -> std::collections::BTreeSet<String> {
        self.branches
            .iter()
            .flat_map(|entries| entries.keys().map(|key| key.node.clone()))
            .collect()
    }

    /// Whether the flow now reaches a node it did not reach before (not in
    /// `nodes_before`) that got its destination's DNAT in this update (in
    /// `nat_now`, not in `nat_before`). Felix applies that node's routes and
    /// NAT in parallel (felix/dataplane/linux/int_dataplane.go
    /// InternalDataplane.apply), so a packet may beat the DNAT and pin the
    /// flow untranslated: where it goes then is not the model's to say.
    pub fn meets_a_new_dnat(
        &self,
        nodes_before: &std::collections::BTreeSet<String>,
        nat_before: &BTreeMap<String, crate::calico::nat::NodeNatState>,
        nat_now: &BTreeMap<String, crate::calico::nat::NodeNatState>,
    ) -> bool {
        let to = self.packet.to;
        let dnat = |nat: &BTreeMap<String, crate::calico::nat::NodeNatState>, node: &String| {
            nat.get(node)
                .is_some_and(|n| n.dnat.iter().any(|m| m.external == to))
        };
        self.nodes().into_iter().any(|node| {
            !nodes_before.contains(&node) && dnat(nat_now, &node) && !dnat(nat_before, &node)
        })
    }

    /// The entries as `node: src -> dst (dnat d) (snat s)`, per branch.
    pub fn entries(&self) -> Vec<Vec<String>> {
        self.branches
            .iter()
            .map(|entries| entries.iter().map(entry_text).collect())
            .collect()
    }
}

fn entry_text((key, binding): (&EntryKey, &Binding)) -> String {
    let mut text = format!("{}: {} -> {}", key.node, key.src, key.dst);
    if let Some(dnat) = binding.dnat {
        text.push_str(&format!(" (dnat {dnat})"));
    }
    if let Some(snat) = binding.snat {
        text.push_str(&format!(" (snat {snat})"));
    }
    text
}

fn branches_text<S: serde::Serializer>(branches: &[Entries], s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    branches
        .iter()
        .map(|entries| entries.iter().map(entry_text).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .serialize(s)
}
