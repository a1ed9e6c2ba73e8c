//! Which case to start next when many run at once: the longest first, and
//! only as many labs as the host's neighbour table has room for.
//!
//! A run's wall time is at least its longest case's, and a long case started
//! last stretches the tail while the other jobs sit idle; so the cases start
//! longest first, by a guess of their length from their steps (the silence
//! windows and waits a case must sit out are most of it).
//!
//! Linux keeps one neighbour table per family for the whole host
//! ([`crate::bgp::neighbours`]): every lab's entries count together against
//! the host's `gc_thresh3`, and past it the kernel refuses new entries
//! ("neighbor table overflow") and traffic fails for no reason of the case's
//! own. The harness never changes host settings; it starts a case only while
//! the entries the running labs may need fit in half the table (the other
//! half is left to the host and to other processes' labs).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::calico::IpFamily;
use crate::scenario::{Scenario, Step};

/// Cases at a time when the user does not say: labs wait on the kernel far
/// more than they compute, so several per core (eight, at most 32); the
/// neighbour table bounds them further ([`Schedule`]).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 8).min(32)
}

/// What a case is expected to cost, for ordering and admission only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseCost {
    /// A guess of its length from its steps.
    pub length: Duration,
    /// The most neighbour entries its lab may hold in one family at once.
    pub neighbours: usize,
}

/// A run of consecutive sends sits out about one silence window.
const SEND_RUN: Duration = Duration::from_millis(300);
/// Any other step: a pod step applied to the dataplane, a stream started.
const OTHER_STEP: Duration = Duration::from_millis(50);
/// Building and removing the lab.
const LAB: Duration = Duration::from_millis(500);

impl CaseCost {
    pub fn of(scenario: &Scenario) -> Self {
        let mut length = LAB;
        let mut pods = 0;
        let mut after_send = false;
        for step in &scenario.steps {
            match step {
                Step::Send(_) if after_send => {}
                Step::Send(_) => length += SEND_RUN,
                Step::Wait(wait) => length += *wait,
                Step::CreatePod(_) => {
                    pods += 1;
                    length += OTHER_STEP;
                }
                _ => length += OTHER_STEP,
            }
            after_send = matches!(step, Step::Send(_));
        }
        let cluster = &scenario.cluster;
        Self {
            length,
            neighbours: neighbour_need(cluster.nodes.len(), pods, cluster.externals.len()),
        }
    }
}

/// Neighbour entries a lab may hold in one family at once: the BGP mesh and
/// the fabric ([`crate::bgp::neighbours::mesh_need`]), and four for each pod
/// set up and each external host (a pod and its node resolve each other, its
/// peers and the hosts that reach it add more; IPv6 adds link-local
/// entries). An upper bound measured on the catalogue: matrix-life-outside
/// (3 nodes, 9 pod set-ups, 1 external; estimate 52) peaked at 36 IPv4
/// entries, matrix-life-ipv6 (the same sizes) at 46 IPv6 entries, dual-stack
/// (2 nodes, 1 pod, 1 external; estimate 14) at 13.
pub fn neighbour_need(nodes: usize, pods: usize, externals: usize) -> usize {
    crate::bgp::neighbours::mesh_need(nodes) + 4 * pods + 4 * externals
}

/// The entries this process's labs may hold together: half the smaller of
/// the host's two tables (Linux's default 1024 where this process cannot
/// read them, as in a rootless harness's own namespace).
pub fn neighbour_budget() -> usize {
    let limit = [IpFamily::V4, IpFamily::V6]
        .into_iter()
        .map(|family| crate::bgp::neighbours::host_limit(family).unwrap_or(1024))
        .min()
        .unwrap_or(1024);
    limit / 2
}

/// The cases waiting and the labs running, shared by the jobs.
#[derive(Debug)]
pub struct Schedule {
    state: Mutex<State>,
    changed: Condvar,
    budget: usize,
}

#[derive(Debug)]
struct State {
    /// Indices of the cases not started, longest last (popped first).
    waiting: Vec<usize>,
    costs: Vec<CaseCost>,
    /// Neighbour entries of the running cases.
    held: usize,
    running: usize,
}

impl Schedule {
    /// `costs[i]` is case i's; cases start longest first, each once its
    /// neighbour entries fit beside the running cases' in `budget` (a case
    /// that needs more than the budget alone runs alone).
    pub fn new(costs: Vec<CaseCost>, budget: usize) -> Self {
        let mut waiting: Vec<usize> = (0..costs.len()).collect();
        // Stable: equal guesses keep the order given.
        waiting.sort_by_key(|&i| std::cmp::Reverse(costs[i].length));
        waiting.reverse();
        Self {
            state: Mutex::new(State {
                waiting,
                costs,
                held: 0,
                running: 0,
            }),
            changed: Condvar::new(),
            budget,
        }
    }

