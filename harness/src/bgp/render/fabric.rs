//! The fabric's BIRD: a top-of-rack router that peers with every node. Calico
//! configures only its side of such a session (a global BGPPeer); this side
//! is the harness's own, kept to what a ToR needs: learn the nodes' routes,
//! program them (ECMP where several nodes advertise one prefix), advertise
//! nothing back (the nodes reach everything else through their default route).

use std::fmt::Write;

use super::node::{daemon_name, log_file_name};
use crate::bgp::topology::BgpTopology;
use crate::calico::IpFamily;
use crate::lab::spec::FABRIC;

/// `Node_node_a`: one session per node, named after it.
fn session_name(topology: &BgpTopology, index: usize) -> String {
    format!("Node_{}", topology.nodes[index].name.replace('-', "_"))
}

/// The fabric's configuration for `family`.
pub fn render_fabric(topology: &BgpTopology, family: IpFamily) -> String {
    let timers = &topology.timers;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} of the lab's fabric: a top-of-rack router in AS {} (the harness's own configuration;\n# an iBGP peer of every node, not a route reflector: the mesh carries the nodes' routes).\n",
        daemon_name(family),
        topology.fabric_as
    );
    let _ = writeln!(
        out,
        "log \"{}\" all;\n",
        topology
            .log_dir
            .join(log_file_name(FABRIC, family))
            .display()
    );
    let _ = writeln!(out, "router id {};\n", topology.fabric_ipv4);
    let _ = write!(
        out,
        "protocol device {{\n  scan time {};\n}}\n\n\
         # Connected segments, so the nodes' next hops resolve.\n\
         protocol direct {{\n  interface \"*\";\n}}\n\n\
         protocol kernel {{\n\
         \x20 scan time {};\n\
         \x20 import none;\n\
         \x20 export all;       # Program every route the nodes advertise.\n\
         \x20 merge paths on;   # One ECMP route when several nodes advertise a prefix.\n\
         }}\n\n",
        timers.device_scan, timers.kernel_scan
    );
    let _ = write!(
        out,
        "template bgp calico_node {{\n\
         \x20 debug {{ states, routes, events }};\n\
         \x20 local as {};\n\
         \x20 import all;\n\
         \x20 export none;      # The nodes route everything else by default to the fabric.\n\
         \x20 add paths rx;     # Take every path a node offers (Calico's `add paths on`): a\n\
         \x20                  # node that prefers a peer's route for a prefix it also\n\
         \x20                  # holds still sends its own, so both make the ECMP route.\n\
         \x20 graceful restart;\n\
         \x20 passive on;      # The nodes connect (a global BGPPeer is never passive);\n\
         \x20                  # two sides connecting at once with graceful restart\n\
         \x20                  # take each new connection for a restart of the old.\n",
        topology.fabric_as,
    );
    timers.write_session_timers(&mut out);
    out.push_str("}\n\n");
    let own = topology.fabric_address(family);
    for (index, node) in topology.nodes.iter().enumerate() {
        let (Some(address), Some(own)) = (node.address(family), own) else {
            continue;
        };
        let _ = write!(
            out,
            "protocol bgp {} from calico_node {{\n\
             \x20 description \"Calico node {}\";\n\
             \x20 neighbor {address} as {};\n\
             \x20 source address {own};\n\
             }}\n\n",
            session_name(topology, index),
            node.name,
            topology.node_as
        );
    }
    out
}
