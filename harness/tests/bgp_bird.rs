//! Real BIRD in a lab: a daemon per node and family and one in the fabric,
//! configured as calico/node renders it. Floating-IP routes that Felix would
//! add on the hosting node reach (or do not reach) the other nodes and the
//! fabric by BGP alone. Needs root and BIRD 1.6 (ci/install-deps.sh).

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use common::{lab_name, node, pod, TestLab};
use fip_harness::bgp::{topology_of, BirdRoute, BirdTimers, LabBird};
use fip_harness::calico::{Encapsulation, IpPool};
use fip_harness::lab::NextHop;

/// Generous: BGP converges in well under a second here; a loaded CI
/// machine may take longer, and nothing is judged by how long it took.
const PATIENCE: Duration = Duration::from_secs(20);

fn pool(name: &str, cidr: &str, encapsulation: Encapsulation, export: bool) -> IpPool {
    let block_size = if cidr.contains(':') { 122 } else { 26 };
    IpPool {
        encapsulation,
        disable_bgp_export: !export,
        ..IpPool::plain(name, cidr.parse().unwrap(), block_size)
    }
}

fn pools() -> Vec<IpPool> {
    vec![
        pool("pods", "198.19.0.0/16", Encapsulation::None, true),
        pool("pods-v6", "2001:db8:1::/48", Encapsulation::None, true),
        pool("fip", "203.0.113.0/26", Encapsulation::None, true),
        pool("fip-private", "203.0.113.64/26", Encapsulation::None, false),
        pool("fip-vxlan", "203.0.113.128/26", Encapsulation::Vxlan, true),
        pool("fip-v6", "2001:db8:f1::/64", Encapsulation::None, true),
    ]
}

fn host(address: &str) -> IpNet {
    let ip: IpAddr = address.parse().unwrap();
    IpNet::from(ip)
}

fn uplink(lab: &TestLab, node: &str) -> IpAddr {
    lab.lab
        .node_uplink(node, fip_harness::lab::Family::V4)
        .unwrap()
        .unwrap()
}

