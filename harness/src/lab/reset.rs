//! Resetting a lab between two cases of the same shape, so that the next
//! case meets the lab as it was built ([`super::fingerprint`] says what
//! "as built" covers; tests/lab_reset.rs proves a reset restores it, and
//! that leaving any one step out does not).
//!
//! Kept: the namespaces of the fabric, nodes and external hosts, their
//! links, addresses and sysctls (no case changes them; the fingerprint
//! check would show it if one did). Rebuilt per case: pods (removed here,
//! created by the next case). Cleaned: the nodes' rulesets (nft, legacy
//! iptables of both families, ipsets; the lab's own tracking table put
//! back), the nodes' conntrack tables, every member's TCP and UDP sockets
//! (TIME_WAIT ones included: `ss -K`), routes the lab did not have when
//! built (in every table), and every neighbour entry that is not permanent.
//! A reset that cannot bring the routes back to the built lab's fails:
//! the caller then builds a new lab.

use std::collections::BTreeMap;
use std::process::Stdio;

use super::addressing::IFINDEX_FIRST_WORKLOAD;
use super::cluster::Lab;
use super::error::LabError;
use super::fingerprint::{program_output, route_lines};
use super::netns::Netns;

/// One kind of leftover a reset cleans, in the order it cleans them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResetStep {
    /// Every pod: its namespace, its veth pair and with them its routes.
    Pods,
    /// The nodes' nft ruleset (the lab's tracking table put back), legacy
    /// iptables tables of both families and ipsets.
    Ruleset,
    /// The nodes' conntrack tables, both families.
    Conntrack,
    /// Every member's TCP and UDP sockets, TIME_WAIT included.
    Sockets,
    /// Routes of any table the built lab did not have (the blocks a case
    /// routed to nodes among them, forgotten by the lab value too).
    Routes,
    /// Neighbour entries that are not permanent, in every member.
    Neighbours,
}

impl ResetStep {
    pub const ALL: [ResetStep; 6] = [
        ResetStep::Pods,
        ResetStep::Ruleset,
        ResetStep::Conntrack,
        ResetStep::Sockets,
        ResetStep::Routes,
        ResetStep::Neighbours,
    ];
}

/// What a reset must know of the lab as built: each kept member's routes,
/// and the lab's spec (the blocks routed to each node, which a case adds).
#[derive(Clone, Debug)]
pub struct ResetBaseline {
    routes: BTreeMap<String, Vec<String>>,
    spec: super::LabSpec,
}

/// The legacy tables and their built-in chains (net/ipv4/netfilter/iptable_*.c).
const LEGACY_TABLES: [(&str, &[&str]); 5] = [
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    (
        "mangle",
        &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    ),
    ("raw", &["PREROUTING", "OUTPUT"]),
    ("security", &["INPUT", "FORWARD", "OUTPUT"]),
];

impl Lab {
    /// The routes of the lab as built, once its IPv6 addresses are no
    /// longer tentative (an address stays tentative until its link's peer
    /// is up, which the build does not wait for, and its local route comes
    /// only then): take it right after building.
    pub async fn reset_baseline(&self) -> Result<ResetBaseline, LabError> {
        let lab = self.spec.name.clone();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(3) {
            let tentative = on_each(&lab, self.kept_members(), |_, ns| {
                program_output(ns, "ip", &["-o", "address", "show", "tentative"])
            })
            .await?;
            if tentative.iter().all(|(_, text)| text.trim().is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let routes = on_each(&lab, self.kept_members(), |_, ns| routes_of(ns)).await?;
        Ok(ResetBaseline {
            routes: routes.into_iter().collect(),
            spec: self.spec.clone(),
        })
    }

    /// Bring the lab back to `baseline`'s lab as built (every step).
    pub async fn reset(&mut self, baseline: &ResetBaseline) -> Result<(), LabError> {
        self.reset_with(baseline, &ResetStep::ALL).await
    }

    /// Carry out `steps` of a reset (a test leaves one out to show the
    /// fingerprint then differs).
    pub async fn reset_with(
        &mut self,
        baseline: &ResetBaseline,
        steps: &[ResetStep],
    ) -> Result<(), LabError> {
        if steps.contains(&ResetStep::Pods) {
            self.remove_every_pod().await?;
        }
        if steps.contains(&ResetStep::Routes) {
            // The blocks the case routed go with their routes below: the
            // next case's blocks are new to the lab again, and routed.
            for (state, built) in self.nodes.iter_mut().zip(&baseline.spec.nodes) {
                state.spec.blocks = built.blocks.clone();
            }
            self.spec.nodes = baseline.spec.nodes.clone();
        }
        let lab = self.spec.name.clone();
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.spec.name.clone()).collect();
        let mut failures = Vec::new();
        // In three rounds over every member, each round ending before the
        // next begins: first nothing is left to send (sockets killed; a
        // killed connection's last reset crosses the lab now), then the
        // state packets leave (rules, conntrack, routes), then the caches
        // that packets fill (neighbours).
        let rounds = [
            vec![ResetStep::Sockets],
            vec![ResetStep::Ruleset, ResetStep::Conntrack, ResetStep::Routes],
            vec![ResetStep::Neighbours],
        ];
        for round in rounds {
            let steps: Vec<ResetStep> = round.into_iter().filter(|s| steps.contains(s)).collect();
            if steps.is_empty() {
                continue;
            }
            let nodes = nodes.clone();
            let routes = baseline.routes.clone();
            let done = on_each(&lab, self.kept_members(), move |name, ns| {
                let node = nodes.iter().any(|n| n == name);
                clean_member(ns, node, &steps, routes.get(name))
            })
            .await?;
            failures.extend(done);
        }
        let failures: Vec<String> = failures
            .into_iter()
            .flat_map(|(member, problems)| {
                problems.into_iter().map(move |p| format!("{member}: {p}"))
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(LabError::Reset {
                lab,
                what: failures.join("; "),
            })
        }
    }

    async fn remove_every_pod(&mut self) -> Result<(), LabError> {
        let names: Vec<String> = self.pods.keys().cloned().collect();
        for name in names {
            self.remove_pod(&name).await?;
        }
        for node in &mut self.nodes {
            node.next_ifindex = IFINDEX_FIRST_WORKLOAD;
        }
        Ok(())
    }
}

/// `work` in every member at once, each on its own thread.
async fn on_each<R: Send + 'static>(
    lab: &str,
    members: Vec<(String, Netns)>,
    work: impl Fn(&str, &Netns) -> Result<R, LabError> + Send + Sync + 'static,
) -> Result<Vec<(String, R)>, LabError> {
    let done = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = members
                .iter()
                .map(|(name, ns)| {
                    let work = &work;
                    scope.spawn(move || work(name, ns).map(|r| (name.clone(), r)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(panicked(""))))
                .collect::<Result<Vec<_>, LabError>>()
        })
    })
    .await
    .map_err(|_| panicked(lab))?;
    done.map_err(|e| match e {
        LabError::Panicked { what, .. } => LabError::Panicked {
            lab: lab.to_string(),
            what,
        },
        other => other,
    })
}

