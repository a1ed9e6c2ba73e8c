//! Room in the host's neighbour table for a lab's BGP mesh.
//!
//! Calico's node-to-node mesh gives every node a BGP session to every other
//! node (confd/pkg/backends/calico/bgp_processor.go `processMeshPeers`: one
//! `Mesh_<address>` peer per other node), so each node resolves every other
//! node's address: n·(n−1) ARP entries, and as many NDP entries in a dual
//! stack lab, on top of each node's and the fabric's entries for each other.
//!
//! Linux keeps one neighbour table per family for the whole host: every
//! namespace's entries count together against `gc_thresh3`, which only the
//! host's own namespace can read or set (net/core/neighbour.c). Past it the
//! kernel logs "neighbor table overflow", new entries are refused and BIRD's
//! connect fails with "No route to host": sessions stay down, and a lab of
//! 32 nodes waited out its whole BGP patience and failed without saying why.
//! The harness never changes the host's settings, so it says so up front.

use std::path::Path;

use crate::calico::IpFamily;

/// The host's `gc_thresh3` of a family, where this process can read it (its
/// namespace is the host's); `None` elsewhere (a rootless harness's own
/// network namespace has no such file).
pub fn host_limit(family: IpFamily) -> Option<usize> {
    let path = match family {
        IpFamily::V4 => "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
        IpFamily::V6 => "/proc/sys/net/ipv6/neigh/default/gc_thresh3",
    };
    read_limit(Path::new(path))
}

fn read_limit(path: &Path) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Neighbour entries a lab of `nodes` nodes needs in one family once its
/// BGP sessions are up: the mesh's n·(n−1), each node's entry for the
/// fabric, and the fabric's entry for each node. Pods and external hosts add
/// more; this is the least.
pub fn mesh_need(nodes: usize) -> usize {
    nodes * nodes.saturating_sub(1) + 2 * nodes
}

/// Too many nodes for the host's neighbour table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{nodes} nodes under BIRD need at least {need} {table} neighbour entries (Calico's \
     node-to-node mesh: every node resolves every other), but this host's neighbour table \
     holds {limit} for every namespace together ({sysctl}); past it sessions fail with \
     \"No route to host\". Use fewer nodes, `--routing model`, or have the host's \
     administrator raise {sysctl}"
)]
pub struct NoRoom {
    pub nodes: usize,
    pub need: usize,
    pub limit: usize,
    pub table: &'static str,
    pub sysctl: &'static str,
}

/// Whether `nodes` nodes fit a table of `limit` entries in `family`.
pub fn check(nodes: usize, family: IpFamily, limit: usize) -> Result<(), NoRoom> {
    let need = mesh_need(nodes);
    if need <= limit {
        return Ok(());
    }
    let (table, sysctl) = match family {
        IpFamily::V4 => ("ARP", "net.ipv4.neigh.default.gc_thresh3"),
        IpFamily::V6 => ("NDP", "net.ipv6.neigh.default.gc_thresh3"),
    };
    Err(NoRoom {
        nodes,
        need,
        limit,
        table,
        sysctl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(1, 2)]
    #[case(2, 6)]
    #[case(20, 420)]
    #[case(31, 992)]
    #[case(32, 1056)]
    fn the_mesh_needs_every_pair_and_the_fabric(#[case] nodes: usize, #[case] need: usize) {
        assert_eq!(mesh_need(nodes), need);
    }

    #[test]
    fn the_kernels_default_table_holds_31_nodes_but_not_32() {
        // 1024 is Linux's default gc_thresh3 (net/ipv4/arp.c arp_tbl).
        assert_eq!(check(31, IpFamily::V4, 1024), Ok(()));
        let refusal = check(32, IpFamily::V4, 1024).unwrap_err();
        insta::assert_snapshot!(refusal.to_string(), @r#"32 nodes under BIRD need at least 1056 ARP neighbour entries (Calico's node-to-node mesh: every node resolves every other), but this host's neighbour table holds 1024 for every namespace together (net.ipv4.neigh.default.gc_thresh3); past it sessions fail with "No route to host". Use fewer nodes, `--routing model`, or have the host's administrator raise net.ipv4.neigh.default.gc_thresh3"#);
        assert_eq!(check(40, IpFamily::V6, 1024).unwrap_err().table, "NDP");
    }

    #[test]
    fn an_unreadable_limit_is_unknown() {
        assert_eq!(read_limit(Path::new("/nonexistent/gc_thresh3")), None);
    }
}
