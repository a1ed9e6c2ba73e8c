//! [`Lab`]: bring a cluster's namespaces up as the addressing plan says (the
//! wiring is in [`super::fabric`], pods in [`super::pods`], lookups in
//! [`super::members`]) and tear it all down again (explicitly, on drop, or on a
//! signal).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use futures::future::try_join_all;
use ipnet::IpNet;

use super::addressing::*;
use super::claim::LabClaim;
use super::error::LabError;
use super::netlink::{create_members, Member, NamespaceJob};
use super::netns::{pin_path, Netns};
use super::registry::{now_secs, process_start_time, record_path, LabRecord};
use super::safety::HostSnapshot;
use super::spec::{namespace_name, namespace_prefix, LabSpec, NodeSpec, PodSpec, FABRIC};
use crate::vocab::KERNEL_PORT_RANGE;

/// Threads that create namespaces at once. Namespace creation is mostly kernel
/// work; more threads than this only contend on the machine's few cores.
const CREATE_THREADS: usize = 4;

pub(super) const NO_DAD: [(&str, &str); 2] = [
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
];

/// Nodes forward, filter nothing by reverse path (Calico: loose or off), send and
/// take no redirects, answer proxy ARP at once, and never hold an address tentative.
/// ICMP errors are not rate-limited in the lab's routers, nor in its pods
/// (lab/pod_wiring.rs): the kernel's per-peer limit (one a second after a
/// burst of six) would make whether a probe meets its "unreachable" depend on
/// how long the previous steps took, and so on the host's load; checks and
/// the backends' agreement compare those errors. A harness choice: Calico
/// leaves the kernel's defaults.
pub(super) const NO_ICMP_RATE_LIMIT: [(&str, &str); 2] = [
    ("net.ipv4.icmp_ratelimit", "0"),
    ("net.ipv6.icmp.ratelimit", "0"),
];

/// The ports the kernel picks for itself (BIRD's BGP sessions) stay clear of
/// the seeded probe ports (vocab::protocol::KERNEL_PORT_RANGE).
const KERNEL_PORTS: (&str, &str) = ("net.ipv4.ip_local_port_range", KERNEL_PORT_RANGE);

/// External hosts send no IPv6 router solicitations: nothing in a lab
/// answers them (addresses are static), and the kernel's three, seconds
/// apart after the link comes up, would leave neighbour entries in the
/// fabric long after the lab was built, so that a reused lab's reset
/// (lab/reset.rs) could never be compared with the lab as built.
const NO_ROUTER_SOLICITATIONS: (&str, &str) = ("net.ipv6.conf.default.router_solicitations", "0");

/// External hosts: as pods, plus the kernel's own ports clear of the probes',
/// and no router solicitations.
pub(super) const EXTERNAL_SYSCTLS: [(&str, &str); 4] =
    [NO_DAD[0], NO_DAD[1], KERNEL_PORTS, NO_ROUTER_SOLICITATIONS];

const NODE_SYSCTLS: [(&str, &str); 14] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
    ("net.ipv6.conf.all.accept_redirects", "0"),
    NO_DAD[0],
    NO_DAD[1],
    NO_ICMP_RATE_LIMIT[0],
    NO_ICMP_RATE_LIMIT[1],
    KERNEL_PORTS,
];

/// The fabric sends no redirects either: the kernel sends one when either
/// `all` or the interface's own setting allows it (IN_DEV_TX_REDIRECTS is an OR),
/// so `default` must be off before the fabric's links exist. A redirect quoting a
/// probe toward a floating IP held on a node of the sender's subnet would
/// otherwise answer that probe as an ICMP error.
const FABRIC_SYSCTLS: [(&str, &str); 11] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    NO_DAD[0],
    NO_DAD[1],
    NO_ICMP_RATE_LIMIT[0],
    NO_ICMP_RATE_LIMIT[1],
    KERNEL_PORTS,
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

pub(super) struct NodeState {
    pub(super) spec: NodeSpec,
    pub(super) member: Member,
    pub(super) next_ifindex: u32,
}

pub(super) struct PodState {
    pub(super) spec: PodSpec,
    /// Holds no descriptor: a lab has thousands of pods (see [`Netns::by_name`]).
    pub(super) netns: Netns,
    pub(super) host_ifindex: u32,
}

