//! A minimal lab of the harness's own, for root tests and benchmarks of the
//! dataplane and control plane before (and apart from) the full lab module:
//! a fabric namespace with the nodes on one bridged segment (as in the
//! addressing plan) and one external host on a veth, and pods wired to nodes as Calico wires them (pod
//! `eth0` with a /32, default route on-link; node side `cali...` with proxy ARP
//! and a /32 device route; IPv6 likewise with a /128, default via the node
//! side's link-local). Dual stack. Everything is named
//! `fiph-<lab>-<member>` and removed on drop.
//!
//! Addresses: fabric `br-nodes` 198.18.0.1/24, node i uplink `eth0`
//! 198.18.0.(10+i)/24 and 2001:db8:ff::(10+i)/64; external host 198.18.1.10/24
//! and 2001:db8:fe::10/64 (fabric side .1 / ::1);
//! pod routes are installed on the fabric via their node, standing in for the
//! IPAM block routes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::apply::LabNamespaces;
use super::netlink::{add_route_via, add_veth, configure_link, in_netns, index_of, NetlinkError};
use crate::calico::veth_name_for_workload;
use crate::lab::netns::Netns;

pub struct MiniLab {
    lab: String,
    members: BTreeMap<String, Netns>,
    uplinks: BTreeMap<(String, bool), IpAddr>,
    nodes: Vec<String>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// The node side of every pod veth has MAC ee:ee:ee:ee:ee:ee, so this link-local.
const NODE_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// Addresses usable at once: no duplicate address detection.
fn no_dad(ns: &Netns) -> Result<(), NetlinkError> {
    ns.sysctls(&[
        ("net.ipv6.conf.all.accept_dad", "0"),
        ("net.ipv6.conf.default.accept_dad", "0"),
    ])?;
    Ok(())
}

fn forwarding(ns: &Netns) -> Result<(), NetlinkError> {
    no_dad(ns)?;
    ns.sysctls(&[
        ("net.ipv6.conf.all.forwarding", "1"),
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
        configure_link(
            &fabric,
            "br-nodes",
            &[(ip("198.18.0.1"), 24), (ip("2001:db8:ff::1"), 64)],
        )?;
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
            let uplink6 = ip(&format!("2001:db8:ff::{}", 10 + i));
            configure_link(&node, "eth0", &[(uplink, 24), (uplink6, 64)])?;
            add_route_via(&node, ip("0.0.0.0"), 0, ip("198.18.0.1"))?;
            add_route_via(&node, ip("::"), 0, ip("2001:db8:ff::1"))?;
            this.uplinks.insert((name.clone(), true), uplink);
            this.uplinks.insert((name.clone(), false), uplink6);
            this.nodes.push(name);
        }
        let ext = this.create("ext")?;
        no_dad(&ext)?;
        add_veth(&fabric, "x0", &ext, "eth0")?;
        configure_link(
            &fabric,
            "x0",
            &[(ip("198.18.1.1"), 24), (ip("2001:db8:fe::1"), 64)],
        )?;
        configure_link(
            &ext,
            "eth0",
            &[(ip("198.18.1.10"), 24), (ip("2001:db8:fe::10"), 64)],
        )?;
        add_route_via(&ext, ip("0.0.0.0"), 0, ip("198.18.1.1"))?;
        add_route_via(&ext, ip("::"), 0, ip("2001:db8:fe::1"))?;
        Ok(this)
    }

    fn create(&mut self, member: &str) -> Result<Netns, NetlinkError> {
        let name = format!("fiph-{}-{member}", self.lab);
        let ns = Netns::create(&name)?;
        self.members.insert(member.to_string(), ns.clone());
        Ok(ns)
    }

    /// Add pod `name` (Kubernetes namespace `default`) on `node` with its
    /// addresses (one per family), wired as Calico wires it; returns its cali
    /// interface name.
    pub fn add_pod(
        &mut self,
        name: &str,
        node: &str,
        addresses: &[IpAddr],
    ) -> Result<String, NetlinkError> {
        let node_ns = self.members[node].clone();
        let pod = self.create(name)?;
        no_dad(&pod)?;
        let cali = veth_name_for_workload("default", name);
        add_veth(&node_ns, &cali, &pod, "eth0")?;
        let host_routes: Vec<(IpAddr, u8)> = addresses
            .iter()
            .map(|a| (*a, if a.is_ipv4() { 32 } else { 128 }))
            .collect();
        configure_link(&pod, "eth0", &host_routes)?;
        in_netns(&pod, "pod default routes", |handle| async move {
            let index = index_of(&handle, "eth0").await?;
            // Calico's pod routes: default via 169.254.1.1 onlink (the pod only
            // ever ARPs for it, the node's proxy ARP answers) and via the node
            // side's link-local fe80::ecee:eeff:feee:eeee (from MAC ee:ee:ee:ee:ee:ee).
            let v4 = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(Ipv4Addr::new(169, 254, 1, 1))
                .output_interface(index)
                .onlink()
                .build();
            let v6 = rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(NODE_LINK_LOCAL)
                .output_interface(index)
                .build();
            for route in [v4, v6] {
                handle
                    .route()
                    .add(route)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })?;
        let cali_for_mac = cali.clone();
        in_netns(&node_ns, "cali MAC", |handle| async move {
            let index = index_of(&handle, &cali_for_mac).await?;
            handle
                .link()
                .set(
                    rtnetlink::LinkUnspec::new_with_index(index)
                        .address(vec![0xee; 6])
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| e.to_string())
        })?;
        configure_link(&node_ns, &cali, &[])?;
        node_ns.sysctls(&[(&format!("net.ipv4.conf.{cali}.proxy_arp"), "1")])?;
        let cali_for_route = cali.clone();
        let routes = host_routes.clone();
        in_netns(&node_ns, "pod device routes", |handle| async move {
            let index = index_of(&handle, &cali_for_route).await?;
            for (address, len) in routes {
                let route = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
                    .destination_prefix(address, len)
                    .map_err(|e| e.to_string())?
                    .output_interface(index)
                    .scope(rtnetlink::packet_route::route::RouteScope::Link)
                    .build();
                handle
                    .route()
                    .add(route)
                    .execute()
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })?;
        for (address, len) in host_routes {
            let uplink = self
                .uplink(node, address.is_ipv4())
                .expect("node has uplinks of both families");
            add_route_via(&self.members["fabric"], address, len, uplink)?;
        }
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
        self.uplinks.get(&(node.to_string(), v4)).copied()
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
