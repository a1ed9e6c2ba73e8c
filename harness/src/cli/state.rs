//! `fip-harness state <lab>`: what every member of a live lab holds for
//! floating IPs, read from the kernel (not from any record the harness kept):
//! NAT mappings and the rules as each backend holds them, floating-IP routes,
//! and the conntrack entries that involve a floating IP.
//!
//! Works from the lab name alone: the members are the namespaces
//! `fiph-<lab>-*`; a member is shown when it holds floating-IP rules, routes or
//! entries, or when the lab's registry file names it as a node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use fip_harness::bgp::DaemonState;
use fip_harness::control::{list_routes, FipRoute};
use fip_harness::dataplane::conntrack::{Conntrack, ConntrackEntry};
use fip_harness::dataplane::{backend, BackendKind, DnatMapping, NodeNatState};
use fip_harness::driver::protocol::NatState;
use fip_harness::lab::daemons::lab_dir;
use fip_harness::lab::netlink::list_addresses;
use fip_harness::lab::netns::{Netns, LAB_PREFIX};
use fip_harness::lab::registry::{record_path, LabRecord};
use fip_harness::lab::spec::FABRIC;
use fip_harness::report::{FloatingIpHolder, Holder, LabOverview, MemberAddresses};
use fip_harness::text::printable;
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
    /// The NAT the driver read back in that dump (`mappings`), if it could.
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_mappings: Option<NatState>,
    /// When that dump was taken (seconds since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_dumped_at: Option<u64>,
}

impl MemberState {
    /// Its DNAT mappings: each backend's, and its driver's as dumped.
    fn dnats(&self) -> impl Iterator<Item = &DnatMapping> {
        let driver = self
            .driver_mappings
            .iter()
            .flat_map(|m| m.ipv4.dnat.iter().chain(&m.ipv6.dnat));
        self.backends
            .iter()
            .flat_map(|b| b.mappings.dnat.iter())
            .chain(driver)
    }
}

/// The lab's record (nodes, external hosts and pods by name), when there is one.
fn lab_record(lab: &str) -> Option<LabRecord> {
    LabRecord::read(&record_path(lab)).ok()
}

/// A member's kind as the record says, else from what it holds.
fn kind_of(record: Option<&LabRecord>, member: &str) -> &'static str {
    let listed = |names: &[String]| names.iter().any(|n| n == member);
    match record {
        _ if member == FABRIC => "fabric",
        Some(r) if listed(&r.nodes) => "node",
        Some(r) if listed(&r.externals) => "external",
        Some(r) if listed(&r.pods) => "pod",
        _ => "?",
    }
}

/// Every member with its addresses, and which pod each node's DNAT sends each
/// floating IP to (the pod found by its address).
fn overview(
    lab: &str,
    namespaces: &[(Netns, MemberState)],
    record: Option<&LabRecord>,
) -> LabOverview {
    let members: Vec<MemberAddresses> = namespaces
        .iter()
        .map(|(ns, state)| MemberAddresses {
            member: state.member.clone(),
            kind: kind_of(record, &state.member).to_string(),
            node: None,
            addresses: list_addresses(ns).unwrap_or_default(),
        })
        .collect();
    let pod_of = |internal: IpAddr| {
        members
            .iter()
            .filter(|m| m.kind == "pod")
            .find(|m| m.addresses.iter().any(|a| a.address == internal))
            .map_or("?".to_string(), |m| m.member.clone())
    };
    let mut holders: BTreeMap<IpAddr, BTreeSet<Holder>> = BTreeMap::new();
    for (_, state) in namespaces {
        for dnat in state.dnats() {
            holders.entry(dnat.external).or_default().insert(Holder {
                pod: pod_of(dnat.internal),
                internal: dnat.internal,
                node: state.member.clone(),
            });
        }
    }
    let (source, unknown) = driver_view(namespaces);
    LabOverview {
        lab: lab.to_string(),
        source,
        unknown,
        members,
        floating_ips: holders
            .into_iter()
            .map(|(floating_ip, holders)| FloatingIpHolder {
                floating_ip,
                holders: holders.into_iter().collect(),
            })
            .collect(),
    }
}

