//! A lab's fingerprint: everything in its namespaces that a case can change,
//! as normalised text, so that a lab reset between cases
//! ([`super::reset`]) can be compared with the lab as it was built.
//!
//! Per kept member (fabric, nodes, external hosts): links and addresses,
//! policy rules and the routes of every table, neighbour entries other than
//! permanent ones, both conntrack tables, `nft list ruleset`, the legacy and
//! the nft iptables of both families, ipsets, every TCP/UDP/raw/SCTP socket
//! (listening and TIME_WAIT included), every sysctl under /proc/sys/net and
//! the processes living in the namespace. Per lab: the pod namespaces
//! pinned under the lab's prefix, the pods the lab value knows, and its
//! registry record's pods and namespaces.
//!
//! Values that move on their own while nothing happens (packet counters,
//! conntrack timeouts, address and route lifetimes, neighbour
//! confirmation times) are left out of the text; everything else is kept
//! byte for byte.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::cluster::Lab;
use super::error::LabError;
use super::netns::{pin_path, Netns};
use super::registry::{record_path, LabRecord};
use super::spec::namespace_prefix;

/// Sections a member's fingerprint has, by kind of state (the classes a
/// reset cleans: [`super::reset::ResetStep`]).
pub const SECTIONS: [&str; 13] = [
    "links",
    "addresses",
    "rules",
    "routes",
    "neighbours",
    "conntrack",
    "nft",
    "iptables-legacy",
    "iptables-nft",
    "ipset",
    "sockets",
    "sysctls",
    "processes",
];

/// The fingerprint of a lab: per member, per section, normalised lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// member -> section -> lines (sorted where the order means nothing).
    pub members: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// The lab's own bookkeeping: "pinned pods", "lab pods", "registry".
    pub lab: BTreeMap<String, Vec<String>>,
}

impl Fingerprint {
    /// Every line in which `self` differs from `fresh`, as
    /// `member section: + line` (only here) or `- line` (only in `fresh`).
    pub fn differences(&self, fresh: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        let mut members: Vec<&String> = self.members.keys().chain(fresh.members.keys()).collect();
        members.sort();
        members.dedup();
        let empty = BTreeMap::new();
        for member in members {
            let now = self.members.get(member).unwrap_or(&empty);
            let then = fresh.members.get(member).unwrap_or(&empty);
            diff_sections(member, now, then, &mut out);
        }
        diff_sections("lab", &self.lab, &fresh.lab, &mut out);
        out
    }

    /// The sections in which `self` differs from `fresh`, as
    /// `member section` (for tests that ask which class leaked).
    pub fn differing_sections(&self, fresh: &Fingerprint) -> Vec<String> {
        let mut out: Vec<String> = self
            .differences(fresh)
            .iter()
            .filter_map(|line| line.split(':').next().map(str::to_string))
            .collect();
        out.dedup();
        out
    }
}

fn diff_sections(
    member: &str,
    now: &BTreeMap<String, Vec<String>>,
    then: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<String>,
) {
    let mut sections: Vec<&String> = now.keys().chain(then.keys()).collect();
    sections.sort();
    sections.dedup();
    for section in sections {
        let a = now.get(section).map(Vec::as_slice).unwrap_or_default();
        let b = then.get(section).map(Vec::as_slice).unwrap_or_default();
        for line in a.iter().filter(|l| !b.contains(l)) {
            out.push(format!("{member} {section}: + {line}"));
        }
        for line in b.iter().filter(|l| !a.contains(l)) {
            out.push(format!("{member} {section}: - {line}"));
        }
    }
}

impl Lab {
    /// The lab's fingerprint now (see the module's documentation). Runs
    /// some 20 programs in each kept member, the members at once: a check
    /// for tests and debug runs, not for every case.
    pub async fn fingerprint(&self) -> Result<Fingerprint, LabError> {
        let members: Vec<(String, Netns)> = self.kept_members();
        let mut lab = BTreeMap::new();
        let prefix = namespace_prefix(&self.spec.name);
        let kept: Vec<String> = members
            .iter()
            .map(|(_, ns)| ns.name().to_string())
            .collect();
        let pinned: Vec<String> = Netns::list_with_prefix(&prefix)
            .into_iter()
            .filter(|ns| !kept.contains(ns))
            .collect();
        lab.insert("pinned pods".to_string(), pinned);
        lab.insert("lab pods".to_string(), self.pods.keys().cloned().collect());
        lab.insert("registry".to_string(), registry_lines(&self.spec.name));
        // What the lab value believes: the blocks it routed to each node
        // (routed again only when new to it) and the next pod's ifindex.
        let nodes = self.nodes.iter().zip(&self.spec.nodes);
        let believed = nodes
            .map(|(state, spec)| {
                let blocks = |b: &[ipnet::IpNet]| {
                    b.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                format!(
                    "{} blocks [{}] spec blocks [{}] next ifindex {}",
                    state.spec.name,
                    blocks(&state.spec.blocks),
                    blocks(&spec.blocks),
                    state.next_ifindex
                )
            })
            .collect();
        lab.insert("lab nodes".to_string(), believed);
        let lab_name = self.spec.name.clone();
        let taken = tokio::task::spawn_blocking(move || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = members
                    .iter()
                    .map(|(name, ns)| scope.spawn(move || (name.clone(), member_fingerprint(ns))))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a fingerprint thread panicked"))
                    .collect::<Vec<_>>()
            })
        })
        .await
        .map_err(|_| LabError::Panicked {
            lab: lab_name,
            what: "taking the lab's fingerprint",
        })?;
        let mut fingerprint = Fingerprint {
            members: BTreeMap::new(),
            lab,
        };
        for (name, sections) in taken {
            fingerprint.members.insert(name, sections?);
        }
        Ok(fingerprint)
    }

    /// The fabric, the nodes and the external hosts: the members a reset
    /// keeps, by member name.
    pub(super) fn kept_members(&self) -> Vec<(String, Netns)> {
        std::iter::once(("fabric".to_string(), self.fabric.netns.clone()))
            .chain(
                self.nodes
                    .iter()
                    .map(|n| (n.spec.name.clone(), n.member.netns.clone())),
            )
            .chain(
                self.spec
                    .externals
                    .iter()
                    .cloned()
                    .zip(self.externals.iter().map(|m| m.netns.clone())),
            )
            .collect()
    }
}

