//! Felix's nftables mode (Calico 3.29+) as it renders floating IPs, rule for
//! rule: this is what Felix programs.
//!
//! - Tables `table ip calico` and `table ip6 calico`
//!   (felix/dataplane/linux/int_dataplane.go NewIntDataplaneDriver:
//!   `nftables.NewTable("calico", 4|6, ...)`; felix/nftables/table.go NewTable
//!   maps 4/6 to knftables' `ip` / `ip6` families).
//! - The nat layer of that table (felix/nftables/table_layer.go
//!   `namespaceName`: `nat-` before every chain name and jump target): base
//!   chains `nat-PREROUTING` (priority dstnat, -100), `nat-INPUT` (-100,
//!   empty), `nat-OUTPUT` and `nat-POSTROUTING` (srcnat + 10, 110), from
//!   felix/nftables/table.go `baseChains`; regular chains
//!   `nat-cali-PREROUTING`, `nat-cali-OUTPUT`, `nat-cali-POSTROUTING`,
//!   `nat-cali-fip-dnat`, `nat-cali-fip-snat`, `nat-cali-nat-outgoing` holding
//!   [`felix_rules`](super::felix_rules)'s model.
//! - Each rule as felix/nftables/renderer.go `renderRule` writes it: match
//!   (`ip daddr X ip saddr Y`), `counter`, action (`jump`, `dnat to`,
//!   `snat to X fully-random`), with `comment "cali:<hash>;"` from `comment`,
//!   the hash chained over that same text (`RuleHashes`) under the layered
//!   chain name, `nat-POSTROUTING*appends*` for the appended base-chain jump.
//!
//! Priorities are written as numbers, as knftables (v0.0.21, objects.go
//! `Chain.writeOperation`) converts Felix's named ones before handing them to
//! nft: nft 1.0.6 refuses `priority dstnat` on the input hook.
//!
//! Applying: Felix writes through knftables, whose `Run` pipes the transaction
//! to `nft -f -` (knftables nftables.go `realNFTables.Run`), one kernel
//! transaction per call; so does this backend, with the same commands
//! knftables writes (`add chain ip calico nat-OUTPUT { type nat hook output
//! priority 110 ; }`, `add rule ip calico <chain> <rule> comment "<c>"`). The
//! first apply on a node recreates the tables (`add table` / `delete table` /
//! `add table`, Felix's recreate path in table.go `applyUpdates`); later ones
//! flush and rewrite only the floating-IP chains whose rules changed, as
//! Felix rewrites a dirty chain wholesale.
//!
//! Listing order: nft lists chains in the order they were created, and Felix
//! creates them by iterating a Go map and a set, so a real node's order varies
//! from start to start. This backend always creates the base chains in hook
//! order (PREROUTING, INPUT, OUTPUT, POSTROUTING), then Calico's chains in the
//! order of felix/rules/static.go, then the floating-IP and NAT-outgoing ones.
//! With the node's filter state known ([`NodeNatState::filter`]) the filter
//! layer's workload dispatch and the NAT-outgoing sets and rule come too
//! ([`filter_layer`]); a real Felix table also holds mangle and raw chains
//! and more sets, which floating IPs do not touch.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::applied::AppliedStates;
use super::conntrack::ConntrackMatch;
use super::conntrack_watch::KernelFlows;
use super::exec::{nft_list_tables, nft_read_tables, run_in};
use super::felix_hash::chained_hashes;
use super::felix_rules::{self, Action, Chain, Rule, BASE_JUMPS, FIP_DNAT, FIP_SNAT};
use super::nft_keyword as keyword;
use super::{
    message_limit, Dataplane, DataplaneError, DnatMapping, Features, NodeNatState, SnatMapping,
    FAMILIES,
};
use crate::calico::IpFamily;
use crate::lab::netns::Netns;

mod filter_layer;

/// Name of Felix's tables (one per family).
pub const TABLE: &str = "calico";

/// The nat layer's base chains: (built-in name, hook, priority as a number).
/// felix/nftables/table.go: `dnatPriority = knftables.DNATPriority` (-100) for
/// prerouting and input, `snatPriority = knftables.SNATPriority + "+10"` (110)
/// for output and postrouting (after kube-proxy's 100).
const BASE_CHAINS: [(&str, &str, i32); 4] = [
    ("PREROUTING", "prerouting", -100),
    ("INPUT", "input", -100),
    ("OUTPUT", "output", 110),
    ("POSTROUTING", "postrouting", 110),
];

