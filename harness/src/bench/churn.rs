//! `fip-harness bench churn`: a lab of 10 nodes x 100 pods holding 1,000
//! floating IPs; a rolling drain moves 100 floating IPs a second for 10 s,
//! then one node is drained at once, while a UDP stream probes a sample of the
//! moving floating IPs every few milliseconds from an external host and the
//! pods on both ends of each sampled move are captured. Per move: convergence
//! (request to the first probe at the new pod), loss, and probes at the old
//! pod after the update returned; and the CPU the harness used. Every backend
//! in one run, each in Felix's update order (every node's routes in parallel
//! with its NAT, `control::order`) and in the harness's ordered one (all NAT,
//! then routes), with ratios to Felix's nftables in Felix's order (the
//! baseline).
//!
//! Moves due while an update is running wait and go together in the next
//! update, up to 100, as Felix batches what arrives while it is busy
//! (felix/dataplane/linux/int_dataplane.go `loopUpdatingDataplane` takes up to
//! `msgPeekLimit` = 100 messages before one `apply`). Routing is the model's
//! (the control plane programs routes as BGP would), so the figure is Felix's
//! part plus route programming, without BIRD's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Context;
use crate::control::{ConntrackProfile, ControlPlane, LabMembers, UpdateOrder};
use crate::dataplane::{backend, BackendKind};
use crate::lab::down::down_lab;
use crate::lab::Lab;
use crate::traffic::{now_unix_ns, EndpointSpec, Protocol, StreamSpec, TrafficEngine};

use super::churn_figures::{move_figures, BackendFigures, MoveRecord, PhaseSummary};
use super::churn_plan::{fip, sample, Plan, PlannedMove};
use super::churn_report::print_report;
use super::figures::{cpu_times, print_load};
use super::lab::spec;

/// What `bench churn` measures (the CLI's flags of the same names).
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes in the lab.
    pub nodes: usize,
    /// Pods per node, each holding one floating IP at first.
    pub pods: usize,
    /// Moves per second in the rolling drain.
    pub rate: u32,
    /// Seconds of rolling drain (rate x seconds moves, each floating IP at most once).
    pub seconds: u32,
    /// Moving floating IPs probed per phase (each by a stream of its own).
    pub sample: usize,
    /// Gap between two probes of a stream, in milliseconds (the resolution
    /// of the convergence figure).
    pub interval_ms: u64,
    /// Backends to compare (all when empty).
    pub backends: Vec<BackendKind>,
    /// Update orders to compare (both when empty).
    pub orders: Vec<UpdateOrder>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 10,
            pods: 100,
            rate: 100,
            seconds: 10,
            sample: 20,
            interval_ms: 5,
            backends: Vec::new(),
            orders: Vec::new(),
        }
    }
}

/// Most moves in one update (Felix's `msgPeekLimit`, see the module docs).
const BATCH_LIMIT: usize = 100;

/// Streams run this long before the first move and after the last update.
const LEAD: Duration = Duration::from_millis(300);
const TAIL: Duration = Duration::from_millis(500);

/// Carry out `moves` on schedule on this (blocking) thread: every move due
/// goes into the next update. Returns each move's request and apply times
/// (Unix ns, in `moves` order), and how many updates there were.
fn run_moves(
    control: &mut ControlPlane,
    plan: &mut Plan,
    moves: &[PlannedMove],
) -> super::Result<(Vec<(u64, u64)>, usize)> {
    let start = Instant::now();
    let start_ns = now_unix_ns();
    let mut times = Vec::with_capacity(moves.len());
    let mut next = 0;
    let mut updates = 0;
    while next < moves.len() {
        let due = start + moves[next].at;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = start.elapsed();
        let first = next;
        while next < moves.len() && moves[next].at <= now && next - first < BATCH_LIMIT {
            plan.holder[moves[next].fip] = moves[next].to;
            next += 1;
        }
        control.update(&plan.cluster())?;
        updates += 1;
        let applied = now_unix_ns();
        for planned in &moves[first..next] {
            times.push((start_ns + planned.at.as_nanos() as u64, applied));
        }
    }
    Ok((times, updates))
}

/// One phase: streams to a sample of `moves`, the moves on schedule, the
/// streams stopped, and every sampled move's figures.
async fn phase(
    engine: &TrafficEngine,
    control: ControlPlane,
    plan: Plan,
    moves: Vec<PlannedMove>,
    args: &Options,
) -> super::Result<(ControlPlane, Plan, PhaseSummary)> {
    let sampled = sample(&moves, args.sample);
    let epoch = now_unix_ns();
    let mut streams = Vec::new();
    for planned in &sampled {
        let spec = StreamSpec::new(
            "client",
            fip(planned.fip),
            Protocol::Udp,
            Duration::from_millis(args.interval_ms.max(1)),
        );
        streams.push(engine.start_stream(spec).await?);
    }
    let from: Vec<String> = sampled
        .iter()
        .map(|m| plan.pods[plan.holder[m.fip]].name.clone())
        .collect();
    tokio::time::sleep(LEAD).await;
    let (cpu_self, cpu_children) = cpu_times();
    let started = Instant::now();
    let (control, plan, times, updates) = tokio::task::spawn_blocking(move || {
        let (mut control, mut plan) = (control, plan);
        let result = run_moves(&mut control, &mut plan, &moves);
        result.map(|(times, updates)| {
            let sampled_times = times_of(&moves, &times);
            (control, plan, sampled_times, updates)
        })
    })
    .await
    .context("the moves' thread")??;
    let wall = started.elapsed();
    let (cpu_self_after, cpu_children_after) = cpu_times();
    tokio::time::sleep(TAIL).await;
    let outcomes = futures::future::try_join_all(streams.into_iter().map(|s| s.stop())).await?;
    let measured: Vec<_> = sampled
        .iter()
        .zip(&outcomes)
        .zip(from)
        .map(|((planned, outcome), from_pod)| {
            let (requested_ns, applied_ns) = times[&planned.fip];
            let record = MoveRecord {
                from_pod,
                to_pod: plan.pods[planned.to].name.clone(),
                requested_ns,
                applied_ns,
            };
            move_figures(outcome, &record, epoch)
        })
        .collect();
    let mut summary = PhaseSummary::of(times.len(), &measured);
    summary.updates = updates;
    summary.cpu_self = cpu_self_after.saturating_sub(cpu_self);
    summary.cpu_children = cpu_children_after.saturating_sub(cpu_children);
    summary.wall = wall;
    Ok((control, plan, summary))
}

