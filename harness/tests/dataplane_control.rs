//! Root tests of the control plane on a real lab (`Lab` + `LabMembers`, as
//! runs get it): external ping to a floating IP, the loopback case, a
//! move across nodes, both conntrack profiles, switches off; both backends.

mod common;

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use common::capture::EchoCapture;
use common::{floating_ip_pools, lab_name, node, pod, program, TestLab};
use fip_harness::calico::{veth_name_for_workload, IpNatPair, WorkloadEndpoint};
use fip_harness::control::{list_routes, RouteNext};
use fip_harness::control::{ClusterState, ConntrackProfile, ControlPlane, UpdateOrder};
use fip_harness::dataplane::conntrack::Conntrack;
use fip_harness::dataplane::{backend, BackendKind};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::Family;
use rstest::rstest;

const FIP: &str = "203.0.113.1";
const WEB: &str = "198.19.0.5";
const WEB2: &str = "198.19.0.70";
const CLIENT: &str = "198.19.0.9";
const FIP6: &str = "2001:db8:f1::1";
const WEB6: &str = "2001:db8:1::5";
const WEB26: &str = "2001:db8:1::70";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pod's endpoint; each floating IP pairs with the pod address of its family.
fn endpoint(pod: &str, node: &str, addresses: &[&str], fips: &[&str]) -> WorkloadEndpoint {
    let addresses: Vec<IpAddr> = addresses.iter().map(|a| ip(a)).collect();
    WorkloadEndpoint {
        namespace: "default".into(),
        pod: pod.into(),
        node: node.into(),
        interface: veth_name_for_workload("default", pod),
        ifindex: None,
        ip_nats: fips
            .iter()
            .map(|f| IpNatPair {
                internal: *addresses
                    .iter()
                    .find(|a| a.is_ipv4() == ip(f).is_ipv4())
                    .expect("pod address of the floating IP's family"),
                external: ip(f),
            })
            .collect(),
        addresses,
    }
}

fn cluster(web_fips: &[&str], web2_fips: &[&str]) -> ClusterState {
    ClusterState {
        endpoints: vec![
            endpoint("web", "node-0", &[WEB, WEB6], web_fips),
            endpoint("web2", "node-1", &[WEB2, WEB26], web2_fips),
            endpoint("client", "node-0", &[CLIENT], &[]),
        ],
        felix_floating_ips: true,
        calico: Default::default(),
        pools: floating_ip_pools(),
        node_blocks: Default::default(),
    }
}

/// node-0 holds the first /26 (/122) of the pod pools, node-1 the second;
/// `ext` is the external host (198.18.1.10, 2001:db8:fe::a).
fn lab(tag: &str) -> TestLab {
    TestLab::build(
        &lab_name(&format!("dc{tag}")),
        vec![
            node("node-0", &["198.19.0.0/26", "2001:db8:1::/122"]),
            node("node-1", &["198.19.0.64/26", "2001:db8:1::40/122"]),
        ],
        &["ext"],
        &[
            pod("web", "node-0", &[WEB, WEB6]),
            pod("web2", "node-1", &[WEB2, WEB26]),
            pod("client", "node-0", &[CLIENT]),
        ],
    )
}

/// The external host's address of a family.
fn ext(lab: &TestLab, family: Family) -> IpAddr {
    lab.lab.external_address("ext", family).unwrap().unwrap()
}

/// `ip -4 route show proto <protocol>` in a namespace (`ip` prints no
/// `proto boot` otherwise: it is the default of `ip route add`).
fn ip_routes(ns: &Netns, protocol: &str) -> String {
    let out = ns
        .command(program("ip"))
        .args(["-4", "route", "show", "proto", protocol])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The source of the first echo reply, trying up to three single probes: on
/// a loaded machine one probe's second can pass before IPv6 neighbour
/// discovery (or a first ARP) has finished.
fn ping(from: &Netns, to: &str) -> Option<String> {
    (0..3).find_map(|_| ping_once(from, to))
}

fn ping_once(from: &Netns, to: &str) -> Option<String> {
    let out = from
        .command(program("ping"))
        .args(["-c1", "-W1", "-n", to])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("bytes from"))?;
    Some(
        line.split_whitespace()
            .nth(3)?
            .trim_end_matches(':')
            .to_string(),
    )
}

