//! The live state of one case: the Calico model of its cluster, and the lab,
//! traffic engine, control plane and routing that carry the model's effects
//! out; building it, looking names up in it, and tearing it down.

use std::net::IpAddr;

use super::choice::DataplaneChoice;
use super::error::RunnerError;
use super::replay::RunOptions;
use super::streams::Streams;
use crate::bgp::{LabBird, RoutingMode};
use crate::calico::Cluster;
use crate::check::AddressBook;
use crate::control::{ControlPlane, LabMembers};
use crate::lab::addressing::UPLINK;
use crate::lab::{Lab, LabSpec, NodeSpec};
use crate::scenario::{ConntrackProfile, Scenario, Target};
use crate::traffic::{EndpointKind, EndpointSpec, TrafficEngine};

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
    /// The lab's BIRD daemons under [`RoutingMode::Bird`].
    pub(super) bird: Option<LabBird>,
    pub(super) streams: Streams,
    pub(super) dataplane: DataplaneChoice,
    pub(super) options: RunOptions,
    pub(super) mode: Mode,
}

impl<'a> ScenarioRun<'a> {
    /// A fresh lab for the case, with BIRD started when it routes.
    pub(super) async fn start(
        scenario: &'a Scenario,
        dataplane: &DataplaneChoice,
        profile: ConntrackProfile,
        lab_name: &str,
        options: &RunOptions,
    ) -> Result<ScenarioRun<'a>, RunnerError> {
        Self::open(scenario, dataplane, profile, lab_name, options, false).await
    }

    /// The kept lab `lab_name`, taken over with its BIRD daemons, for steps
    /// replayed in adoption mode first (see [`ScenarioRun::adopting`]).
    pub(super) async fn adopt(
        scenario: &'a Scenario,
        dataplane: &DataplaneChoice,
        profile: ConntrackProfile,
        lab_name: &str,
        options: &RunOptions,
    ) -> Result<ScenarioRun<'a>, RunnerError> {
        Self::open(scenario, dataplane, profile, lab_name, options, true).await
    }

    async fn open(
        scenario: &'a Scenario,
        dataplane: &DataplaneChoice,
        profile: ConntrackProfile,
        lab_name: &str,
        options: &RunOptions,
        adopt: bool,
    ) -> Result<ScenarioRun<'a>, RunnerError> {
        let spec = lab_spec(scenario, lab_name);
        let lab = if adopt {
            Lab::adopt(spec).await?
        } else {
            Lab::build_for(spec, Some(scenario.source.clone()))
                .await
                .map_err(RunnerError::Build)?
        };
        let pools = &scenario.cluster.pools;
        let bird = match (options.routing, adopt) {
            (RoutingMode::Bird, false) => Some(super::routing::start_bird(&lab, pools)?),
            (RoutingMode::Bird, true) => Some(super::routing::adopt_bird(&lab, pools)?),
            (RoutingMode::Model, _) => None,
        };
        let traffic_name = lab.name().to_string();
        let mut run = Self::around(
            scenario,
            lab,
            bird,
            dataplane,
            profile,
            options,
            &traffic_name,
        )
        .await?;
        run.mode.adopting = adopt;
        Ok(run)
    }

    /// The case in `lab`, a lab reset after an earlier case of the same
    /// shape (see [`super::LabPool`]), routed by the model. `case_name` is
    /// the name the case's own lab would have had: the traffic's random
    /// choices and its packets' lab token come from it, so the case sends
    /// what it would send in a lab of its own, and a late packet of the
    /// lab's earlier case is not taken for one of this case.
    pub(super) async fn in_lab(
        scenario: &'a Scenario,
        lab: Lab,
        dataplane: &DataplaneChoice,
        profile: ConntrackProfile,
        options: &RunOptions,
        case_name: &str,
    ) -> Result<ScenarioRun<'a>, RunnerError> {
        Self::around(scenario, lab, None, dataplane, profile, options, case_name).await
    }

    /// The case's state around a lab: traffic endpoints for its hosts and a
    /// control plane that believes the lab holds nothing yet.
    async fn around(
        scenario: &'a Scenario,
        lab: Lab,
        bird: Option<LabBird>,
        dataplane: &DataplaneChoice,
        profile: ConntrackProfile,
        options: &RunOptions,
        traffic_name: &str,
    ) -> Result<ScenarioRun<'a>, RunnerError> {
        let cluster = &scenario.cluster;
        let engine = TrafficEngine::with_seed(traffic_name, options.seed);
        add_host_endpoints(&engine, &lab, cluster).await?;
        let members = LabMembers::of(&lab)?;
        let chosen = dataplane.build();
        let control = ControlPlane::new(std::sync::Arc::new(members), chosen.dataplane, profile)
            .with_policy(chosen.policy)
            .with_routing(options.routing)
            .with_order(scenario.update_order);
        let mut run = ScenarioRun {
            scenario,
            model: scenario.model(profile),
            lab,
            engine,
            control,
            bird,
            streams: Streams::default(),
            dataplane: dataplane.clone(),
            options: options.clone(),
            mode: Mode::default(),
        };
        // A driver starts with its node's first topology: a driver that
        // cannot start, or cannot carry this scenario, ends the case here.
        let started = run
            .send_topology(&cluster.nodes.iter().map(String::as_str).collect::<Vec<_>>())
            .await
            .and_then(|()| run.check_capabilities());
        if let Err(reason) = started {
            let _ = run.finish();
            return Err(reason);
        }
        Ok(run)
    }

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

    /// The sender's own addresses, and every pod's, for `from` / `pod` checks.
    pub(super) fn address_book(&self, sender: &str) -> AddressBook {
        crate::calico::predict::address_book(&self.model, sender)
    }

    /// Leave the lab, and its BIRD daemons, running (`down` stops them).
    pub(super) fn keep(self) {
        self.keep_dataplane();
        if let Some(bird) = self.bird {
            bird.detach();
        }
        self.lab.keep();
    }

    /// End the case but keep its lab for the next case of the same shape:
    /// the dataplane shut down and the traffic engine's sockets closed; the
    /// caller resets the lab ([`Lab::reset`]). None when the case ran BIRD
    /// (a reused lab never does) or the dataplane would not end: then the
    /// lab is torn down here.
    pub(super) fn release(self) -> (Result<(), RunnerError>, Option<Lab>) {
        if self.bird.is_some() {
            return (self.finish(), None);
        }
        let ended = self
            .control
            .dataplane()
            .shutdown(false)
            .map_err(RunnerError::EndDataplane);
        drop(self.engine);
        match ended {
            Ok(()) => (Ok(()), Some(self.lab)),
            Err(error) => {
                let torn_down = self.lab.teardown().map_err(RunnerError::Teardown);
                (Err::<(), _>(error).and(torn_down), None)
            }
        }
    }

    pub(super) fn finish(self) -> Result<(), RunnerError> {
        // Drivers first: a process inside a node keeps its namespace alive.
        let ended = self
            .control
            .dataplane()
            .shutdown(false)
            .map_err(RunnerError::EndDataplane);
        drop(self.engine);
        let stopped = match self.bird {
            Some(mut bird) => bird.stop().map_err(|e| RunnerError::StopBird(e.into())),
            None => Ok(()),
        };
        let torn_down = self.lab.teardown().map_err(RunnerError::Teardown);
        ended.and(stopped).and(torn_down)
    }
}