/// Request and apply times by floating IP.
fn times_of(
    moves: &[PlannedMove],
    times: &[(u64, u64)],
) -> std::collections::HashMap<usize, (u64, u64)> {
    moves
        .iter()
        .map(|m| m.fip)
        .zip(times.iter().copied())
        .collect()
}

async fn backend_figures(
    kind: BackendKind,
    order: UpdateOrder,
    args: &Options,
) -> super::Result<BackendFigures> {
    let position = BackendKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0);
    let order_index = UpdateOrder::ALL
        .iter()
        .position(|o| *o == order)
        .unwrap_or(0);
    let name = format!("bc{}{position}{order_index}", std::process::id() % 100_000);
    let result = backend_figures_in(&name, kind, order, args).await;
    if result.is_err() {
        down_lab(&name);
    }
    result
}

async fn backend_figures_in(
    name: &str,
    kind: BackendKind,
    order: UpdateOrder,
    args: &Options,
) -> super::Result<BackendFigures> {
    let plan = Plan::new(args.nodes, args.pods);
    let mut lab = Lab::build(spec(name, args.nodes)).await?;
    lab.add_pods(&plan.pods).await?;
    let members = Arc::new(LabMembers::of(&lab)?);
    let mut control =
        ControlPlane::new(members, backend(kind), ConntrackProfile::Calico).with_order(order);
    let started = Instant::now();
    control.update(&plan.cluster())?;
    let initial_apply = started.elapsed();

    let churn_moves = plan.rolling((args.rate * args.seconds) as usize, args.rate);
    let drain_moves = plan.drain(0);
    // Capture the pods at both ends of every sampled move of both phases.
    let engine = TrafficEngine::new(name);
    engine
        .add_endpoint(EndpointSpec::external(
            "client",
            lab.netns("client")?.clone(),
        ))
        .await?;
    let mut captured = std::collections::BTreeSet::new();
    for planned in sample(&churn_moves, args.sample)
        .iter()
        .chain(&sample(&drain_moves, args.sample))
    {
        captured.insert(plan.holder[planned.fip]);
        captured.insert(planned.to);
    }
    for pod in captured {
        let pod = &plan.pods[pod];
        engine
            .add_endpoint(EndpointSpec::pod(
                &pod.name,
                lab.netns(&pod.name)?.clone(),
                pod.addresses.clone(),
                "eth0",
            ))
            .await?;
    }

    let (mut control, mut plan, churn) = phase(&engine, control, plan, churn_moves, args).await?;
    // Every floating IP home again, then node 0 drained at once.
    plan.reset();
    control.update(&plan.cluster())?;
    let (mut control, _plan, drain) = phase(&engine, control, plan, drain_moves, args).await?;
    drop(engine);
    control.teardown()?;
    lab.teardown()?;
    Ok(BackendFigures {
        kind,
        order,
        initial_apply,
        churn,
        drain,
    })
}

pub fn run(args: Options) -> super::Result<()> {
    if args.nodes < 2 || args.nodes > 200 || args.pods == 0 || args.pods > 120 {
        fail!("use 2..=200 nodes and 1..=120 pods per node");
    }
    if (args.rate * args.seconds) as usize > args.nodes * args.pods {
        fail!(
            "{} moves ({} a second for {} s) but only {} floating IPs: each moves at most once",
            args.rate * args.seconds,
            args.rate,
            args.seconds,
            args.nodes * args.pods
        );
    }
    if args.rate == 0 || args.sample == 0 {
        fail!("--rate and --sample must be at least 1");
    }
    let kinds: Vec<BackendKind> = if args.backends.is_empty() {
        BackendKind::ALL.to_vec()
    } else {
        args.backends.clone()
    };
    let orders: Vec<UpdateOrder> = if args.orders.is_empty() {
        UpdateOrder::ALL.to_vec()
    } else {
        args.orders.clone()
    };
    print_load("start");
    println!(
        "bench churn: {} nodes x {} pods, {} floating IPs; rolling drain {} moves/s for {} s, then node-0 drained at once; \
         UDP probes every {} ms to {} sampled moves per phase",
        args.nodes,
        args.pods,
        args.nodes * args.pods,
        args.rate,
        args.seconds,
        args.interval_ms,
        args.sample
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let figures = runtime.block_on(async {
        let mut figures = Vec::new();
        for kind in &kinds {
            for order in &orders {
                figures.push(
                    backend_figures(*kind, *order, &args)
                        .await
                        .with_context(|| format!("{kind} in the {order} order"))?,
                );
                print_load(&format!("after {kind} {order}"));
            }
        }
        Ok::<_, super::BenchError>(figures)
    })?;
    print_report(args.nodes * args.pods, args.interval_ms, &figures);
    print_load("end");
    Ok(())
}
