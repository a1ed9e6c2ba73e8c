//! A case that is not a match, for people: the two runs side by side where
//! they part. The terminal and junit.xml print it as labelled lines, the page
//! as two columns; both come from [`side_by_side`], so they show the same.

use std::fmt::Write;

use crate::check::render_table;
use crate::check::Difference;
use crate::check::{CaseVerdict, ConformCase};
use crate::report::{ScenarioResult, SideBySide};

/// Where the vendor's run (`dataplane`) and the reference's part, each run's
/// check lines there (or the moves' convergence); `None` unless the case
/// differs.
pub fn side_by_side(case: &ConformCase, dataplane: &str, reference: &str) -> Option<SideBySide> {
    let CaseVerdict::Differs { at, .. } = &case.verdict else {
        return None;
    };
    let runs = [
        (dataplane, &case.vendor_result),
        (reference, &case.reference_result),
    ];
    let (heading, columns) = match at {
        Difference::Step(index) => {
            let summary = [&case.vendor_result, &case.reference_result]
                .iter()
                .find_map(|r| r.steps.iter().find(|s| s.index == *index))
                .map_or("", |s| s.summary.as_str());
            let columns = runs
                .iter()
                .map(|(name, result)| (name.to_string(), step_text(result, *index)))
                .collect();
            (format!("step {}: {summary}", index + 1), columns)
        }
        Difference::Moves => {
            let columns = runs
                .iter()
                .map(|(name, result)| (name.to_string(), moves_text(result)))
                .collect();
            ("moves under a stream".to_string(), columns)
        }
    };
    Some(SideBySide { heading, columns })
}

/// What a run shows at step `index`: its check lines and message, or whether
/// it passed, or that it never got there.
fn step_text(result: &ScenarioResult, index: usize) -> String {
    let Some(step) = result.steps.iter().find(|s| s.index == index) else {
        return "(not reached: an earlier step failed)\n".to_string();
    };
    let mut text = render_table(&step.lines);
    if let Some(message) = &step.message {
        text.push_str(message);
        text.push('\n');
    }
    if text.is_empty() {
        text = format!("{}\n", if step.passed { "passed" } else { "failed" });
    }
    text
}

fn moves_text(result: &ScenarioResult) -> String {
    let mut text = String::new();
    for m in &result.migrations {
        let converged = m
            .figures
            .convergence_ms
            .map_or("never reached the new pod".to_string(), |ms| {
                format!("converged in {ms:.1} ms")
            });
        let _ = writeln!(
            text,
            "move of stream {} {} -> {}: {converged}",
            m.stream, m.from_pod, m.to_pod
        );
    }
    if text.is_empty() {
        text.push_str("(no move under a stream)\n");
    }
    text
}

/// One case that is not a match, as the terminal and junit.xml print it: its
/// mark and, where the runs part, each run's lines one above the other,
/// labelled by dataplane.
pub(super) fn render_case(out: &mut String, case: &ConformCase, dataplane: &str, reference: &str) {
    match &case.verdict {
        CaseVerdict::Matches => {}
        CaseVerdict::DriverError { reason } => {
            let _ = writeln!(out, "DRIVER ERROR {}: {reason}", case.name);
        }
        CaseVerdict::ReferenceFailed { reason } => {
            let _ = writeln!(
                out,
                "NOT JUDGED {}: the reference ({reference}) failed: {reason}",
                case.name
            );
        }
        CaseVerdict::Differs {
            profile_decides, ..
        } => {
            let whose = match profile_decides {
                true => " (in a flow kept across a change: the conntrack profile decides)",
                false => "",
            };
            let _ = writeln!(out, "DIFFERS {}{whose}:", case.name);
            let Some(difference) = side_by_side(case, dataplane, reference) else {
                return;
            };
            let _ = writeln!(out, "  {}", difference.heading);
            let width = dataplane.len().max(reference.len());
            for (name, text) in &difference.columns {
                for (i, line) in text.lines().enumerate() {
                    let label = if i == 0 { name.as_str() } else { "" };
                    let _ = writeln!(out, "    {label:<width$} | {line}");
                }
            }
        }
    }
}
