//! The case's routing: BIRD started with the lab and told about each node's
//! IPAM blocks as confd would be, or the route model programming the block
//! routes itself.

use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::case::ScenarioRun;
use crate::bgp::{topology_of, BirdTimers, LabBird};
use crate::calico::IpPool;
use crate::lab::Lab;

/// How long BIRD may take to bring every session up, or to carry a new
/// block to every other member. Sessions need about a second; the rest is
/// room for a loaded machine.
pub(super) const BGP_PATIENCE: Duration = Duration::from_secs(30);

/// Start BIRD in every node and the fabric of `lab` and wait for every
/// session. Runs blocking work on this worker (the lab's netlink runs on others).
pub(super) fn start_bird(lab: &Lab, pools: &[IpPool]) -> Result<LabBird, String> {
    tokio::task::block_in_place(|| {
        let topology = topology_of(lab, pools, BirdTimers::lab()).map_err(|e| e.to_string())?;
        let bird = LabBird::start(lab, topology).map_err(|e| format!("starting BIRD: {e}"))?;
        bird.wait_established(BGP_PATIENCE)
            .map_err(|e| format!("starting BIRD: {e}"))?;
        Ok(bird)
    })
}

impl ScenarioRun<'_> {
    /// Route a node's new IPAM blocks: under BIRD, reload the node's
    /// configuration with its blocks (confd's re-render) and wait until
    /// every other member holds them, so the pod is reachable when the step
    /// ends; under the model, program the routes directly.
    pub(super) async fn route_blocks(&mut self, node: &str, new: &[IpNet]) -> Result<(), String> {
        let Some(bird) = self.bird.as_mut() else {
            return self
                .lab
                .add_node_blocks(node, new)
                .await
                .map_err(|e| e.to_string());
        };
        let blocks = self.ipam.node_blocks(node);
        tokio::task::block_in_place(|| {
            bird.set_node_blocks(node, &blocks)?;
            for block in new {
                bird.wait_exported(node, *block, BGP_PATIENCE)?;
            }
            Ok::<(), crate::bgp::BgpError>(())
        })
        .map_err(|e| format!("routing blocks of {node} with BIRD: {e}"))
    }

    /// Fails with the log of a BIRD that is no longer running.
    pub(super) fn check_bird(&self) -> Result<(), String> {
        match &self.bird {
            Some(bird) => bird.check_alive().map_err(|e| e.to_string()),
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
