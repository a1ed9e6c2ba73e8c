//! Wiring many pods at once on a few dedicated threads, the way Calico's CNI
//! plugin wires one (cni-plugin/pkg/dataplane/linux/dataplane_linux.go,
//! `DoWorkloadNetnsSetUp`): from inside the pod's new namespace, make the
//! veth with its host side straight in the node (`addWorkloadLink`), bring up
//! the pod's end and give it its addresses and default routes; on the node,
//! the host side up with `configureSysctls`'s settings (for an IPv4 pod
//! proxy ARP, `proxy_delay` 0, `route_localnet` and forwarding; for an IPv6
//! pod proxy NDP; for every pod `accept_ra` 0), a route to each pod address
//! (`SetupRoutes`) and, as Felix adds beside its routes, a permanent ARP
//! entry for each IPv4 address ([`pod_mac`]).
//!
//! Each thread takes a run of one node's pods: it opens one socket in the
//! node, then for each pod enters a new namespace, sends all the pod's steps
//! in one batch on a socket it closes at once, and finally sends the node's
//! steps for the whole run in one batch. No pod keeps a descriptor open.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::addressing::*;
use super::cluster::{NO_DAD, NO_ICMP_RATE_LIMIT};
use super::error::LabError;
use super::fabric::default_of;
use super::netlink::{
    address_message, link_up, permanent_arp, veth, workload_host_side_v4, Batch, BatchSocket,
    Create, Route, VethEnd, FELIX_ROUTE_PROTOCOL,
};
use super::netns::{create_pins, write_sysctls_here, Netns, NetnsError};
use super::spec::PodSpec;

/// Pods one thread wires in a run (one node socket, one batch of node steps).
const RUN: usize = 16;

/// One pod to wire: its namespace is made here.
pub(super) struct PodJob {
    pub spec: PodSpec,
    pub namespace: String,
    pub node: Netns,
    pub host_ifindex: u32,
}

/// Wire `jobs` on one thread per core plus one (the work is the kernel's, and
/// one more thread covers the moments one waits on a lock); returns every
/// error, in no particular order. A pod whose namespace exists keeps it even
/// when a later step failed: the caller's record lists it for teardown.
pub(super) fn wire_pods(lab: &str, jobs: &[PodJob]) -> Vec<LabError> {
    let mut by_node: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        by_node.entry(job.node.name()).or_default().push(i);
    }
    let runs: Vec<&[usize]> = by_node.values().flat_map(|p| p.chunks(RUN)).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(runs.len()))
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(run) = runs.get(i) else { break };
                    let run: Vec<&PodJob> = run.iter().map(|&k| &jobs[k]).collect();
                    let found = wire_run(&run);
                    errors.lock().expect("errors lock").extend(found);
                })
            })
            .collect();
        for worker in workers {
            if worker.join().is_err() {
                errors
                    .lock()
                    .expect("errors lock")
                    .push(LabError::Panicked {
                        lab: lab.to_string(),
                        what: "wiring pods",
                    });
            }
        }
    });
    errors.into_inner().expect("errors lock")
}

/// Wire a run of pods of one node on the calling (dedicated) thread.
fn wire_run(run: &[&PodJob]) -> Vec<LabError> {
    let node = &run[0].node;
    let node_file = match node.file() {
        Ok(file) => file,
        Err(e) => return vec![e.into()],
    };
    let enter_node = || {
        setns(node_file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            LabError::from(NetnsError::Sys {
                name: node.name().to_string(),
                action: "setns",
                source: e.into(),
            })
        })
    };
    let node_socket = match enter_node()
        .and_then(|()| BatchSocket::open_here(node.name()).map_err(LabError::from))
    {
        Ok(socket) => socket,
        Err(e) => return vec![e],
    };
    let names: Vec<&str> = run.iter().map(|job| job.namespace.as_str()).collect();
    let mut errors = Vec::new();
    let mut node_steps = Batch::default();
    let mut wired = Vec::new();
    // Not once this process's clean-up has started (an interrupt), which
    // waits for this to end before it lists the pins to remove.
    let pins = super::live::unless_cancelled(|| create_pins(&names)).unwrap_or_else(|_| {
        names
            .iter()
            .map(|name| Err(NetnsError::Cancelled(name.to_string())))
            .collect()
    });
    for (job, pin) in run.iter().zip(pins) {
        match pin
            .map_err(LabError::from)
            .and_then(|()| wire_pod_side(job, node_file.as_raw_fd()))
            .and_then(|()| node_side(job, &mut node_steps))
        {
            Ok(()) => wired.push(*job),
            Err(e) => errors.push(e),
        }
    }
    // Sysctls are written in the namespace of the writer.
    if let Err(e) = enter_node().and_then(|()| host_side_sysctls(node.name(), &wired)) {
        errors.push(e);
    }
    if let Err(e) = node_socket.send(node_steps) {
        errors.push(e.into());
    }
    errors
}

