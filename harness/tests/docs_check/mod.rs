//! The checks that keep README.md and docs/ true, each returning the faults it
//! finds as `file:line: what` texts (empty: none), so that a test can run them
//! on the real pages and on pages broken on purpose.

pub mod commands;
pub mod markdown;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use commands::{command_lines, CommandLine};
use markdown::{anchors, code_spans, fences, link_targets, paragraphs, Doc};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every Markdown page under docs/, named from the repository root.
pub fn pages(repo: &Path) -> Vec<Doc> {
    let mut names = vec!["README.md".to_owned()];
    let mut stack = vec![repo.join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                let name = path.strip_prefix(repo).unwrap();
                names.push(name.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|name| Doc {
            text: std::fs::read_to_string(repo.join(&name)).unwrap(),
            name,
        })
        .collect()
}

/// Every `fip-harness` command line of `docs`, parsed by the binary's own
/// definition (`fip-harness describe-cli --parse`). Returns the faults and
/// the command lines that parsed.
pub fn command_problems(docs: &[Doc]) -> (Vec<String>, Vec<CommandLine>) {
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    for doc in docs {
        match command_lines(doc) {
            Ok(found) => lines.extend(found),
            Err(faults) => problems.extend(faults),
        }
    }
    let answers = parse_with_the_binary(&lines);
    let mut parsed = Vec::new();
    for (line, answer) in lines.into_iter().zip(answers) {
        // A mention in prose (`fip-harness conform`) may leave out what a
        // whole command needs; it must still name real commands and options.
        let incomplete = [
            "MissingRequiredArgument",
            "MissingSubcommand",
            "DisplayHelpOnMissing",
        ];
        let fine = answer == "ok"
            || !line.whole
                && incomplete
                    .iter()
                    .any(|kind| answer.starts_with(&format!("error {kind}")));
        if fine {
            parsed.push(line);
        } else {
            let shown = line.words.join(" ");
            problems.push(format!("{}: `fip-harness {shown}`: {answer}", line.at));
        }
    }
    (problems, parsed)
}

fn parse_with_the_binary(lines: &[CommandLine]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(["describe-cli", "--parse"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("fip-harness starts");
    let mut input = String::new();
    for line in lines {
        input.push_str(&serde_json::to_string(&line.words).unwrap());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "describe-cli --parse failed");
    let answers: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers.len(), lines.len(), "one answer a command line");
    answers
}

/// Every visible command and its long options, from the binary.
pub fn described_commands() -> Vec<(String, Vec<String>)> {
    let output = Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .arg("describe-cli")
        .output()
        .unwrap();
    assert!(output.status.success());
    let described: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    described
        .iter()
        .map(|d| {
            let options = d["options"].as_array().unwrap();
            let options = options.iter().map(|o| o.as_str().unwrap().to_owned());
            (d["command"].as_str().unwrap().to_owned(), options.collect())
        })
        .collect()
}

/// Every command has a documented example that parses, and every long
/// option of it is named somewhere in the pages.
pub fn coverage_problems(
    docs: &[Doc],
    parsed: &[CommandLine],
    commands: &[(String, Vec<String>)],
) -> Vec<String> {
    let all_text: String = docs.iter().map(|d| d.text.as_str()).collect();
    let mut problems = Vec::new();
    for (command, options) in commands {
        let path: Vec<&str> = command.split(' ').collect();
        let shown = parsed.iter().any(|line| {
            line.words.len() >= path.len() && line.words.iter().zip(&path).all(|(w, p)| w == p)
        });
        if !shown {
            problems.push(format!(
                "`fip-harness {command}` has no example in README.md or docs/"
            ));
        }
        for option in options {
            let named = all_text.match_indices(option.as_str()).any(|(at, _)| {
                let next = all_text[at + option.len()..].chars().next();
                !next.is_some_and(|c| c.is_alphanumeric() || c == '-')
            });
            if !named {
                problems.push(format!(
                    "`fip-harness {command} {option}` is not documented"
                ));
            }
        }
    }
    problems
}

/// Every ```yaml block that starts like a scenario (its first key is a
/// scenario's top-level key) loads with the real loader, as if it were a file
/// in scenarios/ (so `../fixtures/...` resolves as in the catalogue).
pub fn snippet_problems(docs: &[Doc], repo: &Path) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(&fip_harness::scenario::scenario_schema_json()).unwrap();
    let top_keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let mut problems = Vec::new();
    for doc in docs {
        for fence in fences(&doc.text).into_iter().filter(|f| f.info == "yaml") {
            let first_key = fence
                .body
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .and_then(|l| l.split_once(':'))
                .map(|(key, _)| key.to_owned());
            if !first_key.is_some_and(|k| top_keys.contains(&&k)) {
                continue;
            }
            let file = repo.join("scenarios").join(format!(
                "{}-snippet-{}.yaml",
                doc.name.replace(['/', '.'], "-"),
                fence.first_line
            ));
            if let Err(errors) = fip_harness::scenario::load_str(&fence.body, &file) {
                for e in errors.0 {
                    let line = fence.first_line + e.line - 1;
                    problems.push(format!("{}: scenario snippet: {}", doc.at(line), e.message));
                }
            }
        }
    }
    problems
}

/// Folders whose content a run writes: named in the docs, not in the repository.
const GENERATED: [&str; 2] = ["reports", "target"];

/// Every repository path named in an inline code span (from the root,
/// harness/ or harness/src/) or as an argument of a whole command line (from
/// the root), and every link target (with its `#anchor`), exists.
pub fn path_problems(docs: &[Doc], repo: &Path) -> Vec<String> {
    let bases = [
        repo.to_owned(),
        repo.join("harness"),
        repo.join("harness/src"),
    ];
    let mut problems = Vec::new();
    for doc in docs {
        for (line, span) in code_spans(&doc.text) {
            let path = span.trim_end_matches(['.', ',', ':', ';']);
            if missing(path, &bases) {
                problems.push(format!("{}: `{path}` does not exist", doc.at(line)));
            }
        }
        // The arguments of whole command lines, run from the repository's root.
        for command in command_lines(doc).unwrap_or_default() {
            for word in command.words.iter().filter(|_| command.whole) {
                // `exec:PATH [ARGS]`: the driver's path.
                let driver = word.strip_prefix("exec:").and_then(|d| d.split(' ').next());
                let path = driver.unwrap_or(word);
                if missing(path, std::slice::from_ref(&bases[0])) {
                    problems.push(format!("{}: `{path}` does not exist", command.at));
                }
            }
        }
        let dir = Path::new(&doc.name).parent().unwrap_or(Path::new(""));
        for (line, target) in link_targets(&doc.text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let name = if file.is_empty() {
                doc.name.clone()
            } else {
                dir.join(file).to_string_lossy().into_owned()
            };
            let Ok(text) = std::fs::read_to_string(repo.join(&name)) else {
                if !repo.join(&name).exists() {
                    problems.push(format!(
                        "{}: link to `{target}`: no such file",
                        doc.at(line)
                    ));
                }
                continue;
            };
            if !anchor.is_empty() && !anchors(&text).iter().any(|a| a == anchor) {
                problems.push(format!(
                    "{}: link to `{target}`: no such heading",
                    doc.at(line)
                ));
            }
        }
    }
    problems
}

/// Whether `text` names a repository path that does not exist: it has a `/`,
/// is relative, has no placeholder or shell character, and its first part is
/// a file or folder in one of `bases` (so `felix/rules/nat.go`, Calico's, and
/// `198.19.0.0/16` are not paths here), but no base holds the whole of it.
fn missing(text: &str, bases: &[PathBuf]) -> bool {
    let looks_like_path = text.contains('/')
        && !text.starts_with(['/', '~'])
        && !text.starts_with("./")
        && !text.starts_with("../")
        && !text.contains(|c: char| c.is_whitespace() || "<>*$:{}[]?=@#|\"'`".contains(c));
    let first = text.split('/').next().unwrap_or_default();
    if !looks_like_path || GENERATED.contains(&first) {
        return false;
    }
    let known: Vec<&PathBuf> = bases.iter().filter(|b| b.join(first).exists()).collect();
    !known.is_empty() && !known.iter().any(|b| b.join(text).exists())
}

/// No paragraph of prose, of a sentence or more, appears twice across the pages.
pub fn repeat_problems(docs: &[Doc]) -> Vec<String> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for doc in docs {
        for (line, paragraph) in paragraphs(&doc.text) {
            if paragraph.len() >= 120 {
                seen.entry(paragraph).or_default().push(doc.at(line));
            }
        }
    }
    seen.into_iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(text, places)| {
            let start: String = text.chars().take(60).collect();
            format!("the same text at {}: \"{start}...\"", places.join(" and "))
        })
        .collect()
}

