use std::path::{Path, PathBuf};

use super::*;
use crate::scenario::{load_catalogue, load_file};

fn catalogue_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn points_of(file: &str) -> Vec<Exercised> {
    let scenario = load_file(&catalogue_dir().join(file)).expect("a catalogue file loads");
    exercised(&scenario)
}

/// The values of `dims` of each point of step `step`, once per distinct point.
fn at_step(points: &[Exercised], step: usize, dims: &[&str]) -> Vec<Vec<&'static str>> {
    let mut out: Vec<Vec<&'static str>> = points
        .iter()
        .filter(|e| e.step == step)
        .map(|e| dims.iter().map(|d| e.point.get(d)).collect())
        .collect();
    out.dedup();
    out
}

#[test]
fn a_move_under_a_stream_and_the_sends_after_it() {
    let points = points_of("move-across-nodes.yaml");
    let dims = [
        "source", "change", "timing", "claims", "delivery", "node-nat",
    ];
    // Step 8 stops the stream the move happened under.
    assert_eq!(
        at_step(&points, 8, &dims),
        [[
            "external",
            "moved-across-nodes",
            "under-stream",
            "one",
            "holder",
            "alone"
        ]]
    );
    // The old node's own send, after the move: it hosts no claimant now.
    assert_eq!(
        at_step(&points, 10, &dims),
        [[
            "other-node",
            "moved-across-nodes",
            "settled",
            "one",
            "holder",
            "alone"
        ]]
    );
    // One point per profile and routing the case runs under.
    let scenario = load_file(&catalogue_dir().join("move-across-nodes.yaml")).unwrap();
    assert_eq!(
        points.iter().filter(|e| e.step == 9).count(),
        scenario.profiles.len() * scenario.routings.len()
    );
}

#[test]
fn loopback_duplicates_and_icmp_errors_are_told_apart() {
    let loopback = points_of("loopback-own-floating-ip.yaml");
    assert!(loopback.iter().any(|e| e.point.get("source") == "holder"));
    let quoted = points_of("icmp-error-quotes-floating-ip.yaml");
    assert!(quoted
        .iter()
        .all(|e| e.point.get("icmp-error") == "from-pod" && e.point.get("protocol") == "udp"));
    let across = points_of("duplicate-claim-across-nodes.yaml");
    assert!(across
        .iter()
        .any(|e| e.point.get("claims") == "duplicate-across-nodes"
            && e.point.get("delivery") == "one-of"
            && e.point.get("change") == "duplicate-made"));
    let several = points_of("several-floating-ips-one-pod.yaml");
    assert!(several
        .iter()
        .all(|e| e.point.get("claims") == "several-on-pod"));
}

#[test]
fn the_catalogue_exercises_only_known_values_and_contradicts_no_rule() {
    let catalogue = load_catalogue(&[catalogue_dir()]);
    assert!(catalogue.errors.is_empty(), "{:?}", catalogue.errors);
    let coverage = coverage_of(&catalogue.scenarios);
    for scenario in &catalogue.scenarios {
        for e in exercised(scenario) {
            for d in DIMENSIONS {
                let value = e.point.get(d.name);
                assert!(
                    d.has(value),
                    "{} step {}: {}={value:?}",
                    e.scenario,
                    e.step,
                    d.name
                );
            }
        }
    }
    let contradictions: Vec<String> = coverage
        .pairs
        .iter()
        .filter(|p| p.is_contradiction())
        .map(|p| format!("{p:?}"))
        .collect();
    assert!(contradictions.is_empty(), "{contradictions:#?}");
    assert!(coverage.points > 0 && coverage.covered > 0);
}

#[test]
fn the_catalogue_leaves_no_hole_calicos_semantics_allow() {
    let catalogue = load_catalogue(&[catalogue_dir()]);
    assert!(catalogue.errors.is_empty(), "{:?}", catalogue.errors);
    let coverage = coverage_of(&catalogue.scenarios);
    let holes: Vec<String> = coverage
        .pairs
        .iter()
        .filter(|p| p.is_hole())
        .map(|p| format!("{}={} x {}={}", p.a, p.a_value, p.b, p.b_value))
        .collect();
    assert!(
        holes.is_empty(),
        "{} pair(s) of values no catalogue case exercises (add a case, or a rule in \
         coverage/rules.rs saying why none can): {holes:#?}",
        holes.len()
    );
}

#[test]
fn once_nobody_claims_the_last_holder_and_its_node_stand_for_the_holders() {
    let points = points_of("matrix-life-exported.yaml");
    let after_removal: Vec<(&str, &str)> = points
        .iter()
        .filter(|e| e.point.get("change") == "removed" && e.point.get("timing") == "settled")
        .map(|e| (e.point.get("source"), e.point.get("claims")))
        .collect();
    for source in [
        "holder",
        "hosting-node",
        "same-node-pod",
        "other-fip-holder",
    ] {
        assert!(
            after_removal.contains(&(source, "nobody")),
            "{source}: {after_removal:?}"
        );
    }
}
