//! The `send` step: a batch of probes, judged against the step's expectation,
//! tried again while it fails as [`RetryPolicy::SENDS`] says.
//!
//! In a run of consecutive sends ([`send_run`]) no send holds up the next:
//! each flies while the next ones go, and is judged by its own probe id when
//! it lands; only a send that could interact with an earlier one
//! ([`interact`]) waits until that one has landed. A send that expects an answer takes its three
//! probes' time (20 ms at the default interval); one that expects silence
//! waits out a window in which nothing may arrive ([`SILENCE_WINDOW`]). A run
//! then costs about its longest send, not the sum of its sends. Nothing
//! changes the lab within a run: pod steps, streams and waits end it, so every
//! send lands, and every window closes, before the next change.

use std::time::{Duration, Instant};

use futures::future::select_all;

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
/// anything to arrive (a leak, an ICMP error) before it is judged. Our
/// choice, from what we measured (docs/benchmarks.md, "How long a packet
/// takes across a lab"): over the whole catalogue, from a probe's send to
/// its arrival at the capture where it landed (the kernel's time) took at
/// most 6.5 ms run alone (load 10-24; p99.9 0.7 ms) and 40 ms with two
/// catalogues at once (load 46-56; p99.9 3.7 ms). 200 ms is 5 times that
/// worst: every probe of a run of sends has crossed its NAT before the
/// window ends, and with it the run, so none meets the next change of the
/// lab (which begins only after) and is judged in the wrong state. No
/// window covers a packet held in a neighbour queue: at load 50, 9 of 29k
/// probes (one case's first sends to an IPv6 pod) waited there 1 s, the
/// kernel's `retrans_time`, for a second neighbour solicitation. Such a
/// packet, and any other that comes after the window, still fails its send
/// when it reaches a pod before the case ends (`check::judge_late_leaks`),
/// whatever state it then meets. An ICMP error or a handshake answer that
/// comes after the window fails the send visibly: it never hides a leak.
pub const SILENCE_WINDOW: Duration = Duration::from_millis(200);

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

/// What a send's probes saw, and when they ended.
type Landing = (Result<ProbeOutcome, TrafficError>, Instant);

/// A send's probes in flight.
struct Flight {
    offset: usize,
    key: FlightKey,
    began: Instant,
    task: tokio::task::JoinHandle<Landing>,
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
    /// The probe ids of the sends, in step order.
    ids: std::ops::Range<u32>,
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

    /// The sends of steps `first..` (a [`send_run`]): each starts as soon as
    /// every earlier send it [`interact`]s with has landed (and `draining`, a
    /// stream stopped just before the run, has drained if it interacts with
    /// it), so sends that cannot affect each other fly together; each is
    /// judged (and tried again as [`RetryPolicy::SENDS`] says) when it lands.
    /// Stops starting sends once one has failed: later steps build on it, so
    /// their results would never be read. The results, in step order, end at
    /// the first failure; with them, the time until the last send that
    /// expects an answer was judged.
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
            ids: self.engine.reserve_probe_ids(sends.len() as u32),
        };
        let mut waiting: Vec<usize> = (0..sends.len()).collect();
        loop {
            if !run.failed {
                let stream = draining.as_ref().filter(|d| !d.stream.is_drained());
                waiting = self.start_free(&mut run, waiting, stream.map(|d| &d.key));
            }
            if run.failed {
                waiting.clear();
            }
            let stream = draining.as_mut().filter(|d| !d.stream.is_drained());
            match (run.flying.is_empty(), stream) {
                (true, None) => break,
                (true, Some(stream)) => stream.stream.drained().await,
                (false, None) => {
                    let landed = select_all(run.flying.iter_mut().map(|f| &mut f.task)).await;
                    let (joined, i, _) = landed;
                    let flight = run.flying.remove(i);
                    self.land(flight, joined, &mut run, steps).await;
                }
                (false, Some(stream)) => {
                    let landed = tokio::select! {
                        (joined, i, _) = select_all(run.flying.iter_mut().map(|f| &mut f.task)) => Some((joined, i)),
                        () = stream.stream.drained() => None,
                    };
                    if let Some((joined, i)) = landed {
                        let flight = run.flying.remove(i);
                        self.land(flight, joined, &mut run, steps).await;
                    }
                }
            }
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

    /// Start, in step order, every send of `waiting` that interacts with no
    /// flight, no draining stream (`stream`'s key) and no send waiting before
    /// it; the sends still waiting.
    fn start_free(
        &mut self,
        run: &mut RunState<'_>,
        waiting: Vec<usize>,
        stream: Option<&FlightKey>,
    ) -> Vec<usize> {
        let mut held: Vec<FlightKey> = run.flying.iter().map(|f| f.key.clone()).collect();
        held.extend(stream.cloned());
        let mut still = Vec::new();
        for offset in waiting {
            let send = run.sends[offset];
            let key = (send.from.clone(), send.protocol);
            if run.failed || held.iter().any(|other| interact(other, &key)) {
                held.push(key);
                still.push(offset);
                continue;
            }
            let index = run.first + offset;
            self.engine.begin_step(index as u32);
            match self.probe_spec(index, send) {
                Ok(spec) => {
                    let engine = self.engine.clone();
                    let id = run.ids.start + offset as u32;
                    run.flying.push(Flight {
                        offset,
                        key: key.clone(),
                        began: Instant::now(),
                        task: tokio::spawn(async move {
                            let outcome = engine.probe_numbered(id, spec).await;
                            (outcome, Instant::now())
                        }),
                    });
                }
                Err(error) => {
                    run.done[offset] = Some(Err(error));
                    run.failed = true;
                }
            }
            held.push(key);
        }
        still
    }

    /// Judge a flight that has landed (`joined`: its task's end), trying it
    /// again while the policy says so.
    async fn land(
        &mut self,
        flight: Flight,
        joined: Result<Landing, tokio::task::JoinError>,
        run: &mut RunState<'_>,
        steps: &mut [StepResult],
    ) {
        let (outcome, ended) = match joined {
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
        run.failed |= failed(&settled, step);
        run.done[offset] = Some(settled);
    }

    fn probe_spec(&self, index: usize, send: &Send) -> Result<ProbeSpec, RunnerError> {
        let to = self.resolve(&send.to)?;
        let mut spec = ProbeSpec::new(&send.from, to, send.protocol);
        spec.count = send.count;
        spec.interval = send.interval;
        spec.port = send.port;
        spec.step = index as u32;
        if send.expect.answers_optional(send.count) {
            // Nothing will answer, or nothing need: don't wait long for it,
            // nor for a handshake's answer (a SYN-ACK, an INIT ACK). Past
            // the window an answer could only pass the step anyway.
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
                    let mut timing = check::Timing::of(&outcome_now, outcome_now.probe);
                    if matches!(send.expect.delivered_to, Some(check::Delivery::None)) {
                        // What reaches a pod after this is a late leak
                        // (`ScenarioRun::judge_late_leaks`).
                        timing.window_closed_unix_ns = Some(outcome_now.collected_unix_ns);
                    }
                    step.timing = Some(timing);
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
