//! The live state of one case: the Calico model of its cluster, and the lab,
//! traffic engine, control plane and routing that carry the model's effects
//! out, and looking names up in it (built and ended in `build.rs`).

use std::net::IpAddr;

use super::choice::DataplaneChoice;
use super::error::RunnerError;
use super::live_streams::Streams;
use super::options::RunOptions;
use super::pictures::Scene;
use crate::bgp::LabBird;
use crate::calico::Cluster;
use crate::check::AddressBook;
use crate::control::ControlPlane;
use crate::lab::Lab;
use crate::scenario::{Scenario, Target};
use crate::traffic::TrafficEngine;

/// How the case treats its lab.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Mode {
    /// Replaying the steps that brought a kept lab to its state (`replay`):
    /// the model follows them, the lab is only checked and taken over, not
    /// changed (pods adopted, the control plane told what the lab holds).
    pub(super) adopting: bool,
}

/// One case in progress: the steps change the model, and the lab follows
/// the model's effects.
pub(super) struct ScenarioRun<'a> {
    pub(super) scenario: &'a Scenario,
    /// What Calico holds: pods, IPAM, Felix's view and decisions, who holds
    /// each floating IP (`validate` runs the same model).
    pub(super) model: Cluster,
    pub(super) lab: Lab,
    pub(super) engine: TrafficEngine,
    pub(super) control: ControlPlane,
    /// The lab's BIRD daemons under [`crate::bgp::RoutingMode::Bird`].
    pub(super) bird: Option<LabBird>,
    pub(super) streams: Streams,
    pub(super) dataplane: DataplaneChoice,
    pub(super) options: RunOptions,
    pub(super) mode: Mode,
}

impl ScenarioRun<'_> {
    /// The address a target names.
    pub(super) fn resolve(&self, target: &Target) -> Result<IpAddr, RunnerError> {
        crate::scenario::resolve(&self.model, target).ok_or_else(|| match target {
            Target::Host { name, family } => RunnerError::NoAddress {
                name: name.clone(),
                family: *family,
            },
            Target::Address(address) => RunnerError::UnknownAddress(*address),
        })
    }

    /// What a picture of the lab is taken of, now.
    pub(super) fn scene(&self) -> Scene<'_> {
        Scene {
            members: &self.scenario.cluster,
            model: &self.model,
            lab: &self.lab,
            moves: self.streams.moves.len(),
        }
    }

    /// The sender's own addresses, and every pod's, for `from` / `pod` checks.
    pub(super) fn address_book(&self, sender: &str) -> AddressBook {
        crate::calico::predict::address_book(&self.model, sender)
    }
}
