//! `fip-harness bench traffic`: round trips per second through one floating IP
//! (sent, NATed, answered and attributed by token) for ICMP, GRE and SCTP DATA,
//! with `ping -f -l <window> -c <count>` over the same path, with the harness's
//! capture still on, as the reference: the same count, the same number in
//! flight. Runs on a real lab of
//! its own: external host `client`, node `node` with pod `pod`, the floating IP
//! programmed by the control plane (nftables) as a scenario run programs it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Context;
use crate::calico::{IpNatPair, IpPool, WorkloadEndpoint};
use crate::control::{ClusterState, ConntrackProfile, ControlPlane, LabMembers};
use crate::dataplane::{backend, BackendKind};
use crate::lab::netns::Netns;
use crate::lab::{Lab, LabSpec, NodeSpec, PodSpec};
use crate::traffic::{EndpointSpec, ProbeSpec, Protocol, TrafficEngine};

use super::figures::{print_load, print_target};

const FLOATING_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const POD_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 5);

/// What `bench traffic` measures (the CLI's flags of the same names).
#[derive(Debug, Clone)]
pub struct Options {
    /// Round trips per protocol.
    pub count: u32,
    /// Probes in flight at once.
    pub window: u32,
    /// Rounds of ICMP and ping taking turns; their medians are compared.
    pub rounds: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            count: 100_000,
            window: 128,
            rounds: 3,
        }
    }
}

