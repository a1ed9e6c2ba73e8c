//! Stream steps: start a background stream, and stop one to judge what it
//! delivered and measure the floating-IP move it saw.

use super::case::ScenarioRun;
use super::error::RunnerError;
use super::live_streams::{RunningStream, StoppingStream};
use super::step_text::describe_target;
use crate::check::{self, CheckLine, MigrationFigures, Move, OwnerChange};
use crate::report::{MigrationReport, ScenarioResult, StepResult};
use crate::scenario::{PacketWait, StartStream, StopStream};
use crate::traffic::{now_unix_ns, StreamSpec};

/// Bucket width of the per-pod timeline of a migration.
const TIMELINE_BUCKET_MS: u64 = 10;

impl ScenarioRun<'_> {
    /// Every live pod's addresses now, as the model has them.
    fn pods_now(&self) -> check::PodsHad {
        let mut had = check::PodsHad::new();
        crate::calico::predict::note_pods(&self.model, &mut had);
        had
    }

    /// Each running stream notes the pods' addresses after a change.
    pub(super) fn note_pods_in_streams(&mut self) {
        let now = self.pods_now();
        for stream in self.streams.running.values_mut() {
            for (pod, addresses) in &now {
                stream
                    .pods_had
                    .entry(pod.clone())
                    .or_default()
                    .extend(addresses);
            }
        }
    }

    pub(super) async fn start_stream(
        &mut self,
        index: usize,
        start: &StartStream,
    ) -> Result<(), RunnerError> {
        let target = self.resolve(&start.to)?;
        let mut spec = StreamSpec::new(&start.from, target, start.protocol, start.interval);
        spec.port = start.port;
        spec.step = index as u32;
        let started_unix_ns = now_unix_ns();
        let handle = self
            .engine
            .start_stream(spec)
            .await
            .map_err(RunnerError::StartStream)?;
        self.streams.running.insert(
            start.name.clone(),
            RunningStream {
                spec: start.clone(),
                target,
                handle,
                started_unix_ns,
                pods_had: self.pods_now(),
            },
        );
        Ok(())
    }

    /// `wait: {stream, packets}`: until the stream has sent `packets` more
    /// than it had now, or fail once `within` has passed.
    pub(super) async fn wait_packets(&mut self, wait: &PacketWait) -> Result<(), RunnerError> {
        let stream = (self.streams.running.get(&wait.stream))
            .ok_or_else(|| RunnerError::StreamNotRunning(wait.stream.clone()))?;
        let mut sent = stream.handle.packets_sent();
        let from = sent.now();
        let total = from.saturating_add(wait.packets);
        match tokio::time::timeout(wait.within, sent.reach(total)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(at)) => Err(RunnerError::PacketWaitEnded {
                stream: wait.stream.clone(),
                packets: wait.packets,
                reached: u64::from(at - from),
            }),
            Err(_) => Err(RunnerError::PacketWaitTimedOut {
                stream: wait.stream.clone(),
                packets: wait.packets,
                reached: u64::from(sent.now() - from),
                within: wait.within,
            }),
        }
    }

    pub(super) async fn stop_stream(
        &mut self,
        stop: &StopStream,
        step: &mut StepResult,
        result: &mut ScenarioResult,
    ) -> Result<(), RunnerError> {
        let stopping = self.stop_sending(stop)?;
        self.judge_stopped(stopping, step, result).await
    }

    /// Stop step `stop`'s stream sending; it is judged by
    /// [`ScenarioRun::judge_stopped`] once it has waited for late replies.
    pub(super) fn stop_sending(
        &mut self,
        stop: &StopStream,
    ) -> Result<StoppingStream, RunnerError> {
        let stream = self
            .streams
            .running
            .remove(&stop.name)
            .ok_or_else(|| RunnerError::StreamNotRunning(stop.name.clone()))?;
        let RunningStream {
            spec,
            target,
            handle,
            started_unix_ns,
            pods_had,
        } = stream;
        Ok(StoppingStream {
            stop: stop.clone(),
            spec,
            target,
            stopped: handle.stop_sending(),
            started_unix_ns,
            pods_had,
        })
    }

    /// Judge a stopped stream once it has drained.
    pub(super) async fn judge_stopped(
        &mut self,
        stream: StoppingStream,
        step: &mut StepResult,
        result: &mut ScenarioResult,
    ) -> Result<(), RunnerError> {
        let outcome = stream
            .stopped
            .outcome()
            .await
            .map_err(RunnerError::StopStream)?;
        let stop = &stream.stop;
        step.timing = Some(check::Timing::of(&outcome, outcome.probe));
        let observed = check::delivery_observed(&outcome, &self.scenario.cluster.externals);
        let book = self
            .address_book(&stream.spec.from)
            .with_earlier(&stream.pods_had);
        let packets = check::stream_packets(&outcome, stream.started_unix_ns);
        let changes: Vec<OwnerChange> = self
            .streams
            .moves
            .iter()
            .filter(|c| c.floating_ip == stream.target && c.at_unix_ns >= stream.started_unix_ns)
            .map(|c| OwnerChange {
                from: c.from.clone(),
                to: c.to.clone(),
                at_us: (c.at_unix_ns - stream.started_unix_ns) / 1000,
            })
            .collect();
        if let Some(moved) = Move::of(&changes) {
            result.migrations.push(MigrationReport {
                stream: stop.name.clone(),
                protocol: stream.spec.protocol.to_string(),
                figures: MigrationFigures::compute(&packets, &moved, TIMELINE_BUCKET_MS),
                from_pod: moved.from_pod,
                to_pod: moved.to_pod,
                packets: packets.clone(),
            });
        }
        let mismatches =
            check::stream_mismatches(&stop.expect, &observed, &book, &packets, &changes);
        if !mismatches.is_empty() && !outcome.sctp_events.is_empty() {
            step.message = Some(format!(
                "SCTP association events: {}",
                compact_events(&outcome.sctp_events)
            ));
        }
        step.lines = vec![CheckLine {
            source: stream.spec.from.clone(),
            destination: describe_target(&stream.spec.to, stream.target),
            protocol: format!("{} stream", stream.spec.protocol),
            observed,
            mismatches,
        }];
        Ok(())
    }

    pub(super) async fn stop_all_streams(&mut self) {
        for (_, stream) in std::mem::take(&mut self.streams.running) {
            let _ = stream.handle.stop().await;
        }
    }
}

/// SCTP events in order, with repeats folded (`INIT sent x3`).
fn compact_events(events: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run = 0;
    for (i, event) in events.iter().enumerate() {
        run += 1;
        if events.get(i + 1) != Some(event) {
            out.push(if run > 1 {
                format!("{event} x{run}")
            } else {
                event.clone()
            });
            run = 0;
        }
    }
    out.join(", ")
}
