//! The fabric, nodes and external hosts of a [`Lab`]: their links, addresses
//! and default routes, and the block routes BGP would give every node.

use std::net::IpAddr;

use futures::future::try_join_all;
use ipnet::IpNet;

use super::addressing::*;
use super::cluster::Lab;
use super::error::LabError;
use super::netlink::{Member, Route, VethEnd};
use super::netns::Netns;

impl Lab {
    pub(super) async fn wire(&self) -> Result<(), LabError> {
        let families = self.families();
        let fabric = &self.fabric;
        // Links first: the fabric makes every segment link, with the far end
        // created directly in the node's or external host's namespace.
        let fabric_links = self.wire_segments(&families);
        let loopbacks = try_join_all(
            self.nodes
                .iter()
                .map(|n| &n.member)
                .chain(&self.externals)
                .map(|m| m.link_up(IFINDEX_LO, "lo")),
        );
        futures::try_join!(fabric_links, async {
            loopbacks.await.map_err(LabError::from)
        })?;

        // Then addresses and routes, every namespace at once.
        let mut steps: Vec<futures::future::BoxFuture<'_, Result<(), LabError>>> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let families = families.clone();
            steps.push(Box::pin(async move {
                node.member.link_up(IFINDEX_ETH0, UPLINK).await?;
                for family in &families {
                    let (gateway, prefix) = segment_gateway(*family, false);
                    node.member
                        .add_address(IFINDEX_ETH0, node_uplink(i, *family), prefix, UPLINK)
                        .await?;
                    node.member
                        .replace_route(Route::via(default_of(*family), 0, gateway))
                        .await?;
                }
                let mut routes = Vec::new();
                for (k, other) in self.nodes.iter().enumerate() {
                    for block in other
                        .spec
                        .blocks
                        .iter()
                        .filter(|b| families.contains(&Family::of(&b.addr())))
                    {
                        routes.extend(block_route(k == i, *block, k));
                    }
                }
                try_join_all(routes.iter().map(|r| node.member.replace_route(r.clone()))).await?;
                Ok(())
            }));
        }
        for (j, external) in self.externals.iter().enumerate() {
            let families = families.clone();
            steps.push(Box::pin(async move {
                external.link_up(IFINDEX_ETH0, UPLINK).await?;
                for family in &families {
                    let (gateway, prefix) = segment_gateway(*family, true);
                    external
                        .add_address(IFINDEX_ETH0, external_address(j, *family), prefix, UPLINK)
                        .await?;
                    external
                        .replace_route(Route::via(default_of(*family), 0, gateway))
                        .await?;
                }
                Ok(())
            }));
        }
        let fabric_routes: Vec<Route> = self
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(k, node)| {
                node.spec
                    .blocks
                    .iter()
                    .filter(|b| families.contains(&Family::of(&b.addr())))
                    .filter_map(move |block| block_route(false, *block, k))
            })
            .collect();
        steps.push(Box::pin(async move {
            try_join_all(
                fabric_routes
                    .iter()
                    .map(|r| fabric.replace_route(r.clone())),
            )
            .await?;
            Ok(())
        }));
        try_join_all(steps).await?;
        self.wait_members_ready().await?;
        Ok(())
    }

    /// Wait until every member's links carry traffic (see
    /// [`super::netlink::NotReady`]): until then the kernel drops what they
    /// send.
    pub(super) async fn wait_members_ready(&self) -> Result<(), LabError> {
        let members: Vec<&Member> = std::iter::once(&self.fabric)
            .chain(self.nodes.iter().map(|n| &n.member))
            .chain(&self.externals)
            .collect();
        super::ready::wait_ready(&self.spec.name, &members).await
    }

    /// The fabric's side of every segment: its bridges, a port per node and
    /// external host (the far end made in their namespaces) and its addresses.
    async fn wire_segments(&self, families: &[Family]) -> Result<(), LabError> {
        let fabric = &self.fabric;
        fabric.link_up(IFINDEX_LO, "lo").await?;
        fabric.add_bridge(BRIDGE_NODES, IFINDEX_BR_NODES).await?;
        fabric.add_bridge(BRIDGE_EXT, IFINDEX_BR_EXT).await?;
        try_join_all(self.nodes.iter().enumerate().map(|(i, node)| {
            segment_port(
                fabric,
                fabric_node_port(i),
                IFINDEX_FABRIC_NODE_PORT + i as u32,
                IFINDEX_BR_NODES,
                &node.member.netns,
            )
        }))
        .await?;
        try_join_all(self.externals.iter().enumerate().map(|(j, external)| {
            segment_port(
                fabric,
                fabric_external_port(j),
                IFINDEX_FABRIC_EXT_PORT + j as u32,
                IFINDEX_BR_EXT,
                &external.netns,
            )
        }))
        .await?;
        for family in families {
            let (nodes_gw, ext_gw, prefix) = match family {
                Family::V4 => (
                    IpAddr::from(FABRIC_NODES_V4),
                    IpAddr::from(FABRIC_EXT_V4),
                    SEGMENT_V4_PREFIX,
                ),
                Family::V6 => (
                    IpAddr::from(FABRIC_NODES_V6),
                    IpAddr::from(FABRIC_EXT_V6),
                    SEGMENT_V6_PREFIX,
                ),
            };
            fabric
                .add_address(IFINDEX_BR_NODES, nodes_gw, prefix, BRIDGE_NODES)
                .await?;
            fabric
                .add_address(IFINDEX_BR_EXT, ext_gw, prefix, BRIDGE_EXT)
                .await?;
        }
        Ok(())
    }

    /// Give a node more IPAM blocks (IPAM hands them out lazily) and route them
    /// to it on every other node and on the fabric, as BGP would.
    pub async fn add_node_blocks(&mut self, node: &str, blocks: &[IpNet]) -> Result<(), LabError> {
        let index = self.node_index(node)?;
        let families = self.families();
        let new: Vec<IpNet> = blocks
            .iter()
            .filter(|b| !self.nodes[index].spec.blocks.contains(b))
            .copied()
            .collect();
        let mut steps = Vec::new();
        for block in new
            .iter()
            .filter(|b| families.contains(&Family::of(&b.addr())))
        {
            for (k, other) in self.nodes.iter().enumerate() {
                if let Some(route) = block_route(k == index, *block, index) {
                    steps.push((&other.member, route));
                }
            }
            steps.extend(block_route(false, *block, index).map(|r| (&self.fabric, r)));
        }
        try_join_all(
            steps
                .iter()
                .map(|(member, route)| member.replace_route(route.clone())),
        )
        .await?;
        self.nodes[index].spec.blocks.extend(new.iter().copied());
        self.spec.nodes[index].blocks.extend(new);
        Ok(())
    }
}

