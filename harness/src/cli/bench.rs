//! `fip-harness bench`: measurements that print the figure and, in the same run,
//! the baseline the issue names, with the ratio.

use std::process::ExitCode;

mod churn;
mod churn_figures;
mod churn_plan;
mod churn_report;
mod dataplane;
mod dataplane_bird;
mod figures;
mod lab;
mod lab_script;
mod scale;
mod traffic;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Build and tear down 10 nodes x 10 pods; compare with a script of `ip` commands.
    Lab(lab::Args),
    /// Program 10,000 floating IPs, move one, and measure RTT through the NAT.
    Dataplane(dataplane::Args),
    /// Round trips per second through one floating IP for ICMP, GRE and SCTP.
    Traffic(traffic::Args),
    /// Move 100 floating IPs a second among 1,000 under probes; drain a node at once.
    Churn(churn::Args),
    /// Build and tear down 100 nodes x 100 pods; time each phase and report memory.
    Scale(scale::Args),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!(
            "benchmarks build labs (network namespaces) and need root: `sudo fip-harness bench ...`"
        );
    }
    match args.what {
        What::Lab(args) => lab::run(args),
        What::Dataplane(args) => dataplane::run(args),
        What::Traffic(args) => traffic::run(args),
        What::Scale(args) => scale::run(args),
        What::Churn(args) => churn::run(args),
    }
}
