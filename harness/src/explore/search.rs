//! The search: case `i` of a seed is drawn from its own proptest RNG (so any
//! case replays alone and `--jobs` changes nothing but speed), each case is
//! judged, and the first failure is shrunk with proptest's own value-tree
//! protocol (simplify while it fails, complicate when it passes), as
//! proptest's `TestRunner` does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::plan::{case_strategy, CaseSpec};
use super::script::{script, Script};
use crate::seed::Seed;

/// How long a search goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Cases(u64),
    Time(Duration),
}

/// What judging one case found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    Pass,
    /// The dataplane failed the case: why, in the runner's words.
    Fail(String),
    /// The case could not be judged (the reference failed it, or the lab
    /// could not be built): neither a pass nor a finding.
    NotJudged(String),
}

impl Judgement {
    pub fn is_fail(&self) -> bool {
        matches!(self, Judgement::Fail(_))
    }
}

/// Runs a case somewhere and says whether it failed. `name` is unique per
/// run of a case (lab names derive from it).
pub trait Judge: Sync {
    fn judge(&self, script: &Script, name: &str) -> Judgement;

    /// A case's first run, which may keep more of a failure than the runs
    /// that shrink it (a failure that does not come back has only this one).
    fn judge_first(&self, script: &Script, name: &str) -> Judgement {
        self.judge(script, name)
    }
}

/// The seed's case `index`: its value tree, for shrinking.
pub fn case_tree(seed: Seed, index: u64) -> impl ValueTree<Value = CaseSpec> {
    let mut bytes = [0u8; 32];
    for (chunk, part) in bytes.chunks_mut(8).zip(0u64..) {
        chunk.copy_from_slice(&seed.derive("explore-case", &[index, part]).to_le_bytes());
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    case_strategy()
        .new_tree(&mut runner)
        .expect("the case strategy never rejects")
}

/// The seed's case `index`.
pub fn case(seed: Seed, index: u64) -> CaseSpec {
    case_tree(seed, index).current()
}

/// How the first failure of a search was found and shrunk.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub index: u64,
    /// The case as found, and as shrunk.
    pub found: Script,
    pub shrunk: Script,
    /// Why the shrunk case fails.
    pub reason: String,
    /// Cases run while shrinking (each distinct candidate once).
    pub runs: u32,
    /// The shrunk case failed once more when run again.
    pub confirmed: bool,
    pub shrink_time: Duration,
}

/// What a search did.
#[derive(Clone, Debug, Default)]
pub struct SearchOutcome {
    pub cases: u64,
    pub passed: u64,
    pub not_judged: u64,
    /// The first reason a case was not judged (the lab's or the reference's).
    pub not_judged_reason: Option<String>,
    /// Operations the model left out, over all cases.
    pub left_out: u64,
    pub elapsed: Duration,
    pub time_to_failure: Option<Duration>,
    pub failure: Option<Shrunk>,
}

/// Limits of one shrink.
#[derive(Clone, Copy, Debug)]
pub struct ShrinkLimits {
    pub max_runs: u32,
    pub max_time: Duration,
}

impl Default for ShrinkLimits {
    fn default() -> Self {
        Self {
            max_runs: 400,
            max_time: Duration::from_secs(600),
        }
    }
}

/// Judge the seed's cases from 0 on, `jobs` at a time, until the budget is
/// spent or one fails (then shrink it).
pub fn search(
    seed: Seed,
    budget: Budget,
    jobs: usize,
    judge: &dyn Judge,
    limits: ShrinkLimits,
    progress: &(dyn Fn(u64, &Judgement) + Sync),
) -> SearchOutcome {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let state = Mutex::new(SearchOutcome::default());
    let first_failure: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let within_budget = |index: u64| match budget {
        Budget::Cases(n) => index < n,
        Budget::Time(limit) => started.elapsed() < limit,
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) || crate::lab::signals::is_cancelled() {
                    break;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                if !within_budget(index) {
                    break;
                }
                let script = script(&case(seed, index));
                let judgement = judge.judge_first(&script, &format!("explore-{index}"));
                progress(index, &judgement);
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                state.cases += 1;
                state.left_out += script.left_out as u64;
                match judgement {
                    Judgement::Pass => state.passed += 1,
                    Judgement::NotJudged(reason) => {
                        state.not_judged += 1;
                        state.not_judged_reason.get_or_insert(reason);
                    }
                    Judgement::Fail(reason) => {
                        stop.store(true, Ordering::SeqCst);
                        let mut first = first_failure.lock().unwrap_or_else(|e| e.into_inner());
                        // The lowest failing index wins, whatever the jobs' timing.
                        if first.as_ref().is_none_or(|(i, _)| index < *i) {
                            *first = Some((index, reason));
                            state.time_to_failure = Some(started.elapsed());
                        }
                    }
                }
            });
        }
    });
    let mut outcome = state.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some((index, reason)) = first_failure
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
    {
        outcome.failure = Some(shrink(seed, index, reason, judge, limits));
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Shrink the seed's failing case `index` with proptest's value tree: each
/// distinct script is judged once (many simplifications of indexes read as
/// the same steps), and the smallest failing one is run again to confirm it.
pub fn shrink(
    seed: Seed,
    index: u64,
    reason: String,
    judge: &dyn Judge,
    limits: ShrinkLimits,
) -> Shrunk {
    let started = Instant::now();
    let mut tree = case_tree(seed, index);
    let found = script(&tree.current());
    let mut best = (found.clone(), reason);
    let mut seen: HashMap<String, Judgement> = HashMap::new();
    let mut runs = 0u32;
    let mut fails = |candidate: &Script, runs: &mut u32| -> Judgement {
        let key = super::yaml::render(candidate, "shrink", &[]);
        if let Some(known) = seen.get(&key) {
            return known.clone();
        }
        *runs += 1;
        let judgement = judge.judge(candidate, &format!("explore-{index}-s{runs}"));
        seen.insert(key, judgement.clone());
        judgement
    };
    if tree.simplify() {
        while runs < limits.max_runs && started.elapsed() < limits.max_time {
            let candidate = script(&tree.current());
            match fails(&candidate, &mut runs) {
                Judgement::Fail(why) => {
                    if smaller(&candidate, &best.0) {
                        best = (candidate, why);
                    }
                    if !tree.simplify() {
                        break;
                    }
                }
                _ => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
    }
    let confirm = judge.judge(&best.0, &format!("explore-{index}-confirm"));
    runs += 1;
    Shrunk {
        index,
        found,
        reason: match &confirm {
            Judgement::Fail(why) => why.clone(),
            _ => best.1,
        },
        shrunk: best.0,
        runs,
        confirmed: confirm.is_fail(),
        shrink_time: started.elapsed(),
    }
}

/// Size of a script for shrinking: steps, then pods, nodes and packets.
pub fn size(script: &Script) -> (usize, usize, usize, usize) {
    use super::script::ScriptStep;
    let pods = script
        .steps
        .iter()
        .filter(|s| matches!(s, ScriptStep::CreatePod { .. }))
        .count();
    let packets: u32 = script
        .steps
        .iter()
        .map(|s| match s {
            ScriptStep::Send { count, .. } => *count,
            ScriptStep::StartStream { .. } => 1,
            _ => 0,
        })
        .sum();
    (
        script.steps.len(),
        pods,
        script.spec.nodes + script.spec.externals,
        packets as usize,
    )
}

/// Whether `a` is smaller than `b` (proptest's simplification may wander
/// to an equal or larger script; the smallest failing one is kept).
fn smaller(a: &Script, b: &Script) -> bool {
    size(a) <= size(b)
}
