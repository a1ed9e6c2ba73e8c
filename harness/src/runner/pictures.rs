//! Pictures of a case's lab for the report: one once traffic first ran, one
//! before each change of a floating IP's pod and one after it. "After" is
//! taken once traffic next ran (or the case ended), so it shows the routes
//! the traffic met, not a BGP update still on its way.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::step_text::summarise;
use crate::calico::Cluster;
use crate::check::{FloatingIpRoute, LabPicture, MemberPicture, NodePicture, PodPicture, RouteHop};
use crate::lab::spec::FABRIC;
use crate::lab::{Lab, NamedHop, NamedRoute};
use crate::scenario::Step;

/// What a picture is taken of: the scenario's members, the model (who holds
/// which floating IP, which pod claims which) and the lab (addresses and
/// routes, read from the kernel).
#[derive(Clone, Copy)]
pub(super) struct Scene<'r> {
    pub(super) members: &'r crate::scenario::Cluster,
    pub(super) model: &'r Cluster,
    pub(super) lab: &'r Lab,
    /// How many changes of a floating IP's pod the case has seen so far.
    pub(super) moves: usize,
}

/// The pictures of one case, and what the next one is waiting for.
#[derive(Default)]
pub(super) struct Album {
    pictures: Vec<LabPicture>,
    /// Steps that changed a floating IP's pod since the last picture.
    moves: Vec<String>,
    /// The lab before the control step now running, kept if the step moves
    /// a floating IP.
    candidate: Option<LabPicture>,
    /// How many owner changes the run had when the current step began.
    changes_seen: usize,
}

impl Album {
    /// Before step `index` runs: the lab as it is, in case the step moves a
    /// floating IP.
    pub(super) async fn before(&mut self, scene: Scene<'_>, index: usize, step: &Step) {
        let control = matches!(
            step,
            Step::CreatePod(_) | Step::DeletePod(_) | Step::Annotate(_) | Step::SetPhase(_)
        );
        // Only a lab where a pod holds a floating IP can see one move.
        if control && self.moves.is_empty() && !scene.model.holders().is_empty() {
            let moment = format!("before step {} ({})", index + 1, summarise(step));
            self.candidate = Some(scene.picture(moment).await);
        }
        self.changes_seen = scene.moves;
    }

    /// After step `index` ran. Traffic steps are pictured after they ran, never
    /// before: a picture takes a few milliseconds, and a send right after a
    /// move must meet the lab as soon as the catalogue's timing has it.
    pub(super) async fn after(&mut self, scene: Scene<'_>, index: usize, step: &Step) {
        let text = format!("step {} ({})", index + 1, summarise(step));
        let candidate = self.candidate.take();
        if scene.moves > self.changes_seen {
            if let Some(before) = candidate.filter(|_| self.moves.is_empty()) {
                // Unchanged since the last picture: say so on it rather than
                // show the same lab twice.
                match self.pictures.last_mut() {
                    Some(last) if last.same_lab(&before) => {
                        last.moment
                            .push_str(&format!("; the same {}", before.moment));
                    }
                    _ => self.pictures.push(before),
                }
            }
            self.moves.push(text);
            return;
        }
        let traffic = matches!(
            step,
            Step::Send(_) | Step::StartStream(_) | Step::StopStream(_)
        );
        if traffic && (self.pictures.is_empty() || !self.moves.is_empty()) {
            let moment = match self.after_moves() {
                Some(after) => format!("{after}, once {text} had run"),
                None => format!("once {text} had run"),
            };
            self.take(scene, moment).await;
        }
    }

    /// The pictures, with one of the lab as the case ended if a move has
    /// none after it yet (or the case never ran traffic).
    pub(super) async fn close(mut self, scene: Scene<'_>) -> Vec<LabPicture> {
        if self.pictures.is_empty() || !self.moves.is_empty() {
            let moment = match self.after_moves() {
                Some(after) => format!("{after}, as the case ended"),
                None => "as the case ended".to_string(),
            };
            self.take(scene, moment).await;
        }
        self.pictures
    }

    fn after_moves(&mut self) -> Option<String> {
        let moves = std::mem::take(&mut self.moves);
        (!moves.is_empty()).then(|| format!("after {}", moves.join(" and ")))
    }

    async fn take(&mut self, scene: Scene<'_>, moment: String) {
        let picture = scene.picture(moment).await;
        self.pictures.push(picture);
    }
}

impl Scene<'_> {
    /// The lab now: members, who holds which floating IP, and the fabric's
    /// and every node's route to each floating IP. A route that cannot be read
    /// is left out (and logged): a picture never fails a case.
    pub(super) async fn picture(self, moment: String) -> LabPicture {
        let endpoints = self.model.felix_view().endpoints;
        let owners = self.model.holders();
        let floating_ips: BTreeSet<IpAddr> = endpoints
            .iter()
            .flat_map(|e| e.ip_nats.iter().map(|nat| nat.external))
            .chain(owners.keys().copied())
            .collect();
        let families = [crate::lab::Family::V4, crate::lab::Family::V6];
        let mut nodes = Vec::new();
        for node in &self.members.nodes {
            let pods = endpoints
                .iter()
                .filter(|e| e.node == *node)
                .map(|e| {
                    let holds: Vec<IpAddr> = owners
                        .iter()
                        .filter(|(_, pod)| **pod == e.pod)
                        .map(|(ip, _)| *ip)
                        .collect();
                    PodPicture {
                        name: e.pod.clone(),
                        addresses: e.addresses.clone(),
                        claims_only: e
                            .ip_nats
                            .iter()
                            .map(|nat| nat.external)
                            .filter(|ip| !holds.contains(ip))
                            .collect(),
                        holds,
                    }
                })
                .collect();
            nodes.push(NodePicture {
                name: node.clone(),
                addresses: families
                    .iter()
                    .filter_map(|f| self.lab.node_uplink(node, *f).ok().flatten())
                    .collect(),
                pods,
                routes: self.routes(node, &floating_ips).await,
            });
        }
        let externals = self
            .members
            .externals
            .iter()
            .map(|name| MemberPicture {
                name: name.clone(),
                addresses: families
                    .iter()
                    .filter_map(|f| self.lab.external_address(name, *f).ok().flatten())
                    .collect(),
            })
            .collect();
        LabPicture {
            moment,
            externals,
            fabric_routes: self.routes(FABRIC, &floating_ips).await,
            nodes,
        }
    }

    async fn routes(self, member: &str, floating_ips: &BTreeSet<IpAddr>) -> Vec<FloatingIpRoute> {
        let mut routes = Vec::new();
        for floating_ip in floating_ips {
            match self.lab.route_to(member, *floating_ip).await {
                Ok(Some(route)) => routes.push(floating_ip_route(*floating_ip, route)),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, member, "reading a route for the report"),
            }
        }
        routes
    }
}

fn floating_ip_route(floating_ip: IpAddr, route: NamedRoute) -> FloatingIpRoute {
    FloatingIpRoute {
        floating_ip,
        prefix: route.destination.to_string(),
        hops: route
            .hops
            .into_iter()
            .map(|hop| match hop {
                NamedHop::Member(name) => RouteHop::Member(name),
                NamedHop::Dropped => RouteHop::Blackhole,
                NamedHop::Unnamed(text) => RouteHop::Other(text),
            })
            .collect(),
    }
}
