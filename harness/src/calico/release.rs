//! Which Calico release the model stands for, and the behaviours that changed
//! over the last five minor releases (v3.28 .. v3.32), as data.
//!
//! Each [`Versioned`] entry was found in Calico's history (`git log -S`,
//! `git tag --contains`) and names the commit that changed the behaviour and
//! the first patch release of each release branch that has it (fixes are
//! backported, so a behaviour can arrive in v3.31.6 and v3.32.1 at once).
//! docs/fidelity.md "Calico releases" renders the same table; a test keeps
//! the two equal.
//!
//! The model, the scenario language (`calico:`) and the commands
//! (`--calico`) consult a [`Release`] only where a behaviour listed here
//! differs; everything else is what every one of these releases does.

use std::fmt;
use std::str::FromStr;

/// A Calico release, `v3.<minor>.<patch>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub minor: u8,
    pub patch: u8,
}

/// The release branches the harness knows, each with its newest patch in the
/// Calico history the harness was checked against (tags up to v3.32.1).
pub const BRANCHES: [Release; 5] = [
    Release::new(28, 5),
    Release::new(29, 7),
    Release::new(30, 7),
    Release::new(31, 7),
    Release::new(32, 1),
];

/// The default: the newest release.
pub const NEWEST: Release = BRANCHES[BRANCHES.len() - 1];

impl Default for Release {
    fn default() -> Self {
        NEWEST
    }
}

impl Release {
    pub const fn new(minor: u8, patch: u8) -> Self {
        Self { minor, patch }
    }

    /// Whether this release does what `behaviour` describes.
    pub fn has(self, behaviour: Behaviour) -> bool {
        behaviour.entry().is_in(self)
    }

    /// The branch's newest known patch, if the branch is known.
    fn branch_newest(minor: u8) -> Option<Release> {
        BRANCHES.iter().copied().find(|b| b.minor == minor)
    }

    /// The known releases, for messages: `v3.28 (v3.28.0..v3.28.5), ...`.
    pub fn known_text() -> String {
        BRANCHES
            .iter()
            .map(|b| format!("v3.{} (v3.{}.0..{b})", b.minor, b.minor))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v3.{}.{}", self.minor, self.patch)
    }
}

/// In reports and snapshots a release reads as the language writes it.
impl serde::Serialize for Release {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A release name that is not one of [`BRANCHES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown Calico release '{value}': the harness knows {}",
    Release::known_text()
)]
pub struct UnknownRelease {
    pub value: String,
}

impl FromStr for Release {
    type Err = UnknownRelease;

    /// `v3.31` (the branch's newest patch), `v3.31.5`, with or without `v`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownRelease {
            value: text.to_string(),
        };
        let bare = text.strip_prefix('v').unwrap_or(text);
        let mut parts = bare.split('.');
        let (Some("3"), Some(minor)) = (parts.next(), parts.next()) else {
            return Err(unknown());
        };
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u8>().ok())
                .flatten()
        };
        let newest = number(minor)
            .and_then(Release::branch_newest)
            .ok_or_else(unknown)?;
        match (parts.next(), parts.next()) {
            (None, _) => Ok(newest),
            (Some(patch), None) => match number(patch) {
                Some(patch) if patch <= newest.patch => Ok(Release::new(newest.minor, patch)),
                _ => Err(unknown()),
            },
            _ => Err(unknown()),
        }
    }
}

/// The behaviours that differ between the known releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Felix has an nftables mode (`nftablesMode: Enabled`).
    NftablesMode,
    /// Pools whose only allowed use is `LoadBalancer` can exist.
    LoadBalancerPools,
    /// NAT-outgoing's set of pools leaves out LoadBalancer-only pools and is
    /// called `network-ip-pools` (before: `all-ipam-pools`, every pool).
    NetworkIpPoolsSet,
}

/// One row of the table: a behaviour, where it lives in Calico, the commit
/// that brought it, and the first release of each branch that has it.
#[derive(Clone, Copy, Debug)]
pub struct Versioned {
    pub behaviour: Behaviour,
    /// What changed, as docs/fidelity.md says it.
    pub what: &'static str,
    /// The Calico file and function.
    pub source: &'static str,
    /// The commit (on master, or the release branch's backport first).
    pub commits: &'static [&'static str],
    /// The first release of each branch that has it; every branch newer than
    /// the newest listed has it too.
    pub since: &'static [Release],
}

impl Versioned {
    fn is_in(&self, release: Release) -> bool {
        let newest_listed = self.since.iter().map(|r| r.minor).max().unwrap_or(u8::MAX);
        release.minor > newest_listed
            || self
                .since
                .iter()
                .any(|s| s.minor == release.minor && release.patch >= s.patch)
    }

    /// The releases as docs/fidelity.md writes them: `v3.31.6, v3.32.1`.
    pub fn since_text(&self) -> String {
        self.since
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every versioned behaviour, oldest first.
pub const VERSIONED: &[Versioned] = &[Versioned {
    behaviour: Behaviour::NftablesMode,
    what: "Felix's nftables mode (the `nftables` backend); before it Felix programs iptables only",
    source: "felix/nftables/table.go; felix/config/config_params.go `NFTablesMode`",
    commits: &["a91c52b83a"],
    since: &[Release::new(29, 0)],
}, Versioned {
    behaviour: Behaviour::LoadBalancerPools,
    what: "IP pools with `allowedUses: [LoadBalancer]`; before it a pool allows `Workload` and `Tunnel` only",
    source: "api/pkg/apis/projectcalico/v3/ippool.go `IPPoolAllowedUseLoadBalancer`; libcalico-go/lib/validator/v3/validator.go `validateIPPool`",
    commits: &["5037f6690e"],
    since: &[Release::new(30, 0)],
}, Versioned {
    behaviour: Behaviour::NetworkIpPoolsSet,
    what: "NAT-outgoing masquerades traffic to a LoadBalancer-only pool: Felix leaves such pools out of its set of pools, renamed `network-ip-pools` (before: `all-ipam-pools`, every pool)",
    source: "felix/dataplane/linux/masq_mgr.go `OnUpdate`, `isLoadBalancerOnly`; felix/rules/rule_defs.go `IPSetIDAllPools`",
    commits: &["ae98be29b5", "d8bc898304"],
    since: &[Release::new(31, 6), Release::new(32, 1)],
}];

impl Behaviour {
    pub fn entry(self) -> &'static Versioned {
        VERSIONED
            .iter()
            .find(|v| v.behaviour == self)
            .expect("every behaviour has a row in VERSIONED")
    }

    /// Why `release` refuses something that needs this behaviour.
    pub fn missing_in(self, release: Release) -> String {
        let entry = self.entry();
        format!(
            "Calico {release} lacks it: {} came in {} (commit {})",
            entry.what.split(';').next().unwrap_or(entry.what),
            entry.since_text(),
            entry.commits[0]
        )
    }
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod tests;
