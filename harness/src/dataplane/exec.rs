//! Running a backend's program inside a node's namespace, rules on stdin.

use std::io::Write;
use std::process::Stdio;

use crate::lab::netns::Netns;

use super::{DataplaneError, NodeNatState};

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
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = node.spawn(&mut command).map_err(spawn_error)?;
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

/// `nft [-j] list table <family> <table>` for `ip` then `ip6`, concatenated
/// (JSON listings one per line); a family whose table is absent adds nothing.
pub(crate) fn nft_list_tables(
    node: &Netns,
    table: &str,
    json: bool,
) -> Result<String, DataplaneError> {
    let mut out = String::new();
    for family in ["ip", "ip6"] {
        let mut args = vec!["list", "table", family, table];
        if json {
            args.insert(0, "-j");
        }
        match run_in(node, "nft", &args, None) {
            Ok(text) => out.push_str(&text),
            Err(DataplaneError::Failed { stderr, .. }) if stderr.contains("No such file") => {}
            Err(e) => return Err(e),
        }
        if json {
            out.push('\n');
        }
    }
    Ok(out)
}

/// The mappings both families' `table` hold, from their JSON listings, each
/// read by `parse`.
pub(crate) fn nft_read_tables(
    node: &Netns,
    table: &str,
    parse: fn(&str) -> Result<NodeNatState, serde_json::Error>,
) -> Result<NodeNatState, DataplaneError> {
    let (mut dnat, mut snat) = (Vec::new(), Vec::new());
    for line in nft_list_tables(node, table, true)?
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let part = parse(line).map_err(|e| DataplaneError::Unreadable {
            netns: node.name().to_string(),
            reason: e.to_string(),
        })?;
        dnat.extend(part.dnat);
        snat.extend(part.snat);
    }
    Ok(NodeNatState::new(dnat, snat))
}
