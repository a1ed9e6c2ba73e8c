//! The diagnostics bundle of a failing step: for every namespace of the lab, its
//! addresses, routes, neighbours, NAT rules and conntrack entries, as the
//! programs people already know print them, so the bundle reads like a session
//! at the node's shell.

use std::path::{Path, PathBuf};

use crate::lab::netns::Netns;

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
    ("iptables-nat.txt", "iptables-save", &["-t", "nat"]),
    ("ip6tables-nat.txt", "ip6tables-save", &["-t", "nat"]),
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
