//! What both halves of `bench dataplane` (the backends' figures and the
//! BIRD moves) share: the options, the lab of two nodes, and the cluster of
//! N floating IPs with its textually last one as the target.

use std::net::{IpAddr, Ipv4Addr};

use crate::calico::{veth_name_for_workload, IpNatPair, IpPool, WorkloadEndpoint};
use crate::control::ClusterState;
use crate::lab::{Lab, LabSpec, NodeSpec, PodSpec};

/// What `bench dataplane` measures (the CLI's flags of the same names).
#[derive(Debug, Clone)]
pub struct Options {
    /// Floating IPs on the loaded node.
    pub count: u32,
    /// Pings per RTT figure (each a new flow, so each goes through the NAT rules).
    pub pings: usize,
    /// Moves per move figure (median and p99 are reported).
    pub moves: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            count: 10_000,
            pings: 40,
            moves: 30,
        }
    }
}

pub(super) fn fip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 64, 0)) + i))
}

pub(super) fn internal(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(198, 19, 128, 0)) + i,
    ))
}

/// Two nodes holding the first two /26 of the pod pool, an external host
/// `ext`, and the pods `web` (node-0) and `web2` (node-1).
pub(super) async fn build_lab(name: String, pods: bool) -> super::Result<Lab> {
    let node = |name: &str, block: &str| -> super::Result<NodeSpec> {
        Ok(NodeSpec {
            name: name.into(),
            blocks: vec![block.parse()?],
        })
    };
    let mut lab = Lab::build(LabSpec {
        name,
        nodes: vec![
            node("node-0", "198.19.0.0/26")?,
            node("node-1", "198.19.0.64/26")?,
        ],
        externals: vec!["ext".into()],
        dual_stack: true,
    })
    .await?;
    if pods {
        lab.add_pods(&[
            PodSpec::new("web", "default", "node-0", vec!["198.19.0.5".parse()?]),
            PodSpec::new("web2", "default", "node-1", vec!["198.19.0.70".parse()?]),
        ])
        .await?;
    }
    Ok(lab)
}

/// The textually last floating IP: the last rule Felix's sorted chain reaches.
pub(super) fn target_index(count: u32) -> u32 {
    (0..count).max_by_key(|i| fip(*i).to_string()).unwrap_or(0)
}

pub(super) fn cluster(count: u32, on_web2: bool, web_cali: &str) -> ClusterState {
    let target = target_index(count);
    let mut endpoints: Vec<WorkloadEndpoint> = (0..count)
        .filter(|i| *i != target)
        .map(|i| WorkloadEndpoint {
            namespace: "default".into(),
            pod: format!("filler-{i}"),
            node: "node-0".into(),
            // Fillers share the real pod's interface: their device routes need a link.
            interface: web_cali.to_string(),
            ifindex: None,
            addresses: vec![internal(i)],
            ip_nats: vec![IpNatPair {
                internal: internal(i),
                external: fip(i),
            }],
        })
        .collect();
    let web = "198.19.0.5".parse().unwrap();
    let web2 = "198.19.0.70".parse().unwrap();
    let pair = |internal| {
        vec![IpNatPair {
            internal,
            external: fip(target),
        }]
    };
    endpoints.push(WorkloadEndpoint {
        namespace: "default".into(),
        pod: "web".into(),
        node: "node-0".into(),
        interface: web_cali.to_string(),
        ifindex: None,
        addresses: vec![web],
        ip_nats: if on_web2 { vec![] } else { pair(web) },
    });
    endpoints.push(WorkloadEndpoint {
        namespace: "default".into(),
        pod: "web2".into(),
        node: "node-1".into(),
        interface: veth_name_for_workload("default", "web2"),
        ifindex: None,
        addresses: vec![web2],
        ip_nats: if on_web2 { pair(web2) } else { vec![] },
    });
    ClusterState {
        endpoints,
        felix_floating_ips: true,
        calico: Default::default(),
        pools: vec![IpPool::plain("fips", "198.19.64.0/18".parse().unwrap(), 26)],
        node_blocks: Default::default(),
    }
}
