//! The conformance catalogue as tests: every scenario file under scenarios/ is a
//! test of its own, once per backend it runs on, named `<file>::<backend>` (and
//! `::strict` for the strict conntrack profile), so `cargo test -- migration`
//! filters as people expect. Each runs in its own lab, in parallel.
//!
//! The backends must agree: every case that passes records what its checks
//! observed (reduced to what cannot depend on timing: the record `conform`
//! compares, `fip_harness::conform::CaseObservation`), and
//! compares it with the record of every other backend's run of the same
//! scenario and profile that finished before it. So when all backends run,
//! every pair of them is compared once, and a difference fails the later case
//! with both observations, even if each passed its own expectations.
//!
//! The protocol is held to the same bar: every scenario also runs through
//! `exec:<fip-harness> driver nftables --own-conntrack`, Felix's nftables
//! backend served over the driver protocol by a process per node (with the
//! conntrack flushes going through the protocol too), and the agreement check
//! compares it with the in-process backends. One served backend, not three:
//! the serving loop is the same for every backend, so a second one would test
//! the backends again, not the protocol, and cost another third of the run.
//!
//! `FIP_HARNESS_DATAPLANE=<choice>` runs the catalogue through that dataplane
//! alone instead (a built-in name, `mutant:<name>` or `exec:PATH [ARGS]`).
//! `FIP_HARNESS_SCENARIOS=dir1:dir2` adds a project's own scenario folders.
//! Listing (`--list`, `--format terse`, `--exact`) follows libtest, so
//! `cargo nextest run --test catalogue --partition count:1/2` shards the cases.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};

use fip_harness::bgp::RoutingMode;
use fip_harness::check::CheckLine;
use fip_harness::conform::{CaseObservation, Compared, Difference};
use fip_harness::report::ScenarioResult;
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{self, RunOptions};
use fip_harness::scenario::{catalogue_folders, ScenarioError, SCENARIOS_ENV};
use fip_harness::seed::Seed;

/// The one dataplane to run the catalogue through (see the module's text).
const DATAPLANE_ENV: &str = "FIP_HARNESS_DATAPLANE";

fn main() -> std::process::ExitCode {
    raise_open_files_limit();
    let mut args = Arguments::from_args();
    // Labs wait on the kernel far more than they compute: run several at once even
    // on a 2-core machine unless the user says otherwise (as `run` does, and
    // bounded by the host's neighbour table: see `run_case`).
    if args.test_threads.is_none() {
        args.test_threads = Some(runner::default_jobs());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let folders = catalogue_folders(root, std::env::var_os(SCENARIOS_ENV).as_deref());
    let trials = match plan(&folders) {
        Ok(mut plan) => {
            // The longest first, as `run` starts them: a long case started
            // last would stretch the run's tail.
            plan.sort_by_key(|case| std::cmp::Reverse(runner::CaseCost::of(&case.scenario).length));
            plan.into_iter()
                .map(|case| {
                    let name = case.test_name();
                    Trial::test(name, move || run_case(case))
                })
                .chain([Trial::test(
                    "catalogue::a_backend_that_observes_otherwise_fails",
                    a_backend_that_observes_otherwise_fails,
                )])
                .collect()
        }
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            vec![Trial::test("catalogue::load", move || {
                Err(Failed::from(text.join("\n")))
            })]
        }
    };
    libtest_mimic::run(&args, trials).exit_code()
}

