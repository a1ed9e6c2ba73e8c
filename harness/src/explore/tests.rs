//! The explorer's pure parts: generation is a function of the seed, every
//! generated case is a valid scenario whose expectations are the model's,
//! and shrinking (proptest's value trees, driven by `search::shrink`) ends
//! at the smallest case a judge still fails.

use std::sync::atomic::{AtomicU32, Ordering};

use super::script::{script, ScriptStep};
use super::search::{self, case, search, Budget, Judge, Judgement, ShrinkLimits};
use super::*;
use crate::vocab::Protocol;

fn dir() -> (tempfile::TempDir, ExploreDir) {
    let temp = tempfile::tempdir().unwrap();
    let dir = ExploreDir::create(temp.path()).unwrap();
    (temp, dir)
}

fn text(seed: u64, index: u64) -> String {
    yaml::render(&script(&case(Seed(seed), index)), "case", &[])
}

#[test]
fn the_same_seed_generates_the_same_cases_and_another_seed_others() {
    for index in 0..20 {
        assert_eq!(text(7, index), text(7, index));
    }
    let same = (0..20).filter(|&i| text(7, i) == text(8, i)).count();
    assert!(same < 3, "{same} of 20 cases equal across seeds");
    let distinct: std::collections::BTreeSet<String> = (0..20).map(|i| text(7, i)).collect();
    assert!(distinct.len() > 15);
}

#[test]
fn every_generated_case_is_a_scenario_the_loader_accepts() {
    let (_temp, dir) = dir();
    for index in 0..300 {
        let script = script(&case(Seed(11), index));
        if let Err(error) = dir.scenario(&script, &format!("case-{index}")) {
            panic!("case {index}: {error}");
        }
    }
}

/// What the generator covers over a few hundred cases: every kind of step,
/// every protocol, refused set-ups, streams that see a move.
#[test]
fn generated_cases_cover_every_kind_of_step_and_protocol() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut protocols = std::collections::BTreeSet::new();
    let (mut refused, mut after_move, mut one_of) = (0, 0, 0);
    for index in 0..400 {
        for step in script(&case(Seed(3), index)).steps {
            let kind = match &step {
                ScriptStep::CreatePod { expect_error, .. } => {
                    refused += usize::from(expect_error.is_some());
                    "createPod"
                }
                ScriptStep::DeletePod(_) => "deletePod",
                ScriptStep::Annotate { .. } => "annotate",
                ScriptStep::SetPhase { .. } => "setPhase",
                ScriptStep::Send {
                    protocol, expect, ..
                } => {
                    protocols.insert(protocol.to_string());
                    one_of += usize::from(matches!(
                        expect.delivered_to,
                        Some(crate::check::Delivery::OneOf(_))
                    ));
                    "send"
                }
                ScriptStep::StartStream { .. } => "startStream",
                ScriptStep::StopStream { expect, .. } => {
                    after_move += usize::from(expect.after_move_at.is_some());
                    "stopStream"
                }
                ScriptStep::WaitMs(_) => "wait",
                ScriptStep::WaitPackets(..) => "waitPackets",
            };
            kinds.insert(kind);
        }
    }
    assert_eq!(kinds.len(), 9, "{kinds:?}");
    assert_eq!(protocols.len(), 5, "{protocols:?}");
    assert!(refused > 0 && after_move > 0, "{refused} {after_move}");
    let _ = one_of;
}

/// A judge that fails a case when `fails` says so, counting its runs.
struct FakeJudge<F: Fn(&Script) -> bool + Sync> {
    fails: F,
    runs: AtomicU32,
}

impl<F: Fn(&Script) -> bool + Sync> Judge for FakeJudge<F> {
    fn judge(&self, script: &Script, _name: &str) -> Judgement {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if (self.fails)(script) {
            Judgement::Fail("the fake judge".into())
        } else {
            Judgement::Pass
        }
    }
}