#[rstest]
#[case::nftables(BackendKind::Nftables, "n")]
#[case::nft_maps(BackendKind::NftMaps, "m")]
#[case::iptables(BackendKind::Iptables, "i")]
fn external_host_reaches_the_pod_through_its_floating_ip(
    #[case] kind: BackendKind,
    #[case] tag: &str,
) {
    let lab = lab(&format!("e{tag}"));
    let mut control = ControlPlane::new(lab.members(), backend(kind), ConntrackProfile::Calico);
    control.update(&cluster(&[FIP], &[])).unwrap();

    let routes = list_routes(lab.netns("fabric"), &[]).unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
    // Felix writes its routes to a workload, for the pod's address and its
    // floating IP alike, with its DeviceRouteProtocol (3, `boot`); the route
    // model writes the fabric's as BIRD would (`proto bird`).
    let web_veth = veth_name_for_workload("default", "web");
    let node_routes = ip_routes(lab.netns("node-0"), "boot");
    for felix_route in [
        format!("{FIP} dev {web_veth} scope link metric 1024"),
        format!("{WEB} dev {web_veth} scope link metric 1024"),
    ] {
        assert!(
            node_routes.contains(&felix_route),
            "{felix_route}: {node_routes}"
        );
    }
    let fabric_routes = ip_routes(lab.netns("fabric"), "bird");
    assert!(
        fabric_routes
            .lines()
            .any(|l| l.starts_with(&format!("{FIP} via "))),
        "{fabric_routes}"
    );

    let capture = EchoCapture::start(lab.netns("web"));
    assert_eq!(
        ping(lab.netns("ext"), FIP).as_deref(),
        Some(FIP),
        "the reply carries the floating IP as its source"
    );
    let seen = capture.finish();
    assert!(
        seen.contains(&format!(
            "{} > {WEB}: ICMP echo request",
            ext(&lab, Family::V4)
        )),
        "the pod sees its own address as destination: {seen}"
    );

    // Loopback: the pod reaches its own floating IP, and sees it as the source.
    assert_eq!(ping(lab.netns("web"), FIP).as_deref(), Some(FIP));

    // Move to web2 on node-1.
    let applied = control.update(&cluster(&[], &[FIP])).unwrap();
    assert_eq!(applied.changes.nat.len(), 2);
    let capture = EchoCapture::start(lab.netns("web2"));
    assert_eq!(ping(lab.netns("ext"), FIP).as_deref(), Some(FIP));
    assert!(capture
        .finish()
        .contains(&format!("> {WEB2}: ICMP echo request")));

    // Felix's switch off: no NAT anywhere, the floating IP answers no more.
    let mut off = cluster(&[], &[FIP]);
    off.felix_floating_ips = false;
    control.update(&off).unwrap();
    assert_eq!(ping(lab.netns("ext"), FIP), None);
    assert!(list_routes(lab.netns("fabric"), &[]).unwrap().is_empty());
    // Felix's device routes go too, on every node (they once stayed behind).
    for node in lab.lab.spec().nodes.iter().map(|n| n.name.clone()) {
        let pods = [WEB, WEB6, WEB2, WEB26, CLIENT].map(ip);
        let left = list_routes(lab.netns(&node), &pods).unwrap();
        assert!(left.is_empty(), "{node}: {left:?}");
    }
    control.teardown().unwrap();
}

