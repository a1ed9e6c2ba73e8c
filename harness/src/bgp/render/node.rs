//! A node's BIRD configuration as calico/node's confd renders
//! bird.cfg.template (bird6.cfg.template for IPv6), with the pool filters of
//! [`super::filters`] where the template includes bird_aggr.cfg and
//! bird_ipam.cfg.

use std::fmt::Write;
use std::net::IpAddr;

use super::filters::{self, BIRD_INT_MAX, NORMAL_ROUTE_PRIORITY, OVERRIDE_PREFERENCE};
use crate::bgp::topology::{BgpNode, BgpTopology};
use crate::calico::IpFamily;

/// A BGP session as confd's `BirdBGPPeer` describes it.
struct Peer {
    name: String,
    address: IpAddr,
    asn: u32,
    source: IpAddr,
    passive: bool,
}

/// `Mesh_198_18_0_11`, `Global_2001_db8_ff__1`: bgp_processor.go
/// `processMeshPeers` / `buildPeerFromData` name peers after their address.
fn peer_name(prefix: &str, address: IpAddr) -> String {
    let text = address.to_string();
    format!("{prefix}_{}", text.replace(['.', ':'], "_"))
}

/// The node's peers, sorted by name as `GetBirdBGPConfig` sorts them: every
/// other node (the node-to-node mesh) and the fabric (a global BGPPeer).
fn peers(topology: &BgpTopology, node: &BgpNode, family: IpFamily) -> Vec<Peer> {
    let Some(own) = node.address(family) else {
        return Vec::new();
    };
    let mut peers: Vec<Peer> = topology
        .nodes
        .iter()
        .filter(|other| other.name != node.name)
        .filter_map(|other| other.address(family))
        .filter(|address| *address != own)
        .map(|address| Peer {
            name: peer_name("Mesh", address),
            address,
            asn: topology.node_as,
            source: own,
            // processMeshPeers: the node with the greater address (compared
            // as text) waits, so each pair opens one connection.
            passive: address.to_string() > own.to_string(),
        })
        .collect();
    if let Some(fabric) = topology.fabric_address(family) {
        // A global BGPPeer with the default `sourceAddress: UseNodeIP`; not
        // a Calico node, so never passive (buildPeerFromData).
        peers.push(Peer {
            name: peer_name("Global", fabric),
            address: fabric,
            asn: topology.fabric_as,
            source: own,
            passive: false,
        });
    }
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    peers
}

/// bgp_processor.go `buildImportFilter` (no BGPFilters).
fn import_filter(out: &mut String) {
    let threshold = BIRD_INT_MAX - NORMAL_ROUTE_PRIORITY;
    let _ = write!(
        out,
        "  import filter {{\n\
         \x20   if (defined(bgp_local_pref)&&(bgp_local_pref > {threshold})) then\n\
         \x20     preference = {OVERRIDE_PREFERENCE};\n\
         \x20   accept;\n\
         \x20 }};\n"
    );
}

/// bgp_processor.go `buildExportFilter` (no BGPFilters): carry the route's
/// kernel priority as local preference, then `calico_export_to_bgp_peers`.
fn export_filter(out: &mut String, internal: bool) {
    let _ = write!(
        out,
        "  export filter {{\n\
         \x20   if (defined(source) && source = RTS_BGP && defined(bgp_local_pref)) then {{\n\
         \x20     krt_metric = {BIRD_INT_MAX} - bgp_local_pref;\n\
         \x20   }} else {{\n\
         \x20     if (!defined(krt_metric)) then {{ krt_metric = {NORMAL_ROUTE_PRIORITY}; }}\n\
         \x20     bgp_local_pref = {BIRD_INT_MAX} - krt_metric;\n\
         \x20   }}\n\
         \x20   calico_export_to_bgp_peers({internal});\n\
         \x20   reject;\n\
         \x20 }};  # Only want to export routes for workloads.\n"
    );
}

fn peer_protocol(out: &mut String, peer: &Peer, node_as: u32) {
    let _ = writeln!(out, "protocol bgp {} from bgp_template {{", peer.name);
    let _ = writeln!(out, "  neighbor {} as {};", peer.address, peer.asn);
    let _ = writeln!(
        out,
        "  source address {};  # The local address we use for the TCP connection",
        peer.source
    );
    // TTLSecurity "off" for mesh and global peers: no TTL check, multihop.
    out.push_str("  ttl security off;\n  multihop;\n");
    import_filter(out);
    export_filter(out, peer.asn == node_as);
    if peer.passive {
        out.push_str("  passive on;\n");
    }
    out.push_str("}\n\n");
}

