//! Root tests: labs built on the real kernel, checked with `ip -j` and ping.
//! Every lab here has a unique name and is torn down by its Drop even when an
//! assertion fails; each test checks afterwards that nothing of it remains.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use common::lab_view::{assert_gone, host_links, ip_json, routes};
use common::{lab_name, node, pod, use_test_run_dir};
use fip_harness::lab::netlink::Member;
use fip_harness::lab::netns::Netns;
use fip_harness::lab::spec::namespace_prefix;
use fip_harness::lab::{Family, Lab, LabSpec, NextHop, PodSpec};

use common::program;

fn sysctl(lab: &Lab, member: &str, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = lab
        .netns(member)
        .unwrap()
        .command(program("cat"))
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn addresses(lab: &Lab, member: &str, dev: &str) -> BTreeSet<String> {
    ip_json(lab, member, &["addr", "show", "dev", dev])[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// Routes as `dst [type] [via gw] [dev d]` strings.
fn ping(lab: &Lab, from: &str, to: IpAddr) -> bool {
    lab.netns(from)
        .unwrap()
        .command(program("ping"))
        .args(["-c1", "-W2", "-q", &to.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn three_nodes(name: &str, dual_stack: bool) -> LabSpec {
    let node_n = |n: usize| {
        let v4 = format!("198.19.0.{}/26", 64 * n);
        let v6 = format!("2001:db8:1::{:x}/122", 64 * n);
        let blocks = if dual_stack {
            vec![v4.as_str(), v6.as_str()]
        } else {
            vec![v4.as_str()]
        };
        node(&format!("node-{n}"), &blocks)
    };
    LabSpec {
        name: name.into(),
        nodes: (0..3).map(node_n).collect(),
        externals: vec!["client".into()],
        dual_stack,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_lab_is_wired_as_calico_wires_it() {
    use_test_run_dir();
    let before = host_links();
    let name = lab_name("w");
    {
        let mut lab = Lab::build(three_nodes(&name, true)).await.unwrap();
        let pods = [
            pod("pod-a", "node-0", &["198.19.0.1", "2001:db8:1::1"]),
            pod("pod-b", "node-1", &["198.19.0.65", "2001:db8:1::41"]),
            PodSpec::new("pod-c", "prod", "node-2", vec![ip("198.19.0.129")]),
        ];
        lab.add_pods(&pods).await.unwrap();
        let cali_a = lab.pod_interface("pod-a").unwrap().to_string();
        assert_eq!(
            cali_a,
            fip_harness::calico::veth_name_for_workload("default", "pod-a")
        );
        nodes_are_set_up_as_calico_sets_them(&lab, &cali_a);
        nodes_and_fabric_route_every_block(&lab, &cali_a);
        the_containment_check_finds_links_into_a_namespace(&lab).await;
        pods_have_their_addresses_and_calicos_gateways(&lab);
        traffic_crosses_nodes_in_both_families(&lab);
        nodes_hold_permanent_arp_entries_for_their_ipv4_pods(&lab, &cali_a);
        host_routes_are_replaced_and_removed_idempotently(&mut lab).await;
        later_blocks_are_routed_and_removed_pods_go(&mut lab, &name).await;
        lab.teardown().unwrap();
    }
    assert_gone(&name, &before);
}

/// Node: uplink addresses, forwarding, connection tracking, Calico's sysctls
/// on the workload side only, the kernel's port range.
fn nodes_are_set_up_as_calico_sets_them(lab: &Lab, cali_a: &str) {
    assert_eq!(
        addresses(lab, "node-0", "eth0"),
        BTreeSet::from(["198.18.0.10/24".into(), "2001:db8:ff::a/64".into()])
    );
    assert_eq!(sysctl(lab, "node-0", "net.ipv4.ip_forward"), "1");
    // Every node tracks connections for its whole life, NAT rules or not
    // (lab/tracking.rs); no other member needs it.
    for member in ["node-0", "node-1", "node-2", "fabric"] {
        let out = lab
            .netns(member)
            .unwrap()
            .command(program("nft"))
            .args(["list", "table", "inet", "fiph-lab-tracking"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listing.contains("ct state invalid counter"),
            member != "fabric",
            "{member}: {out:?}"
        );
    }
    assert_eq!(sysctl(lab, "node-0", "net.ipv6.conf.all.forwarding"), "1");
    assert_eq!(
        sysctl(lab, "node-0", &format!("net.ipv4.conf.{cali_a}.proxy_arp")),
        "1"
    );
    assert_eq!(
        sysctl(lab, "node-0", &format!("net.ipv6.conf.{cali_a}.proxy_ndp")),
        "1"
    );
    assert_eq!(
        sysctl(
            lab,
            "node-0",
            &format!("net.ipv4.neigh.{cali_a}.proxy_delay")
        ),
        "0"
    );
    // The rest of Calico's `configureSysctls` for a dual-stack pod.
    for (setting, value) in [
        (format!("net.ipv4.conf.{cali_a}.route_localnet"), "1"),
        (format!("net.ipv4.conf.{cali_a}.forwarding"), "1"),
        (format!("net.ipv6.conf.{cali_a}.accept_ra"), "0"),
        (format!("net.ipv6.conf.{cali_a}.accept_dad"), "0"),
        (format!("net.ipv6.conf.{cali_a}.forwarding"), "1"),
    ] {
        assert_eq!(sysctl(lab, "node-0", &setting), value, "{setting}");
    }
    assert_eq!(sysctl(lab, "node-0", "net.ipv4.conf.eth0.proxy_arp"), "0");
    assert_eq!(
        sysctl(lab, "node-0", "net.ipv4.conf.eth0.route_localnet"),
        "0"
    );
    assert_eq!(sysctl(lab, "node-0", "net.ipv6.conf.eth0.accept_ra"), "1");
    assert_eq!(sysctl(lab, "node-0", "net.ipv6.conf.eth0.proxy_ndp"), "0");
    // An IPv4-only pod gets only the IPv4 settings, and accept_ra.
    let cali_c = lab.pod_interface("pod-c").unwrap().to_string();
    for (setting, value) in [
        (format!("net.ipv4.conf.{cali_c}.proxy_arp"), "1"),
        (format!("net.ipv6.conf.{cali_c}.proxy_ndp"), "0"),
        (format!("net.ipv6.conf.{cali_c}.accept_ra"), "0"),
    ] {
        assert_eq!(sysctl(lab, "node-2", &setting), value, "{setting}");
    }
    assert_eq!(
        sysctl(lab, "node-0", "net.ipv4.conf.all.send_redirects"),
        "0"
    );
    // The kernel's own ports (BIRD's BGP sessions) start where the seeded
    // probe ports end, so a probe's bind never meets them.
    for member in ["node-0", "fabric"] {
        let range = sysctl(lab, member, "net.ipv4.ip_local_port_range");
        assert_eq!(
            range.split_whitespace().collect::<Vec<_>>(),
            ["40000", "60999"],
            "{member}"
        );
    }
}

/// Node routes: own block blackholed, others via their node, pod via cali;
/// the fabric routes every block via its node.
fn nodes_and_fabric_route_every_block(lab: &Lab, cali_a: &str) {
    let v4 = routes(lab, "node-0", "-4");
    for expected in [
        "default via 198.18.0.1 dev eth0".to_string(),
        "198.19.0.0/26 blackhole".into(),
        "198.19.0.64/26 via 198.18.0.11 dev eth0".into(),
        "198.19.0.128/26 via 198.18.0.12 dev eth0".into(),
        format!("198.19.0.1 dev {cali_a}"),
    ] {
        assert!(v4.contains(&expected), "node-0 lacks {expected}: {v4:#?}");
    }
    let v6 = routes(lab, "node-0", "-6");
    for expected in [
        "2001:db8:1::40/122 via 2001:db8:ff::b dev eth0".to_string(),
        format!("2001:db8:1::1 dev {cali_a}"),
    ] {
        assert!(v6.contains(&expected), "node-0 lacks {expected}: {v6:#?}");
    }
    // Fabric: every block via its node.
    let fabric = routes(lab, "fabric", "-4");
    assert!(
        fabric.contains("198.19.0.64/26 via 198.18.0.11 dev br-nodes"),
        "{fabric:#?}"
    );
    assert!(
        routes(lab, "fabric", "-6").contains("2001:db8:1::80/122 via 2001:db8:ff::c dev br-nodes")
    );
}

/// The containment check finds links into a namespace: none into the host,
/// and (using the fabric as a stand-in host) node-0's uplink.
async fn the_containment_check_finds_links_into_a_namespace(lab: &Lab) {
    let host = std::fs::File::open("/proc/self/ns/net").unwrap();
    let check = fip_harness::lab::safety::links_into_host;
    let node0 = Member {
        netns: lab.netns("node-0").unwrap().clone(),
        nl: lab.netlink("node-0").unwrap().clone(),
    };
    assert!(check(&node0, &host).await.unwrap().is_empty());
    let into_fabric = check(&node0, &lab.netns("fabric").unwrap().file().unwrap())
        .await
        .unwrap();
    assert_eq!(into_fabric.len(), 1, "{into_fabric:?}");
    assert!(into_fabric[0].starts_with("link eth0 "), "{into_fabric:?}");
}

/// Pod: its /32 and /128 on eth0, default routes via Calico's gateways.
fn pods_have_their_addresses_and_calicos_gateways(lab: &Lab) {
    assert_eq!(
        addresses(lab, "pod-a", "eth0"),
        BTreeSet::from(["198.19.0.1/32".into(), "2001:db8:1::1/128".into()])
    );
    assert!(routes(lab, "pod-a", "-4").contains("default via 169.254.1.1 dev eth0"));
    assert!(routes(lab, "pod-a", "-6").contains("default via fe80::ecee:eeff:feee:eeee dev eth0"));
    // The harness's choice, not Calico's: a pod's ICMP errors are not
    // rate-limited, so whether a probe meets its "port unreachable" does not
    // depend on how fast earlier probes came (docs/fidelity.md).
    for pod in ["pod-a", "pod-c"] {
        assert_eq!(sysctl(lab, pod, "net.ipv4.icmp_ratelimit"), "0", "{pod}");
        assert_eq!(sysctl(lab, pod, "net.ipv6.icmp.ratelimit"), "0", "{pod}");
    }
}

/// Traffic: pods across nodes, both families; an external host to a pod.
fn traffic_crosses_nodes_in_both_families(lab: &Lab) {
    assert!(ping(lab, "pod-a", ip("198.19.0.65")), "pod-a -> pod-b v4");
    assert!(
        ping(lab, "pod-a", ip("2001:db8:1::41")),
        "pod-a -> pod-b v6"
    );
    assert!(ping(lab, "pod-c", ip("198.19.0.1")), "pod-c -> pod-a");
    assert!(ping(lab, "client", ip("198.19.0.65")), "client -> pod-b");
    assert!(
        ping(lab, "client", ip("2001:db8:1::1")),
        "client -> pod-a v6"
    );
}

/// Felix's static ARP entries (felix/routetable/route_table.go
/// `addStaticARPEntry`): after traffic, the node's entry for its IPv4 pod is
/// still PERMANENT with the pod's eth0 MAC (ARP never replaced it); IPv6
/// has none (Felix makes ARP entries for IPv4 only).
fn nodes_hold_permanent_arp_entries_for_their_ipv4_pods(lab: &Lab, cali_a: &str) {
    let pod_mac = ip_json(lab, "pod-a", &["link", "show", "dev", "eth0"])[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let entries = ip_json(
        lab,
        "node-0",
        &["-4", "neigh", "show", "nud", "all", "dev", cali_a],
    );
    let entry = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dst"] == "198.19.0.1")
        .unwrap_or_else(|| panic!("no ARP entry for pod-a on {cali_a}: {entries}"));
    assert_eq!(entry["lladdr"], pod_mac.as_str(), "{entry}");
    assert_eq!(entry["state"], serde_json::json!(["PERMANENT"]), "{entry}");
    let v6 = ip_json(
        lab,
        "node-0",
        &["-6", "neigh", "show", "nud", "permanent", "dev", cali_a],
    );
    assert_eq!(v6, serde_json::json!([]), "{v6}");
}

/// A floating-IP style route on the fabric: replace is idempotent, removal too.
async fn host_routes_are_replaced_and_removed_idempotently(lab: &mut Lab) {
    let fip = ip("203.0.113.5");
    let via_node1 = NextHop::Via(lab.node_uplink("node-1", Family::V4).unwrap().unwrap());
    lab.replace_host_route("fabric", fip, &via_node1)
        .await
        .unwrap();
    lab.replace_host_route("fabric", fip, &via_node1)
        .await
        .unwrap();
    assert!(routes(lab, "fabric", "-4").contains("203.0.113.5 via 198.18.0.11 dev br-nodes"));
    let cali_b = lab.pod_interface("pod-b").unwrap().to_string();
    lab.replace_host_route("node-1", fip, &NextHop::Device(cali_b.clone()))
        .await
        .unwrap();
    assert!(routes(lab, "node-1", "-4").contains(&format!("203.0.113.5 dev {cali_b}")));
    lab.remove_host_route("fabric", fip).await.unwrap();
    lab.remove_host_route("fabric", fip).await.unwrap();
    assert!(!routes(lab, "fabric", "-4")
        .iter()
        .any(|r| r.starts_with("203.0.113.5")));
}

/// Blocks handed out later are routed too; removing a pod removes its
/// namespace and its node-side link.
async fn later_blocks_are_routed_and_removed_pods_go(lab: &mut Lab, name: &str) {
    lab.add_node_blocks("node-2", &["198.19.1.0/26".parse().unwrap()])
        .await
        .unwrap();
    assert!(routes(lab, "node-0", "-4").contains("198.19.1.0/26 via 198.18.0.12 dev eth0"));
    assert!(routes(lab, "fabric", "-4").contains("198.19.1.0/26 via 198.18.0.12 dev br-nodes"));

    lab.remove_pod("pod-c").await.unwrap();
    assert!(!Netns::list_with_prefix(&namespace_prefix(name))
        .iter()
        .any(|n| n.ends_with("-pod-c")));
    assert!(!routes(lab, "node-2", "-4")
        .iter()
        .any(|r| r.starts_with("198.19.0.129")));
}

fn small(name: &str, nodes: usize) -> LabSpec {
    LabSpec {
        name: name.into(),
        nodes: (0..nodes)
            .map(|i| node(&format!("node-{i}"), &[&format!("198.19.{i}.0/26")]))
            .collect(),
        externals: vec!["client".into()],
        dual_stack: false,
    }
}

fn one_pod_per_node(nodes: usize) -> Vec<PodSpec> {
    (0..nodes)
        .map(|i| {
            pod(
                &format!("pod-{i}"),
                &format!("node-{i}"),
                &[&format!("198.19.{i}.1")],
            )
        })
        .collect()
}

fn link_names(lab: &Lab, member: &str) -> BTreeSet<String> {
    ip_json(lab, member, &["link"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_labs_with_the_same_addresses_do_not_see_each_other() {
    use_test_run_dir();
    let before = host_links();
    let (name_a, name_b) = (lab_name("ta"), lab_name("tb"));
    {
        let (a, b) = tokio::join!(Lab::build(small(&name_a, 2)), Lab::build(small(&name_b, 2)));
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        a.add_pods(&one_pod_per_node(2)).await.unwrap();
        b.add_pods(&one_pod_per_node(2)).await.unwrap();
        let ns_a: BTreeSet<_> = a.namespaces().iter().cloned().collect();
        assert!(b.namespaces().iter().all(|n| !ns_a.contains(n)));
        // Each fabric holds only its own lab's ports.
        let expected: BTreeSet<String> = ["lo", "br-nodes", "br-ext", "n0", "n1", "x0"]
            .map(String::from)
            .into();
        assert_eq!(link_names(&a, "fabric"), expected);
        assert_eq!(link_names(&b, "fabric"), expected);
        assert!(ping(&a, "pod-0", ip("198.19.1.1")));
        assert!(ping(&b, "pod-0", ip("198.19.1.1")));
        // Tearing one down leaves the other working.
        a.teardown().unwrap();
        assert_gone(&name_a, &before);
        assert!(ping(&b, "pod-1", ip("198.19.0.1")), "lab b still works");
        assert!(ping(&b, "client", ip("198.19.1.1")));
        b.teardown().unwrap();
    }
    assert_gone(&name_b, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_removes_only_the_named_lab_even_when_another_name_extends_it() {
    use_test_run_dir();
    let before = host_links();
    let short = lab_name("d");
    let long = format!("{short}1");
    {
        let mut target = Lab::build(small(&short, 1)).await.unwrap();
        let mut other = Lab::build(small(&long, 1)).await.unwrap();
        target.add_pods(&one_pod_per_node(1)).await.unwrap();
        other.add_pods(&one_pod_per_node(1)).await.unwrap();
        let other_namespaces = other.namespaces().to_vec();

        let report = fip_harness::lab::down::down_lab(&short);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let mut removed = report.removed_namespaces.clone();
        removed.sort();
        let mut expected = target.namespaces().to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        assert_eq!(
            Netns::list_with_prefix(&namespace_prefix(&short)),
            Vec::<String>::new()
        );
        assert!(!fip_harness::lab::registry::record_path(&short).exists());
        // The lab whose name extends the removed one is untouched and works.
        for ns in &other_namespaces {
            assert!(
                fip_harness::lab::netns::pin_path(ns).exists(),
                "{ns} was removed"
            );
        }
        assert!(fip_harness::lab::registry::record_path(&long).exists());
        assert!(ping(&other, "client", ip("198.19.0.1")));
        // Tearing down an already removed lab is not an error.
        target.teardown().unwrap();
        other.teardown().unwrap();
    }
    assert_gone(&short, &before);
    assert_gone(&long, &before);
}

/// Roles for the isolated SIGKILL test: the test binary re-runs itself in a
/// private mount namespace with one of these in FIPH_CHILD.
#[test]
#[ignore = "helper process for sigkilled_bring_up_leaves_nothing_after_down_all"]
fn child_role() {
    match std::env::var("FIPH_CHILD").as_deref() {
        Ok("bringup") => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let mut lab = Lab::build(small("killme", 10)).await.unwrap();
                // Keep wiring pods until killed.
                for k in 0..60 {
                    let pods: Vec<PodSpec> = (0..10)
                        .map(|i| {
                            pod(
                                &format!("p{k}-{i}"),
                                &format!("node-{i}"),
                                &[&format!("198.19.{i}.{}", k + 1)],
                            )
                        })
                        .collect();
                    lab.add_pods(&pods).await.unwrap();
                }
                std::mem::forget(lab);
                std::thread::sleep(std::time::Duration::from_secs(60));
            });
        }
        Ok("downall") => {
            let report = fip_harness::lab::down::down_all(fip_harness::lab::down::Owner::Ignore);
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            println!("removed {}", report.removed_namespaces.len());
        }
        _ => {}
    }
}

#[test]
fn sigkilled_bring_up_leaves_nothing_after_down_all() {
    let before = host_links();
    let exe = std::env::current_exe().unwrap();
    let run = tempfile::tempdir().unwrap();
    // A private mount namespace with its own /run/netns and run dir, so
    // `down --all` here cannot touch anybody else's labs.
    let script = r#"
        set -e
        mount -t tmpfs fiph-test /run/netns
        FIPH_CHILD=bringup "$EXE" --exact child_role --ignored --nocapture >/dev/null 2>&1 &
        pid=$!
        i=0
        while [ "$(ls /run/netns | wc -l)" -lt 30 ] && [ $i -lt 1000 ]; do sleep 0.005; i=$((i+1)); done
        kill -9 $pid
        wait $pid || true
        echo "pinned_before=$(ls /run/netns | wc -l) records_before=$(ls "$FIP_HARNESS_RUN_DIR" | grep -c '[.]json$')"
        FIPH_CHILD=downall "$EXE" --exact child_role --ignored --nocapture >/dev/null 2>&1
        echo "pinned_after=$(ls /run/netns | wc -l) records_after=$(ls "$FIP_HARNESS_RUN_DIR" | wc -l)"
    "#;
    let out = Command::new(program("unshare"))
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("EXE", &exe)
        .env(fip_harness::lab::registry::RUN_DIR_ENV, run.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |key: &str| -> usize {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing in {stdout}"))
            .parse()
            .unwrap()
    };
    assert!(
        value("pinned_before") >= 30,
        "the kill came during bring-up: {stdout}"
    );
    assert_eq!(value("records_before"), 1, "{stdout}");
    assert_eq!(value("pinned_after"), 0, "{stdout}");
    assert_eq!(value("records_after"), 0, "{stdout}");
    let gained: Vec<_> = host_links().difference(&before).cloned().collect();
    assert!(gained.is_empty(), "host namespace gained links {gained:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_lab_outlives_its_value_and_down_removes_it_by_name() {
    use_test_run_dir();
    let before = host_links();
    let name = lab_name("k");
    let mut lab = Lab::build(small(&name, 2)).await.unwrap();
    lab.add_pods(&one_pod_per_node(2)).await.unwrap();
    let namespaces = lab.namespaces().to_vec();
    lab.keep();
    // Still wired with no Lab value: reach a pod through its pinned namespace.
    let pod = Netns::open(&fip_harness::lab::spec::namespace_name(&name, "pod-0")).unwrap();
    let reached = pod
        .command(program("ping"))
        .args(["-c1", "-W2", "-q", "198.19.1.1"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    let listed = fip_harness::lab::registry::list_records()
        .into_iter()
        .flatten()
        .any(|r| r.name == name && r.pods.len() == 2);
    let report = fip_harness::lab::down::down_lab(&name);
    assert!(reached, "kept lab still forwards");
    assert!(listed, "kept lab is in the registry");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.removed_namespaces.len(), namespaces.len());
    assert_gone(&name, &before);
}