/// A continuous ping from a pod on node-0 to the floating IP while it moves
/// from node-0 to node-1: where do the echo requests go afterwards? The move
/// removes node-0's last NAT rule; the calico case holds only because the lab
/// keeps conntrack on in every node (lab/tracking.rs), as Felix's filter rules
/// do on a Calico node: without it node-0 stops tracking and the flow loses
/// its DNAT.
#[rstest]
#[case::calico_keeps_the_old_pod(ConntrackProfile::Calico, "c")]
#[case::strict_reaches_the_new_pod(ConntrackProfile::Strict, "s")]
fn an_established_flow_across_a_move(#[case] profile: ConntrackProfile, #[case] tag: &str) {
    let lab = lab(&format!("m{tag}"));
    let mut control = ControlPlane::new(lab.members(), backend(BackendKind::Nftables), profile);
    control.update(&cluster(&[FIP], &[])).unwrap();

    // Before the move the flow goes to web, so whatever web2 sees came after
    // it. The ping's deadline is long, only so that a failed test leaves no
    // ping behind for long; it is killed (by pid) once the capture is read.
    let web2 = EchoCapture::start(lab.netns("web2"));
    let mut flow = lab
        .netns("client")
        .command(program("ping"))
        .args(["-i", "0.2", "-w", "60", "-n", FIP])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let applied = control.update(&cluster(&[], &[FIP])).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let seen_by_web2 = web2.finish();
    let _ = flow.kill();
    let _ = flow.wait();

    let mut node0 = Conntrack::open(lab.netns("node-0")).unwrap();
    let to_fip: Vec<_> = node0
        .list()
        .unwrap()
        .into_iter()
        .filter(|e| e.orig_dst == ip(FIP) && e.orig_src == ip(CLIENT))
        .collect();
    match profile {
        ConntrackProfile::Calico => {
            assert_eq!(applied.conntrack_deleted, 0);
            assert!(
                to_fip.iter().any(|e| e.reply_src == ip(WEB)),
                "the flow keeps its old DNAT: {to_fip:?}"
            );
            assert!(!seen_by_web2.contains(CLIENT), "{seen_by_web2}");
        }
        ConntrackProfile::Strict => {
            assert!(applied.conntrack_deleted >= 1);
            assert!(to_fip.iter().all(|e| e.reply_src != ip(WEB)), "{to_fip:?}");
            assert!(
                seen_by_web2.contains(&format!("{CLIENT} > {WEB2}")),
                "the flow reaches the new pod: {seen_by_web2}"
            );
        }
    }
    control.teardown().unwrap();
}

