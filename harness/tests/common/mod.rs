//! A real [`Lab`] for synchronous root tests: the lab with the runtime its
//! netlink connections live on, torn down on drop (even when a test fails).
//! Registry records go to a directory of this test process, so parallel test
//! runs and other people's labs never see them.

#![allow(dead_code)]

pub mod browser;
pub mod capture;
pub mod lab_view;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use fip_harness::calico::IpPool;

use fip_harness::control::LabMembers;
use fip_harness::lab::netns::Netns;
use fip_harness::lab::{Lab, LabSpec, NodeSpec, PodSpec};

pub fn use_test_run_dir() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // In ci/test-runner's user namespace (a normal user's run), what the
        // kernel refuses there is one line here, before any lab.
        let features = fip_harness::lab::rootless::probe::KernelFeature::ALL;
        if let Some(refusal) = fip_harness::lab::rootless::probe::first_refusal(&features) {
            panic!("{refusal}");
        }
        // A new directory, not one named after the pid: a directory left by an
        // earlier run (maybe root's) whose pid this process now has would
        // not be ours to write.
        let dir = tempfile::Builder::new()
            .prefix("fiph-test-run-")
            .tempdir()
            .expect("a run directory for the test's labs")
            .keep();
        std::env::set_var(fip_harness::lab::registry::RUN_DIR_ENV, dir);
    });
}

/// A lab name unique to this test process: `<tag><pid>` (tag at most 7 characters).
pub fn lab_name(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

/// A node holding IPAM blocks (routed to it on the fabric and the other nodes).
pub fn node(name: &str, blocks: &[&str]) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
    }
}

/// A pod in Kubernetes namespace `default`.
pub fn pod(name: &str, node: &str, addresses: &[&str]) -> PodSpec {
    PodSpec::new(
        name,
        "default",
        node,
        addresses.iter().map(|a| a.parse().unwrap()).collect(),
    )
}

pub struct TestLab {
    // Declared first so it goes before the runtime its connections run on.
    pub lab: Lab,
    rt: tokio::runtime::Runtime,
}

impl TestLab {
    /// Build a dual-stack lab of `nodes` and `externals`, then wire `pods`.
    pub fn build(name: &str, nodes: Vec<NodeSpec>, externals: &[&str], pods: &[PodSpec]) -> Self {
        use_test_run_dir();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let spec = LabSpec {
            name: name.to_string(),
            nodes,
            externals: externals.iter().map(|x| x.to_string()).collect(),
            dual_stack: true,
        };
        let lab = rt.block_on(async {
            let mut lab = Lab::build(spec).await.expect("build lab");
            lab.add_pods(pods).await.expect("wire pods");
            lab
        });
        TestLab { lab, rt }
    }

    /// Tear the lab down now (what dropping it does), with the errors.
    pub fn teardown(self) -> Result<(), fip_harness::lab::LabError> {
        let TestLab { lab, rt } = self;
        let result = lab.teardown();
        drop(rt);
        result
    }

    /// Run lab work (an async `Lab` method) to completion.
    pub fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.rt.block_on(work)
    }

    pub fn netns(&self, member: &str) -> &Netns {
        self.lab.netns(member).expect("lab member")
    }

    /// The control plane's view of the lab.
    pub fn members(&self) -> Arc<LabMembers> {
        Arc::new(LabMembers::of(&self.lab).expect("lab members"))
    }
}

/// The floating-IP pools the tests use: 203.0.113.0/24 and 2001:db8:f1::/64,
/// exported to BGP unencapsulated (so their floating IPs are advertised).
pub fn floating_ip_pools() -> Vec<IpPool> {
    ["203.0.113.0/24", "2001:db8:f1::/64"]
        .iter()
        .map(|cidr| IpPool::plain(cidr, cidr.parse().unwrap(), 26))
        .collect()
}

/// The repository's root (scenarios/ and fixtures/ live there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scenario named `name` whose steps follow three pods (`web` holding
/// 203.0.113.10 and `peer` on node-a, `far` on node-b) in a file in `dir`.
pub fn three_pod_scenario(dir: &Path, name: &str, steps: &str) -> String {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let text = format!(
        r#"name: {name}
cluster:
  cni: FIXTURES/cni/calico-config-floating-ips-on.yaml
  felix:
    floatingIPs: Enabled
  pools:
    - manifest: FIXTURES/pools/floating-ips.yaml
  nodes: [node-a, node-b]
  externals: [client]
steps:
  - createPod: {{name: web, node: node-a, annotations: {{cni.projectcalico.org/floatingIPs: '["203.0.113.10"]'}}}}
  - createPod: {{name: peer, node: node-a}}
  - createPod: {{name: far, node: node-b}}
{steps}"#
    )
    .replace("FIXTURES", fixtures.to_str().unwrap());
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_owned()
}

/// Run the built `fip-harness` from the repository's root, as a user would.
pub fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run fip-harness")
}

/// Where an external program is, or a test failure naming the package that
/// provides it (never a bare "No such file or directory").
pub fn program(name: &str) -> PathBuf {
    fip_harness::programs::require_program(name).unwrap_or_else(|e| panic!("{e}"))
}
