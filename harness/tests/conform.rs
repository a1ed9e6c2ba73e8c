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

use common::browser::{chromium, script_trouble};
use common::{harness, repo};
use fip_harness::conform::{CaseVerdict, ConformSummary as ConformReport};
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
    // The catalogue alone: exploration has tests of its own (tests/explore.rs).
    let mut all = vec![
        "conform",
        "--jobs",
        "4",
        "--explore-time",
        "0s",
        "--report-dir",
        report_dir,
    ];
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

/// Every scenario but most of the coverage matrix
/// (`scenarios/matrix-life-*.yaml`): its 17 long files would add minutes to
/// CI. `matrix-life-ipv6` stays in (~30 s, beside the others): it runs under
/// `strict` alone, so the verdict line is seen to name such a case (it did
/// not before: it named calico-profile cases only). The `felix-off` and
/// `cni-off` files send to an IPv6 floating IP that no pod gets, so they
/// would not differ on this mutant either.
const HAND_WRITTEN: &str = "!^matrix-life-(cni|exported|felix|ipip|no-export|outside|vxlan)";

fn is_differs(verdict: &CaseVerdict) -> bool {
    matches!(verdict, CaseVerdict::Differs { .. })
}

/// The cases (each scenario under each of its profiles, `<name>::strict`
/// under `strict`) of the scenarios [`HAND_WRITTEN`] keeps with a probe or
/// stream sent to an IPv6 address (in the catalogue, a literal destination is
/// always a floating IP).
fn cases_sending_to_ipv6() -> BTreeSet<String> {
    let catalogue = load_catalogue(&[repo().join("scenarios")]);
    assert!(catalogue.errors.is_empty(), "{:?}", catalogue.errors);
    let kept = fip_harness::scenario::ScenarioFilter::parse(HAND_WRITTEN).unwrap();
    catalogue
        .scenarios
        .iter()
        .filter(|scenario| kept.keeps(scenario))
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
        .flat_map(|scenario| {
            scenario
                .profiles
                .iter()
                .map(|profile| fip_harness::conform::case_name(&scenario.name, *profile))
        })
        .collect()
}

#[test]
fn against_a_mutant_conform_names_exactly_the_cases_that_differ() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let (success, stdout, report) = conform(
        dir.path(),
        &[
            "--dataplane",
            "mutant:ipv6-ignored",
            "--filter",
            HAND_WRITTEN,
        ],
    );
    let expected = cases_sending_to_ipv6();
    assert!(expected.len() >= 4, "{expected:?}");
    assert!(
        expected.iter().any(|case| case.ends_with("::strict")),
        "a strict-only IPv6 case is in the run: {expected:?}"
    );
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
    // report.html marks each case that differs, and holds both runs of every case.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(
        html.matches("<td class=\"mark differs\">").count(),
        expected.len()
    );
    for case in &expected {
        assert!(
            html.contains(&format!(
                "<a href=\"#case-{}\">{case}</a>",
                index_of(&report, case)
            )),
            "no row for {case}"
        );
    }
    for backend in ["mutant:ipv6-ignored", "nftables"] {
        assert_eq!(
            html.matches(&format!("the run on <b>{backend}</b>"))
                .count(),
            report.cases.len(),
            "{backend}'s runs in report.html"
        );
    }
}

/// Where the case `name` is in the report (cases are sorted by name, as on the page).
fn index_of(report: &ConformReport, name: &str) -> usize {
    report.cases.iter().position(|c| c.name == name).unwrap()
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
            "--explore-time",
            "0s",
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

/// drivers/nft-driver.py with two bugs a driver author could make: IPv6
/// mappings are dropped when the tables are written (a family list cut
/// short), and an apply with more than one IPv4 floating IP is refused (a
/// fixed-size table). The test writes it to `dir`.
fn buggy_driver(dir: &Path) -> std::path::PathBuf {
    let source = std::fs::read_to_string(repo().join("drivers/nft-driver.py")).unwrap();
    let edits = [
        (
            "            for mapping in dnat:\n",
            "            for mapping in (dnat if family == \"ipv4\" else []):\n",
        ),
        (
            "        nft(\"-f\", \"-\", script=table_script(nat))\n",
            "        if len(nat[\"ipv4\"][\"dnat\"]) > 1:\n            raise Refused(\"room for one mapping\")\n        nft(\"-f\", \"-\", script=table_script(nat))\n",
        ),
    ];
    let mut text = source;
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "nft-driver.py changed: {from}"
        );
        text = text.replace(from, to);
    }
    let path = dir.join("buggy-driver.py");
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The `name="value"` attributes of the first `<tag ` element in `xml`.
fn attribute(xml: &str, tag: &str, name: &str) -> String {
    let start = xml.find(&format!("<{tag} ")).unwrap();
    let element = &xml[start..start + xml[start..].find('>').unwrap()];
    let at = element
        .find(&format!(" {name}=\""))
        .map(|i| i + name.len() + 3);
    at.map_or("0".to_string(), |i| {
        element[i..i + element[i..].find('"').unwrap()].to_string()
    })
}

