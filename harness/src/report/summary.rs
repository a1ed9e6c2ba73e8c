//! The JSON summary of a run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::check::{CheckLine, MigrationFigures};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Outcome {
    Passed,
    /// An expectation was not met.
    Failed {
        reason: String,
    },
    /// The harness could not run the scenario (lab, dataplane, privileges...).
    Error {
        reason: String,
    },
}

impl Outcome {
    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Passed)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub index: usize,
    /// What the step does, e.g. `send icmp client -> 203.0.113.10`.
    pub summary: String,
    pub passed: bool,
    pub attempts: u32,
    pub lines: Vec<CheckLine>,
    /// For steps without traffic lines: what went wrong.
    pub message: Option<String>,
    /// The step's diagnostics bundle, when it failed.
    pub diagnostics: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    pub stream: String,
    pub protocol: String,
    pub from_pod: String,
    pub to_pod: String,
    pub figures: MigrationFigures,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioResult {
    pub name: String,
    pub file: PathBuf,
    pub backend: String,
    pub profile: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
    pub migrations: Vec<MigrationReport>,
    /// Set when the lab was kept up for inspection (`--keep-on-failure`).
    pub kept_lab: Option<String>,
}

impl ScenarioResult {
    /// The JUnit/test name: `<scenario>::<backend>` plus the profile when it is
    /// not the default.
    pub fn case_name(&self) -> String {
        if self.profile == "calico" {
            format!("{}::{}", self.name, self.backend)
        } else {
            format!("{}::{}::{}", self.name, self.backend, self.profile)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub duration_ms: u64,
    pub passed: usize,
    pub failed: usize,
    /// Median convergence over every migration of the run, per backend.
    pub median_convergence_ms: std::collections::BTreeMap<String, f64>,
    pub scenarios: Vec<ScenarioResult>,
}

impl RunSummary {
    pub fn new(scenarios: Vec<ScenarioResult>, duration_ms: u64) -> Self {
        let passed = scenarios.iter().filter(|s| s.outcome.is_pass()).count();
        let mut by_backend: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for scenario in &scenarios {
            for m in &scenario.migrations {
                if let Some(c) = m.figures.convergence_ms {
                    by_backend
                        .entry(scenario.backend.clone())
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
        RunSummary {
            duration_ms,
            passed,
            failed: scenarios.len() - passed,
            median_convergence_ms,
            scenarios,
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
