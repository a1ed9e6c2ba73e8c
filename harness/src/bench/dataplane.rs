//! `fip-harness bench dataplane`: program N floating IPs on one node with each
//! backend, move one across nodes, and compare the round-trip time through a
//! node holding N mappings with one holding 1. Every backend in one run, side
//! by side, with ratios to Felix's nftables. Runs on real labs of its own (`Lab` + the control
//! plane, wired as a scenario run wires them).
//!
//! Floating IPs come from 198.19.64.0/18 and synthetic pod addresses from
//! 198.19.128.0/17 (benchmark range), so that 10,000 fit.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Context;
use crate::calico::veth_name_for_workload;
use crate::control::{ConntrackProfile, ControlPlane, LabMembers};
use crate::dataplane::{backend, BackendKind, DnatMapping, NodeNatState, SnatMapping};
use crate::lab::netns::Netns;

use super::dataplane_bird::BirdMove;
pub use super::dataplane_lab::Options;
use super::dataplane_lab::{build_lab, cluster, fip, internal, target_index};
use super::figures::{median, print_load, print_target, quantile};

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "-".into()
    } else {
        format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
    }
}

fn synthetic_state(count: u32) -> NodeNatState {
    NodeNatState {
        dnat: (0..count)
            .map(|i| DnatMapping {
                external: fip(i),
                internal: internal(i),
            })
            .collect(),
        snat: (0..count)
            .map(|i| SnatMapping {
                internal: internal(i),
                external: fip(i),
            })
            .collect(),
        filter: None,
    }
}

/// A backend's short tag for lab names: its place in `BackendKind::ALL` (two
/// backends' names share their first letter).
fn tag(kind: BackendKind) -> usize {
    BackendKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

fn bench_name(tag: &str) -> String {
    format!("b{}{tag}", std::process::id() % 100_000)
}

/// Time to program `count` mappings on a fresh node, then to replace them.
async fn apply_times(kind: BackendKind, count: u32) -> super::Result<(Duration, Duration)> {
    let lab = build_lab(bench_name(&format!("a{}", tag(kind))), false).await?;
    let ns = lab.netns("node-0")?;
    let dataplane = backend(kind);
    let state = synthetic_state(count);
    let started = Instant::now();
    dataplane.apply(ns, &state)?;
    let first = started.elapsed();
    let mut changed = state.clone();
    changed.dnat[0].internal = internal(count + 1);
    let started = Instant::now();
    dataplane.apply(ns, &changed)?;
    let again = started.elapsed();
    check!(
        dataplane.read(ns)?.dnat.len() == count as usize,
        "read back"
    );
    lab.teardown()?;
    Ok((first, again))
}

fn ping_rtts(from: &Netns, to: IpAddr, pings: usize) -> super::Result<Duration> {
    let mut rtts = Vec::new();
    let ping = crate::programs::require_program("ping")?;
    for _ in 0..pings {
        // A new process each time: a new ICMP id, so a new conntrack entry that
        // goes through the nat chains (an established flow skips them).
        let out = from
            .command(&ping)
            .args(["-c1", "-W1", "-n", &to.to_string()])
            .output()
            .context("run ping")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(time) = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("time="))
            .and_then(|t| t.parse::<f64>().ok())
        {
            rtts.push(Duration::from_secs_f64(time / 1e3));
        }
    }
    check!(!rtts.is_empty(), "no ping to {to} got a reply");
    Ok(median(&rtts))
}

/// One move's times from the start of the update: changes computed, NAT on
/// both nodes applied, NAT and routes applied, and the whole update done
/// (Felix's conntrack cleanup included).
#[derive(Clone, Copy, Default)]
struct Move {
    computed: Duration,
    nat: Duration,
    routes: Duration,
    total: Duration,
}

/// Which part of a move a figure reads.
type Pick = fn(&Move) -> Duration;

struct LabFigures {
    moves: Vec<Move>,
    rtt_loaded: Duration,
    rtt_one: Duration,
}

async fn lab_figures(kind: BackendKind, args: &Options) -> super::Result<LabFigures> {
    let lab = build_lab(bench_name(&format!("l{}", tag(kind))), true).await?;
    let web_cali = veth_name_for_workload("default", "web");
    let members = Arc::new(LabMembers::of(&lab)?);
    let ext = lab.netns("ext")?;
    let target = fip(target_index(args.count));

    // One mapping: only the target floating IP.
    let mut one = ControlPlane::new(members.clone(), backend(kind), ConntrackProfile::Calico);
    let mut single = cluster(args.count, false, &web_cali);
    single
        .endpoints
        .retain(|e| e.pod == "web" || e.pod == "web2");
    one.update(&single)?;
    let rtt_one = ping_rtts(ext, target, args.pings)?;
    one.teardown()?;

    let mut control_loaded =
        ControlPlane::new(members.clone(), backend(kind), ConntrackProfile::Calico);
    control_loaded.update(&cluster(args.count, false, &web_cali))?;
    let rtt_loaded = ping_rtts(ext, target, args.pings)?;

    let mut moves = Vec::new();
    for i in 0..args.moves {
        let next = cluster(args.count, i % 2 == 0, &web_cali);
        let applied = control_loaded.update(&next)?;
        check!(applied.changes.nat.len() == 2, "a move touches two nodes");
        moves.push(Move {
            computed: applied.computed,
            nat: applied.nat_applied,
            routes: applied.routes_applied,
            total: applied.elapsed,
        });
    }
    control_loaded.teardown()?;
    lab.teardown()?;
    Ok(LabFigures {
        moves,
        rtt_loaded,
        rtt_one,
    })
}

