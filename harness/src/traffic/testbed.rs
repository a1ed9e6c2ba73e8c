//! The smallest topology with a floating IP, for the traffic engine's own tests
//! and benchmark (the real labs come from `lab/`):
//!
//! ```text
//!  client ns                node ns (forwarding, DNAT)                pod ns
//!  eth0 198.18.1.10/24 ---- x0 198.18.1.1/24   p0 198.19.0.1/24 ---- eth0 198.19.0.5/24
//!       2001:db8:fe::10/64     2001:db8:fe::1/64  2001:db8:1::1/64        2001:db8:1::5/64
//!  DNAT on the node: 203.0.113.10 -> 198.19.0.5, 2001:db8:f1::10 -> 2001:db8:1::5
//! ```
//!
//! Links are created by rtnetlink inside the namespaces (the veth peer is made
//! directly in its target namespace); the DNAT is an nft table in the node.
//! Dropping the testbed deletes its namespaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::lab::netns::Netns;

pub const FLOATING_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const FLOATING_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf1, 0, 0, 0, 0, 0x10);
pub const POD_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 5);
pub const POD_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 5);
/// A second pod on its own segment (node `p1` 198.19.1.1/24, 2001:db8:2::1/64),
/// for moves.
pub const POD2_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 6);
pub const POD2_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 6);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfe, 0, 0, 0, 0, 0x10);

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error(transparent)]
    Netns(#[from] crate::lab::netns::NetnsError),
    #[error("testbed '{lab}': {what}: {reason}")]
    Setup {
        lab: String,
        what: String,
        reason: String,
    },
}

pub struct FipTestbed {
    pub lab: String,
    pub client: Netns,
    pub node: Netns,
    pub pod: Netns,
    pub pod2: Netns,
    names: Vec<String>,
}

impl Drop for FipTestbed {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Netns::delete(name);
        }
    }
}

impl FipTestbed {
    /// Build the topology for lab `lab` (namespaces
    /// `fiph-<lab>-{client,node,pod,pod2}`); the floating IP leads to `pod`.
    pub async fn create(lab: &str) -> Result<FipTestbed, TestbedError> {
        let names: Vec<String> = ["client", "node", "pod", "pod2"]
            .iter()
            .map(|n| format!("fiph-{lab}-{n}"))
            .collect();
        let mut made = Vec::new();
        let guard = PartialGuard(&mut made);
        for name in &names {
            guard.0.push(Netns::create(name)?);
        }
        let (client, node, pod, pod2) = (
            guard.0[0].clone(),
            guard.0[1].clone(),
            guard.0[2].clone(),
            guard.0[3].clone(),
        );
        let bed = FipTestbed {
            lab: lab.into(),
            client,
            node,
            pod,
            pod2,
            names: names.clone(),
        };
        // From here the testbed's own Drop cleans up.
        guard.0.clear();
        bed.wire().await?;
        Ok(bed)
    }

    fn fail(&self, what: &str, reason: impl ToString) -> TestbedError {
        TestbedError::Setup {
            lab: self.lab.clone(),
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    async fn wire(&self) -> Result<(), TestbedError> {
        let settings = [
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ];
        for ns in [&self.client, &self.node, &self.pod, &self.pod2] {
            ns.sysctls(&settings)?;
        }
        self.node.sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ])?;
        let node = Netlink::open(&self.node)
            .await
            .map_err(|e| self.fail("netlink", e))?;
        node.veth("x0", "eth0", &self.client)
            .await
            .map_err(|e| self.fail("veth x0", e))?;
        node.veth("p0", "eth0", &self.pod)
            .await
            .map_err(|e| self.fail("veth p0", e))?;
        node.veth("p1", "eth0", &self.pod2)
            .await
            .map_err(|e| self.fail("veth p1", e))?;
        let v4 = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
        let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
        node.setup_link(
            "x0",
            &[(v4([198, 18, 1, 1]), 24), (v6("2001:db8:fe::1"), 64)],
        )
        .await
        .map_err(|e| self.fail("node x0", e))?;
        node.setup_link(
            "p0",
            &[(v4([198, 19, 0, 1]), 24), (v6("2001:db8:1::1"), 64)],
        )
        .await
        .map_err(|e| self.fail("node p0", e))?;
        node.setup_link(
            "p1",
            &[(v4([198, 19, 1, 1]), 24), (v6("2001:db8:2::1"), 64)],
        )
        .await
        .map_err(|e| self.fail("node p1", e))?;
        let gateways = [
            (
                &self.client,
                IpAddr::V4(CLIENT_V4),
                IpAddr::V6(CLIENT_V6),
                [198, 18, 1, 1],
                "2001:db8:fe::1",
            ),
            (
                &self.pod,
                IpAddr::V4(POD_V4),
                IpAddr::V6(POD_V6),
                [198, 19, 0, 1],
                "2001:db8:1::1",
            ),
            (
                &self.pod2,
                IpAddr::V4(POD2_V4),
                IpAddr::V6(POD2_V6),
                [198, 19, 1, 1],
                "2001:db8:2::1",
            ),
        ];
        for (ns, a4, a6, gw4, gw6) in gateways {
            let nl = Netlink::open(ns)
                .await
                .map_err(|e| self.fail("netlink", e))?;
            nl.setup_link("lo", &[])
                .await
                .map_err(|e| self.fail("lo", e))?;
            nl.setup_link("eth0", &[(a4, 24), (a6, 64)])
                .await
                .map_err(|e| self.fail("eth0", e))?;
            nl.default_routes(Ipv4Addr::from(gw4), gw6.parse().unwrap())
                .await
                .map_err(|e| self.fail("default routes", e))?;
        }
        let ruleset = format!(
            "table ip fiph_fip {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  \
             ip daddr {FLOATING_V4} dnat to {POD_V4}\n }}\n}}\n\
             table ip6 fiph_fip {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  \
             ip6 daddr {FLOATING_V6} dnat to {POD_V6}\n }}\n}}\n"
        );
        self.nft(&ruleset)
    }

