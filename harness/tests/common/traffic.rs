//! A real lab with one floating IP, for the traffic engine's tests: node
//! `node`, external host `client`, pods `pod` and `pod2` on the node, and the
//! floating IPs (v4 and v6) on `pod`, programmed by the control plane with the
//! nftables backend as a run programs them (NAT on the node, route on the
//! fabric), under the strict conntrack profile (a move ends running flows).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fip_harness::calico::{IpNatPair, WorkloadEndpoint};
use fip_harness::control::{ClusterState, ConntrackProfile, ControlPlane, LabMembers};
use fip_harness::dataplane::{backend, BackendKind};
use fip_harness::lab::netns::Netns;
use fip_harness::lab::{Family, Lab, LabSpec, PodSpec};
use fip_harness::traffic::{EndpointSpec, TrafficEngine};

use super::{floating_ip_pools, node, use_test_run_dir};

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
    control: ControlPlane,
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

/// `holder` holds both floating IPs, at its addresses of each family.
fn cluster(holder: &str) -> ClusterState {
    let endpoints = pods()
        .into_iter()
        .map(|pod| WorkloadEndpoint {
            ip_nats: if pod.name == holder {
                let internal =
                    |v6: bool| *pod.addresses.iter().find(|a| a.is_ipv6() == v6).unwrap();
                vec![
                    IpNatPair {
                        internal: internal(false),
                        external: FLOATING_V4.into(),
                    },
                    IpNatPair {
                        internal: internal(true),
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
        calico: Default::default(),
        pools: floating_ip_pools(),
        node_blocks: Default::default(),
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
            ConntrackProfile::Strict,
        );
        control
            .update(&cluster("pod"))
            .expect("program the floating IPs");
        let client_v4 = lab.external_address("client", Family::V4).unwrap().unwrap();
        FipLab {
            lab,
            client_v4,
            control,
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

    /// Move both floating IPs to `pod` as the control plane moves them in a
    /// run: Felix's DNAT and SNAT (conntrack NAT), the device route, and then,
    /// under the strict profile this lab runs, the deletion of every flow to
    /// the floating IPs, so a running flow moves at once. Conntrack NAT works
    /// in a user namespace, where some kernels refuse a stateless rewrite
    /// (an nft payload write such as `ip daddr set`): see README, Without root.
    pub fn move_floating_ips_to(&mut self, pod: &str) {
        self.control
            .update(&cluster(pod))
            .expect("move the floating IPs");
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
