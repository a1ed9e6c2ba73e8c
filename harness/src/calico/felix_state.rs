//! Felix's state between updates: what every member holds, and what it was
//! computed from, so the next update computes only what it touches when only
//! a few endpoints changed ([`super::incremental`]).

use serde::Serialize;

use super::desired::{desired_state, ClusterState, DesiredState, Topology};
use super::diff::{diff, Changes, ConntrackProfile};
use super::incremental::{self, Memory};

/// What Felix and BGP hold everywhere, and how it was reached.
#[derive(Clone, Debug, Serialize)]
pub struct FelixState {
    current: DesiredState,
    profile: ConntrackProfile,
    #[serde(skip)]
    memory: Option<Memory>,
}

impl FelixState {
    /// Nothing programmed anywhere yet.
    pub fn new(profile: ConntrackProfile) -> Self {
        Self {
            current: DesiredState::default(),
            profile,
            memory: None,
        }
    }

    pub fn current(&self) -> &DesiredState {
        &self.current
    }

    /// Move to what `cluster` asks for; the changes that takes.
    pub fn update(&mut self, cluster: &ClusterState, topology: &Topology) -> Changes {
        let changed = self
            .memory
            .as_ref()
            .and_then(|memory| incremental::changed_endpoints(memory, cluster, topology));
        match (changed, self.memory.as_mut()) {
            (Some(changed), Some(memory)) => {
                let (changes, patch) = incremental::changes(
                    &self.current,
                    memory,
                    cluster,
                    changed,
                    self.profile,
                    |_| {},
                );
                incremental::commit(&mut self.current, memory, cluster, patch);
                changes
            }
            _ => {
                let desired = desired_state(cluster, topology);
                let changes = diff(&self.current, &desired, self.profile);
                self.current = desired;
                self.memory = Some(Memory {
                    cluster: cluster.clone(),
                    topology: topology.clone(),
                });
                changes
            }
        }
    }
}
