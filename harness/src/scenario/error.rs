//! Scenario errors: each names a file, a line and a column (1-based).

use std::fmt;
use std::path::PathBuf;

use crate::text::printable;

/// One error at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// What is wrong, with yaml_serde's key path in front where there is one
    /// (e.g. `steps[1].send.to: ...`) and the value at fault quoted.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Both come from outside (a file name, a value quoted from the file):
        // shown with control characters escaped, on one line.
        let file = self.file.display().to_string();
        write!(
            f,
            "{}:{}:{}: {}",
            printable(&file),
            self.line,
            self.column,
            printable(&self.message)
        )
    }
}

impl std::error::Error for ScenarioError {}

/// Every error found in one scenario file (at least one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
