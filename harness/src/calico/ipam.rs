//! Calico block IPAM, reduced to what a lab needs: a node claims a block
//! (/26 for IPv4, /122 for IPv6 by default) from an enabled pool when its own
//! blocks are full, and pods get single addresses from their node's blocks.
//! Blocks keep their node affinity when emptied, as Calico's do.
//!
//! Addresses within a block come in Calico's order, a FIFO queue of free
//! ordinals (libcalico-go/lib/ipam/ipam_block.go): `newBlock` queues every
//! ordinal in address order, `autoAssign` takes from the front, and a released
//! ordinal goes to the *back* (`releaseByHandle` marks it, then
//! `garbageCollect` appends it to `Unallocated`). So a freed address is not
//! handed out again until every address queued before it has been: the next
//! pod after a deletion (or after a failed set-up, which releases its address
//! the same way) gets a fresh address, never the one just freed.
//!
//! Not modelled: the cooldown of `IPAMConfiguration.ipCooldownSeconds`
//! (`garbageCollect` keeps a released ordinal out of the queue until it is
//! that many seconds old). Its default, 0, queues the ordinal at once, which
//! is what this module does; a non-zero value exists only on Calico's main
//! branch after v3.32 (commit f306ec7075) and would need a clock in the model.
//!
//! Which block a node claims is the harness's choice, not Calico's: Calico's
//! `findUsableBlock` (ipam_block_reader_writer.go) walks each pool's blocks
//! from a start drawn by `randomBlockGenerator`, Go's math/rand seeded with
//! the FNV-32 hash of the node name (`determineSeed`), and takes the first
//! block nobody has. The harness takes the lowest unclaimed block of the
//! first enabled pool with one, so node-a's first block is the pool's first
//! /26 and scenarios can name pod addresses; no case depends on where in the
//! pool a node's block sits, only on the order within it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;
use thiserror::Error;

use super::pool::IpPool;

pub use crate::vocab::IpFamily;

/// Why IPAM could not give an address.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IpamError {
    #[error("no enabled {family} IP pool to allocate from")]
    NoPool { family: IpFamily },
    #[error("{family} pools are exhausted: no free address for node `{node}`")]
    Exhausted { family: IpFamily, node: String },
}

/// A block claimed by a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockAffinity {
    pub cidr: IpNet,
    pub node: String,
    /// The pool the block was carved from.
    pub pool: String,
}

#[derive(Clone, Debug)]
struct Block {
    affinity: BlockAffinity,
    /// Ordinals (offsets from the block's first address) in use.
    used: BTreeSet<u128>,
    /// Free ordinals in the order they will be handed out: Calico's
    /// `AllocationBlock.Unallocated`.
    unallocated: VecDeque<u128>,
}

impl Block {
    /// ipam_block.go newBlock: every ordinal queued in address order (a
    /// pool's block holds at most 4096 addresses: blockSize 20 for IPv4, 116
    /// for IPv6, calico::pool).
    fn new(affinity: BlockAffinity) -> Self {
        let bits = affinity.cidr.max_prefix_len() - affinity.cidr.prefix_len();
        Self {
            affinity,
            used: BTreeSet::new(),
            unallocated: (0..1u128 << bits).collect(),
        }
    }

    /// ipam_block.go autoAssign: the ordinal at the front of the queue.
    fn take(&mut self) -> Option<u128> {
        let ordinal = self.unallocated.pop_front()?;
        self.used.insert(ordinal);
        Some(ordinal)
    }

    /// ipam_block.go releaseByHandle then garbageCollect (cooldown 0): the
    /// ordinal goes to the back of the queue.
    fn free(&mut self, ordinal: u128) {
        if self.used.remove(&ordinal) {
            self.unallocated.push_back(ordinal);
        }
    }
}

/// The IPAM state of a cluster.
#[derive(Clone, Debug)]
pub struct Ipam {
    pools: Vec<IpPool>,
    blocks: Vec<Block>,
    /// Addresses held by each handle (Calico keys allocations by a handle).
    handles: BTreeMap<String, Vec<IpAddr>>,
}

/// A pool pods may get addresses from: enabled, and not for LoadBalancer
/// addresses alone (libcalico-go/lib/ipam/ipam.go
/// `prepareAffinityBlocksForHost` asks for pools allowing `Workload`).
fn for_pods(pool: &IpPool) -> bool {
    !pool.disabled && !pool.load_balancer_only
}

impl Ipam {
    /// IPAM over `pools`; disabled pools are never allocated from.
    pub fn new(pools: Vec<IpPool>) -> Self {
        Self {
            pools,
            blocks: Vec::new(),
            handles: BTreeMap::new(),
        }
    }

