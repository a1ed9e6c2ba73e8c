//! report.html in a real browser (root: the cases build labs). `run` on a case
//! whose expectation is wrong and on a move under a stream writes report.html;
//! headless Chromium opens it, and its DOM after the page's script ran must
//! show no script error, the failing check, the move's plot and pictures of
//! both labs, and the status filter must hide the passing case. The report, the
//! DOM and a screenshot stay under target/tmp/report-html/ for people to see.

mod common;

use std::path::{Path, PathBuf};

use common::browser::{chromium, script_trouble};
use common::{harness, repo};

/// A catalogue scenario written to `dir` with its fixtures found and its text
/// changed by `edits`.
fn scenario(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let fixtures = repo().join("fixtures").canonicalize().unwrap();
    let mut text = std::fs::read_to_string(repo().join(format!("scenarios/{name}.yaml")))
        .unwrap()
        .replace("../fixtures", fixtures.to_str().unwrap());
    for (from, to) in edits {
        assert!(text.contains(from), "{name} has no `{from}`");
        text = text.replace(from, to);
    }
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn the_detector_sees_a_broken_script() {
    // The checks below can fail: a page whose script throws is caught both
    // by the console and by the trap report.html installs first.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    let report = std::fs::read_to_string(repo().join("harness/src/report/report.js")).unwrap();
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><head><script>window.addEventListener('error', function (e) {{ \
             document.documentElement.setAttribute('data-js-errors', e.message); }});</script></head>\
             <body><span id=\"shown\"></span><script>nosuchfunction();</script><script>{report}</script></body></html>"
        ),
    )
    .unwrap();
    let rendered = chromium(&page, "", None);
    let trouble = script_trouble(&rendered);
    assert!(
        trouble.iter().any(|t| t.contains("nosuchfunction")),
        "{trouble:?}"
    );
}

#[test]
fn report_html_renders_the_failure_the_plot_and_the_labs() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    scenario(
        &scenarios,
        "icmp-external-v4",
        &[
            ("name: icmp-external-v4", "name: wrong-reply-source"),
            ("replySource: 203.0.113.10", "replySource: 203.0.113.99"),
        ],
    );
    scenario(&scenarios, "move-across-nodes", &[]);
    let reports = dir.path().join("reports");
    // The model refuses the wrong expectation: skip its check to run it.
    let run = harness(&[
        "run",
        "--skip-model-check",
        scenarios.to_str().unwrap(),
        "--backend",
        "nftables",
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(said.contains("1 passed, 1 failed"), "{said}");
    assert!(said.contains("report.html"), "run names the report: {said}");

    // Kept for people, whatever the outcome below.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    std::fs::create_dir_all(&artifacts).unwrap();
    let page = artifacts.join("report.html");
    std::fs::copy(reports.join("report.html"), &page).unwrap();

    let opened = chromium(&page, "#open=all", None);
    std::fs::write(artifacts.join("dom.html"), &opened.dom).unwrap();
    assert_eq!(script_trouble(&opened), Vec::<String>::new());
    let dom = &opened.dom;
    // The failing check, in the expected-against-actual form.
    assert!(
        dom.contains("<span class=\"wrong\">client -&gt; 203.0.113.10 icmp:"),
        "no wrong line in {}",
        artifacts.display()
    );
    assert!(dom.contains("reply source: 203.0.113.10   &lt;---- EXPECTED 203.0.113.99"));
    // One plot, for the one move under a stream, drawn with its marks.
    assert_eq!(dom.matches("<figure class=\"plot\"><svg").count(), 1);
    assert!(dom.contains("move starts"));
    assert!(dom.contains("stream s1 (icmp): web-a -&gt; web-b"));
    // Lab pictures: the failing case's, and the move case's before and after.
    let pictures = dom.matches("<svg class=\"lab\"").count();
    assert!(pictures >= 3, "{pictures} lab pictures");
    assert!(dom.contains("after step 5 (remove floatingIPs from web-a)"));
    assert!(dom.contains("holds 203.0.113.10"));
    assert!(
        dom.contains("203.0.113.10/32 -&gt; node-b"),
        "the fabric's route after the move"
    );

    // The status filter, set from the address, hides the passing case.
    let failed_only = chromium(&page, "#status=failed", None);
    assert_eq!(script_trouble(&failed_only), Vec::<String>::new());
    assert!(failed_only.dom.contains("1 of 2 cases shown"));
    assert!(failed_only
        .dom
        .contains("<tr data-case=\"\" data-tags=\"move icmp ipv4 external\" data-status=\"passed\" data-backend=\"nftables\" hidden=\"\">"));

    let screenshot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(&page, "#open=all", Some(&screenshot));
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no screenshot at {}", screenshot.display());
}
