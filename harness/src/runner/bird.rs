//! The lab's BIRD daemons: started with a fresh lab, or taken over with a
//! kept one, and how long BGP may take.

use std::time::Duration;

use ipnet::IpNet;

use super::error::RunnerError;
use crate::bgp::{topology_of, BirdTimers, LabBird};
use crate::calico::{IpFamily, IpPool};
use crate::lab::Lab;

/// How long BIRD may take to bring every session up, or to carry a new
/// block to every other member. Sessions need about a second; the rest is
/// room for a loaded machine.
pub(super) const BGP_PATIENCE: Duration = Duration::from_secs(30);

/// Start BIRD in every node and the fabric of `lab` and wait for every
/// session. Runs blocking work on this worker (the lab's netlink runs on others).
pub(super) fn start_bird(lab: &Lab, pools: &[IpPool]) -> Result<LabBird, RunnerError> {
    tokio::task::block_in_place(|| {
        let topology = topology_of(lab, pools, BirdTimers::lab())?;
        let bird = LabBird::start(lab, topology).map_err(|e| RunnerError::StartBird(e.into()))?;
        bird.wait_established(BGP_PATIENCE)
            .map_err(|e| RunnerError::StartBird(e.into()))?;
        Ok(bird)
    })
}

/// A block of one address (blockSize 32 or 128).
pub(super) fn single_address(block: &IpNet) -> bool {
    block.prefix_len() == IpFamily::of(&block.addr()).host_prefix()
}

/// The BIRD daemons a kept lab still runs, for its scenario's pools.
pub(super) fn adopt_bird(lab: &Lab, pools: &[IpPool]) -> Result<LabBird, RunnerError> {
    let topology = topology_of(lab, pools, BirdTimers::lab())?;
    LabBird::adopt(lab, topology).map_err(|e| RunnerError::AdoptBird(e.into()))
}
