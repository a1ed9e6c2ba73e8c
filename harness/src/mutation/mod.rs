//! The mutation score: run the catalogue against every mutant
//! (`crate::mutant`), several cases at a time, and stop running a mutant's
//! cases as soon as one kills it. Above the runner, which the mutants sit
//! below (its dataplane choice wraps them in).

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::check::{Outcome, ScenarioResult};
use crate::mutant::Mutant;
use crate::runner::{self, DataplaneChoice, PlannedCase, RunOptions};

/// What the catalogue did to one mutant.
#[derive(Clone, Debug)]
pub struct MutantVerdict {
    pub mutant: &'static Mutant,
    /// The case that failed on it (the earliest in catalogue order among
    /// those that ran) and its failure text; `None`: it survived.
    pub killed_by: Option<(String, String)>,
    /// Cases the harness could not run (lab or dataplane errors): not kills.
    pub errors: Vec<(String, String)>,
    pub cases_run: usize,
}

/// Mutants killed and mutants in all.
pub fn mutation_score(verdicts: &[MutantVerdict]) -> (usize, usize) {
    let killed = verdicts.iter().filter(|v| v.killed_by.is_some()).count();
    (killed, verdicts.len())
}

/// Run `cases` (planned on the reference backend) against each of `mutants`,
/// `jobs` at a time, calling `progress` after each case. Work is interleaved
/// case by case across mutants, so each mutant meets the early cases first.
pub fn run_mutants(
    mutants: &[&'static Mutant],
    cases: &[PlannedCase],
    jobs: usize,
    options: &RunOptions,
    progress: &(dyn Fn(&Mutant, &ScenarioResult) + Sync),
) -> Vec<MutantVerdict> {
    let queue: VecDeque<(usize, usize)> = (0..cases.len())
        .flat_map(|c| (0..mutants.len()).map(move |m| (m, c)))
        .collect();
    let queue = Mutex::new(queue);
    let verdicts = Mutex::new(
        mutants
            .iter()
            .map(|mutant| MutantVerdict {
                mutant,
                killed_by: None,
                errors: Vec::new(),
                cases_run: 0,
            })
            .collect::<Vec<_>>(),
    );
    // The index of each mutant's earliest killing case so far.
    let killed_at = Mutex::new(vec![usize::MAX; mutants.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, queue.lock().expect("queue").len().max(1)) {
            scope.spawn(|| loop {
                let next = {
                    let mut queue = queue.lock().expect("queue");
                    let killed_at = killed_at.lock().expect("kills");
                    // Skip cases later than a kill already found for that mutant.
                    queue.retain(|(m, c)| *c < killed_at[*m]);
                    queue.pop_front()
                };
                let Some((m, c)) = next else { break };
                let mut case = cases[c].clone();
                case.dataplane = DataplaneChoice::Mutant(mutants[m]);
                let result = runner::run_case_blocking(&case, options);
                progress(mutants[m], &result);
                let mut verdicts = verdicts.lock().expect("verdicts");
                let verdict = &mut verdicts[m];
                verdict.cases_run += 1;
                match &result.head.outcome {
                    Outcome::Passed => {}
                    Outcome::Failed { .. } => {
                        let mut killed_at = killed_at.lock().expect("kills");
                        if c < killed_at[m] {
                            killed_at[m] = c;
                            verdict.killed_by = Some((case.test_name(), result.failure_text()));
                        }
                    }
                    Outcome::Error { reason } => {
                        verdict.errors.push((case.test_name(), reason.clone()));
                    }
                }
            });
        }
    });
    verdicts.into_inner().expect("verdicts")
}

/// A mutation run: the cases left out because the unbroken backend fails
/// them (with the failure), and what the others did to each mutant.
#[derive(Clone, Debug)]
pub struct MutationRun {
    pub excluded: Vec<(String, String)>,
    pub verdicts: Vec<MutantVerdict>,
}

