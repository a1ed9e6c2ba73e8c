//! The `send` step: a batch of probes, judged against the step's expectation,
//! tried again while it fails as [`RetryPolicy::SENDS`] says.
//!
//! In a run of consecutive sends ([`send_run`]) no send holds up the next:
//! each flies while the next ones go, and is judged by its own probe id when
//! it lands, unless it could interact with one still in flight ([`interact`]:
//! then that one lands first). A send that expects an answer takes its three
//! probes' time (20 ms at the default interval); one that expects silence
//! waits out a window in which nothing may arrive ([`SILENCE_WINDOW`]). A run
//! then costs about its longest send, not the sum of its sends. Nothing
//! changes the lab within a run: pod steps, streams and waits end it, so every
//! send lands, and every window closes, before the next change.

use std::time::{Duration, Instant};

use super::case::ScenarioRun;
use super::error::RunnerError;
use super::step_text::describe_target;
use crate::check::{self, CheckLine, NextTry, RetryPolicy};
use crate::report::StepResult;
use crate::scenario::{Send, Step};
use crate::traffic::{ProbeOutcome, ProbeSpec, StoppedStream, TrafficError};

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

/// Who sends what. Two sends whose keys [`interact`] never fly at once.
type FlightKey = (String, crate::vocab::Protocol);

/// Whether a send keyed `a` could change the outcome of one keyed `b` (or
/// the other way) if both flew at once, so that the later must wait for the
/// earlier to land. Everything else is told apart by the probe id each
/// packet carries and by the tuple the kernel keeps unique.
/// - The same sender and protocol: what carries no probe id could not be
///   told apart (an ICMP error that quotes too little is matched by protocol
///   and destination in the sender's namespace).
/// - GRE and GRE, whoever sends: GRE without a key is tracked by its two
///   addresses alone (Linux `net/netfilter/nf_conntrack_proto_gre.c`,
///   `gre_pkt_to_tuple`: keyless GRE has no key to tell flows apart), and NAT
///   cannot make such a tuple unique, so of two GRE flows whose translated
///   tuples coincide the one that comes second is dropped
///   (`scenarios/gre-keyless-conntrack-clash.yaml`). Which one that is must
///   be the scenario's order, not a race.
///
/// TCP, UDP, SCTP and ICMP echo flows of different senders may share an
/// address after NAT; the kernel then gives them different ports (or echo
/// ids), so neither can take the other's conntrack entry.
fn interact(a: &FlightKey, b: &FlightKey) -> bool {
    use crate::vocab::Protocol::Gre;
    a == b || (a.1 == Gre && b.1 == Gre)
}

/// A send's probes in flight, and when they ended.
struct Flight {
    offset: usize,
    key: FlightKey,
    began: Instant,
    task: tokio::task::JoinHandle<(Result<ProbeOutcome, TrafficError>, Instant)>,
}

/// A stream told to stop just before a run of sends, still waiting for late
/// replies: a send that [`interact`]s with it waits until it has drained.
pub(super) struct Draining<'s> {
    pub(super) key: FlightKey,
    pub(super) stream: &'s mut StoppedStream,
}

