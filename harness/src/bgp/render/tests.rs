use std::net::Ipv4Addr;

use super::*;
use crate::bgp::timers::BirdTimers;
use crate::bgp::topology::{BgpNode, BgpTopology, ClusterRoutes, CALICO_DEFAULT_AS, FABRIC_AS};
use crate::calico::{Encapsulation, IpFamily, IpPool};

fn pool(name: &str, cidr: &str, encapsulation: Encapsulation) -> IpPool {
    let block_size = if cidr.contains(':') { 122 } else { 26 };
    IpPool {
        encapsulation,
        ..IpPool::plain(name, cidr.parse().unwrap(), block_size)
    }
}

/// Two nodes and the fabric; a pod pool, and floating-IP pools that are
/// normal, `disableBGPExport`, VXLAN and disabled.
pub(crate) fn lab_topology(dual_stack: bool) -> BgpTopology {
    let pools = vec![
        pool("pods", "198.19.0.0/16", Encapsulation::None),
        pool("pods-v6", "2001:db8:1::/48", Encapsulation::None),
        pool("fip", "203.0.113.0/26", Encapsulation::None),
        IpPool {
            disable_bgp_export: true,
            ..pool("fip-private", "203.0.113.64/26", Encapsulation::None)
        },
        pool("fip-vxlan", "203.0.113.128/26", Encapsulation::Vxlan),
        IpPool {
            disabled: true,
            ..pool("fip-disabled", "198.51.100.0/24", Encapsulation::None)
        },
        IpPool {
            disable_bgp_export: true,
            ..pool("fip-v6-private", "2001:db8:f2::/64", Encapsulation::None)
        },
        pool("fip-v6-vxlan", "2001:db8:f3::/64", Encapsulation::Vxlan),
    ];
    let node = |name: &str, host: u8, blocks: &[&str]| BgpNode {
        name: name.into(),
        ipv4: Ipv4Addr::new(198, 18, 0, host),
        ipv4_network: "198.18.0.0/24".parse().unwrap(),
        ipv6: dual_stack.then(|| format!("2001:db8:ff::{host:x}").parse().unwrap()),
        blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
    };
    BgpTopology {
        nodes: vec![
            node(
                "node-a",
                10,
                &["198.19.0.64/26", "198.19.0.0/26", "2001:db8:1::/122"],
            ),
            node("node-b", 11, &["198.19.0.128/26"]),
        ],
        fabric_ipv4: Ipv4Addr::new(198, 18, 0, 1),
        fabric_ipv6: dual_stack.then(|| "2001:db8:ff::1".parse().unwrap()),
        pools,
        cluster_routes: ClusterRoutes::default(),
        node_as: CALICO_DEFAULT_AS,
        fabric_as: FABRIC_AS,
        log_dir: "/run/fip-harness/labs/lab1".into(),
        timers: BirdTimers::calico(),
    }
}

#[test]
fn node_a_ipv4() {
    let topology = lab_topology(false);
    insta::assert_snapshot!(render_node(&topology, &topology.nodes[0], IpFamily::V4));
}

#[test]
fn node_b_ipv4() {
    let topology = lab_topology(false);
    insta::assert_snapshot!(render_node(&topology, &topology.nodes[1], IpFamily::V4));
}

#[test]
fn node_a_ipv6() {
    let topology = lab_topology(true);
    insta::assert_snapshot!(render_node(&topology, &topology.nodes[0], IpFamily::V6));
}

/// The lab's topology plus two IPIP pools (ipipMode Always and
/// CrossSubnet), under a cluster-route policy.
fn with_ipip_pools(cluster_routes: ClusterRoutes) -> BgpTopology {
    let mut topology = lab_topology(false);
    topology.cluster_routes = cluster_routes;
    topology
        .pools
        .push(pool("fip-ipip", "192.0.2.128/25", Encapsulation::Ipip));
    topology.pools.push(IpPool {
        cross_subnet: true,
        ..pool("fip-ipip-cross-subnet", "192.0.2.0/25", Encapsulation::Ipip)
    });
    topology
}