/// Run `cases` (planned on the backend the mutants break) on that backend
/// unbroken first, then the ones that pass there against each of `mutants`
/// (see [`run_mutants`]): a case failing without any bug kills nothing.
pub fn score_catalogue(
    mutants: &[&'static Mutant],
    cases: Vec<PlannedCase>,
    jobs: usize,
    options: &RunOptions,
    progress: &(dyn Fn(&Mutant, &ScenarioResult) + Sync),
) -> MutationRun {
    let results = runner::run_cases(&cases, jobs, options, &|case, result| {
        tracing::info!(case = %case.test_name(), passed = result.head.outcome.is_pass(), "unbroken");
    });
    let (cases, excluded) = passing_on_reference(cases, &results);
    let verdicts = run_mutants(mutants, &cases, jobs, options, progress);
    MutationRun { excluded, verdicts }
}

/// The cases a kill can count on: those that passed on the unbroken
/// backend the mutants break (`results[i]` is `cases[i]`'s run there, `None`
/// when it did not run). A case that fails there (a flaky or broken case, or
/// a lab problem) would "kill" every mutant without the bug doing anything,
/// so it is left out and named with its failure, in catalogue order.
pub fn passing_on_reference(
    cases: Vec<PlannedCase>,
    results: &[Option<ScenarioResult>],
) -> (Vec<PlannedCase>, Vec<(String, String)>) {
    let mut kept = Vec::new();
    let mut excluded = Vec::new();
    for (case, result) in cases.into_iter().zip(results) {
        match result {
            Some(result) if result.head.outcome.is_pass() => kept.push(case),
            Some(result) => excluded.push((case.test_name(), result.failure_text())),
            None => excluded.push((case.test_name(), "did not run".to_string())),
        }
    }
    (kept, excluded)
}

/// How much of a killing case's failure text the summary shows.
const KILL_LINES: usize = 6;

/// The mutation score and each mutant's fate, for people.
pub fn render_verdicts(verdicts: &[MutantVerdict]) -> String {
    let mut out = String::new();
    for verdict in verdicts {
        match &verdict.killed_by {
            Some((case, failure)) => {
                out.push_str(&format!(
                    "killed    {:<24} by {case}\n",
                    verdict.mutant.name
                ));
                // The first lines say which check caught it.
                for line in failure.lines().take(KILL_LINES) {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            None => out.push_str(&format!(
                "SURVIVED  {:<24} ({} cases passed) models: {}\n",
                verdict.mutant.name, verdict.cases_run, verdict.mutant.models
            )),
        }
        for (case, reason) in &verdict.errors {
            out.push_str(&format!("    error in {case}: {reason}\n"));
        }
    }
    let (killed, total) = mutation_score(verdicts);
    out.push_str(&format!(
        "mutation score: {killed}/{total} killed ({:.0}%)\n",
        if total == 0 {
            100.0
        } else {
            killed as f64 * 100.0 / total as f64
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutant::MUTANTS;

    #[test]
    fn cases_failing_on_the_reference_are_left_out_and_named() {
        use crate::dataplane::BackendKind;
        use crate::runner::PlanFilter;
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let filter = PlanFilter {
            dataplane: Some(DataplaneChoice::Builtin(BackendKind::NftMaps)),
            ..Default::default()
        };
        let cases = runner::plan(&[folder], &filter).unwrap();
        let names: Vec<String> = cases.iter().map(PlannedCase::test_name).collect();
        let results: Vec<Option<ScenarioResult>> = cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let outcome = match i {
                    1 => Outcome::Failed {
                        reason: "step 2 failed".into(),
                    },
                    2 => Outcome::Error {
                        reason: "building the lab".into(),
                    },
                    _ => Outcome::Passed,
                };
                (i != 3).then(|| crate::runner::result_for_tests(case, outcome))
            })
            .collect();
        let (kept, excluded) = passing_on_reference(cases, &results);
        let excluded_names: Vec<&str> = excluded.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(excluded_names, [&names[1], &names[2], &names[3]]);
        assert!(excluded[0].1.contains("step 2 failed"));
        assert_eq!(excluded[2].1, "did not run");
        let kept: Vec<String> = kept.iter().map(PlannedCase::test_name).collect();
        assert_eq!(kept.len(), names.len() - 3);
        assert!(kept.contains(&names[0]) && !kept.contains(&names[1]));
    }

    #[test]
    fn renders_kills_survivors_and_the_score() {
        let verdicts = vec![
            MutantVerdict {
                mutant: &MUTANTS[0],
                killed_by: Some(("from-hosting-node-v4::nftables".into(), "step 2".into())),
                errors: Vec::new(),
                cases_run: 3,
            },
            MutantVerdict {
                mutant: &MUTANTS[1],
                killed_by: None,
                errors: vec![("dual-stack::nftables".into(), "building the lab".into())],
                cases_run: 40,
            },
        ];
        assert_eq!(mutation_score(&verdicts), (1, 2));
        insta::assert_snapshot!(render_verdicts(&verdicts));
    }
}