/// One column per backend (in `BackendKind::ALL` order), then each other
/// backend's figure as a ratio to the first (Felix's nftables).
fn print_table(args: &Options, applies: &[(Duration, Duration)], labs: &[LabFigures]) {
    let first = BackendKind::ALL[0];
    let mut header = format!("{:<50}", "");
    for kind in BackendKind::ALL {
        header.push_str(&format!(" {:>14}", kind.to_string()));
    }
    for kind in &BackendKind::ALL[1..] {
        header.push_str(&format!(" {:>18}", format!("{kind}/{first}")));
    }
    say!("{header}");
    let row = |label: &str, figures: Vec<Duration>| {
        let mut line = format!("{label:<50}");
        for figure in &figures {
            line.push_str(&format!(" {:>14}", ms(*figure)));
        }
        for figure in &figures[1..] {
            line.push_str(&format!(" {:>18}", ratio(*figure, figures[0])));
        }
        say!("{line}");
    };
    row(
        &format!("apply {} mappings (fresh node)", args.count),
        applies.iter().map(|a| a.0).collect(),
    );
    row(
        "replace them (one changed)",
        applies.iter().map(|a| a.1).collect(),
    );
    let part = |lab: &LabFigures, pick: Pick, q: f64| {
        quantile(&lab.moves.iter().map(pick).collect::<Vec<_>>(), q)
    };
    let parts: [(&str, Pick); 4] = [
        ("compute the changes", |m| m.computed),
        ("NAT only (2 nodes, incl. compute)", |m| m.nat),
        ("NAT plus routes (2 nodes + fabric)", |m| m.routes),
        ("whole update (+ conntrack cleanup)", |m| m.total),
    ];
    for (label, pick) in parts {
        for (q, name) in [(0.5, "median"), (0.99, "p99")] {
            row(
                &format!("move: {label}, {name}"),
                labs.iter().map(|l| part(l, pick, q)).collect(),
            );
        }
    }
    row(
        "RTT via node with 1 mapping",
        labs.iter().map(|l| l.rtt_one).collect(),
    );
    row(
        &format!("RTT via node with {} mappings", args.count),
        labs.iter().map(|l| l.rtt_loaded).collect(),
    );
    let mut line = format!("{:<50}", format!("RTT ratio {} / 1", args.count));
    for lab in labs {
        line.push_str(&format!(" {:>14}", ratio(lab.rtt_loaded, lab.rtt_one)));
    }
    say!("{line}");
    say!(
        "baseline: the issue's figures before this work were a move in 86 ms and an apply in 202 ms (map backend)"
    );
    let maps = BackendKind::ALL
        .iter()
        .position(|k| *k == BackendKind::NftMaps)
        .expect("the map backend is benchmarked");
    let apply = applies[maps].0;
    print_target(
        &format!(
            "apply {} mappings on a fresh node < 100 ms (nft-maps)",
            args.count
        ),
        &ms(apply),
        apply < Duration::from_millis(100),
    );
    for (label, pick) in [("NAT only", parts[1].1), ("NAT plus routes", parts[2].1)] {
        let median = part(&labs[maps], pick, 0.5);
        print_target(
            &format!("move median < 10 ms, {label} (nft-maps)"),
            &ms(median),
            median < Duration::from_millis(10),
        );
    }
    say!(
        "(the whole update adds Felix's conntrack cleanup on both nodes, reported as it is: \
         on the Felix layouts a dump of the kernel's conntrack hash, which all namespaces share; \
         on nft-maps deletions by tuple from the node's conntrack events)"
    );
    say!("(the Felix layouts, nftables and iptables, are reported as they are)");
}

/// Which part of a move under BIRD a figure reads.
type BirdPick = fn(&BirdMove) -> Duration;

/// The map backend's moves under BIRD: the NAT figure, then apart from it
/// the end-to-end one (NAT plus BIRD carrying the route to the fabric).
fn print_bird(bird: &super::Result<Vec<BirdMove>>) {
    let moves = match bird {
        Ok(moves) => moves,
        Err(error) => {
            println!("move under BIRD routing: not measured ({})", error.chain());
            return;
        }
    };
    let figure = |pick: BirdPick, q: f64| quantile(&moves.iter().map(pick).collect::<Vec<_>>(), q);
    let parts: [(&str, BirdPick); 2] = [
        ("NAT only (2 nodes, incl. compute)", |m| m.nat),
        ("end to end (NAT + BIRD route at the fabric)", |m| {
            m.converged
        }),
    ];
    println!("nft-maps under BIRD routing, {} moves:", moves.len());
    for (label, pick) in parts {
        println!(
            "  move: {label:<45} median {:>12}  p99 {:>12}",
            ms(figure(pick, 0.5)),
            ms(figure(pick, 0.99))
        );
    }
}

pub fn run(args: Options) -> super::Result<()> {
    print_load("start");
    say!(
        "bench dataplane: {} floating IPs on one node; RTT over {} new flows (median); {} moves (median and p99)",
        args.count, args.pings, args.moves
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (applies, labs, bird) = runtime.block_on(async {
        let mut applies = Vec::new();
        let mut labs = Vec::new();
        for kind in BackendKind::ALL {
            applies.push(
                apply_times(kind, args.count)
                    .await
                    .with_context(|| format!("{kind}: apply"))?,
            );
            labs.push(
                lab_figures(kind, &args)
                    .await
                    .with_context(|| format!("{kind}: lab figures"))?,
            );
        }
        let bird = super::dataplane_bird::bird_moves(&args, bench_name("r")).await;
        Ok::<_, super::BenchError>((applies, labs, bird))
    })?;
    print_table(&args, &applies, &labs);
    print_bird(&bird);
    print_load("end");
    Ok(())
}
