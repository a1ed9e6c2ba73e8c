//! What an nftables backend last applied to each node namespace, so that the
//! next apply can send only what changed (still as one transaction).
//!
//! A backend that trusts this record assumes it is the only writer of its
//! tables, and falls back to a full replacement when a partial update fails.

use super::per_node::PerNode;
use super::{DataplaneError, NodeNatState};
use crate::lab::netns::Netns;

#[derive(Debug, Default)]
pub(crate) struct AppliedStates {
    applied: PerNode<NodeNatState>,
}

impl AppliedStates {
    /// Record `state` as what `node` holds, or forget it (`None`) when the
    /// node's tables are gone or unknown.
    pub(crate) fn remember(&self, node: &Netns, state: Option<&NodeNatState>) {
        match state {
            Some(state) => self.applied.put(node, state.clone()),
            None => self.applied.forget(node),
        }
    }

    /// Make `node` hold `state` by the smallest change this record allows:
    /// `update(old)` gives the change from what was last applied (`None`: no
    /// change at all), `full()` the replacement of everything; `run` sends
    /// one of them as one transaction. A failing update (someone else changed
    /// or removed the tables) falls back to the full replacement.
    pub(crate) fn apply<T>(
        &self,
        node: &Netns,
        state: &NodeNatState,
        update: impl FnOnce(&NodeNatState) -> Option<T>,
        full: impl FnOnce() -> T,
        run: impl Fn(&T) -> Result<(), DataplaneError>,
    ) -> Result<(), DataplaneError> {
        if let Some(old) = self.applied.take(node) {
            match update(&old) {
                None => {
                    self.applied.put(node, old);
                    return Ok(());
                }
                Some(change) => {
                    if run(&change).is_ok() {
                        self.remember(node, Some(state));
                        return Ok(());
                    }
                    tracing::debug!(
                        netns = node.name(),
                        "partial nft update failed, replacing the tables"
                    );
                }
            }
        }
        self.remember(node, None);
        run(&full())?;
        self.remember(node, Some(state));
        Ok(())
    }
}