fn panicked(lab: &str) -> LabError {
    LabError::Panicked {
        lab: lab.to_string(),
        what: "resetting the lab",
    }
}

fn routes_of(ns: &Netns) -> Result<Vec<String>, LabError> {
    let mut lines = Vec::new();
    for family in ["-4", "-6"] {
        let text = program_output(ns, "ip", &["-o", family, "route", "show", "table", "all"])?;
        lines.extend(
            route_lines(&text)
                .into_iter()
                .map(|l| format!("{family} {l}")),
        );
    }
    Ok(lines)
}

/// The cleaning `steps` of one member; what could not be cleaned.
fn clean_member(
    ns: &Netns,
    node: bool,
    steps: &[ResetStep],
    built_routes: Option<&Vec<String>>,
) -> Result<Vec<String>, LabError> {
    let mut problems = Vec::new();
    if node && steps.contains(&ResetStep::Ruleset) {
        problems.extend(reset_ruleset(ns)?);
    }
    if node && steps.contains(&ResetStep::Conntrack) {
        problems.extend(flush_conntrack(ns)?);
    }
    if steps.contains(&ResetStep::Sockets) {
        problems.extend(quiet(ns, "ss", &["-K", "-Hna", "-t", "-u"])?);
    }
    if steps.contains(&ResetStep::Routes) {
        let empty = Vec::new();
        problems.extend(restore_routes(ns, built_routes.unwrap_or(&empty))?);
    }
    if steps.contains(&ResetStep::Neighbours) {
        problems.extend(quiet(ns, "ip", &["neigh", "flush", "all"])?);
    }
    Ok(problems)
}

/// Empty both conntrack tables of `ns`, until the kernel counts no entry
/// (a packet still crossing the node as the flush runs makes a new one).
fn flush_conntrack(ns: &Netns) -> Result<Vec<String>, LabError> {
    let count = || {
        ns.run(|| {
            std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        })
    };
    let mut problems = Vec::new();
    for _attempt in 0..3 {
        problems.clear();
        for family in ["ipv4", "ipv6"] {
            problems.extend(quiet(ns, "conntrack", &["-F", "-f", family])?);
        }
        // No module, no file: nothing was ever tracked here.
        let left = count()?;
        if left.is_empty() || left == "0" {
            return Ok(problems);
        }
    }
    problems.push(format!(
        "conntrack entries keep coming back ({} after three flushes)",
        count()?
    ));
    Ok(problems)
}

/// Run `program` in `ns`; its complaint if it failed.
fn quiet(ns: &Netns, program: &'static str, args: &[&str]) -> Result<Option<String>, LabError> {
    run_with_input(ns, program, args, None)
}

