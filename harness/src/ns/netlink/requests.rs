//! The rtnetlink messages of a pod's wiring, built once for both ways of
//! sending them: a [`super::Member`]'s async handle and a [`super::Batch`].

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkMessageBuilder, LinkUnspec};

use super::VethEnd;

/// A veth pair with the `local` end (up) in the sender's namespace and the
/// peer made directly in the namespace `peer_ns`. The peer cannot come up in
/// the same request (veth_open fails with ENOTCONN before the pair is
/// joined): its own namespace sets it up.
///
/// Each end has one transmit and one receive queue, asked for by number as
/// Calico's CNI plugin does (cni-plugin/pkg/plugin/plugin.go: `NumQueues`
/// defaults to 1; dataplane_linux.go `DoWorkloadNetnsSetUp` puts it in the
/// link attributes, which the netlink library copies to the peer). Left out,
/// the kernel makes one queue per CPU and then cuts them to one
/// (drivers/net/veth.c, `veth_init_queues`), which waits for an RCU grace
/// period while holding the rtnl lock: every link change on the machine
/// queues behind each veth made.
pub(crate) fn veth(local: &VethEnd<'_>, peer: &VethEnd<'_>, peer_ns: RawFd) -> LinkMessage {
    let mut peer_builder = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.name)
        .index(peer.index)
        .append_extra_attribute(LinkAttribute::NumTxQueues(1))
        .append_extra_attribute(LinkAttribute::NumRxQueues(1))
        .setns_by_fd(peer_ns);
    if let Some(mac) = peer.mac {
        peer_builder = peer_builder.address(mac.to_vec());
    }
    let mut builder = LinkMessageBuilder::<rtnetlink::LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(local.name)
        .index(local.index)
        .append_extra_attribute(LinkAttribute::NumTxQueues(1))
        .append_extra_attribute(LinkAttribute::NumRxQueues(1))
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_builder.build())));
    if let Some(mac) = local.mac {
        builder = builder.address(mac.to_vec());
    }
    if let Some(controller) = local.controller {
        builder = builder.controller(controller);
    }
    builder.build()
}

/// Set a link up.
pub(crate) fn link_up(index: u32) -> LinkMessage {
    LinkUnspec::new_with_index(index).up().build()
}

/// The IPv4 settings Calico's CNI plugin gives a workload's host-side
/// interface when the pod has an IPv4 address
/// (cni-plugin/pkg/dataplane/linux/dataplane_linux.go, `configureSysctls`:
/// `route_localnet`, `proxy_arp` and `forwarding` all 1), in one IFLA_INET_CONF
/// request that leaves other interfaces alone; with `up`, the link is set up
/// in the same request. (`proxy_delay` is a neighbour-table setting, written
/// under /proc/sys by the caller.)
pub(crate) fn workload_host_side_v4(index: u32, up: bool) -> LinkMessage {
    let mut conf = InetDevConf::default();
    conf.route_localnet = 1;
    conf.proxy_arp = 1;
    conf.forwarding = 1;
    let mut builder = LinkUnspec::new_with_index(index);
    if up {
        builder = builder.up();
    }
    builder
        .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::DevConfRequest(conf),
        ])]))
        .build()
}

/// An address on a link, as `ip address add` sends it (IFA_LOCAL and
/// IFA_ADDRESS for IPv4, IFA_ADDRESS for IPv6).
pub(crate) fn address(index: u32, address: IpAddr, prefix: u8) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = prefix;
    message.header.family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    if address.is_ipv4() {
        message.attributes.push(AddressAttribute::Local(address));
    }
    message.attributes.push(AddressAttribute::Address(address));
    message
}

/// A permanent ARP entry on a link, as `ip neigh replace ... nud permanent`
/// sends it: Felix's `addStaticARPEntry` (felix/routetable/route_table.go),
/// an RTN_UNICAST entry in state NUD_PERMANENT set with `NeighSet`.
pub(crate) fn permanent_arp(index: u32, address: Ipv4Addr, mac: [u8; 6]) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    message.header.kind = RouteType::Unicast;
    message.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet(address)),
        NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
    ];
    message
}