/// A dataplane that matches on some cases, differs on others, fails as a
/// driver on one, and one case whose reference fails: the terminal, junit.xml,
/// conform.json (and its per-case files) and report.html give the same
/// counts and the same verdict line, and each case the same mark.
#[test]
fn every_report_of_a_differing_dataplane_gives_the_same_counts() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let driver = buggy_driver(dir.path());
    let reports = dir.path().join("reports");
    let _turn = one_at_a_time();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fip-harness"))
        .args(["conform", "--jobs", "4", "--explore-time", "0s", "--filter"])
        .arg("^(from-external-v4|from-external-v6|several-floating-ips-one-pod|move-on-one-node-strict|icmp-external-v4)$")
        .arg("--dataplane")
        .arg(format!("exec:{}", driver.display()))
        .arg("--report-dir")
        .arg(&reports)
        .env(fip_harness::runner::PANIC_IN_CASE_ENV, "icmp-external-v4")
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "{stdout}");
    let json: ConformReport =
        serde_json::from_str(&std::fs::read_to_string(reports.join("conform.json")).unwrap())
            .unwrap();
    let counts = &json.counts;
    // Every verdict is there at least once (the kept-lab case of
    // from-external-v4 is the sixth case, and matches).
    assert_eq!(
        (
            counts.cases,
            counts.matches,
            counts.differs,
            counts.driver_errors,
            counts.not_judged
        ),
        (6, 3, 1, 1, 1),
        "{stdout}"
    );
    // The terminal prints the counts line and the verdict line.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&counts.line().as_str()), "{stdout}");
    assert!(lines.contains(&json.verdict.as_str()), "{stdout}");
    case_files_agree_with_the_counts(&json, &reports);
    junit_agrees_with_the_counts(&json, &reports);
    the_page_agrees_with_the_counts(&json, &reports);
}

/// `text` as it reads inside XML and HTML.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// conform.json's entries, and each case's own file, say the same.
fn case_files_agree_with_the_counts(json: &ConformReport, reports: &Path) {
    let counts = &json.counts;
    let marks = |verdict: &str| {
        json.cases
            .iter()
            .filter(|c| verdict_key(&c.verdict) == verdict)
            .count()
    };
    assert_eq!(
        [
            marks("matches"),
            marks("differs"),
            marks("driver-error"),
            marks("not-judged")
        ],
        [
            counts.matches,
            counts.differs,
            counts.driver_errors,
            counts.not_judged
        ]
    );
    for case in &json.cases {
        let detail: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(reports.join(&case.detail)).unwrap())
                .unwrap();
        assert_eq!(detail["name"], case.name.as_str());
        assert_eq!(
            detail["verdict"],
            serde_json::to_value(&case.verdict).unwrap()["verdict"]
        );
    }
}