/// The sends of one run: their results so far, and what is in flight.
struct RunState<'r> {
    first: usize,
    sends: &'r [&'r Send],
    done: Vec<Option<Result<(), RunnerError>>>,
    flying: Vec<Flight>,
    /// When the last send that expects an answer ended (with its retries).
    answered_until: Option<Instant>,
    /// A landed send failed: send no more.
    failed: bool,
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

    /// The sends of steps `first..` (a [`send_run`]), started in step order,
    /// each flying while the next ones go unless it [`interact`]s with one
    /// still in flight (then that one lands first); each is judged (and tried
    /// again as [`RetryPolicy::SENDS`] says) when it lands. `draining` is a
    /// stream stopped just before the run. Stops sending once a send has
    /// failed: later steps build on it, so their results would never be
    /// read. The results, in step order, end at the first failure; with them,
    /// the time until the last send that expects an answer was judged.
    pub(super) async fn send_run(
        &mut self,
        first: usize,
        sends: &[&Send],
        steps: &mut [StepResult],
        mut draining: Option<Draining<'_>>,
    ) -> (Vec<Result<(), RunnerError>>, Duration) {
        let started = Instant::now();
        let mut run = RunState {
            first,
            sends,
            done: sends.iter().map(|_| None).collect(),
            flying: Vec::new(),
            answered_until: None,
            failed: false,
        };
        for (offset, send) in sends.iter().enumerate() {
            let index = first + offset;
            let key = (send.from.clone(), send.protocol);
            if let Some(stream) = draining.as_mut().filter(|d| interact(&d.key, &key)) {
                stream.stream.drained().await;
            }
            // Land what this send could interact with, and whatever has
            // ended already (a failure there ends the run sooner).
            let landing: Vec<usize> = (0..run.flying.len())
                .filter(|&i| interact(&run.flying[i].key, &key) || run.flying[i].task.is_finished())
                .collect();
            for i in landing.into_iter().rev() {
                let flight = run.flying.remove(i);
                self.land(flight, &mut run, steps).await;
            }
            if run.failed {
                break;
            }
            self.engine.begin_step(index as u32);
            match self.probe_spec(index, send) {
                Ok(spec) => {
                    let engine = self.engine.clone();
                    run.flying.push(Flight {
                        offset,
                        key,
                        began: Instant::now(),
                        task: tokio::spawn(async move {
                            let outcome = engine.probe(spec).await;
                            (outcome, Instant::now())
                        }),
                    });
                }
                Err(error) => {
                    run.done[offset] = Some(Err(error));
                    break;
                }
            }
        }
        for flight in std::mem::take(&mut run.flying) {
            self.land(flight, &mut run, steps).await;
        }
        let answered = run.answered_until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(started)
        });
        super::phases::add_time(super::phases::Phase::Sends, answered);
        let mut results = Vec::new();
        for (offset, result) in run.done.into_iter().enumerate() {
            let Some(result) = result else { break };
            let failed = failed(&result, &steps[offset]);
            results.push(result);
            if failed {
                break;
            }
        }
        (results, answered)
    }

    /// Wait for a flight to land and judge it (trying it again while the
    /// policy says so).
    async fn land(&mut self, flight: Flight, run: &mut RunState<'_>, steps: &mut [StepResult]) {
        let (outcome, ended) = match flight.task.await {
            Ok((outcome, ended)) => (outcome.map_err(RunnerError::Send), ended),
            Err(joined) => (
                Err(RunnerError::Send(TrafficError::Stream(joined.to_string()))),
                Instant::now(),
            ),
        };
        let (offset, send) = (flight.offset, run.sends[flight.offset]);
        let step = &mut steps[offset];
        let settled = self
            .settle(run.first + offset, send, flight.began, outcome, step)
            .await;
        if !send.expect.expects_silence() {
            // A send tried again ended when its last try did.
            let ended = if step.attempts > 1 {
                Instant::now()
            } else {
                ended
            };
            run.answered_until = run.answered_until.max(Some(ended));
        }
        let result = settled;
        run.failed |= failed(&result, step);
        run.done[offset] = Some(result);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Protocol;

    fn key(sender: &str, protocol: Protocol) -> FlightKey {
        (sender.into(), protocol)
    }

    #[test]
    fn sends_interact_by_sender_and_protocol_and_every_gre_with_every_gre() {
        let icmp = key("client", Protocol::Icmp);
        assert!(interact(&icmp, &key("client", Protocol::Icmp)));
        assert!(!interact(&icmp, &key("client", Protocol::Udp)));
        assert!(!interact(&icmp, &key("peer", Protocol::Icmp)));
        // Keyless GRE: two senders' flows may share one conntrack tuple.
        assert!(interact(
            &key("client", Protocol::Gre),
            &key("peer", Protocol::Gre)
        ));
        assert!(!interact(
            &key("client", Protocol::Gre),
            &key("peer", Protocol::Sctp)
        ));
    }
}
