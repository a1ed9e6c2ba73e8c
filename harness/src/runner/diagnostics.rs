//! The diagnostics bundle of a failing step: for every namespace of the lab, its
//! addresses, routes, neighbours, NAT rules and conntrack entries, as the
//! programs people already know print them, so the bundle reads like a session
//! at the node's shell; with it, each pod's capture and the control plane's
//! state.

use std::path::{Path, PathBuf};

use super::case::ScenarioRun;
use crate::lab::netns::Netns;
use crate::lab::spec::FABRIC;

/// (file name, program, arguments) run inside every namespace of the lab.
const DUMPS: &[(&str, &str, &[&str])] = &[
    ("addresses.txt", "ip", &["-details", "address", "show"]),
    (
        "routes-v4.txt",
        "ip",
        &["-4", "route", "show", "table", "all"],
    ),
    (
        "routes-v6.txt",
        "ip",
        &["-6", "route", "show", "table", "all"],
    ),
    ("neighbours.txt", "ip", &["neighbour", "show"]),
    ("nftables.txt", "nft", &["list", "ruleset"]),
    // The legacy tools, which the iptables backend writes with (Debian's plain
    // `iptables-save` is the nft variant and would show none of its rules).
    ("iptables-nat.txt", "iptables-legacy-save", &["-t", "nat"]),
    ("ip6tables-nat.txt", "ip6tables-legacy-save", &["-t", "nat"]),
    ("conntrack.txt", "cat", &["/proc/net/nf_conntrack"]),
];

/// Write the bundle for `members` (name, namespace) under `dir`, one folder per
/// member. A dump that fails leaves its error text in place of the output, so
/// one missing program does not hide the rest.
pub fn write_bundle(dir: &Path, members: &[(String, Netns)]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for (name, netns) in members {
        let member_dir = dir.join(name);
        std::fs::create_dir_all(&member_dir)?;
        for (file, program, args) in DUMPS {
            let text = match netns.command(program).args(*args).output() {
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
            std::fs::write(member_dir.join(file), text)?;
        }
    }
    Ok(dir.to_path_buf())
}

impl ScenarioRun<'_> {
    /// Write the step's bundle and pcaps; None when there is no report dir.
    pub(super) fn write_diagnostics(&self, index: usize) -> Option<PathBuf> {
        let root = self.options.report_dir.as_ref()?;
        let dir = root
            .join(&self.scenario.name)
            .join(self.dataplane.dir_name())
            .join(format!("step-{}", index + 1));
        let cluster = &self.scenario.cluster;
        let members: Vec<(String, Netns)> = std::iter::once(FABRIC.to_string())
            .chain(cluster.nodes.iter().cloned())
            .chain(cluster.externals.iter().cloned())
            .chain(self.pods.keys().cloned())
            .filter_map(|name| {
                let netns = self.lab.netns(&name).ok()?.clone();
                Some((name, netns))
            })
            .collect();
        let mut bundle = write_bundle(&dir, &members);
        if bundle.is_ok() {
            for pod in self.pods.keys() {
                // The whole run so far: a stream's packets belong to the step
                // that started it, and what led up to a failure matters too.
                let path = dir.join(pod).join("capture.pcap");
                if let Err(error) = self.engine.write_pcap(pod, None, &path) {
                    tracing::warn!(%error, pod, "could not write pcap");
                }
            }
            if let Ok(state) = serde_json::to_string_pretty(self.control.current()) {
                let _ = std::fs::write(dir.join("control-plane.json"), state);
            }
            self.write_bird_diagnostics(&dir);
            self.write_dataplane_diagnostics(&dir);
        }
        match bundle.as_mut() {
            Ok(path) => Some(path.clone()),
            Err(error) => {
                tracing::warn!(%error, "could not write the diagnostics bundle");
                None
            }
        }
    }
}
