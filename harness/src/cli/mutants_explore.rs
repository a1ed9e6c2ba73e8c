//! `mutants --explore-time`: after the catalogue, the explorer searches each
//! mutant for a while, and the two are compared mutant by mutant: which
//! killed it, which mutants only one of them kills, and the explorer's
//! median time to its first kill.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use fip_harness::explore::{search, Budget, ExploreDir, RunJudge, ShrinkLimits};
use fip_harness::mutation::MutantVerdict;
use fip_harness::runner::{DataplaneChoice, RunOptions};
use fip_harness::seed::Seed;
use fip_harness::vocab::RoutingMode;

/// What the explorer did to one mutant.
struct Explored {
    name: &'static str,
    catalogue: bool,
    /// Time to the first failing case and its index; `None`: it survived.
    kill: Option<(Duration, u64)>,
    cases: u64,
}

/// Explore every mutant of `verdicts` for `time` each, `jobs` cases at a
/// time (no shrinking: only whether and when a case fails), and print the
/// comparison with the catalogue's verdicts.
pub(super) fn compare(
    verdicts: &[MutantVerdict],
    time: Duration,
    seed: Seed,
    jobs: usize,
    report_dir: &Path,
) -> anyhow::Result<()> {
    let dir = ExploreDir::create(&report_dir.join("explore"))
        .with_context(|| format!("creating {}", report_dir.join("explore").display()))?;
    say!(
        "explorer: each mutant for {} s, seed {} (`--explore-seed {}` replays it), {} at a time, model routing (BIRD for the route mutants)",
        time.as_secs(),
        seed.0,
        seed.0,
        jobs.max(1)
    );
    let mut explored = Vec::new();
    for verdict in verdicts {
        let judge = RunJudge {
            dir: dir.clone(),
            dataplane: DataplaneChoice::Mutant(verdict.mutant),
            options: RunOptions {
                routing: if verdict.mutant.needs_bird() {
                    RoutingMode::Bird
                } else {
                    RoutingMode::Model
                },
                seed: Some(seed),
                ..RunOptions::default()
            },
            labs: None,
            bundles: None,
        };
        let no_shrink = ShrinkLimits {
            max_runs: 0,
            max_time: Duration::ZERO,
        };
        let outcome = search(
            seed,
            Budget::Time(time),
            jobs,
            &judge,
            no_shrink,
            &|_, _| {},
        );
        let one = Explored {
            name: verdict.mutant.name,
            catalogue: verdict.killed_by.is_some(),
            kill: outcome
                .failure
                .as_ref()
                .zip(outcome.time_to_failure)
                .map(|(failure, at)| (at, failure.index)),
            cases: outcome.cases,
        };
        say!("{}", line(&one));
        explored.push(one);
    }
    say!("{}", summary(&explored));
    Ok(())
}

fn line(one: &Explored) -> String {
    let catalogue = if one.catalogue { "killed" } else { "survived" };
    match one.kill {
        Some((at, index)) => format!(
            "  {:<30} catalogue {catalogue:<8}  explorer killed   (case {index}, {:.1} s)",
            one.name,
            at.as_secs_f64()
        ),
        None => format!(
            "  {:<30} catalogue {catalogue:<8}  explorer survived ({} case(s))",
            one.name, one.cases
        ),
    }
}

/// Who kills what alone, both together, and the median time to a first kill.
fn summary(explored: &[Explored]) -> String {
    let names = |keep: &dyn Fn(&Explored) -> bool| {
        let names: Vec<&str> = explored
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.name)
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut times: Vec<Duration> = explored
        .iter()
        .filter_map(|e| e.kill.map(|k| k.0))
        .collect();
    times.sort();
    let median = match times.len() {
        0 => "no kill".to_string(),
        n => format!("{:.1} s over {n} kill(s)", times[(n - 1) / 2].as_secs_f64()),
    };
    let both = explored
        .iter()
        .filter(|e| e.catalogue || e.kill.is_some())
        .count();
    format!(
        "explorer killed {}/{n}; catalogue and explorer together {both}/{n}\nonly the catalogue kills: {}\nonly the explorer kills: {}\nexplorer's median time to first kill: {median}",
        explored.iter().filter(|e| e.kill.is_some()).count(),
        names(&|e| e.catalogue && e.kill.is_none()),
        names(&|e| !e.catalogue && e.kill.is_some()),
        n = explored.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explored(name: &'static str, catalogue: bool, kill: Option<u64>) -> Explored {
        Explored {
            name,
            catalogue,
            kill: kill.map(|s| (Duration::from_secs(s), 3)),
            cases: 40,
        }
    }

    #[test]
    fn the_summary_names_who_kills_alone_and_the_median_first_kill() {
        let text = summary(&[
            explored("a", true, Some(4)),
            explored("b", true, None),
            explored("c", false, Some(10)),
            explored("d", false, None),
            explored("e", true, Some(2)),
        ]);
        insta::assert_snapshot!(text, @r"
        explorer killed 3/5; catalogue and explorer together 4/5
        only the catalogue kills: b
        only the explorer kills: c
        explorer's median time to first kill: 4.0 s over 3 kill(s)
        ");
    }
}
