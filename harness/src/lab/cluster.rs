//! [`Lab`]: build a cluster's namespaces and links as the addressing plan says,
//! wire pods as Calico does, keep the block routes BGP would give, and tear it
//! all down again (explicitly, on drop, or on a signal).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use futures::future::{join_all, try_join_all};
use ipnet::IpNet;

use super::addressing::*;
use super::claim::LabClaim;
use super::error::LabError;
use super::netlink::{create_members, Member, NamespaceJob, Route, RouteKind, VethEnd};
use super::netns::{pin_path, Netns};
use super::registry::{now_secs, process_start_time, record_path, LabRecord};
use super::safety::HostSnapshot;
use super::spec::{namespace_name, namespace_prefix, LabSpec, NodeSpec, PodSpec, FABRIC};

/// Threads that create namespaces at once. Namespace creation is mostly kernel
/// work; more threads than this only contend on the machine's few cores.
const CREATE_THREADS: usize = 4;

const NO_DAD: [(&str, &str); 2] = [
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
];

/// Nodes forward, filter nothing by reverse path (Calico: loose or off), send and
/// take no redirects, answer proxy ARP at once, and never hold an address tentative.
const NODE_SYSCTLS: [(&str, &str); 12] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
    ("net.ipv6.conf.all.accept_redirects", "0"),
    ("net.ipv6.conf.default.proxy_ndp", "1"),
    NO_DAD[0],
    NO_DAD[1],
];

const FABRIC_SYSCTLS: [(&str, &str); 7] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    NO_DAD[0],
    NO_DAD[1],
];

/// Where a per-address route sends its traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Via a gateway address (of the same family as the destination).
    Via(IpAddr),
    /// Straight out of a named interface of the member (scope link).
    Device(String),
}

/// Which kind of member a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    Fabric,
    Node,
    External,
    Pod,
}

struct NodeState {
    spec: NodeSpec,
    member: Member,
    next_ifindex: u32,
}

struct PodState {
    spec: PodSpec,
    member: Member,
    host_ifindex: u32,
}

/// A live lab. Dropping it tears it down; [`Lab::teardown`] does the same and
/// reports every error.
pub struct Lab {
    spec: LabSpec,
    rt: tokio::runtime::Handle,
    fabric: Member,
    nodes: Vec<NodeState>,
    externals: Vec<Member>,
    pods: BTreeMap<String, PodState>,
    record: LabRecord,
    /// The lock on the lab's name, held while this process owns the lab.
    claim: Option<LabClaim>,
    torn_down: bool,
}

/// Removes what a half-built lab made if bring-up fails or panics.
struct BringUpGuard {
    lab: String,
    namespaces: Vec<String>,
    armed: bool,
}

impl Drop for BringUpGuard {
    fn drop(&mut self) {
        if self.armed {
            let errors = remove_namespaces(&self.lab, &self.namespaces);
            for e in errors {
                tracing::error!("cleaning up half-built lab: {e}");
            }
        }
    }
}

fn remove_namespaces(lab: &str, namespaces: &[String]) -> Vec<String> {
    let mut errors: Vec<String> = namespaces
        .iter()
        .filter_map(|ns| Netns::delete(ns).err().map(|e| e.to_string()))
        .collect();
    match std::fs::remove_file(record_path(lab)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("removing {}: {e}", record_path(lab).display())),
    }
    super::signals::forget(lab);
    errors
}

async fn create(
    rt: &tokio::runtime::Handle,
    jobs: Vec<NamespaceJob>,
) -> Result<Vec<Member>, LabError> {
    let rt = rt.clone();
    let results = tokio::task::spawn_blocking(move || create_members(&rt, &jobs, CREATE_THREADS))
        .await
        .map_err(|_| LabError::Panicked {
            lab: String::new(),
            what: "creating namespaces",
        })?;
    results.into_iter().collect()
}

