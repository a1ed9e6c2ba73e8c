//! The page of a comparison of two dataplanes (`conform`): its headline is the
//! verdict line the terminal prints, then the counts line, then every case
//! marked matches / differs / driver error / not judged, with the two runs
//! side by side where they part and each run's steps, plots and lab pictures
//! folded below. A case that meets every written expectation but observes
//! otherwise than the reference is marked `differs`, never `passed`: the
//! page says what the comparison found, not what each run's checks said.
//!
//! Rendered from a [`ComparisonPage`] that the comparing command fills in, so
//! the page and the terminal print the same verdict and counts texts.

use std::fmt::Write;
use std::path::PathBuf;

use super::escape::escape;
use super::html::{page_end, page_start};
use super::html_case::{case_body, checks_pre, status_of};
use crate::check::ScenarioResult;

/// How one case of a comparison came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Matches,
    Differs,
    DriverError,
    NotJudged,
}

impl Mark {
    pub const ALL: [Mark; 4] = [
        Mark::Matches,
        Mark::Differs,
        Mark::DriverError,
        Mark::NotJudged,
    ];

    /// The mark as people read it (`driver error`).
    pub fn label(self) -> &'static str {
        match self {
            Mark::Matches => "matches",
            Mark::Differs => "differs",
            Mark::DriverError => "driver error",
            Mark::NotJudged => "not judged",
        }
    }

    /// The mark as a CSS class and filter value (`driver-error`).
    pub fn key(self) -> &'static str {
        match self {
            Mark::Matches => "matches",
            Mark::Differs => "differs",
            Mark::DriverError => "driver-error",
            Mark::NotJudged => "not-judged",
        }
    }
}

/// Where two runs part: a heading (`step 3: send icmp ...`) and each run's
/// text there, labelled by its dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideBySide {
    pub heading: String,
    pub columns: Vec<(String, String)>,
}

/// One case of the comparison.
#[derive(Clone, Debug)]
pub struct ComparedCase<'a> {
    pub name: String,
    pub file: PathBuf,
    pub profile: String,
    pub mark: Mark,
    /// Why the case is a driver error or not judged.
    pub reason: Option<String>,
    pub difference: Option<SideBySide>,
    /// The runs compared, the dataplane under test first.
    pub runs: Vec<&'a ScenarioResult>,
}

/// A whole comparison, as its command prints it.
#[derive(Clone, Debug)]
pub struct ComparisonPage<'a> {
    pub title: String,
    /// The verdict line, word for word as the terminal prints it.
    pub verdict: String,
    /// The verdict is a pass.
    pub passed: bool,
    /// The counts line, word for word as the terminal prints it.
    pub counts: String,
    pub cases: Vec<ComparedCase<'a>>,
}

/// The page of `comparison`.
pub fn render_comparison_html(comparison: &ComparisonPage) -> String {
    let mut page = page_start(&comparison.title);
    let verdict_class = if comparison.passed {
        "passed"
    } else {
        "failed"
    };
    let _ = write!(
        page,
        "<header>\n<h1 id=\"verdict\" class=\"verdict {verdict_class}\">{}</h1>\n\
         <p class=\"dim\">{}</p>\n<p id=\"counts\" class=\"counts\">{}</p>\n</header>\n",
        escape(&comparison.verdict),
        escape(&comparison.title),
        escape(&comparison.counts)
    );
    page.push_str(&filters(&comparison.cases));
    page.push_str(&case_table(&comparison.cases));
    for (i, case) in comparison.cases.iter().enumerate() {
        page.push_str(&case_section(case, i));
    }
    page.push_str(&page_end());
    page
}

fn attributes(case: &ComparedCase) -> String {
    format!(
        "data-case data-mark=\"{}\" data-profile=\"{}\"",
        case.mark.key(),
        escape(&case.profile)
    )
}

fn filters(cases: &[ComparedCase]) -> String {
    let mut profiles: Vec<&str> = cases.iter().map(|c| c.profile.as_str()).collect();
    profiles.sort_unstable();
    profiles.dedup();
    let mut out = String::from("<nav class=\"filters\">\n");
    out.push_str("<label>mark <select id=\"filter-mark\" data-filter=\"mark\"><option value=\"\">all</option>");
    for mark in Mark::ALL {
        let _ = write!(
            out,
            "<option value=\"{}\">{}</option>",
            mark.key(),
            mark.label()
        );
    }
    out.push_str("</select></label>\n<label>profile <select id=\"filter-profile\" data-filter=\"profile\"><option value=\"\">all</option>");
    for profile in profiles {
        let _ = write!(out, "<option value=\"{0}\">{0}</option>", escape(profile));
    }
    let _ = write!(
        out,
        "</select></label>\n<span id=\"shown\">{0} of {0} cases shown</span>\n</nav>\n",
        cases.len()
    );
    out
}

/// Where a case parts from the reference, or why it was not compared.
fn what(case: &ComparedCase) -> String {
    match (&case.difference, &case.reason) {
        (Some(difference), _) => difference.heading.clone(),
        (None, Some(reason)) => reason.clone(),
        (None, None) => String::new(),
    }
}

