//! One case's section of `report.html`: verdict and reason, each step with
//! its checks in the expected-against-actual form the terminal prints
//! (`check::render_table`, wrong lines marked), the plot of every move under
//! a stream, and the pictures of the lab.

use std::fmt::Write;

use super::escape::escape;
use super::lab_svg::lab_svg;
use super::plot::migration_svg;
use crate::check::{Outcome, ScenarioResult, StepResult};

/// `passed`, `failed` (an expectation was not met) or `error` (the harness
/// could not run the case).
pub(super) fn status_of(case: &ScenarioResult) -> &'static str {
    match case.head.outcome {
        Outcome::Passed => "passed",
        Outcome::Failed { .. } => "failed",
        Outcome::Error { .. } => "error",
    }
}

/// The section of case number `i` (its anchor is `case-<i>`). A failing case
/// starts open, a passing one folded.
pub(super) fn case_section(case: &ScenarioResult, i: usize) -> String {
    let status = status_of(case);
    let mut out = String::new();
    let open = if case.head.outcome.is_pass() {
        ""
    } else {
        " open"
    };
    let _ = write!(
        out,
        "<section class=\"case\" id=\"case-{i}\" {}>\n<details{open}>\n<summary>\
         <span class=\"status {status}\">{}</span> <b>{}</b> <span class=\"dim\">{} &middot; {} profile &middot; {} routing &middot; {:.2} s</span></summary>\n",
        case_attributes(case),
        status.to_uppercase(),
        escape(&case.case_name()),
        escape(&case.head.file.display().to_string()),
        escape(&case.head.profile),
        escape(&case.head.routing),
        case.head.duration_ms as f64 / 1000.0
    );
    out.push_str(&case_body(case, &format!("c{i}")));
    out.push_str("</details>\n</section>\n");
    out
}

/// What a case's section holds below its summary line: the reason, a kept
/// lab, the steps with their checks, the plot of every move and the pictures
/// of the lab. `key` makes the pictures' element ids unique in the page.
pub(super) fn case_body(case: &ScenarioResult, key: &str) -> String {
    let mut out = String::new();
    if let Outcome::Failed { reason } | Outcome::Error { reason } = &case.head.outcome {
        let _ = writeln!(out, "<p class=\"reason\">{}</p>", escape(reason));
    }
    if let Some(lab) = &case.kept_lab {
        let _ = writeln!(
            out,
            "<p class=\"kept\">lab <code>{0}</code> was kept: <code>fip-harness state {0}</code>, \
             <code>fip-harness exec {0} &lt;member&gt; -- &lt;command&gt;</code>, <code>fip-harness down {0}</code></p>",
            escape(lab)
        );
    }
    if !case.steps.is_empty() {
        out.push_str("<h3>Steps</h3>\n<ol class=\"steps\">\n");
        for step in &case.steps {
            out.push_str(&step_item(case, step));
        }
        out.push_str("</ol>\n");
    }
    if !case.migrations.is_empty() {
        out.push_str("<h3>Moves under a stream</h3>\n");
        for migration in &case.migrations {
            let plot = match migration_svg(migration) {
                Ok(svg) => svg,
                Err(error) => {
                    tracing::warn!(%error, "a migration plot");
                    format!("<p class=\"error\">{}</p>", escape(&error.to_string()))
                }
            };
            let _ = writeln!(out, "<figure class=\"plot\">{plot}</figure>");
        }
    }
    if !case.lab_pictures.is_empty() {
        out.push_str("<h3>The lab</h3>\n<div class=\"pictures\">\n");
        for (j, picture) in case.lab_pictures.iter().enumerate() {
            let _ = writeln!(
                out,
                "<figure class=\"lab-picture\"><figcaption>{}</figcaption>{}</figure>",
                escape(&picture.moment),
                lab_svg(picture, &format!("{key}p{j}"))
            );
        }
        out.push_str("</div>\n");
    }
    out
}

fn step_item(case: &ScenarioResult, step: &StepResult) -> String {
    let class = if step.passed { "passed" } else { "failed" };
    let mut out = format!(
        "<li class=\"step {class}\" value=\"{}\"><span class=\"what\">{}</span>",
        step.index + 1,
        escape(&step.summary)
    );
    if step.attempts > 1 {
        let _ = write!(
            out,
            " <span class=\"dim\">({} attempts)</span>",
            step.attempts
        );
    }
    if let Some(message) = step.message.as_ref().filter(|m| !case.reason_says(m)) {
        let _ = write!(out, "<p class=\"message\">{}</p>", escape(message));
    }
    if !step.lines.is_empty() {
        out.push_str(&checks_pre(&crate::check::render_table(&step.lines)));
    }
    if let Some(bundle) = &step.diagnostics {
        let _ = write!(
            out,
            "<p class=\"bundle\">diagnostics bundle: <code>{}</code></p>",
            escape(&bundle.display().to_string())
        );
    }
    out.push_str("</li>\n");
    out
}

/// Check lines as the terminal prints them, in a `<pre>` with the `<----
/// WRONG` lines and the `<---- EXPECTED` values marked.
pub(super) fn checks_pre(text: &str) -> String {
    let mut out = String::from("<pre class=\"checks\">");
    for line in text.lines() {
        let class = if line.contains("<---- WRONG") {
            "wrong"
        } else if line.contains("<---- EXPECTED") {
            "expected"
        } else {
            "right"
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(line));
    }
    out.push_str("</pre>");
    out
}

/// The attributes the filter script reads, on both a case's row and section.
pub(super) fn case_attributes(case: &ScenarioResult) -> String {
    format!(
        "data-case data-tags=\"{}\" data-status=\"{}\" data-backend=\"{}\"",
        escape(&case.head.tags.join(" ")),
        status_of(case),
        escape(&case.head.backend)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_data::{failed_case, moved_case};

    #[test]
    fn a_failing_case_shows_its_checks_and_pictures() {
        insta::assert_snapshot!(case_section(&failed_case(), 0));
    }

    #[test]
    fn a_moved_case_has_its_plot() {
        let section = case_section(&moved_case(), 1);
        assert!(!section.contains("<details open>"), "a pass starts folded");
        let plot = section.find("<figure class=\"plot\"><svg").expect("a plot");
        assert!(section[plot..].contains("move starts 3.0 ms"));
    }
}
