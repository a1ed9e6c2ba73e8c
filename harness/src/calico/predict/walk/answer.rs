//! An answer followed back to its sender, for a pod whose own address
//! another pod claims as a floating IP: that claim gives the address routes
//! of its own (the claimant's node, and BGP's elsewhere), so the answers to
//! the pod may go to the claimant instead (found by `fip-harness explore`).

use std::net::IpAddr;

use super::{Branches, Pkt, Walk};
use crate::calico::cluster::Cluster;
use crate::calico::conntrack::Entries;
use crate::calico::predict::{Landing, Outcome};

/// The sender whose answers a walk follows back: a pod whose address
/// another pod claims as a floating IP. Felix routes an endpoint's NAT
/// external IPs as it routes the endpoint's own addresses
/// (felix/dataplane/linux/endpoint_mgr.go calculateRoutes), and BGP carries
/// that route to the fabric and the other nodes (route model,
/// [`crate::calico::desired`]), so the address has two destinations. On
/// a node holding both, the one route is the later interface's (felix/
/// routetable/route_table.go recalculateDesiredKernelRoute keeps the highest
/// ifindex; `Walk::node_route` and `desired::route_holder` say so), so a
/// pod made after its claimant keeps its answers there: the walk back finds
/// which.
pub(super) fn shadowed_sender(cluster: &Cluster, sender: &str, source: IpAddr) -> Option<String> {
    let pod = cluster.pod(sender)?;
    if !pod.addresses.contains(&source) {
        return None;
    }
    let claimed = (cluster.pods().values())
        .filter(|other| other.name != sender)
        .any(|other| (other.felix.ip_nats().iter()).any(|nat| nat.external == source));
    claimed.then(|| sender.to_string())
}

impl Walk<'_> {
    /// `outcome`, the end of `pkt` with the flow's `entries`, loses its
    /// answers when they do not get back to the sender this walk follows:
    /// an answer meets the flow's entries in their reply direction where it
    /// crosses them (the kernel undoes the NAT there) and is routed as any
    /// packet elsewhere.
    pub(super) fn answered(&self, outcome: Outcome, pkt: Pkt, entries: &Entries) -> Outcome {
        let Outcome { path, landing } = outcome;
        let landing = self.follow_answer(landing, pkt, entries);
        Outcome { path, landing }
    }

    fn follow_answer(&self, mut landing: Landing, pkt: Pkt, entries: &Entries) -> Landing {
        let Some(sender) = self.answered.as_deref() else {
            return landing;
        };
        let (answerer, answers) = match &landing {
            Landing::Pod {
                pod,
                reply_source,
                quoted_destination,
                ..
            } => (
                pod.as_str(),
                reply_source.is_some() || quoted_destination.is_some(),
            ),
            Landing::Host {
                host, reply_source, ..
            } => (host.as_str(), reply_source.is_some()),
            Landing::Dropped { .. } => return landing,
        };
        if answers && !self.answer_returns(answerer, sender, pkt, entries) {
            landing.lose_answers();
        }
        landing
    }

    /// Whether the answer of `answerer` (a pod or a host) to `pkt` reaches
    /// the pod `sender`, on every way ECMP may send it.
    fn answer_returns(&self, answerer: &str, sender: &str, pkt: Pkt, entries: &Entries) -> bool {
        let mut others = self.others.clone();
        others.push(vec![entries]);
        let back = Walk {
            cluster: self.cluster,
            protocol: self.protocol,
            port: self.port,
            others,
            answered: None,
        };
        let answer = Pkt {
            src: pkt.dst,
            dst: pkt.src,
            to: pkt.dst,
        };
        let network = &self.cluster.config().network;
        let fresh = Entries::new();
        let went: Branches = if let Some(pod) = self.cluster.pod(answerer) {
            let path = vec![answerer.to_string()];
            back.member(&pod.node.clone(), answer, fresh, path)
        } else if network.node(answerer).is_some() {
            back.node(answerer, answer, fresh, Vec::new())
        } else if answerer == network.fabric {
            let next = back.fabric_route(answer.dst);
            back.go(answerer, next, answer, fresh, vec![answerer.to_string()])
        } else {
            let path = vec![answerer.to_string()];
            back.member(&network.fabric.clone(), answer, fresh, path)
        };
        went.iter().all(
            |(outcome, _)| matches!(&outcome.landing, Landing::Pod { pod, .. } if pod == sender),
        )
    }
}
