//! `fip-harness bench`: measurements that print the figure and, in the same run,
//! the baseline the issue names, with the ratio. The benchmarks are the
//! library's `bench` module; this maps the flags to their options.

use std::process::ExitCode;

use fip_harness::bench;
use fip_harness::control::UpdateOrder;
use fip_harness::runner::DataplaneChoice;
use fip_harness::seed::Seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Build and tear down 10 nodes x 10 pods; compare with a script of `ip` commands.
    Lab(LabArgs),
    /// Program 10,000 floating IPs, move one, and measure RTT through the NAT.
    Dataplane(DataplaneArgs),
    /// Round trips per second through one floating IP for ICMP, GRE and SCTP.
    Traffic(TrafficArgs),
    /// Move 100 floating IPs a second among 1,000 under probes; drain a node at once.
    Churn(ChurnArgs),
    /// Build and tear down 100 nodes x 100 pods; time each phase and report memory.
    Scale(ScaleArgs),
    /// Generated cases a minute as `explore` runs them, against `run` on the same files.
    Explore(ExploreArgs),
    /// `run` of a catalogue by another build (`--baseline`) and by this one, back to back.
    Catalogue(CatalogueArgs),
}

#[derive(Debug, clap::Args)]
struct CatalogueArgs {
    /// The fip-harness binary to compare with (e.g. the previous release's).
    #[arg(long, value_name = "PATH")]
    baseline: std::path::PathBuf,
    /// Scenario files or folders, as `run` takes them.
    #[arg(default_value = "scenarios")]
    paths: Vec<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ExploreArgs {
    /// Cases to generate (the same ones for the explorer and the baseline).
    #[arg(long, default_value_t = bench::explore::Options::default().cases)]
    cases: u64,
    /// Cases at a time, for the explorer and for `run --jobs`.
    #[arg(long, short, default_value_t = bench::explore::Options::default().jobs)]
    jobs: usize,
    /// The dataplane both run on.
    #[arg(long, value_name = "DATAPLANE", default_value_t = bench::explore::Options::default().dataplane)]
    dataplane: DataplaneChoice,
    /// The cases' seed.
    #[arg(long, value_name = "N", default_value_t = bench::explore::Options::default().seed)]
    seed: Seed,
    /// Build a lab for every explored case (as explore did before labs
    /// were reused between cases of the same shape).
    #[arg(long)]
    fresh_labs: bool,
}

#[derive(Debug, clap::Args)]
struct LabArgs {
    /// Nodes in the lab.
    #[arg(long, default_value_t = bench::lab::Options::default().nodes)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = bench::lab::Options::default().pods)]
    pods: usize,
    /// Runs of the library and of each script (medians are reported).
    #[arg(long, default_value_t = bench::lab::Options::default().runs)]
    runs: usize,
    /// Pause between runs (not timed) so the kernel's asynchronous cleanup of the
    /// previous run's namespaces does not land in the next measurement.
    #[arg(long, default_value_t = bench::lab::Options::default().settle_ms)]
    settle_ms: u64,
    /// Skip the `ip` script baselines.
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Debug, clap::Args)]
struct DataplaneArgs {
    /// Floating IPs on the loaded node.
    #[arg(long, default_value_t = bench::dataplane::Options::default().count)]
    count: u32,
    /// Pings per RTT figure (each a new flow, so each goes through the NAT rules).
    #[arg(long, default_value_t = bench::dataplane::Options::default().pings)]
    pings: usize,
    /// Moves per move figure (median and p99 are reported).
    #[arg(long, default_value_t = bench::dataplane::Options::default().moves)]
    moves: usize,
}

#[derive(Debug, clap::Args)]
struct TrafficArgs {
    /// Round trips per protocol.
    #[arg(long, default_value_t = bench::traffic::Options::default().count)]
    count: u32,
    /// Probes in flight at once.
    #[arg(long, default_value_t = bench::traffic::Options::default().window)]
    window: u32,
    /// Rounds of ICMP and ping taking turns; their medians are compared.
    #[arg(long, default_value_t = bench::traffic::Options::default().rounds)]
    rounds: u32,
}

