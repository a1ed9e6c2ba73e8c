//! `fip-harness bench lab`: build and tear down N nodes x M pods with the
//! library, and in the same run the same topology with two scripts of `ip`
//! commands (one `ip -batch` per namespace, and one process per command),
//! the same number of runs each; print the medians and the ratios.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::error::Context;
use crate::lab::down::down_lab;
use crate::lab::{Lab, LabSpec, NodeSpec, PodSpec};

use super::figures::{median, ms, print_load, print_target};
use super::lab_script::Topology;

/// What `bench lab` measures (the CLI's flags of the same names).
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes in the lab.
    pub nodes: usize,
    /// Pods per node.
    pub pods: usize,
    /// Runs of the library and of each script (medians are reported).
    pub runs: usize,
    /// Pause between runs (not timed) so the kernel's asynchronous cleanup of the
    /// previous run's namespaces does not land in the next measurement.
    pub settle_ms: u64,
    /// Skip the `ip` script baselines.
    pub no_baseline: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 10,
            pods: 10,
            runs: 5,
            settle_ms: 500,
            no_baseline: false,
        }
    }
}

/// Node `i` holds the /25 `198.19.<i>.0/25` (room for 126 pods).
pub(super) fn spec(name: &str, nodes: usize) -> LabSpec {
    LabSpec {
        name: name.to_string(),
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                name: format!("node-{i}"),
                blocks: vec![format!("198.19.{i}.0/25").parse().expect("block")],
            })
            .collect(),
        externals: vec!["client".into()],
        dual_stack: false,
    }
}

/// Pods `first..first + per_node` of every node, addressed from its block.
pub(super) fn pods(nodes: usize, per_node: usize, first: usize) -> Vec<PodSpec> {
    (0..nodes)
        .flat_map(|i| {
            (first..first + per_node).map(move |k| {
                let address: IpAddr = format!("198.19.{i}.{}", k + 1)
                    .parse()
                    .expect("pod address");
                PodSpec::new(
                    &format!("pod-{i}-{k}"),
                    "default",
                    &format!("node-{i}"),
                    vec![address],
                )
            })
        })
        .collect()
}

struct LibraryRun {
    build: Duration,
    pods: Duration,
    teardown: Duration,
    single_pod: Vec<Duration>,
}

async fn library_run(name: &str, args: &Options) -> super::Result<LibraryRun> {
    let start = Instant::now();
    let mut lab = Lab::build(spec(name, args.nodes)).await?;
    let pods_started = Instant::now();
    lab.add_pods(&pods(args.nodes, args.pods, 0)).await?;
    let pods_time = pods_started.elapsed();
    let build = start.elapsed();
    // Pods wired one at a time, as a CNI ADD would: per-pod latency.
    let mut single_pod = Vec::new();
    for pod in pods(args.nodes.min(2), 5, args.pods) {
        let t = Instant::now();
        lab.add_pod(&pod).await?;
        single_pod.push(t.elapsed());
    }
    let t = Instant::now();
    lab.teardown()?;
    Ok(LibraryRun {
        build,
        pods: pods_time,
        teardown: t.elapsed(),
        single_pod,
    })
}

