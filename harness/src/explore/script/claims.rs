//! Operations on claims (a floating IP and a pod claiming it, as Felix has
//! them): traffic from and to claimants and their neighbours, egress to
//! external hosts, and the changes real clusters make to claims (a moved
//! annotation, a deleted or restarted claimant), alone or under a stream.

use std::net::IpAddr;

use proptest::sample::Index;

use super::{Reader, EXTERNAL_NAMES, NODE_NAMES};
use crate::calico::cluster::ClusterStep;
use crate::calico::FLOATING_IPS_ANNOTATION;
use crate::explore::plan::{Change, MoveTo, Sender};
use crate::vocab::Protocol;

/// A floating IP and a pod claiming it.
pub(super) type Claim = (IpAddr, String);

impl Reader<'_> {
    /// Every claim Felix has now, in order.
    pub(super) fn claims(&self) -> Vec<Claim> {
        let mut claims: Vec<Claim> = (self.cluster.pods().values())
            .flat_map(|pod| {
                pod.felix
                    .ip_nats()
                    .iter()
                    .map(|nat| (nat.external, pod.name.clone()))
            })
            .collect();
        claims.sort();
        claims.dedup();
        claims
    }

    /// Claim `index`, among those of the family `v6` says when there are
    /// some (`None`: any family).
    pub(super) fn claim(&self, index: &Index, v6: Option<bool>) -> Option<Claim> {
        let all = self.claims();
        let of_family: Vec<Claim> = match v6 {
            Some(v6) => (all.iter())
                .filter(|(address, _)| address.is_ipv6() == self.v6(v6))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let pick = if of_family.is_empty() { all } else { of_family };
        (!pick.is_empty()).then(|| pick[index.index(pick.len())].clone())
    }

    /// The member that sends.
    pub(super) fn resolve_sender(&self, from: &Sender) -> Option<String> {
        match from {
            Sender::Member(index) => Some(self.sender(index)),
            // Any member while nobody claims anything.
            Sender::Claimant(claim) => match self.claim(claim, None) {
                Some((_, pod)) => Some(pod),
                None => Some(self.sender(claim)),
            },
            Sender::NearClaimant { claim, member } => {
                let (_, claimant) = self.claim(claim, None)?;
                let node = self.cluster.pod(&claimant)?.node.clone();
                let near: Vec<String> = std::iter::once(node.clone())
                    .chain(
                        (self.cluster.pods().values())
                            .filter(|pod| pod.node == node)
                            .map(|pod| pod.name.clone()),
                    )
                    .collect();
                Some(near[member.index(near.len())].clone())
            }
        }
    }

    /// A claimant sends to an external host.
    pub(super) fn egress(
        &mut self,
        claim: &Index,
        external: &Index,
        v6: bool,
        protocol: Protocol,
    ) -> bool {
        let Some((_, pod)) = self.claim(claim, None) else {
            return false;
        };
        let host = EXTERNAL_NAMES[external.index(self.spec.externals)];
        // The external host's address, named as a member target names it.
        let Some(address) = self.member_address(host, super::family(self.v6(v6))) else {
            return false;
        };
        let text = if self.v6(v6) {
            format!("{host}/v6")
        } else {
            host.to_string()
        };
        self.send(pod, (text, address), protocol, false, 1)
    }

    /// A new pod on a node with a claimant's annotation, then a packet from
    /// `from` to the floating IP.
    pub(super) fn replica(
        &mut self,
        claim: &Index,
        node: &Index,
        from: &Sender,
        protocol: Protocol,
    ) -> bool {
        let Some((address, claimant)) = self.claim(claim, None) else {
            return false;
        };
        let text = self
            .cluster
            .pod(&claimant)
            .and_then(|pod| pod.annotations.get(FLOATING_IPS_ANNOTATION).cloned());
        let name = format!("web-{}", self.next_pod);
        if !self.create_named(name, node.index(self.spec.nodes), text) {
            return false;
        }
        if let Some(from) = self.resolve_sender(from) {
            // UDP to a closed port: the ICMP error quotes the floating IP.
            let closed = protocol == Protocol::Udp;
            self.send(from, (address.to_string(), address), protocol, closed, 1);
        }
        true
    }

    /// A claimant sends to the floating IP it claims.
    pub(super) fn loopback(
        &mut self,
        claim: &Index,
        v6: bool,
        protocol: Protocol,
        closed_port: bool,
    ) -> bool {
        let Some((address, pod)) = self.claim(claim, Some(v6)) else {
            return false;
        };
        self.send(
            pod,
            (address.to_string(), address),
            protocol,
            closed_port,
            1,
        )
    }

    /// A stream to a claimed floating IP, then `change` to that claim.
    pub(super) fn stream_across(
        &mut self,
        from: &Sender,
        claim: &Index,
        v6: bool,
        protocol: Protocol,
        change: &Change,
    ) -> bool {
        let (Some(from), Some(claim)) = (self.resolve_sender(from), self.claim(claim, Some(v6)))
        else {
            return false;
        };
        let to = (claim.0.to_string(), claim.0);
        if !self.start_stream(from, to, protocol) {
            return false;
        }
        self.change(&claim, change);
        true
    }

    /// Carry out `change` to `claim`; false when nothing of it could be.
    pub(super) fn change(&mut self, (address, claimant): &Claim, change: &Change) -> bool {
        match change {
            Change::Move { to, add_first } => {
                if *add_first {
                    let added = self.claim_by(*address, claimant, to);
                    self.unclaim(*address, claimant) || added
                } else {
                    let removed = self.unclaim(*address, claimant);
                    self.claim_by(*address, claimant, to) || removed
                }
            }
            Change::Delete { then } => {
                if !self.delete_pod(claimant.clone()) {
                    return false;
                }
                if let Some(to) = then {
                    self.claim_by(*address, claimant, to);
                }
                true
            }
            Change::Recreate => {
                let Some(pod) = self.cluster.pod(claimant) else {
                    return false;
                };
                let text = pod.annotations.get(FLOATING_IPS_ANNOTATION).cloned();
                let Some(node) = NODE_NAMES.iter().position(|n| *n == pod.node) else {
                    return false;
                };
                if !self.delete_pod(claimant.clone()) {
                    return false;
                }
                self.create_named(claimant.clone(), node, text);
                true
            }
        }
    }

    /// The claimant's annotation loses `address`.
    fn unclaim(&mut self, address: IpAddr, claimant: &str) -> bool {
        let Some(mut entries) = self.annotation_list(claimant) else {
            return false;
        };
        entries.retain(|entry| entry.parse::<IpAddr>().ok() != Some(address));
        let floating_ips = (!entries.is_empty()).then(|| json_list(&entries));
        self.pod_step(ClusterStep::Annotate {
            pod: claimant.to_string(),
            floating_ips,
        })
    }

    /// Another pod claims `address`: a live pod's annotation gains it, or a
    /// new pod is created claiming it.
    fn claim_by(&mut self, address: IpAddr, claimant: &str, to: &MoveTo) -> bool {
        let others: Vec<String> = (self.cluster.pods().keys())
            .filter(|name| *name != claimant)
            .cloned()
            .collect();
        match to {
            MoveTo::Pod(index) if !others.is_empty() => {
                let pod = others[index.index(others.len())].clone();
                let mut entries = self.annotation_list(&pod).unwrap_or_default();
                entries.push(address.to_string());
                self.pod_step(ClusterStep::Annotate {
                    pod,
                    floating_ips: Some(json_list(&entries)),
                })
            }
            MoveTo::Pod(index) | MoveTo::NewPod(index) => {
                let name = format!("web-{}", self.next_pod);
                let text = json_list(&[address.to_string()]);
                self.create_named(name, index.index(self.spec.nodes), Some(text))
            }
        }
    }

    /// The entries of a pod's floating-IP annotation, when it is a JSON
    /// list of strings (empty when it has none).
    fn annotation_list(&self, pod: &str) -> Option<Vec<String>> {
        let pod = self.cluster.pod(pod)?;
        match pod.annotations.get(FLOATING_IPS_ANNOTATION) {
            None => Some(Vec::new()),
            Some(text) => serde_json::from_str(text).ok(),
        }
    }
}

fn json_list(entries: &[String]) -> String {
    serde_json::to_string(entries).expect("strings serialise")
}
