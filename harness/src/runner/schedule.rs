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
//! the entries the running labs may need fit in half of each family's table
//! (the other half is left to the host and to other processes' labs).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::calico::IpFamily;
use crate::scenario::{Scenario, Step, Target};

/// Neighbour entries in each family: IPv4 (ARP), IPv6 (NDP).
pub type Entries = [usize; 2];

/// Cases at a time when the user does not say: labs wait on the kernel far
/// more than they compute, so several per core (twelve, at most 32); the
/// neighbour table bounds them further ([`Schedule`]). On a 2-core machine
/// the catalogue took 49-50 s at 16, 41.8 s at 24 and 41.6 s at 32, back to
/// back (docs/benchmarks.md, session 8).
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 12).min(32)
}

/// What a case is expected to cost, for ordering and admission only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseCost {
    /// A guess of its length from its steps.
    pub length: Duration,
    /// The most neighbour entries its lab may hold at once, IPv4 and IPv6.
    pub neighbours: Entries,
}

/// A run of consecutive sends sits out about one silence window.
const SEND_RUN: Duration = super::send::SILENCE_WINDOW;
/// Any other step: a pod step applied to the dataplane, a stream started.
const OTHER_STEP: Duration = Duration::from_millis(50);
/// Building and removing the lab.
const LAB: Duration = Duration::from_millis(500);

impl CaseCost {
    pub fn of(scenario: &Scenario) -> Self {
        let mut length = LAB;
        let mut pods = 0;
        let mut after_send = false;
        let mut traffic = [false; 2];
        for step in &scenario.steps {
            let to = match step {
                Step::Send(send) => Some(&send.to),
                Step::StartStream(stream) => Some(&stream.to),
                _ => None,
            };
            if let Some(to) = to {
                traffic[family_index(target_family(to))] = true;
            }
            match step {
                Step::Send(_) if after_send => {}
                Step::Send(_) => length += SEND_RUN,
                Step::Wait(wait) => length += wait.nominal(),
                Step::CreatePod(_) => {
                    pods += 1;
                    length += OTHER_STEP;
                }
                _ => length += OTHER_STEP,
            }
            after_send = matches!(step, Step::Send(_));
        }
        let cluster = &scenario.cluster;
        let lab = LabSize {
            nodes: cluster.nodes.len(),
            pods,
            externals: cluster.externals.len(),
            dual_stack: cluster.dual_stack,
        };
        let need = |family: IpFamily| neighbour_need(family, &lab, traffic[family_index(family)]);
        Self {
            length,
            neighbours: [need(IpFamily::V4), need(IpFamily::V6)],
        }
    }
}

fn target_family(target: &Target) -> IpFamily {
    match target {
        Target::Address(std::net::IpAddr::V4(_)) => IpFamily::V4,
        Target::Address(std::net::IpAddr::V6(_)) => IpFamily::V6,
        Target::Host { family, .. } => *family,
    }
}

fn family_index(family: IpFamily) -> usize {
    match family {
        IpFamily::V4 => 0,
        IpFamily::V6 => 1,
    }
}

/// What a lab's neighbour entries grow with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabSize {
    pub nodes: usize,
    /// Pod set-ups over the case (a pod made again counts again).
    pub pods: usize,
    pub externals: usize,
    /// Nodes, pods and external hosts have IPv6 addresses too, and BGP runs
    /// for IPv6 ([`crate::bgp::topology::BgpTopology::families`]).
    pub dual_stack: bool,
}