/// A kernel route of a member for `prefix`: its gateways (several for ECMP)
/// and protocol, from `ip -j route` inside the member's namespace.
fn kernel_route(lab: &TestLab, member: &str, prefix: &str) -> Option<(Vec<IpAddr>, String)> {
    let output = std::process::Command::new("ip")
        .args([
            "-j",
            "-n",
            lab.netns(member).name(),
            "route",
            "show",
            prefix,
        ])
        .output()
        .expect("run ip");
    assert!(output.status.success(), "{output:?}");
    let routes: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let route = routes.as_array()?.first()?.clone();
    let mut gateways: Vec<IpAddr> = route["gateway"]
        .as_str()
        .into_iter()
        .chain(
            route["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|hop| hop["gateway"].as_str()),
        )
        .map(|g| g.parse().unwrap())
        .collect();
    gateways.sort();
    Some((
        gateways,
        route["protocol"].as_str().unwrap_or("").to_string(),
    ))
}

fn wait_kernel(
    lab: &TestLab,
    member: &str,
    prefix: &str,
    done: impl Fn(&Option<(Vec<IpAddr>, String)>) -> bool,
) -> Option<(Vec<IpAddr>, String)> {
    let started = Instant::now();
    loop {
        let found = kernel_route(lab, member, prefix);
        if done(&found) || started.elapsed() > PATIENCE {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn best_gateways(routes: &[BirdRoute]) -> Vec<IpAddr> {
    let mut gateways: Vec<IpAddr> = routes.iter().flat_map(|r| r.gateways.clone()).collect();
    gateways.sort();
    gateways
}

/// Felix's route for a floating IP: a device route to the pod's interface.
fn felix_route(lab: &TestLab, node: &str, pod: &str, floating_ip: &str) {
    let interface = lab.lab.pod_interface(pod).unwrap().to_string();
    lab.block_on(lab.lab.replace_host_route(
        node,
        floating_ip.parse().unwrap(),
        &NextHop::Device(interface),
    ))
    .unwrap();
}

fn remove_felix_route(lab: &TestLab, node: &str, floating_ip: &str) {
    lab.block_on(
        lab.lab
            .remove_host_route(node, floating_ip.parse().unwrap()),
    )
    .unwrap();
}

fn start_bird(lab: &TestLab, blocks: &[(&str, &[&str])]) -> LabBird {
    let mut topology = topology_of(&lab.lab, &pools(), BirdTimers::lab()).unwrap();
    for (node, node_blocks) in blocks {
        let entry = topology.nodes.iter_mut().find(|n| n.name == *node).unwrap();
        entry.blocks = node_blocks.iter().map(|b| b.parse().unwrap()).collect();
    }
    let bird = LabBird::start(&lab.lab, topology).expect("start BIRD");
    bird.wait_established(PATIENCE).expect("sessions up");
    bird
}

#[test]
fn floating_ip_routes_follow_calicos_bird_filters() {
    let lab = TestLab::build(
        &lab_name("bgp"),
        vec![node("node-a", &[]), node("node-b", &[])],
        &[],
        &[
            pod("web", "node-a", &["198.19.0.2", "2001:db8:1::2"]),
            pod("web2", "node-b", &["198.19.0.66", "2001:db8:1::42"]),
        ],
    );
    let bird = start_bird(
        &lab,
        &[
            ("node-a", &["198.19.0.0/26", "2001:db8:1::/122"]),
            ("node-b", &["198.19.0.64/26"]),
        ],
    );
    let a = uplink(&lab, "node-a");
    let b = uplink(&lab, "node-b");

    // The node's block goes out from BIRD's static blackhole (bird_aggr).
    let block = bird
        .wait_for_routes("node-b", "198.19.0.0/26".parse().unwrap(), PATIENCE, |r| {
            !r.is_empty()
        })
        .unwrap();
    assert_eq!(best_gateways(&block), vec![a]);
    let kernel = wait_kernel(&lab, "node-b", "198.19.0.0/26", |r| r.is_some());
    assert_eq!(kernel, Some((vec![a], "bird".to_string())));

    // A /32 Felix adds on node-a reaches node-b and the fabric...
    felix_route(&lab, "node-a", "web", "203.0.113.10");
    for member in ["node-b", "fabric"] {
        let routes = bird
            .wait_for_routes(member, host("203.0.113.10"), PATIENCE, |r| !r.is_empty())
            .unwrap();
        assert_eq!(best_gateways(&routes), vec![a], "{member}");
        let kernel = wait_kernel(&lab, member, "203.0.113.10", |r| r.is_some());
        assert_eq!(kernel, Some((vec![a], "bird".to_string())), "{member}");
    }
    // ...and IPv6 the same way, over bird6.
    felix_route(&lab, "node-a", "web", "2001:db8:f1::10");
    let routes = bird
        .wait_for_routes("fabric", host("2001:db8:f1::10"), PATIENCE, |r| {
            !r.is_empty()
        })
        .unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");

    // ...and is withdrawn when Felix removes it.
    remove_felix_route(&lab, "node-a", "203.0.113.10");
    for member in ["node-b", "fabric"] {
        bird.wait_for_routes(member, host("203.0.113.10"), PATIENCE, |r| r.is_empty())
            .unwrap();
        let kernel = wait_kernel(&lab, member, "203.0.113.10", |r| r.is_none());
        assert_eq!(kernel, None, "{member}");
    }

    // disableBGPExport: node-a's BIRD learns the route but exports nothing.
    // A route added after it reaching the fabric shows the first one would
    // have arrived by then (BIRD handles kernel changes in order).
    felix_route(&lab, "node-a", "web", "203.0.113.70");
    bird.wait_for_routes("node-a", host("203.0.113.70"), PATIENCE, |r| !r.is_empty())
        .unwrap();
    felix_route(&lab, "node-a", "web", "203.0.113.11");
    for member in ["node-b", "fabric"] {
        bird.wait_for_routes(member, host("203.0.113.11"), PATIENCE, |r| !r.is_empty())
            .unwrap();
        assert!(bird
            .routes_for(member, host("203.0.113.70"))
            .unwrap()
            .is_empty());
        assert_eq!(kernel_route(&lab, member, "203.0.113.70"), None, "{member}");
    }

    // VXLAN pool: exported, so the fabric programs it; node-b's BIRD has it
    // but calico_kernel_programming keeps it out of node-b's kernel.
    felix_route(&lab, "node-a", "web", "203.0.113.130");
    let fabric = bird
        .wait_for_routes("fabric", host("203.0.113.130"), PATIENCE, |r| !r.is_empty())
        .unwrap();
    assert_eq!(best_gateways(&fabric), vec![a]);
    let kernel = wait_kernel(&lab, "fabric", "203.0.113.130", |r| r.is_some());
    assert_eq!(kernel, Some((vec![a], "bird".to_string())));
    bird.wait_for_routes("node-b", host("203.0.113.130"), PATIENCE, |r| !r.is_empty())
        .unwrap();
    assert_eq!(kernel_route(&lab, "node-b", "203.0.113.130"), None);

    // One floating IP on both nodes: the fabric gets an ECMP route.
    felix_route(&lab, "node-a", "web", "203.0.113.20");
    felix_route(&lab, "node-b", "web2", "203.0.113.20");
    let routes = bird
        .wait_for_routes("fabric", host("203.0.113.20"), PATIENCE, |r| r.len() == 2)
        .unwrap();
    assert_eq!(best_gateways(&routes), vec![a, b]);
    let kernel = wait_kernel(&lab, "fabric", "203.0.113.20", |r| {
        r.as_ref().is_some_and(|(g, _)| g.len() == 2)
    });
    assert_eq!(kernel, Some((vec![a, b], "bird".to_string())));
    // Each node keeps Felix's device route to its own pod.
    for member in ["node-a", "node-b"] {
        let kernel = kernel_route(&lab, member, "203.0.113.20").unwrap();
        assert!(kernel.0.is_empty(), "{member}: {kernel:?}");
    }
    bird.check_alive().unwrap();
}

/// A lab of two nodes without pods, its BIRD sessions up.
fn two_nodes_with_bird(tag: &str) -> (TestLab, LabBird) {
    let lab = TestLab::build(
        &lab_name(tag),
        vec![node("node-a", &[]), node("node-b", &[])],
        &[],
        &[],
    );
    let bird = start_bird(&lab, &[]);
    (lab, bird)
}

/// Whether `pid` still runs (a zombie has exited; only its reaping is left).
fn runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z"))
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn a_dead_bird_is_reported_with_its_log_and_teardown_stops_the_rest() {
    let (lab, bird) = two_nodes_with_bird("bgpd");
    let victim = &bird.daemons()[1];
    let pid = victim.pid().expect("running");
    kill(pid);
    let started = Instant::now();
    let error = loop {
        match bird.check_alive() {
            Err(error) => break error,
            Ok(()) if started.elapsed() < PATIENCE => std::thread::sleep(Duration::from_millis(10)),
            Ok(()) => panic!("BIRD {pid} still counts as alive"),
        }
    };
    let text = error.to_string();
    assert!(text.contains("is not running any more"), "{text}");
    assert!(text.contains("BGP"), "the log's end is quoted: {text}");

    // `down` from another process knows only the lab's name.
    let pids: Vec<i32> = bird.daemons().iter().filter_map(|d| d.pid()).collect();
    assert!(!pids.is_empty());
    let errors = fip_harness::lab::daemons::stop_lab_daemons(lab.lab.name());
    assert!(errors.is_empty(), "{errors:?}");
    for pid in pids {
        assert!(!runs(pid), "BIRD {pid} still runs");
    }
}

/// A BIRD whose pid file is gone (its run directory removed while the lab
/// stood: a test's temporary one, or a process killed mid-case) is still
/// stopped when the lab goes: teardown finds it in the lab's namespaces.
#[test]
fn teardown_stops_a_bird_whose_pid_file_is_gone() {
    let (lab, bird) = two_nodes_with_bird("bgps");
    let pids: Vec<i32> = bird.daemons().iter().filter_map(|d| d.pid()).collect();
    assert_eq!(pids.len(), bird.daemons().len(), "every daemon runs");
    std::fs::remove_dir_all(fip_harness::lab::daemons::lab_dir(lab.lab.name())).unwrap();
    // Nothing is left for the daemons' own stop (it goes by the pid files).
    bird.detach();
    let torn_down = lab.teardown();
    let left: Vec<i32> = pids.into_iter().filter(|pid| runs(*pid)).collect();
    // Never leave them to the machine, even when the assertion fails.
    left.iter().for_each(|pid| kill(*pid));
    assert!(left.is_empty(), "BIRD {left:?} outlived the lab");
    torn_down.expect("teardown");
}

/// Every daemon runs in a time namespace of its own whose monotonic clock is
/// offset by under a second (bgp/clock.rs: its first whole second, when
/// its sessions connect, soon after it starts), where this host has them.
#[test]
fn each_bird_runs_on_a_clock_offset_by_a_fraction_of_a_second() {
    if !std::path::Path::new("/proc/self/timens_offsets").exists() {
        eprintln!("no time namespaces on this kernel: nothing to check");
        return;
    }
    let (lab, bird) = two_nodes_with_bird("bgpt");
    let own = std::fs::read_link("/proc/self/ns/time").unwrap();
    for daemon in bird.daemons() {
        let pid = daemon.pid().expect("running");
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/time")).unwrap();
        assert_ne!(ns, own, "{} shares this process's clock", daemon.member());
        let offsets = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
        let monotonic: Vec<i64> = offsets
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.first() == Some(&"monotonic") || fields.first() == Some(&"1"))
                    .then(|| fields[1..].iter().map(|f| f.parse().unwrap()).collect())
            })
            .unwrap_or_else(|| panic!("no monotonic offset in {offsets:?}"));
        assert_eq!(monotonic[0], 0, "whole seconds: {offsets:?}");
        assert!((0..1_000_000_000).contains(&monotonic[1]), "{offsets:?}");
    }
    drop(bird);
    lab.teardown().expect("teardown");
}
