//! What an nftables backend last applied to each node namespace, so that the
//! next apply can send only what changed (still as one transaction).
//!
//! Keyed by the namespace file's device and inode, not its name, so a
//! namespace deleted and created again under the same name is a new one. A
//! backend that trusts this record assumes it is the only writer of its
//! tables, and falls back to a full replacement when a partial update fails.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use super::{DataplaneError, NodeNatState};
use crate::lab::netns::Netns;

#[derive(Debug, Default)]
pub(crate) struct AppliedStates {
    applied: Mutex<HashMap<(u64, u64), NodeNatState>>,
}

fn netns_key(node: &Netns) -> Option<(u64, u64)> {
    let meta = node.file().ok()?.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

impl AppliedStates {
    /// Record `state` as what `node` holds, or forget it (`None`) when the
    /// node's tables are gone or unknown.
    pub(crate) fn remember(&self, node: &Netns, state: Option<&NodeNatState>) {
        let Some(key) = netns_key(node) else { return };
        let mut applied = self.applied.lock().expect("applied-state lock");
        match state {
            Some(state) => {
                applied.insert(key, state.clone());
            }
            None => {
                applied.remove(&key);
            }
        }
    }

    /// What this backend last applied to `node`, if it knows, taken out of
    /// the record (not copied: at 10,000 mappings a copy costs more than the
    /// kernel's part of a move). The caller puts back what the node holds.
    fn take(&self, node: &Netns) -> Option<NodeNatState> {
        let key = netns_key(node)?;
        self.applied
            .lock()
            .expect("applied-state lock")
            .remove(&key)
    }

    fn put(&self, node: &Netns, state: NodeNatState) {
        if let Some(key) = netns_key(node) {
            self.applied
                .lock()
                .expect("applied-state lock")
                .insert(key, state);
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
        if let Some(old) = self.take(node) {
            match update(&old) {
                None => {
                    self.put(node, old);
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
