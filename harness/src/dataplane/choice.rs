//! Which dataplane a case runs on: more than the closed [`BackendKind`], so
//! that broken dataplanes (mutants) and, later, external drivers can be chosen
//! wherever a built-in backend can.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{backend, BackendKind, Dataplane};
use crate::control::{CalicoPolicy, ControlPolicy};
use crate::mutant::{self, Bug, Mutant, MutantDataplane, MutantPolicy};

/// A dataplane selection: `nftables`, `iptables`, or `mutant:<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataplaneChoice {
    Builtin(BackendKind),
    Mutant(&'static Mutant),
}

/// What a choice runs: the node dataplane and the control plane's policy.
#[derive(Clone)]
pub struct ChosenDataplane {
    pub dataplane: Arc<dyn Dataplane>,
    pub policy: Arc<dyn ControlPolicy>,
}

impl DataplaneChoice {
    /// The built-in backend whose scenarios this choice runs: mutants break
    /// the reference backend, so they run wherever it runs.
    pub fn base(&self) -> BackendKind {
        match self {
            DataplaneChoice::Builtin(kind) => *kind,
            DataplaneChoice::Mutant(_) => BackendKind::NftMaps,
        }
    }

    /// A fresh dataplane and policy for one case.
    pub fn build(&self) -> ChosenDataplane {
        match self {
            DataplaneChoice::Builtin(kind) => ChosenDataplane {
                dataplane: backend(*kind),
                policy: Arc::new(CalicoPolicy),
            },
            DataplaneChoice::Mutant(mutant) => match mutant.bug {
                Bug::Nat(bug) => ChosenDataplane {
                    dataplane: Arc::new(MutantDataplane::new(bug)),
                    policy: Arc::new(CalicoPolicy),
                },
                Bug::Policy(bug) => ChosenDataplane {
                    dataplane: backend(BackendKind::NftMaps),
                    policy: Arc::new(MutantPolicy(bug)),
                },
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    #[error("unknown dataplane `{0}` (built-in: {builtin}; or mutant:<name>)", builtin = builtin_names())]
    Unknown(String),
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
        assert!("mutant:nope".parse::<DataplaneChoice>().is_err());
        assert!("vpp".parse::<DataplaneChoice>().is_err());
    }
}
