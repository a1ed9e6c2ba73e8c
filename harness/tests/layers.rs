//! The layer table in `src/lib.rs`'s doc comment is the law: a module imports
//! only modules on rows below its own. This test reads the table, reads every
//! `use crate::` tree and inline `crate::x::` path of the library's sources,
//! and fails on an import that climbs or stays on its row, on a module the
//! table does not name, and on a table row naming no module.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[path = "layers/file_graph.rs"]
mod file_graph;

/// Known upward imports being removed, each with the helper who owns its fix.
/// It only shrinks: an entry that no longer occurs fails the test too.
/// (file under src/, imported module, owner)
const ALLOWED: &[(&str, &str, &str)] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The rows of the table, top first: (layer name, modules).
fn layer_table() -> Vec<(String, Vec<String>)> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read src/lib.rs");
    let rows: Vec<_> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .map(|row| row.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 2 && !cells[0].starts_with('-') && cells[0] != "layer")
        .map(|cells| {
            let modules = cells[1]
                .split(',')
                .map(|m| m.trim().trim_matches('`').to_string())
                .filter(|m| !m.is_empty())
                .collect();
            (cells[0].to_string(), modules)
        })
        .collect();
    assert!(
        !rows.is_empty(),
        "src/lib.rs has no layer table (`//! | layer | modules |`)"
    );
    rows
}

/// Module -> (rank, layer name); a higher rank is a higher row.
fn ranks() -> BTreeMap<String, (usize, String)> {
    let rows = layer_table();
    let count = rows.len();
    let mut ranks = BTreeMap::new();
    for (index, (layer, modules)) in rows.into_iter().enumerate() {
        for module in modules {
            let previous = ranks.insert(module.clone(), (count - index, layer.clone()));
            assert!(previous.is_none(), "the layer table names `{module}` twice");
        }
    }
    ranks
}

