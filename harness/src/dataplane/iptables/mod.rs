//! Felix's iptables mode as it renders floating IPs, applied with
//! `iptables-legacy-restore` / `ip6tables-legacy-restore` inside the node.
//!
//! The rules are [`felix_rules`](super::felix_rules)'s model written as
//! felix/iptables/renderer.go writes them: chain `cali-fip-dnat` with one
//! `--destination EXT --jump DNAT --to-destination INT` rule per floating IP,
//! chain `cali-fip-snat` with one `--destination INT --source INT --jump SNAT
//! --to-source EXT --random-fully` rule per pod address (`--random-fully` when
//! Felix's feature detection would add it, see [`features`](super::features)),
//! both sorted by address text, each with Felix's `cali:<hash>` comment;
//! `cali-PREROUTING` and `cali-OUTPUT` jump to `cali-fip-dnat`,
//! `cali-POSTROUTING` to `cali-fip-snat` then `cali-nat-outgoing` (empty); the
//! built-in chains jump to them, POSTROUTING's jump appended and hashed as
//! Felix hashes appended rules.
//!
//! Why the legacy variant: its rules live in x_tables, apart from nftables, so
//! this backend and the nftables ones never see each other's rules when both
//! are tried on one namespace, and the chain is walked rule by rule, which is
//! the linear cost of Calico's iptables mode that the benchmark shows.
//!
//! The first apply to a node re-declares the built-in nat chains and ours,
//! which flushes them, and writes them whole in one `--noflush` restore (one
//! commit of the nat table, other tables untouched): a full, atomic
//! replacement. The node namespaces are the harness's own, so nothing else
//! has rules in their nat table to lose. Every later apply writes only what
//! changed, as Felix's legacy mode does ([`update`]): `-R`, `-D` and `-A`
//! lines by rule hash in one `--noflush` restore per family that changed, and
//! no restore at all when nothing did.

mod filter;
mod render;
#[cfg(test)]
mod tests;
mod update;

pub use render::{parse_save, render_removal, render_restore};
pub use update::render_update;

use render::{restore_program, save_program};

use super::applied::AppliedStates;
use super::conntrack::ConntrackMatch;
use super::conntrack_watch::KernelFlows;
use super::exec::run_in;
use super::{Dataplane, DataplaneError, Features, NodeNatState, FAMILIES};
use crate::calico::IpFamily;
use crate::lab::netns::Netns;

/// Felix's iptables rendering (see the module documentation).
#[derive(Debug)]
pub struct IptablesBackend {
    features: Features,
    /// What each node was last given, to write only what changed.
    applied: AppliedStates,
    /// Each node's conntrack table, for Felix's deletions.
    flows: KernelFlows,
}

impl Default for IptablesBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl IptablesBackend {
    /// The rendering Felix would give on this host.
    pub fn new() -> Self {
        Self::with_features(Features::detected())
    }

    /// The rendering Felix would give with `features`.
    pub fn with_features(features: Features) -> Self {
        Self {
            features,
            applied: AppliedStates::default(),
            flows: KernelFlows::default(),
        }
    }

    fn save(&self, node: &Netns) -> Result<String, DataplaneError> {
        let mut text = String::new();
        for family in FAMILIES {
            text.push_str(&run_in(node, save_program(family), &["-t", "nat"], None)?);
        }
        Ok(text)
    }
}

impl Dataplane for IptablesBackend {
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        self.applied.apply(
            node,
            state,
            |old| {
                let writes: Vec<Write> = FAMILIES
                    .into_iter()
                    .filter_map(|family| self.update(old, state, family))
                    .collect();
                (!writes.is_empty()).then_some(writes)
            },
            || {
                FAMILIES
                    .into_iter()
                    .map(|family| {
                        let mut text = render_restore(state, family, self.features);
                        if let Some(filter_state) = &state.filter {
                            text.push_str(&filter::render(filter_state, None));
                        }
                        Write {
                            family,
                            ipsets: state
                                .filter
                                .as_ref()
                                .and_then(|f| filter::ipset_restore(f, family)),
                            text,
                        }
                    })
                    .collect()
            },
            |writes| restore(node, writes),
        )
    }

    /// Felix's deletions (felix/conntrack/conntrack.go
    /// `RemoveConntrackFlows`) on the node's kernel table, found through its
    /// events rather than a dump (see [`KernelFlows`]).
    fn flush(&self, node: &Netns, rules: &[ConntrackMatch]) -> Result<usize, DataplaneError> {
        self.flows.flush(node, rules)
    }

    fn follow_flows(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.flows.follow(node)
    }

    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.applied.remember(node, None);
        self.flows.forget(node);
        let mut removal = Vec::new();
        for family in FAMILIES {
            let mut text = render_removal();
            // Whatever Calico filter chains the node holds, however they came.
            let saved = run_in(node, save_program(family), &["-t", "filter"], None)?;
            let chains: Vec<String> = saved
                .lines()
                .filter_map(|line| line.strip_prefix(':'))
                .filter_map(|rest| rest.split(' ').next())
                .filter(|name| name.starts_with("cali-"))
                .map(String::from)
                .collect();
            if !chains.is_empty() {
                text.push_str(&filter::render_removal(&chains));
            }
            removal.push(Write {
                family,
                ipsets: None,
                text,
            });
        }
        restore(node, &removal)
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        // Drop the timestamp comments so two dumps of the same rules compare equal.
        Ok(self
            .save(node)?
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect())
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        Ok(parse_save(&self.save(node)?))
    }
}

/// One family's write: its NAT-outgoing IP sets first (`ipset restore`),
/// then one `iptables-restore --noflush` of its tables.
struct Write {
    family: IpFamily,
    ipsets: Option<String>,
    text: String,
}

impl IptablesBackend {
    /// What takes one family from `old` to `new`: the nat table's changed
    /// rules, and the filter table and IP sets whole when the node's
    /// workloads or pools changed. `None` when nothing did.
    fn update(&self, old: &NodeNatState, new: &NodeNatState, family: IpFamily) -> Option<Write> {
        let nat = render_update(old, new, family, self.features);
        let filter_changed = old.filter != new.filter;
        let filter = match (&old.filter, &new.filter) {
            _ if !filter_changed => None,
            (was, Some(now)) => Some(filter::render(now, was.as_ref())),
            (Some(was), None) => Some(filter::render_removal(&filter::chain_names(was))),
            (None, None) => None,
        };
        if nat.is_none() && filter.is_none() {
            return None;
        }
        let ipsets = match filter_changed {
            true => new
                .filter
                .as_ref()
                .and_then(|f| filter::ipset_restore(f, family)),
            false => None,
        };
        Some(Write {
            family,
            ipsets,
            text: nat.unwrap_or_default() + &filter.unwrap_or_default(),
        })
    }
}

/// Carry out each family's write.
fn restore(node: &Netns, writes: &[Write]) -> Result<(), DataplaneError> {
    for write in writes {
        if let Some(sets) = &write.ipsets {
            run_in(node, "ipset", &["restore", "-exist"], Some(sets.as_bytes()))?;
        }
        run_in(
            node,
            restore_program(write.family),
            &["--noflush"],
            Some(write.text.as_bytes()),
        )?;
    }
    Ok(())
}