fn registry_lines(lab: &str) -> Vec<String> {
    match LabRecord::read(&record_path(lab)) {
        Ok(record) => vec![
            format!("pods {}", record.pods.join(" ")),
            format!("namespaces {}", record.namespaces.join(" ")),
        ],
        Err(error) => vec![format!("unreadable: {error}")],
    }
}

/// What a program prints in `ns` (stdout; a failure to run it is the
/// fingerprint's error, a non-zero exit is part of the text).
pub(super) fn program_output(
    ns: &Netns,
    program: &'static str,
    args: &[&str],
) -> Result<String, LabError> {
    let output = ns
        .command(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| LabError::Program {
            namespace: ns.name().to_string(),
            program,
            detail: match e.kind() {
                std::io::ErrorKind::NotFound => crate::programs::missing(program).to_string(),
                _ => e.to_string(),
            },
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        text.push_str(&format!(
            "\n(exit {}: {})",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(text)
}

type Sections = BTreeMap<String, Vec<String>>;

fn member_fingerprint(ns: &Netns) -> Result<Sections, LabError> {
    let mut sections = Sections::new();
    let mut add = |section: &str, lines: Vec<String>| {
        sections
            .entry(section.to_string())
            .or_default()
            .extend(lines);
    };
    let run = |program: &'static str, args: &[&str]| program_output(ns, program, args);
    add("links", plain(&run("ip", &["-o", "link", "show"])?));
    add(
        "addresses",
        addresses(&run("ip", &["-o", "address", "show"])?),
    );
    for family in ["-4", "-6"] {
        add("rules", plain(&run("ip", &[family, "rule", "show"])?));
        let routes = run("ip", &["-o", family, "route", "show", "table", "all"])?;
        add("routes", route_lines(&routes));
    }
    add(
        "neighbours",
        neighbours(&run("ip", &["neigh", "show", "nud", "all"])?),
    );
    for family in ["ipv4", "ipv6"] {
        add(
            "conntrack",
            conntrack(&run("conntrack", &["-L", "-f", family])?),
        );
    }
    add("nft", nft(&run("nft", &["list", "ruleset"])?));
    for (section, save) in [
        (
            "iptables-legacy",
            ["iptables-legacy-save", "ip6tables-legacy-save"],
        ),
        ("iptables-nft", ["iptables-nft-save", "ip6tables-nft-save"]),
    ] {
        for program in save {
            add(section, iptables(&run(program, &[])?));
        }
    }
    add("ipset", plain(&run("ipset", &["save"])?));
    add("sockets", sockets(&run("ss", &["-Hna", "-t", "-u", "-w"])?));
    add("sockets", sockets(&run("ss", &["-Hna", "--sctp"])?));
    add("sysctls", sysctls(ns)?);
    add("processes", processes(ns));
    for lines in sections.values_mut() {
        lines.sort();
    }
    Ok(sections)
}

fn plain(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Words that follow each other in `line`, without `word value` pairs whose
/// value ticks on its own.
fn without_values(line: &str, volatile: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if volatile.contains(&word) {
            words.next();
            continue;
        }
        out.push(word);
    }
    out.join(" ")
}

fn addresses(text: &str) -> Vec<String> {
    plain(text)
        .iter()
        .map(|l| without_values(&l.replace('\\', " "), &["valid_lft", "preferred_lft"]))
        .collect()
}

pub(super) fn route_lines(text: &str) -> Vec<String> {
    plain(text)
        .iter()
        .map(|l| without_values(&l.replace('\\', " "), &["expires"]))
        .filter(|l| !l.is_empty())
        .collect()
}

fn neighbours(text: &str) -> Vec<String> {
    plain(text)
        .into_iter()
        // Permanent entries are the lab's own; NOARP ones the kernel's map
        // of multicast addresses, made without asking anyone.
        .filter(|l| !l.ends_with("PERMANENT") && !l.ends_with("NOARP"))
        .collect()
}

fn conntrack(text: &str) -> Vec<String> {
    // `udp 17 29 src=...`: the third word is the seconds left.
    plain(text)
        .iter()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [proto, number, _left, rest @ ..] => format!("{proto} {number} {}", rest.join(" ")),
                _ => l.clone(),
            }
        })
        .collect()
}

fn nft(text: &str) -> Vec<String> {
    plain(text)
        .iter()
        .map(|l| without_values(l, &["packets", "bytes"]))
        .collect()
}

/// `iptables-save` without its comments and counters, and without tables
/// that hold nothing (a legacy table, once a tool has used it in a
/// namespace, stays registered there, empty: it changes nothing).
fn iptables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut table: Vec<String> = Vec::new();
    for line in plain(text) {
        if line.starts_with('#') {
            continue;
        }
        let line = strip_counters(&line);
        if line.starts_with('*') {
            table = vec![line];
        } else if line == "COMMIT" {
            if !builtin_only(&table) {
                out.append(&mut table);
                out.push(line);
            }
            table.clear();
        } else {
            table.push(line);
        }
    }
    out.extend(table);
    out
}