    /// The next case to start, waiting while none fits beside the running
    /// ones; `None` once every case has started, or when `stop` says so.
    pub fn next(&self, stop: &dyn Fn() -> bool) -> Option<usize> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if stop() {
                return None;
            }
            let room = self.budget.saturating_sub(state.held);
            let fits = state
                .waiting
                .iter()
                .rposition(|&i| state.costs[i].neighbours <= room || state.running == 0);
            match fits {
                Some(position) => {
                    let index = state.waiting.remove(position);
                    state.held += state.costs[index].neighbours;
                    state.running += 1;
                    return Some(index);
                }
                None if state.waiting.is_empty() => return None,
                None => {
                    // Woken when a case ends; the timeout re-checks `stop`.
                    let (next, _) = self
                        .changed
                        .wait_timeout(state, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner());
                    state = next;
                }
            }
        }
    }

    /// Case `index` (from [`Schedule::next`]) has ended and its lab is gone.
    pub fn done(&self, index: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.held = state.held.saturating_sub(state.costs[index].neighbours);
        state.running = state.running.saturating_sub(1);
        drop(state);
        self.changed.notify_all();
    }
}

/// Room in the neighbour table for labs started by threads the harness does
/// not schedule (a test harness's own): each takes its case's entries before
/// its lab is built and gives them back when the case ends.
#[derive(Debug)]
pub struct Room {
    held: Mutex<(usize, usize)>,
    freed: Condvar,
    budget: usize,
}

/// Entries taken from a [`Room`], given back when dropped.
#[derive(Debug)]
pub struct Taken<'a> {
    room: &'a Room,
    need: usize,
}

impl Room {
    pub const fn new(budget: usize) -> Self {
        Self {
            held: Mutex::new((0, 0)),
            freed: Condvar::new(),
            budget,
        }
    }

    /// Take `need` entries, waiting until they fit beside those taken (a
    /// need larger than the budget waits until it is alone).
    pub fn take(&self, need: usize) -> Taken<'_> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.1 > 0 && held.0 + need > self.budget {
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.0 += need;
        held.1 += 1;
        Taken { room: self, need }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut held = self.room.held.lock().unwrap_or_else(|e| e.into_inner());
        held.0 = held.0.saturating_sub(self.need);
        held.1 = held.1.saturating_sub(1);
        drop(held);
        self.room.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(length_ms: u64, neighbours: usize) -> CaseCost {
        CaseCost {
            length: Duration::from_millis(length_ms),
            neighbours,
        }
    }

    #[test]
    fn the_longest_cases_start_first_and_equal_ones_in_order() {
        let schedule = Schedule::new(
            vec![cost(100, 1), cost(900, 1), cost(100, 1), cost(500, 1)],
            usize::MAX,
        );
        let order: Vec<usize> = std::iter::from_fn(|| schedule.next(&|| false)).collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }

    #[test]
    fn a_case_waits_until_its_neighbours_fit_and_a_smaller_one_goes_ahead() {
        let schedule = Schedule::new(vec![cost(900, 60), cost(800, 60), cost(100, 30)], 100);
        assert_eq!(schedule.next(&|| false), Some(0));
        // 60 more do not fit beside 60 in 100; the short case's 30 do.
        assert_eq!(schedule.next(&|| false), Some(2));
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| schedule.next(&|| false));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "started beside 90 entries of 100");
            schedule.done(0);
            assert_eq!(waiter.join().unwrap(), Some(1));
        });
    }

    #[test]
    fn a_room_lets_a_lab_in_only_when_its_entries_fit() {
        let room = Room::new(100);
        let first = room.take(60);
        let alone = room.take(30);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| drop(room.take(60)));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "took 60 beside 90 of 100");
            drop(first);
            waiter.join().unwrap();
        });
        drop(alone);
        // Larger than the budget: in once the room is empty.
        drop(room.take(500));
    }

    #[test]
    fn a_case_too_big_for_the_budget_runs_alone() {
        let schedule = Schedule::new(vec![cost(900, 500), cost(100, 10)], 100);
        assert_eq!(schedule.next(&|| false), Some(0));
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let waiter =
                scope.spawn(|| schedule.next(&|| stop.load(std::sync::atomic::Ordering::Relaxed)));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(waiter.join().unwrap(), None);
        });
    }
}