fn judge<F: Fn(&Script) -> bool + Sync>(fails: F) -> FakeJudge<F> {
    FakeJudge {
        fails,
        runs: AtomicU32::new(0),
    }
}

fn delivers_gre_to_a_pod(script: &Script) -> bool {
    script.steps.iter().any(|step| {
        matches!(step, ScriptStep::Send { protocol: Protocol::Gre, expect, .. }
            if matches!(&expect.delivered_to, Some(crate::check::Delivery::Pods(_))))
    })
}

#[test]
fn a_failure_shrinks_to_the_fewest_hosts_steps_and_packets_that_still_fail() {
    // A dataplane that loses GRE to pods: the smallest case is a pod and one
    // GRE packet to it, on one node with one external host.
    let judge = judge(delivers_gre_to_a_pod);
    // Which case fails first, and so how far its value tree shrinks, follows
    // the model's predictions: seed 5 stopped at 3 steps once the model
    // dropped a pod Felix has no endpoint for (fidelity); most seeds reach 2.
    let outcome = search(
        Seed(1),
        Budget::Cases(500),
        1,
        &judge,
        ShrinkLimits::default(),
        &|_, _| {},
    );
    let shrunk = outcome.failure.expect("some case sends GRE to a pod");
    assert!(shrunk.confirmed);
    assert!(shrunk.found.steps.len() > shrunk.shrunk.steps.len());
    let (steps, pods, hosts, packets) = search::size(&shrunk.shrunk);
    assert_eq!((steps, pods, hosts, packets), (2, 1, 2, 1), "{shrunk:#?}");
    assert!(delivers_gre_to_a_pod(&shrunk.shrunk));
}

#[test]
fn shrinking_keeps_what_the_failure_needs() {
    // Fails only when a floating IP moves between two pods under a stream:
    // the shrunk case keeps two pods, the stream and the move.
    let moved = |script: &Script| {
        script.steps.iter().any(|step| {
            matches!(step, ScriptStep::StopStream { expect, .. } if expect.after_move_at.is_some())
        })
    };
    let judge = judge(moved);
    let outcome = search(
        Seed(9),
        Budget::Cases(3000),
        1,
        &judge,
        ShrinkLimits::default(),
        &|_, _| {},
    );
    let shrunk = outcome
        .failure
        .expect("some case moves a floating IP under a stream");
    assert!(moved(&shrunk.shrunk));
    let (steps, ..) = search::size(&shrunk.shrunk);
    assert!(steps <= 8, "{}", yaml::render(&shrunk.shrunk, "x", &[]));
}

#[test]
fn a_search_with_no_failure_runs_its_whole_budget_and_shrinks_nothing() {
    let judge = judge(|_| false);
    let outcome = search(
        Seed(1),
        Budget::Cases(40),
        3,
        &judge,
        ShrinkLimits::default(),
        &|_, _| {},
    );
    assert_eq!((outcome.cases, outcome.passed), (40, 40));
    assert!(outcome.failure.is_none());
    assert_eq!(judge.runs.load(Ordering::SeqCst), 40);
}

#[test]
fn the_failure_found_does_not_depend_on_the_number_of_jobs() {
    let fails = |script: &Script| {
        script
            .steps
            .iter()
            .any(|s| matches!(s, ScriptStep::SetPhase { .. }))
    };
    let run = |jobs| {
        let outcome = search(
            Seed(4),
            Budget::Cases(200),
            jobs,
            &judge(fails),
            ShrinkLimits::default(),
            &|_, _| {},
        );
        let shrunk = outcome.failure.expect("some case sets a phase");
        (shrunk.index, yaml::render(&shrunk.shrunk, "x", &[]))
    };
    assert_eq!(run(1), run(4));
}

