//! `fip-harness state <lab>`: what every member of a live lab holds for
//! floating IPs, read from the kernel (not from any record the harness kept):
//! NAT mappings and the rules as each backend holds them, floating-IP routes,
//! and the conntrack entries that involve a floating IP.
//!
//! Works from the lab name alone: the members are the namespaces
//! `fiph-<lab>-*`; a member is shown when it holds floating-IP rules, routes or
//! entries, or when the lab's registry file names it as a node.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use fip_harness::control::{list_routes, FipRoute};
use fip_harness::dataplane::conntrack::{Conntrack, ConntrackEntry};
use fip_harness::dataplane::{backend, BackendKind, NodeNatState};
use fip_harness::lab::daemons::lab_dir;
use fip_harness::lab::netns::{Netns, LAB_PREFIX};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name.
    pub(super) lab: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Leave out the raw rules.
    #[arg(long)]
    no_rules: bool,
}

#[derive(Debug, Serialize)]
struct BackendState {
    backend: BackendKind,
    mappings: NodeNatState,
    rules: String,
}

#[derive(Debug, Serialize)]
struct MemberState {
    member: String,
    netns: String,
    backends: Vec<BackendState>,
    routes: Vec<FipRoute>,
    conntrack: Vec<ConntrackEntry>,
    /// An external driver's own view, as it dumped it when the lab was kept
    /// (the driver itself is not running any more).
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_dump: Option<String>,
}

/// Node names from the registry file the lab module writes, when there is one.
fn registered_nodes(lab: &str) -> BTreeSet<String> {
    let path = fip_harness::lab::registry::record_path(lab);
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return BTreeSet::new();
    };
    value["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| {
            node.as_str()
                .or_else(|| node["name"].as_str())
                .map(str::to_string)
        })
        .collect()
}

fn has_rules(state: &NodeNatState, rules: &str, kind: BackendKind) -> bool {
    !state.dnat.is_empty()
        || !state.snat.is_empty()
        || match kind {
            BackendKind::Nftables | BackendKind::NftMaps => rules.contains("table"),
            BackendKind::Iptables => rules.contains("cali-fip-dnat"),
        }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    fip_harness::lab::spec::check_lab_name(&args.lab).map_err(|_| {
        anyhow::anyhow!(
            "'{}' is not a lab name (1-12 of a-z, 0-9); `fip-harness ls` lists labs",
            args.lab
        )
    })?;
    let prefix = format!("{LAB_PREFIX}{}-", args.lab);
    let names = Netns::list_with_prefix(&prefix);
    if names.is_empty() {
        bail!("no lab named '{}' (no namespace {prefix}*)", args.lab);
    }
    let nodes = registered_nodes(&args.lab);
    let mut members = Vec::new();
    for name in names {
        let ns = Netns::open(&name).with_context(|| format!("open namespace {name}"))?;
        let member = name[prefix.len()..].to_string();
        let driver_dump = std::fs::read_to_string(
            lab_dir(&args.lab)
                .join(format!("driver-{member}"))
                .join("driver-dump.txt"),
        )
        .ok();
        let mut backends = Vec::new();
        for kind in BackendKind::ALL {
            let dataplane = backend(kind);
            let rules = dataplane.dump(&ns).unwrap_or_default();
            let mappings = dataplane.read(&ns).unwrap_or_default();
            if has_rules(&mappings, &rules, kind) {
                backends.push(BackendState {
                    backend: kind,
                    mappings,
                    rules,
                });
            }
        }
        let routes = list_routes(&ns).with_context(|| format!("routes of {name}"))?;
        members.push((
            ns,
            MemberState {
                member,
                netns: name,
                backends,
                routes,
                conntrack: Vec::new(),
                driver_dump,
            },
        ));
    }

    let floating: BTreeSet<IpAddr> = members
        .iter()
        .flat_map(|(_, m)| {
            m.backends
                .iter()
                .flat_map(|b| b.mappings.dnat.iter().map(|d| d.external))
                .chain(m.routes.iter().map(|r| r.destination))
                .collect::<Vec<_>>()
        })
        .collect();
    for (ns, state) in &mut members {
        if state.backends.is_empty() && !nodes.contains(&state.member) {
            continue;
        }
        let mut conntrack =
            Conntrack::open(ns).with_context(|| format!("conntrack of {}", state.netns))?;
        state.conntrack = conntrack
            .list()?
            .into_iter()
            .filter(|e| floating.iter().any(|f| e.involves(*f)))
            .collect();
    }
    let shown: Vec<MemberState> = members
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| {
            nodes.contains(&m.member)
                || m.driver_dump.is_some()
                || !m.backends.is_empty()
                || !m.routes.is_empty()
                || !m.conntrack.is_empty()
        })
        .collect();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    if shown.is_empty() {
        println!(
            "lab '{}': no floating-IP rules, routes or entries",
            args.lab
        );
    }
    for daemon in fip_harness::bgp::lab_state(&args.lab) {
        println!("== {} {} (BIRD)", daemon.member, daemon.daemon);
        for protocol in daemon.protocols.iter().filter(|p| p.protocol == "BGP") {
            println!(
                "  session {}: {} {}",
                protocol.name, protocol.state, protocol.info
            );
        }
        for route in &daemon.routes {
            println!(
                "  {} {} [{}]{}",
                route.prefix,
                route.target,
                route.protocol,
                if route.best { " *" } else { "" }
            );
        }
    }
    for member in &shown {
        println!("== {} ({})", member.member, member.netns);
        for b in &member.backends {
            println!("  {} mappings:", b.backend);
            for d in &b.mappings.dnat {
                println!("    DNAT {} -> {}", d.external, d.internal);
            }
            for s in &b.mappings.snat {
                println!(
                    "    SNAT {} -> {} (when {} talks to itself)",
                    s.internal, s.external, s.internal
                );
            }
        }
        println!("  floating-IP routes:");
        for route in &member.routes {
            println!("    {route}");
        }
        if !member.conntrack.is_empty() {
            println!("  conntrack entries involving a floating IP:");
            for entry in &member.conntrack {
                println!("    {}", entry.summary());
            }
        }
        if let Some(dump) = &member.driver_dump {
            println!("  driver's dump (when the lab was kept):");
            for line in dump.lines() {
                println!("    {line}");
            }
        }
        if !args.no_rules {
            for b in &member.backends {
                println!("  rules ({}):", b.backend);
                for line in b.rules.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
