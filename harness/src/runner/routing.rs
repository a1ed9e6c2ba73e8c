//! The case's routing: BIRD started with the lab and told about each node's
//! IPAM blocks as confd would be, or the route model programming the block
//! routes itself.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::bird::BGP_PATIENCE;
use super::case::ScenarioRun;
use super::error::RunnerError;
use crate::calico::IpFamily;
use crate::control::RouteNext;

impl ScenarioRun<'_> {
    /// Route a node's new IPAM blocks: under BIRD, reload the node's
    /// configuration with its blocks (confd's re-render; BIRD exports them
    /// while the pods are wired, and [`Self::wait_blocks_exported`] waits for
    /// them); under the model, program the routes directly.
    pub(super) async fn route_blocks(
        &mut self,
        node: &str,
        new: &[IpNet],
    ) -> Result<(), RunnerError> {
        let blocks = self.model.node_blocks(node);
        if self.mode.adopting {
            // The lab routes them already; BIRD's picture must still know
            // them for later reconfigurations of this node.
            if let Some(bird) = self.bird.as_mut() {
                bird.note_node_blocks(node, &blocks);
            }
            return Ok(());
        }
        let Some(bird) = self.bird.as_mut() else {
            return self
                .lab
                .add_node_blocks(node, new)
                .await
                .map_err(RunnerError::Lab);
        };
        tokio::task::block_in_place(|| bird.set_node_blocks(node, &blocks)).map_err(|source| {
            RunnerError::RouteBlocks {
                node: node.to_string(),
                source: source.into(),
            }
        })
    }

    /// Under BIRD, after Felix has programmed the pods of `new` blocks: wait
    /// until every other member holds each block, so its pods are reachable
    /// when the step ends. A block of one address has no blackhole
    /// (bird_aggr.cfg.template skips `/32` blocks, bird6_aggr.cfg.template
    /// `/128`): BIRD exports it only once it learns the pod's own route.
    pub(super) fn wait_blocks_exported(&self, new: &[(String, IpNet)]) -> Result<(), RunnerError> {
        let Some(bird) = &self.bird else {
            return Ok(());
        };
        if self.mode.adopting || new.is_empty() {
            return Ok(());
        }
        self.bgp_sessions_up()?;
        for (node, block) in new {
            tokio::task::block_in_place(|| bird.wait_exported(node, *block, BGP_PATIENCE))
                .map_err(|source| RunnerError::RouteBlocks {
                    node: node.clone(),
                    source: source.into(),
                })?;
        }
        Ok(())
    }

    /// Under BIRD, after an update: wait until no member's BIRD routes one of
    /// `floating_ips` to a node that no longer announces it (the node's
    /// device route, Felix's, is gone), so that the next step meets a network
    /// whose withdrawals of moved and removed floating IPs have arrived, as
    /// new blocks are waited for. Without this, whether a packet sent right
    /// after a removal meets the fabric's old route or none (an ICMP error)
    /// depends on the machine's load.
    pub(super) fn wait_withdrawn(&self, floating_ips: &[IpAddr]) -> Result<(), RunnerError> {
        let Some(bird) = &self.bird else {
            return Ok(());
        };
        self.bgp_sessions_up()?;
        let current = self.control.current();
        for fip in floating_ips {
            let announcers: Vec<&String> = current
                .routes
                .iter()
                .filter(|(_, routes)| {
                    routes
                        .iter()
                        .any(|r| r.destination == *fip && matches!(r.next, RouteNext::Device(_)))
                })
                .map(|(member, _)| member)
                .collect();
            let family = IpFamily::of(fip);
            let allowed: Vec<IpAddr> = announcers
                .iter()
                .filter_map(|node| self.lab.node_uplink(node, family).ok().flatten())
                .collect();
            let prefix = IpNet::from(*fip);
            for daemon in bird.daemons() {
                if daemon.family() != family || announcers.iter().any(|a| *a == daemon.member()) {
                    continue;
                }
                tokio::task::block_in_place(|| {
                    bird.wait_for_routes(daemon.member(), prefix, BGP_PATIENCE, |routes| {
                        routes
                            .iter()
                            .all(|r| r.gateways.iter().all(|g| allowed.contains(g)))
                    })
                })
                .map_err(|source| RunnerError::NotWithdrawn {
                    floating_ip: *fip,
                    source: source.into(),
                })?;
            }
        }
        Ok(())
    }

    /// Fails with the log of a BIRD that is no longer running.
    pub(super) fn check_bird(&self) -> Result<(), RunnerError> {
        match &self.bird {
            Some(bird) => Ok(bird.check_alive()?),
            None => Ok(()),
        }
    }

    /// BIRD's sessions and routes, and each daemon's configuration and log,
    /// into a diagnostics bundle.
    pub(super) fn write_bird_diagnostics(&self, dir: &Path) {
        let Some(bird) = &self.bird else {
            return;
        };
        let bird_dir = dir.join("bird");
        if let Err(error) = std::fs::create_dir_all(&bird_dir) {
            tracing::warn!(%error, "could not write BIRD diagnostics");
            return;
        }
        if let Ok(state) = serde_json::to_string_pretty(&bird.state()) {
            let _ = std::fs::write(bird_dir.join("state.json"), state);
        }
        for daemon in bird.daemons() {
            for path in [daemon.config_path(), daemon.log_path()] {
                if let Some(name) = path.file_name() {
                    let _ = std::fs::copy(&path, bird_dir.join(name));
                }
            }
        }
    }
}