/// The nodes and external hosts as traffic endpoints, each captured on its
/// uplink (a failing step's bundle has every member's packets).
pub(super) async fn add_host_endpoints(
    engine: &TrafficEngine,
    lab: &Lab,
    cluster: &crate::scenario::Cluster,
) -> Result<(), RunnerError> {
    let hosts = cluster
        .nodes
        .iter()
        .map(|node| (node, EndpointKind::Node))
        .chain(
            cluster
                .externals
                .iter()
                .map(|x| (x, EndpointKind::External)),
        );
    for (name, kind) in hosts {
        let netns = lab.netns(name)?.clone();
        engine
            .add_endpoint(EndpointSpec {
                name: name.clone(),
                netns,
                kind,
                addresses: Vec::new(),
                interface: Some(UPLINK.to_string()),
            })
            .await?;
    }
    Ok(())
}

/// The lab a scenario's cluster needs, named `lab_name`.
pub(super) fn lab_spec(scenario: &Scenario, lab_name: &str) -> LabSpec {
    let cluster = &scenario.cluster;
    LabSpec {
        name: lab_name.to_string(),
        nodes: cluster
            .nodes
            .iter()
            .map(|name| NodeSpec {
                name: name.clone(),
                blocks: Vec::new(),
            })
            .collect(),
        externals: cluster.externals.clone(),
        dual_stack: cluster.dual_stack,
    }
}

pub(super) fn describe_target(target: &Target, resolved: IpAddr) -> String {
    match target {
        Target::Address(address) => address.to_string(),
        Target::Host { name, .. } => format!("{name} ({resolved})"),
    }
}