    /// Switch the IPv4 floating IP to stateless translation towards `pod`
    /// (untracked; destination rewritten on the way in, source on the way
    /// out), so that a later call moves even a running flow at once: a stand-in
    /// for a move plus conntrack cleanup, to exercise streams.
    pub fn stateless_floating_ip_to(&self, pod: Ipv4Addr) -> Result<(), TestbedError> {
        self.nft(&format!(
            "delete table ip fiph_fip
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
                   ip saddr {pod} ip daddr {CLIENT_V4} ip saddr set {FLOATING_V4}
 }}
             }}
"
        ))
    }

    /// Load an nft ruleset in the node namespace.
    pub fn nft(&self, ruleset: &str) -> Result<(), TestbedError> {
        use std::io::Write;
        let mut child = self
            .node
            .command("nft")
            .arg("-f")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| self.fail("run nft", e))?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ruleset.as_bytes())
            .map_err(|e| self.fail("nft stdin", e))?;
        let out = child.wait_with_output().map_err(|e| self.fail("nft", e))?;
        if !out.status.success() {
            return Err(self.fail("nft", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// The node's conntrack table. /proc/net follows the process's main thread,
    /// so read the namespace thread's own view.
    pub fn node_conntrack(&self) -> Result<String, TestbedError> {
        self.node
            .run(|| std::fs::read_to_string("/proc/thread-self/net/nf_conntrack"))?
            .map_err(|e| self.fail("read /proc/thread-self/net/nf_conntrack", e))
    }
}

struct PartialGuard<'a>(&'a mut Vec<Netns>);

impl Drop for PartialGuard<'_> {
    fn drop(&mut self) {
        for ns in self.0.iter() {
            let _ = Netns::delete(ns.name());
        }
    }
}

/// An rtnetlink handle whose socket lives in one namespace.
struct Netlink {
    ns: Netns,
    handle: rtnetlink::Handle,
}

impl Netlink {
    async fn open(ns: &Netns) -> std::io::Result<Netlink> {
        let runtime = tokio::runtime::Handle::current();
        let (connection, handle, _) = ns
            .run(move || {
                // The socket registers with the reactor when created: enter the
                // runtime on this (non-worker) thread for that.
                let _entered = runtime.enter();
                rtnetlink::new_connection()
            })
            .map_err(std::io::Error::other)??;
        tokio::spawn(connection);
        Ok(Netlink {
            ns: ns.clone(),
            handle,
        })
    }

    async fn index(&self, name: &str) -> Result<u32, rtnetlink::Error> {
        let link = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await?;
        Ok(link.map(|l| l.header.index).unwrap_or(0))
    }

    /// A veth pair: `name` here, `peer` created directly in `peer_ns`.
    async fn veth(&self, name: &str, peer: &str, peer_ns: &Netns) -> Result<(), rtnetlink::Error> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(peer_ns.file().as_raw_fd())
            .build();
        let mut message = LinkVeth::new(name, peer).build();
        for attr in message.attributes.iter_mut() {
            if let rtnetlink::packet_route::link::LinkAttribute::LinkInfo(infos) = attr {
                for info in infos.iter_mut() {
                    if let rtnetlink::packet_route::link::LinkInfo::Data(data) = info {
                        *data = InfoData::Veth(InfoVeth::Peer(peer_msg.clone()));
                    }
                }
            }
        }
        let _ = &self.ns;
        self.handle.link().add(message).execute().await
    }

    async fn setup_link(
        &self,
        name: &str,
        addresses: &[(IpAddr, u8)],
    ) -> Result<(), rtnetlink::Error> {
        let index = self.index(name).await?;
        for (address, prefix) in addresses {
            self.handle
                .address()
                .add(index, *address, *prefix)
                .execute()
                .await?;
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
    }

    async fn default_routes(&self, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<(), rtnetlink::Error> {
        self.handle
            .route()
            .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(v4).build())
            .execute()
            .await?;
        self.handle
            .route()
            .add(RouteMessageBuilder::<Ipv6Addr>::new().gateway(v6).build())
            .execute()
            .await
    }
}
