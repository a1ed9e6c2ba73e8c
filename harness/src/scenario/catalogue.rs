//! A catalogue: the scenario files under some paths, loaded, with names unique.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::error::ScenarioError;
use super::input::{io_text, read_text};
use super::load::{load_file, name_position};
use super::model::Scenario;

/// The scenarios that loaded, and every error found (in path order).
#[derive(Debug, Default)]
pub struct Catalogue {
    pub scenarios: Vec<Scenario>,
    pub errors: Vec<ScenarioError>,
}

/// Files given directly, plus `*.yaml` / `*.yml` found recursively under folders;
/// sorted and without duplicates.
pub fn find_scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| error_at(path, io_text(path, &e)))?;
        if meta.is_dir() {
            let before = files.len();
            let mut seen = BTreeSet::new();
            walk(path, &mut files, &mut seen)?;
            if files.len() == before {
                return Err(error_at(
                    path,
                    "no scenario files (*.yaml, *.yml) in this folder".into(),
                ));
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The most files a folder walk collects.
pub const MAX_FILES: usize = 10_000;

fn error_at(path: &Path, message: String) -> ScenarioError {
    ScenarioError {
        file: path.to_owned(),
        line: 1,
        column: 1,
        message,
    }
}

/// Collect `*.yaml` / `*.yml` under `dir`. Folders are entered once each (by
/// device and inode), so links back up the tree end the walk with an error
/// instead of making it exponential.
fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut BTreeSet<(u64, u64)>,
) -> Result<(), ScenarioError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|e| error_at(dir, io_text(dir, &e)))?;
    if !seen.insert((meta.dev(), meta.ino())) {
        let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        return Err(error_at(
            dir,
            format!(
                "a loop of symbolic links: this folder is `{}`, already searched",
                resolved.display()
            ),
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| error_at(dir, io_text(dir, &e)))?;
    for entry in entries {
        let path = entry.map_err(|e| error_at(dir, io_text(dir, &e)))?.path();
        let meta = std::fs::metadata(&path).map_err(|e| error_at(&path, io_text(&path, &e)))?;
        if meta.is_dir() {
            walk(&path, out, seen)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            if out.len() >= MAX_FILES {
                return Err(error_at(
                    dir,
                    format!("more than {MAX_FILES} scenario files"),
                ));
            }
            out.push(path);
        }
    }
    Ok(())
}

/// Loads every scenario under `paths`; a name used twice is an error at the
/// second file.
pub fn load_catalogue(paths: &[PathBuf]) -> Catalogue {
    let mut catalogue = Catalogue::default();
    let files = match find_scenario_files(paths) {
        Ok(files) => files,
        Err(e) => {
            catalogue.errors.push(e);
            return catalogue;
        }
    };
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        match load_file(&file) {
            Ok(scenario) => {
                if let Some(first) = names.get(&scenario.name) {
                    let text = read_text(&file).map(|(_, t)| t).unwrap_or_default();
                    let (line, column) = name_position(&text).unwrap_or((1, 1));
                    catalogue.errors.push(ScenarioError {
                        file: file.clone(),
                        line,
                        column,
                        message: format!(
                            "name: scenario name `{}` is already used by {}",
                            scenario.name,
                            first.display()
                        ),
                    });
                    continue;
                }
                names.insert(scenario.name.clone(), file);
                catalogue.scenarios.push(scenario);
            }
            Err(errors) => catalogue.errors.extend(errors.0),
        }
    }
    catalogue
}

/// `--filter REGEX`: keeps scenarios whose name or one of whose tags matches;
/// a leading `!` keeps the others instead.
#[derive(Clone, Debug)]
pub struct ScenarioFilter {
    regex: regex::Regex,
    negate: bool,
}

impl ScenarioFilter {
    pub fn parse(text: &str) -> Result<Self, regex::Error> {
        let (negate, pattern) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        Ok(Self {
            regex: regex::Regex::new(pattern)?,
            negate,
        })
    }

    pub fn keeps(&self, scenario: &Scenario) -> bool {
        let hit = self.regex.is_match(&scenario.name)
            || scenario.tags.iter().any(|t| self.regex.is_match(t));
        hit != self.negate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matches_names_and_tags_and_negates() {
        let catalogue = load_catalogue(&[PathBuf::from("../scenarios")]);
        assert!(catalogue.errors.is_empty(), "{:?}", catalogue.errors);
        let names = |filter: &str| -> Vec<String> {
            let filter = ScenarioFilter::parse(filter).unwrap();
            catalogue
                .scenarios
                .iter()
                .filter(|s| filter.keeps(s))
                .map(|s| s.name.clone())
                .collect()
        };
        let all = names(".");
        assert_eq!(all.len(), catalogue.scenarios.len());
        let moves = names("^move-");
        assert!(
            moves.contains(&"move-across-nodes".to_string()),
            "{moves:?}"
        );
        assert!(moves.iter().all(|n| n.starts_with("move-")), "{moves:?}");
        let negative = names("^negative$");
        assert!(
            negative.contains(&"feature-off-in-cni".to_string()),
            "tags match too: {negative:?}"
        );
        assert!(!negative.contains(&"icmp-external-v4".to_string()));
        let not_moves = names("!^move-");
        assert_eq!(
            not_moves.len() + moves.len(),
            all.len(),
            "! keeps the others"
        );
        assert!(not_moves.iter().all(|n| !n.starts_with("move-")));
        assert!(ScenarioFilter::parse("(").is_err());
    }

    #[test]
    fn folders_are_searched_recursively_for_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for file in ["a.yaml", "sub/b.yml", "c.txt", "sub/d.json"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let found = find_scenario_files(&[dir.path().to_owned()]).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["a.yaml", "sub/b.yml"]);
        assert!(find_scenario_files(&[dir.path().join("missing")]).is_err());
    }
}