    /// Gives `handle` one address of `family` on `node`, claiming a new block
    /// for the node when its blocks are full.
    pub fn allocate(
        &mut self,
        handle: &str,
        node: &str,
        family: IpFamily,
    ) -> Result<IpAddr, IpamError> {
        let index = match self.block_with_room(node, family) {
            Some(index) => index,
            None => self.claim_block(node, family)?,
        };
        let block = &mut self.blocks[index];
        let offset = block.take().expect("block has room");
        let address = add_offset(block.affinity.cidr.network(), offset);
        self.handles
            .entry(handle.to_owned())
            .or_default()
            .push(address);
        Ok(address)
    }

    /// Frees every address of `handle`, each to the back of its block's
    /// queue; returns them (empty if none).
    pub fn release(&mut self, handle: &str) -> Vec<IpAddr> {
        let addresses = self.handles.remove(handle).unwrap_or_default();
        // releaseByHandle walks a block's ordinals upwards, and
        // garbageCollect queues them in that order.
        let mut sorted = addresses.clone();
        sorted.sort();
        for address in &sorted {
            if let Some(block) = self
                .blocks
                .iter_mut()
                .find(|b| b.affinity.cidr.contains(address))
            {
                let ordinal = offset_of(block.affinity.cidr.network(), *address);
                block.free(ordinal);
            }
        }
        addresses
    }

    /// Addresses currently held by `handle`.
    pub fn addresses_of(&self, handle: &str) -> &[IpAddr] {
        self.handles.get(handle).map_or(&[], Vec::as_slice)
    }

    /// Number of addresses in use in the whole cluster (tests check for leaks).
    #[cfg(test)]
    pub(crate) fn allocated_count(&self) -> usize {
        self.blocks.iter().map(|b| b.used.len()).sum()
    }

    /// Blocks claimed by `node`, lowest first (the lab routes these to the node).
    pub fn node_blocks(&self, node: &str) -> Vec<IpNet> {
        let mut blocks: Vec<IpNet> = self
            .blocks
            .iter()
            .filter(|b| b.affinity.node == node)
            .map(|b| b.affinity.cidr)
            .collect();
        blocks.sort();
        blocks
    }

    /// Every address held, by handle.
    pub fn allocations(&self) -> &BTreeMap<String, Vec<IpAddr>> {
        &self.handles
    }

    /// Every claimed block with its node, lowest first.
    pub fn block_affinities(&self) -> Vec<BlockAffinity> {
        let mut all: Vec<BlockAffinity> = self.blocks.iter().map(|b| b.affinity.clone()).collect();
        all.sort_by_key(|a| a.cidr);
        all
    }

    fn block_with_room(&self, node: &str, family: IpFamily) -> Option<usize> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.affinity.node == node
                    && IpFamily::of_net(&b.affinity.cidr) == family
                    && self.pool_enabled(&b.affinity.pool)
                    && !b.unallocated.is_empty()
            })
            .min_by_key(|(_, b)| b.affinity.cidr)
            .map(|(i, _)| i)
    }

    fn pool_enabled(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name == name && for_pods(p))
    }

    fn claim_block(&mut self, node: &str, family: IpFamily) -> Result<usize, IpamError> {
        let candidates: Vec<&IpPool> = self
            .pools
            .iter()
            .filter(|p| for_pods(p) && IpFamily::of_net(&p.cidr) == family)
            .collect();
        if candidates.is_empty() {
            return Err(IpamError::NoPool { family });
        }
        for pool in candidates {
            let Ok(subnets) = pool.cidr.subnets(pool.block_size) else {
                continue;
            };
            // Claimed blocks are few, so scanning from the bottom is cheap.
            let free = subnets
                .take(self.blocks.len() + 1)
                .find(|cidr| !self.blocks.iter().any(|b| b.affinity.cidr == *cidr));
            if let Some(cidr) = free {
                self.blocks.push(Block::new(BlockAffinity {
                    cidr,
                    node: node.to_owned(),
                    pool: pool.name.clone(),
                }));
                return Ok(self.blocks.len() - 1);
            }
        }
        Err(IpamError::Exhausted {
            family,
            node: node.to_owned(),
        })
    }
}