/// The chosen dataplane's cases, or every backend's plus the served driver's.
fn plan(folders: &[PathBuf]) -> Result<Vec<runner::PlannedCase>, Vec<ScenarioError>> {
    let chosen = std::env::var(DATAPLANE_ENV).ok().map(|text| {
        text.parse::<DataplaneChoice>()
            .unwrap_or_else(|e| panic!("{DATAPLANE_ENV}: {e}"))
    });
    let filter = |dataplane| runner::PlanFilter {
        dataplane,
        routing: routing(),
        ..runner::PlanFilter::default()
    };
    if chosen.is_some() {
        return runner::plan(folders, &filter(chosen));
    }
    let served = format!(
        "exec:{} driver nftables --own-conntrack",
        env!("CARGO_BIN_EXE_fip-harness")
    );
    let served: DataplaneChoice = served.parse().expect("the served driver's choice parses");
    let mut cases = runner::plan(folders, &filter(None))?;
    cases.extend(runner::plan(folders, &filter(Some(served)))?);
    Ok(cases)
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
            "the catalogue builds network namespaces and needs root: run it with `cargo test`, \
             which starts it through ci/test-runner (root, or a user namespace of its own)"
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
    // Only as many labs at once as the host's neighbour table has room for.
    let room = runner::Room::process().take(runner::CaseCost::of(&case.scenario).neighbours);
    let result = runner::run_case_blocking(&case, &options);
    drop(room);
    if !result.head.outcome.is_pass() {
        return Err(result.failure_text().into());
    }
    agree_with_other_backends(records(), &result, &Compared::of(&case.scenario))
        .map_err(Failed::from)
}

type Records = HashMap<(String, String), Vec<(String, CaseObservation)>>;

/// The catalogue's records: one per process.
fn records() -> &'static Mutex<Records> {
    static RECORDS: OnceLock<Mutex<Records>> = OnceLock::new();
    RECORDS.get_or_init(Default::default)
}

/// Record what `result` observed (the record `conform` compares, see
/// `fip_harness::conform::CaseObservation`), after comparing it with every
/// other backend's record of the same scenario and profile.
fn agree_with_other_backends(
    records: &Mutex<Records>,
    result: &ScenarioResult,
    compared: &Compared,
) -> Result<(), String> {
    let mine = CaseObservation::of(result, compared);
    let mut records = records
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let group = records
        .entry((result.head.name.clone(), result.head.profile.clone()))
        .or_default();
    for (backend, theirs) in group.iter() {
        let Some(at) = mine.first_difference(theirs) else {
            continue;
        };
        // Show where they part: the first step that differs, or the moves.
        let show = |record: &CaseObservation| match at {
            Difference::Step(index) => {
                format!("{:#?}", record.steps.iter().find(|s| s.index == index))
            }
            Difference::Moves => format!("{:#?}", record.moves),
        };
        return Err(format!(
            "the backends disagree on what the checks observed:\n{}: {}\n{backend}: {}",
            result.head.backend,
            show(&mine),
            show(theirs)
        ));
    }
    group.push((result.head.backend.clone(), mine));
    Ok(())
}

/// The agreement check itself can fail: two passing runs whose replies came
/// from different addresses disagree; a third equal to the first agrees.
fn a_backend_that_observes_otherwise_fails() -> Result<(), Failed> {
    use fip_harness::check::DeliveryObserved;
    use fip_harness::report::{CaseHead, Outcome, StepResult};

    let result = |backend: &str, reply_source: &str| ScenarioResult {
        head: CaseHead {
            name: "agreement-self-test".into(),
            file: PathBuf::new(),
            backend: backend.into(),
            profile: "calico".into(),
            tags: Vec::new(),
            routing: "bird".into(),
            outcome: Outcome::Passed,
            duration_ms: 0,
        },
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
            timing: None,
        }],
        migrations: Vec::new(),
        lab_pictures: Vec::new(),
        kept_lab: None,
        seed: None,
        lab: None,
    };
    let records = Mutex::default();
    agree_with_other_backends(
        &records,
        &result("nftables", "203.0.113.10"),
        &Compared::default(),
    )?;
    agree_with_other_backends(
        &records,
        &result("nft-maps", "203.0.113.10"),
        &Compared::default(),
    )?;
    match agree_with_other_backends(
        &records,
        &result("iptables", "198.19.0.5"),
        &Compared::default(),
    ) {
        Err(text) if text.contains("disagree") && text.contains("198.19.0.5") => Ok(()),
        other => Err(format!("a different reply source went unnoticed: {other:?}").into()),
    }
}

/// Raise the soft open-files limit to the hard one, as `fip-harness` does
/// at start (`cli/mod.rs`, `raise_open_files_limit`): this binary runs
/// `run`'s default number of cases at once in one process, each lab
/// holding a netlink socket and a namespace file per member, which a normal
/// user's usual soft limit of 1,024 does not hold ("Too many open files").
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
}
