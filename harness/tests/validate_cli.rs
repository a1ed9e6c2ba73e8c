//! `fip-harness validate` and `list` as a user runs them: exit codes and the
//! exact error lines (file:line:col: key path and value at fault).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{harness, repo};

/// A scenario like scenarios/icmp-external-v4.yaml with one edit applied,
/// written to a temporary folder; fixtures are referenced by absolute path.
fn bad_scenario(dir: &Path, file: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let text = std::fs::read_to_string(repo().join("scenarios/icmp-external-v4.yaml"))
        .unwrap()
        .replace("../fixtures", fixtures.to_str().unwrap());
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit must change the scenario");
    let path = dir.join(file);
    std::fs::write(&path, edited).unwrap();
    path
}

fn stderr_of(output: &Output, dir: &Path) -> String {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    String::from_utf8_lossy(&output.stderr)
        .replace(dir.to_str().unwrap(), "[TMP]")
        .replace(fixtures.to_str().unwrap(), "[FIXTURES]")
}

#[test]
fn the_catalogue_validates() {
    let output = harness(&["validate", "scenarios"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The default path is scenarios/.
    assert!(harness(&["validate"]).status.success());
}

#[test]
fn list_shows_names_tags_and_filters() {
    // The three example scenarios, named so that the catalogue can grow
    // without changing this snapshot.
    const EXAMPLES: [&str; 3] = [
        "scenarios/feature-off-in-cni.yaml",
        "scenarios/icmp-external-v4.yaml",
        "scenarios/move-across-nodes.yaml",
    ];
    let list = |extra: &[&str]| {
        let mut args = vec!["list"];
        args.extend(EXAMPLES);
        args.extend(extra);
        harness(&args)
    };
    let output = list(&[]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    insta::assert_snapshot!(stdout);
    let negated = String::from_utf8_lossy(&list(&["--filter", "!move"]).stdout).into_owned();
    assert!(!negated.contains("move-across-nodes"));
    assert!(negated.contains("icmp-external-v4"));
    let by_tag = String::from_utf8_lossy(&list(&["--filter", "^negative$"]).stdout).into_owned();
    assert_eq!(by_tag.lines().count(), 1, "{by_tag}");
    assert!(by_tag.starts_with("feature-off-in-cni"));
    let whole = String::from_utf8_lossy(&harness(&["list"]).stdout).into_owned();
    assert!(
        whole.lines().count() > EXAMPLES.len(),
        "`list` with no path lists the whole catalogue under scenarios/"
    );
}

#[rstest::rstest]
#[case::unknown_key("unknown-key", |t: String| t.replace("blockSize: 26", "blockSize: 26\n      colour: blue"))]
#[case::bad_address("bad-address", |t: String| t.replace("to: 203.0.113.10", "to: 203.0.113.300"))]
#[case::bad_annotation("bad-annotation", |t: String| t.replace(r#"'["203.0.113.10"]'"#, r#"'["203.0.113.10"'"#))]
#[case::annotation_not_an_ip("annotation-not-an-ip", |t: String| t.replace(r#"'["203.0.113.10"]'"#, r#"'["203.0.113.1000"]'"#))]
#[case::v6_floating_ip_on_v4_pod("annotation-v6-on-v4-pod", |t: String| t.replace(r#"'["203.0.113.10"]'"#, r#"'["2001:db8:f1::10"]'"#))]
#[case::expected_error_that_does_not_happen("expected-error-not-happening", |t: String| t.replace("      node: node-a\n", "      node: node-a\n      expect:\n        error: requested feature is not enabled\n"))]
#[case::unknown_node("unknown-node", |t: String| t.replace("node: node-a", "node: node-z"))]
#[case::unknown_sender("unknown-sender", |t: String| t.replace("from: client", "from: clinet"))]
#[case::bad_duration("bad-duration", |t: String| t.replace("count: 3", "count: 3\n      interval: 10 ms"))]
#[case::bad_cidr("bad-cidr", |t: String| t.replace("cidr: 198.19.0.0/16", "cidr: 198.19.0.0/33"))]
#[case::duplicate_name("duplicate-name", |t: String| t.replace("externals: [client]", "externals: [client, node-b]"))]
#[case::stream_never_started("stream-never-started", |t: String| t.replace("  - send:", "  - stopStream:\n      name: s1\n      expect:\n        deliveredTo: none\n  - send:"))]
#[case::unknown_step("unknown-step", |t: String| t.replace("- send:", "- sned:"))]
#[case::missing_cni_file("missing-cni-file", |t: String| t.replace("calico-config-floating-ips-on.yaml", "nope.yaml"))]
#[case::port_on_icmp("port-on-icmp", |t: String| t.replace("count: 3", "count: 3\n      port: 80"))]
// Pools Calico or the lab cannot build (each once passed `validate`, and `run`
// failed or waited 30 s on BIRD).
#[case::pools_overlap("pools-overlap", |t: String| t.replace("blockSize: 26\n", "blockSize: 26\n    - {name: second, cidr: 198.19.1.0/24}\n"))]
#[case::pool_link_local("pool-link-local", |t: String| t.replace("cidr: 198.19.0.0/16", "cidr: 169.254.0.0/16"))]
#[case::pool_on_lab_segment("pool-on-lab-segment", |t: String| t.replace("cidr: 198.19.0.0/16", "cidr: 198.18.0.0/16"))]
#[case::pool_multicast("pool-multicast", |t: String| t.replace("cidr: 198.19.0.0/16", "cidr: 224.1.0.0/16"))]
#[case::pod_pool_not_exported("pod-pool-not-exported", |t: String| t.replace("blockSize: 26\n", "blockSize: 26\n      disableBGPExport: true\n"))]
fn a_bad_scenario_fails_with_its_position(#[case] name: &str, #[case] edit: fn(String) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let path = bad_scenario(dir.path(), &format!("{name}.yaml"), edit);
    let output = harness(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "validate must fail");
    insta::assert_snapshot!(name, stderr_of(&output, dir.path()));
}

#[test]
fn manifest_errors_name_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pools.yaml"),
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: f\nspec:\n  cidr: 203.0.113.0/24\n  vxlanMode: Sometimes\n",
    )
    .unwrap();
    let path = bad_scenario(dir.path(), "bad-manifest.yaml", |t| {
        t.replace(
            &format!(
                "{}/pools/floating-ips.yaml",
                repo().join("fixtures").canonicalize().unwrap().display()
            ),
            "pools.yaml",
        )
    });
    let output = harness(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(stderr_of(&output, dir.path()));
}

#[test]
fn every_file_of_a_folder_is_checked_and_names_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    bad_scenario(dir.path(), "a.yaml", |t| t.replace("count: 3", "count: 4"));
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    bad_scenario(&dir.path().join("sub"), "b.yml", |t| {
        t.replace("count: 3", "count: 5")
    });
    let output = harness(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(stderr_of(&output, dir.path()));
}

#[test]
fn not_a_scenario_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.yaml"), "").unwrap();
    std::fs::write(dir.path().join("list.yaml"), "- a\n- b\n").unwrap();
    let output = harness(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(stderr_of(&output, dir.path()));
    let missing = dir.path().join("missing");
    let output = harness(&["validate", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!("missing_path", stderr_of(&output, dir.path()));
}

/// A file that is not a scenario, such as a password file named on the
/// command line or linked into a scenario folder, is refused without a
/// word of its content: a mapping of unknown keys is not a scenario.
#[test]
fn a_secret_file_is_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "root:$y$j9T$Secretive0Hash:20228:0:99999:7:::";
    let shadow = dir.path().join("shadow");
    std::fs::write(&shadow, format!("{secret}\ndaemon:*:20228:0:99999:7:::\n")).unwrap();
    let folder = dir.path().join("scenarios");
    std::fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink(&shadow, folder.join("linked.yaml")).unwrap();
    for path in [&shadow, &folder] {
        let output = harness(&["validate", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("not a scenario"), "{stderr}");
        for part in ["root", "Secretive0Hash", "20228", "daemon"] {
            assert!(!stderr.contains(part), "`{part}` quoted: {stderr}");
        }
    }
}

/// Control characters in what a scenario file says (names, tags,
/// descriptions, values quoted in errors) are shown escaped, never sent to
/// the terminal raw: an escape sequence in a file cannot recolour, retitle
/// or clear the terminal of whoever lists or validates it.
#[test]
fn terminal_escapes_in_a_scenario_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let good = bad_scenario(dir.path(), "good.yaml", |t| {
        t.replacen(
            "description: >",
            "description: \"\\e[2J\\e[31mred\\rover\" #",
            1,
        )
        .replacen("  ICMP echo", "# ICMP echo", 1)
        .replacen("  own address", "# own address", 1)
        .replacen("tags: [icmp,", "tags: [\"x\\e]0;owned\\a\", icmp,", 1)
    });
    let named = bad_scenario(dir.path(), "named.yaml", |t| {
        t.replacen("name: icmp-external-v4", "name: \"a\\e[31mb\"", 1)
    });
    let listed = harness(&["list", good.to_str().unwrap()]);
    let validated = harness(&["validate", named.to_str().unwrap()]);
    for output in [&listed, &validated] {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "raw control characters: {text:?}"
            );
        }
    }
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(r"\u{1b}[31mred\rover"), "{listed}");
    assert!(listed.contains(r"x\u{1b}]0;owned\u{7}"), "{listed}");
    let validated = String::from_utf8_lossy(&validated.stderr);
    assert!(validated.contains(r"`a\u{1b}[31mb`"), "{validated}");
}

/// `--calico` names the release scenarios without `calico:` stand for: an
/// unknown one is refused with the known ones, and a scenario that names
/// nftables fails under a release before Felix's nftables mode (v3.29).
#[test]
fn calico_release_on_the_command_line() {
    let unknown = harness(&["validate", "scenarios", "--calico", "v3.27"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains(
            "invalid value 'v3.27' for '--calico <RELEASE>': unknown Calico release 'v3.27': \
             the harness knows v3.28 (v3.28.0..v3.28.5),"
        ),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = bad_scenario(dir.path(), "nft.yaml", |text| {
        text.replace("tags:", "backends: [nftables]\ntags:")
    });
    let file = path.to_str().unwrap();
    assert!(harness(&["validate", file]).status.success());
    let old = harness(&["validate", file, "--calico", "v3.28"]);
    assert!(!old.status.success());
    assert!(
        stderr_of(&old, dir.path()).contains(
            "backends: nftables: Calico v3.28.5 lacks it: Felix's nftables mode (the `nftables` \
             backend) came in v3.29.0 (commit a91c52b83a)"
        ),
        "{}",
        stderr_of(&old, dir.path())
    );
    assert!(harness(&["validate", file, "--calico", "v3.29"])
        .status
        .success());
}
