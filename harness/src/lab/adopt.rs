//! Taking over a lab another process left up (`up --until-step`, a kept
//! failure) so that `replay` can run more steps in it: the namespaces are
//! opened again, not made, and the value never removes the lab; pods are
//! taken over as the replayed steps name them, each checked against the
//! kernel.

use super::addressing::IFINDEX_FIRST_WORKLOAD;
use super::claim::LabClaim;
use super::cluster::{Lab, NodeState, PodState};
use super::error::LabError;
use super::netlink::Member;
use super::netns::Netns;
use super::registry::{record_path, LabRecord};
use super::spec::{namespace_name, LabSpec, PodSpec, FABRIC};

/// Open an existing namespace of the lab with a netlink socket of its own
/// (made inside it on a short-lived thread; the connection runs on `rt`).
impl Lab {
    /// Take over the kept lab `spec` names: its record must say it was kept
    /// (no process owns it) and list the same nodes and external hosts. The
    /// name's lock is held until the lab is kept again ([`Lab::keep`]); the
    /// value never tears the lab down, on drop or on a signal: the lab is
    /// the person's, and `down` removes it.
    pub async fn adopt(spec: LabSpec) -> Result<Self, LabError> {
        spec.validate()?;
        let lab = spec.name.clone();
        let refuse = |reason: String| LabError::NotAdoptable {
            lab: lab.clone(),
            reason,
        };
        let record = LabRecord::read(&record_path(&lab)).map_err(|e| {
            refuse(format!(
                "no usable record ({e}); `fip-harness ls` lists labs"
            ))
        })?;
        if !record.kept {
            let owner = if record.owner_alive() {
                "runs"
            } else {
                "died: `fip-harness down` it"
            };
            return Err(refuse(format!(
                "it was not kept: process {} owns it and {owner}",
                record.pid
            )));
        }
        let nodes: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
        if record.nodes != nodes || record.externals != spec.externals {
            return Err(refuse(format!(
                "it has nodes {:?} and external hosts {:?}, the scenario {:?} and {:?}",
                record.nodes, record.externals, nodes, spec.externals
            )));
        }
        let mut claim = LabClaim::acquire(&lab)?;
        claim.hold_pin(&namespace_name(&lab, FABRIC))?;
        let rt = tokio::runtime::Handle::current();
        let open = |member: &str| Member::open(Netns::open(&namespace_name(&lab, member))?, &rt);
        let fabric = open(FABRIC)?;
        let mut node_states = Vec::new();
        for node in &spec.nodes {
            node_states.push(NodeState {
                spec: node.clone(),
                member: open(&node.name)?,
                next_ifindex: IFINDEX_FIRST_WORKLOAD,
            });
        }
        let externals = spec
            .externals
            .iter()
            .map(|x| open(x))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            spec,
            rt,
            fabric,
            nodes: node_states,
            externals,
            pods: Default::default(),
            record,
            claim: Some(claim),
            // Never removed by this value (see above).
            torn_down: true,
        })
    }

    /// Take over pods the lab already has, as [`Lab::add_pods`] would have
    /// made them: each pod's namespace must exist and its node must hold its
    /// host-side interface at the index `add_pods` gives it, so a lab changed
    /// by hand since is refused rather than half believed.
    pub async fn adopt_pods(&mut self, pods: &[PodSpec]) -> Result<(), LabError> {
        let lab = self.spec.name.clone();
        for pod in pods {
            let node = self.node_index(&pod.node)?;
            let host_ifindex = self.nodes[node].next_ifindex;
            self.nodes[node].next_ifindex += 1;
            let found = self.nodes[node].member.link_index(&pod.interface).await?;
            if found != Some(host_ifindex) {
                return Err(LabError::NotAdoptable {
                    lab,
                    reason: format!(
                        "node {} has {} for pod {}'s interface {}, the steps give index {host_ifindex}",
                        pod.node,
                        found.map_or("no link".to_string(), |i| format!("index {i}")),
                        pod.name,
                        pod.interface
                    ),
                });
            }
            // Opened to check it exists; kept by name only.
            let namespace = namespace_name(&lab, &pod.name);
            Netns::open(&namespace)?;
            self.pods.insert(
                pod.name.clone(),
                PodState {
                    spec: pod.clone(),
                    netns: Netns::by_name(&namespace)?,
                    host_ifindex,
                },
            );
        }
        Ok(())
    }

    /// Forget a pod that replayed steps delete, which the lab no longer has.
    pub fn forget_pod(&mut self, name: &str) {
        self.pods.remove(name);
    }
}