/// The whole configuration of `node`'s BIRD for `family` (bird or bird6).
pub fn render_node(topology: &BgpTopology, node: &BgpNode, family: IpFamily) -> String {
    let timers = &topology.timers;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# BIRD for Calico node {} (IPv{}), rendered by fip-harness after\n\
         # calico/node's confd templates (node/filesystem/etc/calico/confd/templates).\n",
        node.name,
        if family == IpFamily::V4 { 4 } else { 6 }
    );
    // The harness's addition: calico/node logs to its supervisor's stderr.
    let _ = writeln!(
        out,
        "log \"{}\" all;\n",
        topology
            .log_dir
            .join(log_file_name(&node.name, family))
            .display()
    );
    out.push_str("function apply_communities ()\n{\n}\n\n");
    let _ = write!(
        out,
        "template kernel kernel_template {{\n\
         \x20 learn;             # Learn all alien routes from the kernel\n\
         \x20 persist;           # Don't remove routes on bird shutdown\n\
         \x20 scan time {};       # Scan kernel routing table every {} seconds\n\
         \x20 import all;\n\
         }}\n\n",
        timers.kernel_scan, timers.kernel_scan
    );
    // populateNodeConfig: DirectInterfaces excludes Calico's workload and
    // kube-ipvs interfaces; log level info gives `debug { states }`.
    out.push_str(
        "template direct direct_template {\n\
         \x20 debug { states };\n\
         \x20 interface -\"cali*\", -\"kube-ipvs*\", \"*\";\n\
         }\n\n",
    );
    filters::aggregation(&mut out, node, family);
    filters::ipam(&mut out, topology, node, family);
    // The router id is the node's IPv4 address in bird6 too.
    let _ = writeln!(out, "router id {};\n", node.ipv4);
    out.push_str(
        "# Configure synchronization between routing tables and kernel.\n\
         protocol kernel from kernel_template {\n\
         \x20 export filter calico_kernel_programming; # Default is export none\n\
         \x20 graceful restart;  # Reduce route flaps when BIRD reloads its configuration.\n\
         \x20 merge paths on;    # Allow export multipath routes (ECMP)\n\
         }\n\n",
    );
    let _ = write!(
        out,
        "# Watch interface up/down events.\n\
         protocol device {{\n\
         \x20 debug {{ states }};\n\
         \x20 scan time {};    # Scan interfaces every {} seconds\n\
         }}\n\n\
         protocol direct from direct_template {{\n}}\n\n",
        timers.device_scan, timers.device_scan
    );
    bgp_template(&mut out, topology);
    let _ = writeln!(
        out,
        "# -------------- BGP Filters ------------------\n# No v{} BGPFilters configured",
        if family == IpFamily::V4 { 4 } else { 6 }
    );
    let peers = peers(topology, node, family);
    if peers.is_empty() {
        out.push_str("# No BGP peers configured for this node\n");
    } else {
        out.push_str("# BGP Protocol Configurations\n");
        for peer in &peers {
            peer_protocol(&mut out, peer, topology.node_as);
        }
    }
    out
}

fn bgp_template(out: &mut String, topology: &BgpTopology) {
    let _ = write!(
        out,
        "# Template for all BGP clients\n\
         template bgp bgp_template {{\n\
         \x20 debug {{ states, routes, filters, events }};\n\
         \x20 description \"Connection to BGP peer\";\n\
         \x20 local as {};\n\
         \x20 gateway recursive; # This should be the default, but just in case.\n\
         \x20 add paths on;\n\
         \x20 graceful restart;  # See comment in kernel section about graceful restart.\n",
        topology.node_as,
    );
    topology.timers.write_session_timers(out);
    out.push_str("}\n\n");
}

/// `<member>.bird.log` / `<member>.bird6.log`.
pub fn log_file_name(member: &str, family: IpFamily) -> String {
    format!("{member}.{}.log", daemon_name(family))
}

/// `bird` for IPv4, `bird6` for IPv6 (Debian's BIRD 1.6 packaging, as
/// calico/node runs one daemon per family).
pub fn daemon_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "bird",
        IpFamily::V6 => "bird6",
    }
}
