//! Just enough Markdown for the docs test: fenced blocks, inline code spans,
//! link targets, headings (as GitHub anchors) and prose paragraphs, each with
//! the line it starts on.

/// A Markdown file of the repository, named by its path from the root.
pub struct Doc {
    pub name: String,
    pub text: String,
}

impl Doc {
    pub fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.name)
    }
}

/// A fenced block: its info string (`sh`, `yaml`...), the line of its first
/// content line, and its content.
pub struct Fence {
    pub info: String,
    pub first_line: usize,
    pub body: String,
}

/// Text outside fenced blocks, with its line number.
pub fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            out.push((i + 1, line));
        }
    }
    out
}

pub fn fences(text: &str) -> Vec<Fence> {
    let mut out = Vec::new();
    let mut open: Option<Fence> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Fence {
                    info: info.trim().to_owned(),
                    first_line: i + 2,
                    body: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(fence), None) => {
                fence.body.push_str(line);
                fence.body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Inline code spans outside fenced blocks, a span's line breaks read as
/// spaces, each with the line it opens on.
pub fn code_spans(text: &str) -> Vec<(usize, String)> {
    let prose = prose_with_breaks(text);
    let chars: Vec<char> = prose.text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        let start = i + run;
        let close = (start..chars.len()).find(|&j| {
            chars[j..].iter().take_while(|c| **c == '`').count() == run
                && (j == 0 || chars[j - 1] != '`')
        });
        match close {
            Some(end) if !chars[start..end].contains(&'\u{0}') => {
                let span: String = chars[start..end].iter().collect();
                let line = prose.line_of(i);
                out.push((line, span.replace('\n', " ").trim().to_owned()));
                i = end + run;
            }
            _ => i = start,
        }
    }
    out
}

/// Link and image targets outside code, with their lines.
pub fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, content) in prose_lines(text) {
        let without_code = strip_code(content);
        let mut rest = without_code.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((line, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// The anchors GitHub gives the headings of `text`.
pub fn anchors(text: &str) -> Vec<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, line)| line.strip_prefix('#'))
        .map(|heading| {
            heading
                .trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Prose paragraphs (not headings, tables or list markers alone), their
/// whitespace collapsed, each with its first line.
pub fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (line, content) in prose_lines(text) {
        let trimmed = content.trim();
        let breaks = trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with('|')
            || trimmed.starts_with("- ")
            || trimmed.starts_with("![");
        if breaks {
            out.extend(current.take());
            if let Some(item) = trimmed.strip_prefix("- ") {
                current = Some((line, item.to_owned()));
            }
            continue;
        }
        match &mut current {
            Some((_, paragraph)) => {
                paragraph.push(' ');
                paragraph.push_str(trimmed);
            }
            None => current = Some((line, trimmed.to_owned())),
        }
    }
    out.extend(current);
    out
}

/// `line` without its inline code spans.
fn strip_code(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The prose of a file as one text, fenced blocks replaced by a NUL line (so
/// no code span crosses one) and a blank line ending a paragraph (so no span
/// crosses that either), with the line each character came from.
struct Prose {
    text: String,
    lines: Vec<usize>,
}

impl Prose {
    fn line_of(&self, char_index: usize) -> usize {
        self.lines[char_index]
    }
}

fn prose_with_breaks(text: &str) -> Prose {
    let mut prose = Prose {
        text: String::new(),
        lines: Vec::new(),
    };
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        if fence {
            in_fence = !in_fence;
        }
        let content = if fence || in_fence || line.trim().is_empty() {
            "\u{0}"
        } else {
            line
        };
        for c in content.chars().chain(std::iter::once('\n')) {
            prose.text.push(c);
            prose.lines.push(i + 1);
        }
    }
    prose
}
