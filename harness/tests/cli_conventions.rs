//! What the command offers shells and manuals, generated from its definitions:
//! completion scripts and man pages mention every subcommand; `schema` prints
//! the committed schema.

mod common;

use common::{harness, repo};

const SUBCOMMANDS: [&str; 12] = [
    "validate",
    "list",
    "run",
    "up",
    "ls",
    "exec",
    "state",
    "down",
    "bench",
    "schema",
    "completions",
    "man",
];

fn stdout_of(args: &[&str]) -> String {
    let output = harness(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("fip-harness"), "{shell}");
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completion lacks `{sub}`");
        }
        // Options of a subcommand are completed too.
        assert!(script.contains("keep-on-failure"), "{shell}");
    }
    assert!(!harness(&["completions", "tcsh"]).status.success());
}

#[test]
fn man_pages_describe_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH fip-harness 1"),
        "{page}"
    );
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "the man page lacks `{sub}`");
    }
    let dir = tempfile::tempdir().unwrap();
    stdout_of(&["man", "--dir", dir.path().to_str().unwrap()]);
    let run = std::fs::read_to_string(dir.path().join("fip-harness-run.1")).unwrap();
    assert!(run.contains("keep\\-on\\-failure"), "{run}");
    for sub in SUBCOMMANDS {
        assert!(
            dir.path().join(format!("fip-harness-{sub}.1")).is_file(),
            "{sub}"
        );
    }
}

#[test]
fn schema_prints_the_committed_schema() {
    let printed = stdout_of(&["schema"]);
    let committed = std::fs::read_to_string(repo().join("schema/scenario.schema.json")).unwrap();
    assert!(
        printed == committed,
        "`fip-harness schema` differs from schema/scenario.schema.json; regenerate it with \
         `cargo run -p fip-harness -- schema > schema/scenario.schema.json`"
    );
}
