//! Labs reused between cases of the same shape (same nodes, external
//! hosts and families), for `explore`: a case runs in a lab an earlier
//! case left, after [`Lab::reset`] brought it back to the lab as built.
//! A lab is reused only under the route model (BIRD's state is not reset:
//! a BIRD case builds its own lab) and only with a built-in dataplane or a
//! mutant of one (an `exec:` driver's processes and state are its own),
//! never when a failing lab is to be kept.
//!
//! With `check` on (`explore --check-reset`, and tests/explore.rs), every
//! reset is followed by the lab's fingerprint ([`crate::lab::fingerprint`]),
//! compared with the one taken when the lab was built; any difference is
//! recorded as a leak and the lab is not reused.

use std::sync::Mutex;
use std::time::Instant;

use super::build::lab_spec;
use super::choice::DataplaneChoice;
use super::error::RunnerError;
use super::options::RunOptions;
use super::phases::{add, Phase};
use super::replay::{run_scenario_in, CaseLab};
use super::{case_error, case_panicked, case_runtime, run_case_blocking, PlannedCase};
use crate::bgp::RoutingMode;
use crate::check::ScenarioResult;
use crate::lab::fingerprint::Fingerprint;
use crate::lab::reset::{ResetBaseline, ResetStep};
use crate::lab::Lab;
use crate::scenario::Scenario;

/// Most labs kept idle at once: explore's cases come in a dozen shapes.
const MAX_IDLE: usize = 16;

/// What makes two cases' labs interchangeable.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LabShape {
    nodes: Vec<String>,
    externals: Vec<String>,
    dual_stack: bool,
}

impl LabShape {
    fn of(scenario: &Scenario) -> Self {
        let cluster = &scenario.cluster;
        Self {
            nodes: cluster.nodes.clone(),
            externals: cluster.externals.clone(),
            dual_stack: cluster.dual_stack,
        }
    }
}

/// A lab between two cases, with the runtime its netlink handles live on.
struct IdleLab {
    shape: LabShape,
    lab: Lab,
    baseline: ResetBaseline,
    /// The lab's fingerprint as built (taken in check mode only).
    fresh: Option<Fingerprint>,
    runtime: tokio::runtime::Runtime,
}

impl IdleLab {
    fn close(self) {
        let started = Instant::now();
        let lab = self.lab.name().to_string();
        if let Err(error) = self.lab.teardown() {
            tracing::warn!(%lab, %error, "tearing down a reused lab");
        }
        drop(self.runtime);
        add(Phase::Lab, started);
    }
}

/// How often labs were built, reused and found leaking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    pub built: u64,
    pub reused: u64,
    /// Resets that failed (the lab was torn down instead).
    pub reset_failures: u64,
}

/// Idle labs, by shape, shared by the jobs of a search.
pub struct LabPool {
    idle: Mutex<Vec<IdleLab>>,
    steps: Vec<ResetStep>,
    check: bool,
    leaks: Mutex<Vec<String>>,
    counts: Mutex<PoolCounts>,
}

impl LabPool {
    /// A pool whose resets carry out every step; `check`: compare each
    /// reset lab's fingerprint with its fingerprint as built.
    pub fn new(check: bool) -> Self {
        Self::with_steps(&ResetStep::ALL, check)
    }

