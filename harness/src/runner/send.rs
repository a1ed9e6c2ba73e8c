//! The `send` step: a batch of probes, judged against the step's expectation,
//! tried again while it fails as [`RetryPolicy::SENDS`] says.

use std::time::{Duration, Instant};

use super::case::{describe_target, ScenarioRun};
use super::error::RunnerError;
use crate::check::{self, CheckLine, NextTry, RetryPolicy};
use crate::report::StepResult;
use crate::scenario::Send;
use crate::traffic::ProbeSpec;

impl ScenarioRun<'_> {
    pub(super) async fn send(
        &mut self,
        index: usize,
        send: &Send,
        step: &mut StepResult,
    ) -> Result<(), RunnerError> {
        let to = self.resolve(&send.to)?;
        let book = self.address_book(&send.from);
        let began = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut spec = ProbeSpec::new(&send.from, to, send.protocol);
            spec.count = send.count;
            spec.interval = send.interval;
            spec.port = send.port;
            spec.step = index as u32;
            if send.expect.expects_silence() {
                // Nothing will answer: don't wait long for it.
                spec.timeout = Duration::from_millis(300);
            }
            let outcome = self.engine.probe(spec).await.map_err(RunnerError::Send)?;
            let observed = check::delivery_observed(&outcome, &self.scenario.cluster.externals);
            let mismatches = check::mismatches(&send.expect, &observed, &book);
            let line = CheckLine {
                source: send.from.clone(),
                destination: describe_target(&send.to, to),
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
                NextTry::Again(pause) => tokio::time::sleep(pause).await,
            }
        }
    }
}