#[derive(Debug, clap::Args)]
struct ChurnArgs {
    /// Nodes in the lab.
    #[arg(long, default_value_t = bench::churn::Options::default().nodes)]
    nodes: usize,
    /// Pods per node, each holding one floating IP at first.
    #[arg(long, default_value_t = bench::churn::Options::default().pods)]
    pods: usize,
    /// Moves per second in the rolling drain.
    #[arg(long, default_value_t = bench::churn::Options::default().rate)]
    rate: u32,
    /// Seconds of rolling drain (rate x seconds moves, each floating IP at most once).
    #[arg(long, default_value_t = bench::churn::Options::default().seconds)]
    seconds: u32,
    /// Moving floating IPs probed per phase (each by a stream of its own).
    #[arg(long, default_value_t = bench::churn::Options::default().sample)]
    sample: usize,
    /// Gap between two probes of a stream, in milliseconds (the resolution
    /// of the convergence figure).
    #[arg(long, default_value_t = bench::churn::Options::default().interval_ms)]
    interval_ms: u64,
    /// Backends to compare (all by default).
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<super::choices::Backend>,
    /// Update orders to compare: felix (Calico's: each node's routes in
    /// parallel with its NAT) and ordered (all NAT, then routes); both by
    /// default.
    #[arg(long, value_delimiter = ',')]
    orders: Vec<UpdateOrder>,
}

#[derive(Debug, clap::Args)]
struct ScaleArgs {
    /// Nodes in the lab.
    #[arg(long, default_value_t = bench::scale::Options::default().nodes)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = bench::scale::Options::default().pods)]
    pods: usize,
    /// Nodes (with as many pods each) of the sample the `ip -batch` baseline
    /// builds, and the library beside it: the script takes several
    /// milliseconds a namespace, over a minute for the whole lab.
    #[arg(long, default_value_t = bench::scale::Options::default().baseline_nodes)]
    baseline_nodes: usize,
    /// Skip the baseline.
    #[arg(long)]
    no_baseline: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!(
            "benchmarks build labs (network namespaces) and need root: `sudo fip-harness bench ...`"
        );
    }
    // Labs must not be built before the handler is in place.
    super::signals::tear_down_labs_on_ctrl_c(|_| {});
    match args.what {
        What::Lab(a) => bench::lab::run(bench::lab::Options {
            nodes: a.nodes,
            pods: a.pods,
            runs: a.runs,
            settle_ms: a.settle_ms,
            no_baseline: a.no_baseline,
        }),
        What::Dataplane(a) => bench::dataplane::run(bench::dataplane::Options {
            count: a.count,
            pings: a.pings,
            moves: a.moves,
        }),
        What::Traffic(a) => bench::traffic::run(bench::traffic::Options {
            count: a.count,
            window: a.window,
            rounds: a.rounds,
        }),
        What::Churn(a) => bench::churn::run(bench::churn::Options {
            nodes: a.nodes,
            pods: a.pods,
            rate: a.rate,
            seconds: a.seconds,
            sample: a.sample,
            interval_ms: a.interval_ms,
            backends: a.backends.into_iter().map(Into::into).collect(),
            orders: a.orders,
        }),
        What::Scale(a) => bench::scale::run(bench::scale::Options {
            nodes: a.nodes,
            pods: a.pods,
            baseline_nodes: a.baseline_nodes,
            no_baseline: a.no_baseline,
        }),
        What::Explore(a) => bench::explore::run(bench::explore::Options {
            cases: a.cases,
            jobs: a.jobs,
            dataplane: a.dataplane,
            seed: a.seed,
            reuse_labs: !a.fresh_labs,
        }),
        What::Catalogue(a) => bench::catalogue::run(bench::catalogue::Options {
            baseline: a.baseline,
            paths: a.paths,
        }),
    }?;
    Ok(ExitCode::SUCCESS)
}
