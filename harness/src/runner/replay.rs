//! One scenario on one backend and profile: build the case's lab, replay the
//! steps in order (each kind in a module of its own), record every step's
//! result, and tear the lab down (or keep it when asked).

use std::collections::BTreeSet;
use std::time::Instant;

use super::case::ScenarioRun;
use super::choice::DataplaneChoice;
use super::error::RunnerError;
use super::options::RunOptions;
use super::pictures::Album;
use super::results::{fresh_result, fresh_step};
use super::send::Draining;
use super::step_text::summarise;
use super::up_record::UpRecord;
use crate::check::CheckLine;
use crate::check::{Outcome, ScenarioResult, StepResult};
use crate::lab::Lab;
use crate::scenario::{ConntrackProfile, CreatePod, Scenario, Send, Step, StopStream, Wait};

/// Run `scenario` on `dataplane` with `profile`. Never panics on a scenario
/// failure: the result says what happened.
pub async fn run_scenario(
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    lab_name: &str,
    options: &RunOptions,
) -> ScenarioResult {
    let case = CaseLab::Build(lab_name);
    run_scenario_in(scenario, dataplane, profile, case, options)
        .await
        .0
}

/// Where a case runs.
pub(super) enum CaseLab<'n> {
    /// In a lab of its own, built under this name and torn down after.
    Build(&'n str),
    /// In this lab, reset after an earlier case of its shape; the lab is
    /// given back after the case (unless it failed and is kept, or its
    /// dataplane would not end), for the caller to reset. The name is the
    /// one the case's own lab would have had.
    Reuse(Box<Lab>, String),
}

/// Run the case in `lab`: its result, and the lab when it is given back.
pub(super) async fn run_scenario_in(
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    lab: CaseLab<'_>,
    options: &RunOptions,
) -> (ScenarioResult, Option<Lab>) {
    let started = Instant::now();
    let lab_name = match &lab {
        CaseLab::Build(name) => name.to_string(),
        CaseLab::Reuse(lab, _) => lab.name().to_string(),
    };
    let mut result = fresh_result(scenario, dataplane, profile, options, &lab_name);
    let building = Instant::now();
    let reusing = matches!(lab, CaseLab::Reuse(..));
    let started_run = match lab {
        CaseLab::Build(name) => {
            ScenarioRun::start(scenario, dataplane, profile, name, options).await
        }
        CaseLab::Reuse(lab, case_name) => {
            ScenarioRun::in_lab(scenario, *lab, dataplane, profile, options, &case_name).await
        }
    };
    super::phases::add(super::phases::Phase::Lab, building);
    tracing::debug!(took = ?building.elapsed(), lab = lab_name, "lab built");
    let mut given_back = None;
    match started_run {
        Err(error) => {
            result.head.outcome = Outcome::Error {
                reason: error.to_string(),
            }
        }
        Ok(mut run) => {
            let all = 0..scenario.steps.len();
            result.head.outcome = run.replay(all, &BTreeSet::new(), &mut result).await;
            let keep = options.keep_on_failure && !result.head.outcome.is_pass();
            if keep {
                keep_failing_lab(run, scenario, dataplane, profile, options, &mut result);
            } else {
                let ending = Instant::now();
                let finished = if reusing {
                    let (finished, lab) = run.release();
                    given_back = lab;
                    finished
                } else {
                    run.finish()
                };
                super::phases::add(super::phases::Phase::Lab, ending);
                if let Err(error) = finished {
                    if result.head.outcome.is_pass() {
                        result.head.outcome = Outcome::Error {
                            reason: error.to_string(),
                        };
                    }
                }
            }
        }
    }
    result.head.duration_ms = started.elapsed().as_millis() as u64;
    (result, given_back)
}

/// Leave a failing case's lab up, with how it was made.
fn keep_failing_lab(
    run: ScenarioRun<'_>,
    scenario: &Scenario,
    dataplane: &DataplaneChoice,
    profile: ConntrackProfile,
    options: &RunOptions,
    result: &mut ScenarioResult,
) {
    result.kept_lab = Some(run.lab.name().to_string());
    // The state after the failing step: `replay` goes on from the next.
    let until_step = result.steps.last().map(|step| step.index + 2);
    let record = UpRecord::of(scenario, dataplane, profile, options, until_step);
    if let Err(error) = record.write(run.lab.name()) {
        tracing::warn!(%error, "could not write how the kept lab was made");
    }
    run.keep();
}

