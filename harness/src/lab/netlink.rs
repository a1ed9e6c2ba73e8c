//! The few rtnetlink requests a lab needs, each naming its namespace in errors,
//! and the opening of one netlink socket per namespace on a few dedicated threads.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoData, InfoKind, InfoVeth, LinkAttribute,
};
use rtnetlink::packet_route::route::{RouteScope, RouteType};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::error::LabError;
use super::netns::{write_sysctls_here, Netns};

/// A namespace of the lab with its own netlink socket.
#[derive(Clone, Debug)]
pub struct Member {
    pub netns: Netns,
    pub nl: Handle,
}

/// A namespace to create, with the sysctls to write in it before any link exists
/// (new links copy the namespace's `default` settings when they are made).
pub(crate) struct NamespaceJob {
    pub name: String,
    pub sysctls: Vec<(&'static str, &'static str)>,
}

/// Create namespaces on up to `threads` dedicated threads (never tokio workers),
/// write their sysctls and open a netlink socket inside each; the connections
/// run on `rt`. Results come back in job order.
pub(crate) fn create_members(
    rt: &tokio::runtime::Handle,
    jobs: &[NamespaceJob],
    threads: usize,
) -> Vec<Result<Member, LabError>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Member, LabError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                let _runtime = rt.enter();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = create_member_here(rt, job);
                    results.lock().expect("results lock")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                Err(LabError::Socket {
                    namespace: job.name.clone(),
                    source: std::io::Error::other("worker thread ended early"),
                })
            })
        })
        .collect()
}

fn create_member_here(rt: &tokio::runtime::Handle, job: &NamespaceJob) -> Result<Member, LabError> {
    let netns = Netns::create_and_enter(&job.name)?;
    write_sysctls_here(&job.name, &job.sysctls)?;
    let (connection, nl, _) = rtnetlink::new_connection().map_err(|source| LabError::Socket {
        namespace: job.name.clone(),
        source,
    })?;
    rt.spawn(connection);
    Ok(Member { netns, nl })
}

/// A netlink error's errno, if the kernel sent one.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Member {
    pub fn name(&self) -> &str {
        self.netns.name()
    }

    fn fail(&self, action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LabError + '_ {
        let action = action.into();
        move |source| LabError::Netlink {
            namespace: self.name().to_string(),
            action,
            source,
        }
    }

    pub(crate) async fn link_up(&self, index: u32, what: &str) -> Result<(), LabError> {
        self.nl
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(self.fail(format!("set {what} up")))
    }

    pub(crate) async fn add_bridge(&self, name: &str, index: u32) -> Result<(), LabError> {
        let message = LinkBridge::new(name).index(index).up().build();
        self.nl
            .link()
            .add(message)
            .execute()
            .await
            .map_err(self.fail(format!("create bridge {name}")))
    }

    /// Create a veth pair with this end (up) here and the peer directly in
    /// `peer_ns`, each with a fixed ifindex; the pair never touches the host
    /// namespace. The peer cannot come up in the same request (veth_open fails
    /// with ENOTCONN before the pair is joined): its namespace sets it up.
    pub(crate) async fn add_veth(
        &self,
        local: VethEnd<'_>,
        peer: VethEnd<'_>,
        peer_ns: &Netns,
    ) -> Result<(), LabError> {
        let mut peer_builder = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.name)
            .index(peer.index)
            .setns_by_fd(peer_ns.file().as_raw_fd());
        if let Some(mac) = peer.mac {
            peer_builder = peer_builder.address(mac.to_vec());
        }
        let mut builder =
            LinkMessageBuilder::<rtnetlink::LinkVeth>::new_with_info_kind(InfoKind::Veth)
                .name(local.name)
                .index(local.index)
                .up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_builder.build())));
        if let Some(mac) = local.mac {
            builder = builder.address(mac.to_vec());
        }
        if let Some(controller) = local.controller {
            builder = builder.controller(controller);
        }
        self.nl
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(self.fail(format!(
                "create veth {} (peer {} in {})",
                local.name,
                peer.name,
                peer_ns.name()
            )))
    }

    pub(crate) async fn delete_link(&self, index: u32, what: &str) -> Result<(), LabError> {
        match self.nl.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            other => other.map_err(self.fail(format!("delete {what}"))),
        }
    }

    /// Turn proxy ARP on for one interface (IFLA_INET_CONF), as Calico does for
    /// its host-side workload interfaces, without touching other interfaces.
    pub(crate) async fn set_proxy_arp(&self, index: u32, what: &str) -> Result<(), LabError> {
        let mut conf = InetDevConf::default();
        conf.proxy_arp = 1;
        let message = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]))
            .build();
        self.nl
            .link()
            .set(message)
            .execute()
            .await
            .map_err(self.fail(format!("enable proxy ARP on {what}")))
    }

    /// Make proxy ARP on one interface answer at once (RTM_SETNEIGHTBL, the
    /// netlink form of `net.ipv4.neigh.<if>.proxy_delay = 0`); otherwise the
    /// kernel delays each proxied reply by up to 0.8 s. Calico sets it too.
    pub(crate) async fn set_proxy_delay_zero(
        &self,
        index: u32,
        what: &str,
    ) -> Result<(), LabError> {
        use futures::StreamExt;
        use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
        use rtnetlink::packet_route::neighbour_table::{
            NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
        };
        use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
        let mut message = NeighbourTableMessage::default();
        message.header.family = AddressFamily::Inet;
        message.attributes = vec![
            NeighbourTableAttribute::Name("arp_cache".into()),
            NeighbourTableAttribute::Parms(vec![
                NeighbourTableParameter::Ifindex(index),
                NeighbourTableParameter::ProxyDelay(0),
            ]),
        ];
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::SetNeighbourTable(message));
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let fail = self.fail(format!("set proxy_delay 0 on {what}"));
        let mut handle = self.nl.clone();
        let mut responses = match handle.request(request) {
            Ok(r) => r,
            Err(e) => return Err(fail(e)),
        };
        while let Some(response) = responses.next().await {
            if let NetlinkPayload::Error(e) = response.payload {
                if e.code.is_some() {
                    return Err(fail(rtnetlink::Error::NetlinkError(e)));
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn add_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix: u8,
        what: &str,
    ) -> Result<(), LabError> {
        self.nl
            .address()
            .add(index, address, prefix)
            .replace()
            .execute()
            .await
            .map_err(self.fail(format!("add address {address}/{prefix} to {what}")))
    }

    /// Add or replace a route. `via` and `dev` may both be given (gateway on a
    /// given link); `onlink` skips the kernel's check that the gateway is reachable.
    pub(crate) async fn replace_route(&self, route: Route) -> Result<(), LabError> {
        let message = route.message().map_err(|e| LabError::Netlink {
            namespace: self.name().to_string(),
            action: format!("build route {route}"),
            source: rtnetlink::Error::InvalidNla(e),
        })?;
        self.nl
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(self.fail(format!("add route {route}")))
    }

    /// Remove the main-table route to `destination/prefix`, whatever its next hop;
    /// a missing route is not an error.
    pub(crate) async fn remove_route(
        &self,
        destination: IpAddr,
        prefix: u8,
    ) -> Result<(), LabError> {
        let route = Route {
            destination,
            prefix,
            via: None,
            dev: None,
            onlink: false,
            kind: RouteKind::Unicast,
        };
        let mut message = route.message().map_err(|e| LabError::Netlink {
            namespace: self.name().to_string(),
            action: format!("build route {route}"),
            source: rtnetlink::Error::InvalidNla(e),
        })?;
        // Match any scope and type: the kernel then deletes by destination alone.
        message.header.scope = RouteScope::NoWhere;
        message.header.kind = RouteType::Unspec;
        message.header.protocol = rtnetlink::packet_route::route::RouteProtocol::Unspec;
        match self.nl.route().del(message).execute().await {
            Err(e) if errno(&e) == Some(libc::ESRCH) || errno(&e) == Some(libc::ENOENT) => Ok(()),
            other => other.map_err(self.fail(format!("remove route {destination}/{prefix}"))),
        }
    }

    /// The ifindex of a link by name, if it exists.
    pub(crate) async fn link_index(&self, name: &str) -> Result<Option<u32>, LabError> {
        use futures::TryStreamExt;
        let mut links = self.nl.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(Some(link.header.index)),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(self.fail(format!("look up link {name}"))(e)),
        }
    }
}

