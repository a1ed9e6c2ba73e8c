//! `fip-harness` command lines as the docs write them: in shell blocks (each
//! line, continuation lines joined, comments, `sudo`, environment assignments,
//! pipes and redirections taken off) and in inline code spans.

use super::markdown::{code_spans, fences, Doc};

/// A documented command line: where it is, the arguments after `fip-harness`,
/// and whether it is a whole command (a shell block) or a mention in prose,
/// which may leave out a required argument.
pub struct CommandLine {
    pub at: String,
    pub words: Vec<String>,
    pub whole: bool,
}

/// Fenced blocks whose lines are shell commands.
const SHELL: [&str; 5] = ["sh", "bash", "shell", "console", "sh-session"];

pub fn command_lines(doc: &Doc) -> Result<Vec<CommandLine>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for fence in fences(&doc.text) {
        if !SHELL.contains(&fence.info.as_str()) {
            continue;
        }
        for (offset, line) in logical_lines(&fence.body) {
            let at = doc.at(fence.first_line + offset);
            let Some(words) = shlex::split(&strip_comment(&line)) else {
                problems.push(format!("{at}: the shell cannot split `{line}`"));
                continue;
            };
            for words in segments(&words) {
                if let Some(args) = harness_arguments(&words) {
                    out.push(CommandLine {
                        at: at.clone(),
                        words: args,
                        whole: true,
                    });
                }
            }
        }
    }
    for (line, span) in code_spans(&doc.text) {
        let Some(rest) = span.strip_prefix("fip-harness ") else {
            continue;
        };
        // A synopsis (`<lab>`, `[--seed N]`, `a|b`, `...`) is not a command line.
        if rest.contains(['<', '[', '|']) || rest.contains("...") {
            continue;
        }
        match shlex::split(rest) {
            Some(words) => out.push(CommandLine {
                at: doc.at(line),
                words,
                whole: false,
            }),
            None => problems.push(format!("{}: the shell cannot split `{span}`", doc.at(line))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Lines of a shell block, a line ending in `\` joined with the next, each
/// with its offset from the block's first line.
fn logical_lines(body: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in body.lines().enumerate() {
        let (start, mut text) = pending.take().unwrap_or((i, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                pending = Some((start, text));
            }
            None => {
                text.push_str(line);
                out.push((start, text));
            }
        }
    }
    out.extend(pending);
    out
}

/// `line` up to a `#` that starts a shell comment (at the start of a word,
/// outside quotes).
fn strip_comment(line: &str) -> String {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return line[..i].to_owned(),
            None => {}
        }
        previous = c;
    }
    line.to_owned()
}

/// The simple commands of a split line: cut at `|`, `||`, `&&` and `;`, with
/// redirections and their targets taken out.
fn segments(words: &[String]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        match word.as_str() {
            "|" | "||" | "&&" | ";" => out.push(Vec::new()),
            ">" | ">>" | "<" | "2>" | "&>" | "2>>" => skip_next = true,
            w if w.starts_with('>') || w.starts_with("2>") || w.starts_with("&>") => {}
            _ => out
                .last_mut()
                .expect("one segment at least")
                .push(word.clone()),
        }
    }
    out
}

/// The arguments of a simple command that runs `fip-harness` (by name or by
/// path, after `sudo` and environment assignments).
fn harness_arguments(words: &[String]) -> Option<Vec<String>> {
    let mut rest = words.iter().skip_while(|w| {
        *w == "sudo"
            || w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    });
    let program = rest.next()?;
    (program == "fip-harness" || program.ends_with("/fip-harness")).then(|| rest.cloned().collect())
}
