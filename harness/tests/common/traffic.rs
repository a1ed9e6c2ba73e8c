//! A real lab with one floating IP, for the traffic engine's tests: node
//! `node`, external host `client`, pods `pod` and `pod2` on the node, and the
//! floating IPs (v4 and v6) on `pod`, programmed by the control plane with the
//! nftables backend as a run programs them (NAT on the node, route on the fabric).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fip_harness::calico::{IpNatPair, WorkloadEndpoint};
use fip_harness::control::{ClusterState, ConntrackProfile, ControlPlane, LabMembers};
use fip_harness::dataplane::{backend, BackendKind};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::{Family, Lab, LabSpec, PodSpec};
use fip_harness::traffic::{EndpointSpec, TrafficEngine};

use super::{floating_ip_pools, node, program, use_test_run_dir};

pub const FLOATING_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const FLOATING_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf1, 0, 0, 0, 0, 0x10);
pub const POD_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 5);
pub const POD_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 5);
/// A second pod on the same node, for moves.
pub const POD2_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 6);
pub const POD2_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 6);

pub struct FipLab {
    pub lab: Lab,
    /// The client's IPv4 address.
    pub client_v4: IpAddr,
    _control: ControlPlane,
}

fn pods() -> Vec<PodSpec> {
    vec![
        PodSpec::new("pod", "default", "node", vec![POD_V4.into(), POD_V6.into()]),
        PodSpec::new(
            "pod2",
            "default",
            "node",
            vec![POD2_V4.into(), POD2_V6.into()],
        ),
    ]
}

/// `pod` holds both floating IPs.
fn cluster() -> ClusterState {
    let endpoints = pods()
        .into_iter()
        .map(|pod| WorkloadEndpoint {
            ip_nats: if pod.name == "pod" {
                vec![
                    IpNatPair {
                        internal: POD_V4.into(),
                        external: FLOATING_V4.into(),
                    },
                    IpNatPair {
                        internal: POD_V6.into(),
                        external: FLOATING_V6.into(),
                    },
                ]
            } else {
                vec![]
            },
            namespace: pod.namespace,
            pod: pod.name,
            node: pod.node,
            interface: pod.interface,
            ifindex: None,
            addresses: pod.addresses,
        })
        .collect();
    ClusterState {
        endpoints,
        felix_floating_ips: true,
        pools: floating_ip_pools(),
    }
}

impl FipLab {
    /// Build lab `name` and program the floating IPs. Call inside a tokio runtime.
    pub async fn build(name: &str) -> FipLab {
        use_test_run_dir();
        let mut lab = Lab::build(LabSpec {
            name: name.to_string(),
            nodes: vec![node("node", &["198.19.0.0/26", "2001:db8:1::/122"])],
            externals: vec!["client".into()],
            dual_stack: true,
        })
        .await
        .expect("build lab");
        lab.add_pods(&pods()).await.expect("wire pods");
        let members = LabMembers::of(&lab).expect("lab members");
        let mut control = ControlPlane::new(
            std::sync::Arc::new(members),
            backend(BackendKind::Nftables),
            ConntrackProfile::Calico,
        );
        control
            .update(&cluster())
            .expect("program the floating IPs");
        let client_v4 = lab.external_address("client", Family::V4).unwrap().unwrap();
        FipLab {
            lab,
            client_v4,
            _control: control,
        }
    }

    pub fn netns(&self, member: &str) -> Netns {
        self.lab.netns(member).expect("lab member").clone()
    }

    /// The lab with a traffic engine: `pod` (its IPv4 and IPv6 addresses,
    /// captured on eth0) and the external `client`.
    pub async fn with_engine(name: &str) -> (FipLab, TrafficEngine) {
        let bed = FipLab::build(name).await;
        let engine = TrafficEngine::new(name);
        engine
            .add_endpoint(EndpointSpec::pod(
                "pod",
                bed.netns("pod"),
                vec![IpAddr::V4(POD_V4), IpAddr::V6(POD_V6)],
                "eth0",
            ))
            .await
            .expect("pod endpoint");
        engine
            .add_endpoint(EndpointSpec::external("client", bed.netns("client")))
            .await
            .expect("client endpoint");
        (bed, engine)
    }

    /// Make the IPv4 floating IP stateless towards `pod` (untracked, so the
    /// control plane's DNAT is skipped; destination rewritten on the way in,
    /// source on the way out), so that a later call moves even a running flow
    /// at once: a stand-in for a move plus conntrack cleanup, to exercise streams.
    pub fn stateless_floating_ip_to(&self, pod: Ipv4Addr) {
        let client = self.client_v4;
        self.nft(&format!(
            "table ip fiph_fip
             delete table ip fiph_fip
             table ip fiph_fip {{
              chain raw {{
               type filter hook prerouting priority raw;
               ip daddr {FLOATING_V4} notrack
               ip saddr {{ {POD_V4}, {POD2_V4} }} notrack
              }}
              chain pre {{
               type filter hook prerouting priority mangle;
               ip daddr {FLOATING_V4} ip daddr set {pod}
              }}
              chain post {{
               type filter hook postrouting priority mangle;
               ip saddr {pod} ip daddr {client} ip saddr set {FLOATING_V4}
              }}
             }}
"
        ));
    }

    /// Load an nft ruleset in the node's namespace.
    fn nft(&self, ruleset: &str) {
        use std::io::Write;
        let mut child = self
            .netns("node")
            .command(program("nft"))
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ruleset.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The node's conntrack table. /proc/net follows the process's main
    /// thread, so read the namespace thread's own view.
    pub fn node_conntrack(&self) -> String {
        self.netns("node")
            .run(|| std::fs::read_to_string("/proc/thread-self/net/nf_conntrack"))
            .unwrap()
            .expect("read /proc/thread-self/net/nf_conntrack")
    }
}