fn to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn add_offset(base: IpAddr, offset: u128) -> IpAddr {
    let value = to_u128(base) + offset;
    match base {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

fn offset_of(base: IpAddr, address: IpAddr) -> u128 {
    to_u128(address) - to_u128(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calico::pool::IpPoolSpec;

    fn pools() -> Vec<IpPool> {
        vec![
            IpPoolSpec {
                cidr: "198.19.0.0/16".into(),
                ..Default::default()
            }
            .into_pool("default-ipv4-ippool")
            .unwrap(),
            IpPoolSpec {
                cidr: "2001:db8:1::/48".into(),
                ..Default::default()
            }
            .into_pool("default-ipv6-ippool")
            .unwrap(),
            IpPoolSpec {
                cidr: "203.0.113.0/24".into(),
                disabled: Some(true),
                ..Default::default()
            }
            .into_pool("floating")
            .unwrap(),
        ]
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nodes_get_blocks_and_pods_get_addresses_in_order() {
        let mut ipam = Ipam::new(pools());
        assert_eq!(
            ipam.allocate("a1", "node-a", IpFamily::V4),
            Ok(ip("198.19.0.0"))
        );
        assert_eq!(
            ipam.allocate("a2", "node-a", IpFamily::V4),
            Ok(ip("198.19.0.1"))
        );
        assert_eq!(
            ipam.allocate("b1", "node-b", IpFamily::V4),
            Ok(ip("198.19.0.64"))
        );
        assert_eq!(
            ipam.allocate("b1", "node-b", IpFamily::V6),
            Ok(ip("2001:db8:1::"))
        );
        assert_eq!(
            ipam.node_blocks("node-a"),
            vec!["198.19.0.0/26".parse::<IpNet>().unwrap()]
        );
        insta::assert_yaml_snapshot!(ipam.block_affinities());
    }

    /// Calico's queue: a freed address goes behind every address never
    /// handed out, and freed ones come back in the order they were freed.
    #[test]
    fn freed_addresses_go_to_the_back_of_the_queue() {
        let pool = IpPoolSpec {
            cidr: "198.19.0.8/29".into(),
            block_size: Some(29),
            ..Default::default()
        }
        .into_pool("small")
        .unwrap();
        let mut ipam = Ipam::new(vec![pool]);
        let next =
            |ipam: &mut Ipam, handle: &str| ipam.allocate(handle, "node-a", IpFamily::V4).unwrap();
        assert_eq!(next(&mut ipam, "p8"), ip("198.19.0.8"));
        assert_eq!(next(&mut ipam, "p9"), ip("198.19.0.9"));
        ipam.release("p8");
        // Not .8 again: .10 was queued before it.
        assert_eq!(next(&mut ipam, "p10"), ip("198.19.0.10"));
        for n in 11..=15 {
            assert_eq!(
                next(&mut ipam, &format!("p{n}")),
                ip(&format!("198.19.0.{n}"))
            );
        }
        ipam.release("p13");
        ipam.release("p9");
        assert_eq!(next(&mut ipam, "a"), ip("198.19.0.8"));
        assert_eq!(next(&mut ipam, "b"), ip("198.19.0.13"));
        assert_eq!(next(&mut ipam, "c"), ip("198.19.0.9"));
        assert!(ipam.allocate("d", "node-a", IpFamily::V4).is_err());
    }

    #[test]
    fn a_full_block_makes_the_node_claim_another() {
        let mut ipam = Ipam::new(pools());
        for i in 0..64 {
            ipam.allocate(&format!("p{i}"), "node-a", IpFamily::V4)
                .unwrap();
        }
        assert_eq!(
            ipam.allocate("p64", "node-a", IpFamily::V4),
            Ok(ip("198.19.0.64"))
        );
        assert_eq!(ipam.node_blocks("node-a").len(), 2);
    }

    #[test]
    fn disabled_pools_are_not_used_and_exhaustion_is_reported() {
        let only_disabled = vec![pools().remove(2)];
        let mut ipam = Ipam::new(only_disabled);
        let err = ipam.allocate("p", "node-a", IpFamily::V4).unwrap_err();
        let mut small = Ipam::new(vec![IpPoolSpec {
            cidr: "192.0.2.0/32".into(),
            block_size: Some(32),
            ..Default::default()
        }
        .into_pool("one")
        .unwrap()]);
        small.allocate("p1", "node-a", IpFamily::V4).unwrap();
        let exhausted = small.allocate("p2", "node-a", IpFamily::V4).unwrap_err();
        let no_v6 = small.allocate("p3", "node-a", IpFamily::V6).unwrap_err();
        insta::assert_yaml_snapshot!([err.to_string(), exhausted.to_string(), no_v6.to_string()]);
    }

    #[test]
    fn release_frees_everything_of_a_handle() {
        let mut ipam = Ipam::new(pools());
        ipam.allocate("p", "node-a", IpFamily::V4).unwrap();
        ipam.allocate("p", "node-a", IpFamily::V6).unwrap();
        assert_eq!(ipam.allocated_count(), 2);
        assert_eq!(ipam.release("p").len(), 2);
        assert_eq!(ipam.allocated_count(), 0);
        assert!(ipam.addresses_of("p").is_empty());
        assert!(ipam.release("p").is_empty());
    }
}
