//! Felix's rules beyond floating-IP NAT that decide where a floating IP's
//! traffic goes, as data both Felix renderings write: the workload dispatch
//! of the filter table (traffic from or to a `cali*` interface Felix has no
//! endpoint for is dropped, "Unknown interface") and the NAT-outgoing
//! masquerade. Like [`super::felix_rules`] for the NAT chains, one model, two
//! renderers ([`Rule::iptables`], [`Rule::nft`]), as Felix renders one
//! `generictables.Rule` through felix/iptables/renderer.go or
//! felix/nftables/renderer.go.
//!
//! The filter layer is a faithful subset of Felix's on a node without host
//! endpoints, IPIP, VXLAN or WireGuard: the hooks (felix/rules/static.go
//! `StaticFilterForwardChains`, `StaticFilterForwardAppendRules`,
//! `filterInputChain`, `filterWorkloadToHostChain`), the dispatch chains
//! (felix/rules/dispatch.go `WorkloadDispatchChains`) and Felix's empty
//! host-endpoint chains. Its rules and hashes are those of Felix's own FV
//! dumps (felix/fv/cali-iptables-dump.txt, cali-nftables-dump.txt), mark bits
//! included. The per-endpoint policy chains (`cali-fw-<iface>`,
//! `cali-tw-<iface>`) are left empty: the harness models Calico's default
//! of no policy, where a known endpoint's traffic goes on; what Felix puts
//! there (conntrack, policy and profile rules) is not rendered.

use ipnet::IpNet;

use super::Features;
use crate::calico::nat::NodeFilterState;
use crate::calico::IpFamily;

/// felix/rules/rule_defs.go marks as Felix allocates them by default (the FV
/// dumps' values): the accept bit, and what the forward and input chains clear.
const MARK_ACCEPT: u32 = 0x10000;
const FORWARD_CLEAR: u32 = 0x1a0000;
const INPUT_CLEAR: u32 = 0x1b0000;

pub(crate) const FROM_WL_DISPATCH: &str = "cali-from-wl-dispatch";
pub(crate) const TO_WL_DISPATCH: &str = "cali-to-wl-dispatch";
const WL_TO_HOST: &str = "cali-wl-to-host";
const WORKLOAD_PREFIX: &str = "cali";
const FROM_ENDPOINT: &str = "cali-fw-";
const TO_ENDPOINT: &str = "cali-tw-";

/// A match clause (felix/iptables/match_builder.go, felix/nftables/match_builder.go).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// An interface name, or a prefix when it ends in the wildcard.
    InInterface {
        name: String,
        prefix: bool,
    },
    OutInterface {
        name: String,
        prefix: bool,
    },
    MarkClear(u32),
    MarkSingleBitSet(u32),
    /// nftables only: the dispatch verdict map (`iifname vmap @<map>`).
    InInterfaceVmap(&'static str),
    OutInterfaceVmap(&'static str),
    SourceIpSet(String),
    NotDestIpSet(String),
}

/// An action (felix/iptables/actions.go, felix/nftables/actions.go).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Jump(String),
    Goto(String),
    Drop,
    Accept,
    ClearMark(u32),
    SetMark(u32),
    Masquerade { fully_random: bool },
}

/// One rule: matches, an optional action, and an optional comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub matches: Vec<Match>,
    pub action: Option<Action>,
    pub comment: Option<&'static str>,
}

impl Rule {
    fn new(matches: Vec<Match>, action: Action) -> Rule {
        Rule {
            matches,
            action: Some(action),
            comment: None,
        }
    }

    fn commented(mut self, comment: &'static str) -> Rule {
        self.comment = Some(comment);
        self
    }