impl ScenarioRun<'_> {
    /// Run the steps of `range` in order (but not those in `skipped`: streams
    /// left for `replay`), taking pictures of the lab for the report.
    pub(super) async fn replay(
        &mut self,
        range: std::ops::Range<usize>,
        skipped: &BTreeSet<usize>,
        result: &mut ScenarioResult,
    ) -> Outcome {
        let mut album = Album::default();
        let outcome = self.replay_steps(range, skipped, result, &mut album).await;
        let outcome = self.judge_late_leaks(result, outcome).await;
        result.lab_pictures = album.close(self.scene()).await;
        outcome
    }

    /// Stop at the first failing step (later steps build on it) after writing
    /// its diagnostics. A run to the last step fails when a stream was never
    /// stopped.
    async fn replay_steps(
        &mut self,
        range: std::ops::Range<usize>,
        skipped: &BTreeSet<usize>,
        result: &mut ScenarioResult,
        album: &mut Album,
    ) -> Outcome {
        let scenario = self.scenario;
        let steps = &scenario.steps[..range.end];
        let mut index = range.start;
        while index < steps.len() {
            if skipped.contains(&index) {
                index += 1;
                continue;
            }
            let creates = pod_batch(&steps[index..], !self.streams.running.is_empty());
            let sends_from = |first: usize| {
                let sends = super::send::send_run(&steps[first..]);
                (first..first + sends)
                    .position(|i| skipped.contains(&i))
                    .unwrap_or(sends)
            };
            if let Step::StopStream(stop) = &steps[index] {
                let sends = sends_from(index + 1);
                if sends > 0 {
                    let outcome = self.replay_stop_then_sends(index, stop, sends, result, album);
                    if let Some(outcome) = outcome.await {
                        return outcome;
                    }
                    index += 1 + sends;
                    continue;
                }
            }
            let sends = sends_from(index);
            if creates.len() <= 1 && sends > 1 {
                if let Some(outcome) = self.replay_sends(index, sends, result).await {
                    return outcome;
                }
                index += sends;
                continue;
            }
            // Consecutive pod creations are wired in one pass (the lab's
            // batched `add_pods`); each keeps its own step result.
            let mut batched = if creates.len() > 1 {
                self.engine.begin_step(index as u32);
                let started = Instant::now();
                let created = self.create_pods(&creates).await;
                super::phases::add(super::phases::Phase::Pods, started);
                tracing::debug!(pods = creates.len(), took = ?started.elapsed(), "pods created in one batch");
                created.into_iter()
            } else {
                Vec::new().into_iter()
            };
            let count = creates.len().max(1);
            for (offset, step) in steps[index..index + count].iter().enumerate() {
                let index = index + offset;
                let mut step_result = fresh_step(index, step);
                let outcome = if creates.len() > 1 {
                    // A pod after a failed one was never created: the failure
                    // ends the run before its result would be read.
                    batched.next().unwrap_or(Ok(()))
                } else {
                    album.before(self.scene(), index, step).await;
                    self.engine.begin_step(index as u32);
                    let outcome = self.run_step(index, step, &mut step_result, result).await;
                    album.after(self.scene(), index, step).await;
                    outcome
                };
                if let Some(outcome) = self.record(index, step_result, outcome, result).await {
                    return outcome;
                }
            }
            index += count;
        }
        if range.end == scenario.steps.len() && !self.streams.running.is_empty() {
            let names: Vec<String> = self.streams.running.keys().cloned().collect();
            self.stop_all_streams().await;
            return Outcome::Failed {
                reason: format!("streams never stopped: {}", names.join(", ")),
            };
        }
        Outcome::Passed
    }

    /// Steps `index..index + count`, a run of sends ([`super::send::send_run`]);
    /// each keeps its own step result.
    async fn replay_sends(
        &mut self,
        index: usize,
        count: usize,
        result: &mut ScenarioResult,
    ) -> Option<Outcome> {
        let sent = self.run_sends(index, count, None).await;
        self.record_sends(index, sent, result).await
    }

    /// Carry out the run of sends `index..index + count`: each step's result
    /// and outcome, in step order, ending at the first that failed.
    async fn run_sends(
        &mut self,
        index: usize,
        count: usize,
        draining: Option<Draining<'_>>,
    ) -> Vec<(StepResult, Result<(), RunnerError>)> {
        let steps = &self.scenario.steps[index..index + count];
        // No traffic before BGP's sessions are up (see `bgp_sessions_up`).
        if let Err(error) = self.bgp_sessions_up() {
            return vec![(fresh_step(index, &steps[0]), Err(error))];
        }
        let sends: Vec<&Send> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Send(send) => Some(send),
                _ => None,
            })
            .collect();
        let mut step_results: Vec<StepResult> = steps
            .iter()
            .enumerate()
            .map(|(offset, step)| fresh_step(index + offset, step))
            .collect();
        let started = Instant::now();
        let (outcomes, answered) = self
            .send_run(index, &sends, &mut step_results, draining)
            .await;
        // The answered sends' time is counted by `send_run`; the rest is silence.
        let silent = started.elapsed().saturating_sub(answered);
        super::phases::add_time(super::phases::Phase::Silent, silent);
        tracing::debug!(sends = count, took = ?started.elapsed(), "a run of sends");
        step_results.into_iter().zip(outcomes).collect()
    }

    /// Record the results of a run of sends that begins at step `index`.
    async fn record_sends(
        &mut self,
        index: usize,
        sent: Vec<(StepResult, Result<(), RunnerError>)>,
        result: &mut ScenarioResult,
    ) -> Option<Outcome> {
        for (offset, (step_result, outcome)) in sent.into_iter().enumerate() {
            if let Some(outcome) = self
                .record(index + offset, step_result, outcome, result)
                .await
            {
                return Some(outcome);
            }
        }
        None
    }

    /// Step `index` stops a stream and the `count` steps after it are sends:
    /// the stream stops sending, the sends run while it waits for late
    /// replies to its last probes (a send that could interact with it waits
    /// until it has), and it is judged before them. Nothing changes the lab
    /// in between, so it sees what it would have seen alone.
    async fn replay_stop_then_sends(
        &mut self,
        index: usize,
        stop: &StopStream,
        count: usize,
        result: &mut ScenarioResult,
        album: &mut Album,
    ) -> Option<Outcome> {
        use super::phases::{add, Phase};
        let step = &self.scenario.steps[index];
        let mut step_result = fresh_step(index, step);
        album.before(self.scene(), index, step).await;
        self.engine.begin_step(index as u32);
        let started = Instant::now();
        let stopping = self.stop_sending(stop);
        add(Phase::Streams, started);
        album.after(self.scene(), index, step).await;
        let mut stopping = match stopping {
            Ok(stopping) => stopping,
            Err(error) => return self.record(index, step_result, Err(error), result).await,
        };
        let draining = Draining {
            key: (stopping.spec.from.clone(), stopping.spec.protocol),
            stream: &mut stopping.stopped,
        };
        let sent = self.run_sends(index + 1, count, Some(draining)).await;
        let judging = Instant::now();
        let judged = self.judge_stopped(stopping, &mut step_result, result).await;
        add(Phase::Streams, judging);
        tracing::debug!(step = index + 1, drained = ?judging.elapsed(), "a stopped stream judged after the sends that followed it");
        if let Some(outcome) = self.record(index, step_result, judged, result).await {
            return Some(outcome);
        }
        self.record_sends(index + 1, sent, result).await
    }

    async fn run_step(
        &mut self,
        index: usize,
        step: &Step,
        step_result: &mut StepResult,
        result: &mut ScenarioResult,
    ) -> Result<(), RunnerError> {
        use super::phases::{add, Phase};
        let started = Instant::now();
        let phase = match step {
            Step::CreatePod(_) | Step::DeletePod(_) | Step::Annotate(_) | Step::SetPhase(_) => {
                Phase::Pods
            }
            Step::Send(send) if send.expect.expects_silence() => Phase::Silent,
            Step::Send(_) => Phase::Sends,
            _ => Phase::Streams,
        };
        let outcome = self.carry_out(index, step, step_result, result).await;
        add(phase, started);
        tracing::debug!(step = index + 1, ?phase, took = ?started.elapsed(), what = %summarise(step), "step carried out");
        outcome
    }

    async fn carry_out(
        &mut self,
        index: usize,
        step: &Step,
        step_result: &mut StepResult,
        result: &mut ScenarioResult,
    ) -> Result<(), RunnerError> {
        match step {
            Step::CreatePod(create) => self.create_pod(create).await,
            Step::DeletePod(name) => self.delete_pod(name).await,
            Step::Annotate(annotate) => self.annotate(annotate).await,
            Step::SetPhase(set) => self.set_phase(set).await,
            Step::Send(send) => {
                self.bgp_sessions_up()?;
                self.send(index, send, step_result).await
            }
            Step::StartStream(start) => {
                self.bgp_sessions_up()?;
                self.start_stream(index, start).await
            }
            Step::StopStream(stop) => self.stop_stream(stop, step_result, result).await,
            Step::Wait(Wait::Time(duration)) => {
                tokio::time::sleep(*duration).await;
                Ok(())
            }
            Step::Wait(Wait::Packets(wait)) => self.wait_packets(wait).await,
        }
    }

    /// Record one step's result; on failure write its diagnostics, stop the
    /// streams and return the run's outcome (later steps build on this one).
    async fn record(
        &mut self,
        index: usize,
        mut step_result: StepResult,
        outcome: Result<(), RunnerError>,
        result: &mut ScenarioResult,
    ) -> Option<Outcome> {
        // A BIRD that died mid-run fails the step with its log.
        let outcome = outcome
            .and_then(|()| self.check_bird())
            .and_then(|()| self.check_dataplane());
        let mut driver_fault = false;
        if let Err(error) = outcome {
            driver_fault = error.is_driver_fault();
            step_result.passed = false;
            step_result.message = Some(error.to_string());
        }
        if !step_result.lines.iter().all(CheckLine::passed) {
            step_result.passed = false;
        }
        let passed = step_result.passed;
        if !passed {
            step_result.diagnostics = self.write_diagnostics(index);
        }
        let summary = step_result.summary.clone();
        let message = step_result.message.clone();
        result.steps.push(step_result);
        if passed {
            return None;
        }
        self.stop_all_streams().await;
        let mut reason = format!("step {} ({summary}) failed", index + 1);
        if let Some(message) = message {
            reason.push_str(&format!(": {message}"));
        }
        if driver_fault {
            return Some(Outcome::Error { reason });
        }
        Some(Outcome::Failed { reason })
    }
}