/// Whether every chain of `table` (its lines after `*name`) is a built-in
/// one with policy ACCEPT.
fn builtin_only(table: &[String]) -> bool {
    table.iter().skip(1).all(|l| {
        let chain = l.trim_start_matches(':').split(' ').next().unwrap_or("");
        l.starts_with(':')
            && l.ends_with(" ACCEPT")
            && matches!(
                chain,
                "INPUT" | "FORWARD" | "OUTPUT" | "PREROUTING" | "POSTROUTING"
            )
    })
}

fn strip_counters(line: &str) -> String {
    line.split_whitespace()
        .filter(|w| !(w.starts_with('[') && w.ends_with(']') && w.contains(':')))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sockets(text: &str) -> Vec<String> {
    plain(text)
}

/// Every readable value under /proc/sys/net, read from inside the
/// namespace (the directory shows the reading thread's namespace).
fn sysctls(ns: &Netns) -> Result<Vec<String>, LabError> {
    let read = ns.run(|| {
        let mut lines = Vec::new();
        walk(Path::new("/proc/sys/net"), &mut lines);
        lines
    })?;
    Ok(read)
}

fn walk(dir: &Path, lines: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, lines);
        } else if let Ok(value) = std::fs::read_to_string(&path) {
            let key = path
                .strip_prefix("/proc/sys/")
                .unwrap_or(&path)
                .display()
                .to_string()
                .replace('/', ".");
            if !VOLATILE_SYSCTLS.contains(&key.as_str()) {
                lines.push(format!(
                    "{key} = {}",
                    value.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
}

/// Values the kernel changes by itself (counts of live objects).
const VOLATILE_SYSCTLS: [&str; 1] = ["net.netfilter.nf_conntrack_count"];

/// The command names of the processes whose network namespace is `ns`.
fn processes(ns: &Netns) -> Vec<String> {
    let Ok(target) = std::fs::metadata(pin_path(ns.name())) else {
        return vec!["(namespace pin unreadable)".to_string()];
    };
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if meta.ino() == target.ino() && meta.dev() == target.dev() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            out.push(comm.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_legacy_tables_are_left_out_and_counters_go() {
        let text = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [3:180]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n\
                    *filter\n:INPUT ACCEPT [0:0]\n:cali-x - [0:0]\nCOMMIT\n\
                    *mangle\n:FORWARD DROP [1:2]\nCOMMIT\n";
        assert_eq!(
            iptables(text),
            [
                "*filter",
                ":INPUT ACCEPT",
                ":cali-x -",
                "COMMIT",
                "*mangle",
                ":FORWARD DROP",
                "COMMIT"
            ]
        );
    }

    #[test]
    fn counters_timeouts_and_lifetimes_are_not_part_of_the_text() {
        assert_eq!(
            nft("ct state invalid counter packets 3 bytes 180"),
            ["ct state invalid counter"]
        );
        assert_eq!(
            conntrack("icmp 1 29 src=198.18.1.10 dst=203.0.113.1 type=8"),
            ["icmp 1 src=198.18.1.10 dst=203.0.113.1 type=8"]
        );
        assert_eq!(
            addresses("2: uplink inet 198.18.0.1/24 scope global uplink\\ valid_lft forever preferred_lft forever"),
            ["2: uplink inet 198.18.0.1/24 scope global uplink"]
        );
    }

    #[test]
    fn a_difference_names_member_section_and_line() {
        let mut fresh = Fingerprint::default();
        fresh
            .members
            .entry("fabric".into())
            .or_default()
            .insert("routes".into(), vec!["a".into()]);
        let mut now = fresh.clone();
        now.members
            .get_mut("fabric")
            .unwrap()
            .get_mut("routes")
            .unwrap()
            .push("b".into());
        assert_eq!(now.differences(&fresh), ["fabric routes: + b"]);
        assert_eq!(now.differing_sections(&fresh), ["fabric routes"]);
        assert!(fresh.differences(&fresh).is_empty());
    }
}
