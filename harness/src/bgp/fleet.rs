//! BIRD for a whole lab: a daemon per node and family and one per family in
//! the fabric, started together, reconfigured when a node's IPAM blocks
//! change (as confd re-renders and reloads), asked about sessions and
//! routes, and stopped together.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::Serialize;

use super::process::{BirdDaemon, BirdError};
use super::render::{render_fabric, render_node};
use super::show::{BirdRoute, ProtocolStatus};
use super::timers::BirdTimers;
use super::topology::{BgpNode, BgpTopology, ClusterRoutes, CALICO_DEFAULT_AS, FABRIC_AS};
use crate::calico::{IpFamily, IpPool};
use crate::lab::addressing::{FABRIC_NODES_V4, FABRIC_NODES_V6, SEGMENT_V4_PREFIX};
use crate::lab::daemons::lab_dir;
use crate::lab::spec::FABRIC;
use crate::lab::{Lab, LabError};

/// Poll interval while waiting on BIRD.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum BgpError {
    #[error(transparent)]
    Bird(#[from] BirdError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    NoRoom(#[from] super::neighbours::NoRoom),
    #[error("no BIRD runs for {member} ({family:?})")]
    NoDaemon { member: String, family: IpFamily },
    #[error("BGP sessions not established after {waited:?}: {sessions}")]
    NotEstablished { waited: Duration, sessions: String },
    #[error("after {waited:?}, {member}'s BIRD still does not have what was awaited for {prefix}; it has: {found}")]
    NotConverged {
        waited: Duration,
        member: String,
        prefix: IpNet,
        found: String,
    },
    #[error("{} errors stopping BIRD: {}", .0.len(), .0.join("; "))]
    Stop(Vec<String>),
}

/// What one daemon says about itself (for `state` and diagnostics).
#[derive(Clone, Debug, Serialize)]
pub struct DaemonState {
    pub member: String,
    pub daemon: String,
    pub protocols: Vec<ProtocolStatus>,
    pub routes: Vec<BirdRoute>,
}

/// The BGP topology of a running lab: its nodes' uplinks and blocks, the
/// fabric's addresses, the scenario's pools, and files under the lab's
/// directory.
pub fn topology_of(
    lab: &Lab,
    pools: &[IpPool],
    timers: BirdTimers,
) -> Result<BgpTopology, LabError> {
    let mut nodes = Vec::new();
    for spec in &lab.spec().nodes {
        let ipv4 = match lab.node_uplink(&spec.name, IpFamily::V4)? {
            Some(IpAddr::V4(address)) => address,
            _ => unreachable!("every node has an IPv4 uplink"),
        };
        nodes.push(BgpNode {
            name: spec.name.clone(),
            ipv4,
            ipv4_network: ipnet::Ipv4Net::new(ipv4, SEGMENT_V4_PREFIX)
                .expect("a valid prefix length")
                .trunc(),
            ipv6: lab.node_uplink(&spec.name, IpFamily::V6)?,
            blocks: spec.blocks.clone(),
        });
    }
    Ok(BgpTopology {
        nodes,
        fabric_ipv4: FABRIC_NODES_V4,
        fabric_ipv6: lab.spec().dual_stack.then_some(FABRIC_NODES_V6.into()),
        pools: pools.to_vec(),
        // Upstream BIRD has no `krt_tunnel`, which the other policies need
        // for IPIP pools; the lab runs Calico's default.
        cluster_routes: ClusterRoutes::default(),
        node_as: CALICO_DEFAULT_AS,
        fabric_as: FABRIC_AS,
        log_dir: lab_dir(lab.name()),
        timers,
    })
}

/// Sessions and routes of every BIRD of a lab that runs (maybe in another
/// process: `state` knows only the lab's name), found by the control
/// sockets in the lab's directory (`<member>.<daemon>.ctl`).
pub fn lab_state(lab: &str) -> Vec<DaemonState> {
    let mut sockets: Vec<std::path::PathBuf> = std::fs::read_dir(lab_dir(lab))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "ctl"))
        .collect();
    sockets.sort();
    sockets
        .into_iter()
        .filter_map(|socket| {
            let stem = socket.file_stem()?.to_str()?.to_string();
            let (member, daemon) = stem.rsplit_once('.')?;
            let birdc = super::birdc::Birdc::new(socket.clone());
            Some(DaemonState {
                member: member.to_string(),
                daemon: daemon.to_string(),
                protocols: birdc.protocols().ok()?,
                routes: birdc.routes().unwrap_or_default(),
            })
        })
        .collect()
}

