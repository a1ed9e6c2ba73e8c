//! The mutation score: run the catalogue against every mutant, several cases
//! at a time, and stop running a mutant's cases as soon as one kills it.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Mutant;
use crate::dataplane::DataplaneChoice;
use crate::report::{Outcome, ScenarioResult};
use crate::runner::{self, PlannedCase, RunOptions};

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
                match &result.outcome {
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
