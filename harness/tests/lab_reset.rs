//! Labs reused between explored cases (runner::LabPool, lab/reset.rs): a
//! case that leaves something of every class behind (every protocol, TCP
//! and SCTP streams, a floating IP moved) runs, the lab is reset, and its
//! fingerprint (lab/fingerprint.rs) must equal the one it had as built; a
//! reset with any one of its steps left out must be caught by that same
//! comparison, naming the class that leaked. Needs root (labs).

mod common;

use std::path::Path;
use std::sync::Arc;

use fip_harness::lab::reset::ResetStep;
use fip_harness::runner::{DataplaneChoice, LabNaming, LabPool, PlannedCase, RunOptions};
use fip_harness::scenario::{self, ConntrackProfile};
use fip_harness::seed::Seed;
use fip_harness::vocab::RoutingMode;
use rstest::rstest;

const CASE: &str = "tests/data/reuse/every-protocol-and-a-move.yaml";

fn case(dataplane: &str) -> PlannedCase {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CASE);
    let scenario = scenario::load_file(&path).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
    PlannedCase {
        scenario: Arc::new(scenario),
        dataplane: dataplane.parse::<DataplaneChoice>().unwrap(),
        profile: ConntrackProfile::Calico,
    }
}

fn options(tag: &str) -> RunOptions {
    common::use_test_run_dir();
    RunOptions {
        routing: RoutingMode::Model,
        seed: Some(Seed(7)),
        naming: LabNaming::Exact(common::lab_name(tag)),
        ..RunOptions::default()
    }
}

/// Run the case twice in one pool whose resets carry out `steps`, checking
/// the fingerprint after each reset: the leaks found.
fn leaks_with(steps: &[ResetStep], dataplane: &str, tag: &str) -> Vec<String> {
    let pool = LabPool::with_steps(steps, true);
    let case = case(dataplane);
    let options = options(tag);
    let first = pool.run_case(&case, &options);
    assert!(first.head.outcome.is_pass(), "{}", first.failure_text());
    let leaks = pool.leaks();
    if leaks.is_empty() {
        // Reused: the second case must meet the lab as the first did.
        let second = pool.run_case(
            &case,
            &RunOptions {
                seed: Some(Seed(8)),
                ..options.clone()
            },
        );
        assert!(second.head.outcome.is_pass(), "{}", second.failure_text());
        assert_eq!(pool.counts().reused, 1, "{:?}", pool.counts());
    }
    pool.close();
    pool.leaks()
}

#[rstest]
#[case::nft_maps("nft-maps", "rsm")]
#[case::nftables("nftables", "rsn")]
#[case::iptables("iptables", "rsi")]
fn a_reset_lab_is_as_built_after_every_protocol_and_a_move(
    #[case] dataplane: &str,
    #[case] tag: &str,
) {
    let leaks = leaks_with(&ResetStep::ALL, dataplane, tag);
    assert!(
        leaks.is_empty(),
        "left over after the reset:\n{}",
        leaks.join("\n")
    );
}

#[rstest]
#[case::pods(ResetStep::Pods, "nft-maps", "lab pods", "rlp")]
#[case::nft_ruleset(ResetStep::Ruleset, "nft-maps", "nft", "rln")]
#[case::iptables_ruleset(ResetStep::Ruleset, "iptables", "iptables-legacy", "rli")]
#[case::conntrack(ResetStep::Conntrack, "nft-maps", "conntrack", "rlc")]
#[case::sockets(ResetStep::Sockets, "nft-maps", "sockets", "rls")]
#[case::routes(ResetStep::Routes, "nft-maps", "routes", "rlr")]
#[case::neighbours(ResetStep::Neighbours, "nft-maps", "neighbours", "rlh")]
fn a_reset_that_leaves_one_step_out_is_caught(
    #[case] left_out: ResetStep,
    #[case] dataplane: &str,
    #[case] section: &str,
    #[case] tag: &str,
) {
    let steps: Vec<ResetStep> = ResetStep::ALL
        .into_iter()
        .filter(|s| *s != left_out)
        .collect();
    let leaks = leaks_with(&steps, dataplane, tag);
    assert!(
        leaks.iter().any(|l| l.contains(&format!(" {section}: "))),
        "a reset without {left_out:?} should leave {section} behind; found:\n{}",
        leaks.join("\n")
    );
}