fn job(name: String, sysctls: &[(&'static str, &'static str)]) -> NamespaceJob {
    NamespaceJob {
        name,
        sysctls: sysctls.to_vec(),
    }
}

fn lab_ranges(spec: &LabSpec) -> Vec<IpNet> {
    let mut ranges: Vec<IpNet> = [
        "198.18.0.0/15",
        "2001:db8::/32",
        "169.254.1.1/32",
        "198.19.0.0/16",
    ]
    .iter()
    .map(|r| r.parse().expect("valid range"))
    .collect();
    ranges.extend(spec.nodes.iter().flat_map(|n| n.blocks.iter().copied()));
    ranges
}

impl Lab {
    /// Build the fabric, nodes and external hosts of `spec`, with block routes,
    /// then check that the host namespace gained nothing.
    pub async fn build(spec: LabSpec) -> Result<Self, LabError> {
        Self::build_for(spec, None).await
    }

    /// As [`Lab::build`], recording the scenario file the lab comes from (for `ls`).
    pub async fn build_for(spec: LabSpec, scenario: Option<PathBuf>) -> Result<Self, LabError> {
        spec.validate()?;
        let lab = spec.name.clone();
        // Claim the name before looking or creating anything: of two processes
        // building the same lab, the loser stops here and removes nothing.
        let claim = LabClaim::acquire(&lab)?;
        let prefix = namespace_prefix(&lab);
        if let Some(namespace) = Netns::list_with_prefix(&prefix).into_iter().next() {
            return Err(LabError::Exists { lab, namespace });
        }
        if record_path(&lab).exists() {
            return Err(LabError::Exists {
                namespace: record_path(&lab).display().to_string(),
                lab,
            });
        }
        let rt = tokio::runtime::Handle::current();
        let started = std::time::Instant::now();
        let before = HostSnapshot::take()
            .await
            .map_err(|e| LabError::NotContained {
                lab: lab.clone(),
                what: e.to_string(),
            })?;

        let fabric_ns = namespace_name(&lab, FABRIC);
        let node_ns: Vec<String> = spec
            .nodes
            .iter()
            .map(|n| namespace_name(&lab, &n.name))
            .collect();
        let ext_ns: Vec<String> = spec
            .externals
            .iter()
            .map(|x| namespace_name(&lab, x))
            .collect();
        let mut namespaces = vec![fabric_ns.clone()];
        namespaces.extend(node_ns.iter().cloned());
        namespaces.extend(ext_ns.iter().cloned());

        // Record first: a process killed from here on leaves a record `down` can use.
        let record = LabRecord {
            name: lab.clone(),
            pid: std::process::id(),
            start_time: process_start_time(std::process::id()),
            kept: false,
            namespaces: namespaces.clone(),
            created: now_secs(),
            scenario,
            nodes: spec.nodes.iter().map(|n| n.name.clone()).collect(),
            externals: spec.externals.clone(),
            pods: vec![],
        };
        // Remembered before the record exists, so an interrupt from here on
        // removes whatever of the lab there is.
        super::signals::remember(&lab);
        record.write()?;
        let mut guard = BringUpGuard {
            lab: lab.clone(),
            namespaces,
            armed: true,
        };

        let mut jobs = vec![job(fabric_ns, &FABRIC_SYSCTLS)];
        jobs.extend(node_ns.into_iter().map(|n| job(n, &NODE_SYSCTLS)));
        jobs.extend(ext_ns.into_iter().map(|n| job(n, &NO_DAD)));
        tracing::debug!(lab = %lab, "host snapshot + record in {:?}", started.elapsed());
        let mut members = create(&rt, jobs).await?.into_iter();
        tracing::debug!(lab = %lab, "namespaces created at {:?}", started.elapsed());
        let fabric = members.next().expect("fabric member");
        let nodes: Vec<NodeState> = spec
            .nodes
            .iter()
            .zip(members.by_ref())
            .map(|(spec, member)| NodeState {
                spec: spec.clone(),
                member,
                next_ifindex: IFINDEX_FIRST_WORKLOAD,
            })
            .collect();
        let externals: Vec<Member> = members.collect();

        let lab_value = Self {
            spec,
            rt,
            fabric,
            nodes,
            externals,
            pods: BTreeMap::new(),
            record,
            claim: Some(claim),
            torn_down: false,
        };
        // From here the Lab's own Drop cleans up.
        guard.armed = false;
        lab_value.wire().await?;
        tracing::debug!(lab = %lab, "wired at {:?}", started.elapsed());

        let after = HostSnapshot::take()
            .await
            .map_err(|e| LabError::NotContained {
                lab: lab.clone(),
                what: e.to_string(),
            })?;
        tracing::debug!(lab = %lab, "host checked at {:?}", started.elapsed());
        let members: Vec<&Member> = std::iter::once(&lab_value.fabric)
            .chain(lab_value.nodes.iter().map(|n| &n.member))
            .chain(&lab_value.externals)
            .collect();
        check_members(&lab, &members).await?;
        let leaks = before.lab_made_changes(&after, &lab_ranges(&lab_value.spec));
        if !leaks.is_empty() {
            return Err(LabError::NotContained {
                lab,
                what: leaks.join("; "),
            });
        }
        Ok(lab_value)
    }

