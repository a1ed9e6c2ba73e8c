//! The `send` step: a batch of probes, judged against the step's expectation,
//! tried again while it fails as [`RetryPolicy::SENDS`] says.
//!
//! A send that expects silence waits out a window in which nothing may
//! arrive ([`SILENCE_WINDOW`]). In a run of consecutive sends ([`send_run`])
//! it does not hold up the next send: its probes stay in flight, and it is
//! judged, by its own probe id after its whole window, once the run's last
//! send is done (or before a later send of the same sender and protocol). A
//! run of sends then costs about one window, not one per silent send. Nothing
//! changes the lab within a run: pod steps, streams and waits end it, so every
//! window closes before the next change.

use std::time::{Duration, Instant};

use super::case::ScenarioRun;
use super::error::RunnerError;
use super::step_text::describe_target;
use crate::check::{self, CheckLine, NextTry, RetryPolicy};
use crate::report::StepResult;
use crate::scenario::{Send, Step};
use crate::traffic::{ProbeOutcome, ProbeSpec};

/// Whether a send's step failed: an error, or a line that does not pass.
fn failed(result: &Result<(), RunnerError>, step: &StepResult) -> bool {
    result.is_err() || !step.lines.iter().all(CheckLine::passed)
}

/// How long a send that expects silence waits after its last probe for
/// anything to arrive (a leak, an ICMP error). Our choice: a probe crosses
/// the lab in well under a millisecond; 300 ms leaves room for a loaded host.
pub const SILENCE_WINDOW: Duration = Duration::from_millis(300);

/// How many steps at the start of `steps` are consecutive sends: one run,
/// carried out by [`ScenarioRun::send_run`].
pub(super) fn send_run(steps: &[Step]) -> usize {
    steps
        .iter()
        .take_while(|step| matches!(step, Step::Send(_)))
        .count()
}

/// Who sends what: two probes in flight at once must differ in it. What
/// carries no probe id could not tell them apart: an ICMP error that quotes
/// too little is matched by protocol and destination in the sender's
/// namespace, and GRE's conntrack entry has no ports.
type FlightKey = (String, crate::vocab::Protocol);

/// A silent send's probes in flight.
struct Flight {
    offset: usize,
    key: FlightKey,
    began: Instant,
    task: tokio::task::JoinHandle<Result<ProbeOutcome, crate::traffic::TrafficError>>,
}

impl ScenarioRun<'_> {
    pub(super) async fn send(
        &mut self,
        index: usize,
        send: &Send,
        step: &mut StepResult,
    ) -> Result<(), RunnerError> {
        let began = Instant::now();
        let spec = self.probe_spec(index, send)?;
        let outcome = self.engine.probe(spec).await.map_err(RunnerError::Send);
        self.settle(index, send, began, outcome, step).await
    }

    /// The sends of steps `first..` (a [`send_run`]) in step order; those
    /// that expect silence fly while the next ones go, and are judged when
    /// they land. Stops sending after a send that fails: later steps build on
    /// it, so their results would never be read. The results, in step order,
    /// end at the first failure; with them, the time spent on the sends that
    /// expect an answer.
    pub(super) async fn send_run(
        &mut self,
        first: usize,
        sends: &[&Send],
        steps: &mut [StepResult],
    ) -> (Vec<Result<(), RunnerError>>, Duration) {
        let mut answered = Duration::ZERO;
        let mut done: Vec<Option<Result<(), RunnerError>>> = sends.iter().map(|_| None).collect();
        let mut flying: Vec<Flight> = Vec::new();
        for (offset, send) in sends.iter().enumerate() {
            let index = first + offset;
            let key = (send.from.clone(), send.protocol);
            if flying.iter().any(|flight| flight.key == key) {
                self.land(&mut flying, first, sends, steps, &mut done).await;
            }
            self.engine.begin_step(index as u32);
            if send.expect.expects_silence() {
                match self.probe_spec(index, send) {
                    Ok(spec) => {
                        let engine = self.engine.clone();
                        flying.push(Flight {
                            offset,
                            key,
                            began: Instant::now(),
                            task: tokio::spawn(async move { engine.probe(spec).await }),
                        });
                    }
                    Err(error) => {
                        done[offset] = Some(Err(error));
                        break;
                    }
                }
            } else {
                let started = Instant::now();
                let result = self.send(index, send, &mut steps[offset]).await;
                super::phases::add(super::phases::Phase::Sends, started);
                answered += started.elapsed();
                let failed = failed(&result, &steps[offset]);
                done[offset] = Some(result);
                if failed {
                    break;
                }
            }
        }
        self.land(&mut flying, first, sends, steps, &mut done).await;
        let mut results = Vec::new();
        for (offset, result) in done.into_iter().enumerate() {
            let Some(result) = result else { break };
            let failed = failed(&result, &steps[offset]);
            results.push(result);
            if failed {
                break;
            }
        }
        (results, answered)
    }

    /// Wait for every flight to land and judge it (trying it again, alone,
    /// when the policy says so).
    async fn land(
        &mut self,
        flying: &mut Vec<Flight>,
        first: usize,
        sends: &[&Send],
        steps: &mut [StepResult],
        done: &mut [Option<Result<(), RunnerError>>],
    ) {
        for flight in flying.drain(..) {
            let outcome = match flight.task.await {
                Ok(outcome) => outcome.map_err(RunnerError::Send),
                Err(joined) => Err(RunnerError::Send(crate::traffic::TrafficError::Stream(
                    joined.to_string(),
                ))),
            };
            let (offset, send) = (flight.offset, sends[flight.offset]);
            let step = &mut steps[offset];
            let result = self
                .settle(first + offset, send, flight.began, outcome, step)
                .await;
            done[offset] = Some(result);
        }
    }

    fn probe_spec(&self, index: usize, send: &Send) -> Result<ProbeSpec, RunnerError> {
        let to = self.resolve(&send.to)?;
        let mut spec = ProbeSpec::new(&send.from, to, send.protocol);
        spec.count = send.count;
        spec.interval = send.interval;
        spec.port = send.port;
        spec.step = index as u32;
        if send.expect.expects_silence() {
            // Nothing will answer: don't wait long for it, nor for a
            // handshake's answer (a SYN-ACK, an INIT ACK).
            spec.timeout = SILENCE_WINDOW;
            spec.handshake = Some(SILENCE_WINDOW);
        }
        Ok(spec)
    }

    /// Judge a try whose probes went `began`, and try again while the policy
    /// says so; the last try's line is the step's.
    async fn settle(
        &mut self,
        index: usize,
        send: &Send,
        began: Instant,
        mut outcome: Result<ProbeOutcome, RunnerError>,
        step: &mut StepResult,
    ) -> Result<(), RunnerError> {
        let book = self.address_book(&send.from);
        let mut attempt = 1;
        loop {
            let outcome_now = outcome?;
            let observed = check::delivery_observed(&outcome_now, &self.scenario.cluster.externals);
            let mismatches = check::mismatches(&send.expect, &observed, &book);
            let line = CheckLine {
                source: send.from.clone(),
                destination: describe_target(&send.to, outcome_now.to),
                protocol: send.protocol.to_string(),
                observed,
                mismatches,
            };
            let passed = line.passed();
            match RetryPolicy::SENDS.after(attempt, began.elapsed(), &send.expect, passed) {
                NextTry::Done => {
                    step.attempts = attempt;
                    step.lines = vec![line];
                    return Ok(());
                }
                NextTry::Again(pause) => {
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                    let spec = self.probe_spec(index, send)?;
                    outcome = self.engine.probe(spec).await.map_err(RunnerError::Send);
                }
            }
        }
    }
}