fn run_with_input(
    ns: &Netns,
    program: &'static str,
    args: &[&str],
    input: Option<&str>,
) -> Result<Option<String>, LabError> {
    let failed = |detail: String| LabError::Program {
        namespace: ns.name().to_string(),
        program,
        detail,
    };
    let mut child = ns
        .command(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => failed(crate::programs::missing(program).to_string()),
            _ => failed(e.to_string()),
        })?;
    if let Some(text) = input {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin was piped");
        pipe.write_all(text.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    Ok((!output.status.success()).then(|| {
        format!(
            "{program} {}: {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    }))
}

/// The node's nft ruleset back to the lab's tracking table alone; its
/// legacy iptables tables emptied (a table once used stays registered,
/// empty: [`super::fingerprint`] reads it as absent); its ipsets gone.
fn reset_ruleset(ns: &Netns) -> Result<Vec<String>, LabError> {
    let mut problems = Vec::new();
    let script = format!("flush ruleset\n{}", super::tracking::script());
    problems.extend(run_with_input(ns, "nft", &["-f", "-"], Some(&script))?);
    let tables = ns.run(|| {
        ["ip_tables_names", "ip6_tables_names"].map(|file| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).unwrap_or_default()
        })
    })?;
    for (names, restore) in tables
        .iter()
        .zip(["iptables-legacy-restore", "ip6tables-legacy-restore"])
    {
        let script = empty_tables(names);
        if !script.is_empty() {
            problems.extend(run_with_input(ns, restore, &[], Some(&script))?);
        }
    }
    // After the tables: a set that a rule still names cannot be destroyed.
    problems.extend(quiet(ns, "ipset", &["destroy"])?);
    Ok(problems)
}

/// An `iptables-restore` input that empties each table named in `names`
/// (one a line, as /proc/net/ip_tables_names lists them): its rules and
/// chains go, its built-in chains' policies are ACCEPT again.
fn empty_tables(names: &str) -> String {
    let mut script = String::new();
    for name in names.split_whitespace() {
        if let Some((table, chains)) = LEGACY_TABLES.iter().find(|(t, _)| *t == name) {
            script.push_str(&format!("*{table}\n"));
            for chain in *chains {
                script.push_str(&format!(":{chain} ACCEPT [0:0]\n"));
            }
            script.push_str("COMMIT\n");
        }
    }
    script
}

/// Delete the routes `built` does not have; a problem if one it has is
/// missing or an extra one would not go.
fn restore_routes(ns: &Netns, built: &[String]) -> Result<Vec<String>, LabError> {
    for _attempt in 0..3 {
        let now = routes_of(ns)?;
        let missing: Vec<&String> = built.iter().filter(|r| !now.contains(r)).collect();
        if !missing.is_empty() {
            return Ok(vec![format!(
                "routes of the built lab are gone (a new lab is needed): {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )]);
        }
        // The kernel's own routes come and go with addresses and links,
        // which a reset does not touch: never deleted here.
        let extra: Vec<&String> = now
            .iter()
            .filter(|r| !built.contains(r) && !r.contains(" proto kernel"))
            .collect();
        if extra.is_empty() {
            return Ok(Vec::new());
        }
        for family in ["-4", "-6"] {
            let batch: String = extra
                .iter()
                .filter_map(|r| r.strip_prefix(family))
                .map(|r| route_deletion(r) + "\n")
                .collect();
            if !batch.is_empty() {
                // `-force`: go on past a route an earlier deletion already took.
                run_with_input(ns, "ip", &[family, "-force", "-batch", "-"], Some(&batch))?;
            }
        }
    }
    let left: Vec<String> = routes_of(ns)?
        .into_iter()
        .filter(|r| !built.contains(r) && !r.contains(" proto kernel"))
        .collect();
    Ok(if left.is_empty() {
        Vec::new()
    } else {
        vec![format!("routes would not go: {}", left.join(", "))]
    })
}

/// The `ip -batch` line that deletes the route `ip -o route` printed as
/// `line`: its type, destination, table, protocol, metric and first
/// device, the rest left to the kernel's match.
fn route_deletion(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    const TYPES: [&str; 9] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
    ];
    let mut out = vec!["route", "del"];
    let mut rest = &words[..];
    if let Some(kind) = rest.first().filter(|w| TYPES.contains(w)) {
        out.push(kind);
        rest = &rest[1..];
    }
    if let Some(destination) = rest.first() {
        out.push(destination);
    }
    for key in ["table", "proto", "metric", "dev"] {
        if let Some(i) = rest.iter().position(|w| *w == key) {
            if let Some(value) = rest.get(i + 1) {
                out.extend([key, value]);
            }
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_deleted_by_its_type_destination_table_protocol_metric_and_device() {
        assert_eq!(
            route_deletion(" 198.19.0.5 via 198.18.0.2 dev uplink proto static metric 20"),
            "route del 198.19.0.5 proto static metric 20 dev uplink"
        );
        assert_eq!(
            route_deletion(
                " local 2001:db8::1 dev uplink table local proto kernel metric 0 pref medium"
            ),
            "route del local 2001:db8::1 table local proto kernel metric 0 dev uplink"
        );
    }

    #[test]
    fn used_legacy_tables_are_emptied_with_their_builtin_chains_accepting() {
        assert_eq!(
            empty_tables("nat\nfilter\n"),
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n\
             *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        );
        assert_eq!(empty_tables(""), "");
    }
}
