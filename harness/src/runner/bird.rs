//! The lab's BIRD daemons: started with a fresh lab, or taken over with a
//! kept one, and how long BGP may take.

use std::time::Duration;

use super::case::ScenarioRun;
use super::error::RunnerError;
use crate::bgp::{topology_of, BirdTimers, LabBird};
use crate::calico::IpPool;
use crate::lab::Lab;

/// How long BIRD may take to bring every session up, or to carry a new
/// block to every other member. Sessions need about a second; the rest is
/// room for a loaded machine.
pub(super) const BGP_PATIENCE: Duration = Duration::from_secs(30);

/// Start BIRD in every node and the fabric of `lab`, without waiting for
/// the sessions: they come up within a second (BIRD's connect delay, see
/// [`LabBird::wait_established`]) while the case sets up its dataplane and
/// pods; [`ScenarioRun::bgp_sessions_up`] waits for them before anything
/// waits on BGP or sends traffic. Runs blocking work on this worker (the
/// lab's netlink runs on others).
pub(super) fn start_bird(lab: &Lab, pools: &[IpPool]) -> Result<LabBird, RunnerError> {
    tokio::task::block_in_place(|| {
        let topology = topology_of(lab, pools, BirdTimers::lab())?;
        LabBird::start(lab, topology).map_err(|e| RunnerError::StartBird(e.into()))
    })
}

impl ScenarioRun<'_> {
    /// Under BIRD, wait (at most [`BGP_PATIENCE`]) until every BGP session
    /// of the lab is established; at once after the first time. Called
    /// before the case first waits for BGP to carry a route and before any
    /// traffic, so no traffic meets a lab whose sessions are still coming up.
    pub(super) fn bgp_sessions_up(&self) -> Result<(), RunnerError> {
        let Some(bird) = &self.bird else {
            return Ok(());
        };
        tokio::task::block_in_place(|| bird.wait_established(BGP_PATIENCE))
            .map_err(|e| RunnerError::StartBird(e.into()))
    }
}

/// The BIRD daemons a kept lab still runs, for its scenario's pools.
pub(super) fn adopt_bird(lab: &Lab, pools: &[IpPool]) -> Result<LabBird, RunnerError> {
    let topology = topology_of(lab, pools, BirdTimers::lab())?;
    LabBird::adopt(lab, topology).map_err(|e| RunnerError::AdoptBird(e.into()))
}