/// The pod creations that can run as one batch at the start of `steps`: the
/// consecutive `createPod` steps there, but none while a stream runs (a
/// stream's migration record must see each pod's control-plane update).
fn pod_batch(steps: &[Step], streams_running: bool) -> Vec<&CreatePod> {
    if streams_running {
        return Vec::new();
    }
    steps
        .iter()
        .map_while(|step| match step {
            Step::CreatePod(create) => Some(create),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::Pod;

    fn create(name: &str) -> Step {
        Step::CreatePod(CreatePod {
            pod: Pod {
                name: name.into(),
                namespace: "default".into(),
                node: "node-a".into(),
                annotations: Default::default(),
            },
            manifest: None,
            expect_error: None,
        })
    }

    fn names(batch: &[&CreatePod]) -> Vec<String> {
        batch.iter().map(|c| c.pod.name.clone()).collect()
    }

    #[test]
    fn consecutive_pod_creations_batch_until_another_step() {
        let steps = vec![
            create("a"),
            create("b"),
            Step::Wait(Wait::Time(Duration::from_millis(1))),
            create("c"),
        ];
        assert_eq!(names(&pod_batch(&steps, false)), ["a", "b"]);
        assert_eq!(names(&pod_batch(&steps[2..], false)), Vec::<String>::new());
        assert_eq!(names(&pod_batch(&steps[3..], false)), ["c"]);
        // A running stream must see each pod's control-plane update on its own.
        assert!(pod_batch(&steps, true).is_empty());
    }
}
