//! What the command offers shells and manuals, generated from its definitions:
//! completion scripts and man pages mention every subcommand; `schema` prints
//! the committed schema.

mod common;

use common::{harness, repo};

/// Every visible command, as the command line itself defines it (`fip-harness
/// describe-cli` prints clap's definition): its path under `fip-harness`
/// (`run`, `bench dataplane`). A list written here by hand goes stale as
/// commands are added.
fn commands() -> Vec<Vec<String>> {
    let described: serde_json::Value =
        serde_json::from_str(&stdout_of(&["describe-cli"])).expect("describe-cli prints JSON");
    let commands: Vec<Vec<String>> = described
        .as_array()
        .expect("a list of commands")
        .iter()
        .map(|c| {
            let path = c["command"].as_str().expect("each command has a path");
            path.split_whitespace().map(str::to_string).collect()
        })
        .collect();
    // Guards the derivation itself: these were once missing from a list
    // written by hand.
    for expected in ["run", "mutants", "conform", "replay", "driver"] {
        assert!(
            commands.iter().any(|c| c == &[expected]),
            "describe-cli lacks `{expected}`: {commands:?}"
        );
    }
    commands
}

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
        for command in commands() {
            let sub = command.last().unwrap();
            assert!(
                script.contains(sub.as_str()),
                "{shell} completion lacks `{sub}`"
            );
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
    let commands = commands();
    for command in commands.iter().filter(|c| c.len() == 1) {
        assert!(
            page.contains(&command[0]),
            "the man page lacks `{}`",
            command[0]
        );
    }
    let dir = tempfile::tempdir().unwrap();
    stdout_of(&["man", "--dir", dir.path().to_str().unwrap()]);
    let run = std::fs::read_to_string(dir.path().join("fip-harness-run.1")).unwrap();
    assert!(run.contains("keep\\-on\\-failure"), "{run}");
    for command in &commands {
        let page = format!("fip-harness-{}.1", command.join("-"));
        assert!(
            dir.path().join(&page).is_file(),
            "no {page} for {command:?}"
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

/// A value with a newline (or an escape code) in a message is shown escaped,
/// so every error stays on one line and never drives the terminal.
#[rstest::rstest]
#[case::down(&["down", "ab\ncd"])]
#[case::up(&["up", "scenarios/move-across-nodes.yaml", "--name", "ab\ncd"])]
#[case::state(&["state", "ab\ncd"])]
#[case::exec(&["exec", "ab\ncd", "node-a", "--", "true"])]
#[case::run_prefix(&["run", "scenarios/from-external-v4.yaml", "--keep-on-failure=ab\ncd"])]
fn a_newline_in_a_value_does_not_split_the_error(#[case] args: &[&str]) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ab\\ncd"), "{stderr}");
}

/// The value name and help of `option` in `command`'s `--help`, if it has it.
fn option_help(command: &[String], option: &str) -> Option<String> {
    let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
    args.push("--help");
    let help = stdout_of(&args);
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().split([',', ' ']).any(|word| word == option));
    let first = lines.next()?;
    let mut text = first.trim_start().to_string();
    // Long help: the description follows on indented lines, up to a blank
    // one; short help: the next option's line comes at once.
    let rest = lines.take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with('-'));
    text.extend(rest.map(|l| format!(" {}", l.trim())));
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A flag name means one thing in every command that has it: `--filter`
/// picks scenarios (in `mutants` too, where `--mutants` picks mutants), and
/// `--scenarios DIR` adds a folder of scenarios (`conform`).
#[test]
fn a_flag_name_has_one_meaning_in_every_command() {
    for option in ["--filter", "--scenarios", "--mutants"] {
        let helps: Vec<(String, String)> = commands()
            .iter()
            .filter_map(|c| option_help(c, option).map(|h| (c.join(" "), h)))
            .collect();
        let distinct: std::collections::BTreeSet<&str> =
            helps.iter().map(|(_, h)| h.as_str()).collect();
        assert!(
            distinct.len() <= 1,
            "{option} means different things: {helps:#?}"
        );
    }
}