/// Every BIRD of one lab.
pub struct LabBird {
    topology: BgpTopology,
    daemons: Vec<BirdDaemon>,
    /// Every session has been seen established (see
    /// [`LabBird::wait_established`]).
    established: AtomicBool,
}

impl LabBird {
    /// Start BIRD in the fabric and in every node of `lab`, for each family
    /// the topology has, all at once (each start waits for its daemon's
    /// control socket). Daemons started before a failure are stopped.
    pub fn start(lab: &Lab, topology: BgpTopology) -> Result<Self, BgpError> {
        for family in topology.families() {
            if let Some(limit) = super::neighbours::host_limit(family) {
                super::neighbours::check(topology.nodes.len(), family, limit)?;
            }
        }
        let dir = lab_dir(lab.name());
        // Fabric first, then the nodes, per family: the order of `daemons`.
        let mut plans = Vec::new();
        for family in topology.families() {
            let fabric = render_fabric(&topology, family);
            plans.push((lab.netns(FABRIC)?.clone(), FABRIC, family, fabric));
            for node in &topology.nodes {
                let config = render_node(&topology, node, family);
                plans.push((lab.netns(&node.name)?.clone(), &node.name, family, config));
            }
        }
        let started: Vec<Result<BirdDaemon, BirdError>> = std::thread::scope(|scope| {
            let starting: Vec<_> = plans
                .iter()
                .map(|(netns, member, family, config)| {
                    let dir = &dir;
                    scope.spawn(move || BirdDaemon::start(netns, member, *family, dir, config))
                })
                .collect();
            starting
                .into_iter()
                .map(|start| start.join().expect("starting a BIRD daemon panicked"))
                .collect()
        });
        // On an error the daemons that did start go with `started`.
        let daemons = started.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            topology,
            daemons,
            established: AtomicBool::new(false),
        })
    }

    /// The daemons a kept lab still runs (see [`BirdDaemon::adopt`]), for
    /// `topology` (whose node blocks the caller then sets with
    /// [`LabBird::note_node_blocks`] as its replayed steps give them).
    pub fn adopt(lab: &Lab, topology: BgpTopology) -> Result<Self, BgpError> {
        let dir = lab_dir(lab.name());
        let mut daemons = Vec::new();
        for family in topology.families() {
            daemons.push(BirdDaemon::adopt(FABRIC, family, &dir)?);
            for node in &topology.nodes {
                daemons.push(BirdDaemon::adopt(&node.name, family, &dir)?);
            }
        }
        // A kept lab's sessions came up before it was kept.
        Ok(Self {
            topology,
            daemons,
            established: AtomicBool::new(true),
        })
    }

    /// Record `node`'s blocks without telling its BIRD: it already has them
    /// (a replayed step of a lab taken over).
    pub fn note_node_blocks(&mut self, node: &str, blocks: &[IpNet]) {
        if let Some(entry) = self.topology.nodes.iter_mut().find(|n| n.name == node) {
            entry.blocks = blocks.to_vec();
        }
    }

    pub fn topology(&self) -> &BgpTopology {
        &self.topology
    }

    pub fn daemons(&self) -> &[BirdDaemon] {
        &self.daemons
    }

    fn daemon(&self, member: &str, family: IpFamily) -> Result<&BirdDaemon, BgpError> {
        self.daemons
            .iter()
            .find(|d| d.member() == member && d.family() == family)
            .ok_or_else(|| BgpError::NoDaemon {
                member: member.to_string(),
                family,
            })
    }

    /// The first daemon that is gone, with its log.
    pub fn check_alive(&self) -> Result<(), BirdError> {
        self.daemons.iter().try_for_each(BirdDaemon::check_alive)
    }

    /// Wait until every BGP session of every daemon is established. Once
    /// they have been, later calls return at once (a daemon that dies
    /// afterwards is [`LabBird::check_alive`]'s business).
    ///
    /// BIRD 1.x opens its first connection when its connect-delay timer
    /// fires, and its timers tick in whole seconds of the monotonic clock
    /// (sysdep/unix/io.c `update_times`; proto/bgp/bgp.c `bgp_active` waits
    /// at least one second): sessions come up at the first second boundary
    /// after the daemons start, 0 to 1 s later. A caller that has other work
    /// starts the daemons, does it, and waits here only when it needs BGP.
    pub fn wait_established(&self, timeout: Duration) -> Result<(), BgpError> {
        if self.established.load(Ordering::Acquire) {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let mut waiting = Vec::new();
            for daemon in &self.daemons {
                let protocols = daemon.birdc().protocols().unwrap_or_default();
                for protocol in protocols.iter().filter(|p| p.protocol == "BGP") {
                    if !protocol.established() {
                        waiting.push(format!(
                            "{} {} {} {}",
                            daemon.member(),
                            protocol.name,
                            protocol.state,
                            protocol.info
                        ));
                    }
                }
            }
            if waiting.is_empty() {
                tracing::debug!(elapsed = ?started.elapsed(), "BGP sessions established");
                self.established.store(true, Ordering::Release);
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(BgpError::NotEstablished {
                    waited: started.elapsed(),
                    sessions: waiting.join(", "),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Give `node` its current IPAM blocks: re-render its configurations and
    /// reload them, as confd does when a block affinity appears.
    pub fn set_node_blocks(&mut self, node: &str, blocks: &[IpNet]) -> Result<(), BgpError> {
        let Some(entry) = self.topology.nodes.iter_mut().find(|n| n.name == node) else {
            return Err(BgpError::NoDaemon {
                member: node.to_string(),
                family: IpFamily::V4,
            });
        };
        entry.blocks = blocks.to_vec();
        for family in self.topology.families() {
            let node = self.topology.node(node).expect("the node was just found");
            let config = render_node(&self.topology, node, family);
            self.daemon(&node.name, family)?.reconfigure(&config)?;
        }
        Ok(())
    }

    /// The routes `member`'s BIRD holds for `prefix`.
    pub fn routes_for(&self, member: &str, prefix: IpNet) -> Result<Vec<BirdRoute>, BgpError> {
        let daemon = self.daemon(member, IpFamily::of(&prefix.addr()))?;
        daemon.check_alive()?;
        let routes = daemon.birdc().routes().map_err(|source| BirdError::Birdc {
            daemon: daemon.daemon(),
            member: member.to_string(),
            source: Box::new(source),
        })?;
        Ok(routes.into_iter().filter(|r| r.prefix == prefix).collect())
    }

    /// Wait until `member`'s BIRD holds routes for `prefix` that satisfy
    /// `done` (called with the routes, maybe none), and return them.
    pub fn wait_for_routes(
        &self,
        member: &str,
        prefix: IpNet,
        timeout: Duration,
        done: impl Fn(&[BirdRoute]) -> bool,
    ) -> Result<Vec<BirdRoute>, BgpError> {
        let started = Instant::now();
        loop {
            let routes = self.routes_for(member, prefix)?;
            if done(&routes) {
                return Ok(routes);
            }
            if started.elapsed() >= timeout {
                return Err(BgpError::NotConverged {
                    waited: started.elapsed(),
                    member: member.to_string(),
                    prefix,
                    found: format!("{routes:?}"),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until every member but `origin` (the other nodes and the fabric)
    /// holds a route for `prefix`.
    pub fn wait_exported(
        &self,
        origin: &str,
        prefix: IpNet,
        timeout: Duration,
    ) -> Result<(), BgpError> {
        let family = IpFamily::of(&prefix.addr());
        for daemon in &self.daemons {
            if daemon.member() != origin && daemon.family() == family {
                self.wait_for_routes(daemon.member(), prefix, timeout, |r| !r.is_empty())?;
            }
        }
        Ok(())
    }

    /// Leave every daemon running (see [`BirdDaemon::detach`]).
    pub fn detach(self) {
        for daemon in self.daemons {
            daemon.detach();
        }
    }

    /// Sessions and routes of every daemon; a daemon that does not answer
    /// shows none.
    pub fn state(&self) -> Vec<DaemonState> {
        self.daemons
            .iter()
            .map(|daemon| {
                let birdc = daemon.birdc();
                DaemonState {
                    member: daemon.member().to_string(),
                    daemon: daemon.daemon().to_string(),
                    protocols: birdc.protocols().unwrap_or_default(),
                    routes: birdc.routes().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Stop every daemon; keeps going after errors and returns them all.
    pub fn stop(&mut self) -> Result<(), BgpError> {
        let errors: Vec<String> = self
            .daemons
            .iter_mut()
            .filter_map(|d| d.stop().err().map(|e| e.to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(BgpError::Stop(errors))
        }
    }
}