/// Neighbour entries a lab may hold in one family at once, of those the
/// kernel cannot free to make room (`sends` says whether the case sends
/// traffic of that family).
///
/// - A family with addresses on the lab's links (IPv4 always, IPv6 in a
///   dual-stack lab): the BGP mesh and the fabric
///   ([`crate::bgp::neighbours::mesh_need`]), four for each external host,
///   and for each pod set up, when the case sends traffic of the family:
///   - in IPv4, one and a half: a pod resolves only its gateway
///     (169.254.1.1), since its node's entries for it are permanent, as
///     Felix makes them (lab/pod_wiring.rs `pod_mac`), and the kernel does
///     not count those; the half is for a node resolving a floating IP
///     routed untranslated to a pod's interface, INCOMPLETE for seconds
///     (the IPv4 matrix cases held at most one such entry beside mesh,
///     external host and one a pod);
///   - in IPv6, four (entries are made by traffic: a pod resolves its
///     gateway, its node resolves the pod, and link-local entries come on
///     top).
///
///   A dual-stack pod counts one IPv6 entry even when the case sends no
///   IPv6: see the next point.
/// - IPv6 in an IPv4-only lab: no IPv6 address but link-local ones, and no
///   IPv6 BGP; yet every pod's `eth0` sends router solicitations from its
///   link-local address (IPv6 is on in a new namespace, and Calico's CNI
///   plugin leaves it so for a pod with no IPv6 address:
///   cni-plugin/pkg/dataplane/linux/dataplane_linux.go `DoNetworking` writes
///   the IPv6 sysctls only when `hasIPv6`), and the node makes a STALE entry
///   for each sender (Linux `net/ipv6/ndisc.c`, `ndisc_recv_rs`). So one per
///   pod set up and, for margin, one per external host.
///
/// The kernel also counts multicast and NOARP entries (IPv6's MLD reports
/// and router solicitations: most of an IPv6 lab's entries) and FAILED ones,
/// but frees them when the table passes `gc_thresh2` (net/core/neighbour.c,
/// `neigh_forced_gc`), so they cannot overflow it.
///
/// An upper bound of what the catalogue's labs were measured to hold (`ip -n
/// NS neigh show nud all` over every lab namespace, less PERMANENT, NOARP,
/// FAILED and multicast lines; docs/benchmarks.md, sessions 8 and 9). Peaks
/// of the longest cases, each file's three backends: the IPv4-only matrix
/// cases (3 nodes, 9 pod set-ups, 1 external) held 17-24 IPv4 entries
/// (estimate 30; 34 before session 9 counted two a pod) and 8 IPv6 (10; 16
/// before session 9 counted a mesh that an IPv4-only lab does not have);
/// the dual-stack IPv6 matrix cases held 12 IPv4 (16) and 38-49 IPv6 (52).
pub fn neighbour_need(family: IpFamily, lab: &LabSize, sends: bool) -> usize {
    if family == IpFamily::V6 && !lab.dual_stack {
        return lab.pods + lab.externals;
    }
    let pods = match (family, sends) {
        (IpFamily::V4, true) => lab.pods + lab.pods.div_ceil(2),
        (IpFamily::V6, true) => 4 * lab.pods,
        (IpFamily::V4, false) => 0,
        (IpFamily::V6, false) => lab.pods,
    };
    crate::bgp::neighbours::mesh_need(lab.nodes) + pods + 4 * lab.externals
}

/// The entries this process's labs may hold together in each family: half
/// the host's table (Linux's default 1024 where this process cannot read it,
/// as in a rootless harness's own namespace).
pub fn neighbour_budget() -> Entries {
    [IpFamily::V4, IpFamily::V6]
        .map(|family| crate::bgp::neighbours::host_limit(family).unwrap_or(1024) / 2)
}

/// Whether `need` fits beside `held` in `budget`, in both families.
fn fits(need: Entries, held: Entries, budget: Entries) -> bool {
    (0..2).all(|f| held[f] + need[f] <= budget[f])
}

fn add(held: &mut Entries, need: Entries) {
    (0..2).for_each(|f| held[f] += need[f]);
}

fn remove(held: &mut Entries, need: Entries) {
    (0..2).for_each(|f| held[f] = held[f].saturating_sub(need[f]));
}

/// The cases waiting and the labs running, shared by the jobs.
#[derive(Debug)]
pub struct Schedule {
    state: Mutex<State>,
    changed: Condvar,
    budget: Entries,
}

#[derive(Debug)]
struct State {
    /// Indices of the cases not started, longest last (popped first).
    waiting: Vec<usize>,
    costs: Vec<CaseCost>,
    /// Neighbour entries of the running cases.
    held: Entries,
    running: usize,
}

