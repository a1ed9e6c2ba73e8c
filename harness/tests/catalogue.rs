//! The conformance catalogue as tests: every scenario file under scenarios/ is a
//! test of its own, once per backend it runs on, named `<file>::<backend>` (and
//! `::strict` for the strict conntrack profile), so `cargo test -- migration`
//! filters as people expect. Each runs in its own lab, in parallel.
//!
//! The backends must agree: every case that passes records what its checks
//! observed (reduced to what cannot depend on timing, see [`Observed`]), and
//! compares it with the record of every other backend's run of the same
//! scenario and profile that finished before it. So when all backends run,
//! every pair of them is compared once, and a difference fails the later case
//! with both observations, even if each passed its own expectations.
//!
//! `FIP_HARNESS_SCENARIOS=dir1:dir2` adds a project's own scenario folders.
//! Listing (`--list`, `--format terse`, `--exact`) follows libtest, so
//! `cargo nextest run --test catalogue --partition count:1/2` shards the cases.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};

use fip_harness::bgp::RoutingMode;
use fip_harness::check::CheckLine;
use fip_harness::report::ScenarioResult;
use fip_harness::runner::{self, RunOptions};
use fip_harness::scenario::{catalogue_folders, SCENARIOS_ENV};
use fip_harness::seed::Seed;

fn main() -> std::process::ExitCode {
    let mut args = Arguments::from_args();
    // Labs wait on the kernel far more than they compute: run several at once even
    // on a 2-core machine unless the user says otherwise.
    if args.test_threads.is_none() {
        args.test_threads = Some(6);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let folders = catalogue_folders(root, std::env::var_os(SCENARIOS_ENV).as_deref());
    let trials = match runner::plan(
        &folders,
        &runner::PlanFilter {
            routing: routing(),
            ..runner::PlanFilter::default()
        },
    ) {
        Ok(plan) => plan
            .into_iter()
            .map(|case| {
                let name = case.test_name();
                Trial::test(name, move || run_case(case))
            })
            .chain([Trial::test(
                "catalogue::a_backend_that_observes_otherwise_fails",
                a_backend_that_observes_otherwise_fails,
            )])
            .collect(),
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            vec![Trial::test("catalogue::load", move || {
                Err(Failed::from(text.join("\n")))
            })]
        }
    };
    libtest_mimic::run(&args, trials).exit_code()
}

/// BIRD, as Calico routes; `FIP_HARNESS_ROUTING=model` runs the catalogue on
/// the harness's route model instead.
fn routing() -> RoutingMode {
    match std::env::var("FIP_HARNESS_ROUTING") {
        Ok(text) => text.parse().expect("FIP_HARNESS_ROUTING is bird or model"),
        Err(_) => RoutingMode::default(),
    }
}

/// The seed of this test process: `FIP_HARNESS_SEED` when set, else drawn
/// once; every failure says it, so `FIP_HARNESS_SEED=N cargo test --test
/// catalogue -- <case>` (or `run --seed N`) makes the same random choices.
fn seed() -> Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("FIP_HARNESS_SEED") {
        Ok(text) => text.parse().expect("FIP_HARNESS_SEED is a number"),
        Err(_) => Seed::random(),
    })
}

fn run_case(case: runner::PlannedCase) -> Result<(), Failed> {
    // Labs need CAP_NET_ADMIN and CAP_SYS_ADMIN; say so plainly instead of
    // failing somewhere deep inside netlink, and never skip silently.
    if !nix::unistd::Uid::effective().is_root() {
        return Err(
            "the catalogue builds network namespaces and needs root: run `sudo -E cargo test` \
             (CI runs as root)"
                .into(),
        );
    }
    let report_dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("catalogue-reports");
    let options = RunOptions {
        report_dir: Some(report_dir),
        keep_on_failure: false,
        routing: routing(),
        seed: Some(seed()),
        ..RunOptions::default()
    };
    let result = runner::run_case_blocking(&case, &options);
    if !result.outcome.is_pass() {
        return Err(result.failure_text().into());
    }
    agree_with_other_backends(records(), &result, &chosen_by_ecmp(&case)).map_err(Failed::from)
}

/// Steps whose expectation lets ECMP pick among pods (`deliveredTo: {oneOf}`):
/// each lab hashes flows with its own seed, so backends may see different
/// pods there, and which pod (and its address) is not compared.
fn chosen_by_ecmp(case: &runner::PlannedCase) -> BTreeSet<usize> {
    use fip_harness::check::Delivery;
    use fip_harness::scenario::Step;
    case.scenario
        .steps
        .iter()
        .enumerate()
        .filter(|(_, step)| {
            let delivery = match step {
                Step::Send(send) => send.expect.delivered_to.as_ref(),
                Step::StopStream(stop) => stop.expect.delivered_to.as_ref(),
                _ => None,
            };
            matches!(delivery, Some(Delivery::OneOf(_)))
        })
        .map(|(index, _)| index)
        .collect()
}