    /// The body felix/iptables/renderer.go `renderInner` writes after the
    /// hash comment: the comment, the match, the action.
    pub fn iptables(&self) -> String {
        let mut fragments = Vec::new();
        if let Some(comment) = self.comment {
            fragments.push(format!("-m comment --comment \"{comment}\""));
        }
        for clause in &self.matches {
            fragments.push(match clause {
                Match::InInterface { name, prefix } => {
                    format!("--in-interface {name}{}", if *prefix { "+" } else { "" })
                }
                Match::OutInterface { name, prefix } => {
                    format!("--out-interface {name}{}", if *prefix { "+" } else { "" })
                }
                Match::MarkClear(mark) => format!("-m mark --mark 0/{mark:#x}"),
                Match::MarkSingleBitSet(mark) => format!("-m mark --mark {mark:#x}/{mark:#x}"),
                Match::SourceIpSet(set) => format!("-m set --match-set {set} src"),
                Match::NotDestIpSet(set) => format!("-m set ! --match-set {set} dst"),
                Match::InInterfaceVmap(_) | Match::OutInterfaceVmap(_) => {
                    unreachable!("verdict maps exist in the nftables rendering only")
                }
            });
        }
        if let Some(action) = &self.action {
            fragments.push(match action {
                Action::Jump(target) => format!("--jump {target}"),
                Action::Goto(target) => format!("--goto {target}"),
                Action::Drop => "--jump DROP".into(),
                Action::Accept => "--jump ACCEPT".into(),
                Action::ClearMark(mark) => format!("--jump MARK --set-mark 0/{mark:#x}"),
                Action::SetMark(mark) => format!("--jump MARK --set-mark {mark:#x}/{mark:#x}"),
                Action::Masquerade { fully_random } => format!(
                    "--jump MASQUERADE{}",
                    if *fully_random { " --random-fully" } else { "" }
                ),
            });
        }
        fragments.join(" ")
    }

    /// The rule felix/nftables/renderer.go `renderRule` writes (and hashes):
    /// the match, `counter` when there is an action, the action; chain names
    /// in `layer` (`filter-` or `nat-`). The comment goes apart.
    pub fn nft(&self, family: IpFamily, layer: &str) -> String {
        let ip = match family {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        };
        let mut fragments = Vec::new();
        for clause in &self.matches {
            fragments.push(match clause {
                Match::InInterface { name, prefix } => {
                    format!("iifname {name}{}", if *prefix { "*" } else { "" })
                }
                Match::OutInterface { name, prefix } => {
                    format!("oifname {name}{}", if *prefix { "*" } else { "" })
                }
                Match::MarkClear(mark) => format!("meta mark & {mark:#x} == 0"),
                Match::MarkSingleBitSet(mark) => format!("meta mark & {mark:#x} == {mark:#x}"),
                Match::InInterfaceVmap(map) => format!("iifname vmap @{layer}{map}"),
                Match::OutInterfaceVmap(map) => format!("oifname vmap @{layer}{map}"),
                Match::SourceIpSet(set) => format!("{ip} saddr @{set}"),
                Match::NotDestIpSet(set) => format!("{ip} daddr != @{set}"),
            });
        }
        if let Some(action) = &self.action {
            fragments.push("counter".into());
            fragments.push(match action {
                Action::Jump(target) => format!("jump {layer}{target}"),
                Action::Goto(target) => format!("goto {layer}{target}"),
                Action::Drop => "drop".into(),
                Action::Accept => "accept".into(),
                Action::ClearMark(mark) => {
                    format!("meta mark set mark & {:#x}", mark ^ 0xffff_ffff)
                }
                Action::SetMark(mark) => format!("meta mark set mark or {mark:#x}"),
                Action::Masquerade { fully_random } => format!(
                    "masquerade{}",
                    if *fully_random { " fully-random" } else { "" }
                ),
            });
        }
        fragments.join(" ")
    }
}

/// A chain and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A rule Felix puts in a kernel chain: `insert` at the top
/// (`InsertOrAppendRules`) or appended (`AppendRules`).
pub(crate) struct Hook {
    pub builtin: &'static str,
    pub rule: Rule,
    pub append: bool,
}

fn jump(target: &str) -> Action {
    Action::Jump(target.to_string())
}

fn wildcard(name: &str) -> (String, bool) {
    (name.to_string(), true)
}

/// The kernel chains' rules of the filter table: felix/dataplane/linux/
/// int_dataplane.go hooks `INPUT` and `FORWARD` to Calico's chains (inserted)
/// and appends `StaticFilterForwardAppendRules` to `FORWARD`.
pub(crate) fn filter_hooks() -> Vec<Hook> {
    vec![
        Hook {
            builtin: "INPUT",
            rule: Rule::new(vec![], jump("cali-INPUT")),
            append: false,
        },
        Hook {
            builtin: "FORWARD",
            rule: Rule::new(vec![], jump("cali-FORWARD")),
            append: false,
        },
        Hook {
            builtin: "FORWARD",
            rule: Rule::new(vec![Match::MarkSingleBitSet(MARK_ACCEPT)], Action::Accept)
                .commented("Policy explicitly accepted packet."),
            append: true,
        },
        Hook {
            builtin: "FORWARD",
            rule: Rule::new(vec![], Action::SetMark(MARK_ACCEPT)),
            append: true,
        },
    ]
}