/// Every `FIP_HARNESS_*` variable the code names (outside the tests' own
/// `FIP_HARNESS_TEST_*` hooks) is in the Environment table of docs/cli.md.
pub fn environment_problems(docs: &[Doc], sources: &[(String, String)]) -> Vec<String> {
    let table: String = docs
        .iter()
        .filter(|d| d.name == "docs/cli.md")
        .flat_map(|d| d.text.lines().filter(|l| l.starts_with("| `")))
        .collect();
    let variable = regex::Regex::new(r"FIP_HARNESS_[A-Z0-9_]*[A-Z0-9]").unwrap();
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in sources {
        for found in variable.find_iter(text) {
            if !found.as_str().starts_with("FIP_HARNESS_TEST_") {
                named
                    .entry(found.as_str().to_owned())
                    .or_insert(file.clone());
            }
        }
    }
    named
        .into_iter()
        .filter(|(name, _)| !table.contains(&format!("`{name}`")))
        .map(|(name, file)| {
            format!("{file} reads {name}, which the Environment table of docs/cli.md lacks")
        })
        .collect()
}

/// The Rust sources of the crate and its tests (but this test's own, whose
/// examples name variables that do not exist), named from the repository root.
pub fn rust_sources(repo: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![repo.join("harness/src"), repo.join("harness/tests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .strip_prefix(repo)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if name == "harness/tests/docs.rs" || name.starts_with("harness/tests/docs_check/")
                {
                    continue;
                }
                out.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}