fn case_table(cases: &[ComparedCase]) -> String {
    let mut out = String::from(
        "<table id=\"cases\">\n<thead><tr><th>case</th><th>profile</th><th>mark</th>\
         <th>where</th></tr></thead>\n<tbody>\n",
    );
    for (i, case) in cases.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr {}><td><a href=\"#case-{i}\">{}</a></td><td>{}</td>\
             <td class=\"mark {}\">{}</td><td>{}</td></tr>",
            attributes(case),
            escape(&case.name),
            escape(&case.profile),
            case.mark.key(),
            case.mark.label(),
            escape(&what(case)),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn case_section(case: &ComparedCase, i: usize) -> String {
    let open = if case.mark == Mark::Matches {
        ""
    } else {
        " open"
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"case\" id=\"case-{i}\" {}>\n<details{open}>\n<summary>\
         <span class=\"mark {}\">{}</span> <b>{}</b> <span class=\"dim\">{} &middot; {} profile</span></summary>\n",
        attributes(case),
        case.mark.key(),
        case.mark.label().to_uppercase(),
        escape(&case.name),
        escape(&case.file.display().to_string()),
        escape(&case.profile),
    );
    if let Some(reason) = &case.reason {
        let _ = writeln!(out, "<p class=\"reason\">{}</p>", escape(reason));
    }
    if let Some(difference) = &case.difference {
        let _ = write!(
            out,
            "<h3>Where the runs part: {}</h3>\n<div class=\"side-by-side\">\n",
            escape(&difference.heading)
        );
        for (label, text) in &difference.columns {
            let _ = writeln!(
                out,
                "<div class=\"run-column\"><h4>{}</h4>{}</div>",
                escape(label),
                checks_pre(text)
            );
        }
        out.push_str("</div>\n");
    }
    for (j, run) in case.runs.iter().enumerate() {
        let _ = write!(
            out,
            "<details class=\"run\"><summary>the run on <b>{}</b>: <span class=\"status {1}\">{1}</span> \
             <span class=\"dim\">{2:.2} s</span></summary>\n{3}</details>\n",
            escape(&run.head.backend),
            status_of(run),
            run.head.duration_ms as f64 / 1000.0,
            case_body(run, &format!("c{i}r{j}")),
        );
    }
    out.push_str("</details>\n</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_data::{failed_case, moved_case};

    #[test]
    fn the_headline_is_the_verdict_and_each_case_carries_its_mark() {
        let (vendor, reference) = (failed_case(), moved_case());
        let page = ComparisonPage {
            title: "fip-harness conform: mutant:x against nftables".into(),
            verdict: "NOT conformant with Calico floating-IP semantics: 0/1 cases".into(),
            passed: false,
            counts: "2 case(s): 0 match, 1 differ, 1 driver error, 0 not judged".into(),
            cases: vec![
                ComparedCase {
                    name: "wrong-pod".into(),
                    file: "scenarios/wrong-pod.yaml".into(),
                    profile: "calico".into(),
                    mark: Mark::Differs,
                    reason: None,
                    difference: Some(SideBySide {
                        heading: "step 2: send icmp client -> 203.0.113.10".into(),
                        columns: vec![
                            ("mutant:x".into(), "a -> b icmp   <---- WRONG\n".into()),
                            ("nftables".into(), "a -> b icmp\n".into()),
                        ],
                    }),
                    runs: vec![&vendor, &reference],
                },
                ComparedCase {
                    name: "move".into(),
                    file: "scenarios/move.yaml".into(),
                    profile: "strict".into(),
                    mark: Mark::DriverError,
                    reason: Some("the driver <x> exited".into()),
                    difference: None,
                    runs: vec![],
                },
            ],
        };
        let html = render_comparison_html(&page);
        let headline = html.find("<h1 id=\"verdict\"").unwrap();
        assert!(html[headline..].starts_with(
            "<h1 id=\"verdict\" class=\"verdict failed\">NOT conformant with Calico floating-IP semantics: 0/1 cases</h1>"
        ));
        assert_eq!(
            html.matches("data-mark=\"differs\"").count(),
            2,
            "row and section"
        );
        let start = html.find("<table id=\"cases\">").unwrap();
        let end = html.find("</table>").unwrap();
        insta::assert_snapshot!(&html[start..end]);
        let side = html.find("<div class=\"side-by-side\">").unwrap();
        let side_end = side + html[side..].find("</div>\n</div>").unwrap();
        insta::assert_snapshot!(&html[side..side_end]);
        assert!(html.contains("<p class=\"reason\">the driver &lt;x&gt; exited</p>"));
        // Each run's own steps and pictures are there, folded, with unique ids.
        assert!(html.contains("the run on <b>nftables</b>: <span class=\"status passed\">"));
        assert!(html.contains("id=\"c0r0p0"), "the vendor run's lab picture");
    }
}
