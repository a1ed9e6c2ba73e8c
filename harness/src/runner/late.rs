//! Late leaks: once a case's steps are done, every send that expected
//! nothing delivered is judged again on what reached a pod after its window
//! closed ([`check::judge_late_leaks`]), so that a leak delayed past the
//! window fails the case as one inside it does.

use std::collections::BTreeMap;

use super::case::ScenarioRun;
use crate::check::{self, Arrival, Outcome, ScenarioResult};

impl ScenarioRun<'_> {
    /// Judge `result`'s silent sends again on everything their probes
    /// delivered up to now, the end of the case; the case's outcome after.
    pub(super) async fn judge_late_leaks(
        &self,
        result: &mut ScenarioResult,
        outcome: Outcome,
    ) -> Outcome {
        let probes: Vec<u32> = result
            .steps
            .iter()
            .filter(|step| check::awaits_late_leaks(step))
            .filter_map(|step| step.timing.as_ref().map(|t| t.probe))
            .collect();
        if probes.is_empty() {
            return outcome;
        }
        // Every packet the kernel has queued at a capture by now is read.
        self.engine.catch_up().await;
        let observed: BTreeMap<u32, _> = probes
            .into_iter()
            .map(|probe| (probe, self.engine.deliveries(probe)))
            .collect();
        let seen: BTreeMap<u32, Vec<Arrival<'_>>> = observed
            .iter()
            .map(|(probe, observations)| {
                let arrivals = observations
                    .iter()
                    .map(|o| Arrival {
                        pod: &o.endpoint,
                        sequence: o.token.seq,
                        source: o.src,
                        destination: o.dst,
                        at_unix_ns: o.at_unix_ns,
                    })
                    .collect();
                (*probe, arrivals)
            })
            .collect();
        let hosts = &self.scenario.cluster.externals;
        let (outcome, failed) = check::judge_late_leaks(result, outcome, &seen, hosts);
        for index in failed {
            tracing::warn!(step = index + 1, "a late leak");
            let diagnostics = self.write_diagnostics(index);
            if let Some(step) = result.steps.iter_mut().find(|s| s.index == index) {
                step.diagnostics = step.diagnostics.take().or(diagnostics);
            }
        }
        outcome
    }
}
