//! How a kept lab was made (`up`, or `run --keep-on-failure`), read back by
//! `replay`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choice::DataplaneChoice;
use super::options::RunOptions;
use crate::scenario::{ConntrackProfile, Scenario};
use crate::seed::Seed;

/// How `up` brought a lab up, so that `replay` takes the same dataplane,
/// profile, routing and seed without being told again. Kept in the lab's
/// directory (removed with the lab).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpRecord {
    pub scenario: PathBuf,
    pub dataplane: String,
    pub profile: ConntrackProfile,
    pub routing: String,
    pub seed: Option<Seed>,
    /// The lab is in the state before this step (1-based): the step `up
    /// --until-step` stopped before, or the one after the step that failed
    /// in `run --keep-on-failure`. None: `up` without a step (pod steps only).
    pub until_step: Option<usize>,
}

impl UpRecord {
    /// The record of a lab made from `scenario` with these choices, in the
    /// state before step `until_step` (1-based).
    pub fn of(
        scenario: &Scenario,
        dataplane: &DataplaneChoice,
        profile: ConntrackProfile,
        options: &RunOptions,
        until_step: Option<usize>,
    ) -> UpRecord {
        UpRecord {
            scenario: scenario
                .source
                .canonicalize()
                .unwrap_or_else(|_| scenario.source.clone()),
            dataplane: dataplane.to_string(),
            profile,
            routing: options.routing.to_string(),
            seed: options.seed,
            until_step,
        }
    }

    fn path(lab: &str) -> PathBuf {
        crate::lab::daemons::lab_dir(lab).join("up.json")
    }

    pub fn write(&self, lab: &str) -> std::io::Result<()> {
        let path = Self::path(lab);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }

    /// The record of `lab`, if `up` made it.
    pub fn read(lab: &str) -> Option<UpRecord> {
        let text = std::fs::read(Self::path(lab)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}