/// What the floating IPs of a lab kept with an exec: driver rest on: the
/// drivers' last dumps (taken when the lab was kept; a driver runs only
/// while a command drives the lab), and when they were taken; or why they
/// are not known (a dump that did not read the driver's NAT back).
fn driver_view(namespaces: &[(Netns, MemberState)]) -> (Option<String>, Option<String>) {
    let dumped: Vec<&MemberState> = namespaces
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.driver_dump.is_some())
        .collect();
    let Some(newest) = dumped.iter().filter_map(|m| m.driver_dumped_at).max() else {
        return (None, None);
    };
    let when = fip_harness::text::utc(newest);
    let source = format!(
        "as the driver's dump of {when} said; the driver does not run now, its NAT may \
         have changed since"
    );
    let blind: Vec<&str> = dumped
        .iter()
        .filter(|m| m.driver_mappings.is_none())
        .map(|m| m.member.as_str())
        .collect();
    let unknown = (!blind.is_empty()).then(|| {
        format!(
            "the driver's dump of {when} on {} did not read its NAT back (`mappings`)",
            blind.join(", ")
        )
    });
    (Some(source), unknown)
}

/// `state --json`: the overview, BIRD's view, then each member's NAT,
/// routes and conntrack entries.
#[derive(Debug, Serialize)]
struct LabState<'a> {
    #[serde(flatten)]
    overview: &'a LabOverview,
    /// Each BIRD's protocols and routes (empty under model routing).
    bird: &'a [DaemonState],
    dataplane: &'a [MemberState],
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
            printable(&args.lab)
        )
    })?;
    let prefix = format!("{LAB_PREFIX}{}-", args.lab);
    let names = Netns::list_with_prefix(&prefix);
    if names.is_empty() {
        bail!("no lab named '{}' (no namespace {prefix}*)", args.lab);
    }
    let record = lab_record(&args.lab);
    let nodes: BTreeSet<String> = record
        .as_ref()
        .map(|r| r.nodes.iter().cloned().collect())
        .unwrap_or_default();
    // Felix's routes to the pods' own addresses carry the protocol of its
    // floating-IP routes: leave them out by the addresses the pods hold.
    let pods: BTreeSet<&String> = record.iter().flat_map(|r| &r.pods).collect();
    let pod_addresses: Vec<IpAddr> = names
        .iter()
        .filter(|name| pods.contains(&name[prefix.len()..].to_string()))
        .filter_map(|name| Netns::open(name).ok())
        .filter_map(|ns| list_addresses(&ns).ok())
        .flatten()
        .map(|a| a.address)
        .collect();
    let mut members = Vec::new();
    for name in names {
        let ns = Netns::open(&name).with_context(|| format!("open namespace {name}"))?;
        let member = name[prefix.len()..].to_string();
        let driver_dir = lab_dir(&args.lab).join(format!("driver-{member}"));
        let driver_dump = std::fs::read_to_string(driver_dir.join("driver-dump.txt")).ok();
        let driver_dumped_at = std::fs::metadata(driver_dir.join("driver-dump.txt"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let driver_mappings = std::fs::read(driver_dir.join("driver-mappings.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
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
        let routes =
            list_routes(&ns, &pod_addresses).with_context(|| format!("routes of {name}"))?;
        members.push((
            ns,
            MemberState {
                member,
                netns: name,
                backends,
                routes,
                conntrack: Vec::new(),
                driver_dump,
                driver_mappings,
                driver_dumped_at,
            },
        ));
    }

    let floating: BTreeSet<IpAddr> = members
        .iter()
        .flat_map(|(_, m)| {
            m.dnats()
                .map(|d| d.external)
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
    let overview = overview(&args.lab, &members, record.as_ref());
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
    let bird = fip_harness::bgp::lab_state(&args.lab);

    if args.json {
        let state = LabState {
            overview: &overview,
            bird: &bird,
            dataplane: &shown,
        };
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_state(&args, &overview, &bird, &shown);
    Ok(ExitCode::SUCCESS)
}

/// The state as text: the overview, BIRD's sessions and routes, then each
/// member's mappings, routes, conntrack entries, driver dump and rules.
fn print_state(args: &Args, overview: &LabOverview, bird: &[DaemonState], shown: &[MemberState]) {
    println!("{}", overview.render().trim_end());
    if shown.is_empty() {
        println!(
            "lab '{}': no floating-IP rules, routes or entries",
            args.lab
        );
    }
    for daemon in bird {
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
    for member in shown {
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
            let when = member
                .driver_dumped_at
                .map_or("at a time not known".to_string(), |t| {
                    format!("of {}", fip_harness::text::utc(t))
                });
            println!(
                "  driver's dump {when} (when the lab was kept; the driver does not run now):"
            );
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
}
