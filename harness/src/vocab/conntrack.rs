//! Connection-tracking profiles of the floating-IP NAT.

use serde::{Deserialize, Serialize};

/// What happens to established flows when floating IPs change.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ConntrackProfile {
    /// Calico: nothing keyed on the floating IP as destination is flushed;
    /// a deleted pod's entries go (original or reply source is its address),
    /// and so do the entries whose original or reply source is a floating IP
    /// whose device route moved or went on that node.
    #[default]
    Calico,
    /// Calico's, plus: entries whose original destination is a floating IP
    /// that moved, was removed or was given to a pod are deleted on every node.
    Strict,
}