    fn families(&self) -> Vec<Family> {
        if self.spec.dual_stack {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    async fn wire(&self) -> Result<(), LabError> {
        let families = self.families();
        let fabric = &self.fabric;
        // Links first: the fabric makes every segment link, with the far end
        // created directly in the node's or external host's namespace.
        let fabric_links = async {
            fabric.link_up(IFINDEX_LO, "lo").await?;
            fabric.add_bridge(BRIDGE_NODES, IFINDEX_BR_NODES).await?;
            fabric.add_bridge(BRIDGE_EXT, IFINDEX_BR_EXT).await?;
            let mut steps = Vec::new();
            for (i, node) in self.nodes.iter().enumerate() {
                let name = fabric_node_port(i);
                steps.push(async move {
                    fabric
                        .add_veth(
                            VethEnd {
                                name: &name,
                                index: IFINDEX_FABRIC_NODE_PORT + i as u32,
                                mac: None,
                                controller: Some(IFINDEX_BR_NODES),
                            },
                            VethEnd {
                                name: UPLINK,
                                index: IFINDEX_ETH0,
                                mac: None,
                                controller: None,
                            },
                            &node.member.netns,
                        )
                        .await
                });
            }
            try_join_all(steps).await?;
            let mut steps = Vec::new();
            for (j, external) in self.externals.iter().enumerate() {
                let name = fabric_external_port(j);
                steps.push(async move {
                    fabric
                        .add_veth(
                            VethEnd {
                                name: &name,
                                index: IFINDEX_FABRIC_EXT_PORT + j as u32,
                                mac: None,
                                controller: Some(IFINDEX_BR_EXT),
                            },
                            VethEnd {
                                name: UPLINK,
                                index: IFINDEX_ETH0,
                                mac: None,
                                controller: None,
                            },
                            &external.netns,
                        )
                        .await
                });
            }
            try_join_all(steps).await?;
            for family in &families {
                let (nodes_gw, ext_gw, prefix) = match family {
                    Family::V4 => (
                        IpAddr::from(FABRIC_NODES_V4),
                        IpAddr::from(FABRIC_EXT_V4),
                        SEGMENT_V4_PREFIX,
                    ),
                    Family::V6 => (
                        IpAddr::from(FABRIC_NODES_V6),
                        IpAddr::from(FABRIC_EXT_V6),
                        SEGMENT_V6_PREFIX,
                    ),
                };
                fabric
                    .add_address(IFINDEX_BR_NODES, nodes_gw, prefix, BRIDGE_NODES)
                    .await?;
                fabric
                    .add_address(IFINDEX_BR_EXT, ext_gw, prefix, BRIDGE_EXT)
                    .await?;
            }
            Ok::<(), LabError>(())
        };
        let loopbacks = try_join_all(
            self.nodes
                .iter()
                .map(|n| &n.member)
                .chain(&self.externals)
                .map(|m| m.link_up(IFINDEX_LO, "lo")),
        );
        futures::try_join!(fabric_links, loopbacks)?;

        // Then addresses and routes, every namespace at once.
        let mut steps: Vec<futures::future::BoxFuture<'_, Result<(), LabError>>> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let families = families.clone();
            steps.push(Box::pin(async move {
                node.member.link_up(IFINDEX_ETH0, UPLINK).await?;
                for family in &families {
                    let (gateway, prefix) = segment_gateway(*family, false);
                    node.member
                        .add_address(IFINDEX_ETH0, node_uplink(i, *family), prefix, UPLINK)
                        .await?;
                    node.member
                        .replace_route(Route::via(default_of(*family), 0, gateway))
                        .await?;
                }
                let mut routes = Vec::new();
                for (k, other) in self.nodes.iter().enumerate() {
                    for block in other
                        .spec
                        .blocks
                        .iter()
                        .filter(|b| families.contains(&Family::of(&b.addr())))
                    {
                        routes.push(block_route(k == i, *block, k));
                    }
                }
                try_join_all(routes.iter().map(|r| node.member.replace_route(*r))).await?;
                Ok(())
            }));
        }
        for (j, external) in self.externals.iter().enumerate() {
            let families = families.clone();
            steps.push(Box::pin(async move {
                external.link_up(IFINDEX_ETH0, UPLINK).await?;
                for family in &families {
                    let (gateway, prefix) = segment_gateway(*family, true);
                    external
                        .add_address(IFINDEX_ETH0, external_address(j, *family), prefix, UPLINK)
                        .await?;
                    external
                        .replace_route(Route::via(default_of(*family), 0, gateway))
                        .await?;
                }
                Ok(())
            }));
        }
        let fabric_routes: Vec<Route> = self
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(k, node)| {
                node.spec
                    .blocks
                    .iter()
                    .filter(|b| families.contains(&Family::of(&b.addr())))
                    .map(move |block| block_route(false, *block, k))
            })
            .collect();
        steps.push(Box::pin(async move {
            try_join_all(fabric_routes.iter().map(|r| fabric.replace_route(*r))).await?;
            Ok(())
        }));
        try_join_all(steps).await?;
        Ok(())
    }