/// The filter lines of a rendered configuration (where the policies differ).
fn pool_filter_lines(config: &str) -> String {
    config
        .lines()
        .filter(|l| l.contains("if (net ~") || l.contains("ifname ~ \"*.cali\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// BIRD programs the IPIP pools (programClusterRoutes Enabled): the kernel
/// filter sets `krt_tunnel` as confd's bird_ipam.cfg.template does
/// (confd/tests/compiled_templates/cluster_routes/enabled/bird_ipam.cfg),
/// CrossSubnet through the node's own subnet only, and tunl0 routes may go
/// to iBGP peers.
#[test]
fn node_a_ipv4_filters_when_bird_programs_ipip() {
    let topology = with_ipip_pools(ClusterRoutes::Enabled);
    insta::assert_snapshot!(pool_filter_lines(&render_node(
        &topology,
        &topology.nodes[0],
        IpFamily::V4
    )));
}

/// Calico's default (EnabledNoEncapOnly): Felix programs IPIP routes, so
/// the kernel filter rejects the IPIP pools and no `krt_tunnel` appears.
#[test]
fn node_a_ipv4_filters_when_felix_programs_ipip() {
    let topology = with_ipip_pools(ClusterRoutes::EnabledNoEncapOnly);
    let config = render_node(&topology, &topology.nodes[0], IpFamily::V4);
    assert!(!config.contains("krt_tunnel"), "{config}");
    insta::assert_snapshot!(pool_filter_lines(&config));
}

/// Why the lab keeps Calico's default policy: `krt_tunnel` exists only in
/// Calico's fork of BIRD, and the BIRD 1.6 the lab runs refuses it.
#[test]
fn upstream_bird_refuses_krt_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let mut topology = with_ipip_pools(ClusterRoutes::Enabled);
    topology.log_dir = dir.path().to_path_buf();
    let path = dir.path().join("node.conf");
    std::fs::write(
        &path,
        render_node(&topology, &topology.nodes[0], IpFamily::V4),
    )
    .unwrap();
    let output = std::process::Command::new(daemon_name(IpFamily::V4))
        .args(["-p", "-c"])
        .arg(&path)
        .output()
        .expect("running bird (install BIRD 1.6)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // BIRD 1.6.8 knows no route attribute of that name, so the assignment
    // is one to an undeclared symbol.
    assert!(stderr.contains("You may set only variables"), "{stderr}");
}

#[test]
fn fabric_ipv4() {
    insta::assert_snapshot!(render_fabric(&lab_topology(false), IpFamily::V4));
}

#[test]
fn fabric_ipv6() {
    insta::assert_snapshot!(render_fabric(&lab_topology(true), IpFamily::V6));
}

#[test]
fn lab_timers_change_only_the_connect_delay() {
    let mut topology = lab_topology(false);
    let calico = render_node(&topology, &topology.nodes[0], IpFamily::V4);
    topology.timers = BirdTimers::lab();
    let lab = render_node(&topology, &topology.nodes[0], IpFamily::V4);
    let changed: Vec<(&str, &str)> = calico
        .lines()
        .zip(lab.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        vec![("  connect delay time 2;", "  connect delay time 1;")]
    );
}

/// Every rendered configuration is one BIRD 1.6 accepts (`bird -p` parses
/// only). Needs BIRD installed (ci/install-deps.sh installs it).
#[test]
fn bird_parses_every_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut topology = lab_topology(true);
    // BIRD opens its log file while parsing.
    topology.log_dir = dir.path().to_path_buf();
    let mut configs = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        for node in &topology.nodes {
            configs.push((daemon_name(family), render_node(&topology, node, family)));
        }
        configs.push((daemon_name(family), render_fabric(&topology, family)));
    }
    for (i, (daemon, text)) in configs.iter().enumerate() {
        let path = dir.path().join(format!("{i}.conf"));
        std::fs::write(&path, text).unwrap();
        let output = std::process::Command::new(daemon)
            .arg("-p")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("running {daemon} (install BIRD 1.6): {e}"));
        assert!(
            output.status.success(),
            "{daemon} rejects configuration {i}: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
