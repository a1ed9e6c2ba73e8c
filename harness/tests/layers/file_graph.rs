//! The file-level import graph of the library: an edge from a file to the
//! file a `crate::`, `super::` or `self::` path in it names (the deepest
//! module file the path reaches), read with the same scanner as the layer
//! test. Its strongly connected components of more than one file are import
//! cycles.
//!
//! Not edges: `mod x;` declarations, and a parent's bare `pub use child::X`
//! re-exports (a child naming `super::Error` and its parent re-exporting the
//! child is one concern, not a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::{code_only, rust_files};

/// A file's module path under `src`: `a/b.rs` and `a/b/mod.rs` are `[a, b]`,
/// `lib.rs` and `main.rs` are `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The file of the deepest module `path` reaches, under `src`.
fn resolve(src: &Path, path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|len| {
        let dir: PathBuf = path[..len].iter().collect();
        let file = src.join(&dir).with_extension("rs");
        let module = src.join(&dir).join("mod.rs");
        [file, module].into_iter().find(|f| f.is_file())
    })
}

/// Inline `mod name { ... }` blocks of `code`: (name, body start, body end).
fn inline_modules(code: &str) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find("mod ") {
        let start = at + offset;
        at = start + 4;
        if code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = code[at + name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0;
        let close = code[open..]
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(open + i)
            })
            .unwrap_or(code.len());
        found.push((name, open, close));
    }
    found
}

/// Every path a use tree or path at the start of `text` spells, from its
/// first segment (`a::{b, c::d}` is `[a, b]` and `[a, c, d]`).
fn tree_paths(text: &str) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut items = Vec::new();
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return items
                .into_iter()
                .flat_map(tree_paths)
                .map(|tail| prefix.iter().cloned().chain(tail).collect())
                .collect();
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            return vec![prefix];
        }
        rest = &rest[name.len()..];
        prefix.push(name);
        match rest.trim_start().strip_prefix("::") {
            Some(tail) => rest = tail,
            None => return vec![prefix],
        }
    }
}

/// The absolute module paths a file at `module` names through `crate::`,
/// `super::` and `self::` (inside inline modules, relative to them).
fn named_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code = code_only(text);
    let inline = inline_modules(&code);
    let mut found = Vec::new();
    for head in ["crate::", "super::", "self::"] {
        let mut at = 0;
        while let Some(offset) = code[at..].find(head) {
            let start = at + offset;
            at = start + head.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            let mut base: Vec<String> = module.to_vec();
            base.extend(
                inline
                    .iter()
                    .filter(|(_, open, close)| (*open..*close).contains(&start))
                    .map(|(name, _, _)| name.clone()),
            );
            for path in tree_paths(&code[start..]) {
                let mut absolute = if head == "crate::" {
                    Vec::new()
                } else {
                    base.clone()
                };
                for segment in path.into_iter().skip(usize::from(head == "crate::")) {
                    match segment.as_str() {
                        "super" => {
                            absolute.pop();
                        }
                        "self" => {}
                        _ => absolute.push(segment),
                    }
                }
                found.push(absolute);
            }
        }
    }
    found
}

/// File -> files it imports, paths relative to `src`. The binary's files
/// (`main.rs`, `cli/`) are left out: their `crate::` is another crate.
pub fn file_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let rel = |f: &Path| {
        f.strip_prefix(src)
            .expect("under src")
            .display()
            .to_string()
    };
    let mut graph = BTreeMap::new();
    for file in files {
        let name = rel(&file);
        if name == "main.rs" || name.starts_with("cli/") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("read source");
        let module = module_path(Path::new(&name));
        let edges: BTreeSet<String> = named_paths(&text, &module)
            .iter()
            .filter_map(|path| resolve(src, path))
            .map(|target| rel(&target))
            .filter(|target| *target != name)
            .collect();
        graph.insert(name, edges);
    }
    graph
}

/// Strongly connected components of more than one node (Tarjan's algorithm).
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next.as_str()) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next.as_str()]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next.as_str()) {
                    let low = self.low[node].min(self.index[next.as_str()]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found.sort();
    walk.found
}

#[test]
fn the_scanner_spells_use_trees_as_paths_and_resolves_super_inside_inline_modules() {
    let paths = tree_paths("a::{b, c::{d, e as f}, self}::x");
    assert_eq!(
        paths,
        [
            vec!["a", "b"],
            vec!["a", "c", "d"],
            vec!["a", "c", "e"],
            vec!["a", "self"]
        ]
    );
    let text = "use super::x::Y;\nfn f() { crate::p::q(); }\nmod tests { use super::*; }";
    let module = vec!["m".to_string(), "n".to_string()];
    assert_eq!(
        named_paths(text, &module),
        [vec!["p", "q"], vec!["m", "x", "Y"], vec!["m", "n"]]
    );
}

#[test]
fn tarjan_finds_each_cycle_once_and_not_a_chain() {
    let edges = [
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "d"),
    ];
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
        graph.entry(to.into()).or_default();
    }
    graph.entry("f".into()).or_default().insert("a".into());
    assert_eq!(cycles(&graph), [vec!["a", "b", "c"], vec!["d", "e"]]);
}

/// No two files of the library import each other, directly or around a loop.
#[test]
fn no_import_cycle_between_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = file_graph(&src);
    let found = cycles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|files| {
            let edges: Vec<String> = files
                .iter()
                .flat_map(|f| {
                    graph[f]
                        .iter()
                        .filter(|t| files.contains(t))
                        .map(move |t| format!("{f} -> {t}"))
                })
                .collect();
            format!("cycle of {} files: {}", files.len(), edges.join(", "))
        })
        .collect();
    assert!(
        report.is_empty(),
        "import cycles between files of src/:\n{}",
        report.join("\n")
    );
}
