//! A case's life: a fresh lab (or a kept one taken over) with its BIRD,
//! traffic endpoints and control plane; and its end, torn down or kept.

use super::case::{Mode, ScenarioRun};
use super::choice::{ChosenDataplane, DataplaneChoice};
use super::error::RunnerError;
use super::live_streams::Streams;
use super::options::RunOptions;
use crate::bgp::{LabBird, RoutingMode};
use crate::control::{ControlPlane, LabMembers};
use crate::lab::addressing::UPLINK;
use crate::lab::{Lab, LabSpec, NodeSpec};
use crate::scenario::{ConntrackProfile, Scenario};
use crate::traffic::{EndpointKind, EndpointSpec, TrafficEngine};

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
        // BIRD once the dataplane follows the nodes' flows: its sessions are
        // the first connections a fresh lab tracks.
        let chosen = dataplane.build();
        follow_flows(&*chosen.dataplane, &lab, &scenario.cluster)?;
        let bird = match (options.routing, adopt) {
            (RoutingMode::Bird, false) => Some(super::bird::start_bird(&lab, pools)?),
            (RoutingMode::Bird, true) => Some(super::bird::adopt_bird(&lab, pools)?),
            (RoutingMode::Model, _) => None,
        };
        let traffic_name = lab.name().to_string();
        let mut run = Self::around(
            scenario,
            lab,
            bird,
            (dataplane, chosen),
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
        let chosen = dataplane.build();
        follow_flows(&*chosen.dataplane, &lab, &scenario.cluster)?;
        let dataplane = (dataplane, chosen);
        Self::around(scenario, lab, None, dataplane, profile, options, case_name).await
    }

    /// The case's state around a lab: traffic endpoints for its hosts and a
    /// control plane over the dataplane built for it (already following the
    /// nodes' flows) that believes the lab holds nothing yet.
    async fn around(
        scenario: &'a Scenario,
        lab: Lab,
        bird: Option<LabBird>,
        (dataplane, chosen): (&DataplaneChoice, ChosenDataplane),
        profile: ConntrackProfile,
        options: &RunOptions,
        traffic_name: &str,
    ) -> Result<ScenarioRun<'a>, RunnerError> {
        let cluster = &scenario.cluster;
        let engine = TrafficEngine::with_seed(traffic_name, options.seed);
        add_host_endpoints(&engine, &lab, cluster).await?;
        let members = LabMembers::of(&lab)?;
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

    /// Leave the lab, and its BIRD daemons, running (`down` stops them),
    /// with BGP's sessions up (a case whose steps never needed them does
    /// not leave them coming up).
    pub(super) fn keep(self) {
        if let Err(error) = self.bgp_sessions_up() {
            tracing::warn!(%error, "the kept lab's BGP sessions are not all up");
        }
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
async fn add_host_endpoints(
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

/// Have the dataplane follow each node's flows from now, before the case
/// sends anything (and before BIRD connects), so its conntrack deletions
/// need not dump the tables. A node it cannot follow is only slower.
fn follow_flows(
    dataplane: &dyn crate::dataplane::Dataplane,
    lab: &Lab,
    cluster: &crate::scenario::Cluster,
) -> Result<(), RunnerError> {
    for node in &cluster.nodes {
        let netns = lab.netns(node)?;
        if let Err(error) = dataplane.follow_flows(netns) {
            tracing::debug!(%error, node, "conntrack deletions will dump the table");
        }
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
