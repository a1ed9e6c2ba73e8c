//! `fip-harness bench scale`: one large lab (100 nodes x 100 pods by default)
//! built and torn down by the library, with the time of each phase and the
//! memory it takes: the harness's own peak (VmHWM) and what the kernel's
//! namespaces, links and routes take (MemAvailable before and with the lab up).
//! Beside it, the `ip -batch` script per namespace a person would write
//! (see [`super::lab_script`]) and the library on the same sample of nodes.

use std::time::{Duration, Instant};

use crate::lab::down::down_lab;
use crate::lab::Lab;

use super::figures::{cpu_times, ms, print_load, print_target};
use super::lab::{pods, script_runs, spec, Style};
use super::lab_script::Topology;

/// What `bench scale` measures (the CLI's flags of the same names).
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes in the lab.
    pub nodes: usize,
    /// Pods per node.
    pub pods: usize,
    /// Nodes (with as many pods each) of the sample the `ip -batch` baseline
    /// builds, and the library beside it.
    pub baseline_nodes: usize,
    /// Skip the baseline.
    pub no_baseline: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 100,
            pods: 100,
            baseline_nodes: 10,
            no_baseline: false,
        }
    }
}

const TARGET: Duration = Duration::from_secs(15);
/// The longest wait for the kernel to free namespaces (see [`settle`]).
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// A `kB` field of a /proc file (`VmHWM:` of /proc/self/status,
/// `MemAvailable:` of /proc/meminfo), in KiB.
fn proc_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Network namespaces the kernel holds now, freed or not yet (the
/// `net_namespace` slab's active objects; /proc/slabinfo is root's).
fn live_namespaces() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("net_namespace "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The kernel frees the last bit of a dead namespace (its `struct net`) only
/// on its next clean-up round (net/core/net_namespace.c, `net_complete_free`,
/// called from `cleanup_net`), so the count above stays high after the last
/// round until some other namespace dies. Make and drop one (loopback only,
/// on a thread of its own that ends at once) so that another round follows.
fn poke_cleanup() {
    let _ = std::thread::spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)).join();
}

/// The kernel frees a namespace after its last pin and socket go, in the
/// background (net/core/net_namespace.c, `cleanup_net`), holding locks that
/// creating links and namespaces needs: a lab built while an earlier one is
/// still being freed takes about twice as long. Wait until the count of live
/// namespaces is at most `goal` or stops falling for three seconds (other
/// work on the machine makes and frees namespaces too); returns the time
/// waited and whether it got there. With a goal, only after the count has
/// fallen once: the kernel frees a whole batch of namespaces at its end, so
/// the count stays flat for a while first.
fn settle(goal: Option<u64>) -> (Duration, bool) {
    let started = Instant::now();
    let Some(mut last) = live_namespaces() else {
        return (Duration::ZERO, false);
    };
    let mut steady_since = Instant::now();
    let mut fell = goal.is_none();
    while started.elapsed() < SETTLE_LIMIT {
        if goal.is_some_and(|goal| last <= goal)
            || (fell && steady_since.elapsed() >= Duration::from_secs(3))
        {
            return (started.elapsed(), true);
        }
        // Not often: reading /proc/slabinfo walks every slab with
        // interrupts off, slowing the very clean-up it watches.
        poke_cleanup();
        std::thread::sleep(Duration::from_secs(1));
        let now = live_namespaces().unwrap_or(0);
        if now < last {
            steady_since = Instant::now();
            fell = true;
        }
        last = now;
    }
    (started.elapsed(), false)
}

struct Phases {
    nodes: Duration,
    pods: Duration,
    teardown: Duration,
    /// MemAvailable fell by this much (KiB) from before the build to the lab up.
    kernel_kib: i64,
    /// CPU (user + system) the harness used for the pods.
    pods_cpu: Duration,
    /// ... and for the whole build and teardown.
    cpu: Duration,
}

impl Phases {
    fn total(&self) -> Duration {
        self.nodes + self.pods + self.teardown
    }
}

async fn build_and_teardown(name: &str, nodes: usize, per_node: usize) -> super::Result<Phases> {
    let available_before = proc_kib("/proc/meminfo", "MemAvailable:").unwrap_or(0);
    let (cpu_start, _) = cpu_times();
    let started = Instant::now();
    let mut lab = Lab::build(spec(name, nodes)).await?;
    let nodes_took = started.elapsed();
    let started = Instant::now();
    let (cpu_pods_start, _) = cpu_times();
    lab.add_pods(&pods(nodes, per_node, 0)).await?;
    let pods_took = started.elapsed();
    let pods_cpu = cpu_times().0.saturating_sub(cpu_pods_start);
    let available_up = proc_kib("/proc/meminfo", "MemAvailable:").unwrap_or(0);
    let started = Instant::now();
    lab.teardown()?;
    Ok(Phases {
        nodes: nodes_took,
        pods: pods_took,
        teardown: started.elapsed(),
        kernel_kib: available_before as i64 - available_up as i64,
        pods_cpu,
        cpu: cpu_times().0.saturating_sub(cpu_start),
    })
}

/// Build and tear down a lab, removing it on failure.
async fn timed_lab(name: &str, nodes: usize, per_node: usize) -> super::Result<Phases> {
    let result = build_and_teardown(name, nodes, per_node).await;
    if result.is_err() {
        down_lab(name);
    }
    result
}