    /// A pool whose resets carry out only `steps` (tests leave one out to
    /// show that the fingerprint check then finds the leak).
    pub fn with_steps(steps: &[ResetStep], check: bool) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            steps: steps.to_vec(),
            check,
            leaks: Mutex::new(Vec::new()),
            counts: Mutex::new(PoolCounts::default()),
        }
    }

    /// Whether `case` may run in a reused lab under `options`.
    pub fn reusable(case: &PlannedCase, options: &RunOptions) -> bool {
        options.routing == RoutingMode::Model
            && !options.keep_on_failure
            && !matches!(case.dataplane, DataplaneChoice::Exec(_))
    }

    /// Every fingerprint difference found after a reset, as
    /// `case: member section: + line`.
    pub fn leaks(&self) -> Vec<String> {
        self.leaks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn counts(&self) -> PoolCounts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `case`: in an idle lab of its shape when there is one (else in
    /// a lab built for it and kept for the next), reset after; a case that
    /// cannot reuse a lab runs as [`run_case_blocking`] runs it.
    pub fn run_case(&self, case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
        if !Self::reusable(case, options) {
            return run_case_blocking(case, options);
        }
        let run = std::panic::AssertUnwindSafe(|| self.run_reusing(case, options));
        std::panic::catch_unwind(run).unwrap_or_else(|panic| case_panicked(case, options, &*panic))
    }

    fn run_reusing(&self, case: &PlannedCase, options: &RunOptions) -> ScenarioResult {
        let shape = LabShape::of(&case.scenario);
        let case_name = options.naming.name_for(options.seed, &case.test_name());
        let idle = match self.take(&shape) {
            Some(idle) => idle,
            None => match self.build(case, &shape, &case_name) {
                Ok(idle) => idle,
                Err(reason) => return case_error(case, options, reason),
            },
        };
        let IdleLab {
            shape,
            lab,
            baseline,
            fresh,
            runtime,
        } = idle;
        let (result, lab) = runtime.block_on(run_scenario_in(
            &case.scenario,
            &case.dataplane,
            case.profile,
            CaseLab::Reuse(Box::new(lab), case_name.clone()),
            options,
        ));
        if let Some(lab) = lab {
            self.reset_and_keep(
                IdleLab {
                    shape,
                    lab,
                    baseline,
                    fresh,
                    runtime,
                },
                &case_name,
            );
        }
        result
    }

    /// A new lab of `shape` for `case`, with its baseline (and fingerprint).
    fn build(&self, case: &PlannedCase, shape: &LabShape, name: &str) -> Result<IdleLab, String> {
        let started = Instant::now();
        let runtime = case_runtime().map_err(|e| format!("starting a tokio runtime: {e}"))?;
        let spec = lab_spec(&case.scenario, name);
        let source = Some(case.scenario.source.clone());
        let check = self.check;
        let built = runtime.block_on(async {
            let mut lab = Lab::build_for(spec, source).await?;
            let baseline = lab.reset_baseline().await?;
            // The build's own neighbour discovery leaves cache entries whose
            // number depends on timing; every case starts with none.
            lab.reset_with(&baseline, &[ResetStep::Neighbours]).await?;
            let fresh = match check {
                true => Some(lab.fingerprint().await?),
                false => None,
            };
            Ok::<_, crate::lab::LabError>((lab, baseline, fresh))
        });
        add(Phase::Lab, started);
        let (lab, baseline, fresh) = built.map_err(|e| RunnerError::Build(e).to_string())?;
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).built += 1;
        Ok(IdleLab {
            shape: shape.clone(),
            lab,
            baseline,
            fresh,
            runtime,
        })
    }

    fn take(&self, shape: &LabShape) -> Option<IdleLab> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let found = idle.iter().rposition(|l| l.shape == *shape)?;
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).reused += 1;
        Some(idle.remove(found))
    }

    /// Reset `idle` after `case`; keep it when the reset (and the check)
    /// found it as built, else tear it down.
    fn reset_and_keep(&self, mut idle: IdleLab, case: &str) {
        let started = Instant::now();
        let steps = self.steps.clone();
        let reset = idle
            .runtime
            .block_on(idle.lab.reset_with(&idle.baseline, &steps));
        let checked = match (&reset, &idle.fresh) {
            (Ok(()), Some(fresh)) => match idle.runtime.block_on(idle.lab.fingerprint()) {
                Ok(now) => now
                    .differences(fresh)
                    .into_iter()
                    .map(|d| format!("{case}: {d}"))
                    .collect(),
                Err(error) => vec![format!("{case}: taking the fingerprint: {error}")],
            },
            _ => Vec::new(),
        };
        add(Phase::Reset, started);
        if let Err(error) = &reset {
            tracing::warn!(%error, "a lab could not be reset; the next case of its shape builds one");
            self.counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reset_failures += 1;
        }
        if reset.is_err() || !checked.is_empty() {
            self.leaks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(checked);
            idle.close();
            return;
        }
        let evicted = {
            let mut labs = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            labs.push(idle);
            (labs.len() > MAX_IDLE).then(|| labs.remove(0))
        };
        if let Some(oldest) = evicted {
            oldest.close();
        }
    }

    /// Tear every idle lab down.
    pub fn close(&self) {
        let labs = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for lab in labs {
            lab.close();
        }
    }
}

impl Drop for LabPool {
    fn drop(&mut self) {
        self.close();
    }
}
