//! `fip-harness conform` end to end, as a vendor runs it: the whole catalogue
//! on a dataplane and on the reference, conform.json, junit.xml and the
//! verdict line. Needs root (labs).
//!
//! Which cases a mutant must differ on is worked out from the scenarios
//! themselves, never listed by hand: `ipv6-ignored` programs no IPv6 NAT, so
//! exactly the scenarios that send to an IPv6 floating IP see otherwise.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use common::{harness, repo};
use fip_harness::conform::{CaseVerdict, ConformReport};
use fip_harness::scenario::{load_catalogue, Step, Target};

fn need_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "conform builds network namespaces and needs root: run `sudo -E cargo test --test conform`"
    );
}

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run `conform` with `args`; its exit status, stdout and conform.json. One
/// at a time: each already runs several labs at once, and a machine loaded
/// past that makes the catalogue's streams miss their waits.
fn conform(dir: &Path, args: &[&str]) -> (bool, String, ConformReport) {
    let _turn = one_at_a_time();
    let report_dir = dir.to_str().unwrap();
    let mut all = vec!["conform", "--jobs", "4", "--report-dir", report_dir];
    all.extend_from_slice(args);
    let output = harness(&all);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = std::fs::read_to_string(dir.join("conform.json")).unwrap_or_else(|e| {
        panic!(
            "no conform.json ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.success(),
        stdout,
        serde_json::from_str(&json).unwrap(),
    )
}

fn names_where(report: &ConformReport, keep: impl Fn(&CaseVerdict) -> bool) -> BTreeSet<String> {
    report
        .cases
        .iter()
        .filter(|c| keep(&c.verdict))
        .map(|c| c.name.clone())
        .collect()
}

fn is_differs(verdict: &CaseVerdict) -> bool {
    matches!(verdict, CaseVerdict::Differs { .. })
}

/// The catalogue's scenarios with a probe or stream sent to an IPv6 address
/// (in the catalogue, a literal destination is always a floating IP).
fn scenarios_sending_to_ipv6() -> BTreeSet<String> {
    let catalogue = load_catalogue(&[repo().join("scenarios")]);
    assert!(catalogue.errors.is_empty(), "{:?}", catalogue.errors);
    catalogue
        .scenarios
        .iter()
        .filter(|scenario| {
            scenario.steps.iter().any(|step| {
                let to = match step {
                    Step::Send(send) => &send.to,
                    Step::StartStream(start) => &start.to,
                    _ => return false,
                };
                matches!(to, Target::Address(IpAddr::V6(_)))
            })
        })
        .map(|scenario| scenario.name.clone())
        .collect()
}

#[test]
fn against_a_mutant_conform_names_exactly_the_cases_that_differ() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let (success, stdout, report) = conform(dir.path(), &["--dataplane", "mutant:ipv6-ignored"]);
    let expected = scenarios_sending_to_ipv6();
    assert!(expected.len() >= 4, "{expected:?}");
    let differs = names_where(&report, is_differs);
    assert_eq!(differs, expected, "{stdout}");
    let others = names_where(&report, |v| !is_differs(v) && *v != CaseVerdict::Matches);
    assert!(
        others.is_empty(),
        "not judged or driver errors: {others:?}\n{stdout}"
    );
    assert!(!success && !report.conformant, "{stdout}");
    let listed = expected.iter().cloned().collect::<Vec<_>>().join(", ");
    assert!(
        stdout.contains(&format!(
            "NOT conformant with Calico floating-IP semantics: {}/{} cases; differs: {listed};",
            report.judged - expected.len(),
            report.judged
        )),
        "{stdout}"
    );
    // Each difference shows both runs where they part.
    assert!(
        stdout.contains("mutant:ipv6-ignored |") && stdout.contains("nftables            |"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert_eq!(
        junit.matches("<failure ").count(),
        expected.len(),
        "{junit}"
    );
    // report.html holds both runs of every case; its backend filter tells them apart.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for backend in ["mutant:ipv6-ignored", "nftables"] {
        assert!(
            html.contains(&format!("<option value=\"{backend}\">")),
            "no {backend} in report.html's backend filter"
        );
    }
}

#[test]
fn against_a_built_in_backend_conform_reports_full_conformance() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let (success, stdout, report) = conform(dir.path(), &["--dataplane", "nft-maps"]);
    assert!(success && report.conformant, "{stdout}");
    assert_eq!(report.matched, report.judged, "{stdout}");
    assert!(report.cases.iter().all(|c| c.matches()), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "conformant with Calico floating-IP semantics: {0}/{0} cases; conntrack profile: calico and strict",
            report.judged
        )),
        "{stdout}"
    );
}

/// A dataplane that never flushes what the strict profile asks behaves like
/// Calico's profile: the strict cases differ, the calico ones match, and
/// that is still Calico's semantics.
#[test]
fn a_dataplane_that_ignores_strict_flushes_behaves_like_the_calico_profile() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let (success, stdout, report) = conform(
        dir.path(),
        &[
            "--dataplane",
            "mutant:strict-never-flushes",
            "--filter",
            "conntrack",
        ],
    );
    let strict: BTreeSet<String> = report
        .cases
        .iter()
        .filter(|c| c.profile == fip_harness::scenario::ConntrackProfile::Strict)
        .map(|c| c.name.clone())
        .collect();
    assert!(!strict.is_empty(), "{stdout}");
    assert_eq!(names_where(&report, is_differs), strict, "{stdout}");
    assert!(success && report.conformant, "{stdout}");
    let behaves: Vec<bool> = report.profiles.iter().map(|p| p.behaves_like).collect();
    assert_eq!(behaves, [true, false], "{stdout}");
    assert!(
        stdout.contains("conntrack profile: calico; differs on "),
        "{stdout}"
    );
}

/// A case the reference fails (here a panic injected into every run of one
/// scenario, debug builds only) runs on the reference once more, and failing
/// again is not judged: it blames no vendor and is not conformance.
#[test]
fn a_case_the_reference_fails_twice_is_not_judged() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let _turn = one_at_a_time();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args([
            "-v",
            "conform",
            "--dataplane",
            "nft-maps",
            "--filter",
            "^from-external-v4$",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .env(fip_harness::runner::PANIC_IN_CASE_ENV, "from-external-v4")
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    assert_eq!(
        stderr.matches("running it once more").count(),
        1,
        "{stderr}"
    );
    assert!(
        stdout.contains(
            "NOT conformant with Calico floating-IP semantics: 0/0 cases; not judged (the reference failed): from-external-v4;"
        ),
        "{stdout}"
    );
}
