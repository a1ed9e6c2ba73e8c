//! `report.html`: one self-contained page (inline CSS, script and SVG, nothing
//! fetched) with the run's summary, a table of cases filterable by tag, status
//! and backend, and a section per case (see `html_case`).
//!
//! Filters live in the page's address too (`report.html#status=failed`), so a
//! link can open the report on the failures; the script marks `<body
//! data-ready>` once it has run, and records any script error on `<html
//! data-js-errors>`, so a headless browser's DOM dump shows both.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::escape::escape;
use super::html_case::{case_attributes, case_section, status_of};
use super::summary::RunSummary;
use crate::check::ScenarioResult;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// Set before any other script runs, so even a script that fails to parse
/// leaves its error in the DOM.
const ERROR_TRAP: &str = "window.addEventListener('error', function (e) { \
    var el = document.documentElement; \
    el.setAttribute('data-js-errors', (el.getAttribute('data-js-errors') || '') + e.message + ';'); });";

/// The whole report of `summary`, titled `title` (e.g. `fip-harness run`).
pub fn render_html(summary: &RunSummary, title: &str) -> String {
    let mut page = page_start(title);
    page.push_str(&header(summary, title));
    page.push_str(&filters(&summary.scenarios));
    page.push_str(&case_table(&summary.scenarios));
    for (i, case) in summary.scenarios.iter().enumerate() {
        page.push_str(&case_section(case, i));
    }
    page.push_str(&page_end());
    page
}

/// A page's start, titled `title`: its style, and the trap for script errors
/// before any other script.
pub(super) fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n<script>{ERROR_TRAP}</script>\n</head>\n<body>\n",
        escape(title)
    )
}

/// A page's end: the filter script, which runs once every case is there.
pub(super) fn page_end() -> String {
    format!("<script>\n{SCRIPT}</script>\n</body>\n</html>\n")
}

fn header(summary: &RunSummary, title: &str) -> String {
    let mut out = String::new();
    let verdict = if summary.failed == 0 && summary.interrupted.is_none() {
        "passed"
    } else {
        "failed"
    };
    let _ = write!(
        out,
        "<header>\n<h1>{}</h1>\n<p class=\"totals {verdict}\">{} case(s): {} passed, {} failed, in {:.1} s</p>\n",
        escape(title),
        summary.scenarios.len(),
        summary.passed,
        summary.failed,
        summary.duration_ms as f64 / 1000.0
    );
    if let Some(interrupted) = &summary.interrupted {
        let line = interrupted.line(summary.scenarios.len());
        let _ = writeln!(
            out,
            "<p class=\"interrupted failed\">{}: the other cases did not run</p>",
            escape(&line)
        );
    }
    let routings: BTreeSet<&str> = summary
        .scenarios
        .iter()
        .map(|s| s.head.routing.as_str())
        .collect();
    if !summary.median_convergence_ms.is_empty() {
        out.push_str("<p class=\"convergence\">median move convergence:");
        for (backend, median) in &summary.median_convergence_ms {
            let _ = write!(out, " <b>{}</b> {median:.1} ms", escape(backend));
        }
        let routing: Vec<&str> = routings.into_iter().collect();
        let _ = writeln!(out, " ({} routing)</p>", escape(&routing.join(", ")));
    }
    out.push_str("</header>\n");
    out
}

/// The three filters, each listing the values the run has.
fn filters(cases: &[ScenarioResult]) -> String {
    let tags: BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.head.tags.iter().map(String::as_str))
        .collect();
    let statuses: BTreeSet<&str> = cases.iter().map(status_of).collect();
    let backends: BTreeSet<&str> = cases.iter().map(|c| c.head.backend.as_str()).collect();
    let mut out = String::from("<nav class=\"filters\">\n");
    for (name, values) in [("tag", tags), ("status", statuses), ("backend", backends)] {
        let _ = write!(
            out,
            "<label>{name} <select id=\"filter-{name}\" data-filter=\"{name}\"><option value=\"\">all</option>"
        );
        for value in values {
            let value = escape(value);
            let _ = write!(out, "<option value=\"{value}\">{value}</option>");
        }
        out.push_str("</select></label>\n");
    }
    let _ = write!(
        out,
        "<span id=\"shown\">{0} of {0} cases shown</span>\n</nav>\n",
        cases.len()
    );
    out
}

fn case_table(cases: &[ScenarioResult]) -> String {
    let mut out = String::from(
        "<table id=\"cases\">\n<thead><tr><th>case</th><th>backend</th><th>profile</th>\
         <th>routing</th><th>status</th><th>time</th><th>moves</th><th>tags</th></tr></thead>\n<tbody>\n",
    );
    for (i, case) in cases.iter().enumerate() {
        let status = status_of(case);
        let moves: Vec<String> = case
            .migrations
            .iter()
            .map(|m| match m.figures.convergence_ms {
                Some(ms) => format!("{ms:.1} ms"),
                None => "never".into(),
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr {}><td><a href=\"#case-{i}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"status {status}\">{status}</td><td>{:.2} s</td><td>{}</td><td>{}</td></tr>",
            case_attributes(case),
            escape(&case.head.name),
            escape(&case.head.backend),
            escape(&case.head.profile),
            escape(&case.head.routing),
            case.head.duration_ms as f64 / 1000.0,
            escape(&moves.join(", ")),
            escape(&case.head.tags.join(" ")),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Outcome;
    use crate::report::test_data::{failed_case, moved_case};

    #[test]
    fn filters_and_table_list_what_the_run_has() {
        let mut errored = failed_case();
        errored.head.name = "lab-broke".into();
        errored.head.backend = "iptables".into();
        errored.head.outcome = Outcome::Error {
            reason: "building the lab: no <bird>".into(),
        };
        let cases = vec![failed_case(), moved_case(), errored];
        insta::assert_snapshot!(format!("{}{}", filters(&cases), case_table(&cases)));
    }

    #[test]
    fn the_page_is_whole_and_fetches_nothing() {
        let summary = RunSummary::new(vec![failed_case(), moved_case()], 2_500);
        let page = render_html(&summary, "fip-harness run");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.trim_end().ends_with("</html>"));
        // Self-contained: no external script, style, image or font.
        for fetch in ["src=", "<link", "@import", "url(http", "href=\"http"] {
            assert!(!page.contains(fetch), "page fetches with {fetch}");
        }
        // The trap for script errors comes before the report's own script.
        let trap = page.find("data-js-errors").unwrap();
        let script = page.find(SCRIPT).unwrap();
        assert!(trap < script);
        insta::assert_snapshot!(header(&summary, "fip-harness run"));
    }
}