/// Calico's filter chains of one node; `vmaps`: dispatch by verdict map
/// (nftables) instead of by rules (iptables).
pub(crate) fn filter_chains(state: &NodeFilterState, vmaps: bool) -> Vec<Chain> {
    let (in_cali, in_prefix) = wildcard(WORKLOAD_PREFIX);
    let forward = Chain {
        name: "cali-FORWARD".into(),
        rules: vec![
            Rule::new(vec![], Action::ClearMark(FORWARD_CLEAR)),
            Rule::new(
                vec![Match::MarkClear(MARK_ACCEPT)],
                jump("cali-from-hep-forward"),
            ),
            Rule::new(
                vec![Match::InInterface {
                    name: in_cali.clone(),
                    prefix: in_prefix,
                }],
                jump(FROM_WL_DISPATCH),
            ),
            Rule::new(
                vec![Match::OutInterface {
                    name: in_cali.clone(),
                    prefix: in_prefix,
                }],
                jump(TO_WL_DISPATCH),
            ),
            Rule::new(vec![], jump("cali-to-hep-forward")),
            Rule::new(vec![], jump("cali-cidr-block")),
        ],
    };
    let input = Chain {
        name: "cali-INPUT".into(),
        rules: vec![
            Rule::new(
                vec![Match::InInterface {
                    name: in_cali,
                    prefix: in_prefix,
                }],
                Action::Goto(WL_TO_HOST.into()),
            ),
            Rule::new(vec![Match::MarkSingleBitSet(MARK_ACCEPT)], Action::Accept),
            Rule::new(vec![], Action::ClearMark(INPUT_CLEAR)),
            Rule::new(vec![], jump("cali-from-host-endpoint")),
            Rule::new(vec![Match::MarkSingleBitSet(MARK_ACCEPT)], Action::Accept)
                .commented("Host endpoint policy accepted packet."),
        ],
    };
    // calico-node's manifests set FELIX_DEFAULTENDPOINTTOHOSTACTION=ACCEPT
    // (manifests/calico.yaml); Felix's own default would be DROP.
    let to_host = Chain {
        name: WL_TO_HOST.into(),
        rules: vec![
            Rule::new(vec![], jump(FROM_WL_DISPATCH)),
            Rule::new(vec![], Action::Accept).commented("Configured DefaultEndpointToHostAction"),
        ],
    };
    let mut chains = vec![forward, input, to_host];
    for name in [
        "cali-from-hep-forward",
        "cali-to-hep-forward",
        "cali-cidr-block",
        "cali-from-host-endpoint",
    ] {
        chains.push(Chain {
            name: name.into(),
            rules: Vec::new(),
        });
    }
    chains.extend(dispatch_chains(&state.workloads, vmaps));
    for workload in &state.workloads {
        for prefix in [FROM_ENDPOINT, TO_ENDPOINT] {
            chains.push(Chain {
                name: format!("{prefix}{workload}"),
                rules: Vec::new(),
            });
        }
    }
    chains
}

fn unknown_interface() -> Rule {
    Rule::new(vec![], Action::Drop).commented("Unknown interface")
}

/// felix/rules/dispatch.go `WorkloadDispatchChains`: for nftables
/// (`buildSingleDispatchChainsVMAP`) the verdict map then the drop; for
/// iptables (`buildSingleDispatchChainTree`) a rule per endpoint, or per
/// shared next character a goto to a child chain of those endpoints, each
/// chain ending in the drop.
fn dispatch_chains(workloads: &[String], vmaps: bool) -> Vec<Chain> {
    let mut chains = Vec::new();
    for (root, endpoint_prefix, outgoing) in [
        (FROM_WL_DISPATCH, FROM_ENDPOINT, false),
        (TO_WL_DISPATCH, TO_ENDPOINT, true),
    ] {
        let iface = |name: String, prefix: bool| match outgoing {
            false => Match::InInterface { name, prefix },
            true => Match::OutInterface { name, prefix },
        };
        if vmaps {
            let vmap = match outgoing {
                false => Match::InInterfaceVmap(root),
                true => Match::OutInterfaceVmap(root),
            };
            chains.push(Chain {
                name: root.into(),
                rules: vec![
                    Rule {
                        matches: vec![vmap],
                        action: None,
                        comment: None,
                    },
                    unknown_interface(),
                ],
            });
            continue;
        }
        let (common, bins) = prefix_tree(workloads);
        let mut rules = Vec::new();
        for (prefix, names) in bins {
            if let [one] = names.as_slice() {
                rules.push(Rule::new(
                    vec![iface(one.clone(), false)],
                    Action::Goto(format!("{endpoint_prefix}{one}")),
                ));
                continue;
            }
            let child = format!("{root}-{}", &prefix[common.len()..]);
            rules.push(Rule::new(
                vec![iface(prefix.clone(), true)],
                Action::Goto(child.clone()),
            ));
            let mut child_rules: Vec<Rule> = names
                .iter()
                .map(|name| {
                    Rule::new(
                        vec![iface(name.clone(), false)],
                        Action::Goto(format!("{endpoint_prefix}{name}")),
                    )
                })
                .collect();
            child_rules.push(unknown_interface());
            chains.push(Chain {
                name: child,
                rules: child_rules,
            });
        }
        rules.push(unknown_interface());
        chains.push(Chain {
            name: root.into(),
            rules,
        });
    }
    chains
}