pub fn run(args: Options) -> super::Result<()> {
    if args.window == 0 || args.count == 0 || args.rounds == 0 {
        fail!("use a count, a window and rounds of at least 1");
    }
    print_load("start");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

/// The lab, with the floating IP on `pod` and routed to `node` on the fabric.
async fn build_lab(name: &str) -> super::Result<(Lab, ControlPlane)> {
    let mut lab = Lab::build(LabSpec {
        name: name.to_string(),
        nodes: vec![NodeSpec {
            name: "node".into(),
            blocks: vec!["198.19.0.0/26".parse()?],
        }],
        externals: vec!["client".into()],
        dual_stack: false,
    })
    .await?;
    let pod = PodSpec::new("pod", "default", "node", vec![POD_V4.into()]);
    lab.add_pod(&pod).await?;
    let mut control = ControlPlane::new(
        Arc::new(LabMembers::of(&lab)?),
        backend(BackendKind::Nftables),
        ConntrackProfile::Calico,
    );
    control.update(&ClusterState {
        endpoints: vec![WorkloadEndpoint {
            namespace: pod.namespace,
            pod: pod.name,
            node: pod.node,
            interface: pod.interface,
            ifindex: None,
            addresses: pod.addresses,
            ip_nats: vec![IpNatPair {
                internal: POD_V4.into(),
                external: FLOATING_V4.into(),
            }],
        }],
        felix_floating_ips: true,
        calico: Default::default(),
        pools: vec![IpPool::plain("fips", "203.0.113.0/24".parse()?, 26)],
        node_blocks: Default::default(),
    })?;
    Ok((lab, control))
}

/// One probe run of `args.count` round trips of `protocol` as fast as the
/// window allows, counted by what came back and what the pod's capture saw.
async fn measure(
    engine: &TrafficEngine,
    protocol: Protocol,
    step: u32,
    args: &Options,
) -> super::Result<Figure> {
    let floating = IpAddr::V4(FLOATING_V4);
    engine.begin_step(step);
    let mut spec = ProbeSpec::new("client", floating, protocol);
    spec.count = args.count;
    spec.interval = Duration::ZERO;
    spec.window = args.window;
    spec.step = step;
    spec.payload_len = 32;
    spec.collect_deliveries = false;
    let started = Instant::now();
    let outcome = engine.probe(spec).await?;
    // The SCTP figure includes its handshake and shutdown, a few ms.
    let elapsed = started.elapsed();
    let answered = outcome
        .replies
        .iter()
        .filter(|r| r.src == floating && r.token.step == step)
        .count();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered = engine
        .deliveries(outcome.probe)
        .iter()
        .filter(|o| o.dst == IpAddr::V4(POD_V4) && o.token.seq < outcome.sent)
        .count();
    if let Ok(capture) = engine.capture("pod") {
        capture.forget_before(step + 1);
    }
    Ok(Figure {
        protocol,
        sent: outcome.sent,
        answered,
        delivered,
        elapsed,
    })
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

struct Figure {
    protocol: Protocol,
    sent: u32,
    answered: usize,
    delivered: usize,
    elapsed: Duration,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self) -> String {
        format!(
            "{:<5} sent {:>7}  answered+attributed {:>7}  seen at pod {:>7}  in {:>6.3} s  = {:>8.0} round trips/s",
            self.protocol.to_string(),
            self.sent,
            self.answered,
            self.delivered,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

async fn bench(args: Options) -> super::Result<()> {
    let lab = format!("bt{}", std::process::id() % 100_000);
    let (bed, _control) = build_lab(&lab)
        .await
        .context("building the benchmark lab")?;
    let client = bed.netns("client")?.clone();
    let engine = TrafficEngine::new(&lab);
    engine
        .add_endpoint(EndpointSpec::pod(
            "pod",
            bed.netns("pod")?.clone(),
            vec![IpAddr::V4(POD_V4)],
            "eth0",
        ))
        .await?;
    engine
        .add_endpoint(EndpointSpec::external("client", client.clone()))
        .await?;
    say!(
        "path: client -> fabric -> node (nft DNAT {FLOATING_V4} -> {POD_V4}) -> pod, capture on pod eth0, \
         {} round trips each, window {}",
        args.count, args.window
    );
    // ICMP and ping take turns, `rounds` times, and the medians are
    // compared: one run of each swings by 10 to 20 % on a shared machine,
    // and taking turns keeps slow drift (other work, the conntrack table
    // filling) from favouring either side.
    let mut step = 0;
    let mut icmp_runs = Vec::new();
    let mut ping_runs = Vec::new();
    for round in 1..=args.rounds {
        step += 1;
        let figure = measure(&engine, Protocol::Icmp, step, &args).await?;
        say!("round {round}: {}", figure.line());
        icmp_runs.push(figure);
        // The reference runs while the engine (and its capture on the pod)
        // is up, as it is for the harness's own figures.
        let ping = ping_flood(&client, args.count, args.window)?;
        say!(
            "round {round}: ping -f -l {} -c {}: {} received in {:.3} s = {:.0} round trips/s",
            args.window,
            args.count,
            ping.received,
            ping.elapsed.as_secs_f64(),
            ping.rate()
        );
        ping_runs.push(ping);
    }
    let mut others = Vec::new();
    for protocol in [Protocol::Gre, Protocol::Sctp] {
        step += 1;
        let figure = measure(&engine, protocol, step, &args).await?;
        say!("{}", figure.line());
        others.push(figure);
    }
    let icmp = median(icmp_runs.iter().map(Figure::rate));
    let ping = median(ping_runs.iter().map(PingFigure::rate));
    say!(
        "medians of {} rounds: icmp {icmp:.0}, ping -f -l {} {ping:.0} round trips/s",
        args.rounds,
        args.window
    );
    say!(
        "ratio icmp  / ping -f -l {} = {:.2}x",
        args.window,
        icmp / ping
    );
    for figure in &others {
        say!(
            "ratio {:<5} / ping -f -l {} = {:.2}x",
            figure.protocol.to_string(),
            args.window,
            figure.rate() / ping
        );
    }
    drop(engine);
    bed.teardown()?;
    let ratio = icmp / ping;
    print_target(
        "ICMP at least as fast as ping -f with the same window, medians (>= 1.00x)",
        &format!("{ratio:.2}x"),
        ratio >= 1.0,
    );
    say!("(GRE and SCTP have no ping of their own: their ratios above use the same ICMP figure)");
    print_load("end");
    Ok(())
}

struct PingFigure {
    received: u64,
    elapsed: Duration,
}

impl PingFigure {
    fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn ping_flood(client: &Netns, count: u32, window: u32) -> super::Result<PingFigure> {
    let out = client
        .command(crate::programs::require_program("ping")?)
        .args([
            "-f",
            "-q",
            "-n",
            // Preload: `window` requests in flight, as the harness keeps.
            "-l",
            &window.to_string(),
            "-c",
            &count.to_string(),
            &FLOATING_V4.to_string(),
        ])
        .output()
        .context("running ping -f (Debian package iputils-ping) in the client namespace")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ping_summary(&text).with_context(|| {
        format!(
            "unexpected ping output:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `N packets transmitted, M received, ..., time Tms`.
fn parse_ping_summary(text: &str) -> super::Result<PingFigure> {
    let re = regex::Regex::new(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms")?;
    let Some(caps) = re.captures(text) else {
        fail!("no ping summary line");
    };
    Ok(PingFigure {
        received: caps[2].parse()?,
        elapsed: Duration::from_millis(caps[3].parse()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_iputils_summary() {
        let text = "--- 203.0.113.10 ping statistics ---\n\
            20000 packets transmitted, 19998 received, 0.01% packet loss, time 1520ms\n\
            rtt min/avg/max/mdev = 0.010/0.030/0.500/0.010 ms, ipg/ewma 0.076/0.031 ms\n";
        let figure = parse_ping_summary(text).unwrap();
        assert_eq!(figure.received, 19_998);
        assert_eq!(figure.elapsed, Duration::from_millis(1520));
    }
}
