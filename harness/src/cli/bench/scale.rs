//! `fip-harness bench scale`: one large lab (100 nodes x 100 pods by default)
//! built and torn down by the library, with the time of each phase and the
//! memory it takes: the harness's own peak (VmHWM) and what the kernel's
//! namespaces, links and routes take (MemAvailable before and with the lab up).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use fip_harness::lab::registry::down_lab;
use fip_harness::lab::Lab;

use super::figures::{cpu_times, ms, print_load, print_target};
use super::lab::{pods, spec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Nodes in the lab.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 100)]
    pods: usize,
}

/// The figure before this work: 1.6 ms per pod, batched.
const BASELINE_PER_POD: Duration = Duration::from_micros(1_630);
const TARGET: Duration = Duration::from_secs(15);

/// A `kB` field of a /proc file (`VmHWM:` of /proc/self/status,
/// `MemAvailable:` of /proc/meminfo), in KiB.
fn proc_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
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

async fn build_and_teardown(name: &str, args: &Args) -> anyhow::Result<Phases> {
    let available_before = proc_kib("/proc/meminfo", "MemAvailable:").unwrap_or(0);
    let (cpu_start, _) = cpu_times();
    let started = Instant::now();
    let mut lab = Lab::build(spec(name, args.nodes)).await?;
    let nodes = started.elapsed();
    let started = Instant::now();
    let (cpu_pods_start, _) = cpu_times();
    lab.add_pods(&pods(args.nodes, args.pods, 0)).await?;
    let pods = started.elapsed();
    let pods_cpu = cpu_times().0.saturating_sub(cpu_pods_start);
    let available_up = proc_kib("/proc/meminfo", "MemAvailable:").unwrap_or(0);
    let started = Instant::now();
    lab.teardown()?;
    Ok(Phases {
        nodes,
        pods,
        teardown: started.elapsed(),
        kernel_kib: available_before as i64 - available_up as i64,
        pods_cpu,
        cpu: cpu_times().0.saturating_sub(cpu_start),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.nodes == 0 || args.nodes > 200 || args.pods > 120 {
        bail!("use 1..=200 nodes and at most 120 pods per node");
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
    let lab_name = format!("bs{}", std::process::id());
    let result = rt.block_on(async {
        fip_harness::lab::signals::spawn_teardown_on_signal(|_| {})?;
        build_and_teardown(&lab_name, &args).await
    });
    let phases = match result {
        Ok(phases) => phases,
        Err(e) => {
            down_lab(&lab_name);
            return Err(e);
        }
    };
    let total = phases.nodes + phases.pods + phases.teardown;
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
    println!(
        "  (teardown removes the pins; the kernel frees the namespaces in the background after)"
    );
    let baseline = BASELINE_PER_POD * total_pods as u32;
    println!(
        "baseline: {:.3} ms per pod batched before this work -> {:.1} s for the pods alone; ratio baseline / now {:.2}x",
        ms(BASELINE_PER_POD),
        baseline.as_secs_f64(),
        baseline.as_secs_f64() / phases.pods.as_secs_f64().max(1e-9)
    );
    print_target(
        &format!(
            "{total_pods} pods built and torn down < {} s",
            TARGET.as_secs()
        ),
        &format!("{:.1} s", total.as_secs_f64()),
        total < TARGET,
    );
    print_load("end");
    Ok(ExitCode::SUCCESS)
}
