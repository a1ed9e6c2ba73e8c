//! Reading files named by people: scenario files and the files they reference.
//! Only regular files, up to a size limit, opened without blocking (a FIFO
//! named `x.yaml` or `cni: /dev/zero` is refused, not waited on or read
//! forever), shown by their resolved path. And errors about a file's content
//! never quote more than a short excerpt of it, nor anything of a file that is
//! not of the kind expected (`manifest: /etc/shadow`).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest scenario or referenced file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// How deep `[`/`{` and indentation may nest (scenarios need about 6).
pub const MAX_NESTING: usize = 32;
/// The longest quoted value kept in an error message.
const MAX_QUOTE: usize = 40;
/// The longest error message about a file's content.
const MAX_MESSAGE: usize = 300;

/// A file's text with its resolved path, or why it cannot be read (the message
/// names the resolved path).
pub(crate) fn read_text(path: &Path) -> Result<(PathBuf, String), String> {
    let resolved = std::fs::canonicalize(path).map_err(|e| io_text(path, &e))?;
    let shown = resolved.display();
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&resolved)
        .map_err(|e| io_text(&resolved, &e))?;
    let meta = file.metadata().map_err(|e| io_text(&resolved, &e))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!("`{shown}` is {what}; only regular files are read"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "`{shown}` is {} bytes; files over {MAX_FILE_BYTES} bytes are not read",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    // The file may grow after the check; never read past the limit.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_text(&resolved, &e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "`{shown}` grew past {MAX_FILE_BYTES} bytes while read"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{shown}` is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    // A UTF-8 byte order mark (some Windows editors write one) is not YAML content.
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    Ok((resolved, text))
}

/// An I/O error as people say it, with the path.
pub(crate) fn io_text(path: &Path, error: &std::io::Error) -> String {
    let shown = path.display();
    match error.raw_os_error() {
        Some(libc::ELOOP) => format!("`{shown}`: a loop of symbolic links"),
        Some(libc::ENOENT) => format!("`{shown}`: no such file"),
        Some(libc::EACCES) => format!("`{shown}`: permission denied"),
        _ => format!("`{shown}`: {error}"),
    }
}

/// The line and column where nesting first goes deeper than [`MAX_NESTING`]
/// (flow brackets, or indentation levels of block structure), if it does.
/// Checked before parsing: the parser takes minutes on a deeply nested file.
pub(crate) fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let content = line.trim_start_matches([' ', '-']);
        let indent = line.len() - content.len();
        if !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            if indents.len() > MAX_NESTING {
                return Some((n + 1, indent + 1));
            }
        }
        let mut quote: Option<char> = None;
        for (col, c) in content.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return Some((n + 1, indent + col + 1));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// An error message about a file's content with every quoted value cut to a
/// short excerpt and the whole cut to a few lines' length.
pub(crate) fn excerpt(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=start]);
        let after = &rest[start + 1..];
        let end = after.find(quote).unwrap_or(after.len());
        out.push_str(&shorten(&after[..end], MAX_QUOTE));
        rest = &after[end..];
        if let Some(closing) = rest.chars().next() {
            out.push(closing);
            rest = &rest[closing.len_utf8()..];
        }
    }
    out.push_str(rest);
    shorten(&out, MAX_MESSAGE)
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Whether `text` looks like YAML of a Kubernetes `kind` (a `kind:` line naming
/// one of `kinds`, or any kind if `kinds` is empty), so that errors about it
/// may quote it.
pub(crate) fn has_kind(text: &str, kinds: &[&str]) -> bool {
    text.lines().any(|line| {
        line.trim_start()
            .strip_prefix("kind:")
            .map(|k| k.trim().trim_matches(['"', '\'']))
            .is_some_and(|k| kinds.is_empty() || kinds.contains(&k))
    })
}

/// What a file that is not a scenario gets told, quoting none of it.
pub(crate) const NOT_A_SCENARIO: &str =
    "not a scenario: a scenario is a YAML mapping with `cluster` and `steps`";

/// The keys of a scenario's top mapping, as the scenario's JSON Schema
/// names them (so a key added to the language counts at once).
fn top_keys() -> &'static std::collections::BTreeSet<String> {
    static KEYS: std::sync::OnceLock<std::collections::BTreeSet<String>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(&super::scenario_schema_json()).unwrap_or_default();
        schema["properties"]
            .as_object()
            .map(|keys| {
                keys.keys()
                    .filter(|k| !k.starts_with('$'))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Whether `text` is YAML whose top is a mapping with at least one scenario
/// key, or YAML the parser refuses (its syntax error quotes no content).
/// Anything else (`root:*:20228:...` is a mapping of one unknown key) is not
/// a scenario, and errors about it must not quote it.
pub(crate) fn is_scenario_shaped(text: &str) -> bool {
    match yaml_serde::from_str::<yaml_serde::Value>(text) {
        Err(_) => true,
        Ok(yaml_serde::Value::Mapping(top)) => top
            .keys()
            .any(|key| key.as_str().is_some_and(|k| top_keys().contains(k))),
        Ok(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_and_a_device_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read_text(&fifo).unwrap_err().contains("is a FIFO"));
        assert!(read_text(Path::new("/dev/zero"))
            .unwrap_err()
            .contains("is a device"));
    }

    #[test]
    fn a_bom_is_dropped_and_big_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bom = dir.path().join("bom.yaml");
        std::fs::write(&bom, "\u{feff}name: x\n").unwrap();
        assert_eq!(read_text(&bom).unwrap().1, "name: x\n");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_text(&big).unwrap_err().contains("not read"));
    }

    #[test]
    fn nesting_is_measured_in_brackets_and_indentation() {
        assert_eq!(too_deep("a: [[1]]\nb:\n  c: 1\n"), None);
        assert_eq!(too_deep(&"[".repeat(40)), Some((1, MAX_NESTING + 1)));
        let block: String = (0..40)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(too_deep(&block), Some((MAX_NESTING + 1, MAX_NESTING + 1)));
    }

    /// Every key of the language makes a file a scenario (the list is the
    /// schema's, read once).
    #[test]
    fn every_top_key_makes_a_scenario() {
        assert!(top_keys().len() >= 9 && top_keys().contains("steps"));
        for key in top_keys() {
            assert!(is_scenario_shaped(&format!("{key}: 1\n")), "{key}");
        }
    }

    #[rstest::rstest]
    #[case::a_password_file("root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n", false)]
    #[case::one_word("secret-token-value\n", false)]
    #[case::a_list("- a\n- b\n", false)]
    #[case::a_scenario_with_a_typo("cluster: {}\nstepz: []\n", true)]
    #[case::broken_yaml("cluster: [\n", true)]
    fn only_scenario_shaped_files_are_quoted(#[case] text: &str, #[case] shaped: bool) {
        assert_eq!(is_scenario_shaped(text), shaped, "{text}");
    }

    #[test]
    fn excerpts_cut_quoted_values() {
        let long = "x".repeat(500);
        let cut = excerpt(&format!("invalid type: string \"{long}\", expected a map"));
        assert!(cut.len() < 100, "{cut}");
        assert!(cut.ends_with("\", expected a map"), "{cut}");
    }
}
