//! `fip-harness bench lab`: build and tear down N nodes x M pods with the
//! library, and in the same run the same topology with a script of `ip`
//! commands; print both times and the ratio.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fip_harness::lab::registry::down_lab;
use fip_harness::lab::spec::namespace_name;
use fip_harness::lab::{Lab, LabSpec, NodeSpec, PodSpec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Nodes in the lab.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 10)]
    pods: usize,
    /// Library runs (the median is reported); the `ip` script runs once.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Pause between runs (not timed) so the kernel's asynchronous cleanup of the
    /// previous run's namespaces does not land in the next measurement.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    /// Skip the `ip` script baseline.
    #[arg(long)]
    no_baseline: bool,
}

fn spec(name: &str, nodes: usize) -> LabSpec {
    LabSpec {
        name: name.to_string(),
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                name: format!("node-{i}"),
                blocks: vec![format!("198.19.{i}.0/26").parse().expect("block")],
            })
            .collect(),
        externals: vec!["client".into()],
        dual_stack: false,
    }
}

fn pods(nodes: usize, per_node: usize, first: usize) -> Vec<PodSpec> {
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

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct LibraryRun {
    build: Duration,
    pods: Duration,
    teardown: Duration,
    single_pod: Vec<Duration>,
}

async fn library_run(name: &str, args: &Args) -> anyhow::Result<LibraryRun> {
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.runs == 0 || args.nodes == 0 || args.nodes > 200 || args.pods > 60 {
        bail!("use 1..=200 nodes, at most 60 pods per node and at least one run");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let lab_name = format!("bl{}", std::process::id());
    let ip_name = format!("bi{}", std::process::id());
    let result = rt.block_on(async {
        fip_harness::lab::signals::spawn_teardown_on_signal(|_| {})?;
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
            runs.push(library_run(&lab_name, &args).await?);
        }
        tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
        anyhow::Ok(runs)
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
    let lib_total = median(totals.clone());
    let per_pod = median(
        runs.iter()
            .map(|r| r.pods / total_pods.max(1) as u32)
            .collect(),
    );
    let per_pod_all_in = median(
        runs.iter()
            .map(|r| r.build / total_pods.max(1) as u32)
            .collect(),
    );
    let single = median(
        runs.iter()
            .flat_map(|r| r.single_pod.iter().copied())
            .collect(),
    );
    println!(
        "library: {} nodes x {} pods (+1 external, fabric), {} runs",
        args.nodes, args.pods, args.runs
    );
    println!(
        "  build+teardown median {:.1} ms (min {:.1}, max {:.1}); build {:.1} ms, teardown {:.1} ms (median run)",
        ms(lib_total),
        ms(*totals.iter().min().expect("runs")),
        ms(*totals.iter().max().expect("runs")),
        ms(median(runs.iter().map(|r| r.build).collect())),
        ms(median(runs.iter().map(|r| r.teardown).collect())),
    );
    println!(
        "  per pod: {:.3} ms median (add_pods of all pods / pods); {:.3} ms counting the fabric and nodes too; single add_pod median {:.3} ms",
        ms(per_pod),
        ms(per_pod_all_in),
        ms(single)
    );
    if args.no_baseline {
        return Ok(ExitCode::SUCCESS);
    }
    let (commands, build_script) = ip_script(&ip_name, &args);
    let namespaces: Vec<String> = namespaces(&ip_name, &args);
    // The baseline is a script of `ip` commands; say which package is missing
    // rather than timing a script that fails at its first line.
    fip_harness::programs::require_program("ip")?;
    let start = Instant::now();
    let built = std::process::Command::new("sh")
        .arg("-ec")
        .arg(&build_script)
        .status()
        .context("running the ip script")?;
    let ip_build = start.elapsed();
    let start = Instant::now();
    let mut teardown = String::new();
    for ns in &namespaces {
        let _ = writeln!(teardown, "ip netns del {ns} 2>/dev/null || true");
    }
    std::process::Command::new("sh")
        .arg("-c")
        .arg(&teardown)
        .status()?;
    let ip_teardown = start.elapsed();
    // Whatever the script left (it stops at its first error) goes too.
    let leftovers = down_lab(&ip_name);
    if !built.success() {
        bail!(
            "the ip script failed ({built}); removed {:?}",
            leftovers.removed_namespaces
        );
    }
    let ip_total = ip_build + ip_teardown;
    println!(
        "ip script: {} commands (+{} `ip netns del`): build {:.1} ms, teardown {:.1} ms, total {:.1} ms",
        commands,
        namespaces.len(),
        ms(ip_build),
        ms(ip_teardown),
        ms(ip_total)
    );
    println!(
        "ratio: library is {:.1}x faster than the ip script (build+teardown)",
        ip_total.as_secs_f64() / lib_total.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn namespaces(lab: &str, args: &Args) -> Vec<String> {
    let mut names = vec![namespace_name(lab, "fabric"), namespace_name(lab, "client")];
    for i in 0..args.nodes {
        names.push(namespace_name(lab, &format!("node-{i}")));
    }
    for pod in pods(args.nodes, args.pods, 0) {
        names.push(namespace_name(lab, &pod.name));
    }
    names
}

/// The same topology as `Lab::build` + `add_pods` (IPv4), one `ip` (or `ip
/// netns exec ... sysctl`) command per step, sysctls batched per namespace.
fn ip_script(lab: &str, args: &Args) -> (usize, String) {
    let mut lines: Vec<String> = Vec::new();
    let fabric = namespace_name(lab, "fabric");
    let client = namespace_name(lab, "client");
    let node_sysctls = "net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
        net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 net.ipv6.conf.all.accept_redirects=0 \
        net.ipv6.conf.default.proxy_ndp=1 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0";
    let no_dad = "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0";
    lines.push(format!("ip netns add {fabric}"));
    lines.push(format!(
        "ip netns exec {fabric} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0 {no_dad}"
    ));
    lines.push(format!("ip -n {fabric} link set lo up"));
    lines.push(format!("ip -n {fabric} link add br-nodes up type bridge"));
    lines.push(format!("ip -n {fabric} link add br-ext up type bridge"));
    lines.push(format!(
        "ip -n {fabric} addr add 198.18.0.1/24 dev br-nodes"
    ));
    lines.push(format!("ip -n {fabric} addr add 198.18.1.1/24 dev br-ext"));
    lines.push(format!("ip netns add {client}"));
    lines.push(format!("ip netns exec {client} sysctl -qw {no_dad}"));
    lines.push(format!(
        "ip -n {fabric} link add x0 master br-ext up type veth peer name eth0 netns {client}"
    ));
    lines.push(format!("ip -n {client} link set lo up"));
    lines.push(format!("ip -n {client} link set eth0 up"));
    lines.push(format!("ip -n {client} addr add 198.18.1.10/24 dev eth0"));
    lines.push(format!("ip -n {client} route add default via 198.18.1.1"));
    for i in 0..args.nodes {
        let node = namespace_name(lab, &format!("node-{i}"));
        lines.push(format!("ip netns add {node}"));
        lines.push(format!("ip netns exec {node} sysctl -qw {node_sysctls}"));
        lines.push(format!(
            "ip -n {fabric} link add n{i} master br-nodes up type veth peer name eth0 netns {node}"
        ));
        lines.push(format!("ip -n {node} link set lo up"));
        lines.push(format!("ip -n {node} link set eth0 up"));
        lines.push(format!(
            "ip -n {node} addr add 198.18.0.{}/24 dev eth0",
            10 + i
        ));
        lines.push(format!("ip -n {node} route add default via 198.18.0.1"));
        for k in 0..args.nodes {
            if k == i {
                lines.push(format!("ip -n {node} route add blackhole 198.19.{k}.0/26"));
            } else {
                lines.push(format!(
                    "ip -n {node} route add 198.19.{k}.0/26 via 198.18.0.{}",
                    10 + k
                ));
            }
        }
        lines.push(format!(
            "ip -n {fabric} route add 198.19.{i}.0/26 via 198.18.0.{}",
            10 + i
        ));
    }
    for i in 0..args.nodes {
        let node = namespace_name(lab, &format!("node-{i}"));
        let mut node_pod_sysctls = Vec::new();
        for pod in pods(args.nodes, args.pods, 0)
            .iter()
            .filter(|p| p.node == format!("node-{i}"))
        {
            let ns = namespace_name(lab, &pod.name);
            let cali = &pod.interface;
            lines.push(format!("ip netns add {ns}"));
            lines.push(format!("ip netns exec {ns} sysctl -qw {no_dad}"));
            lines.push(format!(
                "ip -n {node} link add {cali} address ee:ee:ee:ee:ee:ee up type veth peer name eth0 netns {ns}"
            ));
            node_pod_sysctls.push(format!(
                "net.ipv4.conf.{cali}.proxy_arp=1 net.ipv4.neigh.{cali}.proxy_delay=0"
            ));
            lines.push(format!(
                "ip -n {node} route add {} dev {cali} scope link",
                pod.addresses[0]
            ));
            lines.push(format!("ip -n {ns} link set lo up"));
            lines.push(format!("ip -n {ns} link set eth0 up"));
            lines.push(format!(
                "ip -n {ns} addr add {}/32 dev eth0",
                pod.addresses[0]
            ));
            lines.push(format!(
                "ip -n {ns} route add default via 169.254.1.1 dev eth0 onlink"
            ));
        }
        if !node_pod_sysctls.is_empty() {
            lines.push(format!(
                "ip netns exec {node} sysctl -qw {}",
                node_pod_sysctls.join(" ")
            ));
        }
    }
    (lines.len(), lines.join("\n"))
}
