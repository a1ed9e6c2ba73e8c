//! The seam where a control plane may differ from Calico's: what it reads of
//! the cluster, what it decides to program, and which flows it flushes. The
//! reference ([`CalicoPolicy`]) changes nothing; mutants (`crate::mutant`)
//! override one hook each to model a real control-plane bug.

use std::borrow::Cow;
use std::fmt::Debug;

use crate::calico::desired::{ClusterState, DesiredState};
use crate::calico::diff::Changes;

/// Hooks around the pure steps of an update, in the order they run.
pub trait ControlPolicy: Send + Sync + Debug {
    /// The cluster as this control plane reads it.
    fn cluster_view<'a>(&self, cluster: &'a ClusterState) -> Cow<'a, ClusterState> {
        Cow::Borrowed(cluster)
    }

    /// Change what every member must hold, after Calico's rules computed it.
    fn adjust_desired(&self, _desired: &mut DesiredState) {}

    /// Change what one update does, after the diff computed it.
    fn adjust_changes(&self, _changes: &mut Changes, _desired: &DesiredState) {}

    /// True when every hook is the identity, so the control plane may take its
    /// incremental path (which computes no whole desired state for the hooks to
    /// see). Policies that override a hook leave this false.
    fn changes_nothing(&self) -> bool {
        false
    }
}

/// Calico's behaviour: every hook is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct CalicoPolicy;

impl ControlPolicy for CalicoPolicy {
    fn changes_nothing(&self) -> bool {
        true
    }
}