    /// Wire one pod into its node (see [`Lab::add_pods`]).
    pub async fn add_pod(&mut self, pod: &PodSpec) -> Result<(), LabError> {
        self.add_pods(std::slice::from_ref(pod)).await
    }

    /// Wire pods into their nodes as Calico's CNI plugin does, all at once: a
    /// namespace each, `eth0` with the pod's /32 (/128) and a default route via
    /// 169.254.1.1 (fe80::ecee:eeff:feee:eeee), the node side `cali...` with
    /// proxy ARP and a route to each pod address.
    pub async fn add_pods(&mut self, pods: &[PodSpec]) -> Result<(), LabError> {
        let lab = self.spec.name.clone();
        let mut seen = std::collections::BTreeSet::new();
        for pod in pods {
            pod.validate(&lab)?;
            if self.pods.contains_key(&pod.name) || !seen.insert(pod.name.as_str()) {
                return Err(LabError::PodExists {
                    lab,
                    pod: pod.name.clone(),
                });
            }
            if self.member_kind(&pod.name).is_some() {
                return Err(super::spec::SpecError::Duplicate {
                    lab,
                    name: pod.name.clone(),
                }
                .into());
            }
            self.node_index(&pod.node)?;
        }
        let names: Vec<String> = pods.iter().map(|p| namespace_name(&lab, &p.name)).collect();
        self.record.namespaces.extend(names.iter().cloned());
        self.record.pods.extend(pods.iter().map(|p| p.name.clone()));
        self.record.write()?;

        let started = std::time::Instant::now();
        let members = create(
            &self.rt,
            pods.iter()
                .zip(&names)
                // Only IPv6 needs its addresses usable at once.
                .map(|(p, n)| {
                    job(
                        n.clone(),
                        if p.addresses.iter().any(IpAddr::is_ipv6) {
                            &NO_DAD
                        } else {
                            &[]
                        },
                    )
                })
                .collect(),
        )
        .await;
        tracing::debug!(lab = %lab, pods = pods.len(), "pod namespaces created in {:?}", started.elapsed());
        let members = match members {
            Ok(m) => m,
            Err(e) => {
                // Keep the record exact: drop what was not made.
                for name in &names {
                    let _ = Netns::delete(name);
                }
                let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
                self.forget_pods(&names);
                let _ = self.record.write();
                return Err(e);
            }
        };
        let mut wired = Vec::new();
        for (pod, member) in pods.iter().zip(members) {
            let node = self.node_index(&pod.node)?;
            let state = &mut self.nodes[node];
            let host_ifindex = state.next_ifindex;
            state.next_ifindex += 1;
            wired.push((
                node,
                PodState {
                    spec: pod.clone(),
                    member,
                    host_ifindex,
                },
            ));
        }
        let results = join_all(
            wired
                .iter()
                .map(|(node, pod)| self.wire_pod(&self.nodes[*node].member, pod)),
        )
        .await;
        tracing::debug!(lab = %lab, "pods wired in {:?}", started.elapsed());
        // Keep even pods whose wiring failed, so teardown and remove_pod know them.
        for (_, pod) in wired {
            self.pods.insert(pod.spec.name.clone(), pod);
        }
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        // Every link add_pods makes is a veth with one end on a node, so the
        // nodes' links show any pair that reached the host namespace.
        let mut touched: Vec<&Member> = Vec::new();
        for node in &self.nodes {
            if pods.iter().any(|p| p.node == node.spec.name) {
                touched.push(&node.member);
            }
        }
        check_members(&lab, &touched).await?;
        Ok(())
    }

