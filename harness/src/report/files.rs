//! The JSON a run leaves on disk: a small summary file (counts, and one entry
//! per case with its outcome) and, under `cases/`, one file per case with
//! everything the case recorded (steps, check lines, every stream packet, the
//! lab's pictures). A run of the whole catalogue wrote all of it into one
//! summary.json of several megabytes that no person opens and every tool
//! parses whole; the summary now stays a few kilobytes, and a case's detail is
//! one file away (`detail` names it, relative to the report directory).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::summary::RunSummary;
use crate::check::{CaseHead, ScenarioResult};
use crate::seed::Seed;

/// The folder of the per-case files, inside the report directory.
pub const CASES_DIR: &str = "cases";

/// A report file that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportFileError {
    /// Written atomically (lab::files): a full disk says "disk full: PATH"
    /// and leaves no half file.
    #[error(transparent)]
    Disk(#[from] crate::lab::files::WriteError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding {path} as JSON: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// One case in the summary file: what it is, how it ended, and where its
/// detail is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseEntry {
    #[serde(flatten)]
    pub head: CaseHead,
    /// 1-based numbers of the steps that failed.
    #[serde(default)]
    pub failed_steps: Vec<usize>,
    pub kept_lab: Option<String>,
    #[serde(default)]
    pub seed: Option<Seed>,
    #[serde(default)]
    pub lab: Option<String>,
    /// The case's file under the report directory (`cases/<case>.json`): the
    /// whole [`ScenarioResult`].
    pub detail: PathBuf,
}

/// summary.json: the run's counts and one [`CaseEntry`] per case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryFile {
    #[serde(default)]
    pub seed: Option<Seed>,
    pub duration_ms: u64,
    pub passed: usize,
    pub failed: usize,
    pub median_convergence_ms: BTreeMap<String, f64>,
    pub scenarios: Vec<CaseEntry>,
    /// Set when the run was interrupted (see [`RunSummary::interrupted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<super::summary::Interrupted>,
}

impl SummaryFile {
    /// The summary of `summary`, its cases' details at `details` (in order).
    pub fn new(summary: &RunSummary, details: Vec<PathBuf>) -> Self {
        let scenarios = summary
            .scenarios
            .iter()
            .zip(details)
            .map(|(case, detail)| CaseEntry::new(case, detail))
            .collect();
        SummaryFile {
            seed: summary.seed,
            duration_ms: summary.duration_ms,
            passed: summary.passed,
            failed: summary.failed,
            median_convergence_ms: summary.median_convergence_ms.clone(),
            scenarios,
            interrupted: summary.interrupted.clone(),
        }
    }
}

impl CaseEntry {
    fn new(case: &ScenarioResult, detail: PathBuf) -> Self {
        CaseEntry {
            head: case.head.clone(),
            failed_steps: case
                .steps
                .iter()
                .filter(|s| !s.passed)
                .map(|s| s.index + 1)
                .collect(),
            kept_lab: case.kept_lab.clone(),
            seed: case.seed,
            lab: case.lab.clone(),
            detail,
        }
    }
}

/// Write summary.json for `summary` into `dir`, and each case's whole result
/// under `dir/cases/`; the summary file's content is returned (what `run
/// --json` prints).
pub fn write_summary(dir: &Path, summary: &RunSummary) -> Result<SummaryFile, ReportFileError> {
    let details = write_case_files(
        dir,
        summary
            .scenarios
            .iter()
            .map(|case| (case.case_name(), case)),
    )?;
    let file = SummaryFile::new(summary, details);
    write_json(&dir.join("summary.json"), &file)?;
    Ok(file)
}

/// Write each `(name, value)` as `dir/cases/<name>.json` (the name made safe
/// for a file name, and unique), returning each file's path relative to
/// `dir`.
pub fn write_case_files<'a, T: Serialize + 'a>(
    dir: &Path,
    cases: impl IntoIterator<Item = (String, &'a T)>,
) -> Result<Vec<PathBuf>, ReportFileError> {
    let folder = dir.join(CASES_DIR);
    std::fs::create_dir_all(&folder).map_err(|source| ReportFileError::Write {
        path: folder.clone(),
        source,
    })?;
    let mut taken = HashSet::new();
    let mut written = Vec::new();
    for (name, value) in cases {
        let stem = file_stem(&name);
        let mut unique = stem.clone();
        let mut n = 1;
        while !taken.insert(unique.clone()) {
            n += 1;
            unique = format!("{stem}-{n}");
        }
        let relative = Path::new(CASES_DIR).join(format!("{unique}.json"));
        write_json(&dir.join(&relative), value)?;
        written.push(relative);
    }
    Ok(written)
}

/// Write `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), ReportFileError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| ReportFileError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    write_text(path, &text)
}

/// Write `text` to `path` all at once or not at all.
pub fn write_text(path: &Path, text: &str) -> Result<(), ReportFileError> {
    Ok(crate::lab::files::write_atomically(path, text.as_bytes())?)
}

/// A case name as a file name: `::` becomes `--`, and anything but ASCII
/// letters, digits, `.`, `-` and `_` becomes `_` (a driver's backend name is
/// `exec:` and a path).
pub fn file_stem(name: &str) -> String {
    let stem: String = name
        .replace("::", "--")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Never a hidden file, `.` or `..`.
    stem.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_data::{failed_case, moved_case};

    #[test]
    fn case_names_become_safe_unique_file_names() {
        assert_eq!(
            file_stem("move::exec:drivers/nft-driver.py --x::strict"),
            "move--exec_drivers_nft-driver.py_--x--strict"
        );
        assert_eq!(file_stem("../up"), "_up");
        let dir = tempfile::tempdir().unwrap();
        let one = 1;
        let paths = write_case_files(
            dir.path(),
            [("a/b".to_string(), &one), ("a:b".into(), &one)],
        )
        .unwrap();
        assert_eq!(
            paths,
            [PathBuf::from("cases/a_b.json"), "cases/a_b-2.json".into()]
        );
    }

    #[test]
    fn the_summary_is_small_and_each_case_is_one_file_away() {
        let dir = tempfile::tempdir().unwrap();
        let summary = RunSummary::new(vec![failed_case(), moved_case()], 2_500);
        let file = write_summary(dir.path(), &summary).unwrap();
        assert_eq!((file.passed, file.failed), (1, 1));
        let failed = &file.scenarios[0];
        assert_eq!(failed.failed_steps, [2]);
        let text = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
        // Neither stream packets nor lab pictures are in the summary.
        assert!(!text.contains("labPictures") && !text.contains("packets"));
        for (entry, case) in file.scenarios.iter().zip(&summary.scenarios) {
            let detail = std::fs::read_to_string(dir.path().join(&entry.detail)).unwrap();
            let back: ScenarioResult = serde_json::from_str(&detail).unwrap();
            assert_eq!(&back, case);
        }
    }
}
