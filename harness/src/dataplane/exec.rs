//! Running a backend's program inside a node's namespace, rules on stdin.

use std::io::Write;
use std::process::Stdio;

use crate::lab::netns::Netns;

use super::DataplaneError;

/// Run `program args` inside `node`, feed `stdin`, return stdout. A non-zero exit
/// becomes an error that names the namespace, the program and its stderr.
pub(crate) fn run_in(
    node: &Netns,
    program: &'static str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<String, DataplaneError> {
    let spawn_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataplaneError::Missing {
                netns: node.name().to_string(),
                missing: crate::programs::missing(program),
            }
        } else {
            DataplaneError::Spawn {
                netns: node.name().to_string(),
                program,
                source,
            }
        }
    };
    let mut child = node
        .command(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(input) = stdin {
        // Dropping the pipe at the end of this block is what tells the program
        // the batch is complete.
        let mut pipe = child.stdin.take().expect("stdin was piped");
        pipe.write_all(input).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        return Err(DataplaneError::Failed {
            netns: node.name().to_string(),
            program,
            args: args.join(" "),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
