//! The scenario JSON Schema as people meet it: the committed file is the one
//! the types generate, every catalogue file validates against it, every key it
//! knows is in the key table of docs/scenarios.md, and a project's own scenario folder
//! named by FIP_HARNESS_SCENARIOS joins the catalogue's cases.

mod common;
mod schema_check;

use std::collections::BTreeSet;
use std::ffi::OsStr;

use serde_json::Value;

use common::repo;
use fip_harness::runner::{plan, PlanFilter};
use fip_harness::scenario::{
    catalogue_folders, find_scenario_files, scenario_schema_json, SCHEMA_PATH,
};
use schema_check::{property_keys, validate};

fn schema() -> Value {
    serde_json::from_str(&scenario_schema_json()).unwrap()
}

#[test]
fn the_committed_schema_is_current() {
    let path = repo().join(SCHEMA_PATH);
    let generated = scenario_schema_json();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{SCHEMA_PATH} is not what the scenario types generate; regenerate it with \
         `cargo run -p fip-harness -- schema > {SCHEMA_PATH}` (or `UPDATE_SCHEMA=1 cargo test \
         --test schema`) and commit it"
    );
}

#[test]
fn every_catalogue_file_validates_and_names_the_schema() {
    let schema = schema();
    let files = find_scenario_files(&[repo().join("scenarios")]).unwrap();
    assert!(files.len() > 20, "the catalogue is there: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let document: Value = yaml_serde::from_str(&text).unwrap();
        let errors = validate(&schema, &document);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/scenario.schema.json\n"),
            "{}: the first line tells editors where the schema is",
            file.display()
        );
    }
}

#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    let schema = schema();
    let base = r#"{"cluster": {"cni": "c.yaml", "nodes": ["node-a"]},
                   "steps": [{"send": {"protocol": "icmp", "from": "node-a", "to": "x"}}]}"#;
    let ok: Value = serde_json::from_str(base).unwrap();
    assert_eq!(validate(&schema, &ok), Vec::<String>::new());
    for (bad, why) in [
        (base.replace("\"cni\"", "\"cnii\""), "unknown key"),
        (base.replace("icmp", "icmpp"), "unknown protocol"),
        (base.replace("node-a\"]", "Node_A\"]"), "bad name"),
        (base.replace("\"send\"", "\"sendd\""), "unknown step"),
        (
            base.replace("\"to\": \"x\"", "\"to\": \"x\", \"count\": -1"),
            "negative count",
        ),
    ] {
        let document: Value = serde_json::from_str(&bad).unwrap();
        assert!(!validate(&schema, &document).is_empty(), "{why}: {bad}");
    }
}

/// The key table of docs/scenarios.md ("Every key, by where it goes"): its
/// rows only, so that a key named in an example or a comment elsewhere on the
/// page does not count.
fn key_table() -> String {
    let page = std::fs::read_to_string(repo().join("docs/scenarios.md")).unwrap();
    let start = page
        .find("| where | keys |")
        .expect("docs/scenarios.md has the key table");
    page[start..]
        .lines()
        .take_while(|line| line.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_key_is_in_the_docs_key_table() {
    let table = key_table();
    let keys = property_keys(&schema());
    assert!(keys.contains("seenSource") && keys.contains("quotedDestination"));
    let missing: BTreeSet<&String> = keys
        .iter()
        .filter(|k| !table.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "the key table of docs/scenarios.md does not name {missing:?} (as `key`)"
    );
}

#[test]
fn extra_scenario_folders_join_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let cni = repo().join("fixtures/cni/calico-config-floating-ips-on.yaml");
    std::fs::write(
        dir.path().join("our-own.yaml"),
        format!(
            "cluster: {{cni: {}, nodes: [node-a], externals: [client]}}\n\
             steps:\n  - createPod: {{name: web, node: node-a}}\n  \
             - send: {{protocol: icmp, from: client, to: web, expect: {{deliveredTo: web}}}}\n",
            cni.display()
        ),
    )
    .unwrap();
    let folders = catalogue_folders(
        repo().join("scenarios"),
        Some(OsStr::new(dir.path().as_os_str())),
    );
    let names: Vec<String> = plan(&folders, &PlanFilter::default())
        .unwrap()
        .iter()
        .map(|c| c.test_name())
        .collect();
    for name in [
        "our-own::nftables",
        "our-own::iptables",
        "icmp-external-v4::nftables",
    ] {
        assert!(names.contains(&name.to_owned()), "{name} in {names:?}");
    }
    let missing = catalogue_folders(
        repo().join("scenarios"),
        Some(OsStr::new("/nonexistent-fip-harness-folder")),
    );
    assert!(
        plan(&missing, &PlanFilter::default()).is_err(),
        "a folder that is not there is an error, not an empty catalogue"
    );
}
