//! What one case's run came to: its outcome, each step's check lines and
//! verdict, the moves of floating IPs under streams and the pictures of the
//! lab. The runner fills it; `conform` judges two of them against each other
//! ([`super::ConformCase`]); `report` renders them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::picture::LabPicture;
use super::{CheckLine, MigrationFigures, StreamPacket};
use crate::seed::Seed;

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
    /// A send's or a stopped stream's: how long its packets took, and a
    /// silent send's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<super::Timing>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    pub stream: String,
    pub protocol: String,
    pub from_pod: String,
    pub to_pod: String,
    pub figures: MigrationFigures,
    /// Every packet of the stream, for the report's plot.
    #[serde(default)]
    pub packets: Vec<StreamPacket>,
}

/// What a case is and how it ended: the leading fields of its whole result
/// ([`ScenarioResult`]) and of its entry in summary.json
/// (`report::CaseEntry`), flattened into both (their JSON reads as if the
/// fields were their own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseHead {
    pub name: String,
    pub file: PathBuf,
    pub backend: String,
    pub profile: String,
    /// The scenario's tags (the report filters on them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// `bird` or `model`: who programmed the routes (migration figures
    /// depend on it).
    pub routing: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioResult {
    #[serde(flatten)]
    pub head: CaseHead,
    pub steps: Vec<StepResult>,
    pub migrations: Vec<MigrationReport>,
    /// The lab as it stood when traffic first ran, and before and after each
    /// change of a floating IP's pod.
    #[serde(default)]
    pub lab_pictures: Vec<LabPicture>,
    /// Set when the lab was kept up for inspection (`--keep-on-failure`).
    pub kept_lab: Option<String>,
    /// The seed the case's random choices came from (`--seed` replays them).
    #[serde(default)]
    pub seed: Option<Seed>,
    /// The lab the case ran in (made up from the seed unless given).
    #[serde(default)]
    pub lab: Option<String>,
}

impl ScenarioResult {
    /// What a person needs to act on a failed case: the reason, each failing
    /// step's expected-against-actual lines and where its diagnostics are, and
    /// how to reach a lab that was kept. Empty for a pass.
    pub fn failure_text(&self) -> String {
        let mut text = match &self.head.outcome {
            Outcome::Passed => return String::new(),
            Outcome::Failed { reason } | Outcome::Error { reason } => format!("{reason}\n"),
        };
        for step in self.steps.iter().filter(|s| !s.passed) {
            text.push_str(&format!("step {}: {}\n", step.index + 1, step.summary));
            // Said once: the reason above already ends with it.
            if let Some(message) = step.message.as_ref().filter(|m| !self.reason_says(m)) {
                text.push_str(&format!("  {message}\n"));
            }
            text.push_str(&super::render_table(&step.lines));
            if let Some(dir) = &step.diagnostics {
                text.push_str(&format!("  diagnostics bundle: {}\n", dir.display()));
            }
        }
        if let Some(seed) = self.seed {
            text.push_str(&format!(
                "seed {seed}: `--seed {seed}` makes the same random choices again\n"
            ));
        }
        if let Some(lab) = &self.kept_lab {
            text.push_str(&format!(
                "lab `{lab}` was kept: `fip-harness exec {lab} <node-or-pod> -- <command>` to look \
                 inside, `fip-harness state {lab}` for its NAT, `fip-harness down {lab}` to remove it\n"
            ));
        }
        text
    }

    /// Whether the case's reason ends with `message` (a failed step's, which
    /// the reason quotes): then the step does not say it again.
    pub fn reason_says(&self, message: &str) -> bool {
        match &self.head.outcome {
            Outcome::Passed => false,
            Outcome::Failed { reason } | Outcome::Error { reason } => reason.ends_with(message),
        }
    }

    /// The JUnit/test name: `<scenario>::<backend>` plus the profile when it is
    /// not the default.
    pub fn case_name(&self) -> String {
        if self.head.profile == "calico" {
            format!("{}::{}", self.head.name, self.head.backend)
        } else {
            format!(
                "{}::{}::{}",
                self.head.name, self.head.backend, self.head.profile
            )
        }
    }
}