/// Make the pod's namespace (the thread stays in it), then its end of the
/// pair and everything on it, in one batch.
fn wire_pod_side(job: &PodJob, node_fd: RawFd) -> Result<(), LabError> {
    let name = job.namespace.as_str();
    Netns::enter_new_pinned(name, &super::live::CREATIONS)?;
    // Calico only sets up the families the pod has (`DoWorkloadNetnsSetUp`:
    // `disableDAD` only if it has IPv6), before the link exists.
    if job.spec.addresses.iter().any(|a| a.is_ipv6()) {
        write_sysctls_here(name, &NO_DAD)?;
    }
    // Not Calico's: a pod's "port unreachable" must not depend on how fast
    // the case's earlier probes came (cluster.rs `NO_ICMP_RATE_LIMIT`).
    write_sysctls_here(name, &NO_ICMP_RATE_LIMIT)?;
    let socket = BatchSocket::open_here(name)?;
    let mut steps = Batch::default();
    let eth0 = VethEnd {
        name: UPLINK,
        index: IFINDEX_ETH0,
        mac: pod_mac(job),
        controller: None,
    };
    let host = VethEnd {
        name: &job.spec.interface,
        index: job.host_ifindex,
        mac: Some(NODE_SIDE_MAC),
        controller: None,
    };
    steps.push(
        RouteNetlinkMessage::NewLink(veth(&eth0, &host, node_fd)),
        Create::New,
        format!("create veth {UPLINK} (peer {} in the node)", host.name),
    );
    steps.push(
        RouteNetlinkMessage::SetLink(link_up(IFINDEX_LO)),
        Create::Change,
        "set lo up".into(),
    );
    for address in &job.spec.addresses {
        let prefix = Family::of(address).host_prefix();
        steps.push(
            RouteNetlinkMessage::NewAddress(address_message(IFINDEX_ETH0, *address, prefix)),
            Create::Replace,
            format!("add address {address}/{prefix} to {UPLINK}"),
        );
    }
    for address in &job.spec.addresses {
        let family = Family::of(address);
        let gateway = match family {
            Family::V4 => POD_GATEWAY_V4.into(),
            Family::V6 => POD_GATEWAY_V6.into(),
        };
        let mut route = Route::via(default_of(family), 0, gateway);
        route.dev = Some(IFINDEX_ETH0);
        route.onlink = family == Family::V4;
        push_route(&mut steps, &route, name)?;
    }
    Ok(socket.send(steps)?)
}

/// The node's steps for one pod: its interface up (with the IPv4 settings
/// when the pod has an IPv4 address, as `configureSysctls` sets them only
/// then), a route to each of its addresses, and a permanent ARP entry for
/// each IPv4 one ([`pod_mac`]).
fn node_side(job: &PodJob, steps: &mut Batch) -> Result<(), LabError> {
    if has_ipv4(job) {
        steps.push(
            RouteNetlinkMessage::SetLink(workload_host_side_v4(job.host_ifindex, true)),
            Create::Change,
            format!(
                "set {} up with proxy ARP, route_localnet and forwarding",
                job.spec.interface
            ),
        );
    } else {
        steps.push(
            RouteNetlinkMessage::SetLink(link_up(job.host_ifindex)),
            Create::Change,
            format!("set {} up", job.spec.interface),
        );
    }
    for address in &job.spec.addresses {
        let mut route = Route::dev(
            *address,
            Family::of(address).host_prefix(),
            job.host_ifindex,
        );
        route.protocol = Some(FELIX_ROUTE_PROTOCOL);
        push_route(steps, &route, job.node.name())?;
        if let (IpAddr::V4(address), Some(mac)) = (address, pod_mac(job)) {
            steps.push(
                RouteNetlinkMessage::NewNeighbour(permanent_arp(job.host_ifindex, *address, mac)),
                Create::Replace,
                format!(
                    "add permanent ARP entry {address} lladdr {} on {}",
                    mac.map(|b| format!("{b:02x}")).join(":"),
                    job.spec.interface
                ),
            );
        }
    }
    Ok(())
}