    fn forget_pods(&mut self, pods: &[&str]) {
        let namespaces: Vec<String> = pods
            .iter()
            .map(|p| namespace_name(&self.spec.name, p))
            .collect();
        self.record.namespaces.retain(|ns| !namespaces.contains(ns));
        self.record
            .pods
            .retain(|name| !pods.contains(&name.as_str()));
    }

    async fn wire_pod(&self, node: &Member, pod: &PodState) -> Result<(), LabError> {
        let interface = pod.spec.interface.as_str();
        node.add_veth(
            VethEnd {
                name: interface,
                index: pod.host_ifindex,
                mac: Some(NODE_SIDE_MAC),
                controller: None,
            },
            VethEnd {
                name: UPLINK,
                index: IFINDEX_ETH0,
                mac: None,
                controller: None,
            },
            &pod.member.netns,
        )
        .await?;
        // Requests on one socket are handled in the order sent, so each side's
        // steps go out together instead of waiting for each answer in turn.
        let node_side = async {
            let mut steps: Vec<futures::future::BoxFuture<'_, Result<(), LabError>>> = vec![
                Box::pin(node.set_proxy_arp(pod.host_ifindex, interface)),
                Box::pin(node.set_proxy_delay_zero(pod.host_ifindex, interface)),
            ];
            for address in &pod.spec.addresses {
                steps.push(Box::pin(node.replace_route(Route::dev(
                    *address,
                    Family::of(address).host_prefix(),
                    pod.host_ifindex,
                ))));
            }
            try_join_all(steps).await
        };
        let pod_side = async {
            let member = &pod.member;
            let mut steps: Vec<futures::future::BoxFuture<'_, Result<(), LabError>>> = vec![
                Box::pin(member.link_up(IFINDEX_LO, "lo")),
                Box::pin(member.link_up(IFINDEX_ETH0, UPLINK)),
            ];
            for address in &pod.spec.addresses {
                let family = Family::of(address);
                steps.push(Box::pin(member.add_address(
                    IFINDEX_ETH0,
                    *address,
                    family.host_prefix(),
                    UPLINK,
                )));
            }
            for address in &pod.spec.addresses {
                let family = Family::of(address);
                let mut route = match family {
                    Family::V4 => Route::via(default_of(family), 0, POD_GATEWAY_V4.into()),
                    Family::V6 => Route::via(default_of(family), 0, POD_GATEWAY_V6.into()),
                };
                route.dev = Some(IFINDEX_ETH0);
                route.onlink = family == Family::V4;
                steps.push(Box::pin(member.replace_route(route)));
            }
            try_join_all(steps).await
        };
        futures::try_join!(node_side, pod_side)?;
        Ok(())
    }

    /// Unwire a pod: remove its host-side link (and so its routes) and its namespace.
    pub async fn remove_pod(&mut self, name: &str) -> Result<(), LabError> {
        let pod = self.pods.remove(name).ok_or_else(|| LabError::NoMember {
            lab: self.spec.name.clone(),
            kind: "pod",
            name: name.to_string(),
        })?;
        let node = self.node_index(&pod.spec.node)?;
        let result = self.nodes[node]
            .member
            .delete_link(pod.host_ifindex, &pod.spec.interface)
            .await;
        let namespace = pod.member.netns.name().to_string();
        drop(pod);
        Netns::delete(&namespace)?;
        self.forget_pods(&[name]);
        self.record.write()?;
        result
    }

    /// Give a node more IPAM blocks (IPAM hands them out lazily) and route them
    /// to it on every other node and on the fabric, as BGP would.
    pub async fn add_node_blocks(&mut self, node: &str, blocks: &[IpNet]) -> Result<(), LabError> {
        let index = self.node_index(node)?;
        let families = self.families();
        let new: Vec<IpNet> = blocks
            .iter()
            .filter(|b| !self.nodes[index].spec.blocks.contains(b))
            .copied()
            .collect();
        let mut steps = Vec::new();
        for block in new
            .iter()
            .filter(|b| families.contains(&Family::of(&b.addr())))
        {
            for (k, other) in self.nodes.iter().enumerate() {
                steps.push((&other.member, block_route(k == index, *block, index)));
            }
            steps.push((&self.fabric, block_route(false, *block, index)));
        }
        try_join_all(
            steps
                .iter()
                .map(|(member, route)| member.replace_route(*route)),
        )
        .await?;
        self.nodes[index].spec.blocks.extend(new.iter().copied());
        self.spec.nodes[index].blocks.extend(new);
        Ok(())
    }

    /// Add or replace a /32 (/128) route on a member: via a gateway, or as a
    /// device route out of one of its interfaces. For floating-IP routes.
    pub async fn replace_host_route(
        &self,
        member: &str,
        destination: IpAddr,
        next_hop: &NextHop,
    ) -> Result<(), LabError> {
        let target = self.member(member)?;
        let prefix = Family::of(&destination).host_prefix();
        let route = match next_hop {
            NextHop::Via(gateway) => {
                if Family::of(gateway) != Family::of(&destination) {
                    return Err(LabError::MixedFamilies {
                        lab: self.spec.name.clone(),
                        destination,
                        gateway: *gateway,
                    });
                }
                Route::via(destination, prefix, *gateway)
            }
            NextHop::Device(interface) => Route::dev(
                destination,
                prefix,
                self.interface_index(member, interface).await?,
            ),
        };
        target.replace_route(route).await
    }

    /// Remove a /32 (/128) route from a member; a missing route is not an error.
    pub async fn remove_host_route(
        &self,
        member: &str,
        destination: IpAddr,
    ) -> Result<(), LabError> {
        self.member(member)?
            .remove_route(destination, Family::of(&destination).host_prefix())
            .await
    }

    async fn interface_index(&self, member: &str, interface: &str) -> Result<u32, LabError> {
        if let Some(pod) = self
            .pods
            .values()
            .find(|p| p.spec.node == member && p.spec.interface == interface)
        {
            return Ok(pod.host_ifindex);
        }
        self.member(member)?
            .link_index(interface)
            .await?
            .ok_or_else(|| LabError::NoInterface {
                lab: self.spec.name.clone(),
                member: member.to_string(),
                interface: interface.to_string(),
            })
    }

    fn node_index(&self, node: &str) -> Result<usize, LabError> {
        self.nodes
            .iter()
            .position(|n| n.spec.name == node)
            .ok_or_else(|| LabError::NoMember {
                lab: self.spec.name.clone(),
                kind: "node",
                name: node.to_string(),
            })
    }

    fn member(&self, name: &str) -> Result<&Member, LabError> {
        let found = if name == FABRIC {
            Some(&self.fabric)
        } else {
            self.nodes
                .iter()
                .find(|n| n.spec.name == name)
                .map(|n| &n.member)
                .or_else(|| {
                    self.spec
                        .externals
                        .iter()
                        .position(|x| x == name)
                        .map(|j| &self.externals[j])
                })
                .or_else(|| self.pods.get(name).map(|p| &p.member))
        };
        found.ok_or_else(|| LabError::NoMember {
            lab: self.spec.name.clone(),
            kind: "member",
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// The namespace of a member: `fabric`, a node, an external host or a pod.
    pub fn netns(&self, member: &str) -> Result<&Netns, LabError> {
        self.member(member).map(|m| &m.netns)
    }

    /// The rtnetlink handle already open inside a member's namespace.
    pub fn netlink(&self, member: &str) -> Result<&rtnetlink::Handle, LabError> {
        self.member(member).map(|m| &m.nl)
    }

    pub fn member_kind(&self, name: &str) -> Option<MemberKind> {
        if name == FABRIC {
            Some(MemberKind::Fabric)
        } else if self.nodes.iter().any(|n| n.spec.name == name) {
            Some(MemberKind::Node)
        } else if self.spec.externals.iter().any(|x| x == name) {
            Some(MemberKind::External)
        } else if self.pods.contains_key(name) {
            Some(MemberKind::Pod)
        } else {
            None
        }
    }

    /// A node's uplink address of a family (None if the lab is IPv4-only and v6 is asked).
    pub fn node_uplink(&self, node: &str, family: Family) -> Result<Option<IpAddr>, LabError> {
        let i = self.node_index(node)?;
        Ok(self
            .families()
            .contains(&family)
            .then(|| node_uplink(i, family)))
    }

    /// An external host's address of a family.
    pub fn external_address(
        &self,
        external: &str,
        family: Family,
    ) -> Result<Option<IpAddr>, LabError> {
        let j = self
            .spec
            .externals
            .iter()
            .position(|x| x == external)
            .ok_or_else(|| LabError::NoMember {
                lab: self.spec.name.clone(),
                kind: "external host",
                name: external.to_string(),
            })?;
        Ok(self
            .families()
            .contains(&family)
            .then(|| external_address(j, family)))
    }

    /// The host-side interface of a pod on its node (`cali...`).
    pub fn pod_interface(&self, pod: &str) -> Option<&str> {
        self.pods.get(pod).map(|p| p.spec.interface.as_str())
    }

    pub fn pod(&self, pod: &str) -> Option<&PodSpec> {
        self.pods.get(pod).map(|p| &p.spec)
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodSpec> {
        self.pods.values().map(|p| &p.spec)
    }

    /// Every namespace of the lab, by name.
    pub fn namespaces(&self) -> &[String] {
        &self.record.namespaces
    }

    /// Leave the lab running after this value (and this process) goes: for
    /// `fip-harness up`. Its record stays, so `ls`, `exec` and `down` find it.
    pub fn keep(mut self) {
        self.torn_down = true;
        self.record.kept = true;
        if let Err(e) = self.record.write() {
            tracing::warn!("marking lab '{}' as kept: {e}", self.spec.name);
        }
        super::signals::forget(&self.spec.name);
        // Dropping the claim (not releasing it) frees the name's lock but keeps
        // its file: nobody owns a kept lab, `down` takes the lock to remove it.
        self.claim = None;
    }

    /// Remove the lab: every namespace pin and the registry record. Keeps going
    /// after errors and returns them all.
    pub fn teardown(mut self) -> Result<(), LabError> {
        let errors = self.teardown_inner();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown {
                lab: self.spec.name.clone(),
                errors,
            })
        }
    }

    fn teardown_inner(&mut self) -> Vec<String> {
        if self.torn_down {
            return vec![];
        }
        self.torn_down = true;
        // Sockets hold their namespace alive; dropping the handles ends the
        // connections, so the kernel frees the namespaces once the pins go.
        self.pods.clear();
        let mut errors = remove_namespaces(&self.spec.name, &self.record.namespaces);
        // Anything pinned under the lab's prefix that the record missed.
        for ns in Netns::list_with_prefix(&namespace_prefix(&self.spec.name)) {
            if pin_path(&ns).exists() {
                if let Err(e) = Netns::delete(&ns) {
                    errors.push(e.to_string());
                }
            }
        }
        if let Some(claim) = self.claim.take() {
            claim.release();
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.teardown_inner() {
            tracing::error!("tearing down lab '{}': {e}", self.spec.name);
        }
    }
}

/// Refuse a lab any of whose members has a link into the host namespace.
async fn check_members(lab: &str, members: &[&Member]) -> Result<(), LabError> {
    let host = std::fs::File::open("/proc/self/ns/net").map_err(|e| LabError::NotContained {
        lab: lab.to_string(),
        what: format!("opening the host namespace: {e}"),
    })?;
    let found = try_join_all(
        members
            .iter()
            .map(|m| super::safety::links_into_host(m.name(), &m.nl, &host)),
    )
    .await?;
    let found: Vec<String> = found.into_iter().flatten().collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(LabError::NotContained {
            lab: lab.to_string(),
            what: found.join("; "),
        })
    }
}

fn default_of(family: Family) -> IpAddr {
    match family {
        Family::V4 => std::net::Ipv4Addr::UNSPECIFIED.into(),
        Family::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// (gateway, prefix) of the nodes or the externals segment.
fn segment_gateway(family: Family, externals: bool) -> (IpAddr, u8) {
    match (family, externals) {
        (Family::V4, false) => (FABRIC_NODES_V4.into(), SEGMENT_V4_PREFIX),
        (Family::V6, false) => (FABRIC_NODES_V6.into(), SEGMENT_V6_PREFIX),
        (Family::V4, true) => (FABRIC_EXT_V4.into(), SEGMENT_V4_PREFIX),
        (Family::V6, true) => (FABRIC_EXT_V6.into(), SEGMENT_V6_PREFIX),
    }
}

/// A node's block: a blackhole on the node itself (as Calico's BIRD installs,
/// so unused addresses in it are dropped rather than bounced to the fabric),
/// via the node's uplink everywhere else.
fn block_route(own: bool, block: IpNet, node: usize) -> Route {
    if own {
        Route {
            destination: block.network(),
            prefix: block.prefix_len(),
            via: None,
            dev: None,
            onlink: false,
            kind: RouteKind::Blackhole,
        }
    } else {
        Route::via(
            block.network(),
            block.prefix_len(),
            node_uplink(node, Family::of(&block.addr())),
        )
    }
}
