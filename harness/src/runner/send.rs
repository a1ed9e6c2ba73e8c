//! The `send` step: a batch of probes, judged against the step's expectation,
//! tried again while it fails.

use std::time::{Duration, Instant};

use super::case::{describe_target, ScenarioRun};
use super::observe::delivery_observed;
use crate::check::{self, CheckLine, Delivery};
use crate::report::StepResult;
use crate::scenario::Send;
use crate::traffic::ProbeSpec;

/// A check is tried again while it fails, like a connectivity checker: routes
/// and rules may need a moment after a change. Bounded in count and time.
const MAX_ATTEMPTS: u32 = 3;
const RETRY_BUDGET: Duration = Duration::from_secs(6);

impl ScenarioRun<'_> {
    pub(super) async fn send(
        &mut self,
        index: usize,
        send: &Send,
        step: &mut StepResult,
    ) -> Result<(), String> {
        let to = self.resolve(&send.to)?;
        let book = self.address_book(&send.from);
        let deadline = Instant::now() + RETRY_BUDGET;
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
            let outcome = self
                .engine
                .probe(spec)
                .await
                .map_err(|e| format!("sending: {e}"))?;
            let observed = delivery_observed(&outcome, &self.scenario.cluster.externals);
            let mismatches = check::mismatches(&send.expect, &observed, &book);
            let line = CheckLine {
                source: send.from.clone(),
                destination: describe_target(&send.to, to),
                protocol: send.protocol.to_string(),
                observed,
                mismatches,
            };
            // A leak is a leak even if the next try is quiet: only sends that
            // must reach something are tried again.
            let retry = !matches!(send.expect.delivered_to, Some(Delivery::None));
            let done =
                line.passed() || !retry || attempt >= MAX_ATTEMPTS || Instant::now() >= deadline;
            if done {
                step.attempts = attempt;
                step.lines = vec![line];
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
