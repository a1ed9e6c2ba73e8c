//! Reproducing a failure by hand: `up` brings a scenario's lab to the state
//! before step N and keeps it; `replay` takes that lab over and runs the
//! remaining steps in it, with the same check lines as `run`.
//!
//! A process cannot hand a running stream to another, so a stream that would
//! still run at the boundary (started before step N, stopped at or after it)
//! is not started by `up`; `replay` starts it, at its own step, before step N,
//! so a move at step N still happens under the stream.

use std::collections::BTreeSet;
use std::time::Instant;

use super::case::ScenarioRun;
use super::choice::DataplaneChoice;
use super::error::RunnerError;
use super::options::RunOptions;
use super::results::fresh_result;
use super::step_text::summarise;
use crate::lab::netlink::list_addresses;
use crate::lab::MemberKind;
use crate::report::{
    FloatingIpHolder, Holder, LabOverview, MemberAddresses, Outcome, ScenarioResult,
};
use crate::scenario::{ConntrackProfile, Scenario, Step, Wait};

/// What `up` built and did.
pub struct UpReport {
    pub overview: LabOverview,
    /// The NAT rules of each node, as the backend holds them.
    pub rules: Vec<(String, String)>,
    /// With a boundary: the steps run before it, with their check lines;
    /// the outcome is failed when one of them failed (the lab is kept anyway).
    pub result: ScenarioResult,
    /// Streams left for `replay` to start (name, step number).
    pub deferred_streams: Vec<(String, usize)>,
}

/// The steps (0-based) of streams that start before `boundary` and do not stop
/// before it: `(start step, name)`.
pub fn streams_across(steps: &[Step], boundary: usize) -> Vec<(usize, String)> {
    let mut running: Vec<(usize, String)> = Vec::new();
    for (index, step) in steps.iter().enumerate().take(boundary) {
        match step {
            Step::StartStream(start) => running.push((index, start.name.clone())),
            Step::StopStream(stop) => running.retain(|(_, name)| *name != stop.name),
            _ => {}
        }
    }
    running
}

/// The counted waits (0-based steps) of `steps` on the streams of `across`
/// (after their start): `up` leaves those streams to `replay`, so those
/// waits have no packets to count and are left out with them.
pub fn waits_on(steps: &[Step], across: &[(usize, String)]) -> Vec<usize> {
    let on_across = |index: usize, stream: &str| {
        (across.iter()).any(|(start, name)| name == stream && index > *start)
    };
    (steps.iter().enumerate())
        .filter_map(|(index, step)| match step {
            Step::Wait(Wait::Packets(wait)) if on_across(index, &wait.stream) => Some(index),
            _ => None,
        })
        .collect()
}

/// Check a step number people gave (1-based; one past the last step means
/// "after every step").
pub fn check_step_number(scenario: &Scenario, step: usize) -> Result<usize, RunnerError> {
    let count = scenario.steps.len();
    if step == 0 || step > count + 1 {
        return Err(RunnerError::NoSuchStep {
            scenario: scenario.name.clone(),
            count,
            step,
        });
    }
    Ok(step - 1)
}

/// Build `scenario`'s cluster and keep it. Without `until`, replay only its pod,
/// annotation and phase steps (no traffic). With `until` (1-based), run every
/// step before that one as `run` does (traffic and checks included), except
/// streams that would still run at it; the lab is kept even when one of those
/// steps fails, in the state that step left.
pub async fn bring_up(
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    options: &RunOptions,
    lab_name: &str,
    until: Option<usize>,
) -> Result<UpReport, RunnerError> {
    let started = Instant::now();
    let mut result = fresh_result(scenario, dataplane, profile, options, lab_name);
    let mut run = ScenarioRun::start(scenario, dataplane, profile, lab_name, options).await?;
    let mut deferred_streams = Vec::new();
    match until {
        Some(step) => {
            let boundary = check_step_number(scenario, step)?;
            let across = streams_across(&scenario.steps, boundary);
            let mut skipped: BTreeSet<usize> = across.iter().map(|(index, _)| *index).collect();
            skipped.extend(waits_on(&scenario.steps[..boundary], &across));
            deferred_streams = across
                .into_iter()
                .map(|(index, name)| (name, index + 1))
                .collect();
            result.head.outcome = run.replay(0..boundary, &skipped, &mut result).await;
        }
        None => {
            if let Err(error) = run.control_steps(0..scenario.steps.len()).await {
                let _ = run.finish();
                return Err(error);
            }
        }
    }
    let overview = run.overview();
    let rules = run.node_rules();
    result.kept_lab = Some(lab_name.to_string());
    result.head.duration_ms = started.elapsed().as_millis() as u64;
    run.keep();
    Ok(UpReport {
        overview,
        rules,
        result,
        deferred_streams,
    })
}