/// A live lab. Dropping it tears it down; [`Lab::teardown`] does the same and
/// reports every error.
pub struct Lab {
    pub(super) spec: LabSpec,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) fabric: Member,
    pub(super) nodes: Vec<NodeState>,
    pub(super) externals: Vec<Member>,
    pub(super) pods: BTreeMap<String, PodState>,
    pub(super) record: LabRecord,
    /// The lock on the lab's name, held while this process owns the lab.
    pub(super) claim: Option<LabClaim>,
    /// Set once the lab is gone or kept; set from the start for a lab taken
    /// over from `up` ([`Lab::adopt`]), which this value must never remove.
    pub(super) torn_down: bool,
}

/// Removes what a half-built lab made if bring-up fails or panics.
struct BringUpGuard {
    lab: String,
    namespaces: Vec<String>,
    /// The name's lock: released (its file removed) with a half-built lab,
    /// taken by the lab once it stands.
    claim: Option<LabClaim>,
    armed: bool,
}

impl Drop for BringUpGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Some(claim) = self.claim.as_mut() {
                claim.let_go_of_pin();
            }
            let errors = remove_namespaces(&self.lab, &self.namespaces);
            for e in errors {
                tracing::error!("cleaning up half-built lab: {e}");
            }
            if let Some(claim) = self.claim.take() {
                claim.release();
            }
        }
    }
}

fn remove_namespaces(lab: &str, namespaces: &[String]) -> Vec<String> {
    let mut errors: Vec<String> = Netns::delete_all(namespaces)
        .iter()
        .map(ToString::to_string)
        .collect();
    match std::fs::remove_file(record_path(lab)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("removing {}: {e}", record_path(lab).display())),
    }
    super::live::forget(lab);
    errors
}

pub(super) async fn create(
    rt: &tokio::runtime::Handle,
    jobs: Vec<NamespaceJob>,
) -> Result<Vec<Member>, LabError> {
    let rt = rt.clone();
    let results = tokio::task::spawn_blocking(move || {
        create_members(&rt, &jobs, CREATE_THREADS, &super::live::CREATIONS)
    })
    .await
    .map_err(|_| LabError::Panicked {
        lab: String::new(),
        what: "creating namespaces",
    })?;
    results
        .into_iter()
        .map(|r| r.map_err(LabError::from))
        .collect()
}

