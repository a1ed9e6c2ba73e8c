//! `exec:PATH [ARGS]`: which program runs as every node's dataplane. The text
//! after `exec:` is split as a POSIX shell would split it (quotes and
//! backslashes, no expansion), so a path or argument with spaces can be quoted.

use std::fmt;
use std::path::PathBuf;

/// A driver program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecSpecError {
    #[error("`exec:` names no program (write exec:PATH [ARGS])")]
    Empty,
    #[error("`exec:{0}`: unbalanced quotes or a trailing backslash")]
    Quoting(String),
}

impl ExecSpec {
    /// The spec of the text after `exec:`.
    pub fn parse(text: &str) -> Result<Self, ExecSpecError> {
        let words = shlex::split(text).ok_or_else(|| ExecSpecError::Quoting(text.to_string()))?;
        let mut words = words.into_iter();
        let program = words.next().ok_or(ExecSpecError::Empty)?;
        if program.is_empty() {
            return Err(ExecSpecError::Empty);
        }
        Ok(ExecSpec {
            program: program.into(),
            args: words.collect(),
        })
    }

    /// The program with a relative path made absolute against the current
    /// directory, so that it still names the same file from wherever the
    /// driver is started. A bare name is left to PATH.
    pub fn resolved_program(&self) -> PathBuf {
        let has_dir = self.program.components().count() > 1;
        if self.program.is_relative() && has_dir {
            if let Ok(cwd) = std::env::current_dir() {
                return cwd.join(&self.program);
            }
        }
        self.program.clone()
    }

    /// A short name for folders and logs: the program's file name.
    pub fn short_name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "driver".into())
    }
}

impl fmt::Display for ExecSpec {
    /// The words quoted back, so the text parses to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = self.program.to_string_lossy();
        let words = std::iter::once(program.as_ref()).chain(self.args.iter().map(String::as_str));
        match shlex::try_join(words) {
            Ok(text) => f.write_str(&text),
            // Only a NUL byte cannot be quoted, and no argv holds one.
            Err(_) => write!(f, "{program} {}", self.args.join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell_and_quotes_back() {
        let spec = ExecSpec::parse(r#"/opt/my driver/bin 'a b' c\ d --x="1 2""#).unwrap();
        assert_eq!(spec.program, PathBuf::from("/opt/my"));
        assert_eq!(spec.args, ["driver/bin", "a b", "c d", "--x=1 2"]);
        let spec = ExecSpec::parse(r#""/opt/my driver/bin" nftables"#).unwrap();
        assert_eq!(spec.program, PathBuf::from("/opt/my driver/bin"));
        assert_eq!(ExecSpec::parse(&spec.to_string()).unwrap(), spec);
        assert_eq!(spec.short_name(), "bin");
    }

    #[test]
    fn refuses_nothing_and_bad_quotes() {
        assert_eq!(ExecSpec::parse("  "), Err(ExecSpecError::Empty));
        assert_eq!(ExecSpec::parse("''"), Err(ExecSpecError::Empty));
        assert!(matches!(
            ExecSpec::parse("'open"),
            Err(ExecSpecError::Quoting(_))
        ));
    }

    #[test]
    fn a_relative_path_is_made_absolute_and_a_bare_name_is_left_to_path() {
        let relative = ExecSpec::parse("drivers/nft-driver.py").unwrap();
        assert!(relative.resolved_program().is_absolute());
        let bare = ExecSpec::parse("python3 x.py").unwrap();
        assert_eq!(bare.resolved_program(), PathBuf::from("python3"));
    }
}
