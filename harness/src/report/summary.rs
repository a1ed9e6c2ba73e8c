//! The JSON summary of a run.

use serde::{Deserialize, Serialize};

use crate::check::ScenarioResult;
use crate::seed::Seed;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run's seed, when its cases share one (`run --seed` replays it).
    #[serde(default)]
    pub seed: Option<Seed>,
    pub duration_ms: u64,
    pub passed: usize,
    pub failed: usize,
    /// Median convergence over every migration of the run, per backend.
    pub median_convergence_ms: std::collections::BTreeMap<String, f64>,
    pub scenarios: Vec<ScenarioResult>,
    /// Set when the run was interrupted: its cases are those that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interrupted>,
}

/// How a run was cut short: by which signal, with how many cases planned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interrupted {
    /// `SIGINT` or `SIGTERM`.
    pub signal: String,
    /// Cases the run was to run (those in the report finished).
    pub planned: usize,
}

impl Interrupted {
    /// One line for every report: `interrupted by SIGINT: 1 of 3 case(s) finished`.
    pub fn line(&self, finished: usize) -> String {
        format!(
            "interrupted by {}: {finished} of {} case(s) finished",
            self.signal, self.planned
        )
    }
}

impl RunSummary {
    pub fn new(scenarios: Vec<ScenarioResult>, duration_ms: u64) -> Self {
        let passed = scenarios
            .iter()
            .filter(|s| s.head.outcome.is_pass())
            .count();
        let mut by_backend: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for scenario in &scenarios {
            for m in &scenario.migrations {
                if let Some(c) = m.figures.convergence_ms {
                    by_backend
                        .entry(scenario.head.backend.clone())
                        .or_default()
                        .push(c);
                }
            }
        }
        let median_convergence_ms = by_backend
            .into_iter()
            .map(|(backend, mut values)| {
                values.sort_by(f64::total_cmp);
                (backend, median(&values))
            })
            .collect();
        let mut seeds = scenarios.iter().map(|s| s.seed);
        let first = seeds.next().flatten();
        let seed = first.filter(|_| seeds.all(|s| s == first));
        RunSummary {
            seed,
            duration_ms,
            passed,
            failed: scenarios.len() - passed,
            median_convergence_ms,
            scenarios,
            interrupted: None,
        }
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