/// The library's top-level modules (`pub mod x;` in lib.rs) and the binary's (main.rs).
fn declared_modules() -> BTreeSet<String> {
    ["lib.rs", "main.rs"]
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(src().join(file)).expect("read crate root");
            text.lines()
                .filter_map(|line| {
                    let line = line.trim();
                    let rest = line
                        .strip_prefix("pub mod ")
                        .or(line.strip_prefix("mod "))?;
                    Some(rest.trim_end_matches(';').trim().to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source with comments, strings and char literals blanked out.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            i += j;
        } else if let Some(hashes) = raw_string_start(rest) {
            let open = 2 + hashes;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = rest[open..]
                .find(&close)
                .map_or(rest.len(), |e| open + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if let Some(len) = char_literal(rest) {
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br"`...: the number of hashes.
fn raw_string_start(rest: &str) -> Option<usize> {
    let rest = rest.strip_prefix('b').unwrap_or(rest).strip_prefix('r')?;
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    rest[hashes..].starts_with('"').then_some(hashes)
}

/// The length of a char literal at the start (`'a'`, `'\n'`, `'\u{1F}'`), not a lifetime.
fn char_literal(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix('\'')?;
    let len = if body.starts_with('\\') {
        body.find('\'')?
    } else {
        body.chars().next()?.len_utf8()
    };
    (body.as_bytes().get(len) == Some(&b'\'')).then_some(len + 2)
}

/// Top-level module names a `crate::` path or use tree at `tree` starts with.
fn tree_heads(tree: &str) -> Vec<String> {
    let tree = tree.trim_start();
    let Some(group) = tree.strip_prefix('{') else {
        let name: String = tree
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        return vec![name];
    };
    let mut heads = Vec::new();
    let (mut depth, mut item) = (0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => heads.push(std::mem::take(&mut item)),
            _ if depth == 0 => item.push(c),
            _ => {}
        }
    }
    heads.push(item);
    heads
        .into_iter()
        .filter_map(|item| {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Every top-level module a file names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let mut found = BTreeSet::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find("crate::") {
        let start = at + offset;
        let before = code[..start].chars().next_back();
        at = start + "crate::".len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        found.extend(tree_heads(&code[at..]));
    }
    found
}

/// (file under src/, importing module, imported module) for every import of a
/// module on the same row or a higher one.
fn climbing_imports(ranks: &BTreeMap<String, (usize, String)>) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for (module, (rank, _)) in ranks {
        // The binary's modules' `crate::` is the binary: nothing to check.
        if module == "cli" {
            continue;
        }
        let dir = src().join(module);
        let mut files = Vec::new();
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src().join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        for file in files {
            let text = fs::read_to_string(&file).expect("read source");
            for imported in imports(&text) {
                let Some((their_rank, _)) = ranks.get(&imported) else {
                    continue;
                };
                if imported != *module && their_rank >= rank {
                    let rel = file.strip_prefix(src()).expect("under src");
                    found.push((rel.display().to_string(), module.clone(), imported));
                }
            }
        }
    }
    found
}

#[test]
fn every_module_is_in_the_layer_table_and_every_row_names_modules() {
    let ranks = ranks();
    let declared = declared_modules();
    let named: BTreeSet<_> = ranks.keys().cloned().collect();
    let unnamed: Vec<_> = declared.difference(&named).collect();
    let missing: Vec<_> = named.difference(&declared).collect();
    assert!(
        unnamed.is_empty() && missing.is_empty(),
        "src/lib.rs's layer table and the crate disagree: modules not in the table {unnamed:?}, \
         table entries that are no module {missing:?}"
    );
}

#[test]
fn no_module_imports_one_on_its_row_or_above() {
    let ranks = ranks();
    let climbing = climbing_imports(&ranks);
    let allowed: BTreeSet<(&str, &str)> = ALLOWED.iter().map(|(f, m, _)| (*f, *m)).collect();
    let mut report = String::new();
    for (file, module, imported) in &climbing {
        if allowed.contains(&(file.as_str(), imported.as_str())) {
            continue;
        }
        let (_, layer) = &ranks[module];
        let (_, their_layer) = &ranks[imported];
        report.push_str(&format!(
            "src/{file}: {module} ({layer}) imports {imported} ({their_layer})\n"
        ));
    }
    for (file, imported, owner) in ALLOWED {
        if !climbing.iter().any(|(f, _, i)| f == file && i == imported) {
            report.push_str(&format!(
                "src/{file} no longer imports {imported}: remove it from ALLOWED ({owner})\n"
            ));
        }
    }
    assert!(
        report.is_empty(),
        "imports that climb src/lib.rs's layer table:\n{report}"
    );
}

#[test]
fn the_scanner_reads_use_trees_and_paths_but_not_comments_or_strings() {
    let text = r##"
        use crate::{a::{b, c}, d, e::f as g};
        pub(crate) use crate::h;
        fn x() { crate::i::j(); let s = "crate::k"; let c = '{'; }
        // crate::l
        /// `crate::m`
        /* crate::n /* nested */ crate::o */
        macro_rules! p { () => { $crate::q }; }
        let r = r#"crate::s"#;
    "##;
    let found: Vec<_> = imports(text).into_iter().collect();
    assert_eq!(found, ["a", "d", "e", "h", "i"]);
}

/// Rows of docs/architecture.md's layout table: (first cell, files cell).
fn layout_rows() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let text = fs::read_to_string(&path).expect("read docs/architecture.md");
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<_> = line.split(" | ").collect();
            let module = cells.first()?.trim_start_matches("| ").trim_matches('`');
            Some((
                module.to_string(),
                cells.get(1).copied().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// `a/{b,c}.rs` -> `a/b.rs`, `a/c.rs`.
fn expand_braces(name: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (name.find('{'), name.find('}')) else {
        return vec![name.to_string()];
    };
    name[open + 1..close]
        .split(',')
        .map(|part| format!("{}{}{}", &name[..open], part, &name[close + 1..]))
        .collect()
}

fn exists_under(dir: &Path, file: &str) -> bool {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files.iter().any(|f| f.ends_with(file))
}

#[test]
fn the_architecture_layout_names_every_module_and_only_real_files() {
    let rows = layout_rows();
    let named: BTreeSet<String> = rows
        .iter()
        .map(|(m, _)| m.trim_end_matches('/').trim_end_matches(".rs").to_string())
        .collect();
    let declared = declared_modules();
    let mut report = String::new();
    for module in declared.difference(&named) {
        report.push_str(&format!("module `{module}` has no row\n"));
    }
    for module in named.difference(&declared) {
        report.push_str(&format!("row `{module}` is no module of the crate\n"));
    }
    for (module, files) in &rows {
        let Some(dir) = module.strip_suffix('/') else {
            continue;
        };
        let spans = files.split('`').skip(1).step_by(2);
        for span in spans.filter(|s| s.ends_with(".rs") && !s.contains(' ')) {
            for file in expand_braces(span) {
                // A file is named within its row, maybe inside a sub-folder
                // the row names before it (`go_json/` ... `scanner.rs`).
                if !exists_under(&src().join(dir), &file) {
                    report.push_str(&format!(
                        "row `{module}` names `{file}`, which does not exist\n"
                    ));
                }
            }
        }
    }
    assert!(
        report.is_empty(),
        "docs/architecture.md's layout table and harness/src disagree:\n{report}"
    );
}

/// (file, function, lines) of every function body longer than `limit` lines.
fn long_functions(text: &str, limit: usize) -> Vec<(String, usize)> {
    let code = code_only(text);
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find("fn ") {
        let start = at + offset;
        at = start + 3;
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body: the first `{` before any `;` (a declaration has none).
        let Some(open) = code[at..].find(['{', ';']).map(|o| at + o) else {
            break;
        };
        if &code[open..=open] == ";" {
            continue;
        }
        let mut depth = 0;
        let mut close = open;
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let lines = code[start..close].lines().count();
        if lines > limit {
            found.push((name, lines));
        }
    }
    found
}

/// Functions over the limit being split (path under harness/, function,
/// owner); only shrinks.
const LONG_ALLOWED: &[(&str, &str, &str)] = &[];

/// The size limits broken in the files under `dir`, named from `label`.
fn over_the_limits(dir: &Path, label: &str) -> String {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut report = String::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("read source");
        let rel = file.strip_prefix(dir).expect("under dir").display();
        let lines = text.lines().count();
        if lines > 600 {
            report.push_str(&format!("{label}/{rel}: {lines} lines\n"));
        }
        for (name, lines) in long_functions(&text, 120) {
            let path = format!("{label}/{rel}");
            if !LONG_ALLOWED
                .iter()
                .any(|(f, n, _)| *f == path && *n == name)
            {
                report.push_str(&format!("{path}: fn {name} is {lines} lines\n"));
            }
        }
    }
    report
}

/// The library's and the tests' sources: no file over 600 lines, no function
/// over 120 (a test too: split it into named helpers or an rstest table).
#[test]
fn no_file_over_600_lines_and_no_function_over_120() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut report = over_the_limits(&src(), "src");
    report.push_str(&over_the_limits(&tests, "tests"));
    for (file, name, owner) in LONG_ALLOWED {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = fs::read_to_string(path).unwrap_or_default();
        if !long_functions(&text, 120).iter().any(|(n, _)| n == name) {
            report.push_str(&format!(
                "{file}: fn {name} is within the limit now: remove it from LONG_ALLOWED ({owner})\n"
            ));
        }
    }
    assert!(report.is_empty(), "over the size limits:\n{report}");
}
