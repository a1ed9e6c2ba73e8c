//! Which dataplane a case runs on: more than the closed [`BackendKind`], so
//! that broken dataplanes (mutants) and external drivers (`exec:PATH [ARGS]`)
//! can be chosen wherever a built-in backend can. The choice is the drive
//! layer's: `dataplane/` knows only its trait and backends, `mutant/` wraps
//! them from outside, `driver/` speaks to external programs.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::control::{CalicoPolicy, ControlPolicy};
use crate::dataplane::{backend, BackendKind, Dataplane};
use crate::driver::{ExecDataplane, ExecSpec, ExecSpecError};
use crate::mutant::{self, Mutant};

/// A dataplane selection: `nftables`, `iptables`, `nft-maps`,
/// `mutant:<name>` or `exec:PATH [ARGS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataplaneChoice {
    Builtin(BackendKind),
    Mutant(&'static Mutant),
    /// An external driver on every node (see [`crate::driver`]).
    Exec(Arc<ExecSpec>),
}

/// What a choice runs: the node dataplane and the control plane's policy.
#[derive(Clone)]
pub struct ChosenDataplane {
    pub dataplane: Arc<dyn Dataplane>,
    pub policy: Arc<dyn ControlPolicy>,
}

impl DataplaneChoice {
    /// An external driver (`exec:`).
    pub fn is_exec(&self) -> bool {
        matches!(self, DataplaneChoice::Exec(_))
    }

    /// The built-in backend whose scenarios this choice runs: mutants break
    /// the reference backend, so they run wherever it runs; a driver stands
    /// in for Felix's nftables mode, what a vendor's dataplane replaces (for
    /// a release before nftables mode, runner::plan has it stand in for
    /// iptables: Scenario::felix_backend).
    pub fn base(&self) -> BackendKind {
        match self {
            DataplaneChoice::Builtin(kind) => *kind,
            DataplaneChoice::Mutant(_) => mutant::REFERENCE,
            DataplaneChoice::Exec(_) => BackendKind::Nftables,
        }
    }

    /// The choice as one path component (for diagnostics folders): its name,
    /// or for a driver `exec-<program file name>`.
    pub fn dir_name(&self) -> String {
        match self {
            DataplaneChoice::Exec(spec) => format!("exec-{}", spec.short_name()),
            other => other.to_string(),
        }
    }

    /// A fresh dataplane and policy for one case.
    pub fn build(&self) -> ChosenDataplane {
        match self {
            DataplaneChoice::Builtin(kind) => ChosenDataplane {
                dataplane: backend(*kind),
                policy: Arc::new(CalicoPolicy),
            },
            DataplaneChoice::Mutant(mutant) => {
                let (dataplane, policy) = mutant.wrap();
                ChosenDataplane { dataplane, policy }
            }
            DataplaneChoice::Exec(spec) => ChosenDataplane {
                dataplane: Arc::new(ExecDataplane::new(ExecSpec::clone(spec))),
                policy: Arc::new(CalicoPolicy),
            },
        }
    }
}

impl From<BackendKind> for DataplaneChoice {
    fn from(kind: BackendKind) -> Self {
        DataplaneChoice::Builtin(kind)
    }
}

impl fmt::Display for DataplaneChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataplaneChoice::Builtin(kind) => kind.fmt(f),
            DataplaneChoice::Mutant(mutant) => write!(f, "mutant:{}", mutant.name),
            DataplaneChoice::Exec(spec) => write!(f, "exec:{spec}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    #[error("unknown dataplane `{0}` (built-in: {builtin}; or mutant:<name>, or exec:PATH [ARGS])", builtin = builtin_names())]
    Unknown(String),
    #[error(transparent)]
    Exec(#[from] ExecSpecError),
    #[error("unknown mutant `{0}` (see `fip-harness mutants --list`)")]
    UnknownMutant(String),
}

fn builtin_names() -> String {
    BackendKind::ALL
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for DataplaneChoice {
    type Err = ChoiceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(command) = text.strip_prefix("exec:") {
            return Ok(DataplaneChoice::Exec(Arc::new(ExecSpec::parse(command)?)));
        }
        if let Some(name) = text.strip_prefix("mutant:") {
            return mutant::find(name)
                .map(DataplaneChoice::Mutant)
                .ok_or_else(|| ChoiceError::UnknownMutant(name.to_string()));
        }
        BackendKind::ALL
            .into_iter()
            .find(|kind| kind.to_string() == text)
            .map(DataplaneChoice::Builtin)
            .ok_or_else(|| ChoiceError::Unknown(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_reads_back_from_its_name() {
        let choices = BackendKind::ALL
            .into_iter()
            .map(DataplaneChoice::Builtin)
            .chain(mutant::MUTANTS.iter().map(DataplaneChoice::Mutant));
        for choice in choices {
            assert_eq!(
                choice.to_string().parse::<DataplaneChoice>().unwrap(),
                choice
            );
        }
        let exec: DataplaneChoice = "exec:/opt/d 'a b'".parse().unwrap();
        assert_eq!(exec.to_string().parse::<DataplaneChoice>().unwrap(), exec);
        assert_eq!(exec.dir_name(), "exec-d");
        assert!("exec:".parse::<DataplaneChoice>().is_err());
        assert!("mutant:nope".parse::<DataplaneChoice>().is_err());
        assert!("vpp".parse::<DataplaneChoice>().is_err());
    }
}
