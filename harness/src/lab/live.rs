//! This process's labs and its gate for creating them: every namespace,
//! record and daemon of a lab is created through [`CREATIONS`]
//! (`ns::netns::CreationGate`), which interrupt clean-up (`super::signals`)
//! closes, waiting for creations in flight, so nothing is created after the
//! clean-up starts looking for what to remove.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::ns::netns::{Closed, CreationGate};

static LIVE_LABS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// This process's gate for creating lab namespaces, records and daemons.
pub static CREATIONS: CreationGate = CreationGate::new();

/// Run `create` unless clean-up has started; clean-up waits for it to end.
pub(crate) fn unless_cancelled<R>(create: impl FnOnce() -> R) -> Result<R, Closed> {
    CREATIONS.unless_closed(create)
}

/// Whether clean-up has started (creation is stopped).
pub fn is_cancelled() -> bool {
    CREATIONS.is_closed()
}

/// Stop every later creation of this process (after those in flight end).
pub fn cancel_creations() {
    CREATIONS.close();
}

pub(crate) fn remember(lab: &str) {
    LIVE_LABS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(lab.to_string());
}

pub(crate) fn forget(lab: &str) {
    LIVE_LABS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(lab);
}

/// Labs built by this process and not torn down yet.
pub fn live_labs() -> Vec<String> {
    LIVE_LABS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}