pub(super) fn default_of(family: Family) -> IpAddr {
    match family {
        Family::V4 => std::net::Ipv4Addr::UNSPECIFIED.into(),
        Family::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// The `eth0` end of a veth pair, inside a node, an external host or a pod.
pub(super) fn uplink_end() -> VethEnd<'static> {
    VethEnd {
        name: UPLINK,
        index: IFINDEX_ETH0,
        mac: None,
        controller: None,
    }
}

/// A port of a fabric bridge (`bridge`) with its peer as `eth0` in `far`.
async fn segment_port(
    fabric: &Member,
    port: String,
    index: u32,
    bridge: u32,
    far: &Netns,
) -> Result<(), LabError> {
    let local = VethEnd {
        name: &port,
        index,
        mac: None,
        controller: Some(bridge),
    };
    Ok(fabric.add_veth(local, uplink_end(), far).await?)
}

/// (gateway, prefix) of the nodes or the externals segment.
fn segment_gateway(family: Family, externals: bool) -> (IpAddr, u8) {
    match (family, externals) {
        (Family::V4, false) => (FABRIC_NODES_V4.into(), SEGMENT_V4_PREFIX),
        (Family::V6, false) => (FABRIC_NODES_V6.into(), SEGMENT_V6_PREFIX),
        (Family::V4, true) => (FABRIC_EXT_V4.into(), SEGMENT_V4_PREFIX),
        (Family::V6, true) => (FABRIC_EXT_V6.into(), SEGMENT_V6_PREFIX),
    }
}

/// A node's block: a blackhole on the node itself (as Calico's BIRD installs,
/// so unused addresses in it are dropped rather than bounced to the fabric),
/// via the node's uplink everywhere else. A block of one address (blockSize
/// 32 or 128) gets no blackhole: its pod's own route is the block
/// (node/filesystem/etc/calico/confd/templates/bird_aggr.cfg.template and
/// bird6_aggr.cfg.template skip `/32` and `/128` blocks in the static
/// protocol), and a blackhole would replace it.
fn block_route(own: bool, block: IpNet, node: usize) -> Option<Route> {
    let family = Family::of(&block.addr());
    if own {
        (block.prefix_len() != family.host_prefix())
            .then(|| Route::blackhole(block.network(), block.prefix_len()))
    } else {
        Some(Route::via(
            block.network(),
            block.prefix_len(),
            node_uplink(node, family),
        ))
    }
}