pub(crate) struct VethEnd<'a> {
    pub name: &'a str,
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub controller: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Unicast,
    Blackhole,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Route {
    pub destination: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
    pub dev: Option<u32>,
    pub onlink: bool,
    pub kind: RouteKind,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.destination, self.prefix)?;
        if self.kind == RouteKind::Blackhole {
            write!(f, " blackhole")?;
        }
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        if let Some(dev) = self.dev {
            write!(f, " dev #{dev}")?;
        }
        Ok(())
    }
}

impl Route {
    pub fn via(destination: IpAddr, prefix: u8, gateway: IpAddr) -> Self {
        Self {
            destination,
            prefix,
            via: Some(gateway),
            dev: None,
            onlink: false,
            kind: RouteKind::Unicast,
        }
    }

    pub fn dev(destination: IpAddr, prefix: u8, index: u32) -> Self {
        Self {
            destination,
            prefix,
            via: None,
            dev: Some(index),
            onlink: false,
            kind: RouteKind::Unicast,
        }
    }

    fn message(&self) -> Result<rtnetlink::packet_route::route::RouteMessage, String> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.destination, self.prefix)
            .map_err(|e| e.to_string())?;
        if let Some(via) = self.via {
            builder = builder.gateway(via).map_err(|e| e.to_string())?;
        }
        if let Some(dev) = self.dev {
            builder = builder.output_interface(dev);
        }
        if self.onlink {
            builder = builder.onlink();
        }
        match self.kind {
            RouteKind::Blackhole => builder = builder.kind(RouteType::BlackHole),
            RouteKind::Unicast if self.via.is_none() && self.dev.is_some() => {
                // A workload route, as Felix's endpointManager programs it
                // (felix/dataplane/linux/endpoint_mgr.go: `normalRoutePriority`):
                // BIRD learns it with that metric, and Calico's calico_aggr
                // keeps such /32s of a node's own block to the node.
                builder = builder
                    .scope(RouteScope::Link)
                    .priority(crate::bgp::FELIX_NORMAL_ROUTE_PRIORITY)
            }
            RouteKind::Unicast => {}
        }
        Ok(builder.build())
    }
}
