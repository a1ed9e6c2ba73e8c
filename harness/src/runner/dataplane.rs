//! The case's side of a dataplane that lives beyond single calls (an external
//! driver): each node's topology as pods come and go, whether the dataplane
//! can carry the scenario at all, its health after every step, and its end
//! (shut down, or left in place with its dump saved when the lab is kept).

use std::path::Path;

use super::case::ScenarioRun;
use super::error::RunnerError;
use crate::calico::IpFamily;
use crate::lab::daemons::lab_dir;
use crate::scenario::{Scenario, Step};

impl ScenarioRun<'_> {
    /// Send `nodes`' topologies, if the dataplane wants them.
    pub(super) async fn send_topology(&mut self, nodes: &[&str]) -> Result<(), RunnerError> {
        let dataplane = std::sync::Arc::clone(self.control.dataplane());
        if !dataplane.wants_topology() {
            return Ok(());
        }
        for node in nodes {
            let topology = self.lab.node_topology(node).await?;
            let netns = self.lab.netns(node)?.clone();
            tokio::task::block_in_place(|| dataplane.topology(&netns, &topology))
                .map_err(RunnerError::Dataplane)?;
        }
        Ok(())
    }

    /// An error naming what the scenario needs and the dataplane lacks.
    pub(super) fn check_capabilities(&self) -> Result<(), RunnerError> {
        let (families, protocols) = needs(self.scenario);
        let missing = self.control.dataplane().unsupported(&families, &protocols);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(RunnerError::Unsupported(missing))
        }
    }

    /// A dataplane process that died since the last step fails this one.
    pub(super) fn check_dataplane(&self) -> Result<(), RunnerError> {
        self.control
            .dataplane()
            .health()
            .map_err(RunnerError::Dataplane)
    }

    /// Before the lab is kept: each node's dump into the lab's directory (for
    /// `fip-harness state`), then the drivers end leaving the state in place.
    pub(super) fn keep_dataplane(&self) {
        let dataplane = self.control.dataplane();
        if dataplane.wants_topology() {
            let dir = lab_dir(self.lab.name());
            for node in &self.scenario.cluster.nodes {
                if let Ok(netns) = self.lab.netns(node) {
                    write_files(
                        &dir.join(format!("driver-{node}")),
                        &dataplane.diagnostics(netns),
                    );
                }
            }
        }
        if let Err(error) = dataplane.shutdown(true) {
            tracing::warn!(%error, "ending the dataplane of a kept lab");
        }
    }

    /// Files the dataplane adds to a node's folder of a diagnostics bundle.
    pub(super) fn write_dataplane_diagnostics(&self, dir: &Path) {
        for node in &self.scenario.cluster.nodes {
            if let Ok(netns) = self.lab.netns(node) {
                let files = self.control.dataplane().diagnostics(netns);
                write_files(&dir.join(node), &files);
            }
        }
    }
}

fn write_files(dir: &Path, files: &[(String, String)]) {
    if files.is_empty() {
        return;
    }
    if let Err(error) = std::fs::create_dir_all(dir) {
        tracing::warn!(%error, dir = %dir.display(), "could not write dataplane files");
        return;
    }
    for (name, text) in files {
        let _ = std::fs::write(dir.join(name), text);
    }
}

/// The address families and protocols a scenario's traffic uses.
fn needs(scenario: &Scenario) -> (Vec<IpFamily>, Vec<crate::traffic::Protocol>) {
    let mut families = vec![IpFamily::V4];
    if scenario.cluster.dual_stack {
        families.push(IpFamily::V6);
    }
    let mut protocols = Vec::new();
    for step in &scenario.steps {
        let protocol = match step {
            Step::Send(send) => send.protocol,
            Step::StartStream(start) => start.protocol,
            _ => continue,
        };
        if !protocols.contains(&protocol) {
            protocols.push(protocol);
        }
    }
    (families, protocols)
}
