//! The floating-IP NAT dataplane of one node, behind the [`Dataplane`] trait.
//!
//! Inputs and outputs are small, serialisable and free of backend types, so that
//! a vendor's own dataplane can later plug in as an external program speaking
//! JSON.

use std::sync::Arc;

use crate::calico::IpFamily;
use crate::lab::netns::Netns;
use crate::traffic::Protocol;

mod applied;
pub mod conntrack;
pub mod conntrack_watch;
pub(crate) mod exec;
pub mod features;
mod felix_filter;
mod felix_hash;
mod felix_rules;
pub(crate) mod harness_filter;
pub mod iptables;
pub mod message_limit;
mod nfnl;
pub mod nft_maps;
mod nft_maps_delta;
#[cfg(test)]
mod nft_maps_json;
pub mod nft_maps_netlink;
pub mod nftables;
pub(crate) mod per_node;
#[cfg(test)]
mod test_vectors;

pub use crate::calico::nat::{DnatMapping, NodeNatState, SnatMapping};
pub use crate::calico::ConntrackMatch;
pub use crate::vocab::topology::{Interface, NodeTopology, PodInterface};
pub use crate::vocab::BackendKind;
pub use features::Features;
pub use iptables::IptablesBackend;
pub use nft_maps::NftMapsBackend;
pub use nftables::NftablesBackend;

/// Felix keeps one table per family (iptables and ip6tables, or `table ip`
/// and `table ip6`), each with the mappings of that family only.
pub(crate) const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

/// nft's family keyword, which is also the `<IPV>` of Felix's matches
/// (felix/nftables/match_builder.go insertIPVersion).
pub(crate) fn nft_keyword(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

/// The nft script that removes `table` in both families, adding it first so
/// that deleting never fails (as Felix's table.go does when its table is
/// disabled; the harness's own filter table is removed the same way).
pub(crate) fn render_nft_table_removal(table: &str) -> String {
    FAMILIES
        .iter()
        .map(|&family| {
            let ip = nft_keyword(family);
            format!("add table {ip} {table}\ndelete table {ip} {table}\n")
        })
        .collect()
}

/// One node's floating-IP NAT. Implementations run their program inside the
/// node's namespace; every call is one whole operation (no partial state left
/// behind by a successful call).
///
/// Only the first four are what every backend must do; the rest have
/// defaults that fit a backend which keys on addresses alone and leaves flow
/// state to the kernel (the built-in ones and the mutants). An external
/// driver (`crate::driver`) overrides them.
pub trait Dataplane: Send + Sync {
    /// Make the node hold exactly `state`, replacing whatever this backend put
    /// there before, in one atomic transaction.
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError>;

    /// Remove everything this backend put on the node. Removing twice is fine.
    fn remove(&self, node: &Netns) -> Result<(), DataplaneError>;

    /// The rules as the backend holds them, as text for people.
    fn dump(&self, node: &Netns) -> Result<String, DataplaneError>;

    /// The mappings the node holds now, read back from the live rules.
    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError>;

    /// Whether [`Dataplane::topology`] does anything: building a topology
    /// reads every pod's MAC over netlink, which nobody should pay for when
    /// the backend ignores it.
    fn wants_topology(&self) -> bool {
        false
    }

    /// The node's interfaces, sent whenever pods come and go (before a
    /// mapping names a new pod, after a deleted pod's mappings went).
    fn topology(&self, _node: &Netns, _topology: &NodeTopology) -> Result<(), DataplaneError> {
        Ok(())
    }

    /// Delete the flow state `rules` select, as the chosen conntrack profile
    /// asks; returns how many entries went. The default is the kernel's
    /// conntrack table of the node, which is where netfilter backends keep it.
    fn flush(&self, node: &Netns, rules: &[ConntrackMatch]) -> Result<usize, DataplaneError> {
        conntrack::flush_kernel(node, rules).map_err(|source| DataplaneError::Conntrack {
            netns: node.name().to_string(),
            source,
        })
    }

    /// Start following the flow state of `node` before anything flows there,
    /// so that later flushes need not read the whole of it (see
    /// [`conntrack_watch::ConntrackWatch`]). Nothing by default; a failure
    /// only means the flushes read it all.
    fn follow_flows(&self, _node: &Netns) -> Result<(), DataplaneError> {
        Ok(())
    }

    /// The features this dataplane lacks among those a case needs (address
    /// families, protocols), each as a phrase for the case's error.
    fn unsupported(&self, _families: &[IpFamily], _protocols: &[Protocol]) -> Vec<String> {
        Vec::new()
    }

    /// An error when something this dataplane runs on its own (a driver
    /// process) is gone, checked after every step.
    fn health(&self) -> Result<(), DataplaneError> {
        Ok(())
    }

    /// Extra files for the node's folder of a diagnostics bundle: (file
    /// name, contents).
    fn diagnostics(&self, _node: &Netns) -> Vec<(String, String)> {
        Vec::new()
    }

    /// End whatever this dataplane runs for the lab (driver processes).
    /// `keep`: the lab stays up for people, so the node's state stays too.
    fn shutdown(&self, _keep: bool) -> Result<(), DataplaneError> {
        Ok(())
    }
}

/// The backend of a kind.
pub fn backend(kind: BackendKind) -> Arc<dyn Dataplane> {
    match kind {
        BackendKind::Nftables => Arc::new(NftablesBackend::new()),
        BackendKind::NftMaps => Arc::new(NftMapsBackend::new()),
        BackendKind::Iptables => Arc::new(IptablesBackend::new()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("node namespace '{netns}': cannot run {program}: {source}")]
    Spawn {
        netns: String,
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("node namespace '{netns}': {missing}")]
    Missing {
        netns: String,
        missing: crate::programs::MissingProgram,
    },
    #[error("node namespace '{netns}': `{program} {args}` failed ({status}): {stderr}")]
    Failed {
        netns: String,
        program: &'static str,
        args: String,
        status: String,
        stderr: String,
    },
    #[error("node namespace '{netns}': cannot read the rules back: {reason}")]
    Unreadable { netns: String, reason: String },
    #[error("node namespace '{netns}': nf_tables netlink: cannot {action}: {source}")]
    Netlink {
        netns: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// One nf_tables transaction did not fit in one netlink message: only
    /// without root, where a host setting bounds the send buffer (see
    /// `message_limit`).
    #[error(
        "node namespace '{netns}': {what} is larger than one netlink message may be{}: {}; \
         run as root, or raise it on the host (as root: sysctl -w {}={})",
        message_limit::limit_note(.limit),
        .sender.why(),
        .sender.setting(),
        message_limit::SUGGESTED_BUFFER
    )]
    BatchTooLarge {
        netns: String,
        what: String,
        limit: Option<usize>,
        sender: message_limit::Sender,
    },
    #[error("node namespace '{netns}': conntrack: {source}")]
    Conntrack {
        netns: String,
        #[source]
        source: conntrack::ConntrackError,
    },
    /// An external driver's fault (`crate::driver` above this layer makes
    /// them): the case could not run on that dataplane.
    #[error(transparent)]
    Driver(Box<dyn std::error::Error + Send + Sync>),
}