/// Take over the kept lab `lab_name` (brought up from `scenario`) and run its
/// steps from `from` (1-based) on: the steps before are replayed in the model
/// only (the lab is checked against them, not changed), streams across the
/// boundary are started, then the rest runs as in `run`. The lab is kept.
pub async fn replay_in_lab(
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    options: &RunOptions,
    lab_name: &str,
    from: usize,
) -> ScenarioResult {
    let started = Instant::now();
    let mut result = fresh_result(scenario, dataplane, profile, options, lab_name);
    let replayed = async {
        let boundary = check_step_number(scenario, from)?;
        let mut run = ScenarioRun::adopt(scenario, dataplane, profile, lab_name, options).await?;
        if let Err(error) = run.control_steps(0..boundary).await {
            run.keep();
            return Err(RunnerError::LabDiffers {
                lab: lab_name.to_string(),
                boundary,
                scenario: scenario.name.clone(),
                source: Box::new(error),
            });
        }
        run.mode.adopting = false;
        for difference in run.nat_differences() {
            tracing::warn!(
                "lab `{lab_name}` does not hold what steps 1 to {boundary} give (changed since, \
                 or kept after a later step?): {difference}"
            );
        }
        let across = streams_across(&scenario.steps, boundary);
        for (index, _) in &across {
            let Step::StartStream(start) = &scenario.steps[*index] else {
                unreachable!("streams_across returns stream starts");
            };
            if let Err(error) = run.start_stream(*index, start).await {
                run.keep();
                return Err(RunnerError::StreamAcross {
                    name: start.name.clone(),
                    number: index + 1,
                    source: Box::new(error),
                });
            }
        }
        let outcome = run
            .replay(
                boundary..scenario.steps.len(),
                &BTreeSet::new(),
                &mut result,
            )
            .await;
        run.keep();
        Ok::<Outcome, RunnerError>(outcome)
    };
    result.head.outcome = match replayed.await {
        Ok(outcome) => {
            result.kept_lab = Some(lab_name.to_string());
            outcome
        }
        Err(error) => Outcome::Error {
            reason: error.to_string(),
        },
    };
    result.head.duration_ms = started.elapsed().as_millis() as u64;
    result
}

impl ScenarioRun<'_> {
    /// Run the pod, annotation and phase steps of `range` (no traffic, no
    /// waits, no streams); the first failure ends it.
    async fn control_steps(&mut self, range: std::ops::Range<usize>) -> Result<(), RunnerError> {
        let scenario = self.scenario;
        for index in range {
            let step = &scenario.steps[index];
            let outcome = match step {
                Step::CreatePod(create) => self.create_pod(create).await,
                Step::DeletePod(name) => self.delete_pod(name).await,
                Step::Annotate(annotate) => self.annotate(annotate).await,
                Step::SetPhase(set) => self.set_phase(set).await,
                Step::Send(_) | Step::StartStream(_) | Step::StopStream(_) | Step::Wait(_) => {
                    Ok(())
                }
            };
            outcome.map_err(|error| RunnerError::Step {
                number: index + 1,
                summary: summarise(step),
                source: Box::new(error),
            })?;
        }
        Ok(())
    }

    /// Every member with its addresses (read from the kernel), and who holds
    /// each floating IP (the control plane's view).
    pub(super) fn overview(&self) -> LabOverview {
        let cluster = &self.scenario.cluster;
        let names = std::iter::once(crate::lab::spec::FABRIC.to_string())
            .chain(cluster.nodes.iter().cloned())
            .chain(cluster.externals.iter().cloned())
            .chain(self.model.pods().keys().cloned());
        let members = names
            .filter_map(|name| {
                let kind = self.lab.member_kind(&name)?;
                let netns = self.lab.netns(&name).ok()?;
                let addresses =
                    tokio::task::block_in_place(|| list_addresses(netns)).unwrap_or_default();
                Some(MemberAddresses {
                    kind: kind_name(kind).to_string(),
                    node: self.lab.pod(&name).map(|p| p.node.clone()),
                    member: name,
                    addresses,
                })
            })
            .collect();
        let floating_ips = self
            .control
            .current()
            .owners
            .iter()
            .map(|(ip, owner)| FloatingIpHolder {
                floating_ip: *ip,
                holders: vec![Holder {
                    pod: owner.pod.clone(),
                    internal: owner.internal,
                    node: owner.node.clone(),
                }],
            })
            .collect();
        LabOverview {
            lab: self.lab.name().to_string(),
            members,
            floating_ips,
            source: None,
            unknown: None,
        }
    }

    /// Nodes whose NAT, read back through the backend, is not what the
    /// control plane believes: after adoption, a sign the lab is not in the
    /// state the replayed steps give. (A mutant dataplane differs by design.)
    fn nat_differences(&self) -> Vec<String> {
        let mut differences = Vec::new();
        for (node, desired) in &self.control.current().nat {
            let Ok(netns) = self.lab.netns(node) else {
                continue;
            };
            match self.control.dataplane().read(netns) {
                Ok(held) if held == *desired => {}
                Ok(held) => differences.push(format!(
                    "{node} holds DNAT {:?}, the steps give {:?}",
                    held.dnat, desired.dnat
                )),
                Err(error) => differences.push(format!("{node}: {error}")),
            }
        }
        differences
    }

    /// Each node's NAT rules through the case's backend.
    fn node_rules(&self) -> Vec<(String, String)> {
        self.scenario
            .cluster
            .nodes
            .iter()
            .filter_map(|node| {
                let netns = self.lab.netns(node).ok()?;
                let rules = self
                    .control
                    .dataplane()
                    .dump(netns)
                    .unwrap_or_else(|error| format!("# {error}\n"));
                Some((node.clone(), rules))
            })
            .collect()
    }
}