/// junit.xml: tests, failures, errors and skipped, and both lines.
fn junit_agrees_with_the_counts(json: &ConformReport, reports: &Path) {
    let counts = &json.counts;
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let suite = |name| {
        attribute(&junit, "testsuite", name)
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(
        [
            suite("tests"),
            suite("failures"),
            suite("errors"),
            suite("disabled")
        ],
        [
            counts.cases,
            counts.differs,
            counts.driver_errors,
            counts.not_judged
        ],
        "{junit}"
    );
    assert_eq!(junit.matches("<skipped").count(), counts.not_judged);
    assert!(
        junit.contains(&format!("value=\"{}\"", escaped(&json.verdict))),
        "{junit}"
    );
    assert!(
        junit.contains(&format!("value=\"{}\"", escaped(&counts.line()))),
        "{junit}"
    );
}

/// report.html: the verdict is the headline, the counts line below it, and
/// each case's section carries its mark.
fn the_page_agrees_with_the_counts(json: &ConformReport, reports: &Path) {
    let counts = &json.counts;
    let html = std::fs::read_to_string(reports.join("report.html")).unwrap();
    assert!(
        html.contains(&format!(">{}</h1>", escaped(&json.verdict))),
        "no verdict headline"
    );
    assert!(html.contains(&format!(
        "<p id=\"counts\" class=\"counts\">{}</p>",
        counts.line()
    )));
    // A case's row and its section each carry its mark.
    let sections = |mark: &str| {
        html.matches(&format!("data-case data-mark=\"{mark}\""))
            .count()
            / 2
    };
    assert_eq!(
        [
            sections("matches"),
            sections("differs"),
            sections("driver-error"),
            sections("not-judged")
        ],
        [
            counts.matches,
            counts.differs,
            counts.driver_errors,
            counts.not_judged
        ]
    );
    // The difference is on the page, both runs side by side.
    assert!(html.contains("<div class=\"side-by-side\">"));
    // In a browser, the mark filter set from the address shows the one case
    // that differs, and the page's script runs cleanly.
    let opened = chromium(&reports.join("report.html"), "#mark=differs", None);
    assert_eq!(script_trouble(&opened), Vec::<String>::new());
    assert!(opened
        .dom
        .contains(&format!("1 of {} cases shown", counts.cases)));
}

fn verdict_key(verdict: &CaseVerdict) -> &'static str {
    match verdict {
        CaseVerdict::Matches => "matches",
        CaseVerdict::Differs { .. } => "differs",
        CaseVerdict::DriverError { .. } => "driver-error",
        CaseVerdict::ReferenceFailed { .. } => "not-judged",
    }
}

/// The table of docs/driver-protocol.md's "What `conform` exercises": (item,
/// the cases it names, or `None` for a row that says never).
fn protocol_table() -> Vec<(String, Option<Vec<String>>)> {
    let page = std::fs::read_to_string(repo().join("docs/driver-protocol.md")).unwrap();
    let section = &page[page
        .find("## What `conform` exercises")
        .expect("the section")..];
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix("| `")?.split(" | ").collect();
            let item = cells[0].trim_end_matches('`').to_string();
            let cases = cells.get(1)?.trim_end_matches(" |");
            let named = (!cases.starts_with("never")).then(|| {
                cases
                    .split(", ")
                    .map(|c| c.trim_matches('`').to_string())
                    .collect()
            });
            Some((item, named))
        })
        .collect()
}

/// `conform` of a driver that owns conntrack, on the cases the table in
/// docs/driver-protocol.md names: every message and field value of the
/// protocol is in the table, each row's cases exercise it in the run, and
/// the rows that say never are exactly the ones the run did not exercise.
#[test]
fn conform_exercises_the_driver_protocol_as_its_table_says() {
    need_root();
    let table = protocol_table();
    let items: Vec<&str> = fip_harness::driver::usage::ITEMS
        .iter()
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        table.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
        items,
        "the table lists every item, in order"
    );
    let scenarios: BTreeSet<String> = table
        .iter()
        .flat_map(|(_, cases)| cases.iter().flatten())
        .map(|c| c.split("::").next().unwrap().to_string())
        .collect();
    let filter = format!(
        "^({})$",
        scenarios.into_iter().collect::<Vec<_>>().join("|")
    );
    let driver = format!(
        "exec:{} driver nftables --own-conntrack",
        env!("CARGO_BIN_EXE_fip-harness")
    );
    let dir = tempfile::tempdir().unwrap();
    let (success, stdout, report) =
        conform(dir.path(), &["--dataplane", &driver, "--filter", &filter]);
    assert!(success, "{stdout}");
    assert!(
        stdout.contains("driver protocol: 27/30 messages and values exercised"),
        "{stdout}"
    );
    let run = report
        .protocol
        .expect("conform.json lists the protocol's items");
    for ((item, named), used) in table.iter().zip(&run) {
        assert_eq!(item, &used.item);
        match named {
            Some(cases) => {
                for case in cases {
                    assert!(
                        used.cases.contains(case),
                        "{item}: not by {case} ({:?})",
                        used.cases
                    );
                }
            }
            None => assert!(
                used.cases.is_empty(),
                "{item} was exercised: {:?}",
                used.cases
            ),
        }
    }
}
