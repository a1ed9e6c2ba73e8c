//! The move figure under BIRD routing, for `bench dataplane`: the NAT of a
//! move (the control plane's part, as with the model) and, apart from it,
//! the end-to-end convergence: until the fabric's BIRD routes the floating
//! IP to its new node. Under BIRD the control plane only writes Felix's
//! device route on the hosting node; BIRD there exports it, and the fabric
//! learns it over BGP.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Context;
use crate::bgp::{topology_of, BirdTimers, LabBird, RoutingMode};
use crate::calico::veth_name_for_workload;
use crate::control::{ConntrackProfile, ControlPlane, LabMembers};
use crate::dataplane::{backend, BackendKind};
use crate::lab::spec::FABRIC;
use crate::lab::{Family, Lab};

use super::dataplane_lab::{build_lab, cluster, fip, target_index, Options};

/// How long BIRD may take to bring sessions up or carry one route change.
const PATIENCE: Duration = Duration::from_secs(30);
/// Between two looks at the fabric's routes (each a birdc round trip).
const POLL: Duration = Duration::from_millis(1);

/// One move under BIRD: NAT on both nodes applied, and the fabric routing
/// the floating IP to the new node, both from the start of the update.
#[derive(Clone, Copy)]
pub(super) struct BirdMove {
    pub nat: Duration,
    pub converged: Duration,
}

fn start_bird(lab: &Lab, pools: &[crate::calico::IpPool]) -> super::Result<LabBird> {
    let topology = topology_of(lab, pools, BirdTimers::lab())?;
    let bird = LabBird::start(lab, topology)?;
    bird.wait_established(PATIENCE)?;
    Ok(bird)
}

/// Wait until the fabric's best route for `fip` goes via `uplink`.
fn wait_fabric(bird: &LabBird, fip: IpAddr, uplink: IpAddr) -> super::Result<()> {
    let prefix = ipnet::IpNet::from(fip);
    let started = Instant::now();
    loop {
        let routes = bird.routes_for(FABRIC, prefix)?;
        if routes.iter().any(|r| r.best && r.gateways == [uplink]) {
            return Ok(());
        }
        check!(
            started.elapsed() < PATIENCE,
            "the fabric never routed {fip} via {uplink}: {routes:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// Moves of the benchmark's floating IP between the two nodes, the map
/// backend under BIRD routing.
pub(super) async fn bird_moves(args: &Options, name: String) -> super::Result<Vec<BirdMove>> {
    let lab = build_lab(name, true).await?;
    let result = tokio::task::block_in_place(|| moves_in(&lab, args));
    lab.teardown()?;
    result
}

fn moves_in(lab: &Lab, args: &Options) -> super::Result<Vec<BirdMove>> {
    let web_cali = veth_name_for_workload("default", "web");
    let target = fip(target_index(args.count));
    let uplink = |node: &str| -> super::Result<IpAddr> {
        lab.node_uplink(node, Family::V4)?
            .context("a node without an IPv4 uplink")
    };
    let uplinks = [uplink("node-0")?, uplink("node-1")?];
    let mut bird = start_bird(lab, &cluster(args.count, false, &web_cali).pools)?;
    let members = Arc::new(LabMembers::of(lab)?);
    let mut control = ControlPlane::new(
        members,
        backend(BackendKind::NftMaps),
        ConntrackProfile::Calico,
    )
    .with_routing(RoutingMode::Bird);
    let outcome = (|| {
        control.update(&cluster(args.count, false, &web_cali))?;
        wait_fabric(&bird, target, uplinks[0])?;
        let mut moves = Vec::new();
        for i in 0..args.moves {
            let to_web2 = i % 2 == 0;
            // The cluster is built before the clock starts, as in the NAT figure.
            let next = cluster(args.count, to_web2, &web_cali);
            let started = Instant::now();
            let applied = control.update(&next)?;
            wait_fabric(&bird, target, uplinks[usize::from(to_web2)])?;
            moves.push(BirdMove {
                nat: applied.nat_applied,
                converged: started.elapsed(),
            });
        }
        Ok::<_, super::BenchError>(moves)
    })();
    control.teardown()?;
    bird.stop()?;
    outcome
}