/// The `ip -batch` script and the library on `nodes` nodes of `per_node`
/// pods each, one run each after the kernel settles.
async fn baseline(args: &Options, nodes: usize) -> super::Result<()> {
    crate::programs::require_program("ip")?;
    let sample_pods = nodes * args.pods;
    let total_pods = args.nodes * args.pods;
    settle(None);
    let library = timed_lab(&format!("bt{}", std::process::id()), nodes, args.pods).await?;
    settle(None);
    let topology = Topology::new(
        &format!("bi{}", std::process::id()),
        nodes,
        &pods(nodes, args.pods, 0),
    );
    let script = script_runs(&topology, Style::Batched, 1, 0)?;
    let per_pod = |d: Duration| ms(d) / sample_pods.max(1) as f64;
    say!(
        "baseline: {} on a sample of {nodes} nodes x {} pods = {sample_pods} pods, one run each{}",
        Style::Batched.label(),
        args.pods,
        if nodes < args.nodes {
            " (the script takes milliseconds a namespace: the whole lab would take minutes)"
        } else {
            ""
        }
    );
    say!(
        "  script: {} processes; build {:.1} ms, teardown {:.1} ms, total {:.1} ms ({:.3} ms per pod)",
        script.build_processes + script.teardown_processes,
        ms(script.build),
        ms(script.teardown),
        ms(script.total),
        per_pod(script.total)
    );
    say!(
        "  library, same sample: build {:.1} ms, teardown {:.1} ms, total {:.1} ms ({:.3} ms per pod)",
        ms(library.nodes + library.pods),
        ms(library.teardown),
        ms(library.total()),
        per_pod(library.total())
    );
    say!(
        "  ratio script / library {:.2}x (above 1 means the library is faster); the script scaled to {total_pods} pods: about {:.1} s",
        script.total.as_secs_f64() / library.total().as_secs_f64().max(1e-9),
        script.total.as_secs_f64() * total_pods as f64 / sample_pods.max(1) as f64
    );
    Ok(())
}

pub fn run(args: Options) -> super::Result<()> {
    if args.nodes == 0 || args.nodes > 200 || args.pods > 120 {
        fail!("use 1..=200 nodes and at most 120 pods per node");
    }
    print_load("start");
    let total_pods = args.nodes * args.pods;
    println!(
        "bench scale: {} nodes x {} pods = {total_pods} pods (+ fabric, 1 external), one build and teardown",
        args.nodes, args.pods
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The waits and scripts below block this thread only: the labs' work
    // runs on the runtime's workers and threads of its own.
    rt.block_on(async { run_labs(&args).await })
}

async fn run_labs(args: &Options) -> super::Result<()> {
    let total_pods = args.nodes * args.pods;
    // The whole lab first, on a kernel with no earlier clean-up pending; the
    // baseline's sample after it (each of its two sides waits for the kernel
    // in the same way, see `baseline`).
    let (waited, settled) = settle(None);
    let before = live_namespaces();
    say!(
        "  kernel before the build: {} live network namespaces{}",
        before.map_or("? (no /proc/slabinfo)".to_string(), |n| n.to_string()),
        if waited > Duration::from_millis(500) {
            format!(
                " (waited {:.1} s for earlier ones to be freed{})",
                waited.as_secs_f64(),
                if settled { "" } else { ", gave up" }
            )
        } else {
            String::new()
        }
    );
    let phases = timed_lab(&format!("bs{}", std::process::id()), args.nodes, args.pods).await?;
    let total = phases.total();
    let per_pod = phases.pods / total_pods.max(1) as u32;
    println!(
        "  fabric + nodes {:.1} ms; pods {:.1} ms ({:.3} ms per pod); teardown {:.1} ms; total {:.1} ms",
        ms(phases.nodes),
        ms(phases.pods),
        ms(per_pod),
        ms(phases.teardown),
        ms(total)
    );
    println!(
        "  CPU (user + system, getrusage): {:.2} s in all, {:.3} ms per pod; the rest of the wall time is waiting \
         (the kernel's locks, other work on the machine)",
        phases.cpu.as_secs_f64(),
        ms(phases.pods_cpu / total_pods.max(1) as u32)
    );
    println!(
        "  memory: harness peak RSS {} MiB; the kernel's share with the lab up (MemAvailable fell by) {} MiB",
        proc_kib("/proc/self/status", "VmHWM:").unwrap_or(0) / 1024,
        phases.kernel_kib / 1024
    );
    if let Some(after) = live_namespaces() {
        // Most of the lab's namespaces gone: other work on the machine may
        // make or free a few meanwhile.
        let lab = (total_pods + args.nodes + 2) as u64;
        let (freed, done) = settle(Some(after.saturating_sub(lab - lab / 20)));
        println!(
            "  teardown removes the pins; the kernel freed the namespaces in the background {} {:.1} s after (not in the total)",
            if done { "by" } else { "and was not done" },
            freed.as_secs_f64()
        );
    }
    if !args.no_baseline {
        baseline(args, args.baseline_nodes.clamp(1, args.nodes)).await?;
    }
    print_target(
        &format!(
            "{total_pods} pods built and torn down < {} s",
            TARGET.as_secs()
        ),
        &format!("{:.1} s", total.as_secs_f64()),
        total < TARGET,
    );
    print_load("end");
    Ok(())
}
