//! `nft-maps`: the harness's own O(1) alternative to Felix's nftables mode. It
//! is NOT what Felix programs (that is the `nftables` backend, one rule per
//! floating IP): here the floating IPs live in maps keyed by address, so a
//! lookup costs the same with 1 or 10,000 of them, and a move changes two map
//! elements instead of rewriting a chain. It shows what an O(1) dataplane
//! would observe; its verdicts must equal the Felix backends' on every case.
//!
//! ```text
//! table ip fiph-maps {
//!   map fip-dnat { type ipv4_addr : ipv4_addr }                 EXT -> INT
//!   map fip-snat { type ipv4_addr . ipv4_addr : ipv4_addr }     INT . INT -> EXT
//!   chain prerouting  { type nat hook prerouting priority dstnat;   dnat to ip daddr map @fip-dnat }
//!   chain output      { type nat hook output priority 110;          dnat to ip daddr map @fip-dnat }
//!   chain postrouting { type nat hook postrouting priority srcnat + 10;
//!                       snat to ip saddr . ip daddr map @fip-snat fully-random }
//! }
//! ```
//!
//! Names: the table is `fiph-maps` (`fiph-` is the harness's own prefix, as
//! in its namespace names) and its chains and maps carry no `cali` or `nat-`
//! prefix, so a listing is never mistaken for Felix's and the table never
//! collides with Felix's `calico` table if both backends run on one node. The
//! hook priorities are Felix's (felix/nftables/table.go `baseChains`), so the
//! two differ only in how a floating IP is looked up; `fully-random` follows
//! Felix's feature detection as the Felix backends do.
//!
//! The SNAT key is the concatenation saddr . daddr because SNAT runs after DNAT:
//! the loopback case is exactly "source and destination are both the pod".
//!
//! One nf_tables transaction holds the whole change, written over netlink
//! ([`super::nft_maps_netlink`], no `nft` process): for each family the table
//! is added (so that it exists), deleted and built again, so a reader never
//! sees a half-written table; later applies send only the map elements that
//! changed. The same batches rendered as nft JSON (`nft_maps_json`, built
//! for tests only) are what the netlink messages are checked against. Reading back still goes through
//! `nft -j list`, an independent reader of what the kernel holds.

use std::net::IpAddr;

use super::applied::AppliedStates;
use super::conntrack::ConntrackMatch;
use super::conntrack_watch::KernelFlows;
use super::exec::{nft_list_tables, nft_read_tables};
use super::harness_filter::HarnessFilter;
use super::nfnl::{NfBatch, NfSocket};
pub use super::nft_maps_delta::TABLE;
use super::nft_maps_delta::{DNAT_MAP, SNAT_MAP};
use super::nft_maps_netlink;
use super::per_node::PerNode;
use super::{Dataplane, DataplaneError, DnatMapping, Features, NodeNatState, SnatMapping};
use crate::lab::netns::Netns;

fn text_address(value: &serde_json::Value) -> Option<IpAddr> {
    value.as_str()?.parse().ok()
}