/// The MAC of an IPv4 pod's `eth0`, chosen here so that the node's
/// permanent ARP entries can name it without asking the pod: Felix programs
/// one NUD_PERMANENT entry per IPv4 workload address on the workload's
/// interface, with the MAC the CNI plugin recorded in the endpoint
/// (felix/dataplane/linux/endpoint_mgr.go `calculateRoutes` sets
/// `DestMAC`; felix/routetable/route_table.go `updatePermanentARP` and
/// `addStaticARPEntry`, enabled for the IPv4 main table only by
/// felix/dataplane/linux/int_dataplane.go `WithStaticARPEntries(true)`;
/// the MAC is the container side's, cni-plugin/pkg/k8s/k8s.go `CmdAddK8s`).
/// Calico leaves that MAC to the kernel (random); here it is a locally
/// administered unicast address made of the pod's first IPv4 address, unique
/// on each veth (its own segment) all the same. The kernel does not count
/// permanent entries against the host's `gc_thresh3` (net/core/neighbour.c,
/// `neigh_alloc`: only entries on the gc list count, Linux 5.0 on), so a
/// node no longer resolves its pods by ARP within the shared table
/// (runner/schedule.rs `neighbour_need`). An IPv6-only pod keeps a random
/// MAC: Felix makes no NDP entries.
fn pod_mac(job: &PodJob) -> Option<[u8; 6]> {
    job.spec.addresses.iter().find_map(|address| match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            Some([0x02, 0x00, a, b, c, d])
        }
        IpAddr::V6(_) => None,
    })
}

fn push_route(steps: &mut Batch, route: &Route, namespace: &str) -> Result<(), LabError> {
    let message = route.message().map_err(|e| LabError::Netlink {
        namespace: namespace.to_string(),
        action: format!("build route {route}"),
        source: rtnetlink::Error::InvalidNla(e),
    })?;
    steps.push(
        RouteNetlinkMessage::NewRoute(message),
        Create::Replace,
        format!("add route {route}"),
    );
    Ok(())
}

fn has_ipv4(job: &PodJob) -> bool {
    job.spec.addresses.iter().any(|a| a.is_ipv4())
}

/// The pods' host-side settings that only /proc/sys takes, written as
/// Calico's `configureSysctls` does: `proxy_delay` 0 for an IPv4 pod,
/// `proxy_ndp` 1 for an IPv6 pod, and `accept_ra` 0 for every pod (the one
/// setting it makes whatever the families). Its other IPv6 settings are
/// already what it writes when the interface is made: `accept_dad` 0 from the
/// node's default (lab/cluster.rs), `disable_ipv6` 0 from the kernel's, and
/// `forwarding` 1 from the node's `all`, so they are not written again.
/// The other way for `proxy_delay`, one RTM_SETNEIGHTBL each,
/// costs a walk of every interface's ARP parameters in every namespace of
/// the machine (net/core/neighbour.c, `lookup_neigh_parms`), which grows with
/// the lab; IPv6 settings have no netlink way in (`inet6_set_link_af` takes
/// only the token and the address generation mode).
fn host_side_sysctls(node: &str, pods: &[&PodJob]) -> Result<(), LabError> {
    // The path is built from its parts: an interface name may hold a dot.
    let write = |directory: &str, interface: &str, setting: &str, value: &str| {
        let path = format!("/proc/sys/{directory}/{interface}/{setting}");
        std::fs::write(&path, value).map_err(|source| NetnsError::Sysctl {
            name: node.to_string(),
            key: format!("{}.{interface}.{setting}", directory.replace('/', ".")),
            source,
        })
    };
    for job in pods {
        let interface = &job.spec.interface;
        if has_ipv4(job) {
            write("net/ipv4/neigh", interface, "proxy_delay", "0")?;
        }
        if job.spec.addresses.iter().any(|a| a.is_ipv6()) {
            write("net/ipv6/conf", interface, "proxy_ndp", "1")?;
        }
        write("net/ipv6/conf", interface, "accept_ra", "0")?;
    }
    Ok(())
}
