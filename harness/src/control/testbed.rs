//! A minimal lab of the harness's own, for root tests and benchmarks of the
//! dataplane and control plane before (and apart from) the full lab module:
//! a fabric namespace with the nodes on one bridged segment (as in the
//! addressing plan) and one external host on a veth, and pods wired to nodes as Calico wires them (pod
//! `eth0` with a /32, default route on-link; node side `cali...` with proxy ARP
//! and a /32 device route). IPv4 only. Everything is named
//! `fiph-<lab>-<member>` and removed on drop.
//!
//! Addresses: fabric `br-nodes` 198.18.0.1/24, node i uplink `eth0`
//! 198.18.0.(10+i)/24; external host 198.18.1.10/24 (fabric side 198.18.1.1);
//! pod routes are installed on the fabric via their node, standing in for the
//! IPAM block routes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::apply::LabNamespaces;
use super::netlink::{add_route_via, add_veth, configure_link, in_netns, index_of, NetlinkError};
use crate::calico::veth_name_for_workload;
use crate::lab::netns::Netns;

pub struct MiniLab {
    lab: String,
    members: BTreeMap<String, Netns>,
    uplinks: BTreeMap<String, IpAddr>,
    nodes: Vec<String>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

fn forwarding(ns: &Netns) -> Result<(), NetlinkError> {
    ns.sysctls(&[
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.default.send_redirects", "0"),
    ])?;
    Ok(())
}

impl MiniLab {
    /// Build the fabric, `nodes` nodes (`node-0`...) and the external host `ext`.
    pub fn new(lab: &str, nodes: usize) -> Result<Self, NetlinkError> {
        let mut this = MiniLab {
            lab: lab.to_string(),
            members: BTreeMap::new(),
            uplinks: BTreeMap::new(),
            nodes: Vec::new(),
        };
        let fabric = this.create("fabric")?;
        forwarding(&fabric)?;
        in_netns(&fabric, "add bridge", |handle| async move {
            handle
                .link()
                .add(rtnetlink::LinkBridge::new("br-nodes").build())
                .execute()
                .await
                .map_err(|e| e.to_string())
        })?;
        configure_link(&fabric, "br-nodes", &[(ip("198.18.0.1"), 24)])?;
        for i in 0..nodes {
            let name = format!("node-{i}");
            let node = this.create(&name)?;
            forwarding(&node)?;
            let port = format!("n{i}");
            add_veth(&fabric, &port, &node, "eth0")?;
            configure_link(&fabric, &port, &[])?;
            in_netns(&fabric, "enslave to bridge", |handle| async move {
                let bridge = index_of(&handle, "br-nodes").await?;
                let index = index_of(&handle, &port).await?;
                handle
                    .link()
                    .set(
                        rtnetlink::LinkUnspec::new_with_index(index)
                            .controller(bridge)
                            .build(),
                    )
                    .execute()
                    .await
                    .map_err(|e| e.to_string())
            })?;
            let uplink = ip(&format!("198.18.0.{}", 10 + i));
            configure_link(&node, "eth0", &[(uplink, 24)])?;
            add_route_via(&node, ip("0.0.0.0"), 0, ip("198.18.0.1"))?;
            this.uplinks.insert(name.clone(), uplink);
            this.nodes.push(name);
        }
        let ext = this.create("ext")?;
        add_veth(&fabric, "x0", &ext, "eth0")?;
        configure_link(&fabric, "x0", &[(ip("198.18.1.1"), 24)])?;
        configure_link(&ext, "eth0", &[(ip("198.18.1.10"), 24)])?;
        add_route_via(&ext, ip("0.0.0.0"), 0, ip("198.18.1.1"))?;
        Ok(this)
    }

    fn create(&mut self, member: &str) -> Result<Netns, NetlinkError> {
        let name = format!("fiph-{}-{member}", self.lab);
        let ns = Netns::create(&name)?;
        self.members.insert(member.to_string(), ns.clone());
        Ok(ns)
    }

    /// Add pod `name` (Kubernetes namespace `default`) on `node` with `address`,
    /// wired as Calico wires it; returns its cali interface name.
    pub fn add_pod(
        &mut self,
        name: &str,
        node: &str,
        address: IpAddr,
    ) -> Result<String, NetlinkError> {
        let node_ns = self.members[node].clone();
        let pod = self.create(name)?;
        let cali = veth_name_for_workload("default", name);
        add_veth(&node_ns, &cali, &pod, "eth0")?;
        configure_link(&pod, "eth0", &[(address, 32)])?;
        in_netns(&pod, "pod default route", |handle| async move {
            let index = {
                use futures::TryStreamExt;
                let mut links = handle.link().get().match_name("eth0").execute();
                links
                    .try_next()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no eth0")?
                    .header
                    .index
            };
            // Calico's pod route: default via 169.254.1.1 onlink, so the pod only
            // ever ARPs for 169.254.1.1, which the node's proxy ARP answers.
            let route = rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(std::net::Ipv4Addr::new(169, 254, 1, 1))
                .output_interface(index)
                .onlink()
                .build();
            handle
                .route()
                .add(route)
                .execute()
                .await
                .map_err(|e| e.to_string())
        })?;
        configure_link(&node_ns, &cali, &[])?;
        node_ns.sysctls(&[(&format!("net.ipv4.conf.{cali}.proxy_arp"), "1")])?;
        let cali_for_route = cali.clone();
        in_netns(&node_ns, "pod device route", |handle| async move {
            use futures::TryStreamExt;
            let mut links = handle
                .link()
                .get()
                .match_name(cali_for_route.clone())
                .execute();
            let index = links
                .try_next()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no cali")?
                .header
                .index;
            let route = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
                .destination_prefix(address, 32)
                .map_err(|e| e.to_string())?
                .output_interface(index)
                .scope(rtnetlink::packet_route::route::RouteScope::Link)
                .build();
            handle
                .route()
                .add(route)
                .execute()
                .await
                .map_err(|e| e.to_string())
        })?;
        add_route_via(&self.members["fabric"], address, 32, self.uplinks[node])?;
        Ok(cali)
    }

    pub fn member(&self, name: &str) -> &Netns {
        &self.members[name]
    }
}

impl LabNamespaces for MiniLab {
    fn netns(&self, member: &str) -> Option<Netns> {
        self.members.get(member).cloned()
    }
    fn uplink(&self, node: &str, v4: bool) -> Option<IpAddr> {
        self.uplinks.get(node).copied().filter(|_| v4)
    }
    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }
    fn fabric(&self) -> String {
        "fabric".into()
    }
}

impl Drop for MiniLab {
    fn drop(&mut self) {
        for ns in self.members.values() {
            let _ = Netns::delete(ns.name());
        }
    }
}
