//! The diagnostics bundle of a failing step: for every namespace of the lab,
//! its addresses, routes and neighbours as `ip` prints them, the NAT rules as
//! the case's own dataplane holds them (read through the backend, so the dump
//! is of what that backend wrote, whichever tools it writes with), its
//! conntrack table through the crate's ctnetlink listing, and a pcap of every
//! member that sends or receives (pods, nodes' and external hosts' uplinks)
//! with the kernel's arrival times; with it, the control plane's state, BIRD's,
//! and a README.txt saying what each file is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::case::ScenarioRun;
use crate::dataplane::conntrack::Conntrack;
use crate::dataplane::Dataplane;
use crate::lab::netns::Netns;
use crate::lab::spec::FABRIC;
use crate::lab::MemberKind;

/// (file name, program, arguments, what it is) run inside every namespace.
const PROGRAM_DUMPS: &[(&str, &str, &[&str], &str)] = &[
    (
        "addresses.txt",
        "ip",
        &["-details", "address", "show"],
        "links and addresses (`ip -details address show`)",
    ),
    (
        "routes-v4.txt",
        "ip",
        &["-4", "route", "show", "table", "all"],
        "IPv4 routes of every table (`ip -4 route show table all`)",
    ),
    (
        "routes-v6.txt",
        "ip",
        &["-6", "route", "show", "table", "all"],
        "IPv6 routes of every table (`ip -6 route show table all`)",
    ),
    (
        "neighbours.txt",
        "ip",
        &["neighbour", "show"],
        "ARP and NDP neighbours (`ip neighbour show`)",
    ),
    (
        "nftables.txt",
        "nft",
        &["list", "ruleset"],
        "everything nftables holds in the namespace (`nft list ruleset`), the \
         backend's tables and any other",
    ),
];

/// Files the harness writes itself, for the README.
const OWN_FILES: &[(&str, &str)] = &[
    (
        "<member>/nat-rules.txt",
        "nodes: the floating-IP NAT rules as the case's dataplane backend holds \
         them, dumped through the backend itself (Dataplane::dump: `nft list \
         table` for nftables and nft-maps, the legacy `iptables-save -t nat` \
         the iptables backend writes with)",
    ),
    (
        "<member>/nat-mappings.json",
        "nodes: the DNAT and SNAT mappings read back from those rules \
         (Dataplane::read)",
    ),
    (
        "<member>/conntrack.txt",
        "the namespace's conntrack table, one entry a line, listed over \
         ctnetlink by the harness (dataplane/conntrack.rs), not by the \
         `conntrack` program",
    ),
    (
        "<member>/capture.pcap",
        "pods (eth0), nodes and external hosts (their uplink eth0): every \
         frame sent or received since the case started, with the kernel's \
         arrival time (SO_TIMESTAMPNS) in nanoseconds; open with Wireshark or \
         `tshark -r`",
    ),
    (
        "<member>/driver-*",
        "nodes under an external dataplane (`exec:`): what its driver gives \
         for the bundle (its stderr, its own dump)",
    ),
    (
        "control-plane.json",
        "the control plane's desired state when the step failed: each node's \
         NAT mappings, routes and which pod holds each floating IP",
    ),
    (
        "bird/",
        "under BIRD routing: each daemon's sessions and routes (state.json), \
         configuration (*.conf) and log",
    ),
];

