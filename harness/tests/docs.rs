//! README.md and docs/ kept true: every `fip-harness` command line in them
//! parses with the binary's own definition, every command has an example and
//! every option is documented, every scenario snippet loads, every path and
//! link named exists, no paragraph is said twice, and the README stays a front
//! door. Each check is also run on pages broken on purpose, to show it fails.

mod docs_check;

use docs_check::markdown::Doc;
use docs_check::{
    command_problems, coverage_problems, described_commands, environment_problems, pages,
    path_problems, repeat_problems, repo, rust_sources, snippet_problems,
};

fn assert_none(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn every_command_line_parses_and_every_option_is_documented() {
    let docs = pages(&repo());
    let (problems, parsed) = command_problems(&docs);
    assert_none("command lines that do not parse", &problems);
    assert!(
        parsed.len() > 40,
        "the command lines were found: {}",
        parsed.len()
    );
    let coverage = coverage_problems(&docs, &parsed, &described_commands());
    assert_none("commands and options the docs leave out", &coverage);
}

#[test]
fn every_scenario_snippet_loads() {
    assert_none(
        "scenario snippets",
        &snippet_problems(&pages(&repo()), &repo()),
    );
}

#[test]
fn every_path_and_link_named_exists() {
    assert_none("paths and links", &path_problems(&pages(&repo()), &repo()));
}

#[test]
fn no_text_is_said_twice() {
    assert_none("repeated text", &repeat_problems(&pages(&repo())));
}

#[test]
fn every_environment_variable_is_documented() {
    let repo = repo();
    let problems = environment_problems(&pages(&repo), &rust_sources(&repo));
    assert_none("environment variables", &problems);
}

#[test]
fn an_undocumented_environment_variable_is_found() {
    let cli = page(
        "docs/cli.md",
        "| variable | meaning |\n|---|---|\n| `FIP_HARNESS_SEED` | the seed |\n",
    );
    let sources = [(
        "harness/src/x.rs".to_owned(),
        r#"env::var("FIP_HARNESS_SEED"); env::var("FIP_HARNESS_NEW"); "FIP_HARNESS_TEST_HOOK""#
            .to_owned(),
    )];
    assert_eq!(
        environment_problems(&[cli], &sources),
        ["harness/src/x.rs reads FIP_HARNESS_NEW, which the Environment table of docs/cli.md lacks"]
    );
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; reference text goes under docs/"
    );
}

fn page(name: &str, text: &str) -> Doc {
    Doc {
        name: name.into(),
        text: text.into(),
    }
}

#[test]
fn a_broken_command_line_is_found() {
    let broken = page(
        "docs/broken.md",
        "Try `fip-harness run --no-such-flag`.\n\n```sh\n\
         sudo FOO=1 target/release/fip-harness up scenarios/x.yaml \\\n    --until 5   # a comment\n\
         fip-harness lss | head -1\n\
         cargo test --no-such-flag\n```\n",
    );
    let (problems, parsed) = command_problems(&[broken]);
    assert!(parsed.is_empty(), "nothing here parses");
    let text = problems.join("\n");
    assert!(
        text.contains("docs/broken.md:1: `fip-harness run --no-such-flag`"),
        "{text}"
    );
    assert!(
        text.contains("docs/broken.md:4: `fip-harness up scenarios/x.yaml --until 5`"),
        "{text}"
    );
    assert!(
        text.contains("docs/broken.md:6: `fip-harness lss`"),
        "{text}"
    );
    assert_eq!(problems.len(), 3, "cargo's flags are not ours: {text}");
}

#[test]
fn a_prose_mention_may_leave_out_a_required_argument_but_a_block_may_not() {
    let docs = [page(
        "docs/mention.md",
        "Judge it with `fip-harness conform`.\n\n```sh\nfip-harness conform\n```\n",
    )];
    let (problems, parsed) = command_problems(&docs);
    assert_eq!(parsed.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("docs/mention.md:4:"),
        "{problems:?}"
    );
    assert!(
        problems[0].contains("MissingRequiredArgument"),
        "{problems:?}"
    );
}

#[test]
fn an_undocumented_command_or_option_is_found() {
    let commands = vec![
        (
            "run".to_owned(),
            vec!["--filter".to_owned(), "--seed".to_owned()],
        ),
        ("bench lab".to_owned(), vec![]),
    ];
    let docs = [page(
        "docs/cli.md",
        "```sh\nfip-harness run --filter move\n```\n",
    )];
    let (_, parsed) = command_problems(&docs);
    let problems = coverage_problems(&docs, &parsed, &commands);
    assert_eq!(
        problems,
        [
            "`fip-harness run --seed` is not documented",
            "`fip-harness bench lab` has no example in README.md or docs/",
        ],
        "--filter is shown, --seed is not, and bench lab has no example"
    );
}

#[test]
fn a_broken_scenario_snippet_is_found() {
    let snippet = "Text.\n\n```yaml\ncluster:\n  cni: ../fixtures/cni/calico-config-floating-ips-on.yaml\n  \
                   nodes: [node-a]\nsteps:\n  - send: {protocol: icmpp, from: node-a, to: 203.0.113.10}\n```\n\n\
                   ```yaml\njobs: {not: a scenario}\n```\n";
    let problems = snippet_problems(&[page("docs/snippet.md", snippet)], &repo());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("docs/snippet.md:8: scenario snippet:"),
        "{problems:?}"
    );
    assert!(problems[0].contains("icmpp"), "{problems:?}");
}

#[test]
fn a_missing_path_or_link_is_found() {
    let text = "See `harness/src/no_such_module.rs`, `tests/no_such_test.rs`, `docs/cli.md`,\n\
                `felix/rules/nat.go` (Calico's) and `198.19.0.0/16`.\n\
                Read [the CLI](cli.md#run-run-scenarios), [nothing](nothing.md) and\n\
                [a heading](cli.md#no-such-heading).\n\n\
                ```sh\nfip-harness run scenarios/no-such.yaml our-own/ --dataplane \"exec:drivers/none.py -v\"\n\
                fip-harness run scenarios/move-across-nodes.yaml --dataplane exec:drivers/nft-driver.py\n```\n";
    let problems = path_problems(&[page("docs/paths.md", text)], &repo());
    assert_eq!(
        problems,
        [
            "docs/paths.md:1: `harness/src/no_such_module.rs` does not exist",
            "docs/paths.md:1: `tests/no_such_test.rs` does not exist",
            "docs/paths.md:7: `scenarios/no-such.yaml` does not exist",
            "docs/paths.md:7: `drivers/none.py` does not exist",
            "docs/paths.md:3: link to `nothing.md`: no such file",
            "docs/paths.md:4: link to `cli.md#no-such-heading`: no such heading",
        ]
    );
}

#[test]
fn a_repeated_paragraph_is_found() {
    let paragraph = "Unprivileged user namespaces let a normal user be root inside a namespace of\n\
                     their own and create network namespaces, veth pairs, bridges and rules there.\n";
    let one = page("README.md", &format!("# A\n\n{paragraph}\nShort text.\n"));
    let two = page("docs/rootless.md", &format!("Intro.\n\n{paragraph}"));
    let problems = repeat_problems(&[one, two]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("README.md:3 and docs/rootless.md:3"),
        "{problems:?}"
    );
}