/// Read the floating-IP mappings back from `nft -j list table` output.
pub fn parse_listing(json: &str) -> Result<NodeNatState, serde_json::Error> {
    let document: serde_json::Value = serde_json::from_str(json)?;
    let (mut dnat, mut snat) = (Vec::new(), Vec::new());
    let objects = document["nftables"].as_array().cloned().unwrap_or_default();
    for object in objects {
        let Some(map) = object.get("map") else {
            continue;
        };
        let elements = map["elem"].as_array().cloned().unwrap_or_default();
        for element in elements {
            let (Some(key), Some(value)) = (element.get(0), element.get(1).and_then(text_address))
            else {
                continue;
            };
            match map["name"].as_str() {
                Some(DNAT_MAP) => {
                    if let Some(external) = text_address(key) {
                        dnat.push(DnatMapping::new(external, value));
                    }
                }
                Some(SNAT_MAP) => {
                    if let Some(internal) = key["concat"].get(0).and_then(text_address) {
                        snat.push(SnatMapping::new(internal, value));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(NodeNatState::new(dnat, snat))
}

/// nftables with address-keyed maps (see the module documentation).
///
/// It remembers what it last applied to each namespace and then sends only
/// the elements that differ, still as one transaction; if a delta fails for
/// any reason it falls back to the full replacement.
///
/// It keeps one netfilter socket per node for its transactions and a
/// conntrack watch for conntrack deletions ([`KernelFlows`]), open until the node's tables
/// are removed: closing such a socket costs the kernel an RCU grace period
/// (see [`NfSocket`]), which would be most of a move's time.
#[derive(Debug)]
pub struct NftMapsBackend {
    features: Features,
    applied: AppliedStates,
    /// Felix's workload dispatch and NAT-outgoing, in the harness's table.
    filter: HarnessFilter,
    sockets: PerNode<NfSocket>,
    conntrack: KernelFlows,
}

impl Default for NftMapsBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl NftMapsBackend {
    pub fn new() -> Self {
        Self {
            features: Features::detected(),
            applied: AppliedStates::default(),
            filter: HarnessFilter::default(),
            sockets: PerNode::default(),
            conntrack: KernelFlows::default(),
        }
    }

    /// Send `batch` on the node's kept socket (opened on first use); a
    /// socket that failed is dropped, and the next transaction opens anew.
    fn send(&self, node: &Netns, batch: &NfBatch) -> Result<(), DataplaneError> {
        let mut socket = match self.sockets.take(node) {
            Some(socket) => socket,
            None => NfSocket::open(node, batch.byte_len())?,
        };
        socket.transact(node, batch)?;
        self.sockets.put(node, socket);
        Ok(())
    }
}

impl Dataplane for NftMapsBackend {
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        self.applied.apply(
            node,
            state,
            |old| nft_maps_netlink::delta_batch(old, state),
            || nft_maps_netlink::apply_batch(state, self.features),
            |change| self.send(node, change),
        )?;
        self.filter
            .apply(node, state.filter.as_ref(), self.features)
    }

    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.applied.remember(node, None);
        self.filter.remove(node)?;
        self.conntrack.forget(node);
        let removed = self.send(node, &nft_maps_netlink::removal_batch());
        self.sockets.forget(node);
        removed
    }

    /// The kernel's conntrack table, as every netfilter backend.
    fn flush(&self, node: &Netns, rules: &[ConntrackMatch]) -> Result<usize, DataplaneError> {
        self.conntrack.flush(node, rules)
    }

    fn follow_flows(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.conntrack.follow(node)
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        nft_list_tables(node, TABLE, false)
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        nft_read_tables(node, TABLE, parse_listing)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::loopback;
    use super::*;

    fn sample() -> NodeNatState {
        loopback()
    }

    #[test]
    fn reads_back_what_nft_lists() {
        // Shape copied from `nft -j list table ip fiph-maps` (nftables 1.0.6).
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "fiph-maps", "handle": 1}},
            {"map": {"family": "ip", "name": "fip-dnat", "table": "fiph-maps", "type": "ipv4_addr", "handle": 4, "map": "ipv4_addr", "elem": [["203.0.113.10", "198.19.0.5"]]}},
            {"map": {"family": "ip", "name": "fip-snat", "table": "fiph-maps", "type": ["ipv4_addr", "ipv4_addr"], "handle": 5, "map": "ipv4_addr", "elem": [[{"concat": ["198.19.0.5", "198.19.0.5"]}, "203.0.113.10"]]}}]}"#;
        let state = parse_listing(listing).unwrap();
        let expected = sample();
        assert_eq!(state.dnat, expected.dnat[..1]);
        assert_eq!(state.snat, expected.snat[..1]);
    }
}
