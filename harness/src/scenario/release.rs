//! The `calico:` key: which Calico release a scenario's model stands for, and
//! what that release allows (docs/fidelity.md "Calico releases"). A scenario
//! without the key takes the process's release (`--calico`, default the
//! newest).

use std::sync::Mutex;

use super::load::Loader;
use super::located::Spanned;
use super::raw::RawScenario;
use crate::calico::{Behaviour, IpPool, Release};
use crate::vocab::BackendKind;

/// The release of scenarios that do not name one (the process's setting).
static DEFAULT_RELEASE: Mutex<Release> = Mutex::new(crate::calico::release::NEWEST);

/// Use `release` for every scenario this process loads that has no `calico:`
/// key (`--calico`).
pub fn use_calico_release(release: Release) {
    *DEFAULT_RELEASE.lock().unwrap_or_else(|e| e.into_inner()) = release;
}

/// The release of scenarios without a `calico:` key.
pub fn default_calico_release() -> Release {
    *DEFAULT_RELEASE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Loader<'_> {
    /// The scenario's release: its `calico:` key, else the process's.
    pub(super) fn release(&mut self, key: Option<&Spanned<String>>) -> Release {
        let Some(key) = key else {
            return default_calico_release();
        };
        match key.value.parse::<Release>() {
            Ok(release) => release,
            Err(error) => {
                self.error_at(key, error.to_string());
                default_calico_release()
            }
        }
    }

    /// Refuse a LoadBalancer-only pool under a release before such pools
    /// (v3.30.0, commit 5037f6690e; earlier the validator refuses the use:
    /// libcalico-go/lib/validator/v3/validator.go `validateIPPool`). The
    /// error is at `calico:`, else at the first pool entry.
    pub(super) fn check_pools(&mut self, raw: &RawScenario, pools: &[IpPool], release: Release) {
        if release.has(Behaviour::LoadBalancerPools) {
            return;
        }
        let Some(pool) = pools.iter().find(|p| p.load_balancer_only) else {
            return;
        };
        let why = format!(
            "pool `{}`: allowedUses [LoadBalancer]: {}",
            pool.name,
            Behaviour::LoadBalancerPools.missing_in(release)
        );
        match (&raw.calico, raw.cluster.pools.as_deref()) {
            (Some(key), _) => self.error_at(key, why),
            (None, Some([first, ..])) => self.error_at(first, why),
            (None, _) => {}
        }
    }

    /// The backends a scenario runs on under `release`: the ones it names
    /// (an error for one the release lacks), else every backend the release
    /// has. Felix's nftables mode came in v3.29 (felix/nftables/table.go,
    /// commit a91c52b83a); before it the `nftables` backend is not Calico's.
    pub(super) fn backends(
        &mut self,
        named: Option<&Spanned<Vec<BackendKind>>>,
        release: Release,
    ) -> Vec<BackendKind> {
        let has = |backend: &BackendKind| {
            *backend != BackendKind::Nftables || release.has(Behaviour::NftablesMode)
        };
        match named {
            None => BackendKind::ALL.iter().copied().filter(has).collect(),
            Some(list) => {
                if list.value.iter().any(|b| !has(b)) {
                    let why = Behaviour::NftablesMode.missing_in(release);
                    self.error_at(list, format!("nftables: {why}"));
                }
                list.value.iter().copied().filter(has).collect()
            }
        }
    }
}

impl super::Scenario {
    /// The backend that programs what this scenario's release of Felix
    /// programs: its nftables mode from v3.29 on (the harness's reference),
    /// iptables before (felix/nftables/table.go, commit a91c52b83a). A
    /// vendor's driver stands in for it.
    pub fn felix_backend(&self) -> BackendKind {
        if self.calico.has(Behaviour::NftablesMode) {
            BackendKind::Nftables
        } else {
            BackendKind::Iptables
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::calico::Release;
    use crate::vocab::BackendKind;

    const HEAD: &str = "cluster:
  cni: ../fixtures/cni/calico-config-floating-ips-on.yaml
  felix: {floatingIPs: Enabled}
  nodes: [node-a]
steps: []
";

    fn load(extra: &str) -> Result<super::super::Scenario, String> {
        super::super::load_str(
            &format!("{extra}{HEAD}"),
            Path::new("../scenarios/test-case.yaml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_calico_key_pins_a_release() {
        let scenario = load("calico: v3.31.5\n").unwrap();
        assert_eq!(scenario.calico, Release::new(31, 5));
        assert_eq!(load("calico: v3.30\n").unwrap().calico, Release::new(30, 7));
    }

    #[test]
    fn an_unknown_release_is_an_error_at_the_key() {
        let error = load("calico: v3.27\n").unwrap_err();
        assert_eq!(
            error,
            "../scenarios/test-case.yaml:1:9: calico: unknown Calico release 'v3.27': the harness \
             knows v3.28 (v3.28.0..v3.28.5), v3.29 (v3.29.0..v3.29.7), v3.30 (v3.30.0..v3.30.7), \
             v3.31 (v3.31.0..v3.31.7), v3.32 (v3.32.0..v3.32.1)"
        );
    }

    /// Felix's nftables mode came in v3.29: a v3.28 scenario runs on the
    /// other backends, and naming nftables there is an error.
    #[test]
    fn before_v3_29_there_is_no_nftables_backend() {
        let old = load("calico: v3.28\n").unwrap();
        assert_eq!(old.backends, [BackendKind::Iptables, BackendKind::NftMaps]);
        assert_eq!(old.felix_backend(), BackendKind::Iptables);
        let new = load("calico: v3.29.0\n").unwrap();
        assert_eq!(new.backends, BackendKind::ALL);
        assert_eq!(new.felix_backend(), BackendKind::Nftables);
        let error = load("calico: v3.28.3\nbackends: [iptables, nftables]\n").unwrap_err();
        assert_eq!(
            error,
            "../scenarios/test-case.yaml:2:11: backends: nftables: Calico v3.28.3 lacks it: \
             Felix's nftables mode (the `nftables` backend) came in v3.29.0 (commit a91c52b83a)"
        );
    }
}
