//! Runs one scenario against a lab, the control plane and the traffic engine.

pub mod diagnostics;

use std::path::{Path, PathBuf};

use crate::dataplane::BackendKind;
use crate::report::{Outcome, ScenarioResult};

/// How a run treats its labs and where it writes.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub report_dir: Option<PathBuf>,
    pub keep_on_failure: bool,
}

/// One scenario file on one backend and conntrack profile.
#[derive(Clone, Debug)]
pub struct PlannedCase {
    pub path: PathBuf,
    pub name: String,
    pub backend: BackendKind,
    pub profile: String,
}

impl PlannedCase {
    pub fn test_name(&self) -> String {
        if self.profile == "calico" {
            format!("{}::{}", self.name, self.backend)
        } else {
            format!("{}::{}::{}", self.name, self.backend, self.profile)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every case of the catalogue under `root`.
pub fn plan_catalogue(root: &Path) -> Result<Vec<PlannedCase>, PlanError> {
    let mut cases = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|source| PlanError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            for backend in [BackendKind::Nftables, BackendKind::Iptables] {
                cases.push(PlannedCase {
                    path: path.clone(),
                    name: name.clone(),
                    backend,
                    profile: "calico".into(),
                });
            }
        }
    }
    cases.sort_by_key(PlannedCase::test_name);
    Ok(cases)
}

/// Run one case on a runtime of its own.
pub fn run_case_blocking(case: &PlannedCase, _options: &RunOptions) -> ScenarioResult {
    ScenarioResult {
        name: case.name.clone(),
        file: case.path.clone(),
        backend: case.backend.to_string(),
        profile: case.profile.clone(),
        outcome: Outcome::Error {
            reason: "the scenario runner is not built yet".into(),
        },
        duration_ms: 0,
        steps: vec![],
        migrations: vec![],
        kept_lab: None,
    }
}

/// What a person needs to act on a failed case.
pub fn describe_failure(result: &ScenarioResult) -> String {
    let mut text = match &result.outcome {
        Outcome::Passed => return String::new(),
        Outcome::Failed { reason } | Outcome::Error { reason } => format!("{reason}\n"),
    };
    for step in result.steps.iter().filter(|s| !s.passed) {
        text.push_str(&format!("step {}: {}\n", step.index + 1, step.summary));
        if let Some(message) = &step.message {
            text.push_str(&format!("  {message}\n"));
        }
        text.push_str(&crate::check::render_table(&step.lines));
        if let Some(dir) = &step.diagnostics {
            text.push_str(&format!("  diagnostics bundle: {}\n", dir.display()));
        }
    }
    text
}
