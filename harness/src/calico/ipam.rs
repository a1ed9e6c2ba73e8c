//! Calico block IPAM, reduced to what a lab needs: a node claims a block
//! (/26 for IPv4, /122 for IPv6 by default) from an enabled pool when its own
//! blocks are full, and pods get single addresses from their node's blocks.
//! Deterministic: the lowest free block and the lowest free address win.
//! Blocks keep their node affinity when emptied, as Calico's do.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Offsets (from the block's first address) in use.
    used: BTreeSet<u128>,
}

impl Block {
    fn size(&self) -> u128 {
        let bits = self.affinity.cidr.max_prefix_len() - self.affinity.cidr.prefix_len();
        1u128 << bits
    }

    fn lowest_free(&self) -> Option<u128> {
        (0..self.size()).find(|offset| !self.used.contains(offset))
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
        let offset = block.lowest_free().expect("block has room");
        block.used.insert(offset);
        let address = add_offset(block.affinity.cidr.network(), offset);
        self.handles
            .entry(handle.to_owned())
            .or_default()
            .push(address);
        Ok(address)
    }

    /// Frees every address of `handle`; returns them (empty if none).
    pub fn release(&mut self, handle: &str) -> Vec<IpAddr> {
        let addresses = self.handles.remove(handle).unwrap_or_default();
        for address in &addresses {
            if let Some(block) = self
                .blocks
                .iter_mut()
                .find(|b| b.affinity.cidr.contains(address))
            {
                block
                    .used
                    .remove(&offset_of(block.affinity.cidr.network(), *address));
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

    /// Every claimed block with its node, lowest first (tests snapshot it).
    #[cfg(test)]
    pub(crate) fn block_affinities(&self) -> Vec<BlockAffinity> {
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
                    && b.lowest_free().is_some()
            })
            .min_by_key(|(_, b)| b.affinity.cidr)
            .map(|(i, _)| i)
    }

    fn pool_enabled(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name == name && !p.disabled)
    }

    fn claim_block(&mut self, node: &str, family: IpFamily) -> Result<usize, IpamError> {
        let candidates: Vec<&IpPool> = self
            .pools
            .iter()
            .filter(|p| !p.disabled && IpFamily::of_net(&p.cidr) == family)
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
                self.blocks.push(Block {
                    affinity: BlockAffinity {
                        cidr,
                        node: node.to_owned(),
                        pool: pool.name.clone(),
                    },
                    used: BTreeSet::new(),
                });
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
    fn nodes_get_blocks_and_pods_get_lowest_free_addresses() {
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
        // A freed address is handed out again before higher ones.
        ipam.release("a1");
        assert_eq!(
            ipam.allocate("a3", "node-a", IpFamily::V4),
            Ok(ip("198.19.0.0"))
        );
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
