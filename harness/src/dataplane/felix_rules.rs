//! Felix's nat-table rules for floating IPs as data, before a renderer writes
//! them as iptables or nftables text: which chains exist, which rules each
//! holds in which order, and how the built-in (base) chains reach them. The
//! iptables and nftables backends render this same model, as Felix's two modes
//! render the same `generictables.Rule`s.

use super::NodeNatState;
use crate::calico::IpFamily;
use crate::dataplane::Features;

/// What a rule does (felix/generictables actions: JumpAction, DNATAction,
/// SNATAction; no ports for floating IPs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Jump(&'static str),
    Dnat(String),
    Snat { to: String, fully_random: bool },
}

/// One rule: optional destination and source matches (Felix writes the
/// destination first: felix/rules/nat.go `DestNet(..).SourceNet(..)`), then
/// the action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub destination: Option<String>,
    pub source: Option<String>,
    pub action: Action,
}

impl Rule {
    fn jump(target: &'static str) -> Rule {
        Rule {
            destination: None,
            source: None,
            action: Action::Jump(target),
        }
    }
}

/// A Calico chain and its rules, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub name: &'static str,
    pub rules: Vec<Rule>,
}

pub(crate) const FIP_DNAT: &str = "cali-fip-dnat";
pub(crate) const FIP_SNAT: &str = "cali-fip-snat";
/// Empty unless a pool has natOutgoing (felix/rules/nat.go NATOutgoingChain),
/// which no scenario uses; Felix declares it anyway and jumps to it.
pub(crate) const NAT_OUTGOING: &str = "cali-nat-outgoing";

/// How a built-in chain reaches a Calico chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// `InsertOrAppendRules` with the default ChainInsertMode `insert`: at the top.
    Insert,
    /// `AppendRules`: at the bottom.
    Append,
}

/// One jump from a built-in chain to Calico's chain of the same hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BaseJump {
    pub builtin: &'static str,
    pub target: &'static str,
    pub placement: Placement,
}

impl BaseJump {
    /// The name that seeds the rule's hash: appended rules hash as
    /// `<chain>*appends*` (felix/iptables/table.go and felix/nftables/table.go
    /// `expectedHashesForInsertAppendChain`: "Add *append* to chainName to
    /// produce a unique hash"), inserted ones under the chain's own name.
    pub fn hash_chain(&self, builtin_name: &str) -> String {
        match self.placement {
            Placement::Insert => builtin_name.to_string(),
            Placement::Append => format!("{builtin_name}*appends*"),
        }
    }
}

/// felix/dataplane/linux/int_dataplane.go (the nat table's hooks):
/// `InsertOrAppendRules("PREROUTING", jump cali-PREROUTING)`,
/// `InsertOrAppendRules("OUTPUT", jump cali-OUTPUT)` and
/// `AppendRules("POSTROUTING", jump cali-POSTROUTING)` ("We must go last to
/// avoid a conflict if both kube-proxy and Calico decide to MASQ the traffic").
pub(crate) const BASE_JUMPS: [BaseJump; 3] = [
    BaseJump {
        builtin: "PREROUTING",
        target: "cali-PREROUTING",
        placement: Placement::Insert,
    },
    BaseJump {
        builtin: "OUTPUT",
        target: "cali-OUTPUT",
        placement: Placement::Insert,
    },
    BaseJump {
        builtin: "POSTROUTING",
        target: "cali-POSTROUTING",
        placement: Placement::Append,
    },
];

/// felix/rules/static.go `StaticNATPreroutingChains`,
/// `StaticNATPostroutingChains` and `StaticNATOutputChains` for a node with no
/// IPIP, VXLAN or WireGuard device (so no MASQUERADE rules after the jumps) and
/// no OpenStack special case.
pub(crate) fn static_chains() -> [Chain; 3] {
    [
        Chain {
            name: "cali-PREROUTING",
            rules: vec![Rule::jump(FIP_DNAT)],
        },
        Chain {
            name: "cali-OUTPUT",
            rules: vec![Rule::jump(FIP_DNAT)],
        },
        Chain {
            name: "cali-POSTROUTING",
            rules: vec![Rule::jump(FIP_SNAT), Rule::jump(NAT_OUTGOING)],
        },
    ]
}

/// felix/rules/nat.go `DNATsToIptablesChains`: one rule per floating IP,
/// `DestNet(ext)` then `DNAT(int)`, keyed by the external address *text*
/// sorted with Go's `sort.Strings` (so 203.0.113.10 comes before 203.0.113.9).
/// Addresses are Go's `net.IP.String()` (calc/event_sequencer.go
/// natsToProtoNatInfo), which Rust's `Display` matches.
pub(crate) fn fip_dnat(state: &NodeNatState, family: IpFamily) -> Chain {
    let mut pairs: Vec<(String, String)> = state
        .dnat
        .iter()
        .filter(|m| IpFamily::of(&m.external) == family)
        .map(|m| (m.external.to_string(), m.internal.to_string()))
        .collect();
    pairs.sort();
    Chain {
        name: FIP_DNAT,
        rules: pairs
            .into_iter()
            .map(|(external, internal)| Rule {
                destination: Some(external),
                source: None,
                action: Action::Dnat(internal),
            })
            .collect(),
    }
}

/// felix/rules/nat.go `SNATsToIptablesChains`: one rule per pod address,
/// `DestNet(int).SourceNet(int)` then `SNAT(ext)`, keyed by the internal
/// address text, sorted; `fully_random` from `features.SNATFullyRandom`
/// (felix/iptables/actions.go and felix/nftables/actions.go SNATAction).
pub(crate) fn fip_snat(state: &NodeNatState, family: IpFamily, features: Features) -> Chain {
    let mut pairs: Vec<(String, String)> = state
        .snat
        .iter()
        .filter(|m| IpFamily::of(&m.internal) == family)
        .map(|m| (m.internal.to_string(), m.external.to_string()))
        .collect();
    pairs.sort();
    Chain {
        name: FIP_SNAT,
        rules: pairs
            .into_iter()
            .map(|(internal, external)| Rule {
                destination: Some(internal.clone()),
                source: Some(internal),
                action: Action::Snat {
                    to: external,
                    fully_random: features.snat_fully_random,
                },
            })
            .collect(),
    }
}

/// Every Calico nat chain of one family, static ones first, then the
/// floating-IP chains and the (empty) NAT-outgoing chain.
pub(crate) fn nat_chains(state: &NodeNatState, family: IpFamily, features: Features) -> Vec<Chain> {
    let mut chains = static_chains().to_vec();
    chains.push(fip_dnat(state, family));
    chains.push(fip_snat(state, family, features));
    chains.push(Chain {
        name: NAT_OUTGOING,
        rules: Vec::new(),
    });
    chains
}