/// Run each program dump inside `netns` into `dir`. A dump that fails leaves
/// its error text in place of the output, so one missing program does not
/// hide the rest.
fn write_program_dumps(dir: &Path, netns: &Netns) -> std::io::Result<()> {
    for (file, program, args, _) in PROGRAM_DUMPS {
        let text = match netns.output(std::process::Command::new(program).args(*args)) {
            Ok(output) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                if !output.status.success() {
                    text.push_str(&format!(
                        "\n# {program} exited with {}: {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
                text
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("# {}\n", crate::programs::missing(program))
            }
            Err(e) => format!("# could not run {program}: {e}\n"),
        };
        std::fs::write(dir.join(file), text)?;
    }
    Ok(())
}

/// The namespace's conntrack entries, one summary a line (or why not).
fn conntrack_text(netns: &Netns) -> String {
    match Conntrack::open(netns).and_then(|mut conntrack| conntrack.list()) {
        Ok(entries) if entries.is_empty() => "# no entries\n".to_string(),
        Ok(entries) => entries
            .iter()
            .map(|e| format!("{}\n", e.summary()))
            .collect(),
        Err(error) => format!("# could not list conntrack: {error}\n"),
    }
}

/// A node's NAT rules and mappings through the case's backend.
fn write_nat(
    dir: &Path,
    netns: &Netns,
    dataplane: &dyn Dataplane,
    name: &str,
) -> std::io::Result<()> {
    let rules = dataplane
        .dump(netns)
        .unwrap_or_else(|error| format!("# the {name} dataplane could not dump: {error}\n"));
    std::fs::write(dir.join("nat-rules.txt"), rules)?;
    let mappings = match dataplane.read(netns) {
        Ok(state) => serde_json::to_string_pretty(&state).unwrap_or_default(),
        Err(error) => serde_json::json!({ "error": error.to_string() }).to_string(),
    };
    std::fs::write(dir.join("nat-mappings.json"), mappings)
}

/// The bundle's README: what it is for, and every file in it.
fn readme(title: &str, members: &[(String, MemberKind)]) -> String {
    let mut text = format!(
        "Diagnostics bundle of {title}.\n\
         Written when the step failed, before the lab was torn down (or kept).\n\n\
         One folder per lab member:\n"
    );
    for (name, kind) in members {
        let _ = writeln!(text, "  {name}/  ({})", kind_text(*kind));
    }
    text.push_str("\nIn each member's folder, as its shell would show them:\n");
    for (file, _, _, what) in PROGRAM_DUMPS {
        let _ = writeln!(text, "  <member>/{file}: {what}");
    }
    text.push_str("\nWritten by the harness:\n");
    for (file, what) in OWN_FILES {
        let _ = writeln!(text, "  {file}: {what}");
    }
    text
}

fn kind_text(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::Fabric => "the data-centre fabric, a top-of-rack router",
        MemberKind::Node => "a node: Felix's NAT and routes, BIRD",
        MemberKind::External => "an external host outside the cluster",
        MemberKind::Pod => "a pod",
    }
}

impl ScenarioRun<'_> {
    /// Write the step's bundle and pcaps; None when there is no report dir.
    pub(super) fn write_diagnostics(&self, index: usize) -> Option<PathBuf> {
        let root = self.options.report_dir.as_ref()?;
        let dir = root
            .join(&self.scenario.name)
            .join(self.dataplane.dir_name())
            .join(format!("step-{}", index + 1));
        match self.write_bundle(&dir, index) {
            Ok(()) => Some(dir),
            Err(error) => {
                tracing::warn!(%error, "could not write the diagnostics bundle");
                None
            }
        }
    }

    fn write_bundle(&self, dir: &Path, index: usize) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let cluster = &self.scenario.cluster;
        let members: Vec<(String, MemberKind)> = std::iter::once(FABRIC.to_string())
            .chain(cluster.nodes.iter().cloned())
            .chain(cluster.externals.iter().cloned())
            .chain(self.model.pods().keys().cloned())
            .filter_map(|name| Some((name.clone(), self.lab.member_kind(&name)?)))
            .collect();
        for (name, kind) in &members {
            let Ok(netns) = self.lab.netns(name) else {
                continue;
            };
            let member_dir = dir.join(name);
            std::fs::create_dir_all(&member_dir)?;
            write_program_dumps(&member_dir, netns)?;
            std::fs::write(member_dir.join("conntrack.txt"), conntrack_text(netns))?;
            if *kind == MemberKind::Node {
                write_nat(
                    &member_dir,
                    netns,
                    self.control.dataplane().as_ref(),
                    &self.dataplane.to_string(),
                )?;
            }
            // The whole run so far: a stream's packets belong to the step
            // that started it, and what led up to a failure matters too.
            if *kind != MemberKind::Fabric {
                let path = member_dir.join("capture.pcap");
                if let Err(error) = self.engine.write_pcap(name, None, &path) {
                    tracing::warn!(%error, member = name, "could not write pcap");
                }
            }
        }
        if let Ok(state) = serde_json::to_string_pretty(self.control.current()) {
            std::fs::write(dir.join("control-plane.json"), state)?;
        }
        self.write_bird_diagnostics(dir);
        self.write_dataplane_diagnostics(dir);
        let title = format!(
            "step {} of scenario {} on {} ({} lab `{}`)",
            index + 1,
            self.scenario.name,
            self.dataplane,
            self.options.routing,
            self.lab.name()
        );
        std::fs::write(dir.join("README.txt"), readme(&title, &members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_names_every_member_and_file() {
        let text = readme(
            "step 2 of scenario x on nftables (bird lab `l`)",
            &[
                ("fabric".into(), MemberKind::Fabric),
                ("node-a".into(), MemberKind::Node),
                ("client".into(), MemberKind::External),
                ("web".into(), MemberKind::Pod),
            ],
        );
        insta::assert_snapshot!(text);
    }
}
