//! Kernel features the harness uses that a kernel may refuse inside a user
//! namespace, tried once at start so that a refusal is one clear line before
//! any lab is built, not an `Operation not permitted` deep inside a case.
//!
//! Each feature is tried in a network namespace of its own (made for the
//! probe and gone with it), with the program the harness itself uses for it.
//! As real root nothing is tried: the kernel grants everything there.
//!
//! Known refusals (README, "Without root"): Linux 6.18 refuses nf_tables
//! payload writes (`ip daddr set ...`, a stateless rewrite) in a user
//! namespace while it accepts conntrack NAT (`dnat to`, `snat to`); the
//! harness therefore rewrites addresses only by conntrack NAT, as Felix does.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::programs::require_program;

/// A kernel facility the harness relies on, as one probe tries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelFeature {
    /// nf_tables filter rules matching conntrack state: the lab's own table
    /// on every node (`lab/tracking.rs`), whatever the dataplane.
    NfTablesConntrack,
    /// nf_tables NAT: `dnat to`/`snat to ... fully-random` in nat base chains,
    /// and a DNAT through a map lookup (the `nftables` and `nft-maps` backends).
    NfTablesNat,
    /// Legacy xtables NAT: DNAT and SNAT `--random-fully` in the nat table
    /// (the `iptables` backend, through iptables-legacy-restore).
    XtablesNat,
}

impl KernelFeature {
    pub const ALL: [KernelFeature; 3] = [
        KernelFeature::NfTablesConntrack,
        KernelFeature::NfTablesNat,
        KernelFeature::XtablesNat,
    ];

    /// How the feature is named to a person.
    pub fn describe(self) -> &'static str {
        match self {
            KernelFeature::NfTablesConntrack => "nf_tables rules matching conntrack state",
            KernelFeature::NfTablesNat => "nf_tables NAT rules (dnat, snat, a dnat map)",
            KernelFeature::XtablesNat => "legacy iptables NAT rules (DNAT, SNAT --random-fully)",
        }
    }

    /// What in the harness needs it.
    pub fn used_by(self) -> &'static str {
        match self {
            KernelFeature::NfTablesConntrack => "every lab (its own table on each node)",
            KernelFeature::NfTablesNat => "the nftables and nft-maps backends",
            KernelFeature::XtablesNat => "the iptables backend",
        }
    }

    /// What else a user may do, after "run as root".
    fn alternative(self) -> &'static str {
        match self {
            KernelFeature::NfTablesConntrack => "",
            KernelFeature::NfTablesNat => ", or choose --backend iptables",
            KernelFeature::XtablesNat => ", or choose --backend nftables or nft-maps",
        }
    }

    /// The program that loads the probe's rules, and the rules.
    fn probe(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            KernelFeature::NfTablesConntrack => ("nft", &["-f", "-"], NFT_CT_PROBE),
            KernelFeature::NfTablesNat => ("nft", &["-f", "-"], NFT_NAT_PROBE),
            KernelFeature::XtablesNat => ("iptables-legacy-restore", &[], XTABLES_PROBE),
        }
    }
}

/// Addresses from the documentation range; the rules live only in the
/// probe's own network namespace.
const NFT_CT_PROBE: &str = "table inet fiph_probe {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state invalid counter
  }
}
";

const NFT_NAT_PROBE: &str = "table ip fiph_probe {
  map fips { type ipv4_addr : ipv4_addr; elements = { 192.0.2.1 : 192.0.2.2 }; }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 192.0.2.1 counter dnat to 192.0.2.2
    dnat to ip daddr map @fips
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 192.0.2.2 ip daddr 192.0.2.2 counter snat to 192.0.2.1 fully-random
  }
}
";

const XTABLES_PROBE: &str = "*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 192.0.2.1/32 -j DNAT --to-destination 192.0.2.2
-A POSTROUTING -s 192.0.2.2/32 -d 192.0.2.2/32 -j SNAT --to-source 192.0.2.1 --random-fully
COMMIT
";

/// The kernel refused a feature the harness needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this kernel refuses {} inside a user namespace ({program}: {said}), and {} need them: \
     run fip-harness as root (sudo){}",
    feature.describe(),
    feature.used_by(),
    feature.alternative()
)]
pub struct Refusal {
    pub feature: KernelFeature,
    pub program: &'static str,
    /// What the program said, on one line.
    pub said: String,
}

/// Whether this process runs in a user namespace other than the host's
/// (its uid map is not the identity over every uid).
pub fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

/// Try each of `features` in a throwaway network namespace; the first one
/// the kernel refuses. Nothing is tried outside a user namespace.
pub fn first_refusal(features: &[KernelFeature]) -> Option<Refusal> {
    if !in_user_namespace() {
        return None;
    }
    features
        .iter()
        .find_map(|feature| try_feature(*feature).err())
}

fn try_feature(feature: KernelFeature) -> Result<(), Refusal> {
    let (program, args, rules) = feature.probe();
    let refusal = |said: String| Refusal {
        feature,
        program,
        said: one_line(&said),
    };
    // A missing program is not a kernel refusal: the case that needs it says
    // which package to install.
    let Ok(path) = require_program(program) else {
        return Ok(());
    };
    let mut command = Command::new(path);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: unshare is a plain system call, safe between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(Into::into)
        });
    }
    let mut child = command.spawn().map_err(|e| refusal(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error shows in the exit status and stderr below.
        let _ = stdin.write_all(rules.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| refusal(e.to_string()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(refusal(
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// The lines of a program's complaint that say what went wrong, joined: nft
/// quotes the rule and marks the column on lines of their own.
fn one_line(said: &str) -> String {
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .filter(|l| l.contains("rror") || l.contains("not permitted") || l.contains("denied"))
        .collect();
    let chosen = if lines.is_empty() {
        said.trim().lines().next().unwrap_or("failed").to_string()
    } else {
        lines.join("; ")
    };
    chosen.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_line_naming_the_feature_what_needs_it_and_what_to_do() {
        let said =
            "/dev/stdin:4:5-30: Error: Could not process rule: Operation not permitted\n    \
                    ip daddr 192.0.2.1 counter dnat to 192.0.2.2\n    ^^^^^^^^^^^^^^^^^^^^\n";
        let refusal = Refusal {
            feature: KernelFeature::NfTablesNat,
            program: "nft",
            said: one_line(said),
        };
        let text = refusal.to_string();
        assert!(!text.contains('\n'), "{text}");
        insta::assert_snapshot!(text);
    }
}
