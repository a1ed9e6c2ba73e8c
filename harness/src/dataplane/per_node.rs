//! Something kept for each namespace between calls (what a backend last
//! applied, an open netlink socket), taken out while in use and put back.
//!
//! Keyed by the namespace file's device and inode, not its name, so a
//! namespace deleted and created again under the same name is a new one.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use crate::lab::netns::Netns;

#[derive(Debug)]
pub(crate) struct PerNode<T> {
    kept: Mutex<HashMap<(u64, u64), T>>,
}

impl<T> Default for PerNode<T> {
    fn default() -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
        }
    }
}

fn netns_key(node: &Netns) -> Option<(u64, u64)> {
    let meta = node.file().ok()?.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

impl<T> PerNode<T> {
    /// What is kept for `node`, taken out (not copied: at 10,000 mappings a
    /// copy of a state costs more than the kernel's part of a move). The
    /// caller puts back what still holds.
    pub(crate) fn take(&self, node: &Netns) -> Option<T> {
        let key = netns_key(node)?;
        self.kept.lock().expect("per-node lock").remove(&key)
    }

    /// Keep `value` for `node`, replacing what was kept.
    pub(crate) fn put(&self, node: &Netns, value: T) {
        if let Some(key) = netns_key(node) {
            self.kept.lock().expect("per-node lock").insert(key, value);
        }
    }

    /// Forget what is kept for `node` (dropping it).
    pub(crate) fn forget(&self, node: &Netns) {
        drop(self.take(node));
    }

    /// Forget everything kept.
    pub(crate) fn forget_all(&self) {
        self.kept.lock().expect("per-node lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_taken_out_put_back_and_forgotten() {
        let node = Netns::current().unwrap();
        let kept = PerNode::default();
        assert_eq!(kept.take(&node), None);
        kept.put(&node, 1);
        kept.put(&node, 2);
        assert_eq!(kept.take(&node), Some(2), "the newest value is kept");
        assert_eq!(kept.take(&node), None, "taking removes");
        kept.put(&node, 3);
        kept.forget(&node);
        assert_eq!(kept.take(&node), None);
        kept.put(&node, 4);
        kept.forget_all();
        assert_eq!(kept.take(&node), None);
    }
}