/// dispatch.go `sortAndDivideEndpointNamesToPrefixTree`: the names' common
/// prefix, then the names binned by the prefix one character longer, in
/// order (sorted names, duplicates once).
fn prefix_tree(workloads: &[String]) -> (String, Vec<(String, Vec<String>)>) {
    let mut names: Vec<&String> = workloads.iter().collect();
    names.sort();
    names.dedup();
    let common = match names.split_first() {
        None => String::new(),
        Some((first, rest)) => {
            let mut len = first.len();
            for name in rest {
                len = first
                    .bytes()
                    .zip(name.bytes())
                    .take(len)
                    .take_while(|(a, b)| a == b)
                    .count();
            }
            first[..len].to_string()
        }
    };
    let mut bins: Vec<(String, Vec<String>)> = Vec::new();
    for name in names {
        let prefix = if name.len() > common.len() {
            name[..common.len() + 1].to_string()
        } else {
            common.clone()
        };
        match bins.last_mut() {
            Some((last, members)) if *last == prefix => members.push(name.clone()),
            _ => bins.push((prefix, vec![name.clone()])),
        }
    }
    (common, bins)
}

/// Felix's IP set names for one family (felix/rules/rule_defs.go
/// `IPSetIDNATOutgoingMasqPools`, `IPSetIDAllPools`; ipsets.go
/// `NameForMainIPSet`: `cali40` or `cali60` before the id).
pub(crate) fn masq_set(family: IpFamily) -> String {
    format!("{}masq-ipam-pools", set_prefix(family))
}

/// The set of the pools: `network-ip-pools` since v3.31.6 and v3.32.1
/// (commits ae98be29b5, d8bc898304; 2e6b3c4e1d on master), `all-ipam-pools`
/// before (felix/rules/rule_defs.go `IPSetIDAllPools`).
pub(crate) fn pools_set(state: &NodeFilterState, family: IpFamily) -> String {
    let id = match state.all_ipam_pools {
        true => "all-ipam-pools",
        false => "network-ip-pools",
    };
    format!("{}{id}", set_prefix(family))
}

fn set_prefix(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "cali40",
        IpFamily::V6 => "cali60",
    }
}

/// felix/rules/nat.go `NATOutgoingChain` (no NATOutgoingAddress, no port
/// range, iptables backend: `makeNATOutgoingRuleIPTables`): when the family
/// has a natOutgoing pool, one rule masquerading traffic from such a pool to
/// anything outside every pool; else none (masq_mgr.go passes
/// `masqPools.Len() > 0`).
pub(crate) fn nat_outgoing_rules(
    state: &NodeFilterState,
    family: IpFamily,
    features: Features,
) -> Vec<Rule> {
    if family_pools(&state.masq_pools, family).is_empty() {
        return Vec::new();
    }
    vec![Rule::new(
        vec![
            Match::SourceIpSet(masq_set(family)),
            Match::NotDestIpSet(pools_set(state, family)),
        ],
        Action::Masquerade {
            fully_random: features.masq_fully_random,
        },
    )]
}

/// The CIDRs of `list` in `family`.
pub(crate) fn family_pools(list: &[IpNet], family: IpFamily) -> Vec<IpNet> {
    NodeFilterState::pools_of(list, family == IpFamily::V4)
}

#[cfg(test)]
mod tests;
