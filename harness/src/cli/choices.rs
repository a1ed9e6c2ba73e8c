//! The command line's spelling of library choices. The library's types stay
//! free of clap; these mirror them for argument parsing and convert into them.

use fip_harness::control::ConntrackProfile;
use fip_harness::dataplane::BackendKind;

/// A dataplane backend (`dataplane::BackendKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Felix's nftables mode, rule for rule (what Felix programs).
    Nftables,
    /// Felix's iptables mode, applied with iptables-legacy-restore.
    Iptables,
    /// The harness's O(1) alternative: nftables maps (not what Felix programs).
    NftMaps,
}

impl From<Backend> for BackendKind {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Nftables => BackendKind::Nftables,
            Backend::Iptables => BackendKind::Iptables,
            Backend::NftMaps => BackendKind::NftMaps,
        }
    }
}

/// A conntrack profile (`control::ConntrackProfile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Calico: nothing keyed on the floating IP as destination is flushed; a
    /// deleted pod's entries go, and those whose source is a floating IP whose
    /// route moved on its node.
    Calico,
    /// Calico's, plus: entries whose original destination is a floating IP
    /// that moved or was removed are deleted on every node.
    Strict,
}

impl From<Profile> for ConntrackProfile {
    fn from(profile: Profile) -> Self {
        match profile {
            Profile::Calico => ConntrackProfile::Calico,
            Profile::Strict => ConntrackProfile::Strict,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    /// Each choice maps to the library value of the same name, and every
    /// library value can be chosen.
    #[test]
    fn choices_map_to_the_library_value_they_name() {
        for backend in Backend::value_variants() {
            let name = backend.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(BackendKind::from(*backend).to_string(), name);
        }
        let chosen: Vec<BackendKind> = Backend::value_variants()
            .iter()
            .map(|b| (*b).into())
            .collect();
        assert_eq!(chosen, BackendKind::ALL);
        for profile in Profile::value_variants() {
            let name = profile.to_possible_value().unwrap().get_name().to_string();
            let value = serde_json::to_value(ConntrackProfile::from(*profile)).unwrap();
            assert_eq!(value, serde_json::Value::String(name));
        }
        assert_eq!(Profile::value_variants().len(), 2);
    }
}

/// `--calico RELEASE`: the Calico release the model stands for.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct CalicoArg {
    /// The Calico release the model stands for: v3.28 .. v3.32 (a minor
    /// means its newest patch) or a patch such as v3.31.5; a scenario's own
    /// `calico:` key wins for it. Default: the newest, v3.32.1
    /// (docs/fidelity.md "Calico releases").
    #[arg(long, value_name = "RELEASE")]
    calico: Option<fip_harness::calico::Release>,
}

impl CalicoArg {
    /// Make the release the process's default for scenarios without
    /// `calico:`, and return it.
    pub fn apply(&self) -> fip_harness::calico::Release {
        let release = self.calico.unwrap_or_default();
        fip_harness::scenario::use_calico_release(release);
        release
    }

    /// [`Self::apply`], then [`Self::check_backend`].
    pub fn apply_checking(&self, backend: Option<BackendKind>) -> anyhow::Result<()> {
        self.apply();
        self.check_backend(backend)
    }

    /// Refuse a backend the release lacks (Felix's nftables mode came in
    /// v3.29: felix/nftables/table.go, commit a91c52b83a).
    pub fn check_backend(&self, backend: Option<BackendKind>) -> anyhow::Result<()> {
        use fip_harness::calico::Behaviour;
        let release = self.calico.unwrap_or_default();
        if backend == Some(BackendKind::Nftables) && !release.has(Behaviour::NftablesMode) {
            anyhow::bail!(
                "--calico {release}: no nftables backend: {}",
                Behaviour::NftablesMode.missing_in(release)
            );
        }
        Ok(())
    }
}