/// The situations the mutants the explorer once missed need (a stream
/// across a move under each profile, past a deleted pod; IPv6 ICMP, IPv6
/// loopback, ICMP errors through the DNAT; egress seen at the external
/// host; duplicate claims in text-not-numeric order and across nodes):
/// each is reached by a fair share of generated cases, judged on the
/// generated values by the model alone.
#[test]
fn generated_cases_reach_what_each_mutant_class_needs() {
    use super::script::Situation::*;
    let cases = 600;
    let mut counts: std::collections::BTreeMap<_, usize> = Default::default();
    for index in 0..cases {
        for situation in script(&case(Seed(5), index)).situations {
            *counts.entry(situation).or_default() += 1;
        }
    }
    let all = [
        EgressSeenSource,
        Icmpv6ToFloating,
        LoopbackV6,
        ErrorQuotingFloating,
        DuplicateTextOrder,
        DuplicateAcrossNodes,
        StreamAcrossMoveCalico,
        StreamAcrossMoveStrict,
        // The model gaps the explorer once left out (docs/testing.md).
        ClaimInOwnBlock,
        ClaimOfAnotherPodsAddress,
        OwnAddressBesideOthers,
    ];
    for situation in all {
        let share = counts.get(&situation).copied().unwrap_or(0);
        // Two cases in 600 at least: a two-minute search runs some hundreds.
        assert!(share >= 2, "{situation:?}: {share} of {cases} ({counts:?})");
    }
}

/// Seed 21 case 92 failed on iptables (and once on nftables): a UDP stream
/// to an IPv6 floating IP nobody claimed, then a pod on another node claims
/// it. That node gets the route and the DNAT in one Felix update, in
/// parallel: a packet that beats the DNAT pins the flow untranslated, so
/// under the calico profile the stream stops before that step, with what it
/// reached until then (no pod), and no stop expects the pod.
#[test]
fn a_stream_a_claim_brings_to_a_node_getting_its_dnat_states_nothing() {
    let script = script(&case(Seed(21), 92));
    let stops: Vec<&crate::check::StreamExpectation> = (script.steps.iter())
        .filter_map(|step| match step {
            ScriptStep::StopStream { expect, .. } => Some(expect),
            _ => None,
        })
        .collect();
    assert!(!stops.is_empty());
    assert!(
        stops.iter().all(|expect| matches!(
            expect.delivered_to,
            None | Some(crate::check::Delivery::None)
        )),
        "{}",
        yaml::render(&script, "x", &[])
    );
}

/// `--seed 5101` case 499 failed on every reference dataplane: an ICMPv6
/// stream from web-1 to a floating IP that web-1 itself then claims. Packets
/// racing Felix's route and NAT leave by the interface they came in by, the
/// node redirects web-1, and web-1 drops its own packets to the floating IP
/// for seconds: the stream cannot be followed across that change (IPv6
/// only: the lab's nodes send no IPv4 redirects, as `send_redirects` is off).
#[rstest::rstest]
#[case::v6("2001:db8:f1::10", false)]
#[case::v4("203.0.113.10", true)]
fn a_stream_whose_sender_claims_its_floating_ip(#[case] floating: &str, #[case] stated: bool) {
    use crate::calico::cluster::tests::{annotate, config, create};
    use crate::calico::cluster::Cluster;
    use crate::calico::predict::Packet;
    let mut config = config(true, true, true);
    config.profile = crate::vocab::ConntrackProfile::Strict;
    let mut cluster = Cluster::new(config);
    cluster.apply(&create("web-1", "node-a", None)).unwrap();
    let packet = Packet::new("web-1", floating.parse().unwrap(), Protocol::Icmp);
    let mut track = super::expect::StreamTrack::start(&cluster, packet).unwrap();
    let nat_before = cluster.felix().nat.clone();
    let value = format!("[\"{floating}\"]");
    let effects = cluster.apply(&annotate("web-1", Some(&value))).unwrap();
    track.follow(&cluster, &effects.felix, &nat_before);
    assert_eq!(track.is_stated(), stated);
}
