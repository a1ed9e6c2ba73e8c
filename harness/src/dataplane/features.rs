//! Felix's dataplane feature detection, reduced to the one feature a floating
//! IP's rules show: whether the SNAT rule gets `--random-fully` (iptables) or
//! `fully-random` (nftables). It changes the rule text, hence its `cali:` hash.
//!
//! felix/environment/feature_detect_linux.go `refreshFeaturesLockHeld`:
//! `SNATFullyRandom = iptV >= 1.6.0 && kerV >= 3.14.0`, where the iptables
//! version comes from `getIptablesVersion` (runs `iptables --version`, regex
//! `v(\d+\.\d+\.\d+)`, assumes 1.4.7 when either fails) and the kernel's from
//! `getKernelVersion` (reads /proc/version through `GetKernelVersionReader`,
//! parsed by versionparse.go `GetVersionFromString`, regex
//! `Linux version (\d+\.\d+\.\d+(?:-\d+)?)`, assumes 3.10.0 when it fails).
//! Felix runs this detection in nftables mode too, so both renderings share it.
//!
//! The harness asks `iptables-legacy`, the iptables it programs with, and reads
//! the same /proc/version (the release `uname -r` prints) as Felix.

use std::process::Command;
use std::sync::OnceLock;

use regex::Regex;

/// The features of Felix's `environment.Features` that floating-IP rules use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `SNATFullyRandom`: append `--random-fully` / `fully-random` to SNAT.
    pub snat_fully_random: bool,
    /// `MASQFullyRandom`: the same for the NAT-outgoing MASQUERADE (iptables
    /// 1.6.2 and kernel 3.14, felix/environment/feature_detect_linux.go).
    pub masq_fully_random: bool,
}

/// A dotted version compared as Felix compares them (versionparse.go
/// `Version.Compare`): number by number, and a longer version that agrees on
/// every shared number is the greater. `Vec`'s ordering is exactly that.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(Vec<u64>);

impl Version {
    /// versionparse.go `convertVersionToIntSlice`: split on `.` and `-` into at
    /// most four parts, each a number.
    pub fn parse(text: &str) -> Option<Version> {
        text.splitn(4, ['.', '-'])
            .map(|part| part.parse().ok())
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }

    fn of(numbers: &[u64]) -> Version {
        Version(numbers.to_vec())
    }
}

/// The version in `iptables --version` output (getIptablesVersion).
pub fn iptables_version(output: &str) -> Option<Version> {
    let pattern = Regex::new(r"v(\d+\.\d+\.\d+)").expect("valid regex");
    Version::parse(&pattern.captures(output)?[1])
}

/// The kernel version in /proc/version text (GetVersionFromString).
pub fn kernel_version(proc_version: &str) -> Option<Version> {
    let pattern = Regex::new(r"Linux version (\d+\.\d+\.\d+(?:-\d+)?)").expect("valid regex");
    Version::parse(&pattern.captures(proc_version)?[1])
}

impl Features {
    /// Felix's decision from the two versions, with its fallbacks for a
    /// version it could not get (1.4.7 and 3.10.0: no optional features).
    pub fn from_versions(iptables: Option<Version>, kernel: Option<Version>) -> Features {
        let iptables = iptables.unwrap_or_else(|| Version::of(&[1, 4, 7]));
        let kernel = kernel.unwrap_or_else(|| Version::of(&[3, 10, 0]));
        Features {
            snat_fully_random: iptables >= Version::of(&[1, 6, 0])
                && kernel >= Version::of(&[3, 14, 0]),
            masq_fully_random: iptables >= Version::of(&[1, 6, 2])
                && kernel >= Version::of(&[3, 14, 0]),
        }
    }

    /// The features of this host, detected once per process as Felix detects
    /// them at start-up (the host's binaries and kernel serve every node).
    pub fn detected() -> Features {
        static DETECTED: OnceLock<Features> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let iptables = match Command::new("iptables-legacy").arg("--version").output() {
                Ok(out) if out.status.success() => {
                    iptables_version(&String::from_utf8_lossy(&out.stdout))
                }
                _ => None,
            };
            let kernel = std::fs::read_to_string("/proc/version")
                .ok()
                .and_then(|text| kernel_version(&text));
            if iptables.is_none() || kernel.is_none() {
                tracing::warn!(
                    ?iptables,
                    ?kernel,
                    "cannot read the iptables or kernel version; assuming old ones, as Felix does"
                );
            }
            let features = Features::from_versions(iptables, kernel);
            tracing::debug!(?features, "Felix's dataplane features for this host");
            features
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn reads_the_versions_felix_reads() {
        assert_eq!(
            iptables_version("iptables v1.8.9 (legacy)\n"),
            Version::parse("1.8.9")
        );
        assert_eq!(iptables_version("iptables, unknown"), None);
        // The release suffix after the third number is not numeric: Felix's
        // regex stops before it.
        assert_eq!(
            kernel_version("Linux version 6.18.44-fc-v669 (builder@sandboxing) (gcc 15.3.0)"),
            Version::parse("6.18.44")
        );
        assert_eq!(
            kernel_version("Linux version 4.18.0-330.el8.x86_64 (mockbuild)"),
            Version::parse("4.18.0-330")
        );
    }

    #[test]
    fn versions_compare_as_felix_compares_them() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.6.0") > v("1.4.21"));
        assert!(v("1.10.0") > v("1.6.2"));
        assert!(v("4.18.0-330") > v("4.18.0"));
        assert!(v("3.13.9") < v("3.14.0"));
        assert_eq!(Version::parse("1.x.0"), None);
    }

    #[rstest]
    #[case::both_new(Some("1.8.9"), Some("6.18.44"), true)]
    #[case::exactly_the_minimums(Some("1.6.0"), Some("3.14.0"), true)]
    #[case::old_iptables(Some("1.4.21"), Some("6.18.44"), false)]
    #[case::old_kernel(Some("1.8.9"), Some("3.10.0"), false)]
    #[case::no_iptables_version(None, Some("6.18.44"), false)]
    #[case::no_kernel_version(Some("1.8.9"), None, false)]
    fn snat_fully_random_needs_both(
        #[case] iptables: Option<&str>,
        #[case] kernel: Option<&str>,
        #[case] expected: bool,
    ) {
        let features = Features::from_versions(
            iptables.and_then(Version::parse),
            kernel.and_then(Version::parse),
        );
        assert_eq!(features.snat_fully_random, expected);
    }
}