/// How a member's kind reads in overviews.
pub fn kind_name(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::Fabric => "fabric",
        MemberKind::Node => "node",
        MemberKind::External => "external",
        MemberKind::Pod => "pod",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{StartStream, StopStream};

    fn start(name: &str) -> Step {
        Step::StartStream(StartStream {
            name: name.into(),
            protocol: crate::scenario::Protocol::Icmp,
            from: "client".into(),
            to: crate::scenario::Target::Address("203.0.113.10".parse().unwrap()),
            interval: std::time::Duration::from_millis(5),
            port: 7,
        })
    }

    fn stop(name: &str) -> Step {
        Step::StopStream(StopStream {
            name: name.into(),
            expect: Default::default(),
        })
    }

    #[test]
    fn only_streams_running_at_the_boundary_cross_it() {
        let wait = Step::Wait(crate::scenario::Wait::Time(
            std::time::Duration::from_millis(1),
        ));
        let steps = vec![start("a"), start("b"), stop("a"), wait.clone(), stop("b")];
        assert_eq!(streams_across(&steps, 0), vec![]);
        assert_eq!(
            streams_across(&steps, 2),
            vec![(0, "a".into()), (1, "b".into())]
        );
        assert_eq!(streams_across(&steps, 3), vec![(1, "b".into())]);
        assert_eq!(streams_across(&steps, 5), vec![]);
    }

    fn counted(stream: &str) -> Step {
        Step::Wait(Wait::Packets(crate::scenario::PacketWait {
            stream: stream.into(),
            packets: 25,
            within: std::time::Duration::from_secs(10),
            interval: std::time::Duration::from_millis(5),
        }))
    }

    /// `up --until-step` leaves a stream across its boundary to `replay`, and
    /// with it the counted waits on it; not a wait on an earlier stream of
    /// the same name, stopped before the boundary.
    #[test]
    fn counted_waits_on_a_stream_left_for_replay_are_left_too() {
        let steps = vec![
            start("a"),
            counted("a"),
            stop("a"),
            start("b"),
            start("a"),
            counted("a"),
            counted("b"),
            stop("b"),
        ];
        let across = streams_across(&steps, 7);
        assert_eq!(across, vec![(3, "b".into()), (4, "a".into())]);
        assert_eq!(waits_on(&steps[..7], &across), vec![5, 6]);
        // Step 1 waits on the first `a`, which stopped before the boundary.
        let only_a = [(4, "a".to_string())];
        assert_eq!(waits_on(&steps[..7], &only_a), vec![5]);
        assert_eq!(waits_on(&steps[..7], &[]), Vec::<usize>::new());
    }
}