/// One check line as every backend must see it. Counts are left out (a probe
/// lost to neighbour discovery is not the dataplane's doing), and a stream's
/// line keeps only its verdict: how many packets a move loses is timing.
#[derive(Debug, PartialEq, Eq)]
struct LineObserved {
    source: String,
    destination: String,
    protocol: String,
    passed: bool,
    answered: Option<bool>,
    delivered_to: Option<BTreeSet<String>>,
    addresses: Option<[BTreeSet<IpAddr>; 4]>,
}

impl LineObserved {
    fn of(line: &CheckLine) -> Self {
        let o = &line.observed;
        let exact = !line.protocol.ends_with(" stream");
        LineObserved {
            source: line.source.clone(),
            destination: line.destination.clone(),
            protocol: line.protocol.clone(),
            passed: line.passed(),
            answered: exact.then_some(o.answered > 0),
            delivered_to: exact.then(|| {
                o.delivered
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(pod, _)| pod.clone())
                    .collect()
            }),
            addresses: exact.then(|| {
                [
                    o.seen_destinations.clone(),
                    o.seen_sources.clone(),
                    o.reply_sources.clone(),
                    o.quoted_destinations.clone(),
                ]
            }),
        }
    }
}

/// What one passing case observed, step by step.
#[derive(Debug, PartialEq, Eq)]
struct Observed(Vec<(String, Vec<LineObserved>)>);

impl Observed {
    fn of(result: &ScenarioResult, chosen_by_ecmp: &BTreeSet<usize>) -> Self {
        Observed(
            result
                .steps
                .iter()
                .map(|step| {
                    let lines = step
                        .lines
                        .iter()
                        .map(|line| {
                            let mut seen = LineObserved::of(line);
                            if chosen_by_ecmp.contains(&step.index) {
                                seen.delivered_to = None;
                                if let Some(addresses) = &mut seen.addresses {
                                    addresses[0].clear();
                                }
                            }
                            seen
                        })
                        .collect();
                    (step.summary.clone(), lines)
                })
                .collect(),
        )
    }
}

type Records = HashMap<(String, String), Vec<(String, Observed)>>;

/// The catalogue's records: one per process.
fn records() -> &'static Mutex<Records> {
    static RECORDS: OnceLock<Mutex<Records>> = OnceLock::new();
    RECORDS.get_or_init(Default::default)
}

/// Record what `result` observed, after comparing it with every other
/// backend's record of the same scenario and profile.
fn agree_with_other_backends(
    records: &Mutex<Records>,
    result: &ScenarioResult,
    chosen_by_ecmp: &BTreeSet<usize>,
) -> Result<(), String> {
    let mine = Observed::of(result, chosen_by_ecmp);
    let mut records = records
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let group = records
        .entry((result.name.clone(), result.profile.clone()))
        .or_default();
    for (backend, theirs) in group.iter() {
        if *theirs == mine {
            continue;
        }
        // A passing case runs every step, so both lists have the same steps;
        // the first that differs says where.
        let at = mine.0.iter().zip(&theirs.0).position(|(a, b)| a != b);
        let (mine, theirs) = match at {
            Some(i) => (&mine.0[i..=i], &theirs.0[i..=i]),
            None => (&mine.0[..], &theirs.0[..]),
        };
        return Err(format!(
            "the backends disagree on what the checks observed:\n{}: {mine:#?}\n{backend}: {theirs:#?}",
            result.backend
        ));
    }
    group.push((result.backend.clone(), mine));
    Ok(())
}

/// The agreement check itself can fail: two passing runs whose replies came
/// from different addresses disagree; a third equal to the first agrees.
fn a_backend_that_observes_otherwise_fails() -> Result<(), Failed> {
    use fip_harness::check::DeliveryObserved;
    use fip_harness::report::{Outcome, StepResult};

    let result = |backend: &str, reply_source: &str| ScenarioResult {
        name: "agreement-self-test".into(),
        file: PathBuf::new(),
        backend: backend.into(),
        profile: "calico".into(),
        routing: "bird".into(),
        outcome: Outcome::Passed,
        duration_ms: 0,
        steps: vec![StepResult {
            index: 0,
            summary: "send icmp ext -> 203.0.113.10".into(),
            passed: true,
            attempts: 1,
            lines: vec![CheckLine {
                source: "ext".into(),
                destination: "203.0.113.10".into(),
                protocol: "icmp".into(),
                observed: DeliveryObserved {
                    sent: 3,
                    answered: 3,
                    delivered: [("web".to_string(), 3)].into(),
                    reply_sources: [reply_source.parse().unwrap()].into(),
                    ..Default::default()
                },
                mismatches: Vec::new(),
            }],
            message: None,
            diagnostics: None,
        }],
        migrations: Vec::new(),
        kept_lab: None,
        seed: None,
        lab: None,
    };
    let records = Mutex::default();
    agree_with_other_backends(
        &records,
        &result("nftables", "203.0.113.10"),
        &BTreeSet::new(),
    )?;
    agree_with_other_backends(
        &records,
        &result("nft-maps", "203.0.113.10"),
        &BTreeSet::new(),
    )?;
    match agree_with_other_backends(
        &records,
        &result("iptables", "198.19.0.5"),
        &BTreeSet::new(),
    ) {
        Err(text) if text.contains("disagree") && text.contains("198.19.0.5") => Ok(()),
        other => Err(format!("a different reply source went unnoticed: {other:?}").into()),
    }
}