#[test]
fn state_command_reads_a_lab_from_its_name() {
    let lab = lab("st");
    let mut control = ControlPlane::new(
        lab.members(),
        backend(BackendKind::Iptables),
        ConntrackProfile::Calico,
    );
    control.update(&cluster(&[FIP], &[])).unwrap();
    assert!(ping(lab.netns("ext"), FIP).is_some());
    let name = lab.lab.name().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(["state", &name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let node0 = text
        .split("== ")
        .find(|s| s.starts_with("node-0"))
        .expect(&text);
    assert!(node0.contains(&format!("DNAT {FIP} -> {WEB}")), "{text}");
    assert!(
        node0.contains(&format!(
            "{FIP}/32 dev {}",
            veth_name_for_workload("default", "web")
        )),
        "{text}"
    );
    assert!(
        node0.contains(&format!("dst={FIP}")),
        "the ping's entry: {text}"
    );
    assert!(
        node0.contains("-A cali-fip-dnat -d 203.0.113.1/32"),
        "{text}"
    );
    let fabric = text
        .split("== ")
        .find(|s| s.starts_with("fabric"))
        .expect(&text);
    assert!(
        fabric.contains(&format!("{FIP}/32 via 198.18.0.10")),
        "{text}"
    );
    control.teardown().unwrap();
}

#[rstest]
#[case::nftables(BackendKind::Nftables, "n")]
#[case::nft_maps(BackendKind::NftMaps, "m")]
#[case::iptables(BackendKind::Iptables, "i")]
fn ipv6_floating_ip_reaches_the_pod_and_loops_back(#[case] kind: BackendKind, #[case] tag: &str) {
    let lab = lab(&format!("v{tag}"));
    let mut control = ControlPlane::new(lab.members(), backend(kind), ConntrackProfile::Calico);
    control.update(&cluster(&[FIP6], &[])).unwrap();

    let capture = EchoCapture::start(lab.netns("web"));
    assert_eq!(
        ping(lab.netns("ext"), FIP6).as_deref(),
        Some(FIP6),
        "the reply carries the floating IP as its source"
    );
    let seen = capture.finish();
    assert!(
        seen.contains(&format!(
            "{} > {WEB6}: ICMP6, echo request",
            ext(&lab, Family::V6)
        )),
        "the pod sees its own address as destination: {seen}"
    );
    assert_eq!(
        ping(lab.netns("web"), FIP6).as_deref(),
        Some(FIP6),
        "loopback"
    );

    control.update(&cluster(&[], &[FIP6])).unwrap();
    let capture = EchoCapture::start(lab.netns("web2"));
    assert_eq!(ping(lab.netns("ext"), FIP6).as_deref(), Some(FIP6));
    assert!(capture
        .finish()
        .contains(&format!("> {WEB26}: ICMP6, echo request")));
    control.teardown().unwrap();
}

/// A dataplane that, on node-1, holds its NAT apply until node-1's route to
/// the floating IP (Felix's device route) is in the kernel, for at most
/// `patience`, and records whether it came: Felix writes routes while its NAT
/// tables are still being applied; the harness's ordered mode writes routes
/// only after every NAT, so there the route cannot come however long one waits.
struct HoldsNatForTheRoute {
    inner: std::sync::Arc<dyn fip_harness::dataplane::Dataplane>,
    patience: Duration,
    route_came_during_nat: std::sync::Mutex<Option<bool>>,
}

impl fip_harness::dataplane::Dataplane for HoldsNatForTheRoute {
    fn apply(
        &self,
        node: &Netns,
        state: &fip_harness::dataplane::NodeNatState,
    ) -> Result<(), fip_harness::dataplane::DataplaneError> {
        if node.name().ends_with("node-1") && state.dnat.iter().any(|d| d.external == ip(FIP)) {
            let waited = std::time::Instant::now();
            let mut came = false;
            while !came && waited.elapsed() < self.patience {
                came = list_routes(node, &[])
                    .unwrap()
                    .iter()
                    .any(|r| r.destination == ip(FIP) && matches!(r.next, RouteNext::Device(_)));
                std::thread::sleep(Duration::from_millis(10));
            }
            *self.route_came_during_nat.lock().unwrap() = Some(came);
        }
        self.inner.apply(node, state)
    }
    fn remove(&self, node: &Netns) -> Result<(), fip_harness::dataplane::DataplaneError> {
        self.inner.remove(node)
    }
    fn dump(&self, node: &Netns) -> Result<String, fip_harness::dataplane::DataplaneError> {
        self.inner.dump(node)
    }
    fn read(
        &self,
        node: &Netns,
    ) -> Result<fip_harness::dataplane::NodeNatState, fip_harness::dataplane::DataplaneError> {
        self.inner.read(node)
    }
}

#[rstest]
// Waiting for a route that comes ends when it comes: the generous bound only
// keeps a broken run finite, so a loaded machine cannot fail the Felix case.
// In the ordered case the route is written after apply returns, so a short
// wait cannot hide it.
#[case::felix_writes_routes_while_nat_is_applied(UpdateOrder::Felix, true)]
#[case::ordered_writes_routes_after_nat(UpdateOrder::Ordered, false)]
fn routes_and_nat_in_the_update_order(#[case] order: UpdateOrder, #[case] during: bool) {
    let lab = lab(&format!("o{}", &order.to_string()[..1]));
    let dataplane = std::sync::Arc::new(HoldsNatForTheRoute {
        inner: backend(BackendKind::Nftables),
        patience: if during {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(1)
        },
        route_came_during_nat: std::sync::Mutex::new(None),
    });
    let mut control = ControlPlane::new(lab.members(), dataplane.clone(), ConntrackProfile::Calico)
        .with_order(order);
    control.update(&cluster(&[FIP], &[])).unwrap();
    control.update(&cluster(&[], &[FIP])).unwrap();
    assert_eq!(
        *dataplane.route_came_during_nat.lock().unwrap(),
        Some(during)
    );
    assert_eq!(ping(lab.netns("ext"), FIP).as_deref(), Some(FIP));
    control.teardown().unwrap();
}