/// A chain's name in the nat layer (table_layer.go `namespaceName`).
fn layered(name: &str) -> String {
    format!("nat-{name}")
}

/// felix/nftables/renderer.go `renderRule`: the match, `counter` (on every
/// rule with an action), then the action's fragment (actions.go `ToFragment`).
fn render_rule(rule: &Rule, family: IpFamily) -> String {
    let ip = keyword(family);
    let mut fragments = Vec::new();
    if let Some(destination) = &rule.destination {
        fragments.push(format!("{ip} daddr {destination}"));
    }
    if let Some(source) = &rule.source {
        fragments.push(format!("{ip} saddr {source}"));
    }
    fragments.push("counter".to_string());
    fragments.push(match &rule.action {
        Action::Jump(target) => format!("jump {}", layered(target)),
        Action::Dnat(to) => format!("dnat to {to}"),
        Action::Snat { to, fully_random } => format!(
            "snat to {to}{}",
            if *fully_random { " fully-random" } else { "" }
        ),
    });
    fragments.join(" ")
}

/// The `add rule` commands for `rules` in nft chain `chain`, hashed under
/// `hash_chain`, as knftables writes them (objects.go `Rule.writeOperation`;
/// the comment from renderer.go `comment`: `cali:<hash>;`).
fn add_rules(out: &mut String, family: IpFamily, chain: &str, hash_chain: &str, rules: &[Rule]) {
    let texts: Vec<String> = rules.iter().map(|r| render_rule(r, family)).collect();
    let ip = keyword(family);
    for (text, hash) in texts.iter().zip(chained_hashes(hash_chain, &texts)) {
        writeln!(
            out,
            "add rule {ip} {TABLE} {chain} {text} comment \"cali:{hash};\""
        )
        .expect("writing to a String");
    }
}

fn add_chain_rules(out: &mut String, family: IpFamily, chain: &Chain) {
    let name = layered(chain.name);
    add_rules(out, family, &name, &name, &chain.rules);
}

fn recreate_table(out: &mut String, family: IpFamily) {
    let ip = keyword(family);
    for verb in ["add", "delete", "add"] {
        writeln!(out, "{verb} table {ip} {TABLE}").expect("writing to a String");
    }
}

/// The `nft -f` script that makes both tables hold exactly `state`, in one
/// transaction, whatever they held before.
pub fn render_apply(state: &NodeNatState, features: Features) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        let ip = keyword(family);
        recreate_table(&mut out, family);
        for (builtin, hook, priority) in BASE_CHAINS {
            writeln!(
                out,
                "add chain {ip} {TABLE} {} {{ type nat hook {hook} priority {priority} ; }}",
                layered(builtin)
            )
            .expect("writing to a String");
        }
        let chains = felix_rules::nat_chains(state, family, features);
        for chain in &chains {
            writeln!(out, "add chain {ip} {TABLE} {}", layered(chain.name))
                .expect("writing to a String");
        }
        for chain in &chains {
            add_chain_rules(&mut out, family, chain);
        }
        for jump in BASE_JUMPS {
            let builtin = layered(jump.builtin);
            let rule = Rule {
                destination: None,
                source: None,
                action: Action::Jump(jump.target),
            };
            add_rules(
                &mut out,
                family,
                &builtin,
                &jump.hash_chain(&builtin),
                &[rule],
            );
        }
        if let Some(filter) = &state.filter {
            filter_layer::render(&mut out, family, filter, features);
        }
    }
    out
}

/// The floating-IP chains, the only ones whose rules depend on the state.
fn fip_chains(state: &NodeNatState, family: IpFamily, features: Features) -> [Chain; 2] {
    [
        felix_rules::fip_dnat(state, family),
        felix_rules::fip_snat(state, family, features),
    ]
}

