//! A packet at a node: its flow's conntrack entry, another keyless GRE
//! flow's ([`crate::calico::conntrack::GreTable`]), or Felix's NAT rules binding a new entry.

use std::net::IpAddr;

use super::{dropped, egress, Branches, Next, Pkt, Walk};
use crate::calico::conntrack::Met;
use crate::calico::conntrack::{Binding, Entries, EntryKey};
use crate::calico::predict::DropReason;
use crate::vocab::IpFamily;

impl Walk<'_> {
    /// The packet arrives at (or leaves) `node`: its conntrack entry, another
    /// flow's ([`crate::calico::conntrack::GreTable`]), or Felix's NAT rules; then its routes.
    pub(super) fn node(
        &self,
        node: &str,
        pkt: Pkt,
        entries: Entries,
        mut path: Vec<String>,
    ) -> Branches {
        path.push(node.to_string());
        let key = EntryKey {
            node: node.to_string(),
            src: pkt.src,
            dst: pkt.dst,
        };
        if let Some(binding) = entries.get(&key).copied() {
            return self.follow(node, pkt, binding, entries, path);
        }
        let mut branches = Vec::new();
        for met in self.lookup(node, pkt.src, pkt.dst) {
            let (entries, path) = (entries.clone(), path.clone());
            branches.extend(match met {
                Some(Met::Original(binding)) => self.through(node, pkt, binding, entries, path),
                Some(Met::Reply { src, dst }) => {
                    let next = self.node_route(node, dst);
                    self.go(node, next, Pkt { src, dst, ..pkt }, entries, path)
                }
                None => self.new_entry(node, pkt, entries, path),
            });
        }
        branches
    }

    /// The packet follows its flow's entry at `node`.
    fn follow(
        &self,
        node: &str,
        pkt: Pkt,
        binding: Binding,
        entries: Entries,
        path: Vec<String>,
    ) -> Branches {
        let dst = binding.dnat.unwrap_or(pkt.dst);
        // The kernel's nf_nat_inet_fn (net/netfilter/nf_nat_core.c,
        // nf_nat_oif_changed): an established flow whose masquerade chose
        // another output interface than the one its packets take now is
        // killed (that packet dropped), so its next packet is a new flow
        // that Felix's NAT rules see afresh. Found by a stream across a
        // pod's delete and re-creation, whose packets the Felix NAT left
        // masqueraded to the fabric until the floating IP's route came back.
        if binding
            .masquerade_out
            .is_some_and(|out| egress(&self.node_route(node, dst)) != Some(out))
        {
            let mut entries = entries;
            entries.remove(&EntryKey {
                node: node.to_string(),
                src: pkt.src,
                dst: pkt.dst,
            });
            return self.new_entry(node, pkt, entries, path);
        }
        self.through(node, pkt, binding, entries, path)
    }

    /// The packet leaves `node` (or ends there) with `binding`'s NAT.
    fn through(
        &self,
        node: &str,
        pkt: Pkt,
        binding: Binding,
        entries: Entries,
        path: Vec<String>,
    ) -> Branches {
        let dst = binding.dnat.unwrap_or(pkt.dst);
        let next = self.node_route(node, dst);
        let src = match next {
            // Postrouting does not see what is delivered locally.
            Next::Local => pkt.src,
            _ => binding.snat.unwrap_or(pkt.src),
        };
        self.go(node, next, Pkt { src, dst, ..pkt }, entries, path)
    }

    /// The first packet of a flow at `node`: Felix's NAT rules bind it, and
    /// the kernel confirms the entry when the packet leaves (or reaches the
    /// node's own stack). A packet its routes drop (a blackhole, no route)
    /// never gets there, so it leaves no entry (nf_conntrack_core.c: an
    /// unconfirmed entry dies with its packet); nor does one whose reply
    /// tuple another entry holds ([`crate::calico::conntrack::GreTable`]): it is dropped.
    fn new_entry(&self, node: &str, pkt: Pkt, mut entries: Entries, path: Vec<String>) -> Branches {
        let binding = self.bind(node, pkt);
        let dst = binding.dnat.unwrap_or(pkt.dst);
        if let Next::Drop(DropReason::Blackhole | DropReason::NoRoute) = self.node_route(node, dst)
        {
            return self.through(node, pkt, binding, entries, path);
        }
        let (reply_src, reply_dst) = self.reply_tuple(node, pkt.src, pkt.dst, &binding);
        let mut branches = Vec::new();
        for clash in self.clashes(node, reply_src, reply_dst) {
            if clash {
                let outcome = dropped(path.clone(), node, DropReason::ConntrackClash);
                branches.push((outcome, entries.clone()));
                continue;
            }
            let key = EntryKey {
                node: node.to_string(),
                src: pkt.src,
                dst: pkt.dst,
            };
            entries.insert(key, binding);
            branches.extend(self.through(node, pkt, binding, entries.clone(), path.clone()));
        }
        branches
    }

    /// The reply tuple of the entry `src -> dst` with `binding` at `node`:
    /// the NAT'd destination back to the NAT'd source (no source NAT for
    /// what the node's own stack takes: postrouting never sees it).
    fn reply_tuple(
        &self,
        node: &str,
        src: IpAddr,
        dst: IpAddr,
        binding: &Binding,
    ) -> (IpAddr, IpAddr) {
        let to = binding.dnat.unwrap_or(dst);
        let from = match self.node_route(node, to) {
            Next::Local => src,
            _ => binding.snat.unwrap_or(src),
        };
        (to, from)
    }

    /// What other flows' entries at `node` hold for the tuple `src -> dst`:
    /// one possibility, or two when their ECMP branches differ.
    fn lookup(&self, node: &str, src: IpAddr, dst: IpAddr) -> Vec<Option<Met>> {
        let met = |entries: &&Entries| {
            entries
                .iter()
                .filter(|(key, _)| key.node == node)
                .find_map(|(key, binding)| {
                    if (key.src, key.dst) == (src, dst) {
                        return Some(Met::Original(*binding));
                    }
                    let reply = self.reply_tuple(node, key.src, key.dst, binding);
                    (reply == (src, dst)).then_some(Met::Reply {
                        src: key.dst,
                        dst: key.src,
                    })
                })
        };
        let mut found: Vec<Option<Met>> = Vec::new();
        for branches in &self.others {
            let mut ways: Vec<Option<Met>> = branches.iter().map(met).collect();
            ways.dedup();
            if let [Some(sure)] = ways[..] {
                return vec![Some(sure)];
            }
            for way in ways.into_iter().flatten() {
                if !found.contains(&Some(way)) {
                    found.push(Some(way));
                }
            }
        }
        found.push(None);
        found
    }

    /// Whether an entry of another flow at `node` holds the tuple
    /// `src -> dst` in either direction: `[true]`, `[false]`, or both when
    /// a flow's ECMP branches differ.
    fn clashes(&self, node: &str, src: IpAddr, dst: IpAddr) -> Vec<bool> {
        let holds = |entries: &Entries| {
            entries
                .iter()
                .filter(|(key, _)| key.node == node)
                .any(|(key, binding)| {
                    (key.src, key.dst) == (src, dst)
                        || self.reply_tuple(node, key.src, key.dst, binding) == (src, dst)
                })
        };
        let mut sure = false;
        let mut maybe = false;
        for branches in &self.others {
            let held: Vec<bool> = branches.iter().map(|entries| holds(entries)).collect();
            if !held.is_empty() && held.iter().all(|h| *h) {
                sure = true;
            } else if held.iter().any(|h| *h) {
                maybe = true;
            }
        }
        match (sure, maybe) {
            (true, _) => vec![true],
            (false, true) => vec![true, false],
            (false, false) => vec![false],
        }
    }

    /// The NAT the first packet of a flow gets at `node`.
    fn bind(&self, node: &str, pkt: Pkt) -> Binding {
        let nat = self.cluster.felix().nat.get(node);
        // Felix's cali-fip-dnat, in prerouting and output.
        let dnat = nat.and_then(|n| n.dnat.iter().find(|m| m.external == pkt.dst));
        let dst = dnat.map_or(pkt.dst, |m| m.internal);
        // Felix's cali-fip-snat in postrouting: `-s INT -d INT`.
        let snat = nat.and_then(|n| {
            n.snat
                .iter()
                .find(|m| m.internal == pkt.src && m.internal == dst)
        });
        let masquerade = match snat {
            Some(_) => None,
            None => self.masquerade(node, pkt.src, dst),
        };
        Binding {
            dnat: dnat.map(|m| m.internal),
            snat: snat.map(|m| m.external).or(masquerade),
            masquerade_out: masquerade.and_then(|_| egress(&self.node_route(node, dst))),
        }
    }

    /// Felix's cali-nat-outgoing, after cali-fip-snat in postrouting
    /// (felix/rules/nat.go NATOutgoingChain): from a natOutgoing pool to
    /// outside every pool, the source becomes the node's own address on the
    /// way out (its uplink: the pools are routed elsewhere).
    fn masquerade(&self, node: &str, src: IpAddr, dst: IpAddr) -> Option<IpAddr> {
        let filter = self.cluster.felix().nat.get(node)?.filter.as_ref()?;
        let masquerading = filter.masq_pools.iter().any(|p| p.contains(&src));
        let inside = filter.pools.iter().any(|p| p.contains(&dst));
        if !masquerading || inside {
            return None;
        }
        let network = &self.cluster.config().network;
        network.node(node)?.of_family(IpFamily::of(&src))
    }
}
