//! Scenario folders a project adds to the catalogue test: `FIP_HARNESS_SCENARIOS`
//! holds a list of folders (or files) separated as `PATH` is (`:` on Unix), so
//! `FIP_HARNESS_SCENARIOS=ours cargo test --test catalogue` runs them as tests
//! beside the catalogue's own.

use std::ffi::OsStr;
use std::path::PathBuf;

/// The environment variable naming extra scenario folders.
pub const SCENARIOS_ENV: &str = "FIP_HARNESS_SCENARIOS";

/// `catalogue` followed by each folder named in `extra` (the variable's value);
/// empty entries are skipped, so a trailing `:` does no harm.
pub fn catalogue_folders(catalogue: PathBuf, extra: Option<&OsStr>) -> Vec<PathBuf> {
    let mut folders = vec![catalogue];
    if let Some(extra) = extra {
        folders.extend(std::env::split_paths(extra).filter(|p| !p.as_os_str().is_empty()));
    }
    folders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_folders_follow_the_catalogue() {
        let folders = catalogue_folders("scenarios".into(), Some(OsStr::new("a::b/c:")));
        assert_eq!(folders, ["scenarios", "a", "b/c"].map(PathBuf::from));
        assert_eq!(catalogue_folders("s".into(), None), [PathBuf::from("s")]);
    }
}