/// The script that takes tables holding `old` to holding `new`: each
/// floating-IP chain whose rules differ is flushed and written again (Felix's
/// `applyUpdates` for a dirty chain), all in one transaction. `None` when
/// nothing differs.
pub fn render_update(old: &NodeNatState, new: &NodeNatState, features: Features) -> Option<String> {
    if old.filter != new.filter {
        // The workloads or pools changed (a pod came or went): the harness
        // writes the tables whole, where Felix would update its maps, sets
        // and dispatch chains in place.
        return Some(render_apply(new, features));
    }
    let mut out = String::new();
    for family in FAMILIES {
        let before = fip_chains(old, family, features);
        for (chain, was) in fip_chains(new, family, features).iter().zip(&before) {
            if chain != was {
                writeln!(
                    out,
                    "flush chain {} {TABLE} {}",
                    keyword(family),
                    layered(chain.name)
                )
                .expect("writing to a String");
                add_chain_rules(&mut out, family, chain);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The script that removes both tables, as Felix's table.go does when its
/// table is disabled.
pub fn render_removal() -> String {
    super::render_nft_table_removal(TABLE)
}

/// The address a rule's statement or match carries, as JSON text.
fn address(value: &serde_json::Value) -> Option<IpAddr> {
    value.as_str()?.parse().ok()
}

/// The right-hand side of the rule's `<ip> <field> == X` match.
fn matched(expressions: &[serde_json::Value], field: &str) -> Option<IpAddr> {
    expressions.iter().find_map(|e| {
        let m = e.get("match")?;
        (m["left"]["payload"]["field"] == field)
            .then(|| address(&m["right"]))
            .flatten()
    })
}

/// The address of the rule's `dnat` / `snat` statement.
fn nat_target(expressions: &[serde_json::Value], statement: &str) -> Option<IpAddr> {
    expressions
        .iter()
        .find_map(|e| address(&e.get(statement)?["addr"]))
}

/// Read the floating-IP mappings back from `nft -j list table <family>
/// calico` output: the rules of `nat-cali-fip-dnat` and `nat-cali-fip-snat`.
pub fn parse_listing(json: &str) -> Result<NodeNatState, serde_json::Error> {
    let document: serde_json::Value = serde_json::from_str(json)?;
    let (mut dnat, mut snat) = (Vec::new(), Vec::new());
    let dnat_chain = layered(FIP_DNAT);
    let snat_chain = layered(FIP_SNAT);
    for object in document["nftables"].as_array().into_iter().flatten() {
        let Some(rule) = object.get("rule") else {
            continue;
        };
        if rule["table"] != TABLE {
            continue;
        }
        let expressions = rule["expr"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let chain = rule["chain"].as_str().unwrap_or_default();
        if chain == dnat_chain {
            if let (Some(external), Some(internal)) = (
                matched(expressions, "daddr"),
                nat_target(expressions, "dnat"),
            ) {
                dnat.push(DnatMapping::new(external, internal));
            }
        } else if chain == snat_chain {
            if let (Some(internal), Some(external)) = (
                matched(expressions, "saddr"),
                nat_target(expressions, "snat"),
            ) {
                snat.push(SnatMapping::new(internal, external));
            }
        }
    }
    Ok(NodeNatState::new(dnat, snat))
}

/// Felix's nftables rendering (see the module documentation).
#[derive(Debug)]
pub struct NftablesBackend {
    features: Features,
    applied: AppliedStates,
    /// Each node's conntrack table, for Felix's deletions.
    flows: KernelFlows,
}

impl Default for NftablesBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl NftablesBackend {
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

    /// One `nft -f -` run, one transaction (as Felix's knftables writes its
    /// transactions). A batch too large for one netlink message without root
    /// gets an error that says so (see `message_limit`).
    fn run_script(&self, node: &Netns, script: &str) -> Result<(), DataplaneError> {
        run_in(node, "nft", &["-f", "-"], Some(script.as_bytes()))
            .map(drop)
            .map_err(|error| match error {
                DataplaneError::Failed { netns, stderr, .. }
                    if message_limit::nft_refused_as_too_long(&stderr) =>
                {
                    DataplaneError::BatchTooLarge {
                        netns,
                        what: "`nft -f -`'s batch".into(),
                        limit: message_limit::largest_nft_message_without_root(),
                        sender: message_limit::Sender::Nft,
                    }
                }
                other => other,
            })
    }
}

impl Dataplane for NftablesBackend {
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        self.applied.apply(
            node,
            state,
            |old| render_update(old, state, self.features),
            || render_apply(state, self.features),
            |change| self.run_script(node, change),
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
        self.run_script(node, &render_removal())
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        nft_list_tables(node, TABLE, false)
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        nft_read_tables(node, TABLE, parse_listing)
    }
}

#[cfg(test)]
mod tests;