impl Schedule {
    /// `costs[i]` is case i's; cases start longest first, each once its
    /// neighbour entries fit beside the running cases' in `budget` (a case
    /// that needs more than the budget alone runs alone).
    pub fn new(costs: Vec<CaseCost>, budget: Entries) -> Self {
        let mut waiting: Vec<usize> = (0..costs.len()).collect();
        // Stable: equal guesses keep the order given.
        waiting.sort_by_key(|&i| std::cmp::Reverse(costs[i].length));
        waiting.reverse();
        Self {
            state: Mutex::new(State {
                waiting,
                costs,
                held: [0; 2],
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
            let fitting = state.waiting.iter().rposition(|&i| {
                state.running == 0 || fits(state.costs[i].neighbours, state.held, self.budget)
            });
            match fitting {
                Some(position) => {
                    let index = state.waiting.remove(position);
                    let need = state.costs[index].neighbours;
                    add(&mut state.held, need);
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
        let need = state.costs[index].neighbours;
        remove(&mut state.held, need);
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
    /// Entries taken, and by how many labs.
    held: Mutex<(Entries, usize)>,
    freed: Condvar,
    budget: Entries,
}

/// Entries taken from a [`Room`], given back when dropped.
#[derive(Debug)]
pub struct Taken<'a> {
    room: &'a Room,
    need: Entries,
}

impl Room {
    /// The room of this process's labs: half the host's table
    /// ([`neighbour_budget`]), shared by every caller in the process.
    pub fn process() -> &'static Room {
        static ROOM: std::sync::OnceLock<Room> = std::sync::OnceLock::new();
        ROOM.get_or_init(|| Room::new(neighbour_budget()))
    }

    pub const fn new(budget: Entries) -> Self {
        Self {
            held: Mutex::new(([0; 2], 0)),
            freed: Condvar::new(),
            budget,
        }
    }

    /// Take `need` entries, waiting until they fit beside those taken (a
    /// need larger than the budget waits until it is alone).
    pub fn take(&self, need: Entries) -> Taken<'_> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.1 > 0 && !fits(need, held.0, self.budget) {
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        add(&mut held.0, need);
        held.1 += 1;
        Taken { room: self, need }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let mut held = self.room.held.lock().unwrap_or_else(|e| e.into_inner());
        remove(&mut held.0, self.need);
        held.1 = held.1.saturating_sub(1);
        drop(held);
        self.room.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 entries only.
    fn cost(length_ms: u64, neighbours: usize) -> CaseCost {
        CaseCost {
            length: Duration::from_millis(length_ms),
            neighbours: [neighbours, 0],
        }
    }

    const BUDGET: Entries = [100, 100];

    #[test]
    fn the_longest_cases_start_first_and_equal_ones_in_order() {
        let schedule = Schedule::new(
            vec![cost(100, 1), cost(900, 1), cost(100, 1), cost(500, 1)],
            [usize::MAX; 2],
        );
        let order: Vec<usize> = std::iter::from_fn(|| schedule.next(&|| false)).collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }

    #[test]
    fn a_case_waits_until_its_neighbours_fit_and_a_smaller_one_goes_ahead() {
        let schedule = Schedule::new(vec![cost(900, 60), cost(800, 60), cost(100, 30)], BUDGET);
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
        let room = Room::new(BUDGET);
        let first = room.take([60, 0]);
        let alone = room.take([30, 0]);
        // The other family's table has room of its own.
        drop(room.take([0, 90]));
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| drop(room.take([60, 0])));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "took 60 beside 90 of 100");
            drop(first);
            waiter.join().unwrap();
        });
        drop(alone);
        // Larger than the budget: in once the room is empty.
        drop(room.take([500, 0]));
    }

    #[test]
    fn labs_of_the_two_families_fill_their_own_tables() {
        let v6 = |length_ms| CaseCost {
            neighbours: [10, 60],
            ..cost(length_ms, 0)
        };
        let schedule = Schedule::new(vec![cost(900, 60), cost(800, 60), v6(700)], BUDGET);
        assert_eq!(schedule.next(&|| false), Some(0));
        assert_eq!(schedule.next(&|| false), Some(2));
    }

    /// The catalogue's sizes: an IPv4 matrix case needs its pods' entries in
    /// IPv4 only, a dual-stack case in both; an IPv4 pod needs fewer (its
    /// node's entry for it is permanent).
    #[test]
    fn a_case_needs_pod_entries_in_the_families_it_sends() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let need = |name: &str| {
            let scenario = crate::scenario::load_file(&folder.join(name)).unwrap();
            CaseCost::of(&scenario).neighbours
        };
        assert_eq!(need("matrix-life-outside.yaml"), [30, 10]);
        assert_eq!(need("matrix-life-ipv6.yaml"), [16, 52]);
        assert_eq!(need("dual-stack.yaml"), [12, 14]);
        assert_eq!(need("from-external-v4.yaml"), [12, 2]);
        assert_eq!(need("from-external-v6.yaml"), [10, 14]);
        // Dual stack, IPv4 traffic only: its pods still solicit routers.
        assert_eq!(need("mapped-ipv4-floating-ip.yaml"), [9, 8]);
    }

    #[test]
    fn a_case_too_big_for_the_budget_runs_alone() {
        let schedule = Schedule::new(vec![cost(900, 500), cost(100, 10)], BUDGET);
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