pub fn run(args: Options) -> super::Result<()> {
    if args.runs == 0 || args.nodes == 0 || args.nodes > 200 || args.pods > 120 {
        fail!("use 1..=200 nodes, at most 120 pods per node and at least one run");
    }
    print_load("start");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let lab_name = format!("bl{}", std::process::id());
    let result = rt.block_on(async {
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
            runs.push(library_run(&lab_name, &args).await?);
        }
        tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
        Ok::<_, super::BenchError>(runs)
    });
    let runs = match result {
        Ok(runs) => runs,
        Err(e) => {
            down_lab(&lab_name);
            return Err(e);
        }
    };
    let total_pods = args.nodes * args.pods;
    let totals: Vec<Duration> = runs.iter().map(|r| r.build + r.teardown).collect();
    let lib_total = median(&totals);
    let per_pod: Vec<Duration> = runs
        .iter()
        .map(|r| r.pods / total_pods.max(1) as u32)
        .collect();
    let per_pod_all_in: Vec<Duration> = runs
        .iter()
        .map(|r| r.build / total_pods.max(1) as u32)
        .collect();
    let single: Vec<Duration> = runs
        .iter()
        .flat_map(|r| r.single_pod.iter().copied())
        .collect();
    say!(
        "library: {} nodes x {} pods (+1 external, fabric), {} runs",
        args.nodes,
        args.pods,
        args.runs
    );
    say!(
        "  build+teardown median {:.1} ms (min {:.1}, max {:.1}); build {:.1} ms, teardown {:.1} ms (medians)",
        ms(lib_total),
        ms(*totals.iter().min().expect("runs")),
        ms(*totals.iter().max().expect("runs")),
        ms(median(&runs.iter().map(|r| r.build).collect::<Vec<_>>())),
        ms(median(&runs.iter().map(|r| r.teardown).collect::<Vec<_>>())),
    );
    say!(
        "  per pod: {:.3} ms batched (add_pods of all pods / pods); {:.3} ms counting the fabric and nodes too; \
         single add_pod {:.3} ms ({} adds, median)",
        ms(median(&per_pod)),
        ms(median(&per_pod_all_in)),
        ms(median(&single)),
        single.len()
    );
    if args.no_baseline {
        print_load("end");
        return Ok(());
    }
    // The baselines are scripts of `ip` commands; say which package is missing
    // rather than timing a script that fails at its first line.
    crate::programs::require_program("ip")?;
    let topology = Topology::new(
        &format!("bi{}", std::process::id()),
        args.nodes,
        &pods(args.nodes, args.pods, 0),
    );
    let batched = script_runs(&topology, Style::Batched, args.runs, args.settle_ms)?;
    let per_command = script_runs(&topology, Style::PerCommand, args.runs, args.settle_ms)?;
    for figure in [&batched, &per_command] {
        say!(
            "{}: {} processes to build, {} to tear down; build {:.1} ms ({:.3} ms per pod all in), \
             teardown {:.1} ms, total {:.1} ms (medians of {} runs)",
            figure.style.label(),
            figure.build_processes,
            figure.teardown_processes,
            ms(figure.build),
            ms(figure.build / total_pods.max(1) as u32),
            ms(figure.teardown),
            ms(figure.total),
            args.runs
        );
    }
    let new_ratio = batched.total.as_secs_f64() / lib_total.as_secs_f64();
    let old_ratio = per_command.total.as_secs_f64() / lib_total.as_secs_f64();
    say!("ratio (script / library, build+teardown; above 1 means the library is faster):");
    say!("  vs ip -batch per namespace (fair baseline): {new_ratio:.2}x");
    say!("  vs one ip process per command (old baseline): {old_ratio:.2}x");
    print_target(
        "library at least as fast as the ip -batch script (ratio >= 1.0)",
        &format!("{new_ratio:.2}x"),
        new_ratio >= 1.0,
    );
    print_load("end");
    Ok(())
}

#[derive(Clone, Copy)]
pub(super) enum Style {
    Batched,
    PerCommand,
}

impl Style {
    pub(super) fn label(self) -> &'static str {
        match self {
            Style::Batched => "ip -batch per namespace",
            Style::PerCommand => "ip, one process per command",
        }
    }
}

pub(super) struct ScriptFigure {
    pub style: Style,
    pub build_processes: usize,
    pub teardown_processes: usize,
    pub build: Duration,
    pub teardown: Duration,
    pub total: Duration,
}

/// Run one style's build and teardown scripts `runs` times, each after a
/// pause of `settle_ms` as the library runs have; medians of each part.
pub(super) fn script_runs(
    topology: &Topology,
    style: Style,
    runs: usize,
    settle_ms: u64,
) -> super::Result<ScriptFigure> {
    let ((build_processes, build_script), (teardown_processes, teardown_script)) = match style {
        Style::Batched => (topology.batched(), topology.batched_teardown()),
        Style::PerCommand => (topology.per_command(), topology.per_command_teardown()),
    };
    let (mut builds, mut teardowns, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        std::thread::sleep(Duration::from_millis(settle_ms));
        let built = timed_sh(&build_script);
        let torn = timed_sh(&teardown_script);
        // Whatever a failed script left goes too (namespaces only; the
        // scripts add nothing outside them).
        let leftovers: Vec<&str> = topology
            .namespaces()
            .filter(|ns| std::path::Path::new(&format!("/run/netns/{ns}")).exists())
            .collect();
        for ns in &leftovers {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
        let (build, teardown) = (built?, torn?);
        check!(
            leftovers.is_empty(),
            "{}: teardown left {} namespaces",
            style.label(),
            leftovers.len()
        );
        builds.push(build);
        teardowns.push(teardown);
        totals.push(build + teardown);
    }
    Ok(ScriptFigure {
        style,
        build_processes,
        teardown_processes,
        build: median(&builds),
        teardown: median(&teardowns),
        total: median(&totals),
    })
}

fn timed_sh(script: &str) -> super::Result<Duration> {
    // From a file: a large lab's script is longer than one argument may be
    // (MAX_ARG_STRLEN, 128 KiB).
    let path = std::env::temp_dir().join(format!("fip-harness-bench-{}.sh", std::process::id()));
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    let start = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-e")
        .arg(&path)
        .status();
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(&path);
    let status = status.context("running sh")?;
    check!(status.success(), "the ip script failed ({status})");
    Ok(elapsed)
}