pub(super) fn job(name: String, sysctls: &[(&'static str, &'static str)]) -> NamespaceJob {
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
        // From here a failure leaves nothing: no namespace, record, or lock file.
        let mut guard = BringUpGuard {
            lab: lab.clone(),
            namespaces: Vec::new(),
            claim: Some(claim),
            armed: true,
        };
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
            holder: super::rootless::this_process_holder(),
            namespaces: namespaces.clone(),
            created: now_secs(),
            scenario,
            nodes: spec.nodes.iter().map(|n| n.name.clone()).collect(),
            externals: spec.externals.clone(),
            pods: vec![],
        };
        // Remembered before the record exists, so an interrupt from here on
        // removes whatever of the lab there is.
        super::live::remember(&lab);
        guard.namespaces = namespaces;
        record.write()?;

        let mut jobs = vec![job(fabric_ns, &FABRIC_SYSCTLS)];
        jobs.extend(node_ns.into_iter().map(|n| job(n, &NODE_SYSCTLS)));
        jobs.extend(ext_ns.into_iter().map(|n| job(n, &EXTERNAL_SYSCTLS)));
        tracing::debug!(lab = %lab, "host snapshot + record in {:?}", started.elapsed());
        let mut members = create(&rt, jobs).await?.into_iter();
        tracing::debug!(lab = %lab, "namespaces created at {:?}", started.elapsed());
        let fabric = members.next().expect("fabric member");
        // Ownership held on the namespaces too, for whoever looks in another
        // run folder (lab::claim).
        if let Some(claim) = guard.claim.as_mut() {
            claim.hold_pin(fabric.netns.name())?;
        }
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
            claim: guard.claim.take(),
            torn_down: false,
        };
        // From here the Lab's own Drop cleans up.
        guard.armed = false;
        lab_value.wire().await?;
        lab_value.keep_tracking().await?;
        tracing::debug!(lab = %lab, "wired at {:?}", started.elapsed());

        lab_value.check_contained(&before, started).await?;
        Ok(lab_value)
    }

    /// The host is as `before` but for what the lab may change, and every
    /// member holds only the lab's own links and addresses.
    async fn check_contained(
        &self,
        before: &HostSnapshot,
        started: std::time::Instant,
    ) -> Result<(), LabError> {
        let lab = self.spec.name.clone();
        let after = HostSnapshot::take()
            .await
            .map_err(|e| LabError::NotContained {
                lab: lab.clone(),
                what: e.to_string(),
            })?;
        tracing::debug!(lab = %lab, "host checked at {:?}", started.elapsed());
        let members: Vec<&Member> = std::iter::once(&self.fabric)
            .chain(self.nodes.iter().map(|n| &n.member))
            .chain(&self.externals)
            .collect();
        check_members(&lab, &members).await?;
        let leaks = before.lab_made_changes(&after, &lab_ranges(&self.spec));
        if !leaks.is_empty() {
            return Err(LabError::NotContained {
                lab,
                what: leaks.join("; "),
            });
        }
        Ok(())
    }

    /// Keep connection tracking on in every node (see [`super::tracking`]),
    /// one `nft` per node, all at once.
    async fn keep_tracking(&self) -> Result<(), LabError> {
        let nodes: Vec<super::netns::Netns> =
            self.nodes.iter().map(|n| n.member.netns.clone()).collect();
        let lab = self.spec.name.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = nodes
                    .iter()
                    .map(|ns| scope.spawn(move || super::tracking::keep_tracking(ns)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or(Err(LabError::Panicked {
                            lab: lab.clone(),
                            what: "keeping conntrack on",
                        }))
                    })
                    .collect::<Result<Vec<()>, LabError>>()
            })
        })
        .await
        .map_err(|_| LabError::Panicked {
            lab: self.spec.name.clone(),
            what: "keeping conntrack on",
        })?
        .map(drop)
    }

    pub(super) fn families(&self) -> Vec<Family> {
        if self.spec.dual_stack {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// Leave the lab running after this value (and this process) goes: for
    /// `fip-harness up`. Its record stays, so `ls`, `exec` and `down` find it.
    pub fn keep(mut self) {
        self.torn_down = true;
        self.record.kept = true;
        // Rootless: the lab's namespaces end with this process's mount
        // namespace unless a process stays in it.
        if super::rootless::session().is_some() {
            match super::rootless::spawn_holder(&self.spec.name) {
                Ok(holder) => self.record.holder = Some(holder),
                Err(e) => tracing::warn!("keeping lab '{}': {e}", self.spec.name),
            }
        }
        if let Err(e) = self.record.write() {
            tracing::warn!("marking lab '{}' as kept: {e}", self.spec.name);
        }
        super::live::forget(&self.spec.name);
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
        // The nodes' too, before any pin goes: a node's namespace then dies
        // first and the kernel unregisters all its pods' veths in one batch
        // (net/core/dev.c, `default_device_exit_batch`), where a pod's dying
        // first costs a batch, with its RCU waits, for its pair alone; those
        // waits hold up every unmount below.
        self.pods.clear();
        self.nodes.clear();
        self.externals.clear();
        // An open pin keeps its namespace alive too.
        if let Some(claim) = self.claim.as_mut() {
            claim.let_go_of_pin();
        }
        // Daemons (BIRD) first: a process inside a namespace keeps it alive.
        let mut errors = super::daemons::stop_lab_daemons(&self.spec.name);
        errors.extend(super::daemons::stop_strays(&self.record.namespaces));
        errors.extend(remove_namespaces(&self.spec.name, &self.record.namespaces));
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
pub(super) async fn check_members(lab: &str, members: &[&Member]) -> Result<(), LabError> {
    let host = std::fs::File::open("/proc/self/ns/net").map_err(|e| LabError::NotContained {
        lab: lab.to_string(),
        what: format!("opening the host namespace: {e}"),
    })?;
    let found = try_join_all(
        members
            .iter()
            .map(|m| super::safety::links_into_host(m, &host)),
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
