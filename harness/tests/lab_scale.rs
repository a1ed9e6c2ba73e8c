//! Root test: a lab's pods keep no file descriptor once wired, so a lab of
//! many pods fits a small open-file limit (each pod used to keep its
//! namespace file and a netlink socket, and 10,000 pods hit the limit), and
//! its teardown, which holds namespaces open while it removes their pins,
//! stays within that limit and lets go of them all. The
//! only test of this binary: it lowers the process's RLIMIT_NOFILE, which
//! would starve tests running beside it.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{lab_name, node, program, use_test_run_dir};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::spec::namespace_prefix;
use fip_harness::lab::{Lab, LabSpec, PodSpec};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

const PODS_PER_NODE: u32 = 300;
const FD_LIMIT: u64 = 256;

/// Pod `k` of node `i`: the k+1th address of the node's /23.
fn pods(node: u32) -> Vec<PodSpec> {
    (0..PODS_PER_NODE)
        .map(|k| {
            let base = u32::from(Ipv4Addr::new(198, 19, 2 * node as u8, 0));
            let address = IpAddr::V4(Ipv4Addr::from(base + k + 1));
            PodSpec::new(
                &format!("pod-{node}-{k}"),
                "default",
                &format!("node-{node}"),
                vec![address],
            )
        })
        .collect()
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Descriptors of namespaces this process holds: files on the namespace
/// file system (nsfs), whatever path they were opened by (a pin unmounted
/// since reads back as "/").
fn open_namespaces() -> usize {
    use std::os::unix::fs::MetadataExt;
    let nsfs = std::fs::metadata("/proc/self/ns/net").unwrap().dev();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::metadata(entry.path()).ok())
        .filter(|file| file.dev() == nsfs)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_pods_fit_in_256_descriptors() {
    use_test_run_dir();
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, FD_LIMIT.min(hard), hard).unwrap();
    let name = lab_name("fd");
    let spec = LabSpec {
        name: name.clone(),
        nodes: vec![
            node("node-0", &["198.19.0.0/23"]),
            node("node-1", &["198.19.2.0/23"]),
        ],
        externals: vec![],
        dual_stack: false,
    };
    let before = open_descriptors();
    let namespaces_before = open_namespaces();
    {
        let mut lab = Lab::build(spec).await.expect("build lab");
        let with_nodes = open_descriptors();
        let all: Vec<PodSpec> = pods(0).into_iter().chain(pods(1)).collect();
        lab.add_pods(&all).await.expect("wire 600 pods");
        // No pod holds a descriptor: the count is the nodes' as before the pods.
        assert_eq!(open_descriptors(), with_nodes);
        assert!(with_nodes - before < 20, "{before} -> {with_nodes}");

        // The last pod of each node is wired: its address, and its node's
        // route to it, reached by name alone.
        for node in 0..2 {
            let last = &pods(node)[PODS_PER_NODE as usize - 1];
            let out = lab
                .netns(&last.name)
                .unwrap()
                .command(program("ip"))
                .args(["-4", "-o", "addr", "show", "dev", "eth0"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("{}/32", last.addresses[0])),
                "{text}"
            );
            let out = lab
                .netns(&format!("node-{node}"))
                .unwrap()
                .command(program("ip"))
                .args(["-4", "route", "show", &last.addresses[0].to_string()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(&format!("dev {}", last.interface)), "{text}");
        }
        lab.teardown().expect("teardown");
        // The teardown held namespaces open while it removed their pins
        // (so that the kernel frees them in one batch): it let go of all.
        assert_eq!(open_namespaces(), namespaces_before, "namespaces held");
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let left = Netns::list_with_prefix(&namespace_prefix(&name));
    assert!(left.is_empty(), "left behind: {left:?}");
}
